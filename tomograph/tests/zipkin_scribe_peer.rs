//! The Scribe transport against the collector peer's Scribe endpoint (`peers/zipkin-collector
//! --scribe-port`: thriftpy2's server of Scribe's IDL, each message decoded by py_zipkin's
//! thrift decoder and validated against Zipkin's OpenAPI spec). The spans sent through Scribe
//! come back from the same collector's HTTP API, whole; a collector that answers TRY_LATER is
//! retried until it takes them.
#![cfg(feature = "zipkin")]

use std::time::Duration;

use serde_json::Value;
use tomograph::backend::zipkin::{Encoding, ZipkinBackend};
use tomograph::{Endpoint, Kind, Reporter, ReporterOptions, Span, SpanId, Timestamp, TraceId};
use tomograph_test_support::collector::{put, try_get_json};

fn spans(n: u64) -> (TraceId, Vec<Span>) {
    let t0 = Timestamp::now();
    let trace = TraceId::random(true);
    let spans = (1..=n)
        .map(|i| {
            Span::new(
                trace,
                SpanId::from_u64(i).expect("non-zero"),
                format!("scribe span {i} ✓"),
                Endpoint::new("scribe-peer-test").with_ip("127.0.0.1".parse().expect("ip")),
                t0,
            )
            .with_kind(Kind::Client)
            .with_remote_endpoint(Endpoint::new("postgresql").with_port(5432))
            .with_tag("i", i as i64)
            .with_end(t0 + Duration::from_micros(i * 10))
        })
        .collect();
    (trace, spans)
}

/// Sends `spans` through Scribe and returns them as the collector stored them.
fn send_and_read(scribe: &str, base: &str, trace: TraceId, spans: Vec<Span>) -> Vec<Value> {
    let backend = ZipkinBackend::builder()
        .encoding(Encoding::Scribe)
        .scribe_addr(scribe)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("backend");
    let options = ReporterOptions::default()
        .batch_size(10)
        .max_retries(100)
        .backoff(Duration::from_millis(10), Duration::from_millis(50));
    let reporter = Reporter::start(vec![Box::new(backend)], options).expect("reporter");
    let n = spans.len();
    for span in spans {
        reporter.report(span);
    }
    // Retries (TRY_LATER) are paced by the backoff: wait for the collector to have them all.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let stored = loop {
        let (_, stored) = try_get_json(&format!("{base}/api/v2/trace/{trace}"));
        let stored = stored.as_array().cloned().unwrap_or_default();
        if stored.len() >= n || std::time::Instant::now() > deadline {
            break stored;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    reporter
        .shutdown(Duration::from_secs(5))
        .expect("every span delivered");
    assert_eq!(stored.len(), n, "every span arrived once: {stored:?}");
    stored
}

#[test]
fn spans_sent_through_scribe_reach_the_collector_whole() {
    let Some(scribe) = tomograph::testing::require_env("TOMOGRAPH_TEST_SCRIBE_ADDR") else {
        return;
    };
    let Some(base) = tomograph::testing::require_env("TOMOGRAPH_TEST_ZIPKIN_URL") else {
        return;
    };
    let base = base.trim_end_matches('/');

    let (trace, sent) = spans(25);
    let stored = send_and_read(&scribe, base, trace, sent.clone());
    for span in &sent {
        let got = stored
            .iter()
            .find(|s| s["id"] == format!("{}", span.id()))
            .expect("span stored");
        assert_eq!(got["traceId"], trace.to_string());
        assert_eq!(got["name"], span.name());
        assert_eq!(got["kind"], "CLIENT");
        assert_eq!(got["localEndpoint"]["serviceName"], "scribe-peer-test");
        assert_eq!(got["remoteEndpoint"]["serviceName"], "postgresql");
        assert_eq!(got["remoteEndpoint"]["port"], 5432);
        let i = span.id().get();
        assert_eq!(got["tags"]["i"], i.to_string());
        assert_eq!(got["duration"], i * 10);
    }

    // The collector refuses the next three calls with TRY_LATER: they are retried.
    put(&format!("{base}/_scribe/try-later/3"));
    let (trace, sent) = spans(30);
    send_and_read(&scribe, base, trace, sent);

    let (_, errors) = try_get_json(&format!("{base}/_errors"));
    let scribe_errors: Vec<&Value> = errors
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e.to_string().contains("scribe"))
                .collect()
        })
        .unwrap_or_default();
    assert!(scribe_errors.is_empty(), "rejected: {scribe_errors:?}");
}
