//! The seed's client/server pair, over real HTTP on loopback:
//! `cargo run -p tomograph-examples --example client_server`.
//!
//! The server ("server") runs axum behind tomograph's tower layer, the original's WSGI
//! `Middleware`: each request is a SERVER span continuing the caller's trace, current for the
//! handler and its `#[traced]` function across `.await`. The client ("client") makes two
//! requests: the first the seed's way (`start`, `add_trace_info_header`, `stop`), the second
//! with the reqwest helper. Each is one trace, client and server spans nested, printed in the
//! terminal; `TOMOGRAPH_BACKENDS=console,zipkin` (with `TOMOGRAPH_ZIPKIN_URL`) sends them to
//! Zipkin too, `TOMOGRAPH_HTTP_SERVICE_NAME` renames the server, `TOMOGRAPH_PROPAGATION`
//! picks the headers (`x-trace-info`, `b3`, `b3-single`, `w3c`).

use std::error::Error;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tomograph::http::TraceLayer;
use tomograph::http::client::RequestBuilderExt;
use tomograph::{ConfigBuilder, FutureExt, traced};

/// The server's work, a span of its own under the request's.
#[traced("server", "list images")]
async fn list_images() -> Result<Vec<&'static str>, String> {
    tokio::time::sleep(Duration::from_millis(3)).await;
    tomograph::annotate("images loaded");
    Ok(vec!["cat.png", "dog.jpg"])
}

async fn images() -> String {
    match list_images().await {
        Ok(images) => images.join(","),
        Err(e) => e,
    }
}

/// The seed's `traced_http_client`: start, add the header, send, stop.
async fn traced_http_client(client: &reqwest::Client, url: &str) -> Result<String, Box<dyn Error>> {
    tomograph::start("client", "http request", "127.0.0.1", 0);
    let mut headers = reqwest::header::HeaderMap::new();
    tomograph::http::add_trace_info_header(&mut headers);
    let body = async {
        let response = client.get(url).headers(headers).send().await?;
        response.text().await
    }
    .await;
    tomograph::stop("http request")?;
    Ok(body?)
}

fn main() -> Result<(), Box<dyn Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    tomograph::init(ConfigBuilder::from_env("console")?.build())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // The server, configured like the original's paste filter.
        let layer = TraceLayer::from_env();
        let layer = match layer.service() {
            Some(_) => layer,
            None => layer.service_name("server"),
        };
        let app = Router::new().route("/images", get(images)).layer(layer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/images", listener.local_addr()?);
        let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });

        let client = reqwest::Client::new();
        // 1. The seed's way. `in_current_trace` keeps the thread-local span stack of
        //    start/stop with this task across `.await`.
        let body = traced_http_client(&client, &url).in_current_trace().await?;
        println!("seed helpers: {body}");

        // 2. The reqwest helper: a CLIENT span per request, headers injected.
        let body = async {
            let response = client.get(&url).send_traced().await?;
            response.text().await
        }
        .traced_with(
            tomograph::span("list images twice")
                .service("client")
                .root(),
        )
        .await?;
        println!("reqwest helper: {body}");

        let _ = stop_server.send(());
        server.await??;
        Ok::<_, Box<dyn Error>>(())
    })?;

    tomograph::shutdown(Duration::from_secs(5))?;
    Ok(())
}
