//! One request, one trace, across every piece: a reqwest client → an axum server behind the
//! tower layer → a handler with a manual span, a `#[traced]` function, a traced sqlx pool on
//! PostgreSQL and a traced rusqlite connection → the Zipkin-compatible collector, which
//! validates every span against Zipkin's own OpenAPI spec.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::Value;
use tomograph::backend::zipkin::ZipkinBackend;
use tomograph::http::TraceLayer;
use tomograph::http::client::RequestBuilderExt;
use tomograph::testing::require_env;
use tomograph::{Config, FutureExt, ReporterOptions};
use tomograph_rusqlite::TracedConnection;
use tomograph_sqlx::TracedPool;

#[tomograph::traced]
fn render(count: i64) -> String {
    format!("{count} images")
}

async fn images(State(pg): State<TracedPool<sqlx::Postgres>>) -> String {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tg_e2e_images")
        .fetch_one(&pg)
        .await
        .unwrap();
    let cached: i64 = {
        let _lookup = tomograph::span("cache lookup").start();
        let cache =
            TracedConnection::open_in_memory(tomograph_rusqlite::sql_tracer().build()).unwrap();
        cache
            .query_row("SELECT ?1", [count], |row| row.get(0))
            .unwrap()
    };
    render(cached)
}

#[test]
fn a_request_is_one_trace_from_the_client_to_both_databases_in_zipkin() {
    let Some(zipkin) = require_env("TOMOGRAPH_TEST_ZIPKIN_URL") else {
        return;
    };
    let Some(postgres) = require_env("TOMOGRAPH_TEST_POSTGRES_URL") else {
        return;
    };
    let backend = ZipkinBackend::builder()
        .url(zipkin.clone())
        .build()
        .unwrap();
    tomograph::init(
        Config::builder()
            .service_name("e2e-client")
            .reporter(ReporterOptions::default().batch_interval(Duration::from_millis(10)))
            .backend(backend)
            .build(),
    )
    .unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (trace, spans, errors) = rt.block_on(async {
        let pg = TracedPool::<sqlx::Postgres>::connect(&postgres)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE IF NOT EXISTS tg_e2e_images (id serial PRIMARY KEY)")
            .execute(pg.inner())
            .await
            .unwrap();
        let app = Router::new()
            .route("/images", get(images))
            .layer(TraceLayer::new().service_name("e2e-server"))
            .with_state(pg);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let http = reqwest::Client::new();
        let trace = async {
            let trace = tomograph::get_trace_info().unwrap().trace_id();
            let body = http
                .get(format!("http://{addr}/images"))
                .send_traced()
                .await
                .unwrap();
            assert!(body.status().is_success());
            assert!(body.text().await.unwrap().ends_with(" images"));
            trace
        }
        .traced_with(tomograph::span("image list").root())
        .await;
        server.abort();
        tomograph::flush(Duration::from_secs(10)).unwrap();

        let spans: Vec<Value> = http
            .get(format!("{zipkin}/api/v2/trace/{trace}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|body| serde_json::from_str(&body).unwrap())
            .unwrap();
        let errors: Value = http
            .get(format!("{zipkin}/_errors"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|body| serde_json::from_str(&body).unwrap())
            .unwrap();
        (trace, spans, errors)
    });

    assert_eq!(
        errors,
        serde_json::json!([]),
        "the collector rejected something"
    );
    let by_id: HashMap<&str, &Value> = spans
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s))
        .collect();
    // Zipkin lower-cases span names; compare the same way.
    let named = |name: &str| -> Vec<&Value> {
        spans
            .iter()
            .filter(|s| {
                s["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .collect()
    };
    let parent_of = |span: &Value| -> &Value { by_id[span["parentId"].as_str().unwrap()] };
    let trace_hex = trace.to_string();
    assert!(spans.iter().all(|s| s["traceId"] == trace_hex.as_str()));

    let root = named("image list")[0];
    assert!(root.get("parentId").is_none(), "{root}");
    assert_eq!(root["localEndpoint"]["serviceName"], "e2e-client");

    let server = spans
        .iter()
        .find(|s| s["kind"] == "SERVER")
        .expect("a server span");
    assert_eq!(server["localEndpoint"]["serviceName"], "e2e-server");
    let client = parent_of(server);
    assert_eq!(
        client["kind"], "CLIENT",
        "the server span is the child of the client's span"
    );
    assert_eq!(parent_of(client)["id"], root["id"]);

    // Named by their query summaries.
    let selects: Vec<&Value> = named("select tg_e2e_images")
        .into_iter()
        .chain(named("select"))
        .collect();
    assert_eq!(selects.len(), 2, "one statement per database: {spans:#?}");
    let pg = selects
        .iter()
        .find(|s| s["remoteEndpoint"]["serviceName"] == "postgresql")
        .unwrap();
    assert_eq!(parent_of(pg)["id"], server["id"]);
    assert_eq!(
        pg["tags"]["sql.query"],
        "SELECT count(*) FROM tg_e2e_images"
    );
    let sqlite = selects
        .iter()
        .find(|s| s["remoteEndpoint"]["serviceName"] == "sqlite")
        .unwrap();
    assert_eq!(parent_of(sqlite)["id"], named("cache lookup")[0]["id"]);
    assert_eq!(parent_of(parent_of(sqlite))["id"], server["id"]);
    assert_eq!(parent_of(named("render")[0])["id"], server["id"]);
    assert_eq!(
        spans.len(),
        7,
        "root, client, server, 2 statements, cache lookup, render: {spans:#?}"
    );
}
