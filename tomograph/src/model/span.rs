//! The span: what backends receive.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use thin_vec::ThinVec;

use crate::clock::Timestamp;
use crate::text::Text;

use super::endpoint::EndpointRef;
use super::tag::Tags;
use super::{
    Endpoint, Kind, Note, RowCounts, START_NOTE, STOP_NOTE, SpanId, Tag, TagValue, TraceId,
    TraceToken,
};

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
    /// An SQL statement's row counts, as interned tags (read after the own tags).
    pub(crate) row_counts: RowCounts,
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
            row_counts: RowCounts::NONE,
            debug: false,
            shared: false,
            remote_parent: false,
            unowned: false,
            held: false,
        }
    }

    /// Adds a tag (a key set twice appears twice; Zipkin keeps the last).
    pub fn tag(&mut self, key: impl Into<Text>, value: impl Into<TagValue>) {
        self.tags.push(Tag::new(key, value));
    }

    /// Adds a note, now.
    pub fn annotate(&mut self, value: impl Into<Text>) {
        self.annotations.push(Note::new(Timestamp::now(), value));
    }

    /// Adds a note, now, that stands for an interval of `duration`.
    pub fn annotate_interval(&mut self, value: impl Into<Text>, duration: Duration) {
        let mut note = Note::new(Timestamp::now(), value);
        note.duration = Some(duration);
        self.annotations.push(note);
    }

    /// Records a failure: a note `error` now, and an `error` tag with `message`.
    pub fn record_error(&mut self, message: impl fmt::Display) {
        self.record_error_message(message.to_string());
    }

    /// [`record_error`](Self::record_error) with the message formatted already (by a caller
    /// that formats it outside the thread's span stack, so that what its `Display` traces is
    /// recorded).
    pub(crate) fn record_error_message(&mut self, message: String) {
        self.mark_error(Timestamp::now(), message);
    }

    fn mark_error(&mut self, at: Timestamp, message: impl Into<TagValue>) {
        self.annotations.push(Note::new(at, "error"));
        self.tags.push(Tag::new("error", message));
    }

    /// Ends the span now. One that ends while its thread unwinds from a panic is marked as an
    /// error (`error=panicked`). The tracer reports it next
    /// ([`tracer::finish`](crate::tracer::finish)).
    #[inline(always)]
    pub(crate) fn finish(&mut self) {
        self.finish_at(Timestamp::now());
    }

    /// [`finish`](Self::finish) with the end read by the caller.
    #[inline]
    pub(crate) fn finish_at(&mut self, end: Timestamp) {
        self.end = end;
        if std::thread::panicking() {
            self.record_panic();
        }
    }

    #[cold]
    fn record_panic(&mut self) {
        self.record_error("panicked");
    }

    /// Ends a span whose owner is gone, at `end` (when known, the moment its owner panicked,
    /// rather than when the span was found; never before its start), marked as an error
    /// with `reason`.
    #[cold]
    pub(crate) fn abandon(&mut self, reason: &'static str, end: Option<Timestamp>) {
        let end = end.map_or_else(Timestamp::now, |end| end.max(self.start));
        self.end = end;
        self.mark_error(end, reason);
    }

    /// The context this span (being recorded, so sampled) gives its children.
    #[inline]
    pub(crate) fn token(&self) -> TraceToken {
        TraceToken {
            trace_id: self.trace_id,
            span_id: self.id,
            sampled: true,
            debug: self.debug,
            remote: false,
            deferred: self.held,
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
            counts: self.row_counts.tags(),
        }
    }
    /// The last value set for `key`.
    pub fn tag_value(&self, key: &str) -> Option<&TagValue> {
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
        self.tag_value("error").is_some()
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
