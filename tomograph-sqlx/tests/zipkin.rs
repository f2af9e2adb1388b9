//! sqlx spans sent to the Zipkin peer (`peers/zipkin-collector`, URL in
//! `TOMOGRAPH_TEST_ZIPKIN_URL`) are accepted — it validates every body against Zipkin's
//! OpenAPI spec — and come back with their names, kinds, remote endpoints, tags and parents.
//! SQLite always, PostgreSQL too when `TOMOGRAPH_TEST_POSTGRES_URL` is set. Its own binary:
//! the global tracer here sends to Zipkin.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sqlx::Executor;
use tomograph::FutureExt;
use tomograph_sqlx::{TracedDatabase, TracedPool};
use tomograph_test_support::collector;

async fn exercise<DB: TracedDatabase>(pool: &TracedPool<DB>, system: &str) -> String
where
    for<'c> &'c TracedPool<DB>: Executor<'c, Database = DB>,
{
    let trace = async {
        let trace = tomograph::get_trace_info().unwrap().trace_id();
        pool.execute("SELECT 1").await.unwrap();
        assert!(pool.execute("SELEC 1").await.is_err());
        let tx = pool.begin().await.unwrap();
        tx.commit().await.unwrap();
        trace
    }
    .traced_with(tomograph::span(format!("zipkin {system}")).root())
    .await;
    trace.to_string()
}

fn check(base: &str, trace: &str, system: &str) {
    let spans = collector::trace(base, trace);
    let spans = spans.as_array().unwrap();
    // root, SELECT, the failed statement, TRANSACTION, BEGIN, COMMIT
    assert_eq!(spans.len(), 6, "{spans:#?}");
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| {
                s["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .unwrap_or_else(|| panic!("a span {name} in {spans:#?}"))
    };
    let root = named(&format!("zipkin {system}"));
    let select = named("SELECT");
    assert_eq!(select["kind"], "CLIENT");
    assert_eq!(select["parentId"], root["id"]);
    assert_eq!(select["remoteEndpoint"]["serviceName"], system);
    assert_eq!(
        select["localEndpoint"]["serviceName"],
        "tomograph-sqlx-zipkin-test"
    );
    assert_eq!(select["tags"]["sql.query"], "SELECT 1");
    assert_eq!(select["tags"]["db.system.name"], system);
    // "SELEC 1" has no summary: named by the database.
    let failed = spans
        .iter()
        .find(|s| s["name"] == system && s["tags"]["error"].is_string())
        .unwrap_or_else(|| panic!("a failed span {system} in {spans:#?}"));
    assert!(
        failed["tags"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{failed:#?}"
    );
    assert!(
        failed["tags"]["db.response.status_code"].is_string(),
        "{failed:#?}"
    );
    let transaction = named("TRANSACTION");
    assert_eq!(transaction["parentId"], root["id"]);
    assert_eq!(named("COMMIT")["parentId"], transaction["id"]);
    assert_eq!(named("BEGIN")["parentId"], transaction["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_spans_are_accepted_by_the_zipkin_collector() {
    let Some(base) = tomograph::testing::require_env("TOMOGRAPH_TEST_ZIPKIN_URL") else {
        return;
    };
    collector::install_zipkin_tracer(&base, "tomograph-sqlx-zipkin-test");

    let mut traces = Vec::new();
    let sqlite = TracedPool::<sqlx::Sqlite>::connect("sqlite::memory:")
        .await
        .unwrap();
    traces.push((exercise(&sqlite, "sqlite").await, "sqlite"));
    #[cfg(feature = "postgres")]
    if let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_POSTGRES_URL") {
        let postgres = TracedPool::<sqlx::Postgres>::connect(&url).await.unwrap();
        traces.push((exercise(&postgres, "postgresql").await, "postgresql"));
    }
    tomograph::flush(Duration::from_secs(10)).unwrap();

    collector::assert_no_rejections(&base);
    for (trace, system) in traces {
        check(&base, &trace, system);
    }
}
