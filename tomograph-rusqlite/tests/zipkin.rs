//! The DB spans reach a Zipkin collector (`peers/zipkin-collector`, which validates
//! every body against Zipkin's official API) without rejections, as JSON v2 and thrift v1.
//! Needs `TOMOGRAPH_TEST_ZIPKIN_URL`; skipped (with a visible line) without it.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use tomograph::backend::zipkin::{Encoding, ZipkinBackend};
use tomograph::{Config, ReporterOptions};
use tomograph_rusqlite::{TracedConnection, sql_tracer};
use tomograph_test_support::collector;

#[test]
fn db_spans_reach_the_collector_without_rejections() {
    let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_ZIPKIN_URL") else {
        return;
    };
    let backend = |encoding| {
        ZipkinBackend::builder()
            .url(url.clone())
            .encoding(encoding)
            .build()
            .expect("a valid Zipkin configuration")
    };
    tomograph::init(
        Config::builder()
            .service_name("tomograph-rusqlite-test")
            .reporter(ReporterOptions::default().batch_interval(Duration::from_millis(10)))
            .backend(backend(Encoding::JsonV2))
            .backend(backend(Encoding::ThriftV1))
            .build(),
    )
    .expect("the only tracer of this test binary");

    let mut db = TracedConnection::open_in_memory(sql_tracer().namespace("main").build()).unwrap();
    let trace = {
        let root = tomograph::span("zipkin check").root().start();
        db.execute_batch("CREATE TABLE t (x INTEGER UNIQUE)")
            .unwrap();
        let tx = db.transaction().unwrap();
        tx.execute("INSERT INTO t VALUES (?1)", [1]).unwrap();
        assert!(tx.execute("INSERT INTO t VALUES (?1)", [1]).is_err());
        tx.commit().unwrap();
        db.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap();
        root.token().unwrap().trace_id()
    };
    tomograph::flush(Duration::from_secs(10)).expect("delivered to the collector");
    let stats = tomograph::stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");

    collector::assert_no_rejections(&url);

    let spans = collector::trace(&url, trace);
    let spans = spans.as_array().expect("a JSON array of spans");
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
    for name in [
        "CREATE TABLE t",
        "BEGIN",
        "INSERT t",
        "COMMIT",
        "SELECT t",
        "TRANSACTION",
        "zipkin check",
    ] {
        assert!(!named(name).is_empty(), "no {name} span in {spans:#?}");
    }
    let insert = named("INSERT t");
    for span in &insert {
        assert_eq!(span["remoteEndpoint"]["serviceName"], "sqlite", "{span:#}");
        assert_eq!(
            span["localEndpoint"]["serviceName"],
            "tomograph-rusqlite-test"
        );
        assert_eq!(span["tags"]["db.system.name"], "sqlite");
        assert_eq!(span["tags"]["db.query.text"], "INSERT INTO t VALUES (?1)");
    }
    // The JSON v2 copy says CLIENT; the failed insert carries its error and code.
    assert!(insert.iter().any(|s| s["kind"] == "CLIENT"));
    let failed: Vec<&&Value> = insert
        .iter()
        .filter(|s| s["tags"]["error"].is_string())
        .collect();
    assert!(!failed.is_empty(), "{insert:#?}");
    assert!(
        failed
            .iter()
            .all(|s| s["tags"]["db.response.status_code"] == "SQLITE_CONSTRAINT_UNIQUE")
    );
}
