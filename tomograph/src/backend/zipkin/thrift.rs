//! Zipkin thrift v1 (`zipkinCore.thrift`), written with the `thrift` crate's
//! `TBinaryProtocol`: the body of `POST /api/v1/spans` (a bare `list<Span>`) and the payload of
//! a Scribe message (one `Span`).
//!
//! v1 has no `kind`, `shared`, local or remote endpoint fields; as Zipkin's own v2 → v1
//! converter does:
//!
//! | span | thrift v1 |
//! |---|---|
//! | trace id | `trace_id` (1, low 64 bits) and `trace_id_high` (12, 128-bit ids only) |
//! | name, id, parent id | 3, 4, 5 (ids as two's-complement `i64`) |
//! | first note, last − first | `timestamp` (10), `duration` (11), µs, duration ≥ 1 |
//! | kind | core annotations at start/end: CLIENT `cs`/`cr`, SERVER `sr`/`ss`, PRODUCER `ms`, CONSUMER `mr` |
//! | shared (a SERVER span) | `timestamp` and `duration` left out: the client owns them |
//! | notes in between | `annotations` (6), each once (a note repeating an earlier one or a core annotation — same µs, same value — is left out) |
//! | tags | `binary_annotations` (8): STRING by default, or typed (see [`TagEncoding`]) |
//! | local endpoint | `host` of every annotation and binary annotation; a span with neither gets an empty `lc` tag |
//! | remote endpoint | a BOOL binary annotation, value `0x01`, host = remote: `sa` (CLIENT, or no kind), `ca` (SERVER), `ma` (PRODUCER, CONSUMER) |
//! | debug | `debug` (9), only when true |

use std::net::IpAddr;

use ::thrift::protocol::{
    TBinaryOutputProtocol, TFieldIdentifier, TListIdentifier, TOutputProtocol, TType,
};

use super::Extent;
use super::json::UNKNOWN_SERVICE;
use crate::model::{Endpoint, Kind, Span, TagValue};

/// How tags become binary annotations.
///
/// ```
/// use tomograph::backend::zipkin::thrift::TagEncoding;
/// assert_eq!(TagEncoding::default(), TagEncoding::Strings);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TagEncoding {
    /// Every tag as a STRING binary annotation (integers and floats as text, booleans as
    /// `true`/`false`): what Zipkin's v1 reader keeps. The default.
    #[default]
    Strings,
    /// The original library's typed encoding: I64 for integers, DOUBLE for floats, BOOL for
    /// booleans, STRING for text — for old collectors that read them (Zipkin's v1 reader
    /// drops non-STRING tags).
    Typed,
}

// zipkinCore.thrift AnnotationType values.
const BOOL: i32 = 0;
const I64: i32 = 4;
const DOUBLE: i32 = 5;
const STRING: i32 = 6;

const fn field(field_type: TType, id: i16) -> TFieldIdentifier {
    TFieldIdentifier {
        name: None,
        field_type,
        id: Some(id),
    }
}

// Span
const SPAN_TRACE_ID: TFieldIdentifier = field(TType::I64, 1);
const SPAN_NAME: TFieldIdentifier = field(TType::String, 3);
const SPAN_ID: TFieldIdentifier = field(TType::I64, 4);
const SPAN_PARENT_ID: TFieldIdentifier = field(TType::I64, 5);
const SPAN_ANNOTATIONS: TFieldIdentifier = field(TType::List, 6);
const SPAN_BINARY_ANNOTATIONS: TFieldIdentifier = field(TType::List, 8);
const SPAN_DEBUG: TFieldIdentifier = field(TType::Bool, 9);
const SPAN_TIMESTAMP: TFieldIdentifier = field(TType::I64, 10);
const SPAN_DURATION: TFieldIdentifier = field(TType::I64, 11);
const SPAN_TRACE_ID_HIGH: TFieldIdentifier = field(TType::I64, 12);
// Annotation
const ANNOTATION_TIMESTAMP: TFieldIdentifier = field(TType::I64, 1);
const ANNOTATION_VALUE: TFieldIdentifier = field(TType::String, 2);
const ANNOTATION_HOST: TFieldIdentifier = field(TType::Struct, 3);
// BinaryAnnotation
const BINARY_KEY: TFieldIdentifier = field(TType::String, 1);
const BINARY_VALUE: TFieldIdentifier = field(TType::String, 2);
const BINARY_TYPE: TFieldIdentifier = field(TType::I32, 3);
const BINARY_HOST: TFieldIdentifier = field(TType::Struct, 4);
// Endpoint
const ENDPOINT_IPV4: TFieldIdentifier = field(TType::I32, 1);
const ENDPOINT_PORT: TFieldIdentifier = field(TType::I16, 2);
const ENDPOINT_SERVICE: TFieldIdentifier = field(TType::String, 3);
const ENDPOINT_IPV6: TFieldIdentifier = field(TType::String, 4);

type Protocol<'a> = TBinaryOutputProtocol<&'a mut Vec<u8>>;
type Result = ::thrift::Result<()>;

/// Appends `spans` to `out` as a TBinaryProtocol `list<Span>` (the whole body of
/// `POST /api/v1/spans`).
///
/// ```
/// use tomograph::backend::zipkin::thrift::{self, TagEncoding};
/// use tomograph::{Endpoint, Span, SpanId, Timestamp, TraceId};
/// let span = Span::new(TraceId::from_u64(1).unwrap(), SpanId::from_u64(2).unwrap(), "x", Endpoint::new("svc"), Timestamp::now());
/// let mut body = Vec::new();
/// thrift::encode_spans(&[span], TagEncoding::Strings, &mut body);
/// assert_eq!(&body[..5], &[0x0c, 0, 0, 0, 1]); // list header: STRUCT, one element
/// ```
pub fn encode_spans(spans: &[Span], tags: TagEncoding, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail; a `Result` here would only be noise for callers.
    let _ = proto(out).write_list_begin(&TListIdentifier::new(TType::Struct, len_i32(spans.len())));
    let mut tails = Tails::default();
    for span in spans {
        let _ = write_span(out, span, tags, &mut tails);
    }
}

/// Appends one span to `out` as a TBinaryProtocol `Span` struct (what a Scribe message
/// carries, base64'd).
///
/// ```
/// use tomograph::backend::zipkin::thrift::{self, TagEncoding};
/// use tomograph::{Endpoint, Span, SpanId, Timestamp, TraceId};
/// let span = Span::new(TraceId::from_u64(1).unwrap(), SpanId::from_u64(2).unwrap(), "x", Endpoint::new("svc"), Timestamp::now());
/// let mut one = Vec::new();
/// thrift::encode_span(&span, TagEncoding::Strings, &mut one);
/// let mut list = Vec::new();
/// thrift::encode_spans(&[span], TagEncoding::Strings, &mut list);
/// assert_eq!(&list[5..], &one[..]);
/// ```
pub fn encode_span(span: &Span, tags: TagEncoding, out: &mut Vec<u8>) {
    let _ = write_span(out, span, tags, &mut Tails::default());
}

/// A binary protocol writing to `out`: cheap to make, so the writer makes one per run of
/// fields and copies already-encoded runs in between.
fn proto(out: &mut Vec<u8>) -> Protocol<'_> {
    TBinaryOutputProtocol::new(out, true)
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The fields that end every annotation and every STRING binary annotation of a span — the
/// same for all of them, since they all carry the local endpoint — encoded once per span.
/// Spans of one service share their local endpoint, so the tails are kept for the next span.
#[derive(Default)]
struct Tails {
    /// The endpoint the tails were made for.
    endpoint: Option<Endpoint>,
    /// `host` = local endpoint, stop.
    annotation: Vec<u8>,
    /// `annotation_type` = STRING, `host` = local endpoint, stop.
    string: Vec<u8>,
}

impl Tails {
    fn prepare(&mut self, local: &Endpoint) -> Result {
        if self.endpoint.as_ref() == Some(local) {
            return Ok(());
        }
        self.endpoint = Some(local.clone());
        self.annotation.clear();
        let o = &mut proto(&mut self.annotation);
        o.write_field_begin(&ANNOTATION_HOST)?;
        write_endpoint(o, local, true)?;
        o.write_field_end()?;
        o.write_field_stop()?;
        self.string.clear();
        let o = &mut proto(&mut self.string);
        write_binary_tail(o, STRING, local, true)
    }
}

/// The core annotations a kind stands for in v1 (at start, at end), and the key of the
/// remote endpoint's address annotation.
fn core_annotations(
    kind: Option<Kind>,
) -> (Option<&'static str>, Option<&'static str>, &'static str) {
    match kind {
        Some(Kind::Client) => (Some("cs"), Some("cr"), "sa"),
        Some(Kind::Server) => (Some("sr"), Some("ss"), "ca"),
        Some(Kind::Producer) => (Some("ms"), None, "ma"),
        Some(Kind::Consumer) => (Some("mr"), None, "ma"),
        None => (None, None, "sa"),
    }
}

fn write_span(out: &mut Vec<u8>, span: &Span, tags: TagEncoding, tails: &mut Tails) -> Result {
    let extent = Extent::of(span);
    let local = span.local_endpoint();
    tails.prepare(local)?;
    let trace = span.trace_id();
    let (at_start, at_end, address_key) = core_annotations(span.kind());
    let notes = span.annotations();
    let mut core = [(0u64, ""); 2];
    let mut cores = 0;
    if let Some(v) = at_start {
        core[cores] = (extent.timestamp, v);
        cores += 1;
    }
    if let Some(v) = at_end {
        core[cores] = (extent.end(), v);
        cores += 1;
    }
    let core = &core[..cores];
    let repeats = if notes.len() > 1 || !core.is_empty() {
        (0..notes.len())
            .filter(|&i| super::repeated_note(notes, i, core))
            .count()
    } else {
        0
    };
    let count = notes.len() - repeats + cores;
    {
        // write_struct_begin / write_struct_end are no-ops in TBinaryProtocol.
        let o = &mut proto(out);
        o.write_field_begin(&SPAN_TRACE_ID)?;
        o.write_i64(trace.low() as i64)?;
        o.write_field_end()?;
        o.write_field_begin(&SPAN_NAME)?;
        o.write_string(span.name())?;
        o.write_field_end()?;
        o.write_field_begin(&SPAN_ID)?;
        o.write_i64(span.id().get() as i64)?;
        o.write_field_end()?;
        if let Some(parent) = span.parent_id() {
            o.write_field_begin(&SPAN_PARENT_ID)?;
            o.write_i64(parent.get() as i64)?;
            o.write_field_end()?;
        }
        if count > 0 {
            o.write_field_begin(&SPAN_ANNOTATIONS)?;
            o.write_list_begin(&TListIdentifier::new(TType::Struct, len_i32(count)))?;
        }
    }
    if count > 0 {
        if let Some(value) = at_start {
            write_annotation(out, extent.timestamp, value, &tails.annotation)?;
        }
        for (i, note) in notes.iter().enumerate() {
            if repeats > 0 && super::repeated_note(notes, i, core) {
                continue;
            }
            write_annotation(
                out,
                note.timestamp.unix_micros(),
                &note.value,
                &tails.annotation,
            )?;
        }
        if let Some(value) = at_end {
            write_annotation(out, extent.end(), value, &tails.annotation)?;
        }
        let o = &mut proto(out);
        o.write_list_end()?;
        o.write_field_end()?;
    }

    let all_tags = span.tags();
    let kept = all_tags.distinct().count();
    let remote = span.remote_endpoint();
    let local_component = count == 0 && kept == 0;
    let binary_count = kept + usize::from(remote.is_some()) + usize::from(local_component);
    if binary_count > 0 {
        let o = &mut proto(out);
        o.write_field_begin(&SPAN_BINARY_ANNOTATIONS)?;
        o.write_list_begin(&TListIdentifier::new(TType::Struct, len_i32(binary_count)))?;
        if kept == all_tags.len() {
            // No key set twice (the usual case): no second search for repeats.
            for tag in all_tags {
                write_tag(out, &tag.key, &tag.value, tags, local, &tails.string)?;
            }
        } else {
            for tag in all_tags.distinct() {
                write_tag(out, &tag.key, &tag.value, tags, local, &tails.string)?;
            }
        }
        if local_component {
            // Like Zipkin's converter: the only way to carry the local endpoint.
            write_binary(out, "lc", b"", Tail::Encoded(&tails.string))?;
        }
        if let Some(remote) = remote {
            let tail = Tail::Write {
                kind: BOOL,
                host: remote,
                local: false,
            };
            write_binary(out, address_key, &[1], tail)?;
        }
        let o = &mut proto(out);
        o.write_list_end()?;
        o.write_field_end()?;
    }

    let o = &mut proto(out);
    if span.debug() {
        o.write_field_begin(&SPAN_DEBUG)?;
        o.write_bool(true)?;
        o.write_field_end()?;
    }
    if !(span.shared() && span.kind() == Some(Kind::Server)) {
        o.write_field_begin(&SPAN_TIMESTAMP)?;
        o.write_i64(extent.timestamp as i64)?;
        o.write_field_end()?;
        o.write_field_begin(&SPAN_DURATION)?;
        o.write_i64(extent.duration as i64)?;
        o.write_field_end()?;
    }
    if trace.is_128bit() {
        o.write_field_begin(&SPAN_TRACE_ID_HIGH)?;
        o.write_i64(trace.high() as i64)?;
        o.write_field_end()?;
    }
    o.write_field_stop()
}

fn write_annotation(out: &mut Vec<u8>, micros: u64, value: &str, tail: &[u8]) -> Result {
    let o = &mut proto(out);
    o.write_field_begin(&ANNOTATION_TIMESTAMP)?;
    o.write_i64(micros as i64)?;
    o.write_field_end()?;
    o.write_field_begin(&ANNOTATION_VALUE)?;
    o.write_string(value)?;
    o.write_field_end()?;
    out.extend_from_slice(tail);
    Ok(())
}

/// How a binary annotation ends: an encoded STRING tail, or a type and host to write.
enum Tail<'a> {
    Encoded(&'a [u8]),
    Write {
        kind: i32,
        host: &'a Endpoint,
        local: bool,
    },
}

fn write_tag(
    out: &mut Vec<u8>,
    key: &str,
    value: &TagValue,
    encoding: TagEncoding,
    local: &Endpoint,
    string_tail: &[u8],
) -> Result {
    let string = Tail::Encoded(string_tail);
    let typed = |kind| Tail::Write {
        kind,
        host: local,
        local: true,
    };
    match (value, encoding) {
        (TagValue::Str(s), _) => write_binary(out, key, s.as_bytes(), string),
        (TagValue::I64(v), TagEncoding::Typed) => {
            write_binary(out, key, &v.to_be_bytes(), typed(I64))
        }
        (TagValue::F64(v), TagEncoding::Typed) => {
            write_binary(out, key, &v.to_bits().to_be_bytes(), typed(DOUBLE))
        }
        (TagValue::Bool(v), TagEncoding::Typed) => {
            write_binary(out, key, &[u8::from(*v)], typed(BOOL))
        }
        (TagValue::Bool(v), TagEncoding::Strings) => {
            write_binary(out, key, if *v { b"true" } else { b"false" }, string)
        }
        (TagValue::I64(v), TagEncoding::Strings) => {
            write_binary(out, key, super::Decimal::i64(*v).as_bytes(), string)
        }
        (TagValue::F64(v), TagEncoding::Strings) => {
            write_binary(out, key, v.to_string().as_bytes(), string)
        }
    }
}

fn write_binary(out: &mut Vec<u8>, key: &str, value: &[u8], tail: Tail<'_>) -> Result {
    let o = &mut proto(out);
    o.write_field_begin(&BINARY_KEY)?;
    o.write_string(key)?;
    o.write_field_end()?;
    o.write_field_begin(&BINARY_VALUE)?;
    o.write_bytes(value)?;
    o.write_field_end()?;
    match tail {
        Tail::Encoded(bytes) => {
            out.extend_from_slice(bytes);
            Ok(())
        }
        Tail::Write { kind, host, local } => write_binary_tail(o, kind, host, local),
    }
}

fn write_binary_tail(o: &mut Protocol<'_>, kind: i32, host: &Endpoint, local: bool) -> Result {
    o.write_field_begin(&BINARY_TYPE)?;
    o.write_i32(kind)?;
    o.write_field_end()?;
    o.write_field_begin(&BINARY_HOST)?;
    write_endpoint(o, host, local)?;
    o.write_field_end()?;
    o.write_field_stop()
}

fn write_endpoint(o: &mut Protocol<'_>, endpoint: &Endpoint, local: bool) -> Result {
    let (ipv4, ipv6) = match endpoint.ip() {
        Some(IpAddr::V4(v4)) => (i32::from_be_bytes(v4.octets()), None),
        Some(IpAddr::V6(v6)) => (0, Some(v6.octets())),
        None => (0, None),
    };
    o.write_field_begin(&ENDPOINT_IPV4)?;
    o.write_i32(ipv4)?;
    o.write_field_end()?;
    o.write_field_begin(&ENDPOINT_PORT)?;
    o.write_i16(endpoint.port().unwrap_or(0) as i16)?;
    o.write_field_end()?;
    o.write_field_begin(&ENDPOINT_SERVICE)?;
    let service = endpoint.service_name();
    o.write_string(if local && service.is_empty() {
        UNKNOWN_SERVICE
    } else {
        service
    })?;
    o.write_field_end()?;
    if let Some(v6) = ipv6 {
        o.write_field_begin(&ENDPOINT_IPV6)?;
        o.write_bytes(&v6)?;
        o.write_field_end()?;
    }
    o.write_field_stop()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SpanId, Timestamp, TraceId};

    #[test]
    fn minimal_span_bytes() {
        let span = Span::new(
            TraceId::from_u64(1).unwrap(),
            SpanId::from_u64(2).unwrap(),
            "n",
            Endpoint::new("s"),
            Timestamp::from_unix_micros(5),
        );
        let mut out = Vec::new();
        encode_span(&span, TagEncoding::Strings, &mut out);
        let endpoint: &[u8] = &[
            8, 0, 1, 0, 0, 0, 0, // ipv4 = 0
            6, 0, 2, 0, 0, // port = 0
            11, 0, 3, 0, 0, 0, 1, b's', // service_name
            0,
        ];
        let mut expected: Vec<u8> = vec![
            10, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, // trace_id
            11, 0, 3, 0, 0, 0, 1, b'n', // name
            10, 0, 4, 0, 0, 0, 0, 0, 0, 0, 2, // id
            15, 0, 8, 12, 0, 0, 0, 1, // binary_annotations: one struct
            11, 0, 1, 0, 0, 0, 2, b'l', b'c', // key "lc"
            11, 0, 2, 0, 0, 0, 0, // value ""
            8, 0, 3, 0, 0, 0, 6, // STRING
            12, 0, 4, // host
        ];
        expected.extend_from_slice(endpoint);
        expected.push(0); // end of binary annotation
        expected.extend_from_slice(&[10, 0, 10, 0, 0, 0, 0, 0, 0, 0, 5]); // timestamp
        expected.extend_from_slice(&[10, 0, 11, 0, 0, 0, 0, 0, 0, 0, 1]); // duration
        expected.push(0);
        assert_eq!(out, expected);
    }

    #[test]
    fn repeated_annotations_are_written_once() {
        use std::time::Duration;
        let t0 = Timestamp::from_unix_micros(1_000);
        let base = Span::new(
            TraceId::from_u64(1).unwrap(),
            SpanId::from_u64(2).unwrap(),
            "n",
            Endpoint::new("s"),
            t0,
        )
        .with_kind(Kind::Client)
        .with_end(t0 + Duration::from_micros(9));
        let note = crate::Note::new(t0 + Duration::from_micros(3), "retry");
        let once = base.clone().with_annotation(note.clone());
        // Twice, plus a user note equal to the core `cs` annotation.
        let repeated = base
            .with_annotation(note.clone())
            .with_annotation(crate::Note::new(t0, "cs"))
            .with_annotation(note);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_span(&once, TagEncoding::Strings, &mut a);
        encode_span(&repeated, TagEncoding::Strings, &mut b);
        assert_eq!(a, b);
    }
}
