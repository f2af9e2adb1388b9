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

/// The value of environment variable `var`, for a test that needs an outside service (a
/// database URL, a collector address). `scripts/test` starts every service and sets these
/// variables, so a missing one fails the test: a test that returned early without a word
/// would pass without testing anything.
///
/// A contributor without a service opts out of it explicitly: `TOMOGRAPH_TEST_SKIP` is a
/// comma list of services (`postgres,mysql`, or `all`), where a variable's service is the
/// first word after `TOMOGRAPH_TEST_` in lower case (`TOMOGRAPH_TEST_POSTGRES_URL` →
/// `postgres`, `TOMOGRAPH_TEST_STATSD_ADMIN` → `statsd`). A test of an opted-out service
/// gets `None`, prints a `SKIP` line, and appends `service<TAB>test<TAB>variable` to the
/// file `TOMOGRAPH_TEST_SKIP_LOG` names, from which `scripts/test` counts the skipped tests
/// by reason.
///
/// ```no_run
/// let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_POSTGRES_URL") else { return };
/// # let _ = url;
/// ```
///
/// # Panics
/// When the variable is unset (or empty) and its service is not opted out.
pub fn require_env(var: &str) -> Option<String> {
    if let Ok(value) = std::env::var(var)
        && !value.is_empty()
    {
        return Some(value);
    }
    let service = service_of(var);
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    let skip = std::env::var("TOMOGRAPH_TEST_SKIP").unwrap_or_default();
    if !opted_out(&skip, &service) {
        panic!(
            "{test}: {var} is not set. Run the tests with scripts/test (it starts every \
             service), or opt out of {service} with TOMOGRAPH_TEST_SKIP={service}"
        );
    }
    eprintln!("SKIP {test}: {service} opted out ({var} is not set)");
    if let Some(log) = std::env::var_os("TOMOGRAPH_TEST_SKIP_LOG") {
        use std::io::Write as _;
        let line = format!("{service}\t{test}\t{var}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!("{test}: cannot record the skip in TOMOGRAPH_TEST_SKIP_LOG: {e}");
        }
    }
    None
}

/// The service a `TOMOGRAPH_TEST_*` variable belongs to: its first word, lower case.
fn service_of(var: &str) -> String {
    let rest = var.strip_prefix("TOMOGRAPH_TEST_").unwrap_or(var);
    rest.split('_').next().unwrap_or(rest).to_ascii_lowercase()
}

/// Whether the comma list `skip` names `service` (or `all`).
fn opted_out(skip: &str, service: &str) -> bool {
    skip.split(',')
        .map(str::trim)
        .any(|s| s.eq_ignore_ascii_case(service) || s.eq_ignore_ascii_case("all"))
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

impl crate::backend::Backend for DiscardBackend {
    fn name(&self) -> &str {
        "discard"
    }

    fn send(&mut self, spans: &[Span]) -> Result<(), crate::error::BackendError> {
        self.received += spans.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{opted_out, service_of};

    #[test]
    fn services_of_variables() {
        assert_eq!(service_of("TOMOGRAPH_TEST_POSTGRES_URL"), "postgres");
        assert_eq!(service_of("TOMOGRAPH_TEST_STATSD_ADMIN"), "statsd");
        assert_eq!(service_of("TOMOGRAPH_TEST_PEERS_DIR"), "peers");
    }

    #[test]
    fn opt_out_lists() {
        assert!(opted_out("postgres,mysql", "mysql"));
        assert!(opted_out(" all ", "zipkin"));
        assert!(!opted_out("", "zipkin"));
        assert!(!opted_out("postgresql", "postgres"));
    }
}
