//! The process-wide tracer: configuration read on the hot path, and the reporter.
//!
//! There is one per process, installed by [`init`] (like `log::set_logger`). Before that,
//! and after [`set_enabled(false)`](set_enabled), every tracing call is a no-op.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::Config;
use crate::error::InitError;
use crate::model::{Endpoint, Span};
use crate::propagation::{self, Propagation};
use crate::report::FlushError;
use crate::report::{Reporter, ReporterStats};

static TRACER: OnceLock<Tracer> = OnceLock::new();

/// The installed tracer. Obtain it with [`tracer()`](crate::tracer()).
#[derive(Debug)]
pub struct Tracer {
    local_endpoint: Endpoint,
    sample_threshold: u64,
    always_sample: bool,
    wide_trace_ids: bool,
    enabled: AtomicBool,
    misplaced_guard_warned: AtomicBool,
    reporter: Reporter,
    propagation: Propagation,
}

impl Tracer {
    /// The endpoint of this service (name, address, port).
    pub fn local_endpoint(&'static self) -> &'static Endpoint {
        &self.local_endpoint
    }

    /// Whether new spans are started.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn wide_trace_ids(&self) -> bool {
        self.wide_trace_ids
    }

    /// The sampling decision for a new root.
    pub(crate) fn sample(&self) -> bool {
        self.always_sample
            || (self.sample_threshold != 0 && fastrand::u64(..) < self.sample_threshold)
    }

    /// The HTTP header formats written and read.
    pub fn propagation(&self) -> &Propagation {
        &self.propagation
    }

    /// The reporter, for stats, flush and shutdown.
    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }
}

/// Installs the process's tracer from `config` and starts its reporter threads.
///
/// ```
/// use tomograph::{Config, MemoryBackend};
/// let memory = MemoryBackend::new();
/// tomograph::init(Config::builder().service_name("doc").backend(memory.clone()).build()).unwrap();
/// {
///     let _span = tomograph::span("hello").start();
/// }
/// tomograph::flush(std::time::Duration::from_secs(5)).unwrap();
/// assert_eq!(memory.spans()[0].name(), "hello");
/// assert!(tomograph::init(Config::builder().build()).is_err(), "only once per process");
/// ```
pub fn init(config: Config) -> Result<&'static Tracer, InitError> {
    if TRACER.get().is_some() {
        return Err(InitError::AlreadyInitialized);
    }
    let parts = config.into_parts();
    let reporter = Reporter::start(parts.backends, parts.reporter)?;
    let rate = parts.sample_rate.clamp(0.0, 1.0);
    let tracer = Tracer {
        local_endpoint: parts.local_endpoint,
        sample_threshold: (rate * u64::MAX as f64) as u64,
        always_sample: rate >= 1.0,
        wide_trace_ids: parts.wide_trace_ids,
        enabled: AtomicBool::new(parts.enabled),
        misplaced_guard_warned: AtomicBool::new(false),
        reporter,
        propagation: parts.propagation,
    };
    let mut installed = false;
    let result = TRACER.get_or_init(|| {
        installed = true;
        tracer
    });
    if installed {
        propagation::install(propagation::Installed {
            propagation: &result.propagation,
            sample: || get().is_none_or(|t| t.sample()),
        });
        Ok(result)
    } else {
        Err(InitError::AlreadyInitialized)
    }
}

/// The installed tracer, if any.
#[inline]
pub fn get() -> Option<&'static Tracer> {
    TRACER.get()
}

/// Switches tracing on or off at run time (the original's `tracing_enabled`). Spans already
/// open finish normally.
pub fn set_enabled(enabled: bool) {
    if let Some(t) = get() {
        t.enabled.store(enabled, Ordering::Relaxed);
    }
}

/// Delivers every finished span to every backend, waiting at most `timeout`.
pub fn flush(timeout: Duration) -> Result<(), FlushError> {
    get()
        .ok_or(FlushError::NotInitialized)?
        .reporter
        .flush(timeout)
}

/// Flushes and stops the reporter (call it before the process exits). Later spans are
/// dropped.
pub fn shutdown(timeout: Duration) -> Result<(), FlushError> {
    get()
        .ok_or(FlushError::NotInitialized)?
        .reporter
        .shutdown(timeout)
}

/// The reporter's counters; empty before [`init`].
pub fn stats() -> ReporterStats {
    get().map(|t| t.reporter.stats()).unwrap_or_default()
}

/// Finishes `span` ([`Span::finish`]) and reports it: the one way a span ends.
#[inline(always)]
pub(crate) fn finish(mut span: Span) {
    span.finish();
    report(span);
}

#[inline]
pub(crate) fn report(span: Span) {
    if let Some(t) = get() {
        t.reporter.report(span);
    }
}

pub(crate) fn note_misplaced_guard() {
    if let Some(t) = get()
        && !t.misplaced_guard_warned.swap(true, Ordering::Relaxed)
    {
        log::warn!(
            "tomograph: a span guard was dropped where its span is not open (moved to another \
             thread outside a traced future?); that span is left to its own thread. Shown once."
        );
    }
}
