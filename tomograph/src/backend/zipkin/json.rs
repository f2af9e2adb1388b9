//! Zipkin JSON v2: the body of `POST /api/v2/spans` (schema: Zipkin's `zipkin2-api.yaml`).
//!
//! A hand-rolled writer appending to a caller's (reused) `Vec<u8>`: no intermediate values, no
//! allocation per span once the buffer has grown. The mapping:
//!
//! | span | JSON v2 |
//! |---|---|
//! | trace id | `traceId`: 16 or 32 lower-hex characters |
//! | id, parent id | `id`, `parentId`: 16 lower-hex characters |
//! | kind | `kind`: `CLIENT`, `SERVER`, `PRODUCER`, `CONSUMER` (absent: local span) |
//! | first note, last − first | `timestamp`, `duration` in µs (duration at least 1) |
//! | notes in between | `annotations`: `{timestamp, value}`, each once (a note repeating an earlier one — same µs, same value — is left out: Zipkin keeps annotations unique) |
//! | tags | `tags`: values as strings (a key set twice: the last value) |
//! | local endpoint | `localEndpoint` (always with `serviceName`; port 0 left out) |
//! | remote endpoint | `remoteEndpoint` |
//! | debug, shared | `debug`, `shared` (only when true) |

use std::net::IpAddr;

use super::Extent;
use crate::model::{Endpoint, Span, TagValue};

/// The `serviceName` sent when a span's local service name is empty (Zipkin requires one).
pub(crate) const UNKNOWN_SERVICE: &str = "unknown_service";

/// Appends `spans` to `out` as a JSON v2 array (the whole body of `POST /api/v2/spans`).
///
/// ```
/// use tomograph::backend::zipkin::json;
/// use tomograph::{Endpoint, Kind, Span, SpanId, Timestamp, TraceId};
/// use std::time::Duration;
/// let start = Timestamp::from_unix_micros(1_700_000_000_000_000);
/// let span = Span::new(TraceId::from_u64(0xab).unwrap(), SpanId::from_u64(0xcd).unwrap(), "get", Endpoint::new("web"), start)
///     .with_kind(Kind::Server)
///     .with_end(start + Duration::from_millis(2))
///     .with_tag("http.status_code", 200);
/// let mut body = Vec::new();
/// json::encode_spans(&[span], &mut body);
/// assert_eq!(
///     String::from_utf8(body).unwrap(),
///     r#"[{"traceId":"00000000000000ab","id":"00000000000000cd","kind":"SERVER","name":"get","timestamp":1700000000000000,"duration":2000,"localEndpoint":{"serviceName":"web"},"tags":{"http.status_code":"200"}}]"#
/// );
/// ```
pub fn encode_spans(spans: &[Span], out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, span) in spans.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        encode_span(span, out);
    }
    out.push(b']');
}

/// Appends one span as a JSON v2 object.
pub fn encode_span(span: &Span, out: &mut Vec<u8>) {
    let extent = Extent::of(span);
    out.extend_from_slice(b"{\"traceId\":\"");
    let trace = span.trace_id();
    if trace.is_128bit() {
        write_hex64(trace.high(), out);
    }
    write_hex64(trace.low(), out);
    if let Some(parent) = span.parent_id() {
        out.extend_from_slice(b"\",\"parentId\":\"");
        write_hex64(parent.get(), out);
    }
    out.extend_from_slice(b"\",\"id\":\"");
    write_hex64(span.id().get(), out);
    out.push(b'"');
    if let Some(kind) = span.kind() {
        out.extend_from_slice(b",\"kind\":\"");
        out.extend_from_slice(kind.as_str().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b",\"name\":");
    write_str(span.name(), out);
    out.extend_from_slice(b",\"timestamp\":");
    write_u64(extent.timestamp, out);
    out.extend_from_slice(b",\"duration\":");
    write_u64(extent.duration, out);
    if span.debug() {
        out.extend_from_slice(b",\"debug\":true");
    }
    if span.shared() {
        out.extend_from_slice(b",\"shared\":true");
    }
    out.extend_from_slice(b",\"localEndpoint\":");
    write_endpoint(span.local_endpoint(), true, out);
    if let Some(remote) = span.remote_endpoint() {
        out.extend_from_slice(b",\"remoteEndpoint\":");
        write_endpoint(remote, false, out);
    }
    let notes = span.annotations();
    if !notes.is_empty() {
        out.extend_from_slice(b",\"annotations\":[");
        let mut first = true;
        for (i, note) in notes.iter().enumerate() {
            if i > 0 && super::repeated_note(notes, i, &[]) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(b"{\"timestamp\":");
            write_u64(note.timestamp.unix_micros(), out);
            out.extend_from_slice(b",\"value\":");
            write_str(&note.value, out);
            out.push(b'}');
        }
        out.push(b']');
    }
    let tags = span.tags();
    if !tags.is_empty() {
        out.extend_from_slice(b",\"tags\":{");
        let mut first = true;
        for tag in tags.distinct() {
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(&tag.key, out);
            out.push(b':');
            match &tag.value {
                TagValue::Str(s) => write_str(s, out),
                TagValue::I64(v) => {
                    out.push(b'"');
                    write_i64(*v, out);
                    out.push(b'"');
                }
                TagValue::Bool(v) => {
                    out.extend_from_slice(if *v { b"\"true\"" } else { b"\"false\"" })
                }
                TagValue::F64(v) => {
                    out.push(b'"');
                    // Display never writes quotes or control characters.
                    out.extend_from_slice(v.to_string().as_bytes());
                    out.push(b'"');
                }
            }
        }
        out.push(b'}');
    }
    out.push(b'}');
}

fn write_endpoint(endpoint: &Endpoint, local: bool, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut comma = false;
    let service = endpoint.service_name();
    if local || !service.is_empty() {
        out.extend_from_slice(b"\"serviceName\":");
        write_str(
            if service.is_empty() {
                UNKNOWN_SERVICE
            } else {
                service
            },
            out,
        );
        comma = true;
    }
    if let Some(ip) = endpoint.ip() {
        if comma {
            out.push(b',');
        }
        match ip {
            IpAddr::V4(v4) => {
                out.extend_from_slice(b"\"ipv4\":\"");
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    write_u64(octet.into(), out);
                }
            }
            IpAddr::V6(v6) => {
                out.extend_from_slice(b"\"ipv6\":\"");
                // An address's Display is plain ASCII.
                out.extend_from_slice(v6.to_string().as_bytes());
            }
        }
        out.push(b'"');
        comma = true;
    }
    // Zipkin reads port 0 as unknown: left out.
    if let Some(port) = endpoint.port().filter(|&p| p != 0) {
        if comma {
            out.push(b',');
        }
        out.extend_from_slice(b"\"port\":");
        write_u64(port.into(), out);
    }
    out.push(b'}');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn write_hex64(v: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 16];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out.extend_from_slice(&buf);
}

fn write_u64(v: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(super::Decimal::u64(v).as_bytes());
}

fn write_i64(v: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(super::Decimal::i64(v).as_bytes());
}

/// Writes `s` as a JSON string: quotes, backslashes and control characters escaped.
fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, Note, SpanId, Timestamp, TraceId};
    use std::time::Duration;

    fn parse(spans: &[Span]) -> serde_json::Value {
        let mut out = Vec::new();
        encode_spans(spans, &mut out);
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn strings_are_escaped_and_unicode_kept() {
        let mut out = Vec::new();
        let text = "q\"uote\\ back\nnl\ttab\u{1}ctl é 日本 🦀";
        write_str(text, &mut out);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, text);
    }

    #[test]
    fn numbers_and_hex() {
        let mut out = Vec::new();
        write_u64(0, &mut out);
        out.push(b' ');
        write_u64(u64::MAX, &mut out);
        out.push(b' ');
        write_i64(i64::MIN, &mut out);
        out.push(b' ');
        write_hex64(0x00f0_67aa_0ba9_02b7, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0 18446744073709551615 -9223372036854775808 00f067aa0ba902b7"
        );
    }

    #[test]
    fn full_span() {
        let t0 = Timestamp::from_unix_micros(1_000_000);
        let trace = TraceId::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10).unwrap();
        let span = Span::new(
            trace,
            SpanId::from_u64(u64::MAX).unwrap(),
            "SELECT",
            Endpoint::new("")
                .with_ip("::1".parse().unwrap())
                .with_port(8080),
            t0,
        )
        .with_parent(SpanId::from_u64(1).unwrap())
        .with_kind(Kind::Client)
        .with_remote_endpoint(
            Endpoint::new("postgresql")
                .with_ip("10.1.2.3".parse().unwrap())
                .with_port(5432),
        )
        .with_annotation(Note::new(t0 + Duration::from_micros(3), "sent"))
        .with_end(t0)
        .with_tag("k", "first")
        .with_tag("n", -5)
        .with_tag("f", 1.5)
        .with_tag("b", false)
        .with_tag("k", "last")
        .with_debug(true)
        .with_shared(true);
        let v = parse(&[span]);
        let s = &v[0];
        assert_eq!(s["traceId"], "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(s["id"], "ffffffffffffffff");
        assert_eq!(s["parentId"], "0000000000000001");
        assert_eq!(s["kind"], "CLIENT");
        assert_eq!(s["timestamp"], 1_000_000);
        assert_eq!(s["duration"], 1, "duration is at least 1");
        assert_eq!(s["debug"], true);
        assert_eq!(s["shared"], true);
        assert_eq!(
            s["localEndpoint"],
            serde_json::json!({"serviceName": UNKNOWN_SERVICE, "ipv6": "::1", "port": 8080})
        );
        assert_eq!(
            s["remoteEndpoint"],
            serde_json::json!({"serviceName": "postgresql", "ipv4": "10.1.2.3", "port": 5432})
        );
        assert_eq!(
            s["annotations"],
            serde_json::json!([{"timestamp": 1_000_003, "value": "sent"}])
        );
        assert_eq!(
            s["tags"],
            serde_json::json!({"k": "last", "n": "-5", "f": "1.5", "b": "false"})
        );
    }

    #[test]
    fn repeated_annotations_are_sent_once() {
        let t0 = Timestamp::from_unix_micros(1_000_000);
        let at = t0 + Duration::from_micros(5);
        let span = Span::new(
            TraceId::from_u64(1).unwrap(),
            SpanId::from_u64(2).unwrap(),
            "",
            Endpoint::new("s").with_port(0),
            t0,
        )
        .with_annotation(Note::new(at, "retry"))
        .with_annotation(Note::new(at + Duration::from_nanos(300), "retry"))
        .with_annotation(Note::new(at, "other"))
        .with_annotation(Note::new(at + Duration::from_micros(1), "retry"))
        .with_end(t0);
        let v = parse(&[span]);
        assert_eq!(
            v[0]["annotations"],
            serde_json::json!([
                {"timestamp": 1_000_005, "value": "retry"},
                {"timestamp": 1_000_005, "value": "other"},
                {"timestamp": 1_000_006, "value": "retry"},
            ])
        );
        assert_eq!(v[0]["name"], "");
        assert_eq!(v[0]["duration"], 1);
        assert_eq!(
            v[0]["localEndpoint"],
            serde_json::json!({"serviceName": "s"})
        );
    }
}
