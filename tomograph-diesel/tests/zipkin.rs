//! The spans of diesel statements (a transaction, a failed statement, a refused connection)
//! are accepted by the Zipkin peer (`TOMOGRAPH_TEST_ZIPKIN_URL`, `peers/
//! zipkin-collector`), which validates them against Zipkin's official API spec.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use diesel::prelude::*;
use tomograph_diesel::DieselTracer;
use tomograph_test_support::collector;

#[test]
fn diesel_spans_are_accepted_by_the_zipkin_peer() {
    let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_ZIPKIN_URL") else {
        return;
    };
    collector::install_zipkin_tracer(&url, "tomograph-diesel-test");
    DieselTracer::from_url(":memory:")
        .install_default()
        .unwrap();

    let trace = {
        let root = tomograph::span("zipkin diesel").root().start();
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        diesel::sql_query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(&mut conn)
            .unwrap();
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::sql_query("INSERT INTO t (id) VALUES (1)").execute(conn)
        })
        .unwrap();
        assert!(
            diesel::sql_query("INSERT INTO t (id) VALUES (1)")
                .execute(&mut conn)
                .is_err()
        );
        assert!(SqliteConnection::establish("/nonexistent-dir-tomograph/x.db").is_err());
        root.token().unwrap().trace_id()
    };
    tomograph::flush(Duration::from_secs(10)).unwrap();

    // root, connect, CREATE, transaction, BEGIN, INSERT, COMMIT, INSERT (failed), connect (failed)
    let expected = 9;
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans: serde_json::Value = loop {
        let spans = collector::trace(&url, trace);
        if spans.as_array().is_some_and(|a| a.len() >= expected) || Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    collector::assert_no_rejections(&url);
    let spans = spans.as_array().unwrap();
    assert_eq!(spans.len(), expected, "{spans:#?}");
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    for name in [
        "zipkin diesel",
        "connect",
        "create table t",
        "transaction",
        "begin",
        "insert t",
        "commit",
    ] {
        assert!(
            names.iter().any(|n| n.eq_ignore_ascii_case(name)),
            "{name} in {names:?}"
        );
    }
    let failed = spans
        .iter()
        .find(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case("insert t"))
                && s["tags"]["error"].is_string()
        })
        .unwrap();
    assert_eq!(failed["kind"], "CLIENT");
    assert_eq!(failed["remoteEndpoint"]["serviceName"], "sqlite");
    assert_eq!(failed["tags"]["error.type"], "UniqueViolation");
}
