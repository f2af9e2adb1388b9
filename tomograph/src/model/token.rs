//! Trace tokens: what it takes to continue a trace elsewhere (another thread, task, process).

use std::fmt;
use std::str::FromStr;

use crate::error::TokenParseError;
use crate::model::{SpanId, TraceId};

/// The identity of a span, enough to start its children anywhere: trace id, span id and the
/// sampling decision. `Copy + Send`; prints as `{trace}-{span}-{1|0|d}` (the B3 single-header
/// form) and parses back, for queues and RPC payloads. A trace whose decision is deferred
/// (held for the tail decision here, or left to this side by a caller) prints without the
/// flag, `{trace}-{span}`, as B3 writes a deferred decision.
///
/// ```
/// use tomograph::TraceToken;
/// let token: TraceToken = "463ac35c9f6413ad-a2fb4a1d1a96d312-1".parse().unwrap();
/// assert!(token.sampled() && !token.is_deferred());
/// assert_eq!(token.to_string(), "463ac35c9f6413ad-a2fb4a1d1a96d312-1");
/// let deferred: TraceToken = "463ac35c9f6413ad-a2fb4a1d1a96d312".parse().unwrap();
/// assert!(deferred.is_deferred(), "decided where a span starts from it");
/// assert_eq!(deferred.to_string(), "463ac35c9f6413ad-a2fb4a1d1a96d312");
/// assert!("not a token".parse::<TraceToken>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceToken {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) sampled: bool,
    pub(crate) debug: bool,
    pub(crate) remote: bool,
    /// No final decision yet: from another process, the caller left it to this side (decided
    /// where a span starts from the token); of this process, the trace is recorded and held
    /// for the tail decision. `sampled` is true with it.
    pub(crate) deferred: bool,
}

/// A token as four machine words (no token: span word 0), for the thread-local copy of the
/// innermost frame's token. Plain words are copied whole, where copying a `TraceToken` (26
/// meaningful bytes) makes the compiler emit overlapping moves that stall store forwarding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PackedToken {
    high: u64,
    low: u64,
    span: u64,
    flags: u64,
}

impl PackedToken {
    const DEBUG: u64 = 1;
    const REMOTE: u64 = 2;
    const SAMPLED: u64 = 4;
    const DEFERRED: u64 = 8;
    /// The frame's children inherit a local endpoint of their own (not the tracer's).
    const OWN_ENDPOINT: u64 = 16;

    pub(crate) const NONE: Self = Self {
        high: 0,
        low: 0,
        span: 0,
        flags: 0,
    };

    #[inline]
    pub(crate) fn pack(token: Option<TraceToken>) -> Self {
        match token {
            None => Self::NONE,
            Some(t) => Self {
                high: t.trace_id.high(),
                low: t.trace_id.low(),
                span: t.span_id.get(),
                flags: (u64::from(t.debug) * Self::DEBUG)
                    | (u64::from(t.remote) * Self::REMOTE)
                    | (u64::from(t.sampled) * Self::SAMPLED)
                    | (u64::from(t.deferred) * Self::DEFERRED),
            },
        }
    }

    /// The same token, marked as one whose children inherit a local endpoint other than the
    /// tracer's (they must look it up on the stack).
    #[inline]
    pub(crate) fn with_own_endpoint(mut self, own: bool) -> Self {
        self.flags |= u64::from(own) * Self::OWN_ENDPOINT;
        self
    }

    /// Whether [`with_own_endpoint`](Self::with_own_endpoint) marked it.
    #[inline]
    pub(crate) fn has_own_endpoint(self) -> bool {
        self.flags & Self::OWN_ENDPOINT != 0
    }

    #[inline]
    pub(crate) fn unpack(self) -> Option<TraceToken> {
        let span_id = SpanId::from_u64(self.span)?;
        let trace_id = TraceId::from_halves(self.high, self.low)?;
        Some(TraceToken {
            trace_id,
            span_id,
            sampled: self.flags & Self::SAMPLED != 0,
            debug: self.flags & Self::DEBUG != 0,
            remote: self.flags & Self::REMOTE != 0,
            deferred: self.flags & Self::DEFERRED != 0,
        })
    }
}

#[cfg(test)]
mod packed_tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        for (sampled, debug, remote, deferred) in [
            (false, false, false, false),
            (true, true, false, false),
            (true, false, true, false),
            (true, false, false, true),
        ] {
            let token = TraceToken {
                trace_id: TraceId::from_u128(0x1234_5678_9abc_def0_0fed_cba9_8765_4321).unwrap(),
                span_id: SpanId::from_u64(42).unwrap(),
                sampled,
                debug,
                remote,
                deferred,
            };
            assert_eq!(PackedToken::pack(Some(token)).unpack(), Some(token));
            // The endpoint mark is the stack's, not the token's.
            for own in [false, true] {
                let marked = PackedToken::pack(Some(token)).with_own_endpoint(own);
                assert_eq!(marked.unpack(), Some(token));
                assert_eq!(marked.has_own_endpoint(), own);
            }
        }
        assert_eq!(PackedToken::pack(None).unpack(), None);
    }
}

impl TraceToken {
    /// A token for span `span_id` of trace `trace_id`, sampled or not. A token made this way
    /// counts as coming from another process (its children are this process's roots).
    pub fn new(trace_id: TraceId, span_id: SpanId, sampled: bool) -> Self {
        Self {
            trace_id,
            span_id,
            sampled,
            debug: false,
            remote: true,
            deferred: false,
        }
    }

    /// The same token with the debug flag (debug implies sampled).
    pub fn with_debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self.sampled |= debug;
        self.deferred &= !debug;
        self
    }

    /// The trace.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    /// The span whose children this token starts.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }
    /// Whether the trace is recorded: kept by the head decision, or held for the tail decision
    /// (see [`is_deferred`](TraceToken::is_deferred)).
    pub fn sampled(&self) -> bool {
        self.sampled
    }
    /// Whether the sampling decision is still open: for a token from another process (parsed,
    /// extracted from headers), the caller left it to this side, and the span started from
    /// the token decides; for a token of this process, the trace is recorded and held for the
    /// tail decision ([`TailSampling`](crate::sample::TailSampling)). Headers written from such
    /// a token carry no decision.
    pub fn is_deferred(&self) -> bool {
        self.deferred
    }
    /// Whether the trace is in debug mode.
    pub fn debug(&self) -> bool {
        self.debug
    }
    /// Whether the span lives in another process.
    pub fn is_remote(&self) -> bool {
        self.remote
    }
}

impl fmt::Debug for TraceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceToken({self})")
    }
}

impl fmt::Display for TraceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.deferred {
            return write!(f, "{}-{}", self.trace_id, self.span_id);
        }
        let flag = if self.debug {
            "d"
        } else if self.sampled {
            "1"
        } else {
            "0"
        };
        write!(f, "{}-{}-{flag}", self.trace_id, self.span_id)
    }
}

impl FromStr for TraceToken {
    type Err = TokenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TokenParseError::Format(s.chars().take(80).collect());
        let mut parts = s.split('-');
        let trace = parts.next().ok_or_else(bad)?;
        let span = parts.next().ok_or_else(bad)?;
        let flag = parts.next();
        if parts.next().is_some() {
            return Err(bad());
        }
        let (sampled, debug, deferred) = match flag {
            None => (true, false, true),
            Some("1") => (true, false, false),
            Some("0") => (false, false, false),
            Some("d") => (true, true, false),
            Some(_) => return Err(bad()),
        };
        Ok(Self {
            trace_id: trace.parse()?,
            span_id: span.parse()?,
            sampled,
            debug,
            remote: true,
            deferred,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_flag() {
        for s in [
            "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0",
            "1-1-1",
            "a-b-d",
        ] {
            let parsed: Result<TraceToken, _> = s.parse();
            if s.len() > 20 {
                assert_eq!(parsed.map(|t| t.to_string()).ok().as_deref(), Some(s));
            } else {
                assert!(parsed.is_err(), "{s} has short ids");
            }
        }
        let t = TraceToken::new(TraceId::random(false), SpanId::random(), true).with_debug(true);
        assert_eq!(t.to_string().parse::<TraceToken>(), Ok(t));
    }

    #[test]
    fn refuses_garbage() {
        for s in [
            "",
            "-",
            "463ac35c9f6413ad",
            "463ac35c9f6413ad-a2fb4a1d1a96d312-2",
            "x-y-1",
            "463ac35c9f6413ad-a2fb4a1d1a96d312-1-extra",
            "0000000000000000-a2fb4a1d1a96d312",
        ] {
            assert!(s.parse::<TraceToken>().is_err(), "{s:?} parsed");
        }
    }

    #[test]
    fn is_copy_and_send() {
        fn check<T: Copy + Send + Sync + 'static>() {}
        check::<TraceToken>();
    }
}
