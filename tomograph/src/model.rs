//! The data model: traces, spans, notes, tags and endpoints (the Dapper/Zipkin model).
//!
//! A trace is a set of [`Span`]s sharing a [`TraceId`]; a span is a set of notes (timestamped
//! annotations) plus [`Tag`]s. A span's extent is its first note (`start`) to its last
//! (`stop`); the notes in between are its [`annotations`](Span::annotations).

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU64;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use thin_vec::ThinVec;

use crate::clock::Timestamp;
use crate::error::IdParseError;

pub use crate::text::Text;

/// A trace id: 64 or 128 bits, never zero.
///
/// A 64-bit id is one whose upper 64 bits are zero; it prints as 16 lower-hex characters,
/// a 128-bit one as 32, which is what Zipkin, B3 and W3C expect.
///
/// ```
/// use tomograph::TraceId;
/// let id: TraceId = "463ac35c9f6413ad".parse().unwrap();
/// assert_eq!(id.to_string(), "463ac35c9f6413ad");
/// assert!(!id.is_128bit());
/// let wide = TraceId::from_u128(0x463ac35c9f6413ad48485a3953bb6124).unwrap();
/// assert_eq!(wide.to_string(), "463ac35c9f6413ad48485a3953bb6124");
/// assert_eq!(wide.low(), 0x48485a3953bb6124);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
// Two 64-bit halves rather than one `u128`: 8-byte alignment keeps the tokens that carry a
// trace id cheap to copy on the hot path (a 16-aligned `u128` inside `Option`s made the
// compiler split copies across misaligned stores). Never both zero.
pub struct TraceId {
    high: u64,
    low: u64,
}

impl TraceId {
    /// A random id, 128 bits wide when `wide` is true, 64 otherwise. No system call.
    pub fn random(wide: bool) -> Self {
        let low = fastrand::u64(1..);
        let high = if wide { fastrand::u64(1..) } else { 0 };
        Self { high, low }
    }

    /// The id `value` (64 bits wide), or `None` for zero.
    pub const fn from_u64(value: u64) -> Option<Self> {
        Self::from_u128(value as u128)
    }

    /// The id `value`, or `None` for zero.
    pub const fn from_u128(value: u128) -> Option<Self> {
        if value == 0 {
            None
        } else {
            Some(Self {
                high: (value >> 64) as u64,
                low: value as u64,
            })
        }
    }

    /// The id from its two halves; `None` when both are zero.
    #[inline]
    pub(crate) const fn from_halves(high: u64, low: u64) -> Option<Self> {
        if high == 0 && low == 0 {
            None
        } else {
            Some(Self { high, low })
        }
    }

    /// The whole id.
    pub const fn get(self) -> u128 {
        ((self.high as u128) << 64) | self.low as u128
    }

    /// The lower 64 bits (Zipkin thrift's `trace_id`).
    pub const fn low(self) -> u64 {
        self.low
    }

    /// The upper 64 bits (Zipkin thrift's `trace_id_high`), zero for a 64-bit id.
    pub const fn high(self) -> u64 {
        self.high
    }

    /// Whether the upper 64 bits are used.
    pub const fn is_128bit(self) -> bool {
        self.high() != 0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_128bit() {
            write!(f, "{:032x}", self.get())
        } else {
            write!(f, "{:016x}", self.low())
        }
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl std::str::FromStr for TraceId {
    type Err = IdParseError;

    /// Parses 16 or 32 hex characters (either case); all zeros is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 && s.len() != 32 {
            return Err(IdParseError::Length { len: s.len() });
        }
        let value = parse_hex_u128(s)?;
        Self::from_u128(value).ok_or(IdParseError::Zero)
    }
}

/// A span id: 64 random bits, never zero.
///
/// ```
/// use tomograph::SpanId;
/// let id: SpanId = "00f067aa0ba902b7".parse().unwrap();
/// assert_eq!(id.get(), 0x00f067aa0ba902b7);
/// assert_eq!(id.to_string(), "00f067aa0ba902b7");
/// assert!("0000000000000000".parse::<SpanId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(NonZeroU64);

impl SpanId {
    /// A random id from a thread-local generator (no system call per id).
    pub fn random() -> Self {
        Self(NonZeroU64::new(fastrand::u64(1..)).unwrap_or(NonZeroU64::MIN))
    }

    /// The id `value`, or `None` for zero.
    pub const fn from_u64(value: u64) -> Option<Self> {
        match NonZeroU64::new(value) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The id as a number.
    pub const fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.get())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

impl std::str::FromStr for SpanId {
    type Err = IdParseError;

    /// Parses 16 hex characters (either case); all zeros is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(IdParseError::Length { len: s.len() });
        }
        let value = parse_hex_u128(s)? as u64;
        Self::from_u64(value).ok_or(IdParseError::Zero)
    }
}

fn parse_hex_u128(s: &str) -> Result<u128, IdParseError> {
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IdParseError::NotHex);
    }
    u128::from_str_radix(s, 16).map_err(|_| IdParseError::NotHex)
}

/// Where a span happens: a service name, an IP address and a port.
///
/// ```
/// use tomograph::Endpoint;
/// let db = Endpoint::new("postgresql").with_ip("127.0.0.1".parse().unwrap()).with_port(5432);
/// assert_eq!(db.service_name(), "postgresql");
/// assert_eq!(db.port(), Some(5432));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    service_name: Text,
    ip: Option<IpAddr>,
    port: Option<u16>,
}

impl Endpoint {
    /// An endpoint with only a service name.
    pub fn new(service_name: impl Into<Text>) -> Self {
        Self {
            service_name: service_name.into(),
            ip: None,
            port: None,
        }
    }

    /// The same endpoint at `ip`.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// The same endpoint at `ip`, if any.
    pub fn with_optional_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.ip = ip;
        self
    }

    /// The same endpoint on `port` (0 means "unknown").
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = (port != 0).then_some(port);
        self
    }

    /// The service name (Zipkin's `serviceName`).
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The IP address, when known.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The port, when known.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

/// A cheap handle on an [`Endpoint`]: a `'static` one (the tracer's own, free to copy) or a
/// shared one.
#[derive(Clone, Debug)]
pub(crate) enum EndpointRef {
    Static(&'static Endpoint),
    Shared(Arc<Endpoint>),
}

impl Deref for EndpointRef {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        match self {
            EndpointRef::Static(e) => e,
            EndpointRef::Shared(e) => e,
        }
    }
}

/// What many spans share — a database's remote endpoint and tags, a SQL statement's text —
/// built once, interned (`'static`) and pointed at by each span instead of copied into it, so
/// that such a span carries one pointer where it would carry eight tags.
#[derive(Debug)]
pub(crate) struct SpanTemplate {
    pub(crate) remote_endpoint: Option<&'static Endpoint>,
    pub(crate) tags: Box<[Tag]>,
}

/// Whom a span talked to: its own remote endpoint, or the one of the template it shares.
#[derive(Clone, Debug)]
pub(crate) enum Peer {
    Endpoint(EndpointRef),
    Template(&'static SpanTemplate),
}

impl Peer {
    fn endpoint(&self) -> Option<&Endpoint> {
        match self {
            Peer::Endpoint(e) => Some(e),
            Peer::Template(t) => t.remote_endpoint,
        }
    }
}

/// A span's tags, in the order they were set: those it shares with other spans (a
/// database's, a statement's) first, then its own. A key set twice appears twice.
///
/// ```
/// use tomograph::{Endpoint, Span, SpanId, Timestamp, TraceId};
/// let span = Span::new(TraceId::from_u64(1).unwrap(), SpanId::from_u64(2).unwrap(), "q", Endpoint::new("svc"), Timestamp::now())
///     .with_tag("rows", 1)
///     .with_tag("rows", 2);
/// let tags = span.tags();
/// assert_eq!(tags.len(), 2);
/// assert_eq!(tags.distinct().count(), 1, "Zipkin keeps the last value of a key");
/// assert_eq!(tags.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), ["rows", "rows"]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Tags<'a> {
    shared: &'a [Tag],
    own: &'a [Tag],
}

/// The iterator over [`Tags`]: the shared tags, then the span's own.
pub type TagsIter<'a> = std::iter::Chain<std::slice::Iter<'a, Tag>, std::slice::Iter<'a, Tag>>;

impl<'a> Tags<'a> {
    /// How many tags (a key set twice counts twice).
    pub fn len(&self) -> usize {
        self.shared.len() + self.own.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty() && self.own.is_empty()
    }
    /// Every tag, in the order set.
    pub fn iter(&self) -> TagsIter<'a> {
        self.shared.iter().chain(self.own.iter())
    }
    /// The last value set for `key`.
    pub fn get(&self, key: &str) -> Option<&'a TagValue> {
        self.iter().rev().find(|t| t.key == key).map(|t| &t.value)
    }
    /// One tag per key — the last one set — in the order set (what Zipkin keeps).
    pub fn distinct(&self) -> impl Iterator<Item = &'a Tag> + Clone + 'a {
        let all = *self;
        self.iter()
            .enumerate()
            .filter(move |(i, tag)| !all.iter().skip(i + 1).any(|later| later.key == tag.key))
            .map(|(_, tag)| tag)
    }
}

impl<'a> IntoIterator for Tags<'a> {
    type Item = &'a Tag;
    type IntoIter = TagsIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// What role a span plays in an RPC or a message exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The caller's side of an RPC (and every SQL statement).
    Client,
    /// The callee's side of an RPC.
    Server,
    /// Sending a message to a broker.
    Producer,
    /// Receiving a message from a broker.
    Consumer,
}

impl Kind {
    /// The upper-case name Zipkin v2 uses (`CLIENT`, `SERVER`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Client => "CLIENT",
            Kind::Server => "SERVER",
            Kind::Producer => "PRODUCER",
            Kind::Consumer => "CONSUMER",
        }
    }
}

/// The value of a [`Tag`].
///
/// ```
/// use tomograph::TagValue;
/// assert_eq!(TagValue::from(42).to_string(), "42");
/// assert_eq!(TagValue::from("x"), TagValue::Str("x".into()));
/// assert_eq!(TagValue::from(true).to_string(), "true");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum TagValue {
    /// Text.
    Str(Text),
    /// A signed integer.
    I64(i64),
    /// A floating-point number.
    F64(f64),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for TagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagValue::Str(s) => f.write_str(s),
            TagValue::I64(v) => write!(f, "{v}"),
            TagValue::F64(v) => write!(f, "{v}"),
            TagValue::Bool(v) => write!(f, "{v}"),
        }
    }
}

impl From<&'static str> for TagValue {
    fn from(v: &'static str) -> Self {
        TagValue::Str(v.into())
    }
}
impl From<String> for TagValue {
    fn from(v: String) -> Self {
        TagValue::Str(v.into())
    }
}
impl From<Arc<str>> for TagValue {
    fn from(v: Arc<str>) -> Self {
        TagValue::Str(v.into())
    }
}
impl From<Text> for TagValue {
    fn from(v: Text) -> Self {
        TagValue::Str(v)
    }
}
impl From<bool> for TagValue {
    fn from(v: bool) -> Self {
        TagValue::Bool(v)
    }
}
impl From<f64> for TagValue {
    fn from(v: f64) -> Self {
        TagValue::F64(v)
    }
}
impl From<f32> for TagValue {
    fn from(v: f32) -> Self {
        TagValue::F64(v.into())
    }
}
macro_rules! tag_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for TagValue {
            fn from(v: $t) -> Self {
                TagValue::I64(v as i64)
            }
        }
    )*};
}
tag_from_int!(i8, i16, i32, i64, u8, u16, u32);
impl From<u64> for TagValue {
    /// Values above `i64::MAX` become text, so nothing is lost.
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or_else(|_| TagValue::Str(v.to_string().into()), TagValue::I64)
    }
}
impl From<usize> for TagValue {
    fn from(v: usize) -> Self {
        TagValue::from(v as u64)
    }
}

/// A key → value pair on a span.
#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    /// The key.
    pub key: Text,
    /// The value.
    pub value: TagValue,
}

impl Tag {
    /// A tag `key` = `value`.
    pub fn new(key: impl Into<Text>, value: impl Into<TagValue>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A timestamped annotation on a span (the seed's "note").
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// When it happened.
    pub timestamp: Timestamp,
    /// What happened.
    pub value: Text,
    /// Where it happened, when not at the span's local endpoint.
    pub endpoint: Option<Arc<Endpoint>>,
    /// How long it lasted, for notes that stand for an interval.
    pub duration: Option<Duration>,
}

impl Note {
    /// A note `value` at `timestamp`.
    pub fn new(timestamp: Timestamp, value: impl Into<Text>) -> Self {
        Self {
            timestamp,
            value: value.into(),
            endpoint: None,
            duration: None,
        }
    }
}

/// The value of the first note of every span.
pub const START_NOTE: &str = "start";
/// The value of the last note of every span.
pub const STOP_NOTE: &str = "stop";

/// A finished (or, inside the tracer, a running) span: what backends receive.
///
/// Spans are made by the tracer ([`crate::span`], [`crate::start`], …). [`Span::new`] and the
/// `with_*` methods build one by hand, for backends' tests and for importing spans from
/// elsewhere.
///
/// ```
/// use tomograph::{Endpoint, Kind, Span, SpanId, Timestamp, TraceId};
/// use std::time::Duration;
/// let start = Timestamp::from_unix_micros(1_700_000_000_000_000);
/// let span = Span::new(TraceId::from_u64(1).unwrap(), SpanId::from_u64(2).unwrap(), "GET /", Endpoint::new("web"), start)
///     .with_kind(Kind::Server)
///     .with_end(start + Duration::from_millis(5))
///     .with_tag("http.method", "GET");
/// assert_eq!(span.duration(), Duration::from_millis(5));
/// assert_eq!(span.notes().map(|(_, v)| v).collect::<Vec<_>>(), ["start", "stop"]);
/// ```
#[derive(Clone, Debug)]
pub struct Span {
    pub(crate) trace_id: TraceId,
    pub(crate) id: SpanId,
    pub(crate) parent_id: Option<SpanId>,
    pub(crate) name: Text,
    pub(crate) kind: Option<Kind>,
    pub(crate) local_endpoint: EndpointRef,
    pub(crate) peer: Option<Peer>,
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) annotations: ThinVec<Note>,
    pub(crate) tags: ThinVec<Tag>,
    pub(crate) debug: bool,
    pub(crate) shared: bool,
    pub(crate) remote_parent: bool,
    /// Inside the tracer: the span's stack frame is owned by no guard (the seed API opened
    /// it), so a panic can leave it behind. Lives here, in the span's padding, so that a
    /// frame stays no larger than its span.
    pub(crate) unowned: bool,
    /// Inside the tracer: the span's trace is held for the tail decision (see
    /// [`crate::sample::TailSampling`]).
    pub(crate) held: bool,
}

impl Span {
    /// A span with no parent, no tags and no notes but `start`, ending where it starts.
    pub fn new(
        trace_id: TraceId,
        id: SpanId,
        name: impl Into<Text>,
        local_endpoint: Endpoint,
        start: Timestamp,
    ) -> Self {
        Self {
            trace_id,
            id,
            parent_id: None,
            name: name.into(),
            kind: None,
            local_endpoint: EndpointRef::Shared(Arc::new(local_endpoint)),
            peer: None,
            start,
            end: start,
            annotations: ThinVec::new(),
            tags: ThinVec::new(),
            debug: false,
            shared: false,
            remote_parent: false,
            unowned: false,
            held: false,
        }
    }

    /// Talks to `remote` from now on. A span sharing a template keeps the template's tags,
    /// copied into its own ahead of the tags it has.
    pub(crate) fn set_remote_endpoint(&mut self, remote: EndpointRef) {
        if let Some(Peer::Template(template)) = self.peer {
            let own = std::mem::take(&mut self.tags);
            self.tags = template.tags.iter().cloned().chain(own).collect();
        }
        self.peer = Some(Peer::Endpoint(remote));
    }

    /// The same span, child of `parent`.
    pub fn with_parent(mut self, parent: SpanId) -> Self {
        self.parent_id = Some(parent);
        self
    }
    /// The same span, of kind `kind`.
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = Some(kind);
        self
    }
    /// The same span, talking to `remote`.
    pub fn with_remote_endpoint(mut self, remote: Endpoint) -> Self {
        self.set_remote_endpoint(EndpointRef::Shared(Arc::new(remote)));
        self
    }
    /// The same span, stopped at `end`.
    pub fn with_end(mut self, end: Timestamp) -> Self {
        self.end = end;
        self
    }
    /// The same span with one more tag.
    pub fn with_tag(mut self, key: impl Into<Text>, value: impl Into<TagValue>) -> Self {
        self.tags.push(Tag::new(key, value));
        self
    }
    /// The same span with one more annotation between its start and stop.
    pub fn with_annotation(mut self, note: Note) -> Self {
        self.annotations.push(note);
        self
    }
    /// The same span, marked debug (always sampled downstream).
    pub fn with_debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }
    /// The same span, marked as sharing its id with the client's span (Zipkin `shared`).
    pub fn with_shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// The trace this span belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    /// This span's id.
    pub fn id(&self) -> SpanId {
        self.id
    }
    /// The parent span's id; `None` for a trace's root.
    pub fn parent_id(&self) -> Option<SpanId> {
        self.parent_id
    }
    /// The span's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The span's kind, if it has one.
    pub fn kind(&self) -> Option<Kind> {
        self.kind
    }
    /// Where the span happened (always has a service name).
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local_endpoint
    }
    /// Whom the span talked to (the database of a SQL span, the server of a client span).
    pub fn remote_endpoint(&self) -> Option<&Endpoint> {
        self.peer.as_ref().and_then(Peer::endpoint)
    }
    /// The first note's time.
    pub fn start(&self) -> Timestamp {
        self.start
    }
    /// The last note's time.
    pub fn end(&self) -> Timestamp {
        self.end
    }
    /// `end - start`.
    pub fn duration(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
    /// The notes between the first and the last.
    pub fn annotations(&self) -> &[Note] {
        &self.annotations
    }
    /// Every note, in order: `start`, the annotations, `stop`.
    pub fn notes(&self) -> impl Iterator<Item = (Timestamp, &str)> + '_ {
        std::iter::once((self.start, START_NOTE))
            .chain(self.annotations.iter().map(|n| (n.timestamp, &*n.value)))
            .chain(std::iter::once((self.end, STOP_NOTE)))
    }
    /// The tags, in the order they were set (a key set twice appears twice).
    pub fn tags(&self) -> Tags<'_> {
        Tags {
            shared: match &self.peer {
                Some(Peer::Template(t)) => &t.tags,
                _ => &[],
            },
            own: &self.tags,
        }
    }
    /// The last value set for `key`.
    pub fn tag(&self, key: &str) -> Option<&TagValue> {
        self.tags().get(key)
    }
    /// Whether the trace is in debug mode.
    pub fn debug(&self) -> bool {
        self.debug
    }
    /// Whether this span shares its id with the remote client's span.
    pub fn shared(&self) -> bool {
        self.shared
    }
    /// Whether the parent lives in another process (continued from a header or a token
    /// string) — that is, this span is the root of this process's part of the trace.
    pub fn has_remote_parent(&self) -> bool {
        self.remote_parent
    }
    /// Whether an `error` tag was recorded.
    pub fn is_error(&self) -> bool {
        self.tag("error").is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_moves_as_two_cache_lines() {
        // Spans are moved into the reporter's queue and out again; past 128 bytes the moves
        // go through `memmove` (measured: the span bench's child span got slower).
        assert!(
            std::mem::size_of::<Span>() <= 128,
            "{}",
            std::mem::size_of::<Span>()
        );
    }
}
