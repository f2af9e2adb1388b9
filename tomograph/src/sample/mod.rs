//! Sampling: which traces are recorded and sent.
//!
//! # Head sampling
//!
//! A trace's fate is decided at its **root** — the first span of the trace in this process,
//! with no parent or with a parent in another process that left the decision to us — by a
//! [`Sampler`], from what is known there: the root's name, kind and start tags, its trace id,
//! and whether a caller deferred the decision ([`SamplingContext`]). Children inherit the
//! decision; tokens and outgoing headers carry it. A caller's explicit decision (B3
//! `X-B3-Sampled: 1`/`0`, `b3: …-1`, W3C flag `01`/`00`) is followed without asking the
//! sampler; a deferred one (B3 without a sampled flag) is decided here.
//!
//! The samplers: [`Always`], [`Never`], [`Rate`] (a fraction of traces, decided from the trace
//! id so that every service using the same rate decides a deferred trace alike),
//! [`RateLimit`] (at most N traces a second, smooth, lock-free) and [`Rules`] (by root name,
//! first match wins). Set one with
//! [`ConfigBuilder::sampler`](crate::ConfigBuilder::sampler), or in the environment:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TOMOGRAPH_SAMPLE_RATE` | 0.0–1.0, the fraction of traces kept (of those no rule matches) | `1.0` |
//! | `TOMOGRAPH_SAMPLE_RULES` | rules by root name, `pattern=value` separated by commas, first match wins (see [`Rules`]) | none |
//! | `TOMOGRAPH_SAMPLE_LIMIT` | at most this many traces kept a second by the head decision | none |
//!
//! # Tail sampling
//!
//! With [`TailSampling`] on (`TOMOGRAPH_TAIL_SAMPLING=1`), a trace rooted here that the head
//! decision did not keep is recorded all the same and **held** by the reporter until its local
//! root ends; then it is sent if any of its spans errored, was slow or was debug, and dropped
//! otherwise. See [`TailSampling`] for the thresholds, the caps and the variables, and
//! [`SamplingStats`] for the counters.
//!
//! ```
//! use tomograph::sample::{Rules, SamplingContext, SamplingDecision, Sampler};
//! use tomograph::TraceId;
//!
//! let rules: Rules = "GET /health=0, POST /checkout=1, *=0.01".parse().unwrap();
//! let trace = TraceId::from_u64(42).unwrap();
//! assert_eq!(rules.sample(&SamplingContext::new("GET /health", trace)), SamplingDecision::Discard);
//! assert_eq!(rules.sample(&SamplingContext::new("POST /checkout", trace)), SamplingDecision::Keep);
//! ```

mod rate;
mod rate_limit;
mod rules;
pub(crate) mod tail;

use std::fmt;
use std::sync::Arc;

pub use rate::Rate;
pub use rate_limit::RateLimit;
pub use rules::{Rules, RulesParseError};
pub use tail::{SamplingStats, TailSampling};

use crate::env::{self, EnvLookup};
use crate::error::ConfigError;
use crate::model::{Kind, SpanId, Tag, TagValue, TraceId, TraceToken};

/// Decides at a trace's root whether the trace is kept. Object safe: the tracer holds a
/// `Box<dyn Sampler>`; called on the thread that starts the root, so it must be cheap and
/// never block.
///
/// ```
/// use tomograph::sample::{Sampler, SamplingContext, SamplingDecision};
/// use tomograph::Kind;
///
/// /// Keeps every server request, nothing else.
/// #[derive(Debug)]
/// struct ServersOnly;
/// impl Sampler for ServersOnly {
///     fn sample(&self, context: &SamplingContext<'_>) -> SamplingDecision {
///         SamplingDecision::keep_if(context.kind() == Some(Kind::Server))
///     }
/// }
/// let config = tomograph::Config::builder().sampler(ServersOnly).build();
/// ```
pub trait Sampler: Send + Sync + fmt::Debug + 'static {
    /// The head decision for the trace whose root `context` describes.
    fn sample(&self, context: &SamplingContext<'_>) -> SamplingDecision;
}

impl<S: Sampler + ?Sized> Sampler for Box<S> {
    fn sample(&self, context: &SamplingContext<'_>) -> SamplingDecision {
        (**self).sample(context)
    }
}

impl<S: Sampler + ?Sized> Sampler for Arc<S> {
    fn sample(&self, context: &SamplingContext<'_>) -> SamplingDecision {
        (**self).sample(context)
    }
}

/// A sampler's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SamplingDecision {
    /// Record the trace and send it.
    Keep,
    /// Do not keep the trace on the head decision. With tail sampling on, a trace rooted here
    /// is still recorded and held, and kept if it turns out to matter.
    Discard,
}

impl SamplingDecision {
    /// [`Keep`](Self::Keep) when `keep`, else [`Discard`](Self::Discard).
    ///
    /// ```
    /// use tomograph::sample::SamplingDecision;
    /// assert_eq!(SamplingDecision::keep_if(true), SamplingDecision::Keep);
    /// ```
    pub fn keep_if(keep: bool) -> Self {
        if keep { Self::Keep } else { Self::Discard }
    }

    /// Whether the trace is kept.
    pub fn is_keep(self) -> bool {
        self == Self::Keep
    }
}

/// What is known at a trace's root, for a [`Sampler`].
///
/// ```
/// use tomograph::sample::SamplingContext;
/// use tomograph::{Kind, Tag, TraceId};
/// let tags = [Tag::new("http.method", "GET")];
/// let context = SamplingContext::new("GET /users", TraceId::from_u64(7).unwrap())
///     .with_kind(Some(Kind::Server))
///     .with_tags(&tags);
/// assert_eq!(context.name(), "GET /users");
/// assert_eq!(context.tag("http.method").map(|v| v.to_string()).as_deref(), Some("GET"));
/// assert!(!context.has_remote_parent());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SamplingContext<'a> {
    name: &'a str,
    kind: Option<Kind>,
    trace_id: TraceId,
    remote_parent: bool,
    tags: &'a [Tag],
}

impl<'a> SamplingContext<'a> {
    /// The root `name` of trace `trace_id`, of no kind, with no tags and no remote parent.
    pub fn new(name: &'a str, trace_id: TraceId) -> Self {
        Self {
            name,
            kind: None,
            trace_id,
            remote_parent: false,
            tags: &[],
        }
    }

    /// The same context with the root's kind.
    pub fn with_kind(mut self, kind: Option<Kind>) -> Self {
        self.kind = kind;
        self
    }

    /// The same context with the tags given at start.
    pub fn with_tags(mut self, tags: &'a [Tag]) -> Self {
        self.tags = tags;
        self
    }

    /// The same context, continuing a caller in another process that deferred the decision.
    pub fn with_remote_parent(mut self, remote_parent: bool) -> Self {
        self.remote_parent = remote_parent;
        self
    }

    /// The root span's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The root span's kind, when given at start.
    pub fn kind(&self) -> Option<Kind> {
        self.kind
    }

    /// The trace.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// Whether the root continues a caller in another process that left the decision to this
    /// side (B3 without a sampled flag). Callers that decided are followed without asking.
    pub fn has_remote_parent(&self) -> bool {
        self.remote_parent
    }

    /// The tags given at start.
    pub fn tags(&self) -> &'a [Tag] {
        self.tags
    }

    /// The last value given at start for `key`.
    pub fn tag(&self, key: &str) -> Option<&'a TagValue> {
        self.tags
            .iter()
            .rev()
            .find(|t| &*t.key == key)
            .map(|t| &t.value)
    }
}

/// Keeps every trace.
///
/// ```
/// use tomograph::sample::{Always, Sampler, SamplingContext};
/// let context = SamplingContext::new("any", tomograph::TraceId::from_u64(1).unwrap());
/// assert!(Always.sample(&context).is_keep());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Always;

impl Sampler for Always {
    fn sample(&self, _: &SamplingContext<'_>) -> SamplingDecision {
        SamplingDecision::Keep
    }
}

/// Keeps no trace (with tail sampling on: only those that turn out to matter).
///
/// ```
/// use tomograph::sample::{Never, Sampler, SamplingContext};
/// let context = SamplingContext::new("any", tomograph::TraceId::from_u64(1).unwrap());
/// assert!(!Never.sample(&context).is_keep());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Never;

impl Sampler for Never {
    fn sample(&self, _: &SamplingContext<'_>) -> SamplingDecision {
        SamplingDecision::Discard
    }
}

/// The tracer's head decision: the configured sampler, with the plain rate (the default,
/// and `TOMOGRAPH_SAMPLE_RATE` alone) inlined rather than called through a `dyn`, and whether
/// traces the sampler discards are held for the tail decision.
#[derive(Debug)]
pub(crate) struct Head {
    sampler: HeadSampler,
    tail: bool,
}

#[derive(Debug)]
enum HeadSampler {
    Rate(Rate),
    Custom(Box<dyn Sampler>),
}

/// The fate of a new local root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RootDecision {
    /// Recorded and sent.
    Keep,
    /// Recorded and held for the tail decision.
    Hold,
    /// Not recorded.
    Discard,
}

impl Head {
    pub(crate) fn new(sampler: Option<Box<dyn Sampler>>, rate: f64, tail: bool) -> Self {
        let sampler = match sampler {
            Some(s) => HeadSampler::Custom(s),
            None => HeadSampler::Rate(Rate::new(rate)),
        };
        Self { sampler, tail }
    }

    #[inline]
    pub(crate) fn decide(&self, context: &SamplingContext<'_>) -> RootDecision {
        let keep = match &self.sampler {
            HeadSampler::Rate(rate) => rate.keeps(context.trace_id),
            HeadSampler::Custom(s) => s.sample(context).is_keep(),
        };
        if keep {
            RootDecision::Keep
        } else if self.tail {
            RootDecision::Hold
        } else {
            RootDecision::Discard
        }
    }
}

/// What a new span is, once its parent is known and, at a root, the head decision made.
pub(crate) struct Placement {
    pub(crate) trace_id: TraceId,
    pub(crate) parent_id: Option<SpanId>,
    /// Recorded (kept, or held for the tail decision).
    pub(crate) sampled: bool,
    pub(crate) debug: bool,
    pub(crate) remote_parent: bool,
    /// Held for the tail decision.
    pub(crate) held: bool,
}

impl Placement {
    /// The token of the span placed here, whose id is `span_id`.
    #[inline(always)]
    pub(crate) fn token(&self, span_id: SpanId) -> TraceToken {
        TraceToken {
            trace_id: self.trace_id,
            span_id,
            sampled: self.sampled,
            debug: self.debug,
            remote: false,
            deferred: self.held,
        }
    }
}

/// Places a new span under `parent` (none: a new trace), deciding at a local root: a new
/// trace, or a caller in another process that deferred the decision. A parent that decided
/// (here or remotely) is followed; a held parent's children are held.
#[inline]
pub(crate) fn place(
    head: &Head,
    parent: Option<TraceToken>,
    wide_trace_ids: bool,
    name: &str,
    kind: Option<Kind>,
    tags: &[Tag],
) -> Placement {
    match parent {
        Some(p) if !(p.deferred && p.remote) => Placement {
            trace_id: p.trace_id,
            parent_id: Some(p.span_id),
            sampled: p.sampled,
            debug: p.debug,
            remote_parent: p.remote,
            held: p.deferred,
        },
        _ => {
            let (trace_id, parent_id) = match parent {
                Some(p) => (p.trace_id, Some(p.span_id)),
                None => (TraceId::random(wide_trace_ids), None),
            };
            let context = SamplingContext {
                name,
                kind,
                trace_id,
                remote_parent: parent.is_some(),
                tags,
            };
            let decision = head.decide(&context);
            Placement {
                trace_id,
                parent_id,
                sampled: decision != RootDecision::Discard,
                debug: false,
                remote_parent: parent.is_some(),
                held: decision == RootDecision::Hold,
            }
        }
    }
}

/// The head sampler and the tail options the `TOMOGRAPH_*` variables describe, on top of
/// `rate` (`TOMOGRAPH_SAMPLE_RATE`, read by the caller): `TOMOGRAPH_SAMPLE_RULES`,
/// `TOMOGRAPH_SAMPLE_LIMIT`, and the `TOMOGRAPH_TAIL_*` variables (see [`TailSampling`]).
pub(crate) fn from_lookup(env: EnvLookup<'_>, rate: f64) -> Result<FromEnv, ConfigError> {
    let rules =
        match env::non_blank(env, env::SAMPLE_RULES) {
            Some(text) => Some(Rules::parse_with_fallback(&text, Rate::new(rate)).map_err(
                |e| ConfigError::InvalidValue {
                    variable: env::SAMPLE_RULES,
                    value: e.item().to_owned(),
                    reason: e.to_string(),
                },
            )?),
            None => None,
        };
    let limit = match env::non_blank(env, env::SAMPLE_LIMIT) {
        Some(v) => Some(parse_limit(env::SAMPLE_LIMIT, &v)?),
        None => None,
    };
    let sampler: Option<Box<dyn Sampler>> = match (rules, limit) {
        (None, None) => None,
        (Some(rules), None) => Some(Box::new(rules)),
        (Some(rules), Some(limit)) => Some(Box::new(RateLimit::per_second(limit).of(rules))),
        (None, Some(limit)) => Some(Box::new(RateLimit::per_second(limit).of(Rate::new(rate)))),
    };
    let tail = match env::read_bool(env, env::TAIL_SAMPLING)? {
        Some(true) => Some(TailSampling::from_lookup(env)?),
        _ => None,
    };
    Ok(FromEnv { sampler, tail })
}

/// What the sampling variables say.
pub(crate) struct FromEnv {
    /// `None` when neither rules nor a limit are set (the plain rate applies).
    pub(crate) sampler: Option<Box<dyn Sampler>>,
    /// `None` when tail sampling is off.
    pub(crate) tail: Option<TailSampling>,
}

/// A positive number of traces a second.
fn parse_limit(variable: &'static str, value: &str) -> Result<f64, ConfigError> {
    match value.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(ConfigError::InvalidValue {
            variable,
            value: value.to_owned(),
            reason: "expected a number of traces a second, above 0".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::env::fixed as lookup;

    #[test]
    fn nothing_set_means_the_plain_rate_and_no_tail() {
        let got = from_lookup(&lookup(&[]), 0.5).unwrap();
        assert!(got.sampler.is_none() && got.tail.is_none());
    }

    #[test]
    fn rules_fall_back_to_the_rate() {
        let env = lookup(&[("TOMOGRAPH_SAMPLE_RULES", "GET /health=0")]);
        let sampler = from_lookup(&env, 1.0).unwrap().sampler.unwrap();
        let trace = TraceId::from_u64(3).unwrap();
        assert!(
            !sampler
                .sample(&SamplingContext::new("GET /health", trace))
                .is_keep()
        );
        assert!(
            sampler
                .sample(&SamplingContext::new("GET /users", trace))
                .is_keep()
        );
    }

    #[test]
    fn the_limit_caps_what_the_rate_keeps() {
        let env = lookup(&[("TOMOGRAPH_SAMPLE_LIMIT", "0.001")]);
        let sampler = from_lookup(&env, 1.0).unwrap().sampler.unwrap();
        let context = SamplingContext::new("GET /", TraceId::from_u64(3).unwrap());
        assert!(sampler.sample(&context).is_keep(), "the first trace");
        assert!(!sampler.sample(&context).is_keep(), "then one every 1000 s");
        let none = from_lookup(&env, 0.0).unwrap().sampler.unwrap();
        assert!(!none.sample(&context).is_keep(), "nothing kept by the rate");
    }

    #[test]
    fn bad_values_name_the_variable_and_the_part() {
        for (pairs, variable, part) in [
            (
                &[("TOMOGRAPH_SAMPLE_RULES", "GET /health=0,POST /x=often")][..],
                "TOMOGRAPH_SAMPLE_RULES",
                "POST /x=often",
            ),
            (
                &[("TOMOGRAPH_SAMPLE_LIMIT", "-3")][..],
                "TOMOGRAPH_SAMPLE_LIMIT",
                "-3",
            ),
            (
                &[("TOMOGRAPH_TAIL_SAMPLING", "perhaps")][..],
                "TOMOGRAPH_TAIL_SAMPLING",
                "perhaps",
            ),
            (
                &[
                    ("TOMOGRAPH_TAIL_SAMPLING", "1"),
                    ("TOMOGRAPH_TAIL_SLOW_MS", "slow"),
                ][..],
                "TOMOGRAPH_TAIL_SLOW_MS",
                "slow",
            ),
        ] {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(pairs.into());
            let err = from_lookup(&lookup(pairs), 1.0).map(|_| ()).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(variable) && text.contains(part), "{text}");
        }
    }

    #[test]
    fn tail_sampling_reads_its_variables() {
        let env = lookup(&[
            ("TOMOGRAPH_TAIL_SAMPLING", "true"),
            ("TOMOGRAPH_TAIL_SLOW_MS", "800"),
            ("TOMOGRAPH_TAIL_SLOW_SQL_MS", "50"),
            ("TOMOGRAPH_TAIL_MAX_SPANS", "1000"),
            ("TOMOGRAPH_TAIL_MAX_TRACES", "10"),
            ("TOMOGRAPH_TAIL_MAX_HOLD_MS", "2000"),
        ]);
        let tail = from_lookup(&env, 1.0).unwrap().tail.unwrap();
        assert_eq!(tail.slow_threshold(), std::time::Duration::from_millis(800));
        assert_eq!(
            tail.slow_sql_threshold(),
            std::time::Duration::from_millis(50)
        );
        assert_eq!((tail.held_spans_cap(), tail.held_traces_cap()), (1000, 10));
        assert_eq!(tail.hold_limit(), std::time::Duration::from_secs(2));
    }

    #[test]
    fn the_head_holds_what_it_discards_only_with_tail_sampling_on() {
        let context = SamplingContext::new("x", TraceId::from_u64(9).unwrap());
        assert_eq!(
            Head::new(None, 0.0, false).decide(&context),
            RootDecision::Discard
        );
        assert_eq!(
            Head::new(None, 0.0, true).decide(&context),
            RootDecision::Hold
        );
        assert_eq!(
            Head::new(Some(Box::new(Always)), 0.0, true).decide(&context),
            RootDecision::Keep
        );
    }
}
