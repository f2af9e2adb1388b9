//! Tail sampling: traces the head decision did not keep are recorded all the same, held by
//! the reporter's dispatcher until their local root ends, and kept if they turn out to matter.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::env::{self, EnvLookup};
use crate::error::ConfigError;
use crate::model::{Span, TraceId};

/// Tail sampling's options: what makes a held trace worth keeping, and the bounds on what is
/// held. Turn it on with [`ConfigBuilder::tail_sampling`](crate::ConfigBuilder::tail_sampling)
/// or `TOMOGRAPH_TAIL_SAMPLING=1`.
///
/// With it on, a trace rooted in this process that the head sampler does not keep (and whose
/// caller, if any, left the decision to this side) is recorded anyway: its spans are **held**
/// by the reporter's dispatcher — not sent — until the trace's local root ends. Then the
/// whole trace is sent if any of its spans
///
/// - **errored** (an `error` tag: [`record_error`](crate::record_error), a failed SQL
///   statement, a panic),
/// - was **slow**: lasted longer than [`slow`](TailSampling::slow), or, for a SQL statement
///   (a span with a `db.system.name` tag), longer than [`slow_sql`](TailSampling::slow_sql),
/// - or was **debug**;
///
/// otherwise it is dropped and counted ([`SamplingStats`]). Traces the head decision kept
/// (here, or by a caller's explicit decision) are sent as usual, span by span, never held;
/// traces a caller explicitly did not sample are not recorded.
///
/// **Bounds.** At most [`max_held_spans`](TailSampling::max_held_spans) spans in at most
/// [`max_held_traces`](TailSampling::max_held_traces) traces are held; beyond, the oldest held
/// traces are decided early, on what they hold so far (kept if that already matters, dropped
/// otherwise), and counted in [`SamplingStats::decided_early`]. So is a trace held longer than
/// [`max_hold`](TailSampling::max_hold) (a root that never ends). Spans of a trace that
/// arrive after its decision follow it (the last `max_held_traces` decisions are
/// remembered). [`flush`](crate::flush) and [`shutdown`](crate::shutdown) decide every held
/// trace early and deliver the kept ones. A held span costs what a queued one does (≈ 360
/// bytes for a SQL span with its tags; see [`crate::Reporter`]): the default cap of 100 000
/// held spans is ≈ 36 MB at most, on top of the queue.
///
/// **What backends see.** Only kept traces reach the backends: statsd's timers and counters
/// of a tail-sampled service over-represent failed and slow requests (the head-kept ones are
/// the unbiased sample).
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `TOMOGRAPH_TAIL_SAMPLING` | `true` (or `1`) turns tail sampling on | `false` |
/// | `TOMOGRAPH_TAIL_SLOW_MS` | a span longer than this keeps its trace | `1000` |
/// | `TOMOGRAPH_TAIL_SLOW_SQL_MS` | a SQL statement longer than this keeps its trace | `250` |
/// | `TOMOGRAPH_TAIL_MAX_SPANS` | spans held at most | `100000` |
/// | `TOMOGRAPH_TAIL_MAX_TRACES` | traces held at most | `10000` |
/// | `TOMOGRAPH_TAIL_MAX_HOLD_MS` | longest a trace is held before it is decided early | `30000` |
///
/// ```
/// use tomograph::sample::{Rate, TailSampling};
/// use tomograph::{Config, MemoryBackend};
/// use std::time::Duration;
///
/// let memory = MemoryBackend::new();
/// tomograph::init(
///     Config::builder()
///         .sample_rate(0.0)
///         .tail_sampling(TailSampling::default().slow(Duration::from_millis(500)))
///         .backend(memory.clone())
///         .build(),
/// ).unwrap();
///
/// let fine = tomograph::span("GET /fine").start();
/// let fine_trace = fine.token().unwrap().trace_id();
/// drop(fine);
/// let failed = tomograph::span("GET /failed").start();
/// let failed_trace = failed.token().unwrap().trace_id();
/// {
///     let query = tomograph::span("query").start();
///     query.record_error("deadlock");
/// }
/// drop(failed);
///
/// tomograph::flush(Duration::from_secs(5)).unwrap();
/// assert!(memory.trace(fine_trace).is_empty(), "nothing happened: dropped");
/// assert_eq!(memory.trace(failed_trace).len(), 2, "kept whole");
/// let stats = tomograph::stats().sampling;
/// assert_eq!((stats.kept_error, stats.dropped), (1, 1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailSampling {
    slow: Duration,
    slow_sql: Duration,
    max_spans: usize,
    max_traces: usize,
    max_hold: Duration,
}

impl Default for TailSampling {
    fn default() -> Self {
        Self {
            slow: Duration::from_secs(1),
            slow_sql: Duration::from_millis(250),
            max_spans: 100_000,
            max_traces: 10_000,
            max_hold: Duration::from_secs(30),
        }
    }
}

impl TailSampling {
    /// A span that lasts longer than `threshold` keeps its trace (default 1 s;
    /// `Duration::MAX`: never).
    pub fn slow(mut self, threshold: Duration) -> Self {
        self.slow = threshold;
        self
    }

    /// A SQL statement (a span with a `db.system.name` tag) that lasts longer than `threshold`
    /// keeps its trace (default 250 ms).
    pub fn slow_sql(mut self, threshold: Duration) -> Self {
        self.slow_sql = threshold;
        self
    }

    /// Spans held at most (default 100 000; at least 1).
    pub fn max_held_spans(mut self, n: usize) -> Self {
        self.max_spans = n.max(1);
        self
    }

    /// Traces held at most (default 10 000; at least 1).
    pub fn max_held_traces(mut self, n: usize) -> Self {
        self.max_traces = n.max(1);
        self
    }

    /// Longest a trace is held before it is decided early (default 30 s).
    pub fn max_hold(mut self, limit: Duration) -> Self {
        self.max_hold = limit;
        self
    }

    /// The slow threshold for every span.
    pub fn slow_threshold(&self) -> Duration {
        self.slow
    }

    /// The slow threshold for SQL statements.
    pub fn slow_sql_threshold(&self) -> Duration {
        self.slow_sql
    }

    /// The cap on held spans.
    pub fn held_spans_cap(&self) -> usize {
        self.max_spans
    }

    /// The cap on held traces.
    pub fn held_traces_cap(&self) -> usize {
        self.max_traces
    }

    /// The time limit per held trace.
    pub fn hold_limit(&self) -> Duration {
        self.max_hold
    }

    /// The defaults, changed by the `TOMOGRAPH_TAIL_*` variables that are set.
    pub(crate) fn from_lookup(env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let millis =
            |name| env::read(env, name, "milliseconds").map(|v| v.map(Duration::from_millis));
        let mut t = Self::default();
        if let Some(d) = millis(env::TAIL_SLOW_MS)? {
            t = t.slow(d);
        }
        if let Some(d) = millis(env::TAIL_SLOW_SQL_MS)? {
            t = t.slow_sql(d);
        }
        if let Some(n) = env::read(env, env::TAIL_MAX_SPANS, "a count")? {
            t = t.max_held_spans(n);
        }
        if let Some(n) = env::read(env, env::TAIL_MAX_TRACES, "a count")? {
            t = t.max_held_traces(n);
        }
        if let Some(d) = millis(env::TAIL_MAX_HOLD_MS)? {
            t = t.max_hold(d);
        }
        Ok(t)
    }
}

/// The counters of the tail decision ([`ReporterStats::sampling`](crate::ReporterStats));
/// all zero while tail sampling is off.
///
/// Every trace with a local root in this process counts once, when that root ends (or when it
/// is decided early): as kept, under the first reason that applies in the order `debug`,
/// `head`, `error`, `slow`, or as dropped. Spans of dropped traces are counted apart, in
/// [`dropped_spans`](SamplingStats::dropped_spans): they are accepted by the reporter and
/// reach no backend, so for each backend `accepted = dropped_spans + sent + lost + queued`
/// (held spans count as queued).
///
/// ```
/// let stats = tomograph::stats().sampling;
/// assert_eq!(stats.kept(), stats.kept_error + stats.kept_slow + stats.kept_head + stats.kept_debug);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SamplingStats {
    /// Traces kept because a span errored.
    pub kept_error: u64,
    /// Traces kept because a span was slow.
    pub kept_slow: u64,
    /// Traces the head decision kept (the sampler here, or a caller's explicit decision):
    /// sent span by span, never held.
    pub kept_head: u64,
    /// Debug traces.
    pub kept_debug: u64,
    /// Held traces dropped.
    pub dropped: u64,
    /// Spans dropped with their traces (also those that arrived after the decision).
    pub dropped_spans: u64,
    /// Held traces decided before their local root ended: a cap reached, held too long, or a
    /// flush or shutdown (also counted as kept or dropped).
    pub decided_early: u64,
    /// Traces held now.
    pub held_traces: u64,
    /// Spans held now.
    pub held_spans: u64,
    /// The most traces held at once.
    pub peak_held_traces: u64,
    /// The most spans held at once.
    pub peak_held_spans: u64,
}

impl SamplingStats {
    /// Traces kept, for any reason.
    pub fn kept(&self) -> u64 {
        self.kept_error + self.kept_slow + self.kept_head + self.kept_debug
    }
}

/// Why a trace is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Debug,
    Head,
    Error,
    Slow,
}

/// The counters, written by the dispatcher, read by `stats()`.
#[derive(Debug, Default)]
pub(crate) struct TailCounters {
    kept_error: AtomicU64,
    kept_slow: AtomicU64,
    kept_head: AtomicU64,
    kept_debug: AtomicU64,
    dropped: AtomicU64,
    dropped_spans: AtomicU64,
    decided_early: AtomicU64,
    held_traces: AtomicU64,
    held_spans: AtomicU64,
    peak_held_traces: AtomicU64,
    peak_held_spans: AtomicU64,
}

impl TailCounters {
    pub(crate) fn snapshot(&self) -> SamplingStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SamplingStats {
            kept_error: get(&self.kept_error),
            kept_slow: get(&self.kept_slow),
            kept_head: get(&self.kept_head),
            kept_debug: get(&self.kept_debug),
            dropped: get(&self.dropped),
            dropped_spans: self.dropped_spans(),
            decided_early: get(&self.decided_early),
            held_traces: get(&self.held_traces),
            held_spans: get(&self.held_spans),
            peak_held_traces: get(&self.peak_held_traces),
            peak_held_spans: get(&self.peak_held_spans),
        }
    }

    /// Spans accepted by the reporter that no backend will see.
    pub(crate) fn dropped_spans(&self) -> u64 {
        self.dropped_spans.load(Ordering::Acquire)
    }

    fn kept(&self, reason: Reason) {
        let counter = match reason {
            Reason::Debug => &self.kept_debug,
            Reason::Head => &self.kept_head,
            Reason::Error => &self.kept_error,
            Reason::Slow => &self.kept_slow,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A trace being held.
struct Held {
    spans: Vec<Span>,
    /// Its place in the arrival order.
    seq: u64,
    since: Instant,
    /// Why it is worth keeping, once a span said so.
    reason: Option<Reason>,
}

/// The dispatcher's tail stage: every span the queue yields passes through
/// [`admit`](TailStage::admit); what is to be sent comes out of [`next`](TailStage::next).
/// Owned by the dispatcher thread: no lock.
pub(crate) struct TailStage {
    options: TailSampling,
    counters: Arc<TailCounters>,
    held: HashMap<TraceId, Held>,
    /// Held traces by arrival: the oldest first.
    order: BTreeMap<u64, TraceId>,
    next_seq: u64,
    held_spans: usize,
    /// The latest decisions (kept?), for spans that arrive after them.
    decided: HashMap<TraceId, bool>,
    decided_order: VecDeque<TraceId>,
    ready: VecDeque<Span>,
    /// The most traces and spans held at once.
    peak: (u64, u64),
}

impl TailStage {
    pub(crate) fn new(options: TailSampling, counters: Arc<TailCounters>) -> Self {
        Self {
            options,
            counters,
            held: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            held_spans: 0,
            decided: HashMap::new(),
            decided_order: VecDeque::new(),
            ready: VecDeque::new(),
            peak: (0, 0),
        }
    }

    /// The next span to send, if any.
    pub(crate) fn next(&mut self) -> Option<Span> {
        self.ready.pop_front()
    }

    /// Takes one span from the queue: passed on, held, or (a late span of a dropped trace)
    /// dropped. A held trace's local root decides the trace.
    pub(crate) fn admit(&mut self, span: Span) {
        let local_root = span.parent_id.is_none() || span.remote_parent;
        if !span.held {
            if local_root {
                self.counters.kept(if span.debug {
                    Reason::Debug
                } else {
                    Reason::Head
                });
            }
            self.ready.push_back(span);
            return;
        }
        let reason = self.reason(&span);
        let trace_id = span.trace_id;
        if let Some(held) = self.held.get_mut(&trace_id) {
            held.reason = held.reason.or(reason);
            if local_root {
                if let Some(held) = self.take(trace_id) {
                    let mut spans = held.spans;
                    spans.push(span);
                    self.decide(trace_id, spans, held.reason);
                }
            } else {
                held.spans.push(span);
                self.held_spans += 1;
                self.enforce_caps();
            }
            self.publish();
            return;
        }
        if let Some(&kept) = self.decided.get(&trace_id) {
            // After its trace's decision (an early one, or another local root's).
            if kept {
                self.ready.push_back(span);
            } else {
                self.counters.dropped_spans.fetch_add(1, Ordering::Release);
                crate::recycle::spans(vec![span]);
            }
            return;
        }
        if local_root {
            self.decide(trace_id, vec![span], reason);
        } else {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.insert(seq, trace_id);
            let mut spans = Vec::with_capacity(8);
            spans.push(span);
            self.held.insert(
                trace_id,
                Held {
                    spans,
                    seq,
                    since: Instant::now(),
                    reason,
                },
            );
            self.held_spans += 1;
            self.enforce_caps();
        }
        self.publish();
    }

    /// Decides early the traces held longer than the time limit.
    pub(crate) fn expire(&mut self, now: Instant) {
        let mut any = false;
        while let Some((_, &trace_id)) = self.order.first_key_value() {
            let expired = self
                .held
                .get(&trace_id)
                .is_none_or(|h| now.saturating_duration_since(h.since) >= self.options.max_hold);
            if !expired {
                break;
            }
            self.decide_early(trace_id);
            any = true;
        }
        if any {
            self.publish();
        }
    }

    /// Decides every held trace now (flush, shutdown).
    pub(crate) fn release_all(&mut self) {
        while let Some((_, &trace_id)) = self.order.first_key_value() {
            self.decide_early(trace_id);
        }
        self.publish();
    }

    fn enforce_caps(&mut self) {
        while self.held_spans > self.options.max_spans || self.held.len() > self.options.max_traces
        {
            let Some((_, &oldest)) = self.order.first_key_value() else {
                break;
            };
            self.decide_early(oldest);
        }
    }

    fn decide_early(&mut self, trace_id: TraceId) {
        match self.take(trace_id) {
            Some(held) => {
                self.counters.decided_early.fetch_add(1, Ordering::Relaxed);
                self.decide(trace_id, held.spans, held.reason);
            }
            None => {
                // Cannot happen (order and held change together); never loop on it.
                self.order.retain(|_, t| *t != trace_id);
            }
        }
    }

    /// Removes a held trace.
    fn take(&mut self, trace_id: TraceId) -> Option<Held> {
        let held = self.held.remove(&trace_id)?;
        self.order.remove(&held.seq);
        self.held_spans -= held.spans.len();
        Some(held)
    }

    fn decide(&mut self, trace_id: TraceId, spans: Vec<Span>, reason: Option<Reason>) {
        let kept = reason.is_some();
        match reason {
            Some(reason) => {
                self.counters.kept(reason);
                self.ready.extend(spans);
            }
            None => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .dropped_spans
                    .fetch_add(spans.len() as u64, Ordering::Release);
                crate::recycle::spans(spans);
            }
        }
        self.remember(trace_id, kept);
    }

    fn remember(&mut self, trace_id: TraceId, kept: bool) {
        if self.decided.insert(trace_id, kept).is_none() {
            self.decided_order.push_back(trace_id);
        }
        while self.decided_order.len() > self.options.max_traces {
            if let Some(old) = self.decided_order.pop_front() {
                self.decided.remove(&old);
            }
        }
    }

    /// Why this span makes its trace worth keeping, if it does.
    fn reason(&self, span: &Span) -> Option<Reason> {
        if span.debug {
            return Some(Reason::Debug);
        }
        let tags = span.tags();
        if tags.get("error").is_some() {
            return Some(Reason::Error);
        }
        let duration = span.duration();
        let slow = if tags.get("db.system.name").is_some() {
            self.options.slow_sql.min(self.options.slow)
        } else {
            self.options.slow
        };
        (duration > slow).then_some(Reason::Slow)
    }

    /// Updates the gauges (plain stores; the peaks only when they grow).
    fn publish(&mut self) {
        let traces = self.held.len() as u64;
        let spans = self.held_spans as u64;
        let c = &self.counters;
        c.held_traces.store(traces, Ordering::Relaxed);
        c.held_spans.store(spans, Ordering::Relaxed);
        if traces > self.peak.0 {
            self.peak.0 = traces;
            c.peak_held_traces.store(traces, Ordering::Relaxed);
        }
        if spans > self.peak.1 {
            self.peak.1 = spans;
            c.peak_held_spans.store(spans, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::model::{Endpoint, SpanId};

    fn span(trace: u64, id: u64, parent: Option<u64>) -> Span {
        let start = Timestamp::from_unix_micros(1_000_000);
        let mut s = Span::new(
            TraceId::from_u64(trace).unwrap_or_else(|| unreachable!()),
            SpanId::from_u64(id).unwrap_or_else(|| unreachable!()),
            "s",
            Endpoint::new("svc"),
            start,
        )
        .with_end(start + Duration::from_millis(1));
        s.parent_id = parent.and_then(SpanId::from_u64);
        s.held = true;
        s
    }

    fn stage(options: TailSampling) -> (TailStage, Arc<TailCounters>) {
        let counters = Arc::new(TailCounters::default());
        (TailStage::new(options, counters.clone()), counters)
    }

    fn drain(stage: &mut TailStage) -> Vec<Span> {
        std::iter::from_fn(|| stage.next()).collect()
    }

    #[test]
    fn a_quiet_trace_is_dropped_and_an_erring_one_kept_whole() {
        let (mut stage, counters) = stage(TailSampling::default());
        stage.admit(span(1, 2, Some(1)));
        stage.admit(span(1, 1, None));
        stage.admit(span(2, 2, Some(1)).with_tag("error", "boom"));
        stage.admit(span(2, 3, Some(1)));
        assert!(drain(&mut stage).is_empty(), "held until the root ends");
        stage.admit(span(2, 1, None));
        assert_eq!(drain(&mut stage).len(), 3);
        let stats = counters.snapshot();
        assert_eq!(
            (stats.kept_error, stats.dropped, stats.dropped_spans),
            (1, 1, 2)
        );
        assert_eq!((stats.held_traces, stats.held_spans), (0, 0));
        // A late span follows its trace's decision.
        stage.admit(span(1, 9, Some(1)));
        stage.admit(span(2, 9, Some(1)));
        assert_eq!(drain(&mut stage).len(), 1);
        assert_eq!(counters.snapshot().dropped_spans, 3);
    }

    #[test]
    fn slow_spans_and_slow_statements_keep_their_traces() {
        let options = TailSampling::default()
            .slow(Duration::from_millis(100))
            .slow_sql(Duration::from_millis(10));
        let (mut stage, counters) = stage(options);
        let long = |s: Span, ms| {
            let start = s.start();
            s.with_end(start + Duration::from_millis(ms))
        };
        stage.admit(long(span(1, 1, None), 150));
        stage.admit(long(span(2, 2, Some(1)), 50).with_tag("db.system.name", "sqlite"));
        stage.admit(span(2, 1, None));
        stage.admit(long(span(3, 2, Some(1)), 50));
        stage.admit(span(3, 1, None));
        assert_eq!(drain(&mut stage).len(), 3);
        let stats = counters.snapshot();
        assert_eq!((stats.kept_slow, stats.dropped), (2, 1));
    }

    #[test]
    fn caps_decide_the_oldest_early() {
        let (mut stage, counters) = stage(
            TailSampling::default()
                .max_held_spans(10)
                .max_held_traces(3),
        );
        stage.admit(span(1, 2, Some(1)).with_tag("error", "x"));
        for trace in 2..=4 {
            stage.admit(span(trace, 2, Some(1)));
        }
        let stats = counters.snapshot();
        assert_eq!(
            (stats.held_traces, stats.decided_early, stats.kept_error),
            (3, 1, 1)
        );
        assert_eq!(drain(&mut stage).len(), 1, "trace 1 kept on what it held");
        for id in 10..30 {
            stage.admit(span(9, id, Some(1)));
        }
        let stats = counters.snapshot();
        assert!(
            stats.peak_held_spans <= 10 && stats.peak_held_traces <= 3,
            "{stats:?}"
        );
        stage.release_all();
        assert_eq!(counters.snapshot().held_spans, 0);
    }

    #[test]
    fn the_time_limit_decides_early() {
        let (mut stage, counters) = stage(TailSampling::default().max_hold(Duration::ZERO));
        stage.admit(span(1, 2, Some(1)));
        stage.expire(Instant::now());
        let stats = counters.snapshot();
        assert_eq!(
            (stats.decided_early, stats.dropped, stats.held_traces),
            (1, 1, 0)
        );
    }
}
