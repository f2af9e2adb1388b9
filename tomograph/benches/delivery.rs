//! The delivery path: throughput and memory (numbers in BENCHMARKS.md, "Delivery").
//!
//! `cargo bench -p tomograph --bench delivery -- <scenario>`, one scenario per process (peak
//! RSS is per process):
//!
//! - `discard`: spans/s through `Reporter::report` to a discarding backend (40 bursts of
//!   50 000 spans from 4 threads, each flushed).
//! - `collector`: the burst — 500 traces × 100 spans from 4 threads — to the Zipkin
//!   collector at `TOMOGRAPH_TEST_ZIPKIN_URL`, with the default options; time to report and
//!   to deliver, and the account.
//! - `full-queue`: the default queue filled (a collector that accepts connections and never
//!   answers holds the dispatcher back), then peak RSS (`VmHWM`).
//! - `down`: 1 M spans reported as fast as possible with nothing listening; peak RSS.
//!
//! - `cost`: the bytes a queued span costs: `size_of::<Span>()` plus the heap of
//!   the typical span's tags (the resident memory 200 000 clones add, per clone, less their
//!   slots).

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tomograph::backend::zipkin::ZipkinBackend;
use tomograph::testing::DiscardBackend;
use tomograph::{Endpoint, Kind, Reporter, ReporterOptions, Span, SpanId, Timestamp, TraceId};

/// A SQL client span as the adapters make it: 3 tags, one of them the statement (owned).
fn typical_span(trace: TraceId, parent: Option<SpanId>) -> Span {
    let t0 = Timestamp::now();
    let s = Span::new(
        trace,
        SpanId::random(),
        "SELECT",
        Endpoint::new("burst").with_ip("10.0.0.1".parse().expect("ip")),
        t0,
    )
    .with_kind(Kind::Client)
    .with_end(t0 + Duration::from_micros(120))
    .with_tag(
        "sql.query",
        String::from("SELECT id, name FROM users WHERE id = ?"),
    )
    .with_tag("db.system.name", "postgresql")
    .with_tag("server.port", 5432);
    match parent {
        Some(p) => s.with_parent(p),
        None => s,
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn span_cost() {
    const N: usize = 200_000;
    let template = typical_span(TraceId::random(false), None);
    let before = rss_kib();
    let copies: Vec<Span> = (0..N).map(|_| template.clone()).collect();
    let per_span = (rss_kib() - before) as f64 * 1024.0 / N as f64;
    let heap = per_span - std::mem::size_of::<Span>() as f64;
    drop(copies);
    println!(
        "span cost: size_of::<Span>() = {} B, queue slot {} B, heap of the typical span's tags ≈ {heap:.0} B \
         (resident memory of {N} clones: {per_span:.0} B each)",
        std::mem::size_of::<Span>(),
        std::mem::size_of::<Span>() + 8,
    );
}

/// Reports 500 traces × 100 spans from 4 threads; returns the time it took.
fn burst(reporter: &Arc<Reporter>, traces: usize) -> Duration {
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let reporter = reporter.clone();
            std::thread::spawn(move || {
                for _ in 0..traces / 4 {
                    let trace = TraceId::random(false);
                    let root = SpanId::random();
                    for i in 0..100 {
                        reporter.report(typical_span(trace, (i > 0).then_some(root)));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    started.elapsed()
}

fn main() {
    let scenario = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "discard".into());
    let rss_start = peak_rss_kib();
    match scenario.as_str() {
        "cost" => span_cost(),
        "discard" => {
            let reporter = Arc::new(
                Reporter::start(
                    vec![Box::new(DiscardBackend::default())],
                    ReporterOptions::default(),
                )
                .expect("reporter"),
            );
            // 40 bursts of 50 000 spans (4 threads), each flushed: lossless throughput.
            let started = Instant::now();
            let mut results = Vec::new();
            for _ in 0..40 {
                burst(&reporter, 500);
                results.push(reporter.flush(Duration::from_secs(60)).is_ok());
            }
            let total = started.elapsed();
            let stats = reporter.stats();
            println!(
                "discard: 40 × 50 000 spans from 4 threads, each burst flushed, in {total:?}: {:.2} M spans/s; \
                 flushes Ok: {}/40; accepted {} queue_full {} sent {}",
                stats.backends[0].sent as f64 / total.as_secs_f64() / 1e6,
                results.iter().filter(|ok| **ok).count(),
                stats.accepted,
                stats.queue_full,
                stats.backends[0].sent
            );
        }
        "collector" => {
            let Ok(url) = std::env::var("TOMOGRAPH_TEST_ZIPKIN_URL") else {
                println!("collector: TOMOGRAPH_TEST_ZIPKIN_URL is not set");
                return;
            };
            let zipkin = ZipkinBackend::builder().url(url).build().expect("backend");
            let reporter = Arc::new(
                Reporter::start(vec![Box::new(zipkin)], ReporterOptions::default())
                    .expect("reporter"),
            );
            let reported = burst(&reporter, 500);
            let flush = Instant::now();
            let result = reporter.flush(Duration::from_secs(300));
            let total = reported + flush.elapsed();
            let stats = reporter.stats();
            println!(
                "collector: 50 000 spans from 4 threads reported in {reported:?}, delivered in {total:?}: \
                 {:.0} spans/s; {result:?}; peak RSS +{} KiB; {stats:?}",
                50_000.0 / total.as_secs_f64(),
                peak_rss_kib() - rss_start,
            );
        }
        "full-queue" => {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("addr").port();
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for mut stream in listener.incoming().flatten() {
                    let mut buf = [0u8; 65536];
                    let _ = stream.read(&mut buf);
                    held.push(stream); // never answered
                }
            });
            let zipkin = ZipkinBackend::builder()
                .url(format!("http://127.0.0.1:{port}"))
                .timeout(Duration::from_secs(600))
                .build()
                .expect("backend");
            let options = ReporterOptions::default();
            let reporter =
                Arc::new(Reporter::start(vec![Box::new(zipkin)], options).expect("reporter"));
            let capacity = reporter.queue_capacity();
            burst(&reporter, 1_000); // 100 000 spans: more than the queue holds
            std::thread::sleep(Duration::from_millis(200));
            let stats = reporter.stats();
            println!(
                "full-queue: queue {}/{capacity}, accepted {}, queue_full {}; peak RSS {rss_start} KiB -> {} KiB (+{} KiB)",
                stats.queued,
                stats.accepted,
                stats.queue_full,
                peak_rss_kib(),
                peak_rss_kib() - rss_start
            );
            let result = reporter.shutdown(Duration::from_millis(200));
            println!("full-queue: shutdown: {result:?}");
        }
        "down" => {
            let port = TcpListener::bind("127.0.0.1:0")
                .expect("bind")
                .local_addr()
                .expect("addr")
                .port();
            let zipkin = ZipkinBackend::builder()
                .url(format!("http://127.0.0.1:{port}"))
                .build()
                .expect("backend");
            let reporter = Arc::new(
                Reporter::start(vec![Box::new(zipkin)], ReporterOptions::default())
                    .expect("reporter"),
            );
            let reported = burst(&reporter, 10_000);
            let stats = reporter.stats();
            println!(
                "down: 1 000 000 spans reported in {reported:?}; accepted {}, queue_full {}, backend dropped {}, \
                 queued {}; peak RSS {rss_start} KiB -> {} KiB (+{} KiB)",
                stats.accepted,
                stats.queue_full,
                stats.backends[0].dropped,
                stats.backends[0].queued,
                peak_rss_kib(),
                peak_rss_kib() - rss_start
            );
            let result = reporter.shutdown(Duration::from_millis(200));
            println!(
                "down: shutdown: {result}",
                result = match result {
                    Ok(()) => "Ok".to_owned(),
                    Err(e) => e.to_string(),
                }
            );
        }
        other => println!("unknown scenario {other}: cost, discard, collector, full-queue, down"),
    }
}
