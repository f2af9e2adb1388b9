//! A client → server → handler trace reaches the Zipkin peer (`peers/zipkin-collector`,
//! which validates every body against Zipkin's OpenAPI spec) as one trace. Needs
//! `TOMOGRAPH_TEST_ZIPKIN_URL`; skipped (visibly) without it.
#![cfg(all(feature = "zipkin", feature = "axum", feature = "reqwest"))]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use tomograph::http::TraceLayer;
use tomograph::http::client::RequestBuilderExt;
use tomograph_test_support::collector;

#[test]
fn client_server_trace_reaches_zipkin_as_one_trace() {
    let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_ZIPKIN_URL") else {
        return;
    };
    let url = url.trim_end_matches('/').to_owned();
    collector::install_zipkin_tracer(&url, "client");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let trace = rt.block_on(async {
        let app = Router::new()
            .route(
                "/images",
                get(|| async {
                    tomograph::annotate("listed");
                    "[]"
                }),
            )
            .layer(TraceLayer::new().service_name("server"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let client = reqwest::Client::new();
        let trace = {
            let root = tomograph::span("image list").root().start();
            let trace = root.token().unwrap().trace_id();
            let response = client
                .get(format!("http://{addr}/images"))
                .send_traced()
                .await
                .unwrap();
            assert_eq!(response.text().await.unwrap(), "[]");
            trace
        };
        tokio::task::spawn_blocking(|| tomograph::flush(Duration::from_secs(10)))
            .await
            .unwrap()
            .unwrap();
        trace
    });

    collector::assert_no_rejections(&url);
    let collected = collector::trace(&url, trace);
    let spans = collected.as_array().expect("a JSON array of spans");
    assert_eq!(spans.len(), 3, "{collected:#}");
    let find = |pred: &dyn Fn(&Value) -> bool| {
        spans
            .iter()
            .find(|s| pred(s))
            .unwrap_or_else(|| panic!("{collected:#}"))
    };
    let root = find(&|s| s["name"] == "image list");
    let client = find(&|s| s["kind"] == "CLIENT");
    let server = find(&|s| s["kind"] == "SERVER");
    for span in [root, client, server] {
        assert_eq!(span["traceId"], trace.to_string());
    }
    assert_eq!(client["parentId"], root["id"]);
    assert_eq!(server["parentId"], client["id"]);
    assert_eq!(root["localEndpoint"]["serviceName"], "client");
    assert_eq!(client["localEndpoint"]["serviceName"], "client");
    assert_eq!(server["localEndpoint"]["serviceName"], "server");
    assert_eq!(server["name"], "GET /images");
    assert_eq!(server["tags"]["http.status_code"], "200");
}
