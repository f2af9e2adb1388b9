//! End to end on loopback: a real axum server with the layer, a real reqwest client with the
//! helper, 1,000 requests with 50 in flight. Every server span must be the child of its own
//! request's client span, and no request's spans may leak into another's trace.
#![cfg(all(feature = "axum", feature = "reqwest"))]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use tomograph::http::TraceLayer;
use tomograph::http::client::RequestBuilderExt;
use tomograph::testing::memory_tracer;
use tomograph::{FutureExt, Kind, Span, TraceId, traced};

const REQUESTS: usize = 1000;
const IN_FLIGHT: usize = 50;

#[traced]
async fn lookup(id: u64) -> Result<u64, String> {
    tokio::task::yield_now().await;
    if id.is_multiple_of(10) {
        return Err(format!("item {id} is gone"));
    }
    Ok(id * 2)
}

/// Answers `{id} {trace} {server span}` as seen from inside the handler.
async fn item(Path(id): Path<u64>) -> String {
    let server = tomograph::get_trace_info().expect("the layer's span is current");
    // A span across `.await` in a handler: the future's own (a guard is not `Send`).
    tokio::time::sleep(Duration::from_millis(1))
        .traced("query")
        .await;
    let _ = lookup(id).await;
    tokio::task::yield_now().await;
    let still = tomograph::get_trace_info().expect("still current after .await");
    assert_eq!(still, server, "the handler's context changed across .await");
    format!("{id} {} {}", server.trace_id(), server.span_id())
}

#[test]
fn thousand_concurrent_requests_keep_their_traces_apart() {
    let memory = memory_tracer();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let results = rt.block_on(async {
        let app = Router::new()
            .route("/items/{id}", get(item))
            .layer(TraceLayer::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let client = reqwest::Client::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        for id in 0..REQUESTS as u64 {
            let client = client.clone();
            let permits = permits.clone();
            let url = format!("http://{addr}/items/{id}");
            tasks.spawn(
                async move {
                    let _permit = permits.acquire().await.unwrap();
                    let root = tomograph::get_trace_info().unwrap();
                    let response = client.get(url).send_traced().await.unwrap();
                    assert!(response.status().is_success());
                    let body = response.text().await.unwrap();
                    (id, root.trace_id(), body)
                }
                .traced_with(tomograph::span("request").root()),
            );
        }
        let mut results = Vec::with_capacity(REQUESTS);
        while let Some(result) = tasks.join_next().await {
            results.push(result.unwrap());
        }
        results
    });
    assert_eq!(results.len(), REQUESTS);

    // root, client, server, query, lookup: five spans per request.
    tomograph::flush(Duration::from_secs(10)).unwrap();
    let traces: Vec<TraceId> = results.iter().map(|(_, t, _)| *t).collect();
    let all = memory.wait_for(Duration::from_secs(30), |spans| {
        spans
            .iter()
            .filter(|s| traces.contains(&s.trace_id()))
            .count()
            >= REQUESTS * 5
    });
    let mut by_trace: HashMap<TraceId, Vec<&Span>> = HashMap::new();
    for span in &all {
        by_trace.entry(span.trace_id()).or_default().push(span);
    }
    for (id, trace, body) in &results {
        let spans = &by_trace[trace];
        assert_eq!(spans.len(), 5, "request {id}: {spans:#?}");
        let one = |pred: &dyn Fn(&Span) -> bool| -> &Span {
            let found: Vec<_> = spans.iter().copied().filter(|s| pred(s)).collect();
            assert_eq!(found.len(), 1, "request {id}: {spans:#?}");
            found[0]
        };
        let root = one(&|s| s.name() == "request");
        let client = one(&|s| s.kind() == Some(Kind::Client));
        let server = one(&|s| s.kind() == Some(Kind::Server));
        let query = one(&|s| s.name() == "query");
        let lookup = one(&|s| s.name() == "lookup");
        assert_eq!(client.parent_id(), Some(root.id()));
        assert_eq!(server.parent_id(), Some(client.id()), "request {id}");
        assert_eq!(query.parent_id(), Some(server.id()));
        assert_eq!(lookup.parent_id(), Some(server.id()));
        assert_eq!(lookup.is_error(), id.is_multiple_of(10));
        assert_eq!(server.name(), "GET /items/{id}");
        assert_eq!(
            server.tag_value("http.path").map(ToString::to_string),
            Some(format!("/items/{id}"))
        );
        assert_eq!(
            server
                .tag_value("http.route")
                .map(ToString::to_string)
                .as_deref(),
            Some("/items/{id}")
        );
        // What the handler saw is this request's server span, in this request's trace.
        assert_eq!(body, &format!("{id} {trace} {}", server.id()));
    }
}
