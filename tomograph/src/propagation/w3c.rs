//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): `traceparent`, with
//! `tracestate` passed through untouched.
//!
//! `traceparent: {version}-{trace-id}-{parent-id}-{flags}`: 2, 32, 16 and 2 lower-hex
//! characters. Version `ff` and all-zero ids are invalid; a later version is read by its
//! first four fields (as the specification asks). Flag `01` is "sampled". W3C has no debug
//! flag: a debug trace is written as sampled. A 64-bit trace id is written left-padded to
//! 32 characters and reads back as the same 64-bit id.
//!
//! ```
//! use tomograph::propagation::w3c;
//! let (trace, span, sampled) = w3c::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
//! assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!(span.to_string(), "00f067aa0ba902b7");
//! assert!(sampled);
//! assert!(w3c::parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none());
//! ```

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{Extracted, Format, header};
use crate::model::TraceToken;
use crate::model::{SpanId, TraceId};

/// `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The longest `tracestate` passed on (the specification's 32 entries of at most 256
/// characters fit in about 8 KiB); a longer one is dropped.
pub const MAX_TRACESTATE_LEN: usize = 8192;

const SAMPLED_FLAG: u8 = 0x01;

fn lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses a `traceparent` value into trace id, parent span id and the sampled flag; `None`
/// when it is invalid.
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, bool)> {
    let value = value.trim();
    if !value.is_ascii() {
        return None;
    }
    let version = value.get(0..2)?;
    if !lower_hex(version) || version == "ff" {
        return None;
    }
    // Version 00 is exactly 55 characters; later versions may append `-...` fields.
    if value.len() != 55 && (version == "00" || value.as_bytes().get(55) != Some(&b'-')) {
        return None;
    }
    let fields = value.get(..55)?;
    let bytes = fields.as_bytes();
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let (trace, span, flags) = (&fields[3..35], &fields[36..52], &fields[53..55]);
    if !lower_hex(trace) || !lower_hex(span) || !lower_hex(flags) {
        return None;
    }
    let trace = TraceId::from_u128(u128::from_str_radix(trace, 16).ok()?)?;
    let span = SpanId::from_u64(u64::from_str_radix(span, 16).ok()?)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace, span, flags & SAMPLED_FLAG != 0))
}

/// The `traceparent` value for `token` (version 00).
///
/// ```
/// use tomograph::{SpanId, TraceId, TraceToken};
/// let token = TraceToken::new(TraceId::from_u64(0xa).unwrap(), SpanId::from_u64(0xb).unwrap(), false);
/// assert_eq!(
///     tomograph::propagation::w3c::format_traceparent(&token),
///     "00-0000000000000000000000000000000a-000000000000000b-00",
/// );
/// ```
pub fn format_traceparent(token: &TraceToken) -> String {
    let flags = if token.sampled { SAMPLED_FLAG } else { 0 };
    format!(
        "00-{:032x}-{:016x}-{flags:02x}",
        token.trace_id.get(),
        token.span_id.get()
    )
}

/// Every `tracestate` header, joined with `,` as the specification asks; `None` when absent,
/// not text, or longer than [`MAX_TRACESTATE_LEN`].
fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut joined = String::new();
    for value in headers.get_all(TRACESTATE) {
        let value = value.to_str().ok()?.trim();
        if value.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(value);
        if joined.len() > MAX_TRACESTATE_LEN {
            return None;
        }
    }
    if joined.is_empty() {
        return None;
    }
    HeaderValue::from_str(&joined).ok()
}

pub(super) fn extract(headers: &HeaderMap) -> Option<Extracted> {
    let (trace, span, sampled) = parse_traceparent(header(headers, TRACEPARENT.as_str())?)?;
    Some(
        Extracted::context(Format::W3c, trace, span, Some(sampled), false)
            .with_tracestate(tracestate(headers)),
    )
}

pub(super) fn inject(token: &TraceToken, state: Option<&HeaderValue>, headers: &mut HeaderMap) {
    match HeaderValue::from_str(&format_traceparent(token)) {
        Ok(v) => {
            headers.insert(TRACEPARENT, v);
        }
        Err(_) => {
            headers.remove(TRACEPARENT);
        }
    }
    match state {
        Some(state) => {
            headers.insert(TRACESTATE, state.clone());
        }
        None => {
            headers.remove(TRACESTATE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        let (t, s, sampled) =
            parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(t.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(s.to_string(), "b7ad6b7169203331");
        assert!(sampled);
        let (_, _, sampled) =
            parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").unwrap();
        assert!(!sampled);
        // A future version with an extra field.
        assert!(
            parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what")
                .is_some()
        );
    }

    #[test]
    fn invalid_values() {
        for bad in [
            "",
            "00",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0",
            "00-0af7651916cd43dd8448eb211c80319-cb7ad6b716920333-101",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-é1",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn tracestate_is_joined_and_passed_on() {
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        h.append(
            TRACESTATE,
            HeaderValue::from_static("rojo=00f067aa0ba902b7"),
        );
        h.append(TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"));
        let e = extract(&h).unwrap();
        assert_eq!(
            e.tracestate().unwrap(),
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
        );
        let mut out = HeaderMap::new();
        inject(&e.token().unwrap(), e.tracestate(), &mut out);
        assert_eq!(out[TRACEPARENT], h[TRACEPARENT]);
        assert_eq!(out[TRACESTATE], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    }
}
