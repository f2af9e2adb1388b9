//! Trace tokens: what it takes to continue a trace elsewhere (another thread, task, process).

use std::fmt;
use std::str::FromStr;

use crate::error::TokenParseError;
use crate::model::{SpanId, TraceId};

/// The identity of a span, enough to start its children anywhere: trace id, span id and the
/// sampling decision. `Copy + Send`; prints as `{trace}-{span}-{1|0|d}` (the B3 single-header
/// form) and parses back, for queues and RPC payloads.
///
/// ```
/// use tomograph::TraceToken;
/// let token: TraceToken = "463ac35c9f6413ad-a2fb4a1d1a96d312-1".parse().unwrap();
/// assert!(token.sampled());
/// assert_eq!(token.to_string(), "463ac35c9f6413ad-a2fb4a1d1a96d312-1");
/// assert!("not a token".parse::<TraceToken>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceToken {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) sampled: bool,
    pub(crate) debug: bool,
    pub(crate) remote: bool,
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
        }
    }

    /// The same token with the debug flag (debug implies sampled).
    pub fn with_debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self.sampled |= debug;
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
    /// Whether the trace is recorded.
    pub fn sampled(&self) -> bool {
        self.sampled
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
        let (sampled, debug) = match flag {
            None | Some("1") => (true, false),
            Some("0") => (false, false),
            Some("d") => (true, true),
            Some(_) => return Err(bad()),
        };
        Ok(Self {
            trace_id: trace.parse()?,
            span_id: span.parse()?,
            sampled,
            debug,
            remote: true,
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
