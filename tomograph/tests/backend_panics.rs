//! A backend that panics — a custom `Backend` with a bug — loses the batch it panicked on and
//! nothing else: the spans are counted as failed (with the panic's message as the error that
//! `flush` returns), its worker carries on with the next batch, the other backends never
//! notice, and a panicking `flush` is an error of that flush alone. Before, the worker thread
//! died with the panic: its spans stayed "queued" for ever and every flush waited its whole
//! timeout.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tomograph::{
    Backend, BackendError, Endpoint, FlushError, MemoryBackend, Reporter, ReporterOptions, Span,
    SpanId, Timestamp, TraceId,
};

const WAIT: Duration = Duration::from_secs(10);

/// Panics on its `panics_on`-th batch (1-based) and on its first `flush` when asked to;
/// counts what it delivered otherwise.
#[derive(Debug)]
struct Buggy {
    batches: usize,
    panics_on: usize,
    panic_in_flush: bool,
    delivered: Arc<AtomicUsize>,
}

impl Backend for Buggy {
    fn name(&self) -> &str {
        "buggy"
    }

    fn send(&mut self, spans: &[Span]) -> Result<(), BackendError> {
        self.batches += 1;
        if self.batches == self.panics_on {
            panic!("index out of bounds in a custom backend");
        }
        self.delivered.fetch_add(spans.len(), Ordering::SeqCst);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        if std::mem::take(&mut self.panic_in_flush) {
            std::panic::panic_any(String::from("flush went wrong"));
        }
        Ok(())
    }
}

fn spans(from: u64, n: u64) -> Vec<Span> {
    (from..from + n)
        .map(|i| {
            Span::new(
                TraceId::from_u64(i).unwrap(),
                SpanId::from_u64(i).unwrap(),
                "s",
                Endpoint::new("svc"),
                Timestamp::now(),
            )
        })
        .collect()
}

fn buggy(panics_on: usize, panic_in_flush: bool) -> (Buggy, Arc<AtomicUsize>) {
    let delivered = Arc::new(AtomicUsize::new(0));
    let backend = Buggy {
        batches: 0,
        panics_on,
        panic_in_flush,
        delivered: delivered.clone(),
    };
    (backend, delivered)
}

#[test]
fn a_panic_loses_its_batch_counted_and_the_backend_carries_on() {
    let (backend, delivered) = buggy(1, false);
    let memory = MemoryBackend::new();
    let reporter = Reporter::start(
        vec![Box::new(backend), Box::new(memory.clone())],
        ReporterOptions::default(),
    )
    .unwrap();

    for span in spans(1, 10) {
        reporter.report(span);
    }
    let started = std::time::Instant::now();
    let err = reporter.flush(WAIT).unwrap_err();
    assert!(
        started.elapsed() < WAIT / 2,
        "answered, not timed out: {err}"
    );
    let FlushError::Lost { loss, source } = &err else {
        panic!("expected the loss, got {err:?}");
    };
    assert_eq!(loss.backends.len(), 1, "{loss:?}");
    assert_eq!(
        (loss.backends[0].name.as_str(), loss.backends[0].failed),
        ("buggy", 10)
    );
    let source = source.as_ref().unwrap().to_string();
    assert!(
        source.contains("panicked while delivering: index out of bounds in a custom backend"),
        "{source}"
    );

    // The worker survived: the next batch is delivered, and the flush is clean.
    for span in spans(11, 5) {
        reporter.report(span);
    }
    reporter.flush(WAIT).unwrap();
    assert_eq!(delivered.load(Ordering::SeqCst), 5);
    let stats = reporter.stats();
    let buggy = &stats.backends[0];
    assert_eq!(
        (buggy.sent, buggy.failed, buggy.queued),
        (5, 10, 0),
        "{stats:?}"
    );
    assert_eq!(stats.accepted, buggy.sent + buggy.lost() + buggy.queued);
    // The other backend lost nothing.
    assert_eq!(memory.spans().len(), 15);
    reporter.shutdown(WAIT).unwrap();
}

#[test]
fn a_panicking_flush_fails_that_flush_only() {
    let (backend, delivered) = buggy(0, true);
    let reporter = Reporter::start(vec![Box::new(backend)], ReporterOptions::default()).unwrap();
    for span in spans(1, 3) {
        reporter.report(span);
    }
    let err = reporter.flush(WAIT).unwrap_err();
    let FlushError::Backend {
        backend, source, ..
    } = &err
    else {
        panic!("expected the backend's flush error, got {err:?}");
    };
    assert_eq!(backend, "buggy");
    let source = source.as_ref().unwrap().to_string();
    assert!(
        source.contains("panicked while flushing: flush went wrong"),
        "{source}"
    );
    assert_eq!(
        delivered.load(Ordering::SeqCst),
        3,
        "the spans were delivered"
    );
    reporter.flush(WAIT).unwrap();
    reporter.shutdown(WAIT).unwrap();
}
