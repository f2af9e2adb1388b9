//! The bridges, side by side in one run: a `tracing` child span (created, entered, exited,
//! closed) through `TomographLayer`, through `tracing-opentelemetry` (batch processor, no-op
//! exporter) and through fastrace's compat layer (`fastrace-tracing`, no-op reporter), over
//! a bare `Registry` as the floor; a `tracing` event inside a bridged span; and `log` records
//! through `NoteLogger`, at and below its level. Child spans run 256 to a fresh root.
//!
//! Run: `cargo bench -p tomograph-tracing --bench bridge`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use fastrace_tracing::FastraceCompatLayer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tomograph::testing::DiscardBackend;
use tomograph::{Config, ReporterOptions};
use tomograph_tracing::{NoteLogger, TomographLayer};
use tracing_subscriber::layer::SubscriberExt;

const CHUNK: u64 = 256;

struct NullFastraceReporter;
impl fastrace::collector::Reporter for NullFastraceReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        black_box(spans.len());
    }
}

#[derive(Debug)]
struct NullExporter;
impl SpanExporter for NullExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch.len());
        Ok(())
    }
}

/// The application's logger: prints nothing.
struct NullLogger;
impl log::Log for NullLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        false
    }
    fn log(&self, record: &log::Record<'_>) {
        black_box(record.level());
    }
    fn flush(&self) {}
}

/// Times `op` `iters` times, in chunks run inside `scope` (which sets up a fresh root).
fn chunked(iters: u64, mut scope: impl FnMut(&mut dyn FnMut()), mut op: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = CHUNK.min(iters - done);
        scope(&mut || {
            let start = Instant::now();
            for _ in 0..n {
                op();
            }
            total += start.elapsed();
        });
        done += n;
    }
    total
}

fn tracing_root(body: &mut dyn FnMut()) {
    let root = tracing::info_span!(parent: None, "root");
    let _e = root.enter();
    body();
}

fn tomograph_root(body: &mut dyn FnMut()) {
    let _root = tomograph::span("root").root().start();
    body();
}

#[inline(always)]
fn keep<T>(value: T) {
    black_box(&value);
    drop(value);
}

fn benches(c: &mut Criterion) {
    tomograph::init(
        Config::builder()
            .service_name("bench")
            .reporter(ReporterOptions::default().queue_capacity(65_536))
            .backend(DiscardBackend::default())
            .build(),
    )
    .expect("tracer installs once");
    fastrace::set_reporter(NullFastraceReporter, fastrace::collector::Config::default());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(NullExporter)
        .build();
    let otel = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
    );
    let bridge = tracing::Dispatch::new(tracing_subscriber::registry().with(TomographLayer::new()));
    let fastrace_default =
        tracing::Dispatch::new(tracing_subscriber::registry().with(FastraceCompatLayer::new()));
    let fastrace_bare = tracing::Dispatch::new(
        tracing_subscriber::registry().with(
            FastraceCompatLayer::new()
                .with_location(false)
                .with_threads(false),
        ),
    );
    let registry = tracing::Dispatch::new(tracing_subscriber::registry());

    let mut g = c.benchmark_group("tracing_child_span");
    for (name, dispatch) in [
        ("tomograph_bridge", &bridge),
        ("fastrace_tracing_bare", &fastrace_bare),
        ("fastrace_tracing_default", &fastrace_default),
        ("tracing_opentelemetry", &otel),
        ("registry_only", &registry),
    ] {
        g.bench_function(name, |b| {
            tracing::dispatcher::with_default(dispatch, || {
                b.iter_custom(|n| {
                    chunked(n, tracing_root, || {
                        keep(tracing::info_span!("child").entered())
                    })
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("tracing_event_note");
    for (name, dispatch) in [
        ("tomograph_bridge", &bridge),
        ("fastrace_tracing_bare", &fastrace_bare),
        ("tracing_opentelemetry", &otel),
    ] {
        g.bench_function(name, |b| {
            tracing::dispatcher::with_default(dispatch, || {
                b.iter_custom(|n| chunked(n, tracing_root, || tracing::info!(rows = 3, "loaded")))
            })
        });
    }
    g.finish();

    NoteLogger::new(NullLogger)
        .level(log::LevelFilter::Warn)
        .install()
        .expect("logger installs once");
    log::set_max_level(log::LevelFilter::Info);
    let mut g = c.benchmark_group("log_record");
    g.bench_function("warn_to_note", |b| {
        b.iter_custom(|n| chunked(n, tomograph_root, || log::warn!("disk almost full")))
    });
    g.bench_function("info_below_level", |b| {
        b.iter_custom(|n| chunked(n, tomograph_root, || log::info!("request served")))
    });
    g.bench_function("tomograph_annotate", |b| {
        b.iter_custom(|n| {
            chunked(n, tomograph_root, || {
                tomograph::annotate("disk almost full")
            })
        })
    });
    g.finish();
    drop(provider);
}

criterion_group! {
    name = bridge;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(bridge);
