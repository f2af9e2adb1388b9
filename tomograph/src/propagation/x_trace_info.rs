//! `X-Trace-Info`: the original Python library's header, read and written without pickle.
//!
//! The value is standard base64 of a Python pickle (protocol 0) of the tuple
//! `(trace_id, span_id)`: `(I{trace}\nI{span}\ntp0\n.`, or with Python's long form
//! `L{n}L\n` for either number (Python 3 writes ints of 2³¹ and above that way). The original
//! unpickled whatever it received, which let any caller run code on the server; this module
//! accepts exactly the grammar below and nothing else (no other opcode, no global, nothing
//! longer than [`MAX_VALUE_LEN`] characters):
//!
//! ```text
//! value = "(" int int "t" [ "p" digits "\n" ] "."
//! int   = "I" number "\n" | "L" number [ "L" ] "\n"
//! number = [ "-" ] non-zero digit { digit }       (at most 39 digits)
//! ```
//!
//! Numbers: the original's ids were Python ints, which its Zipkin backend wrote as thrift
//! signed `i64`. So a 64-bit id is written as its two's-complement `i64` (Python services
//! that forward or report it keep working), and read back either way: a negative number is
//! taken as an `i64`, a positive one as unsigned. A 128-bit trace id is written as its
//! unsigned value (Python ints have no size limit).
//!
//! ```
//! use tomograph::propagation::x_trace_info;
//! use tomograph::{SpanId, TraceId};
//!
//! let (trace, span) = x_trace_info::decode(b"KEk1NzMxMDQ5MDcwNTcwODY2CkkxMjM0NTY3ODkwMTIzCnRwMAou").unwrap();
//! assert_eq!((trace.get(), span.get()), (5731049070570866, 1234567890123));
//! // Python 3's long form reads the same:
//! assert_eq!(
//!     x_trace_info::decode(b"KEw1NzMxMDQ5MDcwNTcwODY2TApMMTIzNDU2Nzg5MDEyM0wKdHAwCi4="),
//!     Some((trace, span)),
//! );
//! assert_eq!(x_trace_info::encode(trace, span), "KEk1NzMxMDQ5MDcwNTcwODY2CkkxMjM0NTY3ODkwMTIzCnRwMAou");
//!
//! // Anything else is "no parent": here, a pickle that would call os.system.
//! assert_eq!(x_trace_info::decode(b"Y29zCnN5c3RlbQooUydpZCcKdFIu"), None);
//! ```

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{Extracted, Format};
use crate::model::TraceToken;
use crate::model::{SpanId, TraceId};

/// The header's name.
pub const HEADER: HeaderName = HeaderName::from_static("x-trace-info");

/// The longest value accepted, in characters (a pair of 128-bit ids fits in about 120).
pub const MAX_VALUE_LEN: usize = 256;

/// Most digits in a number: 2¹²⁸ has 39.
const MAX_DIGITS: usize = 39;

/// Standard alphabet; padding optional on input (written padded, as Python's `b64encode`).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The header value for `(trace_id, span_id)`, as the original library wrote it.
pub fn encode(trace_id: TraceId, span_id: SpanId) -> String {
    BASE64.encode(pickle(trace_id, span_id))
}

/// The pickle protocol 0 bytes of `(trace_id, span_id)`, before base64.
///
/// ```
/// use tomograph::{SpanId, TraceId};
/// let bytes = tomograph::propagation::x_trace_info::pickle(
///     TraceId::from_u64(1).unwrap(),
///     SpanId::from_u64(u64::MAX).unwrap(),
/// );
/// assert_eq!(bytes, b"(I1\nI-1\ntp0\n.");
/// ```
pub fn pickle(trace_id: TraceId, span_id: SpanId) -> Vec<u8> {
    let trace = if trace_id.is_128bit() {
        trace_id.get().to_string()
    } else {
        (trace_id.low() as i64).to_string()
    };
    let span = span_id.get() as i64;
    format!("(I{trace}\nI{span}\ntp0\n.").into_bytes()
}

/// Reads a header value; `None` for anything that is not exactly the grammar in the module
/// docs with two non-zero ids in range.
pub fn decode(value: &[u8]) -> Option<(TraceId, SpanId)> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        return None;
    }
    let mut buf = [0u8; MAX_VALUE_LEN / 4 * 3 + 3];
    let len = BASE64.decode_slice(value, &mut buf).ok()?;
    unpickle(buf.get(..len)?)
}

/// Reads the pickle bytes (after base64); `None` for anything outside the grammar.
///
/// ```
/// use tomograph::propagation::x_trace_info::unpickle;
/// assert!(unpickle(b"(I1\nI2\ntp0\n.").is_some());
/// assert!(unpickle(b"(I1\nI2\nt.").is_some(), "the memo put is optional");
/// assert!(unpickle(b"(I1\nI2\nI3\ntp0\n.").is_none(), "three items");
/// assert!(unpickle(b"(I0\nI2\ntp0\n.").is_none(), "zero is not an id");
/// ```
pub fn unpickle(bytes: &[u8]) -> Option<(TraceId, SpanId)> {
    let mut p = Parser { bytes, pos: 0 };
    p.expect(b'(')?;
    let trace = p.number()?;
    let span = p.number()?;
    p.expect(b't')?;
    if p.peek() == Some(b'p') {
        p.pos += 1;
        let digits = p.digits(10)?;
        if digits.is_empty() {
            return None;
        }
        p.expect(b'\n')?;
    }
    p.expect(b'.')?;
    if p.pos != bytes.len() {
        return None;
    }
    Some((trace_id(trace)?, span_id(span)?))
}

/// A number as read: sign and magnitude.
#[derive(Clone, Copy)]
struct Number {
    negative: bool,
    magnitude: u128,
}

/// The two's-complement `u64` of a negative number that fits in an `i64`.
fn negative_as_u64(magnitude: u128) -> Option<u64> {
    if magnitude > 1u128 << 63 {
        return None;
    }
    Some((magnitude as u64).wrapping_neg())
}

fn trace_id(n: Number) -> Option<TraceId> {
    if n.negative {
        TraceId::from_u64(negative_as_u64(n.magnitude)?)
    } else {
        TraceId::from_u128(n.magnitude)
    }
}

fn span_id(n: Number) -> Option<SpanId> {
    let value = if n.negative {
        negative_as_u64(n.magnitude)?
    } else {
        u64::try_from(n.magnitude).ok()?
    };
    SpanId::from_u64(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn digits(&mut self, max: usize) -> Option<&[u8]> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
            if self.pos - start > max {
                return None;
            }
        }
        self.bytes.get(start..self.pos)
    }

    /// `I number \n` or `L number [L] \n`.
    fn number(&mut self) -> Option<Number> {
        let long = match self.peek()? {
            b'I' => false,
            b'L' => true,
            _ => return None,
        };
        self.pos += 1;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits = self.digits(MAX_DIGITS)?;
        // No leading zero: `I00`/`I01` are protocol 0's booleans, and zero is no id.
        if digits.first().is_none_or(|&d| d == b'0') {
            return None;
        }
        let mut magnitude: u128 = 0;
        for &d in digits {
            magnitude = magnitude
                .checked_mul(10)?
                .checked_add(u128::from(d - b'0'))?;
        }
        if long && self.peek() == Some(b'L') {
            self.pos += 1;
        }
        self.expect(b'\n')?;
        Some(Number {
            negative,
            magnitude,
        })
    }
}

pub(super) fn extract(headers: &HeaderMap) -> Option<Extracted> {
    let (trace, span) = decode(headers.get(HEADER)?.as_bytes())?;
    // The original recorded every trace: a caller that sends this header is recording.
    Some(Extracted::context(
        Format::XTraceInfo,
        trace,
        span,
        Some(true),
        false,
    ))
}

pub(super) fn inject(token: &TraceToken, headers: &mut HeaderMap) {
    if !token.sampled {
        headers.remove(HEADER);
        return;
    }
    match HeaderValue::from_str(&encode(token.trace_id, token.span_id)) {
        Ok(v) => {
            headers.insert(HEADER, v);
        }
        Err(_) => {
            headers.remove(HEADER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(t: u128, s: u64) -> (TraceId, SpanId) {
        (TraceId::from_u128(t).unwrap(), SpanId::from_u64(s).unwrap())
    }

    #[test]
    fn design_examples() {
        assert_eq!(encode(ids(1, 2).0, ids(1, 2).1), "KEkxCkkyCnRwMAou");
        assert_eq!(decode(b"KEkxCkkyCnRwMAou"), Some(ids(1, 2)));
        assert_eq!(
            decode(b"KEw1NzMxMDQ5MDcwNTcwODY2TApMMTIzNDU2Nzg5MDEyM0wKdHAwCi4="),
            Some(ids(5731049070570866, 1234567890123))
        );
    }

    #[test]
    fn signed_and_wide_ids_round_trip() {
        for (t, s) in [
            (u64::MAX as u128, u64::MAX),
            (1 << 63, 1 << 63),
            (u128::MAX, 1),
            (0x463ac35c9f6413ad48485a3953bb6124, 0xa2fb4a1d1a96d312),
        ] {
            let (t, s) = ids(t, s);
            assert_eq!(decode(encode(t, s).as_bytes()), Some((t, s)));
        }
        assert_eq!(
            unpickle(b"(I-1\nI-9223372036854775808\ntp0\n."),
            Some(ids(u64::MAX as u128, 1 << 63))
        );
    }

    #[test]
    fn python_2_forms() {
        assert_eq!(unpickle(b"(I1\nI2\ntp1\n."), Some(ids(1, 2)));
        assert_eq!(unpickle(b"(L1L\nL2L\ntp0\n."), Some(ids(1, 2)));
        assert_eq!(unpickle(b"(L1\nL2\nt."), Some(ids(1, 2)));
    }

    #[test]
    fn refuses_everything_else() {
        let bad: &[&[u8]] = &[
            b"",
            b"(I1\nI2\ntp0\n",
            b"(I1\nI2\ntp0\n..",
            b"(I1\nI2\ntp0\n.\n",
            b"I1\nI2\ntp0\n.",
            b"(I01\nI2\ntp0\n.",
            b"(I1\nI0\ntp0\n.",
            b"(I1\nI2L\ntp0\n.",
            b"(I1 \nI2\ntp0\n.",
            b"(I+1\nI2\ntp0\n.",
            b"(I1\nI-\ntp0\n.",
            b"(I1\nI18446744073709551616\ntp0\n.",
            b"(I1\nI-9223372036854775809\ntp0\n.",
            b"(I-9223372036854775809\nI1\ntp0\n.",
            b"(I340282366920938463463374607431768211456\nI1\ntp0\n.",
            b"(I1\nI2\ntp\n.",
            b"(I1\nI2\ntp12345678901\n.",
            b"(F1.0\nI2\ntp0\n.",
            b"(S'1'\nI2\ntp0\n.",
            b"cos\nsystem\n(S'id'\ntR.",
            b"(I1\nI2\nl.",
        ];
        for b in bad {
            assert_eq!(unpickle(b), None, "{:?}", String::from_utf8_lossy(b));
        }
        assert_eq!(decode(b"not base64!"), None);
        assert_eq!(decode("A".repeat(MAX_VALUE_LEN + 4).as_bytes()), None);
    }

    #[test]
    fn unsampled_tokens_remove_the_header() {
        let (t, s) = ids(1, 2);
        let mut headers = HeaderMap::new();
        inject(&TraceToken::new(t, s, true), &mut headers);
        assert!(headers.contains_key(HEADER));
        inject(&TraceToken::new(t, s, false), &mut headers);
        assert!(!headers.contains_key(HEADER));
    }
}
