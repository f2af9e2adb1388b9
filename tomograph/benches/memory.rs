//! Memory with the collector down, side by side: tomograph (Zipkin backend, default reporter
//! options), fastrace (its global collector, default config, with a reporter that tries the
//! collector and drops the batch when it is refused — what fastrace's reporters do on an
//! error), and `tracing` + `tracing-opentelemetry` (the SDK's batch processor with its default
//! bounded queue, an exporter that tries the collector and fails). The collector is a port on
//! loopback where nothing listens.
//!
//! Each implementation runs in a fresh process (this binary re-executes itself) and produces
//! the same load as fast as one thread can: 10 000 traces of 100 spans (a root and 99
//! children), each span with one tag. The process reports its resident memory before the load
//! and its peak (`VmHWM` in `/proc/self/status`) after it; the parent prints a table.
//!
//! Run: `cargo bench -p tomograph --bench memory`.

use std::hint::black_box;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

const TRACES: usize = 10_000;
const SPANS_PER_TRACE: usize = 100;
const ARM: &str = "TOMOGRAPH_MEMORY_ARM";
const URL: &str = "TOMOGRAPH_MEMORY_DEAD_URL";

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// What an exporter does with the collector down: connection refused, batch dropped.
fn try_collector(url: &str) -> bool {
    let addr = url.trim_start_matches("http://");
    std::net::TcpStream::connect_timeout(
        &addr.parse().expect("socket address"),
        Duration::from_secs(1),
    )
    .is_ok()
}

struct DeadFastraceReporter(String);
impl fastrace::collector::Reporter for DeadFastraceReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        black_box(try_collector(&self.0));
        drop(spans);
    }
}

#[derive(Debug)]
struct DeadExporter(String);
impl opentelemetry_sdk::trace::SpanExporter for DeadExporter {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        drop(batch);
        if try_collector(&self.0) {
            Ok(())
        } else {
            Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                "connection refused".into(),
            ))
        }
    }
}

/// Runs one implementation's load in this process; prints `before peak held_bound notes`.
fn child(arm: &str, url: &str) {
    let before;
    let mut bound = String::from("-");
    let mut notes = String::new();
    let start = Instant::now();
    match arm {
        "tomograph" => {
            let options = tomograph::ReporterOptions::default();
            let tracer = tomograph::init(
                tomograph::Config::builder()
                    .service_name("memory")
                    .reporter(options)
                    .backend(
                        tomograph::backend::zipkin::ZipkinBackend::builder()
                            .url(url)
                            .build()
                            .expect("backend"),
                    )
                    .build(),
            )
            .expect("tracer");
            bound = format!(
                "{} queue + {} retry buffer",
                tracer.reporter().queue_capacity(),
                16_384
            );
            before = status_kib("VmRSS:");
            for _ in 0..TRACES {
                let _root = tomograph::span("root")
                    .root()
                    .tag("db.statement", "SELECT 1")
                    .start();
                for _ in 1..SPANS_PER_TRACE {
                    let _child = tomograph::span("child")
                        .tag("db.statement", "SELECT 1")
                        .start();
                }
            }
            let stats = tomograph::stats();
            notes = format!(
                "accepted {}, dropped at queue {}, dropped/failed by backend {}/{}",
                stats.accepted,
                stats.dropped,
                stats.backends.first().map_or(0, |b| b.dropped),
                stats.backends.first().map_or(0, |b| b.failed)
            );
        }
        "fastrace" => {
            fastrace::set_reporter(
                DeadFastraceReporter(url.to_owned()),
                fastrace::collector::Config::default(),
            );
            before = status_kib("VmRSS:");
            for _ in 0..TRACES {
                let root = fastrace::Span::root("root", fastrace::collector::SpanContext::random())
                    .with_property(|| ("db.statement", "SELECT 1"));
                let _parent = root.set_local_parent();
                for _ in 1..SPANS_PER_TRACE {
                    let _child = fastrace::local::LocalSpan::enter_with_local_parent("child")
                        .with_property(|| ("db.statement", "SELECT 1"));
                }
            }
            bound = "10240 span sets per thread".into();
        }
        "tracing-opentelemetry" => {
            use opentelemetry::trace::TracerProvider as _;
            use tracing_subscriber::layer::SubscriberExt;
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(DeadExporter(url.to_owned()))
                .build();
            let subscriber = tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("memory")));
            tracing::subscriber::set_global_default(subscriber).expect("subscriber");
            bound = "2048 queue (SDK default)".into();
            before = status_kib("VmRSS:");
            for _ in 0..TRACES {
                let root = tracing::info_span!(parent: None, "root", db.statement = "SELECT 1");
                let _root = root.enter();
                for _ in 1..SPANS_PER_TRACE {
                    let child = tracing::info_span!("child", db.statement = "SELECT 1");
                    let _child = child.enter();
                }
            }
            std::mem::forget(provider);
        }
        _ => {
            before = status_kib("VmRSS:");
        }
    }
    let elapsed = start.elapsed();
    // Let the background threads take what was queued at the end of the load.
    std::thread::sleep(Duration::from_millis(1500));
    println!(
        "{before}\t{}\t{}\t{:.2}\t{bound}\t{notes}",
        status_kib("VmHWM:"),
        status_kib("VmRSS:"),
        elapsed.as_secs_f64()
    );
}

fn main() {
    if let (Ok(arm), Ok(url)) = (std::env::var(ARM), std::env::var(URL)) {
        child(&arm, &url);
        return;
    }
    // A port where nothing listens.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let exe = std::env::current_exe().expect("this binary");
    let spans = TRACES * SPANS_PER_TRACE;
    println!(
        "{spans} spans ({TRACES} traces of {SPANS_PER_TRACE}), one tag each, collector down ({url})"
    );
    println!(
        "| implementation | RSS before load | peak RSS (VmHWM) | peak − before | RSS 1.5 s after | load time | held at most | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for arm in ["none", "tomograph", "fastrace", "tracing-opentelemetry"] {
        let out = Command::new(&exe)
            .env(ARM, arm)
            .env(URL, &url)
            .output()
            .expect("child process");
        let line = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = line.trim_end_matches(['\n', '\r']).split('\t').collect();
        if f.len() < 6 || !out.status.success() {
            println!(
                "| {arm} | failed: {} {} |",
                line.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            continue;
        }
        let before: u64 = f[0].parse().unwrap_or(0);
        let peak: u64 = f[1].parse().unwrap_or(0);
        println!(
            "| {arm} | {before} KiB | {peak} KiB | +{} KiB | {} KiB | {} s | {} | {} |",
            peak.saturating_sub(before),
            f[2],
            f[3],
            f[4],
            f[5]
        );
    }
}
