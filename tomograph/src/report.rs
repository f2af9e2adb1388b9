//! The reporting pipeline: stopping a span never blocks on I/O, and every span is accounted
//! for.
//!
//! Finished spans go into one bounded lock-free queue ([`ReporterOptions::queue_capacity`]).
//! One dispatcher thread drains it — when an eighth of the queue (at least a batch) is
//! waiting, every interval, and on flush — and hands each batch to every backend. Each
//! backend runs on a thread of its own behind an inbox of two batches.
//!
//! - A backend whose peer is **up but slower** than the application applies back-pressure:
//!   the dispatcher waits for room in its inbox, so the spans wait in the application queue —
//!   the one buffer — and nothing is dropped until that queue is full. The application thread
//!   never waits: [`Reporter::report`] is a lock-free push that drops (and counts) when the
//!   queue is full.
//! - A backend whose peer is **failing** (down, 5xx, timing out) keeps its pending batches in a
//!   retry buffer of [`ReporterOptions::backend_buffer_spans`] and retries them with capped
//!   exponential backoff, a bounded number of times; meanwhile the dispatcher does not wait for
//!   it (other backends keep receiving), and what does not fit is dropped and counted.
//! - A peer that **refuses** data (a 4xx) is not retried with the same bytes; a backend may
//!   split the batch to deliver what the peer accepts ([`Backend::deliver`], the Zipkin backend
//!   bisects on 400).
//! - A backend that **panics** (a bug in a custom [`Backend`]) loses that batch, counted as
//!   failed with the panic's message as its error; its thread goes on with the next batch.
//!
//! # The account
//!
//! Every span [`report`](Reporter::report)ed is either refused at the door (queue full, or the
//! reporter shut down: [`ReporterStats::dropped`]) or *accepted* — `accepted + dropped` is
//! the number of reports that returned, at every moment, the dispatcher draining or not; and,
//! for every backend, every accepted span is delivered, lost for one named reason, or still
//! queued:
//!
//! `accepted = sent + dropped + failed + rejected + cut + queued` (each of
//! [`BackendStats`]), exact whenever the reporter is quiet (after a flush returned, after
//! shutdown) and within the spans in motion otherwise. With tail sampling on, spans of the
//! traces it drops reach no backend and are counted apart, in
//! [`SamplingStats::dropped_spans`]: `accepted = sampling.dropped_spans + sent + dropped +
//! failed + rejected + cut + queued`, held spans counting as queued.
//!
//! [`Reporter::flush`] and [`Reporter::shutdown`] return [`FlushError::Lost`] when spans were
//! lost **since the previous flush or shutdown** (or since start), with the count per reason
//! and the backend's last error as the source, so a flush after a burst tells of its losses.
//!
//! # Memory
//!
//! The queue is allocated when the reporter starts: `queue_capacity` slots of
//! `size_of::<Span>() + 8` bytes (136 bytes: 8.9 MB for the default 65 536). A queued span's
//! heap — its tag vector and the tag values that are not `'static` — comes on top: ≈ 224 bytes
//! for a SQL client span with three tags, so ≈ 360 bytes a queued span and ≈ 24 MB for a full
//! default queue; a process holding a full queue measured +34 MB peak RSS, and one reporting
//! 1 M spans with the collector down +56 MB (the queue and the retry buffer full; numbers in
//! BENCHMARKS.md, "Delivery path").

use std::collections::{HashSet, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use crossbeam_queue::ArrayQueue;

use crate::backend::{Backend, Delivery};
use crate::error::{BackendError, panic_message};
use crate::model::Span;
use crate::sample::tail::{TailCounters, TailStage};
use crate::sample::{SamplingStats, TailSampling};

/// Batches waiting in a healthy backend's inbox, at most (two waiting while it sends a third);
/// beyond, the dispatcher waits.
const INBOX_BATCHES: usize = 2;
/// A report looks whether the dispatcher should be woken once every this many spans of its
/// thread.
const WAKE_CHECK_EVERY: u32 = 64;

thread_local! {
    /// Spans this thread reported (wrapping): paces the wake-up check. `const`, no destructor:
    /// a plain load and store.
    static REPORTED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// A value on a cache line of its own, so that writing it does not evict what other threads
/// read next to it.
#[derive(Debug)]
#[repr(align(128))]
struct OwnLine<T>(T);

/// Rejection reasons kept apart per backend in [`BackendStats::rejections`].
const MAX_REASONS: usize = 16;
/// Rejection reasons logged per backend (each once).
const MAX_LOGGED_REASONS: usize = 64;
/// How long the dispatcher waits for a backend's inbox before it looks again (a backend
/// taking a batch wakes it earlier) — whether there is room, whether the backend started
/// failing, whether a shutdown cut the account.
const HAND_OFF_SLICE: Duration = Duration::from_millis(20);

/// How the reporter batches, buffers and retries.
///
/// ```
/// use tomograph::ReporterOptions;
/// use std::time::Duration;
/// let options = ReporterOptions::default().queue_capacity(4096).batch_interval(Duration::from_millis(100));
/// let reporter = tomograph::Reporter::start(Vec::new(), options).unwrap();
/// assert_eq!(reporter.queue_capacity(), 4096);
/// ```
#[derive(Debug, Clone)]
pub struct ReporterOptions {
    pub(crate) queue_capacity: usize,
    batch_size: usize,
    batch_interval: Duration,
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    backend_buffer_spans: usize,
    /// Tail sampling in the dispatcher (set from the tracer's configuration).
    tail: Option<TailSampling>,
}

impl Default for ReporterOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            batch_size: 512,
            batch_interval: Duration::from_millis(500),
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            backend_buffer_spans: 16_384,
            tail: None,
        }
    }
}

impl ReporterOptions {
    /// Finished spans waiting for the backends, at most (beyond: dropped, counted in
    /// [`ReporterStats::queue_full`]). The one buffer a slow peer fills; allocated at start,
    /// 136 bytes a slot. Default 65 536 (8.9 MB): a burst of 50 000 spans to a healthy but
    /// slower collector loses nothing.
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
    /// Spans a backend holds for retry while its peer is failing (beyond: newer batches dropped,
    /// counted in [`BackendStats::dropped`]). A healthy peer, however slow, never fills it:
    /// it holds back the dispatcher instead. Default 16 384.
    pub fn backend_buffer_spans(mut self, n: usize) -> Self {
        self.backend_buffer_spans = n.max(1);
        self
    }
    /// The same options with the dispatcher's tail stage on (`Some`) or off.
    pub(crate) fn with_tail(mut self, tail: Option<TailSampling>) -> Self {
        self.tail = tail;
        self
    }
}

/// Spans a backend's peer refused for one reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejection {
    /// The peer's reason, as first given (e.g. the collector's 400 answer).
    pub reason: String,
    /// Spans refused for it.
    pub spans: u64,
}

/// Counters of one backend. For each backend, `accepted` ([`ReporterStats::accepted`]) =
/// `sent + dropped + failed + rejected + cut + queued`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendStats {
    /// The backend's name.
    pub name: String,
    /// Spans delivered.
    pub sent: u64,
    /// Spans dropped because the backend's peer was failing and its retry buffer
    /// ([`ReporterOptions::backend_buffer_spans`]) or its inbox was full.
    pub dropped: u64,
    /// Spans given up on after their retries.
    pub failed: u64,
    /// Spans the peer refused (a 4xx from a collector), not retried.
    pub rejected: u64,
    /// Spans not yet delivered when a shutdown's deadline passed (cut from the account).
    pub cut: u64,
    /// Spans accepted and not yet delivered or lost by this backend: in the queue, its inbox,
    /// its retry buffer or in flight.
    pub queued: u64,
    /// Delivery attempts that failed or were refused (each retry counts).
    pub errors: u64,
    /// [`rejected`](BackendStats::rejected), by reason (at most 16 reasons; later reasons
    /// are added to the last one).
    pub rejections: Vec<Rejection>,
}

impl BackendStats {
    /// Spans lost, for every reason: `dropped + failed + rejected + cut`.
    pub fn lost(&self) -> u64 {
        self.dropped + self.failed + self.rejected + self.cut
    }
}

/// Counters of the reporter.
///
/// ```
/// use tomograph::{MemoryBackend, Reporter, ReporterOptions, Span, SpanId, TraceId, Endpoint, Timestamp};
/// use std::time::Duration;
/// let reporter = Reporter::start(vec![Box::new(MemoryBackend::new())], ReporterOptions::default()).unwrap();
/// reporter.report(Span::new(TraceId::from_u64(1).unwrap(), SpanId::from_u64(1).unwrap(), "x", Endpoint::new("svc"), Timestamp::now()));
/// reporter.flush(Duration::from_secs(5)).unwrap();
/// let stats = reporter.stats();
/// let memory = &stats.backends[0];
/// assert_eq!(stats.accepted, memory.sent + memory.lost() + memory.queued);
/// assert_eq!((stats.accepted, memory.sent, stats.dropped), (1, 1, 0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReporterStats {
    /// Spans accepted into the queue (with [`dropped`](Self::dropped): every report that
    /// returned before `stats` was called).
    pub accepted: u64,
    /// Spans refused at the door: `queue_full + after_shutdown`.
    pub dropped: u64,
    /// Spans dropped because the queue was full.
    pub queue_full: u64,
    /// Spans reported after shutdown.
    pub after_shutdown: u64,
    /// Spans waiting in the queue now.
    pub queued: usize,
    /// Per backend.
    pub backends: Vec<BackendStats>,
    /// The tail decision's counters (all zero with tail sampling off).
    pub sampling: SamplingStats,
}

/// Spans lost in some interval (since the previous flush or shutdown), per reason: what a
/// [`FlushError`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Loss {
    /// Dropped because the queue was full.
    pub queue_full: u64,
    /// Reported after shutdown.
    pub after_shutdown: u64,
    /// Per backend that lost any: its losses in the interval (`sent`, `queued` and `errors`
    /// are left at zero).
    pub backends: Vec<BackendStats>,
}

impl Loss {
    /// Every span lost: refused at the door plus each backend's losses (a span lost by two
    /// backends counts twice).
    pub fn total(&self) -> u64 {
        self.queue_full
            + self.after_shutdown
            + self.backends.iter().map(BackendStats::lost).sum::<u64>()
    }

    /// Whether nothing was lost.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }
}

impl std::fmt::Display for Loss {
    /// `12 span(s) lost: 2 queue full; zipkin: 10 rejected (collector answered 400: …)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} span(s) lost", self.total())?;
        let mut sep = ": ";
        for (n, what) in [
            (self.queue_full, "queue full"),
            (self.after_shutdown, "reported after shutdown"),
        ] {
            if n > 0 {
                write!(f, "{sep}{n} {what}")?;
                sep = "; ";
            }
        }
        for b in &self.backends {
            write!(f, "{sep}{}:", b.name)?;
            let mut inner = " ";
            for (n, what) in [
                (
                    b.dropped,
                    "dropped while the peer was failing (buffer full)",
                ),
                (b.failed, "failed after retries"),
                (b.rejected, "rejected by the peer"),
                (b.cut, "cut by the shutdown deadline"),
            ] {
                if n > 0 {
                    write!(f, "{inner}{n} {what}")?;
                    inner = ", ";
                }
            }
            if let Some(first) = b.rejections.first() {
                write!(f, " (first reason: {})", first.reason)?;
            }
            sep = "; ";
        }
        Ok(())
    }
}

/// Why a flush or a shutdown did not deliver everything.
///
/// Losses are reported by the first flush or shutdown after them: each call covers the spans
/// lost since the previous call returned (or since the reporter started).
///
/// ```
/// use tomograph::{FlushError, Loss};
/// let e = FlushError::Lost { loss: Loss::default(), source: None };
/// assert_eq!(e.to_string(), "0 span(s) lost (since the previous flush)");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The timeout passed before every backend confirmed. At shutdown, every span not
    /// delivered by then is cut, and `loss` says how many (with any other loss since the
    /// previous flush).
    #[error(
        "flush timed out after {timeout:?}; {unconfirmed} backend(s) had not confirmed{}",
        timeout_loss(loss)
    )]
    Timeout {
        /// The timeout given.
        timeout: Duration,
        /// Backends that had not answered.
        unconfirmed: usize,
        /// Spans lost since the previous flush, per reason (cut ones included at shutdown).
        loss: Loss,
    },
    /// Spans were lost since the previous flush or shutdown (queue full, peer failing,
    /// refused, cut).
    #[error("{loss} (since the previous flush)")]
    Lost {
        /// How many, per reason and backend.
        loss: Loss,
        /// The latest delivery error of a backend that lost spans (e.g. the collector's 400
        /// answer, or the connection refused), if any.
        #[source]
        source: Option<BackendError>,
    },
    /// A backend could not deliver what it was given yet (its peer is failing; the spans are
    /// kept for retries), or its own flush failed.
    #[error("backend {backend} could not deliver: {reason}")]
    Backend {
        /// The backend's name.
        backend: String,
        /// What is left undelivered, or which step failed.
        reason: String,
        /// The backend's own error, when its flush failed.
        #[source]
        source: Option<BackendError>,
    },
    /// The reporter was shut down already.
    #[error("the reporter is shut down")]
    ShutDown,
    /// No tracer was installed.
    #[error("tomograph is not initialized")]
    NotInitialized,
}

impl FlushError {
    /// The spans lost that this error reports, if any.
    pub fn loss(&self) -> Option<&Loss> {
        match self {
            FlushError::Timeout { loss, .. } | FlushError::Lost { loss, .. } => Some(loss),
            _ => None,
        }
    }
}

fn timeout_loss(loss: &Loss) -> String {
    if loss.is_empty() {
        String::new()
    } else {
        format!("; {loss}")
    }
}

/// A backend's counters, changed once per batch under its lock.
#[derive(Debug, Default)]
struct Ledger {
    sent: u64,
    dropped: u64,
    failed: u64,
    rejected: u64,
    errors: u64,
    /// (grouping key, rejection).
    rejections: Vec<(String, Rejection)>,
    /// Set by shutdown once it stops waiting: from then on nothing changes, and every
    /// accepted span not resolved is counted as cut.
    sealed: bool,
    /// The latest delivery error, for the next flush's [`FlushError`].
    last_error: Option<BackendError>,
}

impl Ledger {
    fn resolved(&self) -> u64 {
        self.sent + self.dropped + self.failed + self.rejected
    }

    fn reject(&mut self, reason: &str, spans: u64) {
        self.rejected += spans;
        let key = reason_key(reason);
        if let Some((_, r)) = self.rejections.iter_mut().find(|(k, _)| *k == key) {
            r.spans += spans;
        } else if self.rejections.len() < MAX_REASONS {
            self.rejections.push((
                key,
                Rejection {
                    reason: reason.to_owned(),
                    spans,
                },
            ));
        } else if let Some((_, last)) = self.rejections.last_mut() {
            last.spans += spans;
        }
    }
}

/// A reason with its numbers (span indexes, timestamps, ids) blanked, so that one cause makes
/// one reason.
fn reason_key(reason: &str) -> String {
    let mut key = String::with_capacity(reason.len().min(200));
    let mut in_digits = false;
    for c in reason.chars().take(200) {
        if c.is_ascii_digit() {
            if !in_digits {
                key.push('#');
            }
            in_digits = true;
        } else {
            key.push(c);
            in_digits = false;
        }
    }
    key
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct BackendShared {
    name: String,
    ledger: Mutex<Ledger>,
    /// The peer is failing: the dispatcher does not wait for this backend's inbox.
    failing: AtomicBool,
    /// Spans this backend holds: in its inbox, its retry buffer, in flight. While the peer
    /// is failing, at most `backend_buffer_spans`.
    held: AtomicUsize,
    /// The dispatcher waits for room in this inbox (the worker wakes it on taking a batch).
    waiting: AtomicBool,
}

/// A flush or shutdown's answer from one worker.
struct Ack {
    /// Spans it still holds (its peer failing).
    pending: usize,
    /// The backend's own flush.
    flush: Result<(), BackendError>,
}

enum Message {
    Batch(Arc<Vec<Span>>),
    Flush { deadline: Instant, ack: Sender<Ack> },
    Shutdown { deadline: Instant, ack: Sender<Ack> },
}

enum Control {
    Flush { deadline: Instant, ack: Sender<Ack> },
    Shutdown { deadline: Instant, ack: Sender<Ack> },
}

#[derive(Debug)]
struct Shared {
    queue: ArrayQueue<Span>,
    /// Twice the spans the dispatcher took from the queue, plus one while it is taking one (a
    /// sequence lock: odd while a span is between the queue and the count). With the spans
    /// still in the queue, what was accepted: application threads count nothing when they
    /// report (a shared counter would be one more contended write per span). Written by the
    /// dispatcher alone, on a cache line of its own.
    taken: OwnLine<AtomicU64>,
    queue_full: AtomicU64,
    after_shutdown: AtomicU64,
    warned_full: AtomicBool,
    wake_requested: AtomicBool,
    /// Spans are no longer accepted.
    closed: AtomicBool,
    /// `shutdown` was called.
    shut: AtomicBool,
    /// The account is closed (shutdown stopped waiting): threads stop, counters stay.
    sealed: AtomicBool,
    batch_size: usize,
    /// Queued spans at which a report wakes the dispatcher: an eighth of the queue, at least
    /// a batch. Waking a parked thread is a system call on the reporting thread; fewer,
    /// larger drains keep it off the span's cost, and the interval bounds the wait.
    wake_at: usize,
    /// The dispatcher's thread, for workers to wake it when they make room.
    dispatcher: OnceLock<thread::Thread>,
}

impl Shared {
    /// An empty queue of `queue_capacity` slots, drained `batch_size` spans at a time.
    fn new(queue_capacity: usize, batch_size: usize) -> Self {
        Self {
            queue: ArrayQueue::new(queue_capacity),
            taken: OwnLine(AtomicU64::new(0)),
            queue_full: AtomicU64::new(0),
            after_shutdown: AtomicU64::new(0),
            warned_full: AtomicBool::new(false),
            wake_requested: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            shut: AtomicBool::new(false),
            sealed: AtomicBool::new(false),
            batch_size,
            wake_at: (queue_capacity / 8).max(batch_size).min(queue_capacity),
            dispatcher: OnceLock::new(),
        }
    }

    /// Wakes the dispatcher when a batch is waiting and nobody asked yet.
    #[cold]
    #[inline(never)]
    fn wake_dispatcher_if_due(&self) {
        if self.queue.len() >= self.wake_at && !self.wake_requested.swap(true, Ordering::Relaxed) {
            self.wake_dispatcher();
        }
    }

    /// Wakes the dispatcher (set as it starts, before the reporter is returned).
    fn wake_dispatcher(&self) {
        if let Some(dispatcher) = self.dispatcher.get() {
            dispatcher.unpark();
        }
    }

    /// Spans accepted so far: taken by the dispatcher, or still queued — exact at every
    /// moment, the dispatcher draining or not (every span pushed before the call is in it).
    /// The dispatcher counts a span as taken before any backend sees it, so read after a
    /// backend's ledger this is never below what the backend resolved.
    fn accepted(&self) -> u64 {
        let taken = &self.taken.0;
        let mut attempts = 0u32;
        loop {
            let before = taken.load(Ordering::Acquire);
            if before.is_multiple_of(2) {
                let queued = self.queue.len() as u64;
                fence(Ordering::Acquire);
                if taken.load(Ordering::Relaxed) == before {
                    return before / 2 + queued;
                }
            }
            // The dispatcher is moving a span out of the queue: a few instructions, unless
            // it was descheduled in between.
            attempts += 1;
            if attempts.is_multiple_of(64) {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// A span from the queue, counted as taken before anything else sees it. The
    /// dispatcher's alone: one writer, plain stores, no read-modify-write.
    #[inline]
    fn take(&self) -> Option<Span> {
        let taken = &self.taken.0;
        let even = taken.load(Ordering::Relaxed);
        // Odd while the span is neither queued nor counted, so that `accepted` waits
        // instead of missing it.
        taken.store(even + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let Some(span) = self.queue.pop() else {
            taken.store(even, Ordering::Release);
            return None;
        };
        taken.store(even + 2, Ordering::Release);
        Some(span)
    }

    /// Counts a span the queue could not take; warns the first time.
    #[cold]
    #[inline(never)]
    fn count_dropped(&self, closed: bool) {
        if closed {
            self.after_shutdown.fetch_add(1, Ordering::Relaxed);
        } else {
            self.queue_full.fetch_add(1, Ordering::Relaxed);
        }
        if !self.warned_full.swap(true, Ordering::Relaxed) {
            log::warn!(
                "tomograph: span queue full (capacity {}) or reporter shut down; dropping spans \
                 (counted in stats().dropped; this warning is shown once)",
                self.queue.capacity()
            );
        }
    }
}

/// The counters as the previous flush left them.
#[derive(Debug, Default)]
struct Mark {
    queue_full: u64,
    after_shutdown: u64,
    backends: Vec<BackendStats>,
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
    backends: Vec<Arc<BackendShared>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    mark: Mutex<Mark>,
    /// Tail sampling's counters, when it is on.
    tail: Option<Arc<TailCounters>>,
}

impl Reporter {
    /// Starts the dispatcher and one thread per backend.
    pub fn start(
        backends: Vec<Box<dyn Backend>>,
        options: ReporterOptions,
    ) -> Result<Reporter, std::io::Error> {
        let shared = Arc::new(Shared::new(options.queue_capacity, options.batch_size));
        let mut threads = Vec::new();
        let mut inboxes = Vec::new();
        let mut handles = Vec::new();
        for backend in backends {
            let name = backend.name().to_owned();
            let state = Arc::new(BackendShared {
                name: name.clone(),
                ledger: Mutex::new(Ledger::default()),
                failing: AtomicBool::new(false),
                held: AtomicUsize::new(0),
                waiting: AtomicBool::new(false),
            });
            // Unbounded as a channel; bounded by `hand` (INBOX_BATCHES while the peer is
            // healthy, backend_buffer_spans held while it fails).
            let (tx, rx) = unbounded();
            let worker = Worker {
                backend,
                inbox: rx,
                state: state.clone(),
                shared: shared.clone(),
                options: options.clone(),
                logged: HashSet::new(),
            };
            threads.push(
                thread::Builder::new()
                    .name(format!("tomograph-{name}"))
                    .spawn(move || worker.run())?,
            );
            inboxes.push(tx);
            handles.push(state);
        }
        let (control_tx, control_rx) = bounded(16);
        let tail_counters = options
            .tail
            .as_ref()
            .map(|_| Arc::new(TailCounters::default()));
        let tail = options
            .tail
            .clone()
            .zip(tail_counters.clone())
            .map(|(t, counters)| TailStage::new(t, counters));
        let dispatcher = Dispatcher {
            shared: shared.clone(),
            control: control_rx,
            inboxes,
            backends: handles.clone(),
            interval: options.batch_interval,
            buffer_spans: options.backend_buffer_spans,
            tail,
        };
        let handle = thread::Builder::new()
            .name("tomograph-reporter".into())
            .spawn(move || dispatcher.run())?;
        let _ = shared.dispatcher.set(handle.thread().clone());
        threads.push(handle);
        Ok(Reporter {
            shared,
            control: control_tx,
            backends: handles,
            threads: Mutex::new(threads),
            mark: Mutex::new(Mark::default()),
            tail: tail_counters,
        })
    }

    /// Queues a finished span; never blocks, never locks. A full queue drops it and counts the
    /// drop ([`ReporterStats::queue_full`]).
    #[inline]
    pub fn report(&self, span: Span) {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Relaxed) {
            shared.count_dropped(true);
            return;
        }
        if shared.queue.push(span).is_err() {
            shared.count_dropped(false);
            return;
        }
        // Every few spans this thread reports, look whether a batch is waiting for the
        // dispatcher (cheaper than reading the queue's length, two shared cache lines, on
        // every report).
        let reported = REPORTED.get().wrapping_add(1);
        REPORTED.set(reported);
        if reported.is_multiple_of(WAKE_CHECK_EVERY) {
            shared.wake_dispatcher_if_due();
        }
    }

    /// Delivers everything reported before this call to every backend, waiting at most
    /// `timeout`.
    ///
    /// Errors: [`FlushError::Lost`] when spans were lost since the previous flush or shutdown
    /// (or since start), with the count per reason; [`FlushError::Backend`] when a backend
    /// whose peer is failing still holds spans for later retries; [`FlushError::Timeout`].
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        if self.shared.shut.load(Ordering::Acquire) {
            return Err(FlushError::ShutDown);
        }
        let answer = self.request(timeout, |deadline, ack| Control::Flush { deadline, ack });
        self.conclude(timeout, answer)
    }

    /// Flushes, then stops the threads. Spans reported afterwards are dropped (counted in
    /// [`ReporterStats::after_shutdown`]). Waits at most `timeout`; a backend still blocked in
    /// I/O then is left to finish alone, and every span not delivered by then is counted as
    /// [`cut`](BackendStats::cut) and reported in the error.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), FlushError> {
        if self.shared.shut.swap(true, Ordering::AcqRel) {
            return Err(FlushError::ShutDown);
        }
        self.shared.closed.store(true, Ordering::SeqCst);
        let answer = self.request(timeout, |deadline, ack| Control::Shutdown { deadline, ack });
        // Close the account: whatever is not resolved now is cut.
        self.shared.sealed.store(true, Ordering::SeqCst);
        for b in &self.backends {
            lock(&b.ledger).sealed = true;
        }
        if answer.is_ok() {
            for t in lock(&self.threads).drain(..) {
                let _ = t.join();
            }
        }
        self.conclude(timeout, answer)
    }

    fn request(
        &self,
        timeout: Duration,
        make: impl FnOnce(Instant, Sender<Ack>) -> Control,
    ) -> Result<Vec<Ack>, usize> {
        let deadline = Instant::now() + timeout;
        let expected = self.backends.len();
        let (ack_tx, ack_rx) = bounded(expected.max(1));
        if self
            .control
            .send_deadline(make(deadline, ack_tx), deadline)
            .is_err()
        {
            return Err(expected);
        }
        self.shared.wake_dispatcher();
        let mut acks = Vec::with_capacity(expected);
        for received in 0..expected {
            match ack_rx.recv_deadline(deadline) {
                Ok(ack) => acks.push(ack),
                Err(_) => return Err(expected - received),
            }
        }
        Ok(acks)
    }

    /// Turns the workers' answers and the losses since the previous flush into a result.
    fn conclude(
        &self,
        timeout: Duration,
        answer: Result<Vec<Ack>, usize>,
    ) -> Result<(), FlushError> {
        let loss = self.loss_since_mark();
        let source = self
            .backends
            .iter()
            .filter(|b| loss.backends.iter().any(|l| l.name == b.name))
            .find_map(|b| lock(&b.ledger).last_error.take());
        let acks = match answer {
            Err(unconfirmed) => {
                return Err(FlushError::Timeout {
                    timeout,
                    unconfirmed,
                    loss,
                });
            }
            Ok(acks) => acks,
        };
        if !loss.is_empty() {
            return Err(FlushError::Lost { loss, source });
        }
        for (ack, b) in acks.into_iter().zip(&self.backends) {
            if ack.pending > 0 {
                let why = lock(&b.ledger)
                    .last_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(FlushError::Backend {
                    backend: b.name.clone(),
                    reason: format!(
                        "{} span(s) not delivered yet, peer failing (kept for retry){why}",
                        ack.pending
                    ),
                    source: None,
                });
            }
            if let Err(e) = ack.flush {
                return Err(FlushError::Backend {
                    backend: b.name.clone(),
                    reason: format!("its flush failed: {e}"),
                    source: Some(e),
                });
            }
        }
        Ok(())
    }

    /// The losses counted since the previous call; moves the mark.
    fn loss_since_mark(&self) -> Loss {
        let now = self.stats();
        let mut mark = lock(&self.mark);
        let mut loss = Loss {
            queue_full: now.queue_full - mark.queue_full.min(now.queue_full),
            after_shutdown: now.after_shutdown - mark.after_shutdown.min(now.after_shutdown),
            backends: Vec::new(),
        };
        for (i, b) in now.backends.iter().enumerate() {
            let before = mark.backends.get(i).cloned().unwrap_or_default();
            let rejections = b
                .rejections
                .iter()
                .filter_map(|r| {
                    let was = before
                        .rejections
                        .iter()
                        .find(|p| p.reason == r.reason)
                        .map_or(0, |p| p.spans);
                    (r.spans > was).then(|| Rejection {
                        reason: r.reason.clone(),
                        spans: r.spans - was,
                    })
                })
                .collect();
            let delta = BackendStats {
                name: b.name.clone(),
                dropped: b.dropped.saturating_sub(before.dropped),
                failed: b.failed.saturating_sub(before.failed),
                rejected: b.rejected.saturating_sub(before.rejected),
                cut: b.cut.saturating_sub(before.cut),
                rejections,
                ..BackendStats::default()
            };
            if delta.lost() > 0 {
                loss.backends.push(delta);
            }
        }
        *mark = Mark {
            queue_full: now.queue_full,
            after_shutdown: now.after_shutdown,
            backends: now.backends,
        };
        loss
    }

    /// The most finished spans its queue holds ([`ReporterOptions::queue_capacity`]).
    pub fn queue_capacity(&self) -> usize {
        self.shared.queue.capacity()
    }

    /// Spans per batch handed to backends ([`ReporterOptions::batch_size`]).
    pub fn batch_size(&self) -> usize {
        self.shared.batch_size
    }

    /// Counters: accepted, refused, queued, and per backend where every accepted span is.
    pub fn stats(&self) -> ReporterStats {
        let backends: Vec<BackendStats> = self
            .backends
            .iter()
            .map(|b| {
                let ledger = lock(&b.ledger);
                // Read after the ledger: a span is counted as accepted (queued, then taken)
                // before any backend can resolve it, or the tail decision drop it.
                let sampled_out = self.tail.as_ref().map_or(0, |t| t.dropped_spans());
                let accepted = self.shared.accepted();
                let unresolved = accepted.saturating_sub(ledger.resolved() + sampled_out);
                let (cut, queued) = if ledger.sealed {
                    (unresolved, 0)
                } else {
                    (0, unresolved)
                };
                BackendStats {
                    name: b.name.clone(),
                    sent: ledger.sent,
                    dropped: ledger.dropped,
                    failed: ledger.failed,
                    rejected: ledger.rejected,
                    cut,
                    queued,
                    errors: ledger.errors,
                    rejections: ledger.rejections.iter().map(|(_, r)| r.clone()).collect(),
                }
            })
            .collect();
        let queue_full = self.shared.queue_full.load(Ordering::Relaxed);
        let after_shutdown = self.shared.after_shutdown.load(Ordering::Relaxed);
        ReporterStats {
            accepted: self.shared.accepted(),
            dropped: queue_full + after_shutdown,
            queue_full,
            after_shutdown,
            queued: if self.shared.sealed.load(Ordering::Relaxed) {
                0
            } else {
                self.shared.queue.len()
            },
            backends,
            sampling: self.tail.as_ref().map(|t| t.snapshot()).unwrap_or_default(),
        }
    }
}

struct Dispatcher {
    shared: Arc<Shared>,
    control: Receiver<Control>,
    inboxes: Vec<Sender<Message>>,
    backends: Vec<Arc<BackendShared>>,
    interval: Duration,
    buffer_spans: usize,
    /// Tail sampling's held traces, when it is on.
    tail: Option<TailStage>,
}

impl Dispatcher {
    fn run(mut self) {
        let mut next_tick = Instant::now() + self.interval;
        loop {
            if self.shared.sealed.load(Ordering::Relaxed) {
                return;
            }
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
            if let Some(tail) = &mut self.tail {
                tail.expire(Instant::now());
            }
            self.drain();
            while let Ok(control) = self.control.try_recv() {
                self.drain();
                // Flush and shutdown deliver what is held: every held trace is decided now.
                if let Some(tail) = &mut self.tail {
                    tail.release_all();
                    self.drain();
                }
                match control {
                    Control::Flush { deadline, ack } => {
                        self.broadcast(|| Message::Flush {
                            deadline,
                            ack: ack.clone(),
                        });
                    }
                    Control::Shutdown { deadline, ack } => {
                        self.broadcast(|| Message::Shutdown {
                            deadline,
                            ack: ack.clone(),
                        });
                        return;
                    }
                }
            }
        }
    }

    /// Empties the queue in batches.
    fn drain(&mut self) {
        let batch_size = self.shared.batch_size;
        loop {
            if self.shared.sealed.load(Ordering::Relaxed) {
                return;
            }
            let mut batch = Vec::with_capacity(batch_size.min(self.shared.queue.len()).max(1));
            while batch.len() < batch_size {
                match self.next_span() {
                    Some(span) => batch.push(span),
                    None => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            let full = batch.len() == batch_size;
            let batch = Arc::new(batch);
            for (inbox, backend) in self.inboxes.iter().zip(&self.backends) {
                self.hand(inbox, backend, Message::Batch(batch.clone()), batch.len());
            }
            if !full {
                return;
            }
        }
    }

    /// The next span to send: from the queue, through the tail stage when it is on.
    #[inline]
    fn next_span(&mut self) -> Option<Span> {
        let Some(tail) = &mut self.tail else {
            return self.shared.take();
        };
        loop {
            if let Some(span) = tail.next() {
                return Some(span);
            }
            tail.admit(self.shared.take()?);
        }
    }

    /// Gives a batch to one backend: waits for room while the backend's peer is healthy (the
    /// back-pressure that keeps spans in the one queue); while it is failing, hands the batch
    /// over if the backend holds less than its buffer, else drops and counts it.
    fn hand(&self, inbox: &Sender<Message>, backend: &BackendShared, message: Message, n: usize) {
        loop {
            if backend.failing.load(Ordering::Relaxed) {
                if backend.held.load(Ordering::Relaxed) + n > self.buffer_spans {
                    let mut ledger = lock(&backend.ledger);
                    if !ledger.sealed {
                        ledger.dropped += n as u64;
                    }
                    return;
                }
                break;
            }
            if inbox.len() < INBOX_BATCHES || self.shared.sealed.load(Ordering::Relaxed) {
                break;
            }
            backend.waiting.store(true, Ordering::SeqCst);
            if inbox.len() >= INBOX_BATCHES && !backend.failing.load(Ordering::SeqCst) {
                thread::park_timeout(HAND_OFF_SLICE);
            }
            backend.waiting.store(false, Ordering::Relaxed);
        }
        if self.shared.sealed.load(Ordering::Relaxed) {
            // The account is closed: these spans are counted as cut.
            return;
        }
        backend.held.fetch_add(n, Ordering::Relaxed);
        if inbox.send(message).is_err() {
            // A stopped worker: its spans are cut when the shutdown closes the account.
            backend.held.fetch_sub(n, Ordering::Relaxed);
        }
    }

    fn broadcast(&self, make: impl Fn() -> Message) {
        for inbox in &self.inboxes {
            // A worker stuck past the deadline simply never acknowledges.
            let _ = inbox.send(make());
        }
    }
}

struct Worker {
    backend: Box<dyn Backend>,
    inbox: Receiver<Message>,
    state: Arc<BackendShared>,
    shared: Arc<Shared>,
    options: ReporterOptions,
    /// Rejection reasons logged already (grouping keys).
    logged: HashSet<String>,
}

/// A batch, or what is left of it after a partial delivery.
struct Pending {
    batch: Arc<Vec<Span>>,
    start: usize,
    attempts: u32,
}

impl Pending {
    fn remaining(&self) -> usize {
        self.batch.len() - self.start
    }
}

impl Worker {
    fn run(mut self) {
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut pending_spans = 0usize;
        let mut backoff = self.options.initial_backoff;
        let mut retry_at: Option<Instant> = None;
        loop {
            if self.shared.sealed.load(Ordering::Relaxed) {
                return;
            }
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
                    // Room in the inbox: wake the dispatcher if it waits for it.
                    if self.state.waiting.load(Ordering::SeqCst) {
                        self.shared.wake_dispatcher();
                    }
                    pending_spans += batch.len();
                    pending.push_back(Pending {
                        batch,
                        start: 0,
                        attempts: 0,
                    });
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
                    self.state.failing.store(false, Ordering::Relaxed);
                } else {
                    retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(self.options.max_backoff);
                    self.state.failing.store(true, Ordering::Relaxed);
                }
            }
            if let Some((deadline, ack)) = ack {
                let answer = Ack {
                    pending: pending_spans,
                    flush: if pending.is_empty() {
                        let backend = &mut self.backend;
                        panic::catch_unwind(AssertUnwindSafe(|| backend.flush())).unwrap_or_else(
                            |panic| Err(BackendError::permanent(panicked("flushing", &*panic))),
                        )
                    } else {
                        Ok(())
                    },
                };
                if Instant::now() <= deadline {
                    let _ = ack.send(answer);
                }
            }
            if stop {
                return;
            }
        }
    }

    /// Sends pending batches in order; stops at the first failure worth retrying (false).
    fn deliver(&mut self, pending: &mut VecDeque<Pending>, pending_spans: &mut usize) -> bool {
        while let Some(front) = pending.front_mut() {
            let n = front.remaining();
            let batch = &front.batch[front.start..];
            let backend = &mut self.backend;
            let (outcome, panicked) =
                match panic::catch_unwind(AssertUnwindSafe(|| backend.deliver(batch))) {
                    Ok(outcome) => (outcome, false),
                    Err(panic) => (
                        Delivery::from_result(
                            batch.len(),
                            Err(BackendError::permanent(panicked("delivering", &*panic))),
                        ),
                        true,
                    ),
                };
            let delivered = outcome.delivered.min(n);
            let mut resolved = delivered;
            let state = self.state.clone();
            let mut ledger = lock(&state.ledger);
            if ledger.sealed {
                return true;
            }
            ledger.sent += delivered as u64;
            for (reason, spans) in &outcome.rejected {
                let spans = (*spans).min(n - resolved);
                resolved += spans;
                ledger.reject(reason, spans as u64);
                self.warn_rejected(reason);
            }
            front.start += resolved;
            *pending_spans -= resolved;
            self.state.held.fetch_sub(resolved, Ordering::Relaxed);
            if resolved > 0 {
                front.attempts = 0;
            }
            let rest = n - resolved;
            let any_rejected = resolved > delivered;
            match outcome.error {
                None => {
                    ledger.sent += rest as u64;
                    if any_rejected {
                        ledger.errors += 1;
                    }
                }
                Some(e) if rest == 0 => {
                    ledger.errors += 1;
                    ledger.last_error = Some(e);
                }
                Some(e) if e.is_retryable() => {
                    ledger.errors += 1;
                    front.attempts += 1;
                    if front.attempts <= self.options.max_retries {
                        log::debug!(
                            "tomograph: backend {} failed (will retry): {e}",
                            self.backend.name()
                        );
                        ledger.last_error = Some(e);
                        return false;
                    }
                    log::warn!(
                        "tomograph: backend {} dropped {rest} span(s) after {} attempt(s): {e}",
                        self.backend.name(),
                        front.attempts
                    );
                    ledger.failed += rest as u64;
                    ledger.last_error = Some(e);
                }
                Some(e) if panicked => {
                    // Not retried (the same batch would likely panic again): failed, and the
                    // worker carries on with the next batch.
                    log::error!(
                        "tomograph: backend {} lost {rest} span(s): {e} (counted in \
                         stats().backends[].failed)",
                        self.backend.name()
                    );
                    ledger.errors += 1;
                    ledger.failed += rest as u64;
                    ledger.last_error = Some(e);
                }
                Some(e) => {
                    ledger.errors += 1;
                    let reason = e.to_string();
                    ledger.reject(&reason, rest as u64);
                    self.warn_rejected(&reason);
                    ledger.last_error = Some(e);
                }
            }
            drop(ledger);
            *pending_spans -= rest;
            self.state.held.fetch_sub(rest, Ordering::Relaxed);
            if let Some(done) = pending.pop_front()
                && let Ok(spans) = Arc::try_unwrap(done.batch)
            {
                // The last backend to finish with a batch hands its tag vectors back.
                crate::recycle::spans(spans);
            }
        }
        true
    }

    /// Logs a rejection reason the first time it is seen.
    fn warn_rejected(&mut self, reason: &str) {
        if self.logged.len() >= MAX_LOGGED_REASONS {
            return;
        }
        if self.logged.insert(reason_key(reason)) {
            log::warn!(
                "tomograph: backend {} refused spans: {reason} (counted in stats().backends[].rejected; \
                 each reason is logged once)",
                self.backend.name()
            );
        }
    }
}

/// What a backend that panicked says in its error: the panic's message when it has one.
fn panicked(doing: &str, panic: &(dyn std::any::Any + Send)) -> String {
    format!(
        "the backend panicked while {doing}: {}",
        panic_message(panic)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_group_by_shape() {
        assert_eq!(
            reason_key("collector answered 400: 12/annotations: 1700000000 x"),
            "collector answered #: #/annotations: # x"
        );
    }

    #[test]
    fn loss_reads_per_reason() {
        let loss = Loss {
            queue_full: 2,
            after_shutdown: 0,
            backends: vec![BackendStats {
                name: "zipkin".into(),
                rejected: 3,
                cut: 1,
                rejections: vec![Rejection {
                    reason: "bad".into(),
                    spans: 3,
                }],
                ..BackendStats::default()
            }],
        };
        assert_eq!(loss.total(), 6);
        assert_eq!(
            loss.to_string(),
            "6 span(s) lost: 2 queue full; zipkin: 3 rejected by the peer, 1 cut by the shutdown \
             deadline (first reason: bad)"
        );
    }

    fn span(id: u64) -> Span {
        let (Some(trace), Some(id)) = (crate::TraceId::from_u64(1), crate::SpanId::from_u64(id))
        else {
            unreachable!("non-zero ids")
        };
        Span::new(
            trace,
            id,
            "s",
            crate::Endpoint::new("svc"),
            crate::Timestamp::now(),
        )
    }

    /// A reporter whose dispatcher is never due on its own: a batch larger than anything
    /// reported, an hour between rounds.
    fn idle_reporter(memory: &crate::MemoryBackend) -> Reporter {
        let options = ReporterOptions::default()
            .batch_size(50_000)
            .batch_interval(Duration::from_secs(3600));
        Reporter::start(vec![Box::new(memory.clone())], options).expect("reporter")
    }

    #[test]
    fn spans_still_in_the_queue_are_accepted() {
        let memory = crate::MemoryBackend::new();
        let reporter = idle_reporter(&memory);
        for id in 1..=300 {
            reporter.report(span(id));
        }
        let stats = reporter.stats();
        assert_eq!(stats.accepted, 300, "{stats:?}");
        let b = &stats.backends[0];
        assert_eq!(b.sent + b.queued, 300, "{stats:?}");
        reporter.flush(Duration::from_secs(10)).expect("flush");
        let stats = reporter.stats();
        assert_eq!(
            (stats.accepted, stats.queued, stats.backends[0].sent),
            (300, 0, 300)
        );
        assert_eq!(memory.spans().len(), 300);
    }

    /// While the dispatcher drains, every span pushed is counted at once: none is missed in
    /// its move from the queue to the dispatcher's count (it was, one in a million reports,
    /// before the count became a sequence lock).
    #[test]
    fn accepted_is_exact_while_the_dispatcher_drains() {
        let shared = Shared::new(64, 1);
        let done = AtomicBool::new(false);
        let template = span(1);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if shared.take().is_none() {
                        std::hint::spin_loop();
                    }
                }
            });
            let mut pushed = 0u64;
            let mut missed = 0u64;
            for _ in 0..200_000 {
                if shared.queue.push(template.clone()).is_ok() {
                    pushed += 1;
                }
                missed += pushed - shared.accepted().min(pushed);
            }
            done.store(true, Ordering::Relaxed);
            assert_eq!(
                missed, 0,
                "spans missing from `accepted` over {pushed} reports"
            );
        });
    }

    #[test]
    fn a_filling_queue_wakes_the_dispatcher_before_its_interval() {
        let memory = crate::MemoryBackend::new();
        let reporter = idle_reporter(&memory);
        let wake_at = reporter.shared.wake_at as u64;
        // From one thread and from several: each paces its own checks.
        for id in 1..=wake_at / 2 {
            reporter.report(span(id));
        }
        std::thread::scope(|s| {
            for t in 0..4 {
                let reporter = &reporter;
                s.spawn(move || {
                    for id in 0..wake_at / 8 + WAKE_CHECK_EVERY as u64 {
                        reporter.report(span(wake_at + t * wake_at + id + 1));
                    }
                });
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while memory.spans().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !memory.spans().is_empty(),
            "nothing delivered without a flush: {:?}",
            reporter.stats()
        );
    }
}
