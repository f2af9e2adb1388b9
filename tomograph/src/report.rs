//! The reporting pipeline: stopping a span never blocks on I/O.
//!
//! Finished spans go into a bounded lock-free queue. One dispatcher thread drains it — when a
//! batch's worth is waiting, or every interval — and hands each batch to every backend. Each
//! backend runs on a thread of its own with a small bounded inbox, so a collector that hangs
//! delays only itself; a failed batch is retried with capped exponential backoff, a bounded
//! number of times. A full queue drops the span and counts it (and warns once); a full
//! backend inbox drops the batch for that backend and counts it. [`Reporter::flush`] and
//! [`Reporter::shutdown`] deliver what was queued before them, waiting at most their timeout.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use crossbeam_queue::ArrayQueue;

use crate::error::{BackendError, FlushError};
use crate::model::Span;

/// A destination for finished spans. Implement it to send spans anywhere; the reporter calls
/// it from a thread of its own, so blocking I/O is fine.
///
/// ```
/// use tomograph::{Backend, BackendError, Span};
/// #[derive(Debug, Default)]
/// struct CountingBackend { seen: usize }
/// impl Backend for CountingBackend {
///     fn name(&self) -> &str { "counting" }
///     fn send(&mut self, spans: &[Span]) -> Result<(), BackendError> {
///         self.seen += spans.len();
///         Ok(())
///     }
/// }
/// ```
pub trait Backend: Send + std::fmt::Debug + 'static {
    /// A short name for statistics and logs (`zipkin`, `statsd`, …).
    fn name(&self) -> &str;

    /// Delivers one batch. A [retryable](BackendError::retryable) error makes the reporter try
    /// the same batch again later.
    fn send(&mut self, spans: &[Span]) -> Result<(), BackendError>;

    /// Pushes out anything the backend buffers itself. Called by flush and shutdown.
    fn flush(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// How the reporter batches, buffers and retries.
///
/// ```
/// use tomograph::ReporterOptions;
/// use std::time::Duration;
/// let options = ReporterOptions::default().queue_capacity(4096).batch_interval(Duration::from_millis(100));
/// assert_eq!(options.get_queue_capacity(), 4096);
/// ```
#[derive(Debug, Clone)]
pub struct ReporterOptions {
    queue_capacity: usize,
    batch_size: usize,
    batch_interval: Duration,
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    backend_buffer_spans: usize,
}

impl Default for ReporterOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 16_384,
            batch_size: 512,
            batch_interval: Duration::from_millis(500),
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            backend_buffer_spans: 16_384,
        }
    }
}

impl ReporterOptions {
    /// Finished spans waiting for the dispatcher, at most (beyond: dropped, counted).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }
    /// Spans per batch handed to backends.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }
    /// Longest a finished span waits before its batch goes out.
    pub fn batch_interval(mut self, d: Duration) -> Self {
        self.batch_interval = d.max(Duration::from_millis(1));
        self
    }
    /// Times a failed batch is retried before it is dropped (counted as failed).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }
    /// First retry delay; doubles on each failure up to `max`.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }
    /// Spans a backend may hold for retry while its peer is down (beyond: oldest dropped).
    pub fn backend_buffer_spans(mut self, n: usize) -> Self {
        self.backend_buffer_spans = n.max(1);
        self
    }
    /// The queue capacity.
    pub fn get_queue_capacity(&self) -> usize {
        self.queue_capacity
    }
    /// The batch size.
    pub fn get_batch_size(&self) -> usize {
        self.batch_size
    }
    /// The batch interval.
    pub fn get_batch_interval(&self) -> Duration {
        self.batch_interval
    }
}

/// Counters of one backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// The backend's name.
    pub name: String,
    /// Spans delivered.
    pub sent: u64,
    /// Spans dropped because the backend was too far behind (inbox or retry buffer full).
    pub dropped: u64,
    /// Spans given up on after their retries, or refused by the peer.
    pub failed: u64,
    /// Delivery attempts that failed (each retry counts).
    pub errors: u64,
}

/// Counters of the reporter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReporterStats {
    /// Spans accepted into the queue.
    pub accepted: u64,
    /// Spans dropped because the queue was full (or the reporter shut down).
    pub dropped: u64,
    /// Spans waiting in the queue now.
    pub queued: usize,
    /// Per backend.
    pub backends: Vec<BackendStats>,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    errors: AtomicU64,
}

enum Message {
    Batch(Arc<Vec<Span>>),
    Flush {
        deadline: Instant,
        ack: Sender<Result<(), FlushError>>,
    },
    Shutdown {
        deadline: Instant,
        ack: Sender<Result<(), FlushError>>,
    },
}

enum Control {
    Flush {
        deadline: Instant,
        ack: Sender<Result<(), FlushError>>,
    },
    Shutdown {
        deadline: Instant,
        ack: Sender<Result<(), FlushError>>,
    },
}

#[derive(Debug)]
struct Shared {
    queue: ArrayQueue<Span>,
    accepted: AtomicU64,
    dropped: AtomicU64,
    warned_full: AtomicBool,
    wake_requested: AtomicBool,
    closed: AtomicBool,
    batch_size: usize,
}

impl Shared {
    /// Counts a span the queue could not take; warns the first time.
    #[cold]
    #[inline(never)]
    fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if !self.warned_full.swap(true, Ordering::Relaxed) {
            log::warn!(
                "tomograph: span queue full (capacity {}) or reporter shut down; dropping spans \
                 (counted in stats().dropped; this warning is shown once)",
                self.queue.capacity()
            );
        }
    }
}

#[derive(Debug)]
struct BackendHandle {
    name: String,
    counters: Arc<Counters>,
}

/// The queue and threads that carry finished spans to backends. The global tracer owns one;
/// make your own to drive backends directly (tests, tools).
///
/// ```
/// use tomograph::{MemoryBackend, Reporter, ReporterOptions, Span, SpanId, TraceId, Endpoint, Timestamp};
/// use std::time::Duration;
/// let memory = MemoryBackend::new();
/// let reporter = Reporter::start(vec![Box::new(memory.clone())], ReporterOptions::default()).unwrap();
/// let span = Span::new(TraceId::from_u64(1).unwrap(), SpanId::from_u64(1).unwrap(), "x", Endpoint::new("svc"), Timestamp::now());
/// reporter.report(span);
/// reporter.flush(Duration::from_secs(5)).unwrap();
/// assert_eq!(memory.spans().len(), 1);
/// reporter.shutdown(Duration::from_secs(5)).unwrap();
/// ```
#[derive(Debug)]
pub struct Reporter {
    shared: Arc<Shared>,
    control: Sender<Control>,
    dispatcher: thread::Thread,
    backends: Vec<BackendHandle>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Reporter {
    /// Starts the dispatcher and one thread per backend.
    pub fn start(
        backends: Vec<Box<dyn Backend>>,
        options: ReporterOptions,
    ) -> Result<Reporter, std::io::Error> {
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(options.queue_capacity),
            accepted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            warned_full: AtomicBool::new(false),
            wake_requested: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            batch_size: options.batch_size,
        });
        let mut threads = Vec::new();
        let mut inboxes = Vec::new();
        let mut handles = Vec::new();
        for backend in backends {
            let name = backend.name().to_owned();
            let counters = Arc::new(Counters::default());
            // The inbox holds up to a retry buffer's worth of batches: a slow peer may lag
            // that far behind before its batches are dropped (and counted).
            let inbox_batches = (options.backend_buffer_spans / options.batch_size).max(4);
            let (tx, rx) = bounded(inbox_batches);
            let worker = Worker {
                backend,
                inbox: rx,
                counters: counters.clone(),
                options: options.clone(),
            };
            threads.push(
                thread::Builder::new()
                    .name(format!("tomograph-{name}"))
                    .spawn(move || worker.run())?,
            );
            inboxes.push(tx);
            handles.push(BackendHandle { name, counters });
        }
        let (control_tx, control_rx) = bounded(16);
        let dispatcher = Dispatcher {
            shared: shared.clone(),
            control: control_rx,
            inboxes,
            counters: handles.iter().map(|h| h.counters.clone()).collect(),
            interval: options.batch_interval,
        };
        let handle = thread::Builder::new()
            .name("tomograph-reporter".into())
            .spawn(move || dispatcher.run())?;
        let dispatcher = handle.thread().clone();
        threads.push(handle);
        Ok(Reporter {
            shared,
            control: control_tx,
            dispatcher,
            backends: handles,
            threads: Mutex::new(threads),
        })
    }

    /// Queues a finished span; never blocks. A full queue drops it and counts the drop.
    #[inline]
    pub fn report(&self, span: Span) {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Relaxed) || shared.queue.push(span).is_err() {
            shared.count_dropped();
            return;
        }
        // Every batch_size-th span, look whether a batch is waiting and wake the dispatcher
        // (cheaper than reading the queue's length on every report).
        let accepted = shared.accepted.fetch_add(1, Ordering::Relaxed) + 1;
        if accepted.is_multiple_of(shared.batch_size as u64)
            && shared.queue.len() >= shared.batch_size
            && !shared.wake_requested.swap(true, Ordering::Relaxed)
        {
            self.dispatcher.unpark();
        }
    }

    /// Delivers everything reported before this call to every backend, waiting at most
    /// `timeout`. Backends whose peer is down keep the spans for later retries and make this
    /// return an error.
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        self.request(timeout, |deadline, ack| Control::Flush { deadline, ack })
    }

    /// Flushes, then stops the threads. Spans reported afterwards are dropped (counted).
    /// Waits at most `timeout`; a backend still blocked in I/O then is left to finish alone.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), FlushError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(FlushError::ShutDown);
        }
        let result = self.request(timeout, |deadline, ack| Control::Shutdown { deadline, ack });
        self.shared.closed.store(true, Ordering::Release);
        if result.is_ok()
            && let Ok(mut threads) = self.threads.lock()
        {
            for t in threads.drain(..) {
                let _ = t.join();
            }
        }
        result
    }

    fn request(
        &self,
        timeout: Duration,
        make: impl FnOnce(Instant, Sender<Result<(), FlushError>>) -> Control,
    ) -> Result<(), FlushError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(FlushError::ShutDown);
        }
        let deadline = Instant::now() + timeout;
        let expected = self.backends.len();
        let (ack_tx, ack_rx) = bounded(expected.max(1));
        self.control
            .send_deadline(make(deadline, ack_tx), deadline)
            .map_err(|_| FlushError::Timeout {
                timeout,
                unconfirmed: expected,
            })?;
        self.dispatcher.unpark();
        let mut first_error = None;
        for received in 0..expected {
            match ack_rx.recv_deadline(deadline) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    return Err(FlushError::Timeout {
                        timeout,
                        unconfirmed: expected - received,
                    });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Counters: accepted, dropped, queued, and per backend sent/dropped/failed.
    pub fn stats(&self) -> ReporterStats {
        ReporterStats {
            accepted: self.shared.accepted.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            queued: self.shared.queue.len(),
            backends: self
                .backends
                .iter()
                .map(|b| BackendStats {
                    name: b.name.clone(),
                    sent: b.counters.sent.load(Ordering::Relaxed),
                    dropped: b.counters.dropped.load(Ordering::Relaxed),
                    failed: b.counters.failed.load(Ordering::Relaxed),
                    errors: b.counters.errors.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }
}

struct Dispatcher {
    shared: Arc<Shared>,
    control: Receiver<Control>,
    inboxes: Vec<Sender<Message>>,
    counters: Vec<Arc<Counters>>,
    interval: Duration,
}

impl Dispatcher {
    fn run(self) {
        let mut next_tick = Instant::now() + self.interval;
        loop {
            let now = Instant::now();
            if now < next_tick
                && !self.shared.wake_requested.load(Ordering::Relaxed)
                && self.control.is_empty()
            {
                thread::park_timeout(next_tick - now);
            }
            self.shared.wake_requested.store(false, Ordering::Relaxed);
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + self.interval;
            }
            self.drain();
            while let Ok(control) = self.control.try_recv() {
                self.drain();
                match control {
                    Control::Flush { deadline, ack } => {
                        self.broadcast(
                            || Message::Flush {
                                deadline,
                                ack: ack.clone(),
                            },
                            deadline,
                        );
                    }
                    Control::Shutdown { deadline, ack } => {
                        self.broadcast(
                            || Message::Shutdown {
                                deadline,
                                ack: ack.clone(),
                            },
                            deadline,
                        );
                        return;
                    }
                }
            }
        }
    }

    /// Empties the queue in batches.
    fn drain(&self) {
        let batch_size = self.shared.batch_size;
        loop {
            let mut batch = Vec::with_capacity(batch_size.min(self.shared.queue.len()).max(1));
            while batch.len() < batch_size {
                match self.shared.queue.pop() {
                    Some(span) => batch.push(span),
                    None => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            let full = batch.len() == batch_size;
            let batch = Arc::new(batch);
            for (inbox, counters) in self.inboxes.iter().zip(&self.counters) {
                if inbox.try_send(Message::Batch(batch.clone())).is_err() {
                    counters
                        .dropped
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
            }
            if !full {
                return;
            }
        }
    }

    fn broadcast(&self, make: impl Fn() -> Message, deadline: Instant) {
        for inbox in &self.inboxes {
            // A worker stuck past the deadline simply never acknowledges.
            let _ = inbox.send_deadline(make(), deadline);
        }
    }
}

struct Worker {
    backend: Box<dyn Backend>,
    inbox: Receiver<Message>,
    counters: Arc<Counters>,
    options: ReporterOptions,
}

struct Pending {
    batch: Arc<Vec<Span>>,
    attempts: u32,
}

impl Worker {
    fn run(mut self) {
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut pending_spans = 0usize;
        let mut backoff = self.options.initial_backoff;
        let mut retry_at: Option<Instant> = None;
        loop {
            let message = match retry_at {
                Some(at) => match self.inbox.recv_deadline(at) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match self.inbox.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return,
                },
            };
            let mut ack = None;
            let mut stop = false;
            let mut force = false;
            match message {
                Some(Message::Batch(batch)) => {
                    pending_spans += batch.len();
                    pending.push_back(Pending { batch, attempts: 0 });
                    while pending_spans > self.options.backend_buffer_spans {
                        match pending.pop_front() {
                            Some(old) => {
                                pending_spans -= old.batch.len();
                                self.counters
                                    .dropped
                                    .fetch_add(old.batch.len() as u64, Ordering::Relaxed);
                            }
                            None => break,
                        }
                    }
                }
                Some(Message::Flush { deadline, ack: a }) => {
                    ack = Some((deadline, a));
                    force = true;
                }
                Some(Message::Shutdown { deadline, ack: a }) => {
                    ack = Some((deadline, a));
                    force = true;
                    stop = true;
                }
                None => {}
            }
            let due = retry_at.is_none_or(|at| Instant::now() >= at);
            if due || force {
                let ok = self.deliver(&mut pending, &mut pending_spans);
                if ok {
                    backoff = self.options.initial_backoff;
                    retry_at = None;
                } else {
                    retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(self.options.max_backoff);
                }
            }
            if let Some((deadline, ack)) = ack {
                let result = if !pending.is_empty() {
                    Err(FlushError::Backend {
                        backend: self.backend.name().to_owned(),
                        reason: format!("{pending_spans} span(s) not delivered yet, peer failing"),
                    })
                } else {
                    self.backend.flush().map_err(|e| FlushError::Backend {
                        backend: self.backend.name().to_owned(),
                        reason: e.to_string(),
                    })
                };
                if Instant::now() <= deadline {
                    let _ = ack.send(result);
                }
            }
            if stop {
                return;
            }
        }
    }

    /// Sends pending batches in order; stops at the first retryable failure.
    fn deliver(&mut self, pending: &mut VecDeque<Pending>, pending_spans: &mut usize) -> bool {
        while let Some(front) = pending.front_mut() {
            let n = front.batch.len() as u64;
            match self.backend.send(&front.batch) {
                Ok(()) => {
                    self.counters.sent.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    front.attempts += 1;
                    if e.is_retryable() && front.attempts <= self.options.max_retries {
                        log::debug!(
                            "tomograph: backend {} failed (will retry): {e}",
                            self.backend.name()
                        );
                        return false;
                    }
                    log::warn!(
                        "tomograph: backend {} dropped {n} span(s) after {} attempt(s): {e}",
                        self.backend.name(),
                        front.attempts
                    );
                    self.counters.failed.fetch_add(n, Ordering::Relaxed);
                }
            }
            *pending_spans -= n as usize;
            if let Some(done) = pending.pop_front()
                && let Ok(spans) = Arc::try_unwrap(done.batch)
            {
                // The last backend to finish with a batch hands its tag vectors back.
                crate::recycle::spans(spans);
            }
        }
        true
    }
}
