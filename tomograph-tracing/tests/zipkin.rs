//! Real instrumentation, bridged, reaching the Zipkin collector peer (which validates every
//! body against Zipkin's OpenAPI spec) as one trace: a tomograph client span → tomograph's
//! tower layer on axum → tower-http's own `TraceLayer` span → a user
//! `#[tracing::instrument]` function → a statement through tomograph-sqlx (a tomograph span)
//! whose sqlx `sqlx::query` events land as notes on the instrumented span. Needs
//! `TOMOGRAPH_TEST_ZIPKIN_URL`; skipped (visibly) without it.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::Value;
use tomograph::http::client::RequestBuilderExt;
use tomograph_sqlx::TracedPool;
use tomograph_test_support::collector;
use tomograph_tracing::TomographLayer;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[tracing::instrument(skip(pool))]
async fn load_user(pool: &TracedPool<sqlx::Sqlite>, id: i64) -> String {
    let (name,): (String,) = sqlx::query_as("SELECT name FROM bridge_users WHERE id = ?")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    tracing::info!(%name, "found");
    name
}

async fn user(State(pool): State<TracedPool<sqlx::Sqlite>>, Path(id): Path<i64>) -> String {
    load_user(&pool, id).await
}

async fn fail() -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

#[test]
fn tower_http_sqlx_and_instrumented_spans_reach_zipkin_as_one_trace() {
    let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_ZIPKIN_URL") else {
        return;
    };
    let url = url.trim_end_matches('/').to_owned();
    collector::install_zipkin_tracer(&url, "bridge-client");
    tracing_subscriber::registry()
        .with(EnvFilter::new("info,tower_http=debug,sqlx::query=debug"))
        .with(TomographLayer::new())
        .init();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let trace = rt.block_on(async {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE bridge_users (id INTEGER PRIMARY KEY, name TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO bridge_users (id, name) VALUES (7, 'ada')")
            .execute(&pool)
            .await
            .unwrap();
        let app = Router::new()
            .route("/users/{id}", get(user))
            .route("/fail", get(fail))
            .with_state(TracedPool::new(pool))
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .layer(tomograph::http::TraceLayer::new().service_name("bridge-server"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let client = reqwest::Client::new();
        let trace = {
            let root = tomograph::span("bridged requests").root().start();
            let trace = root.token().unwrap().trace_id();
            let response = client
                .get(format!("http://{addr}/users/7"))
                .send_traced()
                .await
                .unwrap();
            assert_eq!(response.text().await.unwrap(), "ada");
            let response = client
                .get(format!("http://{addr}/fail"))
                .send_traced()
                .await
                .unwrap();
            assert_eq!(response.status(), 500);
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
    // root, 2 × (client, server, tower-http request), load_user, SELECT
    assert_eq!(spans.len(), 9, "{collected:#}");
    for span in spans {
        assert_eq!(span["traceId"], trace.to_string());
    }
    let by_id: HashMap<&str, &Value> = spans
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s))
        .collect();
    let parent = |span: &Value| -> &Value {
        let id = span["parentId"]
            .as_str()
            .unwrap_or_else(|| panic!("{span:#}"));
        by_id[id]
    };
    let named =
        |name: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == name).collect() };

    let [select] = named("SELECT bridge_users")[..] else {
        panic!("{collected:#}")
    };
    assert_eq!(select["kind"], "CLIENT");
    assert_eq!(select["remoteEndpoint"]["serviceName"], "sqlite");
    let load_user = parent(select);
    assert_eq!(load_user["name"], "load_user", "{collected:#}");
    assert_eq!(load_user["tags"]["id"], "7");
    let notes: Vec<&str> = load_user["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["value"].as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("DEBUG sqlx::query summary=\"SELECT name FROM")),
        "sqlx's own event: {notes:?}"
    );
    assert!(notes.contains(&"INFO found name=ada"), "{notes:?}");

    let requests = named("request");
    assert_eq!(requests.len(), 2, "tower-http's spans: {collected:#}");
    let ok_request = parent(load_user);
    assert_eq!(ok_request["name"], "request");
    assert_eq!(ok_request["tags"]["uri"], "/users/7");
    assert_eq!(ok_request["tags"]["method"], "GET");
    let failed_request = requests
        .iter()
        .find(|r| r["tags"]["uri"] == "/fail")
        .unwrap();
    assert!(
        failed_request["tags"]["error"].as_str().is_some(),
        "tower-http's ERROR event marks its span: {failed_request:#}"
    );
    assert!(ok_request["tags"]["error"].is_null());

    let root = named("bridged requests")[0];
    for request in [ok_request, *failed_request] {
        let server = parent(request);
        assert_eq!(server["kind"], "SERVER", "{collected:#}");
        assert_eq!(server["localEndpoint"]["serviceName"], "bridge-server");
        let client = parent(server);
        assert_eq!(client["kind"], "CLIENT");
        assert_eq!(parent(client)["id"], root["id"]);
        assert_eq!(request["localEndpoint"]["serviceName"], "bridge-server");
    }
    assert_eq!(load_user["localEndpoint"]["serviceName"], "bridge-server");
}
