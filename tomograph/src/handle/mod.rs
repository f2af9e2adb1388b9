//! Span handles: [`span`] → [`SpanBuilder`] → [`SpanGuard`] (current on this thread until
//! dropped) or [`DetachedSpan`] (owned by whoever holds it), and [`FutureExt`] for futures.
//! Every change to a span goes through the [`Span`]'s own methods (`tag`, `annotate`,
//! `record_error`, and `finish` when its handle ends).
//!
//! Everything here is a no-op costing a few nanoseconds when no tracer is installed, when
//! tracing is switched off, or when the span is not sampled.

use std::sync::Arc;

use thin_vec::ThinVec;

use crate::clock::Timestamp;
use crate::context::stack::{self, Frame};
use crate::model::{
    Endpoint, EndpointRef, Kind, Peer, RowCounts, Span, SpanId, SpanTemplate, Tag, TagValue, Text,
    TraceToken,
};
use crate::sample::{self, Placement};
use crate::tracer::{self, Tracer};

mod detached;
mod future;
mod guard;

pub use detached::DetachedSpan;
pub use future::FutureExt;
pub use guard::SpanGuard;

/// Begins building a span `name`; [`SpanBuilder::start`] starts it.
///
/// ```
/// use tomograph::Kind;
/// fn handle() {
///     let span = tomograph::span("GET /users").kind(Kind::Server).tag("http.method", "GET").start();
///     span.annotate("authenticated");
///     // the span stops here, when `span` is dropped — also on early return or panic
/// }
/// handle();
/// ```
#[inline]
pub fn span(name: impl Into<Text>) -> SpanBuilder {
    SpanBuilder {
        name: name.into(),
        parent: Parent::Current,
        kind: None,
        endpoint: None,
        peer: None,
        tags: ThinVec::new(),
        shared: false,
    }
}

#[derive(Debug, Clone, Copy)]
enum Parent {
    Current,
    Token(TraceToken),
    Root,
}

/// Options of a span before it starts. Made by [`span`].
#[must_use = "a span builder does nothing until .start()"]
#[derive(Debug)]
pub struct SpanBuilder {
    name: Text,
    parent: Parent,
    kind: Option<Kind>,
    endpoint: Option<Endpoint>,
    /// The remote endpoint given, or a statement's template.
    peer: Option<Peer>,
    tags: ThinVec<Tag>,
    shared: bool,
}

impl SpanBuilder {
    /// The span's kind (CLIENT, SERVER, …).
    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Continue `token`'s trace instead of the current span's.
    pub fn child_of(mut self, token: TraceToken) -> Self {
        self.parent = Parent::Token(token);
        self
    }

    /// Continue `token`'s trace if there is one, else start a new trace.
    pub fn child_of_opt(self, token: Option<TraceToken>) -> Self {
        match token {
            Some(t) => self.child_of(t),
            None => self.root(),
        }
    }

    /// Start a new trace even if a span is current.
    pub fn root(mut self) -> Self {
        self.parent = Parent::Root;
        self
    }

    /// The local endpoint (default: the parent's, else the tracer's service).
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Shorthand for an endpoint with only a service name.
    pub fn service(self, service_name: impl Into<Text>) -> Self {
        self.endpoint(Endpoint::new(service_name))
    }

    /// The peer this span talks to.
    pub fn remote_endpoint(mut self, remote: Endpoint) -> Self {
        self.peer = Some(Peer::Endpoint(EndpointRef::Shared(Arc::new(remote))));
        self
    }

    /// The span shares `template` (a statement's tags and remote endpoint).
    pub(crate) fn template(mut self, template: &'static SpanTemplate) -> Self {
        self.peer = Some(Peer::Template(template));
        self
    }

    /// A tag set at start.
    pub fn tag(mut self, key: impl Into<Text>, value: impl Into<TagValue>) -> Self {
        self.tags.push(Tag::new(key, value));
        self
    }

    /// Marks a server span that shares the client's span id (B3 single-host spans).
    pub fn shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// Starts the span and makes it current on this thread (or in this task) until the guard
    /// is dropped.
    #[inline(always)]
    pub fn start(self) -> SpanGuard {
        // Fast paths, inlined into the caller so that the builder is never materialized: tracing
        // off, and the child of an unsampled span that is current here (it records nothing and
        // propagates its parent's token).
        if !tracer::get().is_some_and(|t| t.is_enabled()) {
            self.discard();
            return SpanGuard::none();
        }
        if let Parent::Current = self.parent
            && let Some(parent) = stack::current_unsampled()
        {
            self.discard();
            return SpanGuard::borrowing(parent);
        }
        self.start_frame()
    }

    /// Drops a builder that will not start a span. The usual builder (a static name, no
    /// endpoints, no tags) owns nothing; checking that here, where the caller's constants fold
    /// the checks away, spares the fast paths an out-of-line `drop_in_place` of the builder.
    #[inline(always)]
    fn discard(self) {
        let this = std::mem::ManuallyDrop::new(self);
        let owns_nothing = this.name.is_static()
            && this.endpoint.is_none()
            && matches!(this.peer, None | Some(Peer::Template(..)))
            && this.tags.capacity() == 0;
        if !owns_nothing {
            drop_cold(std::mem::ManuallyDrop::into_inner(this));
        }
    }

    /// The sampled path of [`start`](Self::start). The usual span — with the tracer's
    /// endpoint — has its record built in place on the stack (see
    /// [`stack::push_recording`]); a span with an endpoint of its own or of its parent's
    /// takes the general path.
    #[inline(never)]
    fn start_frame(self) -> SpanGuard {
        // `start` checked that tracing is on, and handled the child of an unsampled span
        // current here.
        let Some(tracer) = tracer::get() else {
            return SpanGuard::none();
        };
        if self.endpoint.is_some() {
            return self.start_frame_general();
        }
        // `into_frame`'s parent lookup, narrowed to parents whose children take the tracer's
        // endpoint. Kept inline here rather than shared: returned through a helper, the
        // answer came back through memory and stalled (BENCHMARKS.md, "Session 9").
        let parent = match self.parent {
            Parent::Current => match stack::current_parent() {
                Some((token, None)) => Some(token),
                Some((_, Some(_))) => return self.start_frame_general(),
                None => None,
            },
            Parent::Token(t) => Some(t),
            Parent::Root => None,
        };
        let (placement, token) = self.place(tracer, parent);
        if !token.sampled {
            return SpanGuard::enter(Frame::Unsampled {
                token,
                name: self.name,
                unowned: false,
            });
        }
        let SpanBuilder {
            name,
            kind,
            peer,
            tags,
            shared,
            ..
        } = self;
        stack::push_recording(token, move || {
            let started = Started {
                token,
                parent_id: placement.parent_id,
                remote_parent: placement.remote_parent,
                local_endpoint: EndpointRef::Static(tracer.local_endpoint()),
                unowned: false,
            };
            started.record(name, kind, peer, tags, shared)
        });
        SpanGuard::entered(token)
    }

    #[cold]
    #[inline(never)]
    fn start_frame_general(self) -> SpanGuard {
        match self.into_frame(false) {
            Some(frame) => SpanGuard::enter(frame),
            None => SpanGuard::none(),
        }
    }

    /// Starts the span without making it current: the returned [`DetachedSpan`] belongs to
    /// whoever holds it (a future, a response body, a SQL statement) and may move between
    /// threads. Its parent is resolved now.
    ///
    /// ```
    /// let _request = tomograph::span("request").start();
    /// let mut query = tomograph::span("query").start_detached();
    /// std::thread::spawn(move || {
    ///     query.tag("rows", 3);
    ///     // stops here, on the other thread
    /// }).join().unwrap();
    /// ```
    pub fn start_detached(self) -> DetachedSpan {
        match self.into_frame(false) {
            Some(frame) => DetachedSpan::from_frame(frame),
            None => DetachedSpan::none(),
        }
    }

    /// Where this span goes under `parent`, and its token: the head sampler's decision at a
    /// local root (taken once per span: a sampler may count against a limit).
    #[inline(always)]
    fn place(&self, tracer: &Tracer, parent: Option<TraceToken>) -> (Placement, TraceToken) {
        let placement = sample::place(
            tracer.head(),
            parent,
            tracer.wide_trace_ids(),
            &self.name,
            self.kind,
            &self.tags,
        );
        let token = placement.token(SpanId::random());
        (placement, token)
    }

    /// The frame for this span. An unsampled child records nothing and needs no id of its
    /// own: unless `named` (the seed API, whose `stop(name)` must find it), it is a link to
    /// its parent, which is what it would propagate anyway — so unsampled spans cost next to
    /// nothing. A `named` frame is also unowned (no guard ends it; see
    /// [`Frame::is_unowned`]).
    #[inline(always)]
    pub(crate) fn into_frame(self, named: bool) -> Option<Frame> {
        let tracer = tracer::get()?;
        if !tracer.is_enabled() {
            return None;
        }
        let (parent, inherited) = match self.parent {
            Parent::Current => match stack::current_parent() {
                Some((token, endpoint)) => (Some(token), endpoint),
                None => (None, None),
            },
            Parent::Token(t) => (Some(t), None),
            Parent::Root => (None, None),
        };
        // Only for a parent that is current here: an explicit token's context is not on this
        // stack, so the child needs a frame of its own to carry the decision to its children.
        if let Some(p) = parent
            && !p.sampled
            && !named
            && matches!(self.parent, Parent::Current)
        {
            return Some(Frame::Link(p));
        }
        let (placement, token) = self.place(tracer, parent);
        if !token.sampled {
            return Some(Frame::Unsampled {
                token,
                name: self.name,
                unowned: named,
            });
        }
        let started = Started {
            token,
            parent_id: placement.parent_id,
            remote_parent: placement.remote_parent,
            local_endpoint: resolve_endpoint(tracer, self.endpoint, inherited),
            unowned: named,
        };
        Some(Frame::Recording(started.record(
            self.name,
            self.kind,
            self.peer,
            self.tags,
            self.shared,
        )))
    }
}

/// A sampled span's record, before the builder's parts join it.
struct Started {
    token: TraceToken,
    parent_id: Option<SpanId>,
    remote_parent: bool,
    local_endpoint: EndpointRef,
    unowned: bool,
}

impl Started {
    /// The record, started now.
    #[inline(always)]
    fn record(
        self,
        name: Text,
        kind: Option<Kind>,
        peer: Option<Peer>,
        tags: ThinVec<Tag>,
        shared: bool,
    ) -> Span {
        Span {
            trace_id: self.token.trace_id,
            id: self.token.span_id,
            parent_id: self.parent_id,
            name,
            kind,
            local_endpoint: self.local_endpoint,
            peer,
            start: Timestamp::now(),
            end: Timestamp::default(),
            annotations: ThinVec::new(),
            tags,
            row_counts: RowCounts::NONE,
            debug: self.token.debug,
            shared,
            remote_parent: self.remote_parent,
            unowned: self.unowned,
            held: self.token.deferred,
        }
    }
}

#[cold]
#[inline(never)]
fn drop_cold<T>(value: T) {
    drop(value);
}

/// The tracer's endpoint is `'static` and costs nothing to share; the parent's is an `Arc`
/// clone; only a new, different endpoint allocates.
fn resolve_endpoint(
    tracer: &'static Tracer,
    wanted: Option<Endpoint>,
    inherited: Option<EndpointRef>,
) -> EndpointRef {
    let default = tracer.local_endpoint();
    match wanted {
        None => inherited.unwrap_or(EndpointRef::Static(default)),
        Some(e) if e == *default => EndpointRef::Static(default),
        Some(e) => match inherited {
            Some(parent) if *parent == e => parent,
            _ => EndpointRef::Shared(Arc::new(e)),
        },
    }
}
