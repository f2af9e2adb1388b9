//! The benchmarks' peers (feature `peers`): no-op sinks for fastrace and OpenTelemetry, and
//! the span benchmarks' timing in chunks under a fresh root.

use std::hint::black_box;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt;

/// Operations timed under one root: no implementation accumulates unbounded state.
pub const CHUNK: u64 = 256;

/// fastrace's reporter that keeps nothing (it counts the spans: [`fastrace_reported`]).
#[derive(Debug)]
pub struct NullFastraceReporter;

static FASTRACE_SPANS: AtomicU64 = AtomicU64::new(0);

impl fastrace::collector::Reporter for NullFastraceReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        FASTRACE_SPANS.fetch_add(spans.len() as u64, Ordering::Relaxed);
    }
}

/// Checks, before a benchmark measures an arm, that it records what it claims: `recorded`
/// things (spans, events) over `statements` statements, at least one each. Prints the rate;
/// panics below one, so that a tracer recording nothing is never timed as a cheap one.
pub fn assert_recorded(title: &str, what: &str, recorded: u64, statements: u32) {
    let per_statement = recorded as f64 / f64::from(statements);
    eprintln!("{title}: {what} per statement: {per_statement:.4}");
    assert!(
        per_statement >= 1.0,
        "{title}: {what}: fewer than one per statement"
    );
}

/// Spans fastrace reported to [`NullFastraceReporter`] so far, after flushing its collector.
pub fn fastrace_reported() -> u64 {
    fastrace::flush();
    FASTRACE_SPANS.load(Ordering::Relaxed)
}

/// OpenTelemetry's exporter that keeps nothing (it counts what it was given:
/// [`otel_exported`]).
#[derive(Debug)]
pub struct NullExporter;

static EXPORTED_SPANS: AtomicU64 = AtomicU64::new(0);
static EXPORTED_EVENTS: AtomicU64 = AtomicU64::new(0);

impl SpanExporter for NullExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let events: u64 = batch
            .iter()
            .map(|span| span.events.events.len() as u64 + u64::from(span.events.dropped_count))
            .sum();
        EXPORTED_SPANS.fetch_add(batch.len() as u64, Ordering::Relaxed);
        EXPORTED_EVENTS.fetch_add(events, Ordering::Relaxed);
        Ok(())
    }
}

/// Spans and span events (those kept and those past the SDK's per-span limit) every
/// [`NullExporter`] of the process has been given so far, after flushing the providers of
/// [`otel_dispatch`] (an [`OtelSwitch`] flushes with [`OtelSwitch::flush`]): what a peer
/// really recorded.
pub fn otel_exported() -> (u64, u64) {
    for provider in SCOPED_PROVIDERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
    {
        let _ = provider.force_flush();
    }
    (
        EXPORTED_SPANS.load(Ordering::Relaxed),
        EXPORTED_EVENTS.load(Ordering::Relaxed),
    )
}

/// `tracing` + OpenTelemetry installed as the process's global default subscriber, as an
/// application installs it (`.init()`): unlike a scoped [`otel_dispatch`], it also sees what
/// a library emits on threads of its own — sqlx's SQLite driver logs its statements on its
/// worker thread. It records only while [`OtelSwitch::on`] runs (a dynamic filter, asked at
/// every callsite), so the other arms of a benchmark pay one `enabled` check per callsite.
#[derive(Debug)]
pub struct OtelSwitch {
    provider: SdkTracerProvider,
}

static OTEL_ON: AtomicBool = AtomicBool::new(false);

impl OtelSwitch {
    /// The process's switch, installing the subscriber the first time. Panics when another
    /// global subscriber was set first.
    pub fn global() -> &'static OtelSwitch {
        static SWITCH: OnceLock<OtelSwitch> = OnceLock::new();
        SWITCH.get_or_init(|| {
            use tracing_subscriber::Layer as _;
            let provider = null_provider(Sampler::AlwaysOn);
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("bench"))
                .with_filter(tracing_subscriber::filter::dynamic_filter_fn(|_, _| {
                    OTEL_ON.load(Ordering::Relaxed)
                }));
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .expect("no other global subscriber");
            OtelSwitch { provider }
        })
    }

    /// Runs `body` with OpenTelemetry recording, on every thread.
    pub fn on<R>(&self, body: impl FnOnce() -> R) -> R {
        struct Off;
        impl Drop for Off {
            fn drop(&mut self) {
                OTEL_ON.store(false, Ordering::Relaxed);
            }
        }
        OTEL_ON.store(true, Ordering::Relaxed);
        let _off = Off;
        body()
    }

    /// Exports what the batch processor holds (then [`otel_exported`] counts it).
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
}

/// `tracing` with a `Registry` and OpenTelemetry's layer: the SDK's batch processor into
/// [`NullExporter`], sampling with `sampler`.
pub fn otel_subscriber(sampler: Sampler) -> impl tracing::Subscriber + Send + Sync {
    otel_layered(null_provider(sampler))
}

/// The SDK's batch processor into [`NullExporter`], sampling with `sampler`.
fn null_provider(sampler: Sampler) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_batch_exporter(NullExporter)
        .with_sampler(sampler)
        .build()
}

/// [`otel_subscriber`] with the SDK's default sampler, as a `Dispatch` to set per
/// benchmark arm.
pub fn otel_dispatch() -> tracing::Dispatch {
    let provider = null_provider(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    SCOPED_PROVIDERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(provider.clone());
    tracing::Dispatch::new(otel_layered(provider))
}

/// The providers behind [`otel_dispatch`], for [`otel_exported`] to flush.
static SCOPED_PROVIDERS: std::sync::Mutex<Vec<SdkTracerProvider>> =
    std::sync::Mutex::new(Vec::new());

fn otel_layered(provider: SdkTracerProvider) -> impl tracing::Subscriber + Send + Sync {
    let tracer = provider.tracer("bench");
    tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Installs fastrace's no-op reporter.
pub fn install_fastrace() {
    fastrace::set_reporter(NullFastraceReporter, fastrace::collector::Config::default());
}

/// Times `op` `iters` times, in chunks of [`CHUNK`] run inside `scope` (which sets up a fresh
/// root): wall time.
pub fn chunked(iters: u64, scope: impl FnMut(&mut dyn FnMut()), op: impl FnMut()) -> Duration {
    let start = Instant::now();
    chunked_by(iters, scope, op, move || start.elapsed())
}

/// [`chunked`] on another clock: `now` is read around each chunk's operations (say
/// [`thread_cpu_time`](super::thread_cpu_time), which leaves out whatever other threads — a
/// tracer's collector, another arm's leftovers — do meanwhile on a busy machine).
pub fn chunked_by(
    iters: u64,
    mut scope: impl FnMut(&mut dyn FnMut()),
    mut op: impl FnMut(),
    now: impl Fn() -> Duration,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = CHUNK.min(iters - done);
        scope(&mut || {
            let start = now();
            for _ in 0..n {
                op();
            }
            total += now().saturating_sub(start);
        });
        done += n;
    }
    total
}

/// A tomograph root around `body`.
pub fn tomograph_root(body: &mut dyn FnMut()) {
    let _root = tomograph::span("root").root().start();
    body();
}

/// Keeps a span handle opaque to the optimizer and drops it, without copying it into
/// `black_box`'s argument slot: that copy of a freshly written struct is a store-forwarding
/// stall on x86 (≈ 6 ns here) that measures the benchmark, not the library.
#[inline(always)]
pub fn keep<T>(value: T) {
    black_box(&value);
    drop(value);
}
