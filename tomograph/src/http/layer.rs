//! A tower [`Layer`] that traces every request of a server (axum, hyper, tonic…): the
//! original's WSGI `Middleware`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response, request::Parts};
use http_body::{Body, Frame as BodyFrame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{Host, method_text, server_frame};
use crate::context::abandoned;
use crate::context::future::{Traced, in_frames};
use crate::context::stack::Frame;
use crate::env::{self, EnvLookup};
use crate::handle::span;
use crate::keys;
use crate::model::{Endpoint, Kind, Span, Text, TraceId};
use crate::propagation;

type NameFn = dyn Fn(&Parts) -> Text + Send + Sync;

/// Opens one SERVER span per request, child of the caller's span when the request's headers
/// carry one (see [`crate::propagation`]).
///
/// - name: `METHOD /route` (the axum route template with feature `axum`, else the path), or
///   whatever [`name_with`](TraceLayer::name_with) computes;
/// - tags: `http.method`, `http.path`, `http.route` (when known), `http.status_code`;
///   a 5xx status, an error from the service and an error from the response body are
///   recorded as errors (`error` tag and note);
/// - the span is current while the handler runs (also across `.await` in async handlers), so
///   spans, SQL statements and outgoing requests made there are its children;
/// - it ends when the response body has been sent, or when the request is dropped.
///
/// Like the original's paste filter, the service name can be set
/// ([`service_name`](TraceLayer::service_name)), also from the environment
/// ([`from_env`](TraceLayer::from_env) reads `TOMOGRAPH_HTTP_SERVICE_NAME`); by default the
/// span belongs to the tracer's service.
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use tomograph::http::TraceLayer;
///
/// # async fn run() {
/// let app: Router = Router::new()
///     .route("/images/{id}", get(|| async { "an image" }))
///     .layer(TraceLayer::from_env());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// axum::serve(listener, app).await.unwrap();
/// # }
/// ```
#[derive(Clone, Default)]
pub struct TraceLayer {
    service: Option<Text>,
    name: Option<Arc<NameFn>>,
}

impl fmt::Debug for TraceLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceLayer")
            .field("service", &self.service)
            .field("name", &self.name.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

impl TraceLayer {
    /// Spans named `METHOD /route`, belonging to the tracer's service.
    ///
    /// ```
    /// let layer = tomograph::http::TraceLayer::new().service_name("glance-registry");
    /// # let _ = layer;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Like [`new`](TraceLayer::new), with the service name from `TOMOGRAPH_HTTP_SERVICE_NAME`
    /// when it is set.
    pub fn from_env() -> Self {
        Self::from_lookup(&env::process)
    }

    /// Like [`from_env`](TraceLayer::from_env), reading variables through `env`.
    ///
    /// ```
    /// use tomograph::http::TraceLayer;
    /// let env = |k: &str| (k == "TOMOGRAPH_HTTP_SERVICE_NAME").then(|| "glance-api".to_owned());
    /// assert_eq!(TraceLayer::from_lookup(&env).service(), Some("glance-api"));
    /// ```
    pub fn from_lookup(env: EnvLookup<'_>) -> Self {
        let mut layer = Self::new();
        if let Some(name) = env::non_blank(env, env::HTTP_SERVICE_NAME) {
            layer = layer.service_name(name);
        }
        layer
    }

    /// The service the server spans belong to (their local endpoint: that service at the
    /// request's `Host` address and port).
    pub fn service_name(mut self, name: impl Into<Text>) -> Self {
        self.service = Some(name.into().into_shared());
        self
    }

    /// The configured service name, if any.
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// Names each span from the request's head.
    ///
    /// ```
    /// use tomograph::http::TraceLayer;
    /// let layer = TraceLayer::new().name_with(|req| format!("{} {}", req.method, req.uri.path()).into());
    /// # let _ = layer;
    /// ```
    pub fn name_with(mut self, f: impl Fn(&Parts) -> Text + Send + Sync + 'static) -> Self {
        self.name = Some(Arc::new(f));
        self
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> TraceService<S> {
        TraceService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`TraceLayer`].
#[derive(Clone, Debug)]
pub struct TraceService<S> {
    inner: S,
    layer: TraceLayer,
}

/// The route template axum matched, when there is one.
fn route(parts: &http::Extensions) -> Option<&str> {
    #[cfg(feature = "axum")]
    if let Some(path) = parts.get::<axum::extract::MatchedPath>() {
        return Some(path.as_str());
    }
    let _ = parts;
    None
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TraceService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ResBody: Body,
    ResBody::Error: fmt::Display,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // A new request on this thread: first close what a caught panic left on its stack.
        abandoned::next_request();
        let (parts, body) = request.into_parts();
        let route = route(&parts.extensions).map(str::to_owned);
        let name = match &self.layer.name {
            Some(f) => f(&parts),
            None => Text::from(format!(
                "{} {}",
                parts.method,
                route.as_deref().unwrap_or(parts.uri.path())
            )),
        };
        let mut builder = span(name)
            .kind(Kind::Server)
            .tag(keys::http::METHOD, method_text(&parts.method))
            .tag(keys::http::PATH, parts.uri.path().to_owned());
        if let Some(route) = route {
            builder = builder.tag(keys::http::ROUTE, route);
        }
        let request = Request::from_parts(parts, body);
        if let Some(service) = &self.layer.service {
            let host = Host::of_request(&request);
            builder = builder.endpoint(
                Endpoint::new(service.clone())
                    .with_optional_ip(host.as_ref().and_then(Host::ip))
                    .with_port(host.as_ref().and_then(Host::port).unwrap_or(0)),
            );
        }
        let parent = propagation::extract(request.headers());
        let frame = server_frame(parent.as_ref(), builder, false);
        let tracestate = match (&frame, parent.and_then(|p| p.tracestate().cloned())) {
            (Some(frame), Some(state)) => Some((frame.token().trace_id, state)),
            _ => None,
        };
        let mut frames: Vec<Frame> = frame.into_iter().collect();
        // The span is current while the service's `call` runs too (routing, closures).
        let inner = in_frames(&mut frames, || {
            propagation::with_tracestate(tracestate.as_ref(), || self.inner.call(request))
        });
        ResponseFuture {
            inner: Traced::with_frames(inner, frames).keep_outer_frame(),
            tracestate,
        }
    }
}

pin_project! {
    /// The future of a [`TraceService`]: runs the handler inside the request's span.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Traced<F>,
        tracestate: Option<(TraceId, HeaderValue)>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
{
    type Output = Result<Response<TracedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let result = ready!(propagation::with_tracestate(
            this.tracestate.as_ref(),
            || { this.inner.as_mut().poll(cx) }
        ));
        let mut frame = this.inner.take_kept();
        Poll::Ready(match result {
            Ok(response) => {
                let status = response.status();
                with_span(&mut frame, |span| {
                    span.tag(keys::http::STATUS_CODE, i64::from(status.as_u16()));
                    if status.is_server_error() {
                        span.record_error(status.as_u16());
                    }
                });
                Ok(response.map(|inner| TracedBody { inner, span: frame }))
            }
            Err(error) => {
                with_span(&mut frame, |span| span.record_error(&error));
                if let Some(frame) = frame {
                    frame.finish();
                }
                Err(error)
            }
        })
    }
}

fn with_span(frame: &mut Option<Frame>, f: impl FnOnce(&mut Span)) {
    if let Some(Frame::Recording(span)) = frame {
        f(span);
    }
}

pin_project! {
    /// A response body that ends the request's span when it has been sent (or dropped).
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        span: Option<Frame>,
    }

    impl<B> PinnedDrop for TracedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(frame) = this.project().span.take() {
                frame.finish();
            }
        }
    }
}

impl<B> fmt::Debug for TracedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedBody")
            .field("span", &self.span.as_ref().map(Frame::token))
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for TracedBody<B>
where
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let result = ready!(this.inner.poll_frame(cx));
        match &result {
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                with_span(this.span, |span| {
                    span.record_error(format_args!("response body: {error}"));
                });
                if let Some(frame) = this.span.take() {
                    frame.finish();
                }
            }
            None => {
                if let Some(frame) = this.span.take() {
                    frame.finish();
                }
            }
        }
        Poll::Ready(result)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
