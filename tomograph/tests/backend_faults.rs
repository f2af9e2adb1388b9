//! The Zipkin backend when the collector misbehaves: down, answering 500, refusing the data,
//! hanging. The application never blocks and never sees an error, delivery resumes when the
//! collector comes back, every span is either delivered or counted, shutdown waits at most
//! its timeout, and memory stays bounded by the queues.
//!
//! The collector here is a small HTTP/1.1 server on loopback whose behavior the test switches.
#![cfg(feature = "zipkin")]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tomograph::backend::zipkin::ZipkinBackend;
use tomograph::{Endpoint, Reporter, ReporterOptions, Span, SpanId, Timestamp, TraceId};

const OK: u8 = 0;
const FAIL_500: u8 = 1;
const STALL: u8 = 2;
const REJECT_400: u8 = 3;

struct Collector {
    mode: AtomicU8,
    /// Span ids accepted (202), in arrival order.
    received: Mutex<Vec<String>>,
    requests: AtomicUsize,
    connections: AtomicUsize,
}

impl Collector {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
    fn received(&self) -> Vec<String> {
        self.received.lock().expect("lock").clone()
    }
}

fn start_collector(listener: TcpListener, mode: u8) -> Arc<Collector> {
    let collector = Arc::new(Collector {
        mode: AtomicU8::new(mode),
        received: Mutex::new(Vec::new()),
        requests: AtomicUsize::new(0),
        connections: AtomicUsize::new(0),
    });
    let shared = collector.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let shared = shared.clone();
            shared.connections.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = serve(stream, &shared);
            });
        }
    });
    collector
}

fn serve(stream: TcpStream, collector: &Collector) -> std::io::Result<()> {
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
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        collector.requests.fetch_add(1, Ordering::SeqCst);
        match collector.mode.load(Ordering::SeqCst) {
            STALL => {
                // Hold the request unanswered until the test lets go, then hang up.
                while collector.mode.load(Ordering::SeqCst) == STALL {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return Ok(());
            }
            FAIL_500 => writer.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
            )?,
            REJECT_400 => {
                writer.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad")?
            }
            _ => {
                let spans: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let ids: Vec<String> = spans
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s["id"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                collector.received.lock().expect("lock").extend(ids);
                writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")?;
            }
        }
    }
}

/// A port nothing listens on (bound, then freed).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn backend(port: u16, timeout: Duration) -> ZipkinBackend {
    ZipkinBackend::builder()
        .url(format!("http://127.0.0.1:{port}"))
        .timeout(timeout)
        .build()
        .expect("backend")
}

fn patient() -> ReporterOptions {
    ReporterOptions::default()
        .batch_size(10)
        .batch_interval(Duration::from_millis(5))
        .max_retries(10_000)
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
}

fn spans(n: u64) -> Vec<Span> {
    let trace = TraceId::random(false);
    let t0 = Timestamp::now();
    (0..n)
        .map(|_| {
            Span::new(
                trace,
                SpanId::random(),
                "faulty",
                Endpoint::new("faults"),
                t0,
            )
            .with_end(t0 + Duration::from_micros(3))
        })
        .collect()
}

fn ids(spans: &[Span]) -> BTreeSet<String> {
    spans.iter().map(|s| s.id().to_string()).collect()
}

/// Waits (at most 30 s) until `done`, flushing now and then.
fn wait_until(reporter: &Reporter, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() && Instant::now() < deadline {
        let _ = reporter.flush(Duration::from_millis(200));
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every span received exactly once, and exactly the ones sent.
fn assert_exactly(collector: &Collector, sent: &[Span]) {
    let received = collector.received();
    let unique: BTreeSet<String> = received.iter().cloned().collect();
    assert_eq!(unique.len(), received.len(), "a span was delivered twice");
    assert_eq!(unique, ids(sent));
}

#[test]
fn collector_down_then_back() {
    let port = free_port();
    let reporter = Reporter::start(
        vec![Box::new(backend(port, Duration::from_secs(5)))],
        patient(),
    )
    .expect("reporter");
    let sent = spans(100);
    for span in &sent {
        reporter.report(span.clone());
    }
    assert!(
        reporter.flush(Duration::from_secs(2)).is_err(),
        "nothing listens yet"
    );
    assert_eq!(reporter.stats().backends[0].sent, 0);

    let collector = start_collector(TcpListener::bind(("127.0.0.1", port)).expect("rebind"), OK);
    wait_until(&reporter, || reporter.stats().backends[0].sent == 100);
    reporter
        .flush(Duration::from_secs(5))
        .expect("delivered after recovery");
    let stats = reporter.stats();
    assert_eq!(stats.backends[0].sent, 100, "{stats:?}");
    assert!(stats.backends[0].errors >= 1, "{stats:?}");
    assert_eq!(
        stats.backends[0].failed + stats.backends[0].dropped + stats.dropped,
        0,
        "{stats:?}"
    );
    assert_exactly(&collector, &sent);
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");
}

#[test]
fn one_connection_is_reused_between_batches() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let collector = start_collector(listener, OK);
    let reporter = Reporter::start(
        vec![Box::new(backend(port, Duration::from_secs(5)))],
        patient(),
    )
    .expect("reporter");
    let sent = spans(50);
    for chunk in sent.chunks(10) {
        for span in chunk {
            reporter.report(span.clone());
        }
        reporter.flush(Duration::from_secs(10)).expect("delivered");
    }
    assert_exactly(&collector, &sent);
    assert!(collector.requests.load(Ordering::SeqCst) >= 5);
    assert_eq!(collector.connections.load(Ordering::SeqCst), 1);
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");
}

#[test]
fn server_errors_are_retried_then_delivered() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let collector = start_collector(listener, FAIL_500);
    let reporter = Reporter::start(
        vec![Box::new(backend(port, Duration::from_secs(5)))],
        patient(),
    )
    .expect("reporter");
    let sent = spans(20);
    for span in &sent {
        reporter.report(span.clone());
    }
    wait_until(&reporter, || reporter.stats().backends[0].errors >= 3);
    assert_eq!(reporter.stats().backends[0].sent, 0);
    assert!(collector.received().is_empty());
    collector.set(OK);
    wait_until(&reporter, || reporter.stats().backends[0].sent == 20);
    let stats = reporter.stats();
    assert_eq!(stats.backends[0].sent, 20, "{stats:?}");
    assert!(stats.backends[0].errors >= 3, "{stats:?}");
    assert_eq!(stats.backends[0].failed, 0, "{stats:?}");
    assert_exactly(&collector, &sent);
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");
}

#[test]
fn refused_data_is_counted_not_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let collector = start_collector(listener, REJECT_400);
    let reporter = Reporter::start(
        vec![Box::new(backend(port, Duration::from_secs(5)))],
        patient(),
    )
    .expect("reporter");
    for span in spans(10) {
        reporter.report(span);
    }
    // The refused batch is given up on at once: nothing is left pending, and the flush
    // reports the loss.
    let err = reporter
        .flush(Duration::from_secs(10))
        .expect_err("the refused spans are reported");
    assert!(
        matches!(&err, tomograph::FlushError::Lost { loss, .. } if loss.total() == 10),
        "{err:?}"
    );
    let stats = reporter.stats();
    assert_eq!(stats.backends[0].rejected, 10, "{stats:?}");
    assert_eq!(stats.backends[0].failed, 0, "{stats:?}");
    assert_eq!(stats.backends[0].queued, 0, "{stats:?}");
    assert_eq!(
        stats.backends[0].errors, 1,
        "one failed delivery, no retry: {stats:?}"
    );
    assert_eq!(stats.backends[0].sent, 0, "{stats:?}");
    // No retry of the same bytes; the batch is split down to single spans (2n - 1 requests)
    // to deliver whatever the collector accepts.
    assert_eq!(collector.requests.load(Ordering::SeqCst), 19);
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");
}

#[test]
fn hanging_collector_never_blocks_the_application_and_every_span_is_counted() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let collector = start_collector(listener, STALL);
    let options = patient()
        .batch_size(100)
        .queue_capacity(1_000)
        .backend_buffer_spans(500);
    // A long request timeout: only the queues keep the application going.
    let reporter = Arc::new(
        Reporter::start(
            vec![Box::new(backend(port, Duration::from_secs(60)))],
            options,
        )
        .expect("reporter"),
    );
    const N: u64 = 100_000;
    let template = spans(1).remove(0);
    let (done_tx, done_rx) = mpsc::channel();
    let app = {
        let reporter = reporter.clone();
        std::thread::spawn(move || {
            for _ in 0..N {
                reporter.report(template.clone());
            }
            let _ = done_tx.send(());
        })
    };
    // The application thread finishes while the collector still hangs.
    done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("report() never blocks on a hanging collector");
    app.join().expect("app thread");
    assert!(collector.requests.load(Ordering::SeqCst) >= 1);
    assert!(
        reporter.stats().backends[0].sent == 0,
        "the collector has answered nothing yet"
    );
    let stats = reporter.stats();
    assert_eq!(
        stats.accepted + stats.dropped,
        N,
        "every report() counted: {stats:?}"
    );
    assert!(
        stats.dropped + stats.backends[0].dropped > 0,
        "overflow was counted: {stats:?}"
    );

    collector.set(OK);
    let settled = || {
        let s = reporter.stats();
        let b = &s.backends[0];
        s.queued == 0 && s.accepted == b.sent + b.dropped + b.failed
    };
    wait_until(&reporter, settled);
    let stats = reporter.stats();
    let b = &stats.backends[0];
    assert_eq!(
        stats.accepted,
        b.sent + b.dropped + b.failed,
        "every span delivered or counted: {stats:?}"
    );
    assert_eq!(
        collector.received().len() as u64,
        b.sent,
        "sent means received: {stats:?}"
    );
    assert!(b.sent > 0, "delivery resumed: {stats:?}");
    reporter.shutdown(Duration::from_secs(5)).expect("shutdown");
}

#[test]
fn shutdown_waits_at_most_its_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let collector = start_collector(listener, STALL);
    let reporter = Reporter::start(
        vec![Box::new(backend(port, Duration::from_secs(60)))],
        patient(),
    )
    .expect("reporter");
    for span in spans(10) {
        reporter.report(span);
    }
    // Let the backend get stuck in its request.
    let deadline = Instant::now() + Duration::from_secs(30);
    while collector.requests.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let result = reporter.shutdown(Duration::from_millis(300));
    let waited = started.elapsed();
    assert!(result.is_err(), "the hanging batch cannot be confirmed");
    // Generous bound: far below the 60 s request timeout the backend is stuck in.
    assert!(
        waited < Duration::from_secs(20),
        "shutdown waited {waited:?}"
    );
    collector.set(OK);
}

/// Peak resident memory of this process, in bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn memory_stays_bounded_with_the_collector_down() {
    let Some(before) = peak_rss() else {
        eprintln!("SKIP memory_stays_bounded_with_the_collector_down: no /proc/self/status");
        return;
    };
    let reporter = Reporter::start(
        vec![Box::new(backend(free_port(), Duration::from_secs(1)))],
        ReporterOptions::default(),
    )
    .expect("reporter");
    const N: usize = 1_000_000;
    let template = spans(1).remove(0).with_tag("k", "some value");
    for _ in 0..N {
        reporter.report(template.clone());
    }
    let grown = peak_rss().unwrap_or(before).saturating_sub(before);
    let unbounded = (N * std::mem::size_of::<Span>()) as u64;
    let stats = reporter.stats();
    assert_eq!(stats.accepted + stats.dropped, N as u64);
    assert!(
        grown < unbounded / 2,
        "peak memory grew by {grown} bytes; keeping every span would take {unbounded}"
    );
    let _ = reporter.shutdown(Duration::from_millis(100));
}
