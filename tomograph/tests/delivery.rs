//! One account of every span: after a collector that refuses everything, one that refuses
//! some spans, one that hangs, one that is down, every counter of `stats()` is checked, the
//! sum rule (`accepted = sent + dropped + failed + rejected + cut + queued`) holds, and
//! `flush`/`shutdown` return the loss. Against the real collector peer
//! (`TOMOGRAPH_TEST_ZIPKIN_URL`): a 50 000-span burst with the default options arrives whole,
//! and a batch holding invalid spans (repeated annotations, zero duration) is delivered with
//! no rejection.
//!
//! The misbehaving collectors are small HTTP/1.1 servers on loopback written here.
#![cfg(feature = "zipkin")]

use std::collections::BTreeSet;
use std::error::Error as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tomograph::backend::zipkin::{Encoding, ZipkinBackend};
use tomograph::{
    BackendStats, Endpoint, FlushError, Kind, Note, Reporter, ReporterOptions, ReporterStats, Span,
    SpanId, Timestamp, TraceId,
};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// 400 to every request.
    RejectAll,
    /// 400 to a request holding a span named `poison`, 202 otherwise.
    RejectPoison,
    /// Read the request, never answer.
    Hang,
}

struct FakeCollector {
    port: u16,
    /// Span ids accepted (202).
    received: Mutex<Vec<String>>,
    requests: AtomicUsize,
}

impl FakeCollector {
    fn start(mode: Mode) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let collector = Arc::new(Self {
            port,
            received: Mutex::new(Vec::new()),
            requests: AtomicUsize::new(0),
        });
        let shared = collector.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = shared.serve(stream, mode);
                });
            }
        });
        collector
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().expect("lock").clone()
    }

    fn serve(&self, stream: TcpStream, mode: Mode) -> std::io::Result<()> {
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        loop {
            let mut length = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            self.requests.fetch_add(1, Ordering::SeqCst);
            let spans: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let spans = spans.as_array().cloned().unwrap_or_default();
            let poisoned = spans.iter().any(|s| s["name"] == "poison");
            match mode {
                Mode::Hang => {
                    // Hold the connection open, unanswered, until the client gives up.
                    let mut sink = [0u8; 64];
                    while reader.read(&mut sink)? > 0 {}
                    return Ok(());
                }
                Mode::RejectAll => writer.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 16\r\n\r\nunreadable spans",
                )?,
                Mode::RejectPoison if poisoned => writer.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 21\r\n\r\nspan named poison: no",
                )?,
                Mode::RejectPoison => {
                    let ids = spans
                        .iter()
                        .filter_map(|s| s["id"].as_str().map(str::to_owned));
                    self.received.lock().expect("lock").extend(ids);
                    writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")?;
                }
            }
        }
    }
}

fn backend(port: u16, timeout: Duration) -> ZipkinBackend {
    ZipkinBackend::builder()
        .url(format!("http://127.0.0.1:{port}"))
        .timeout(timeout)
        .build()
        .expect("backend")
}

fn quick() -> ReporterOptions {
    ReporterOptions::default()
        .batch_size(10)
        .batch_interval(Duration::from_millis(5))
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
}

fn span(trace: TraceId, name: &str) -> Span {
    let t0 = Timestamp::now();
    Span::new(
        trace,
        SpanId::random(),
        name.to_owned(),
        Endpoint::new("delivery"),
        t0,
    )
    .with_end(t0 + Duration::from_micros(40))
    .with_tag("http.method", "GET")
}

/// The sum rule, for every backend.
fn assert_account(stats: &ReporterStats) {
    for b in &stats.backends {
        assert_eq!(
            stats.accepted,
            b.sent + b.dropped + b.failed + b.rejected + b.cut + b.queued,
            "every accepted span is delivered, lost for a reason, or queued: {stats:?}"
        );
        assert_eq!(b.lost(), b.dropped + b.failed + b.rejected + b.cut);
    }
}

/// The counters of one backend, as (sent, dropped, failed, rejected, cut, queued).
fn counters(b: &BackendStats) -> (u64, u64, u64, u64, u64, u64) {
    (b.sent, b.dropped, b.failed, b.rejected, b.cut, b.queued)
}

fn wait_until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_collector_that_refuses_everything_is_counted_per_reason() {
    let collector = FakeCollector::start(Mode::RejectAll);
    let reporter = Reporter::start(
        vec![Box::new(backend(collector.port, Duration::from_secs(5)))],
        quick(),
    )
    .expect("reporter");
    let trace = TraceId::random(false);
    for _ in 0..40 {
        reporter.report(span(trace, "fine"));
    }
    let err = reporter
        .flush(Duration::from_secs(20))
        .expect_err("40 spans were refused");
    let FlushError::Lost { loss, source } = &err else {
        panic!("expected Lost, got {err:?}");
    };
    assert_eq!(loss.total(), 40, "{err}");
    assert_eq!((loss.queue_full, loss.after_shutdown), (0, 0));
    assert_eq!(loss.backends.len(), 1);
    assert_eq!(loss.backends[0].rejected, 40, "{loss:?}");
    let source = source.as_ref().expect("the collector's answer is kept");
    assert!(
        source.to_string().contains("400") && source.to_string().contains("unreadable spans"),
        "{source}"
    );
    assert!(err.source().is_some(), "the source error is chained");
    assert!(err.to_string().contains("40 rejected"), "{err}");

    let stats = reporter.stats();
    assert_eq!(stats.accepted, 40);
    assert_eq!(
        (stats.dropped, stats.queue_full, stats.after_shutdown),
        (0, 0, 0)
    );
    let b = &stats.backends[0];
    assert_eq!(counters(b), (0, 0, 0, 40, 0, 0), "{stats:?}");
    assert_eq!(b.rejections.len(), 1, "one reason: {stats:?}");
    assert_eq!(b.rejections[0].spans, 40);
    assert!(b.rejections[0].reason.contains("unreadable spans"));
    assert_account(&stats);
    // One failed delivery per batch; each batch of k spans split down to single spans:
    // 2k - 1 requests (80 - batches in all).
    assert!(b.errors >= 4, "{stats:?}");
    assert_eq!(
        collector.requests.load(Ordering::SeqCst) as u64,
        80 - b.errors,
        "{stats:?}"
    );
    // Nothing more was lost since that flush.
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");
}

#[test]
fn a_collector_that_refuses_some_spans_gets_every_other_one() {
    let collector = FakeCollector::start(Mode::RejectPoison);
    let reporter = Reporter::start(
        vec![Box::new(backend(collector.port, Duration::from_secs(5)))],
        quick().batch_size(64),
    )
    .expect("reporter");
    let trace = TraceId::random(false);
    let mut good = BTreeSet::new();
    for i in 0..200 {
        let s = span(trace, if i % 50 == 7 { "poison" } else { "fine" });
        if s.name() == "fine" {
            good.insert(s.id().to_string());
        }
        reporter.report(s);
    }
    let err = reporter
        .flush(Duration::from_secs(20))
        .expect_err("4 spans were refused");
    let loss = err.loss().expect("a loss");
    assert_eq!(loss.total(), 4, "{err}");
    assert_eq!(loss.backends[0].rejected, 4);
    assert_eq!(
        loss.backends[0].rejections[0].reason,
        "collector answered 400: span named poison: no"
    );

    let received = collector.received();
    let unique: BTreeSet<String> = received.iter().cloned().collect();
    assert_eq!(unique.len(), received.len(), "a span was delivered twice");
    assert_eq!(unique, good, "every span the collector accepts arrived");

    let stats = reporter.stats();
    assert_eq!(stats.accepted, 200);
    assert_eq!(
        counters(&stats.backends[0]),
        (196, 0, 0, 4, 0, 0),
        "{stats:?}"
    );
    assert_account(&stats);

    // The loss was reported once: the next flush covers only what came after.
    for _ in 0..10 {
        reporter.report(span(trace, "fine"));
    }
    reporter
        .flush(Duration::from_secs(20))
        .expect("nothing lost since");
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");
    let stats = reporter.stats();
    assert_eq!(
        counters(&stats.backends[0]),
        (206, 0, 0, 4, 0, 0),
        "{stats:?}"
    );
    assert_account(&stats);
}

#[test]
fn a_hanging_collector_is_cut_at_the_shutdown_deadline() {
    let collector = FakeCollector::start(Mode::Hang);
    let reporter = Reporter::start(
        // A request timeout far beyond the shutdown's: the backend stays stuck.
        vec![Box::new(backend(collector.port, Duration::from_secs(120)))],
        quick(),
    )
    .expect("reporter");
    let trace = TraceId::random(false);
    for _ in 0..50 {
        reporter.report(span(trace, "fine"));
    }
    wait_until(|| collector.requests.load(Ordering::SeqCst) >= 1);
    assert!(
        collector.requests.load(Ordering::SeqCst) >= 1,
        "the request hangs"
    );

    let err = reporter
        .shutdown(Duration::from_millis(500))
        .expect_err("nothing could be delivered");
    let FlushError::Timeout {
        unconfirmed, loss, ..
    } = &err
    else {
        panic!("expected Timeout, got {err:?}");
    };
    assert_eq!(*unconfirmed, 1);
    assert_eq!(loss.total(), 50, "{err}");
    assert_eq!(loss.backends[0].cut, 50, "{err}");
    assert!(
        err.to_string().contains("50 cut by the shutdown deadline"),
        "{err}"
    );

    let stats = reporter.stats();
    assert_eq!(stats.accepted, 50);
    assert_eq!(stats.queued, 0);
    assert_eq!(
        counters(&stats.backends[0]),
        (0, 0, 0, 0, 50, 0),
        "{stats:?}"
    );
    assert_account(&stats);
    // Later reports are refused and counted.
    reporter.report(span(trace, "late"));
    let stats = reporter.stats();
    assert_eq!((stats.after_shutdown, stats.dropped), (1, 1));
    assert_account(&stats);
}

#[test]
fn a_collector_that_is_down_fails_after_retries() {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port(); // freed: nothing listens
    let reporter = Reporter::start(
        vec![Box::new(backend(port, Duration::from_secs(2)))],
        quick().max_retries(2),
    )
    .expect("reporter");
    let trace = TraceId::random(false);
    for _ in 0..30 {
        reporter.report(span(trace, "fine"));
    }
    wait_until(|| reporter.stats().backends[0].failed == 30);
    let err = reporter
        .flush(Duration::from_secs(10))
        .expect_err("30 spans failed");
    let FlushError::Lost { loss, source } = &err else {
        panic!("expected Lost, got {err:?}");
    };
    assert_eq!(loss.total(), 30, "{err}");
    assert_eq!(loss.backends[0].failed, 30, "{err}");
    let source = source.as_ref().expect("the connection error is kept");
    assert!(source.is_retryable(), "{source}");
    assert!(err.to_string().contains("30 failed after retries"), "{err}");

    let stats = reporter.stats();
    let b = &stats.backends[0];
    assert_eq!(counters(b), (0, 0, 30, 0, 0, 0), "{stats:?}");
    // Every batch (three or more) tried three times.
    assert!(b.errors >= 9 && b.errors.is_multiple_of(3), "{stats:?}");
    assert_account(&stats);
    reporter
        .shutdown(Duration::from_secs(5))
        .expect("nothing lost since the flush");
}

// ---- against the collector peer -------------------------------------------------------

fn collector_peer() -> Option<String> {
    tomograph::testing::require_env("TOMOGRAPH_TEST_ZIPKIN_URL")
        .map(|u| u.trim_end_matches('/').to_owned())
}

fn get_json(url: &str) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = agent.get(url).call().expect("collector reachable");
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .expect("body");
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

/// The stored spans of the given traces.
fn stored(base: &str, traces: &BTreeSet<String>) -> Vec<Value> {
    get_json(&format!("{base}/_spans"))
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s["traceId"].as_str().is_some_and(|t| traces.contains(t)))
        .collect()
}

#[test]
fn a_burst_of_50_000_spans_reaches_the_collector_whole_with_default_options() {
    let Some(base) = collector_peer() else { return };
    let zipkin = ZipkinBackend::builder()
        .url(&base)
        .build()
        .expect("backend");
    let reporter = Arc::new(
        Reporter::start(vec![Box::new(zipkin)], ReporterOptions::default()).expect("reporter"),
    );
    // 500 traces of 100 spans, from 4 threads, as fast as they go.
    let traces: Vec<TraceId> = (0..500).map(|_| TraceId::random(false)).collect();
    let started = Instant::now();
    let threads: Vec<_> = traces
        .chunks(125)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            let reporter = reporter.clone();
            std::thread::spawn(move || {
                let web = Endpoint::new("burst").with_ip("10.0.0.1".parse().expect("ip"));
                for trace in chunk {
                    let root = SpanId::random();
                    for i in 0..100 {
                        let t0 = Timestamp::now();
                        let mut s = Span::new(
                            trace,
                            if i == 0 { root } else { SpanId::random() },
                            "SELECT",
                            web.clone(),
                            t0,
                        )
                        .with_kind(Kind::Client)
                        .with_end(t0 + Duration::from_micros(120))
                        .with_tag("sql.query", "SELECT id, name FROM users WHERE id = ?")
                        .with_tag("db.system.name", "postgresql")
                        .with_tag("server.port", 5432);
                        if i > 0 {
                            s = s.with_parent(root);
                        }
                        reporter.report(s);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("reporting thread");
    }
    let reported_in = started.elapsed();
    reporter
        .flush(Duration::from_secs(300))
        .expect("every span delivered, none lost");
    let stats = reporter.stats();
    eprintln!(
        "burst reported in {reported_in:?}, delivered in {:?}: {stats:?}",
        started.elapsed()
    );
    assert_eq!(stats.accepted, 50_000, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(
        counters(&stats.backends[0]),
        (50_000, 0, 0, 0, 0, 0),
        "{stats:?}"
    );
    assert_account(&stats);
    reporter
        .shutdown(Duration::from_secs(10))
        .expect("shutdown");

    let ids: BTreeSet<String> = traces.iter().map(|t| t.to_string()).collect();
    let spans = stored(&base, &ids);
    let unique: BTreeSet<(String, String)> = spans
        .iter()
        .map(|s| (s["traceId"].to_string(), s["id"].to_string()))
        .collect();
    assert_eq!(spans.len(), 50_000, "the collector holds every span");
    assert_eq!(unique.len(), 50_000, "none twice");
}

fn assert_invalid_spans_delivered(encoding: Encoding) {
    let Some(base) = collector_peer() else { return };
    let zipkin = ZipkinBackend::builder()
        .url(&base)
        .encoding(encoding)
        .build()
        .expect("backend");
    let reporter = Reporter::start(
        vec![Box::new(zipkin)],
        ReporterOptions::default().batch_size(64),
    )
    .expect("reporter");
    let trace = TraceId::random(false);
    let t0 = Timestamp::from_unix_micros(
        Timestamp::from_system_time(SystemTime::now()).unix_micros() - 1_000_000,
    );
    let retry = Note::new(t0 + Duration::from_micros(5), "retry");
    let mut batch: Vec<Span> = (0..20)
        .map(|i| {
            Span::new(
                trace,
                SpanId::random(),
                format!("good {i}"),
                Endpoint::new("svc"),
                t0,
            )
            .with_end(t0 + Duration::from_micros(30))
        })
        .collect();
    // `annotate("retry")` twice within one microsecond.
    let repeated = Span::new(
        trace,
        SpanId::random(),
        "retrying",
        Endpoint::new("svc"),
        t0,
    )
    .with_kind(Kind::Client)
    .with_annotation(retry.clone())
    .with_annotation(retry.clone())
    .with_annotation(Note::new(t0 + Duration::from_micros(5), "other"))
    .with_end(t0 + Duration::from_micros(9));
    // Ends where it starts; an empty name; a port of 0.
    let instant = Span::new(
        trace,
        SpanId::random(),
        "",
        Endpoint::new("svc").with_port(0),
        t0,
    )
    .with_kind(Kind::Server)
    .with_end(t0);
    let repeated_id = repeated.id().to_string();
    let instant_id = instant.id().to_string();
    batch.insert(7, repeated);
    batch.insert(13, instant);
    for s in &batch {
        reporter.report(s.clone());
    }
    reporter
        .flush(Duration::from_secs(30))
        .expect("nothing lost");
    let stats = reporter.stats();
    assert_eq!(
        counters(&stats.backends[0]),
        (22, 0, 0, 0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.backends[0].errors, 0, "{stats:?}");
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");

    assert_eq!(
        get_json(&format!("{base}/_errors")),
        json!([]),
        "the collector rejected something"
    );
    let spans = stored(&base, &BTreeSet::from([trace.to_string()]));
    assert_eq!(spans.len(), 22, "every span of the batch arrived");
    let by_id = |id: &str| {
        spans
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let repeated = by_id(&repeated_id);
    let values: Vec<&str> = repeated["annotations"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n["value"].as_str()).collect())
        .unwrap_or_default();
    let mut sorted = values.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["other", "retry"], "the repeat merged: {repeated}");
    let instant = by_id(&instant_id);
    assert_eq!(instant["duration"], 1, "at least 1 µs: {instant}");
}

#[test]
fn invalid_spans_cost_nothing_json_v2() {
    assert_invalid_spans_delivered(Encoding::JsonV2);
}

#[test]
fn invalid_spans_cost_nothing_thrift_v1() {
    assert_invalid_spans_delivered(Encoding::ThriftV1);
}
