//! The bridges, side by side in one run: a `tracing` child span (created, entered, exited,
//! closed) through `TomographLayer`, through `tracing-opentelemetry` (batch processor, no-op
//! exporter) and through fastrace's compat layer (`fastrace-tracing`, no-op reporter), over
//! a bare `Registry` as the floor; a `tracing` event inside a bridged span; and `log` records
//! through `NoteLogger`, at and below its level. Child spans run 256 to a fresh root.
//!
//! Run: `cargo bench -p tomograph-tracing --bench bridge`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fastrace_tracing::FastraceCompatLayer;
use tomograph_test_support::bench::install_tomograph;
use tomograph_test_support::bench::peers::{
    chunked, install_fastrace, keep, otel_dispatch, tomograph_root,
};
use tomograph_tracing::{NoteLogger, TomographLayer};
use tracing_subscriber::layer::SubscriberExt;

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

fn tracing_root(body: &mut dyn FnMut()) {
    let root = tracing::info_span!(parent: None, "root");
    let _e = root.enter();
    body();
}

fn benches(c: &mut Criterion) {
    install_tomograph();
    install_fastrace();
    let otel = otel_dispatch();
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
}

criterion_group! {
    name = bridge;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(bridge);
