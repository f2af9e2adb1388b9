//! Helpers for testing instrumentation: a process-wide tracer that keeps spans in memory,
//! and the convention for tests that need an outside service.
//!
//! ```
//! use std::time::Duration;
//! let memory = tomograph::testing::memory_tracer();
//! let trace = {
//!     let root = tomograph::span("test root").root().start();
//!     root.token().unwrap().trace_id()
//! };
//! let spans = tomograph::testing::wait_for_trace(&memory, trace, 1, Duration::from_secs(5));
//! assert_eq!(spans[0].name(), "test root");
//! ```

use std::sync::OnceLock;
use std::time::Duration;

use crate::backend::MemoryBackend;
use crate::config::Config;
use crate::model::{Span, TraceId};
use crate::report::ReporterOptions;

static MEMORY: OnceLock<MemoryBackend> = OnceLock::new();

/// Installs (once per process) a tracer that samples everything into a [`MemoryBackend`],
/// batching every 5 ms, and returns that backend. Tests in one binary share it: tell your
/// spans apart by trace id (start each test's root with `.root()`).
///
/// # Panics
/// When another tracer was installed first with [`crate::init`].
pub fn memory_tracer() -> MemoryBackend {
    MEMORY
        .get_or_init(|| {
            let memory = MemoryBackend::new();
            let config = Config::builder()
                .service_name("tomograph-test")
                .reporter(ReporterOptions::default().batch_interval(Duration::from_millis(5)))
                .backend(memory.clone())
                .build();
            if let Err(e) = crate::init(config) {
                panic!("memory_tracer(): {e} (another tracer was installed first)");
            }
            memory
        })
        .clone()
}

/// Waits until `memory` holds at least `count` spans of `trace` (or `timeout` passes) and
/// returns them, oldest first.
pub fn wait_for_trace(
    memory: &MemoryBackend,
    trace: TraceId,
    count: usize,
    timeout: Duration,
) -> Vec<Span> {
    let _ = crate::flush(timeout);
    memory
        .wait_for(timeout, |spans| {
            spans.iter().filter(|s| s.trace_id() == trace).count() >= count
        })
        .into_iter()
        .filter(|s| s.trace_id() == trace)
        .collect()
}

/// The value of environment variable `var`, for a test that needs an outside service
/// (a database URL, a collector address). When it is unset the test should return early:
/// this prints a visible `SKIP` line — unless `TOMOGRAPH_TEST_REQUIRE_ALL=1`, where a
/// missing variable fails the test.
///
/// ```no_run
/// let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_POSTGRES_URL") else { return };
/// # let _ = url;
/// ```
///
/// # Panics
/// When the variable is unset and `TOMOGRAPH_TEST_REQUIRE_ALL=1`.
pub fn require_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let thread = std::thread::current();
            let test = thread.name().unwrap_or("test");
            if std::env::var("TOMOGRAPH_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1") {
                panic!("{test}: {var} is not set and TOMOGRAPH_TEST_REQUIRE_ALL=1");
            }
            eprintln!("SKIP {test}: {var} is not set");
            None
        }
    }
}

/// A backend that accepts every batch and keeps nothing: for benchmarks (the reporter runs
/// at full cost, nothing accumulates) and for checking instrumentation overhead.
///
/// ```
/// use tomograph::{Backend, testing::DiscardBackend};
/// let mut discard = DiscardBackend::default();
/// discard.send(&[]).unwrap();
/// assert_eq!(discard.received(), 0);
/// ```
#[derive(Debug, Default, Clone)]
pub struct DiscardBackend {
    received: u64,
}

impl DiscardBackend {
    /// Spans received (and discarded) so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

impl crate::report::Backend for DiscardBackend {
    fn name(&self) -> &str {
        "discard"
    }

    fn send(&mut self, spans: &[Span]) -> Result<(), crate::error::BackendError> {
        self.received += spans.len() as u64;
        Ok(())
    }
}
