//! Trace context in HTTP headers: the original library's `X-Trace-Info`, Zipkin's B3 and the
//! W3C `traceparent`.
//!
//! A [`Propagation`] says which [`Format`]s are written on outgoing requests ([`inject`]) and
//! which are read on incoming ones ([`extract`]), in which order of precedence. The default
//! injects `X-Trace-Info`, the `X-B3-*` headers and `traceparent`, and extracts, first match
//! wins:
//!
//! 1. B3: the single `b3` header, then the `X-B3-*` headers;
//! 2. W3C `traceparent` (with `tracestate`);
//! 3. `X-Trace-Info`.
//!
//! B3 comes first because it is the richest (64- and 128-bit ids, the debug flag, a
//! sampling-only form); `X-Trace-Info` last because it carries no sampling decision. A
//! malformed header of one format is ignored and the next format is tried; when none
//! matches, the request starts a new trace. Parsing never fails loudly and never panics.
//!
//! The sampling decision travels with the context: B3 `X-B3-Sampled`/`X-B3-Flags` (or the
//! third field of `b3`), W3C flag `01`. `X-Trace-Info` has no flag: it is written only for
//! sampled traces (the original library recorded every trace it saw), and read as sampled.
//!
//! ```
//! use http::HeaderMap;
//! use tomograph::{SpanId, TraceId, TraceToken};
//! use tomograph::propagation::{self, Propagation};
//!
//! let token = TraceToken::new(TraceId::from_u64(1).unwrap(), SpanId::from_u64(2).unwrap(), true);
//! let mut headers = HeaderMap::new();
//! Propagation::default().inject(token, &mut headers);
//! assert_eq!(headers["x-trace-info"], "KEkxCkkyCnRwMAou");
//! assert_eq!(headers["x-b3-traceid"], "0000000000000001");
//! assert_eq!(headers["traceparent"], "00-00000000000000000000000000000001-0000000000000002-01");
//!
//! let extracted = Propagation::default().extract(&headers).unwrap();
//! assert_eq!(extracted.token(), Some(token));
//! assert_eq!(extracted.format(), propagation::Format::B3);
//! ```

pub mod b3;
pub mod w3c;
pub mod x_trace_info;

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};

use crate::env::{self, EnvLookup};
use crate::error::ConfigError;
use crate::model::TraceToken;
use crate::model::{SpanId, TraceId};

/// A header format that carries trace context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// `X-Trace-Info`: the original Python library's header (base64 of a pickled
    /// `(trace_id, span_id)` tuple). Name: `x-trace-info`.
    XTraceInfo,
    /// Zipkin B3 as separate `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`, `X-B3-Flags`
    /// headers. Extraction also reads the single `b3` header, which wins. Name: `b3`.
    B3,
    /// Zipkin B3 as the single `b3` header. Name: `b3-single`.
    B3Single,
    /// W3C Trace Context: `traceparent`, with `tracestate` passed through. Name: `w3c`.
    W3c,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [
        Format::B3Single,
        Format::B3,
        Format::W3c,
        Format::XTraceInfo,
    ];

    /// The name used in `TOMOGRAPH_PROPAGATION`.
    pub fn name(self) -> &'static str {
        match self {
            Format::XTraceInfo => "x-trace-info",
            Format::B3 => "b3",
            Format::B3Single => "b3-single",
            Format::W3c => "w3c",
        }
    }

    fn extract(self, headers: &HeaderMap) -> Option<Extracted> {
        match self {
            Format::XTraceInfo => x_trace_info::extract(headers),
            Format::B3 => b3::extract(headers),
            Format::B3Single => b3::extract_single(headers),
            Format::W3c => w3c::extract(headers),
        }
    }

    fn inject(self, token: &TraceToken, tracestate: Option<&HeaderValue>, headers: &mut HeaderMap) {
        match self {
            Format::XTraceInfo => x_trace_info::inject(token, headers),
            Format::B3 => b3::inject(token, headers),
            Format::B3Single => b3::inject_single(token, headers),
            Format::W3c => w3c::inject(token, tracestate, headers),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A propagation format name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown propagation format {0:?}; valid formats are: x-trace-info, b3, b3-single, w3c")]
pub struct UnknownFormat(String);

impl FromStr for Format {
    type Err = UnknownFormat;

    /// Parses a format name (case-insensitive); `traceparent` and `tracecontext` are accepted
    /// for `w3c`, `xtraceinfo` for `x-trace-info`.
    ///
    /// ```
    /// use tomograph::propagation::Format;
    /// assert_eq!("B3".parse::<Format>(), Ok(Format::B3));
    /// assert_eq!("traceparent".parse::<Format>(), Ok(Format::W3c));
    /// assert!("jaeger".parse::<Format>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-trace-info" | "xtraceinfo" | "x_trace_info" => Ok(Format::XTraceInfo),
            "b3" | "b3-multi" | "b3multi" => Ok(Format::B3),
            "b3-single" | "b3single" => Ok(Format::B3Single),
            "w3c" | "traceparent" | "tracecontext" => Ok(Format::W3c),
            _ => Err(UnknownFormat(s.chars().take(40).collect())),
        }
    }
}

/// Which formats are written and read, and the order of precedence when reading.
///
/// Set it with [`ConfigBuilder::propagation`](crate::ConfigBuilder::propagation) or the
/// variables `TOMOGRAPH_PROPAGATION` (both directions), `TOMOGRAPH_PROPAGATION_INJECT` and
/// `TOMOGRAPH_PROPAGATION_EXTRACT` (one direction each): comma lists of `x-trace-info`, `b3`,
/// `b3-single`, `w3c`; the extraction list's order is its precedence.
///
/// ```
/// use tomograph::propagation::{Format, Propagation};
/// // Only talk to the original Python services:
/// let legacy = Propagation::only([Format::XTraceInfo]);
/// assert_eq!(legacy.injected(), [Format::XTraceInfo]);
///
/// let env = |k: &str| (k == "TOMOGRAPH_PROPAGATION").then(|| "w3c, b3".to_owned());
/// let p = Propagation::from_lookup(&env).unwrap();
/// assert_eq!(p.extracted(), [Format::W3c, Format::B3]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Propagation {
    inject: Vec<Format>,
    extract: Vec<Format>,
}

impl Default for Propagation {
    /// Inject `X-Trace-Info`, `X-B3-*` and `traceparent`; extract B3 (`b3`, then `X-B3-*`),
    /// then `traceparent`, then `X-Trace-Info`.
    fn default() -> Self {
        Self {
            inject: vec![Format::XTraceInfo, Format::B3, Format::W3c],
            extract: vec![Format::B3, Format::W3c, Format::XTraceInfo],
        }
    }
}

impl Propagation {
    /// Injects and extracts exactly `formats`; their order is the extraction precedence.
    pub fn only(formats: impl IntoIterator<Item = Format>) -> Self {
        let formats = dedup(formats);
        Self {
            inject: formats.clone(),
            extract: formats,
        }
    }

    /// Sets the formats written on outgoing requests.
    pub fn inject_formats(mut self, formats: impl IntoIterator<Item = Format>) -> Self {
        self.inject = dedup(formats);
        self
    }

    /// Sets the formats read on incoming requests, highest precedence first.
    pub fn extract_formats(mut self, formats: impl IntoIterator<Item = Format>) -> Self {
        self.extract = dedup(formats);
        self
    }

    /// The formats written.
    pub fn injected(&self) -> &[Format] {
        &self.inject
    }

    /// The formats read, highest precedence first.
    pub fn extracted(&self) -> &[Format] {
        &self.extract
    }

    /// The default, changed by `TOMOGRAPH_PROPAGATION`, `TOMOGRAPH_PROPAGATION_INJECT` and
    /// `TOMOGRAPH_PROPAGATION_EXTRACT` when set (read through `env`).
    pub fn from_lookup(env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let mut p = Self::default();
        if let Some(v) = env(env::PROPAGATION) {
            p = Self::only(parse_list(env::PROPAGATION, &v)?);
        }
        if let Some(v) = env(env::PROPAGATION_INJECT) {
            p.inject = parse_list(env::PROPAGATION_INJECT, &v)?;
        }
        if let Some(v) = env(env::PROPAGATION_EXTRACT) {
            p.extract = parse_list(env::PROPAGATION_EXTRACT, &v)?;
        }
        Ok(p)
    }

    /// Writes `token` in every injected format (replacing what `headers` had for them).
    /// `X-Trace-Info` is skipped when the trace is not sampled (see the module docs).
    pub fn inject(&self, token: TraceToken, headers: &mut HeaderMap) {
        self.inject_with_state(token, None, headers);
    }

    /// Like [`inject`](Propagation::inject), passing the W3C `tracestate` along.
    pub fn inject_with_state(
        &self,
        token: TraceToken,
        tracestate: Option<&HeaderValue>,
        headers: &mut HeaderMap,
    ) {
        for format in &self.inject {
            format.inject(&token, tracestate, headers);
        }
    }

    /// Reads the first extracted format present and valid in `headers`; `None` means "no
    /// parent".
    pub fn extract(&self, headers: &HeaderMap) -> Option<Extracted> {
        self.extract.iter().find_map(|f| f.extract(headers))
    }
}

fn dedup(formats: impl IntoIterator<Item = Format>) -> Vec<Format> {
    let mut out = Vec::new();
    for f in formats {
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

fn parse_list(variable: &'static str, value: &str) -> Result<Vec<Format>, ConfigError> {
    let formats = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Format>().map_err(|e| ConfigError::InvalidValue {
                variable,
                value: value.to_owned(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(dedup(formats))
}

/// What incoming headers say about the caller's trace: a parent context, or only a sampling
/// decision (B3's `b3: 0`, `X-B3-Sampled: 1` without ids).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    ids: Option<(TraceId, SpanId)>,
    sampled: Option<bool>,
    debug: bool,
    tracestate: Option<HeaderValue>,
    format: Format,
}

impl Extracted {
    pub(crate) fn context(
        format: Format,
        trace_id: TraceId,
        span_id: SpanId,
        sampled: Option<bool>,
        debug: bool,
    ) -> Self {
        Self {
            ids: Some((trace_id, span_id)),
            sampled: if debug { Some(true) } else { sampled },
            debug,
            tracestate: None,
            format,
        }
    }

    pub(crate) fn decision(format: Format, sampled: bool, debug: bool) -> Self {
        Self {
            ids: None,
            sampled: Some(sampled || debug),
            debug,
            tracestate: None,
            format,
        }
    }

    pub(crate) fn with_tracestate(mut self, tracestate: Option<HeaderValue>) -> Self {
        self.tracestate = tracestate;
        self
    }

    /// The caller's trace id, when the headers carried one.
    pub fn trace_id(&self) -> Option<TraceId> {
        self.ids.map(|(t, _)| t)
    }

    /// The caller's span id (the parent of this side's span).
    pub fn span_id(&self) -> Option<SpanId> {
        self.ids.map(|(_, s)| s)
    }

    /// The caller's sampling decision; `None` when it left the decision to this side.
    pub fn sampled(&self) -> Option<bool> {
        self.sampled
    }

    /// Whether the caller asked for debug tracing (implies sampled).
    pub fn debug(&self) -> bool {
        self.debug
    }

    /// The W3C `tracestate` received with `traceparent`, to pass on.
    pub fn tracestate(&self) -> Option<&HeaderValue> {
        self.tracestate.as_ref()
    }

    /// The format these values came from.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The token to continue the caller's trace; `None` for a sampling decision without ids.
    /// A deferred decision is made now by the installed tracer's sampler (sampled when no
    /// tracer is installed).
    pub fn token(&self) -> Option<TraceToken> {
        let (trace_id, span_id) = self.ids?;
        let sampled = self.sampled.unwrap_or_else(decide);
        Some(TraceToken {
            trace_id,
            span_id,
            sampled,
            debug: self.debug,
            remote: true,
        })
    }
}

/// What the installed tracer lends this module, which sits below it: its formats and its
/// sampler (for a caller that left the decision to this side). Given once, by
/// [`init`](crate::init).
#[derive(Debug)]
pub(crate) struct Installed {
    pub(crate) propagation: &'static Propagation,
    pub(crate) sample: fn() -> bool,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Called by [`init`](crate::init) once its tracer is in place.
pub(crate) fn install(installed: Installed) {
    let _ = INSTALLED.set(installed);
}

fn decide() -> bool {
    INSTALLED.get().is_none_or(|i| (i.sample)())
}

/// The configured propagation: the installed tracer's, else the default.
pub(crate) fn configured<R>(f: impl FnOnce(&Propagation) -> R) -> R {
    match INSTALLED.get() {
        Some(i) => f(i.propagation),
        None => f(&Propagation::default()),
    }
}

/// Writes `token` into `headers` in the configured formats (see [`Propagation::inject`]).
///
/// ```
/// use tomograph::{SpanId, TraceId, TraceToken};
/// let token = TraceToken::new(TraceId::from_u64(7).unwrap(), SpanId::from_u64(9).unwrap(), false);
/// let mut headers = http::HeaderMap::new();
/// tomograph::propagation::inject(token, &mut headers);
/// assert_eq!(headers["x-b3-sampled"], "0");
/// assert!(!headers.contains_key("x-trace-info"), "only sampled traces get X-Trace-Info");
/// ```
pub fn inject(token: TraceToken, headers: &mut HeaderMap) {
    let state = current_tracestate(token.trace_id);
    configured(|p| p.inject_with_state(token, state.as_ref(), headers));
}

/// Reads the caller's trace context from `headers` in the configured formats and order (see
/// [`Propagation::extract`]); `None` means "start a new trace".
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".parse().unwrap());
/// let parent = tomograph::propagation::extract(&headers).unwrap();
/// assert_eq!(parent.span_id().unwrap().to_string(), "e457b5a2e4d86bd1");
/// assert_eq!(parent.sampled(), Some(true));
///
/// headers.insert("b3", "not a b3 value".parse().unwrap());
/// assert!(tomograph::propagation::extract(&headers).is_none());
/// ```
pub fn extract(headers: &HeaderMap) -> Option<Extracted> {
    configured(|p| p.extract(headers))
}

thread_local! {
    /// The `tracestate` of the request being handled on this thread, set by the tower layer
    /// for the duration of each poll of a handler.
    static TRACESTATE: RefCell<Option<(TraceId, HeaderValue)>> = const { RefCell::new(None) };
}

/// Runs `f` with `state` as this thread's `tracestate` (for trace `trace_id`), restoring the
/// previous value afterwards (also on panic).
#[cfg_attr(not(feature = "tower"), allow(dead_code))]
pub(crate) fn with_tracestate<R>(
    state: Option<&(TraceId, HeaderValue)>,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore(Option<(TraceId, HeaderValue)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            let _ = TRACESTATE.try_with(|s| {
                if let Ok(mut s) = s.try_borrow_mut() {
                    *s = previous;
                }
            });
        }
    }
    let Some(state) = state else { return f() };
    let previous = TRACESTATE
        .try_with(|s| {
            s.try_borrow_mut()
                .ok()
                .map(|mut s| s.replace(state.clone()))
        })
        .ok()
        .flatten()
        .flatten();
    let _restore = Restore(previous);
    f()
}

/// The `tracestate` to pass on for trace `trace_id`, if the request being handled here
/// brought one.
fn current_tracestate(trace_id: TraceId) -> Option<HeaderValue> {
    TRACESTATE
        .try_with(|s| {
            s.try_borrow().ok().and_then(|s| match &*s {
                Some((t, v)) if *t == trace_id => Some(v.clone()),
                _ => None,
            })
        })
        .ok()
        .flatten()
}

/// Reads one header as text; `None` when absent or not visible ASCII.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(sampled: bool) -> TraceToken {
        TraceToken::new(
            TraceId::from_u128(0x463ac35c9f6413ad48485a3953bb6124).unwrap(),
            SpanId::from_u64(0xa2fb4a1d1a96d312).unwrap(),
            sampled,
        )
    }

    #[test]
    fn every_format_round_trips_alone() {
        for format in Format::ALL {
            for sampled in [true, false] {
                let p = Propagation::only([format]);
                let mut headers = HeaderMap::new();
                p.inject(token(sampled), &mut headers);
                let got = p.extract(&headers);
                if format == Format::XTraceInfo && !sampled {
                    assert!(got.is_none(), "unsampled traces carry no X-Trace-Info");
                    continue;
                }
                let got = got.unwrap_or_else(|| panic!("{format}: {headers:?}"));
                assert_eq!(got.token(), Some(token(sampled)), "{format}");
                assert_eq!(got.format(), format);
            }
        }
    }

    #[test]
    fn precedence_follows_the_extract_list() {
        let mut headers = HeaderMap::new();
        let w3c_token = token(true);
        w3c::inject(&w3c_token, None, &mut headers);
        let other = TraceToken::new(
            TraceId::from_u64(5).unwrap(),
            SpanId::from_u64(6).unwrap(),
            true,
        );
        x_trace_info::inject(&other, &mut headers);
        let default = Propagation::default().extract(&headers).unwrap();
        assert_eq!(default.format(), Format::W3c);
        let legacy_first = Propagation::default()
            .extract_formats([Format::XTraceInfo, Format::W3c])
            .extract(&headers)
            .unwrap();
        assert_eq!(legacy_first.token(), Some(other));
    }

    #[test]
    fn malformed_higher_format_falls_back() {
        let mut headers = HeaderMap::new();
        headers.insert("b3", HeaderValue::from_static("garbage"));
        x_trace_info::inject(&token(true), &mut headers);
        let got = Propagation::default().extract(&headers).unwrap();
        assert_eq!(got.format(), Format::XTraceInfo);
    }

    #[test]
    fn env_lists_parse_and_reject_unknown_names() {
        let env = |k: &str| match k {
            "TOMOGRAPH_PROPAGATION" => Some("x-trace-info".to_owned()),
            "TOMOGRAPH_PROPAGATION_EXTRACT" => Some("b3-single, w3c, b3-single".to_owned()),
            _ => None,
        };
        let p = Propagation::from_lookup(&env).unwrap();
        assert_eq!(p.injected(), [Format::XTraceInfo]);
        assert_eq!(p.extracted(), [Format::B3Single, Format::W3c]);
        let bad = |k: &str| (k == "TOMOGRAPH_PROPAGATION_INJECT").then(|| "b3,zipkin".to_owned());
        let err = Propagation::from_lookup(&bad).unwrap_err();
        assert!(
            err.to_string().contains("TOMOGRAPH_PROPAGATION_INJECT"),
            "{err}"
        );
        assert!(
            err.to_string().contains("x-trace-info, b3, b3-single, w3c"),
            "{err}"
        );
    }

    #[test]
    fn tracestate_is_scoped_to_the_call_and_the_trace() {
        let t = token(true);
        let state = (t.trace_id, HeaderValue::from_static("congo=t61rcWkgMzE"));
        assert_eq!(current_tracestate(t.trace_id), None);
        with_tracestate(Some(&state), || {
            assert_eq!(current_tracestate(t.trace_id), Some(state.1.clone()));
            assert_eq!(current_tracestate(TraceId::from_u64(1).unwrap()), None);
        });
        assert_eq!(current_tracestate(t.trace_id), None);
    }
}
