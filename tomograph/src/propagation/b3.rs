//! Zipkin B3 propagation (<https://github.com/openzipkin/b3-propagation>).
//!
//! Multiple headers: `X-B3-TraceId` (16 or 32 lower-hex), `X-B3-SpanId` (16),
//! `X-B3-ParentSpanId`, `X-B3-Sampled` (`1`/`0`, also the legacy `true`/`false`),
//! `X-B3-Flags: 1` (debug, which implies sampled). Single header:
//! `b3: {trace}-{span}[-{1|0|d}[-{parent}]]`, or only a decision `b3: 0` / `1` / `d`.
//! The single header wins over the multiple ones. Ids are read leniently (either case, a
//! shorter id is left-padded as Zipkin's own libraries do) and always written lower-hex and
//! padded.
//!
//! ```
//! use tomograph::propagation::b3;
//! let parent = b3::parse_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90").unwrap();
//! assert!(parent.debug());
//! assert_eq!(parent.trace_id().unwrap().to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
//!
//! let deny = b3::parse_single("0").unwrap();
//! assert_eq!((deny.trace_id(), deny.sampled()), (None, Some(false)));
//!
//! assert!(b3::parse_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-x").is_none());
//! ```

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{Extracted, Format, header};
use crate::model::TraceToken;
use crate::model::{SpanId, TraceId};

/// `b3`, the single header.
pub const SINGLE: HeaderName = HeaderName::from_static("b3");
/// `X-B3-TraceId`.
pub const TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
/// `X-B3-SpanId`.
pub const SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
/// `X-B3-ParentSpanId`.
pub const PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
/// `X-B3-Sampled`.
pub const SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
/// `X-B3-Flags`.
pub const FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Parses a trace id: 1 to 32 hex digits, not all zero.
fn trace_id(s: &str) -> Option<TraceId> {
    TraceId::from_u128(hex(s, 32)?)
}

/// Parses a span id: 1 to 16 hex digits, not all zero.
fn span_id(s: &str) -> Option<SpanId> {
    SpanId::from_u64(u64::try_from(hex(s, 16)?).ok()?)
}

fn hex(s: &str, max: usize) -> Option<u128> {
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

/// Parses a single `b3` header value; `None` when it is malformed.
pub fn parse_single(value: &str) -> Option<Extracted> {
    let value = value.trim();
    match value {
        "0" => return Some(Extracted::decision(Format::B3Single, false, false)),
        "1" => return Some(Extracted::decision(Format::B3Single, true, false)),
        "d" => return Some(Extracted::decision(Format::B3Single, true, true)),
        _ => {}
    }
    let mut parts = value.split('-');
    let trace = trace_id(parts.next()?)?;
    let span = span_id(parts.next()?)?;
    let (sampled, debug) = match parts.next() {
        None => (None, false),
        Some("1") => (Some(true), false),
        Some("0") => (Some(false), false),
        Some("d") => (Some(true), true),
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Extracted::context(
        Format::B3Single,
        trace,
        span,
        sampled,
        debug,
    ))
}

/// The single `b3` value for `token`: `{trace}-{span}-{1|0|d}`.
///
/// ```
/// use tomograph::{SpanId, TraceId, TraceToken};
/// let token = TraceToken::new(TraceId::from_u64(0xa).unwrap(), SpanId::from_u64(0xb).unwrap(), true);
/// assert_eq!(tomograph::propagation::b3::format_single(&token), "000000000000000a-000000000000000b-1");
/// ```
pub fn format_single(token: &TraceToken) -> String {
    token.to_string()
}

/// Parses the `X-B3-*` headers; `None` when they are absent or malformed.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("X-B3-TraceId", "463ac35c9f6413ad".parse().unwrap());
/// headers.insert("X-B3-SpanId", "a2fb4a1d1a96d312".parse().unwrap());
/// headers.insert("X-B3-Flags", "1".parse().unwrap());
/// let parent = tomograph::propagation::b3::parse_multi(&headers).unwrap();
/// assert!(parent.debug() && parent.sampled() == Some(true));
/// ```
pub fn parse_multi(headers: &HeaderMap) -> Option<Extracted> {
    let sampled = match header(headers, SAMPLED.as_str()) {
        Some("1") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some("0") => Some(false),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    };
    let debug = header(headers, FLAGS.as_str()) == Some("1");
    let trace = header(headers, TRACE_ID.as_str());
    let span = header(headers, SPAN_ID.as_str());
    match (trace, span) {
        (Some(t), Some(s)) => Some(Extracted::context(
            Format::B3,
            trace_id(t)?,
            span_id(s)?,
            sampled,
            debug,
        )),
        (None, None) if debug => Some(Extracted::decision(Format::B3, true, true)),
        (None, None) => sampled.map(|s| Extracted::decision(Format::B3, s, false)),
        _ => None,
    }
}

/// `b3` when present and valid, else `X-B3-*`.
pub(super) fn extract(headers: &HeaderMap) -> Option<Extracted> {
    extract_single(headers).or_else(|| parse_multi(headers))
}

pub(super) fn extract_single(headers: &HeaderMap) -> Option<Extracted> {
    parse_single(header(headers, SINGLE.as_str())?)
}

/// Writes the `X-B3-*` headers (debug as `X-B3-Flags: 1` without `X-B3-Sampled`, as the
/// specification asks), removing stale ones.
pub(super) fn inject(token: &TraceToken, headers: &mut HeaderMap) {
    for name in [TRACE_ID, SPAN_ID, PARENT_SPAN_ID, SAMPLED, FLAGS] {
        headers.remove(name);
    }
    let put = |headers: &mut HeaderMap, name: HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put(headers, TRACE_ID, token.trace_id.to_string());
    put(headers, SPAN_ID, token.span_id.to_string());
    if token.debug {
        headers.insert(FLAGS, HeaderValue::from_static("1"));
    } else {
        let flag = if token.sampled { "1" } else { "0" };
        headers.insert(SAMPLED, HeaderValue::from_static(flag));
    }
}

/// Writes the single `b3` header.
pub(super) fn inject_single(token: &TraceToken, headers: &mut HeaderMap) {
    match HeaderValue::from_str(&format_single(token)) {
        Ok(v) => {
            headers.insert(SINGLE, v);
        }
        Err(_) => {
            headers.remove(SINGLE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn single_forms() {
        let e = parse_single("463ac35c9f6413ad-a2fb4a1d1a96d312").unwrap();
        assert_eq!(e.sampled(), None, "no flag defers the decision");
        let e = parse_single("463ac35c9f6413ad-a2fb4a1d1a96d312-0-0020000000000001").unwrap();
        assert_eq!(e.sampled(), Some(false));
        let e = parse_single("d").unwrap();
        assert!(e.debug() && e.trace_id().is_none());
        for bad in [
            "",
            "-",
            "2",
            "463ac35c9f6413ad",
            "463ac35c9f6413ad-",
            "463ac35c9f6413ad-0000000000000000-1",
            "00000000000000000000000000000000-a2fb4a1d1a96d312-1",
            "463ac35c9f6413ad-a2fb4a1d1a96d312-1-",
            "463ac35c9f6413ad-a2fb4a1d1a96d312-1-zz",
            "463ac35c9f6413ad-a2fb4a1d1a96d312-1-0020000000000001-x",
            "463ac35c9f6413ad463ac35c9f6413ad0-a2fb4a1d1a96d312-1",
            "463ac35c9f6413ad-a2fb4a1d1a96d3120-1",
            "+63ac35c9f6413ad-a2fb4a1d1a96d312-1",
        ] {
            assert!(parse_single(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn single_wins_over_multi() {
        let h = map(&[
            ("b3", "0000000000000001-0000000000000002-0"),
            ("x-b3-traceid", "0000000000000003"),
            ("x-b3-spanid", "0000000000000004"),
        ]);
        let e = extract(&h).unwrap();
        assert_eq!(e.span_id(), SpanId::from_u64(2));
        assert_eq!(e.format(), Format::B3Single);
    }

    #[test]
    fn multi_forms() {
        let e = parse_multi(&map(&[
            ("x-b3-traceid", "463AC35C9F6413AD"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "true"),
            ("x-b3-flags", "0"),
        ]))
        .unwrap();
        assert_eq!(e.sampled(), Some(true));
        assert!(!e.debug());
        assert_eq!(e.trace_id().unwrap().to_string(), "463ac35c9f6413ad");
        let deny = parse_multi(&map(&[("x-b3-sampled", "0")])).unwrap();
        assert_eq!((deny.trace_id(), deny.sampled()), (None, Some(false)));
        assert!(parse_multi(&map(&[("x-b3-traceid", "463ac35c9f6413ad")])).is_none());
        assert!(parse_multi(&map(&[("x-b3-flags", "0")])).is_none());
        assert!(
            parse_multi(&map(&[
                ("x-b3-traceid", "463ac35c9f6413ad"),
                ("x-b3-spanid", "not-hex"),
            ]))
            .is_none()
        );
    }

    #[test]
    fn inject_replaces_stale_headers() {
        let mut h = map(&[
            ("x-b3-parentspanid", "0000000000000009"),
            ("x-b3-sampled", "1"),
        ]);
        let token = TraceToken::new(
            TraceId::from_u64(1).unwrap(),
            SpanId::from_u64(2).unwrap(),
            true,
        )
        .with_debug(true);
        inject(&token, &mut h);
        assert!(!h.contains_key(PARENT_SPAN_ID));
        assert!(!h.contains_key(SAMPLED));
        assert_eq!(h[FLAGS], "1");
        assert_eq!(parse_multi(&h).and_then(|e| e.token()), Some(token));
    }
}
