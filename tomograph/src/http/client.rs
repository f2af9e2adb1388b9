//! Traced requests with reqwest (feature `reqwest`): a CLIENT span per request, its context
//! injected into the request's headers.
//!
//! The span starts when [`send_traced`](RequestBuilderExt::send_traced) (or [`execute`]) is
//! called, as a child of the span current then, and ends when the response's status and
//! headers have arrived (reading the body is not part of it). It is named after the method
//! (`GET`), tagged `http.method`, `http.path`, `http.status_code`, has the server as its
//! remote endpoint, and records a transport error or a 5xx status as an error.
//!
//! ```no_run
//! use tomograph::http::client::RequestBuilderExt;
//!
//! # async fn run() -> Result<(), reqwest::Error> {
//! let client = reqwest::Client::new();
//! let _request = tomograph::span("list images").start();
//! let images = client.get("http://127.0.0.1:9292/v2/images").send_traced().await?;
//! # let _ = images;
//! # Ok(())
//! # }
//! ```

use std::future::Future;

use reqwest::{Client, Request, RequestBuilder, Response};

use super::{Host, method_text};
use crate::handle::{DetachedSpan, span};
use crate::keys;
use crate::model::{Endpoint, Kind};
use crate::propagation;

/// Sends a reqwest request inside a CLIENT span.
pub trait RequestBuilderExt {
    /// Like [`RequestBuilder::send`], traced: see the [module docs](self).
    fn send_traced(self) -> impl Future<Output = reqwest::Result<Response>> + Send + 'static;
}

impl RequestBuilderExt for RequestBuilder {
    fn send_traced(self) -> impl Future<Output = reqwest::Result<Response>> + Send + 'static {
        let (client, request) = self.build_split();
        let prepared = request.map(prepare);
        async move {
            let (span, request) = prepared?;
            finish(span, client.execute(request).await)
        }
    }
}

/// Like [`Client::execute`], traced: see the [module docs](self).
///
/// ```no_run
/// # async fn run() -> Result<(), reqwest::Error> {
/// let client = reqwest::Client::new();
/// let request = client.get("http://127.0.0.1:8080/").build()?;
/// let response = tomograph::http::client::execute(&client, request).await?;
/// # let _ = response;
/// # Ok(())
/// # }
/// ```
pub fn execute(
    client: &Client,
    request: Request,
) -> impl Future<Output = reqwest::Result<Response>> + Send + 'static {
    let client = client.clone();
    let (span, request) = prepare(request);
    async move { finish(span, client.execute(request).await) }
}

/// Starts the span and writes its context into the request's headers.
fn prepare(mut request: Request) -> (DetachedSpan, Request) {
    let url = request.url();
    let mut remote = None;
    if let Some(host) = url.host_str().and_then(Host::parse) {
        remote = Some(
            Endpoint::new(host.name().to_owned())
                .with_optional_ip(host.ip())
                .with_port(url.port_or_known_default().unwrap_or(0)),
        );
    }
    let method = method_text(request.method());
    let mut builder = span(method.clone())
        .kind(Kind::Client)
        .tag(keys::http::METHOD, method)
        .tag(keys::http::PATH, url.path().to_owned());
    if let Some(remote) = remote {
        builder = builder.remote_endpoint(remote);
    }
    let span = builder.start_detached();
    if let Some(token) = span.token() {
        propagation::inject(token, request.headers_mut());
    }
    (span, request)
}

fn finish(mut span: DetachedSpan, result: reqwest::Result<Response>) -> reqwest::Result<Response> {
    match &result {
        Ok(response) => {
            let status = response.status();
            span.tag(keys::http::STATUS_CODE, i64::from(status.as_u16()));
            if status.is_server_error() {
                span.record_error(status.as_u16());
            }
        }
        Err(error) => span.record_error(error),
    }
    result
}
