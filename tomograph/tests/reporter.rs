//! The reporter: never blocks, counts drops exactly, delivers everything on flush/shutdown,
//! retries failing backends with backoff, feeds several backends at once.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tomograph::{
    Backend, BackendError, Endpoint, MemoryBackend, Reporter, ReporterOptions, Span, SpanId,
    Timestamp, TraceId,
};

fn span(n: u64) -> Span {
    Span::new(
        TraceId::from_u64(n + 1).unwrap(),
        SpanId::from_u64(n + 1).unwrap(),
        "s",
        Endpoint::new("svc"),
        Timestamp::now(),
    )
}

/// A backend that blocks until released, then records what it got.
#[derive(Debug, Clone, Default)]
struct Gate {
    open: Arc<AtomicBool>,
    received: Arc<AtomicUsize>,
}

impl Backend for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    fn send(&mut self, spans: &[Span]) -> Result<(), BackendError> {
        while !self.open.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.received.fetch_add(spans.len(), Ordering::Relaxed);
        Ok(())
    }
}

/// A backend that fails the first `failures` attempts, retryably.
#[derive(Debug, Clone)]
struct Flaky {
    failures: Arc<AtomicUsize>,
    attempts: Arc<Mutex<Vec<Instant>>>,
    delivered: MemoryBackend,
}

impl Backend for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    fn send(&mut self, spans: &[Span]) -> Result<(), BackendError> {
        self.attempts.lock().unwrap().push(Instant::now());
        if self.failures.load(Ordering::Relaxed) > 0 {
            self.failures.fetch_sub(1, Ordering::Relaxed);
            return Err(BackendError::retryable(std::io::Error::other(
                "connection refused",
            )));
        }
        self.delivered.send(spans)
    }
}

#[test]
fn a_full_queue_drops_and_counts_exactly_without_blocking() {
    let gate = Gate::default();
    let options = ReporterOptions::default()
        .queue_capacity(100)
        .batch_size(10)
        .backend_buffer_spans(40)
        .batch_interval(Duration::from_millis(1));
    let reporter = Reporter::start(vec![Box::new(gate.clone())], options).unwrap();
    // The gate holds the worker; its inbox (4 batches) and the queue (100) fill up.
    for i in 0..10_000 {
        reporter.report(span(i));
    }
    let stats = reporter.stats();
    assert_eq!(stats.accepted + stats.dropped, 10_000);
    gate.open.store(true, Ordering::Release);
    // The flush delivers what was accepted and reports what the full queue dropped.
    let err = reporter.flush(Duration::from_secs(10)).unwrap_err();
    let stats = reporter.stats();
    assert!(
        matches!(&err, tomograph::FlushError::Lost { loss, .. }
            if loss.queue_full == stats.queue_full && loss.total() == stats.dropped),
        "{err:?} {stats:?}"
    );
    assert_eq!(stats.queue_full, stats.dropped);
    let backend = &stats.backends[0];
    assert_eq!(
        backend.sent + backend.dropped,
        stats.accepted,
        "every accepted span is either delivered or counted as dropped by the backend"
    );
    assert_eq!(gate.received.load(Ordering::Relaxed) as u64, backend.sent);
    // Bounded: what got through is at most what the queue, the inbox, the retry buffer and
    // the batch in flight can hold; everything else was dropped and counted.
    assert!(
        backend.sent <= 100 + 4 * 10 + 40 + 10,
        "sent {}",
        backend.sent
    );
    assert!(stats.dropped + backend.dropped >= 10_000 - 190);
    reporter.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn flush_and_shutdown_deliver_everything_queued() {
    let memory = MemoryBackend::new();
    // A long interval: only flush/shutdown can push these out quickly.
    let options = ReporterOptions::default()
        .batch_interval(Duration::from_secs(3600))
        .batch_size(100_000);
    let reporter = Reporter::start(vec![Box::new(memory.clone())], options).unwrap();
    for i in 0..5_000 {
        reporter.report(span(i));
    }
    reporter.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(memory.spans().len(), 5_000);
    for i in 5_000..7_500 {
        reporter.report(span(i));
    }
    reporter.shutdown(Duration::from_secs(10)).unwrap();
    let spans = memory.spans();
    assert_eq!(spans.len(), 7_500, "shutdown delivered what was queued");
    let mut ids: Vec<u64> = spans.iter().map(|s| s.id().get()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 7_500, "no span delivered twice");
    reporter.report(span(1));
    assert_eq!(
        reporter.stats().dropped,
        1,
        "after shutdown, spans are dropped and counted"
    );
    assert!(matches!(
        reporter.flush(Duration::from_secs(1)),
        Err(tomograph::FlushError::ShutDown)
    ));
}

#[test]
fn several_backends_each_receive_every_span() {
    let a = MemoryBackend::new();
    let b = MemoryBackend::new();
    let reporter = Reporter::start(
        vec![Box::new(a.clone()), Box::new(b.clone())],
        ReporterOptions::default(),
    )
    .unwrap();
    for i in 0..1_000 {
        reporter.report(span(i));
    }
    reporter.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(a.spans().len(), 1_000);
    assert_eq!(b.spans().len(), 1_000);
    let stats = reporter.stats();
    assert_eq!(
        stats.backends.iter().map(|b| b.sent).collect::<Vec<_>>(),
        [1_000, 1_000]
    );
    reporter.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_failing_backend_is_retried_with_growing_backoff_then_recovers() {
    let flaky = Flaky {
        failures: Arc::new(AtomicUsize::new(3)),
        attempts: Arc::default(),
        delivered: MemoryBackend::new(),
    };
    let options = ReporterOptions::default()
        .batch_interval(Duration::from_millis(1))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .max_retries(10);
    let reporter = Reporter::start(vec![Box::new(flaky.clone())], options).unwrap();
    reporter.report(span(1));
    let delivered = flaky
        .delivered
        .wait_for(Duration::from_secs(10), |s| !s.is_empty());
    assert_eq!(delivered.len(), 1, "delivered once the backend recovered");
    let attempts = flaky.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 4, "three failures then success");
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= Duration::from_millis(20),
        "waited before retrying: {gaps:?}"
    );
    assert!(gaps[2] >= gaps[0], "backoff grows: {gaps:?}");
    reporter.flush(Duration::from_secs(5)).unwrap();
    let stats = reporter.stats();
    assert_eq!(stats.backends[0].errors, 3);
    assert_eq!(stats.backends[0].sent, 1);
    reporter.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_backend_that_never_recovers_gives_up_after_max_retries() {
    let flaky = Flaky {
        failures: Arc::new(AtomicUsize::new(usize::MAX)),
        attempts: Arc::default(),
        delivered: MemoryBackend::new(),
    };
    let options = ReporterOptions::default()
        .batch_interval(Duration::from_millis(1))
        .backoff(Duration::from_millis(1), Duration::from_millis(2))
        .max_retries(2);
    let reporter = Reporter::start(vec![Box::new(flaky.clone())], options).unwrap();
    for i in 0..3 {
        reporter.report(span(i));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while reporter.stats().backends[0].failed < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = reporter.stats();
    assert_eq!(stats.backends[0].failed, 3, "{stats:?}");
    assert_eq!(stats.backends[0].sent, 0);
    // Shutdown with a dead peer still returns within its timeout.
    let started = Instant::now();
    let _ = reporter.shutdown(Duration::from_millis(500));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_hanging_backend_never_blocks_the_caller_and_shutdown_honours_its_timeout() {
    let gate = Gate::default(); // never opened
    let reporter = Reporter::start(
        vec![Box::new(gate.clone())],
        ReporterOptions::default().batch_interval(Duration::from_millis(1)),
    )
    .unwrap();
    let started = Instant::now();
    for i in 0..100_000 {
        reporter.report(span(i));
    }
    // 100k non-blocking reports finish in well under the time one blocked send would take.
    assert!(started.elapsed() < Duration::from_secs(30));
    let before = Instant::now();
    let result = reporter.shutdown(Duration::from_millis(200));
    assert!(
        matches!(result, Err(tomograph::FlushError::Timeout { .. })),
        "{result:?}"
    );
    assert!(before.elapsed() < Duration::from_secs(5));
    gate.open.store(true, Ordering::Release);
}

/// A healthy backend that takes its time over each batch.
#[derive(Debug, Clone, Default)]
struct Slow {
    received: Arc<AtomicUsize>,
}

impl Backend for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    fn send(&mut self, spans: &[Span]) -> Result<(), BackendError> {
        std::thread::sleep(Duration::from_millis(2));
        self.received.fetch_add(spans.len(), Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn a_slow_healthy_backend_holds_back_the_dispatcher_and_loses_nothing() {
    let slow = Slow::default();
    // A retry buffer far smaller than the burst: it is for a failing peer only; a healthy one
    // holds the spans back in the queue.
    let options = ReporterOptions::default()
        .batch_size(100)
        .backend_buffer_spans(100)
        .batch_interval(Duration::from_millis(1));
    let reporter = Reporter::start(vec![Box::new(slow.clone())], options).unwrap();
    for i in 0..20_000 {
        reporter.report(span(i));
    }
    reporter.flush(Duration::from_secs(60)).unwrap();
    let stats = reporter.stats();
    assert_eq!(stats.accepted, 20_000, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    let b = &stats.backends[0];
    assert_eq!((b.sent, b.lost(), b.queued), (20_000, 0, 0), "{stats:?}");
    assert_eq!(slow.received.load(Ordering::Relaxed), 20_000);
    reporter.shutdown(Duration::from_secs(5)).unwrap();
}
