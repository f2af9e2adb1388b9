//! The manual API: the seed's free functions (`start`, `stop`, `annotate`, `tag`,
//! `get_trace_info`, `tracing_started`) and the Rust-shaped one beside them ([`span`] →
//! [`SpanBuilder`] → [`SpanGuard`]).
//!
//! Everything here is a no-op costing a few nanoseconds when no tracer is installed, when
//! tracing is switched off, or when the span is not sampled.

use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;

use thin_vec::ThinVec;

use crate::clock::Timestamp;
use crate::context::abandoned;
use crate::context::stack::{self, Frame};
use crate::context::token::TraceToken;
use crate::error::StopError;
use crate::model::{Endpoint, EndpointRef, Kind, Note, Peer, Span, SpanId, Tag, TagValue, Text};
use crate::sample::{self, Placement};
use crate::tracer::{self, Tracer};

/// Starts a span `name` at service `service` (`address`:`port`), child of the current span,
/// or the root of a new trace. The seed's `tomograph.start`. Stop it with [`stop`].
///
/// `address` is an IP address; anything else (a host name, "") leaves the endpoint's address
/// unset. Port 0 means unknown.
///
/// # Panics and early returns
///
/// Nothing but [`stop`] ends this span: no guard owns it. When the code between `start` and
/// `stop` panics and a thread pool catches the panic, the span is left open on the thread.
/// The thread's **next request** closes it, with the tag `error=panicked`, reports it (ending
/// when the panic began), and starts clean: the next `start` is a root again, not a child of the dead span. The next
/// request is the first, once the panic has been caught, of: a `start` or [`start_from`],
/// a [`start_http`](crate::http::start_http), a request through the tower layer. Only the
/// frames the panic left are closed: a span whose guard outlived the panic (a pool's span
/// around its jobs) stays open, and so does everything below it. (A request opened with
/// `start` that catches a panic inside itself and carries on is taken as over; open it with a
/// guard.) A `start` left open by an early return (`?`) without a panic is not detected: the
/// thread's next spans become its children, until [`reset_thread`](crate::reset_thread),
/// which a pool can call between jobs.
///
/// Prefer a guard ([`span`]`(name).start()`): it ends the span on every path out of the
/// scope, early returns and panics included, with nothing left for the next request.
///
/// ```
/// # tomograph::init(tomograph::Config::builder().build()).unwrap();
/// let job = std::panic::catch_unwind(|| {
///     tomograph::start("worker", "job 1", "127.0.0.1", 0);
///     panic!("bug in job 1");
/// });
/// assert!(job.is_err());
/// assert_eq!(tomograph::stack_depth(), 1, "job 1's span is still open");
///
/// tomograph::start("worker", "job 2", "127.0.0.1", 0); // closes "job 1" (error=panicked)
/// assert_eq!(tomograph::stack_depth(), 1);
/// tomograph::stop("job 2").unwrap();
/// ```
///
/// ```
/// # tomograph::init(tomograph::Config::builder().build()).unwrap();
/// tomograph::start("my service", "a query", "127.0.0.1", 80);
/// tomograph::annotate("something happened");
/// tomograph::tag("key", "value");
/// tomograph::stop("a query").unwrap();
/// ```
pub fn start(service: impl Into<Text>, name: impl Into<Text>, address: &str, port: u16) {
    span(name)
        .endpoint(seed_endpoint(service, address, port))
        .start_on_stack();
}

/// Like [`start`], continuing the trace of `token` (from [`get_trace_info`] on another thread,
/// or parsed from a message).
///
/// ```
/// # tomograph::init(tomograph::Config::builder().build()).unwrap();
/// tomograph::start("svc", "parent", "127.0.0.1", 0);
/// let token = tomograph::get_trace_info();
/// std::thread::spawn(move || {
///     tomograph::start_from(token, "svc", "on another thread", "127.0.0.1", 0);
///     tomograph::stop("on another thread").unwrap();
/// }).join().unwrap();
/// tomograph::stop("parent").unwrap();
/// ```
pub fn start_from(
    token: Option<TraceToken>,
    service: impl Into<Text>,
    name: impl Into<Text>,
    address: &str,
    port: u16,
) {
    let builder = span(name).endpoint(seed_endpoint(service, address, port));
    builder.child_of_opt(token).start_on_stack();
}

fn seed_endpoint(service: impl Into<Text>, address: &str, port: u16) -> Endpoint {
    Endpoint::new(service)
        .with_optional_ip(address.parse::<IpAddr>().ok())
        .with_port(port)
}

/// Stops the current span, which must be called `name`. The seed's `tomograph.stop`.
///
/// With no span open, or when the current span has another name, nothing changes and an
/// error says why (the original asserted and corrupted its stack).
///
/// ```
/// use tomograph::StopError;
/// assert!(matches!(tomograph::stop("nothing"), Err(StopError::NoSpanOpen { .. })));
/// ```
pub fn stop(name: &str) -> Result<(), StopError> {
    stack::stop_named(name)
}

/// Adds a note to the current span. Does nothing when no span is open (the original created
/// an "orphan" span that never stopped).
///
/// ```
/// let _g = tomograph::span("work").start();
/// tomograph::annotate("cache miss");
/// ```
pub fn annotate(value: impl Into<Text>) {
    stack::with_current_span(|span| span.annotations.push(Note::new(Timestamp::now(), value)));
}

/// Tags the current span. Does nothing when no span is open.
///
/// ```
/// let _g = tomograph::span("work").start();
/// tomograph::tag("user", 42);
/// ```
pub fn tag(key: impl Into<Text>, value: impl Into<TagValue>) {
    stack::with_current_span(|span| span.tags.push(Tag::new(key, value)));
}

/// Tags the current span with what `f` computes; `f` runs only when the span is recorded.
///
/// ```
/// let _g = tomograph::span("work").start();
/// tomograph::tag_with(|| ("expensive", format!("{:?}", vec![1, 2, 3])));
/// ```
pub fn tag_with<K: Into<Text>, V: Into<TagValue>>(f: impl FnOnce() -> (K, V)) {
    stack::with_current_span(|span| {
        let (k, v) = f();
        span.tags.push(Tag::new(k, v));
    });
}

/// The token of the current span, to continue the trace on another thread or in another
/// process; `None` when no trace is in progress. The seed's `get_trace_info`.
pub fn get_trace_info() -> Option<TraceToken> {
    stack::current_token()
}

/// Whether a trace is in progress here (a span is open, or this task continues a trace).
pub fn tracing_started() -> bool {
    stack::current_token().is_some()
}

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
        remote: None,
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
    remote: Option<Endpoint>,
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
        self.remote = Some(remote);
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
            return SpanGuard {
                token: Some(parent),
                owns: false,
                _not_sync: PhantomData,
            };
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
            && this.remote.is_none()
            && this.tags.capacity() == 0;
        if !owns_nothing {
            drop_cold(std::mem::ManuallyDrop::into_inner(this));
        }
    }

    #[inline(never)]
    fn start_frame(self) -> SpanGuard {
        let Some(frame) = self.into_frame(false) else {
            return SpanGuard::none();
        };
        let token = frame.token();
        let owns = !frame.is_link();
        if owns {
            stack::push(frame);
        }
        SpanGuard {
            token: Some(token),
            owns,
            _not_sync: PhantomData,
        }
    }

    /// The seed's `start`: the span stays on the stack until `stop(name)`. An unsampled span
    /// gets a frame of its own too, so that `stop(name)` finds it.
    ///
    /// Each is the next request on this thread when a panic was caught here: first the frames
    /// it left are closed (see [`crate::context::abandoned`]).
    fn start_on_stack(self) {
        abandoned::next_request();
        if let Some(frame) = self.into_frame(true) {
            abandoned::watch_panics();
            stack::push(frame);
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
            Some(frame) => {
                let token = Some(frame.token());
                match frame {
                    Frame::Recording(span) => DetachedSpan {
                        token,
                        span: Some(span),
                        owns_id: true,
                    },
                    other => DetachedSpan {
                        token,
                        span: None,
                        owns_id: !other.is_link(),
                    },
                }
            }
            None => DetachedSpan::none(),
        }
    }

    /// The frame for this span. An unsampled child records nothing and needs no id of its
    /// own: unless `named` (the seed API, whose `stop(name)` must find it), it is a link to
    /// its parent, which is what it would propagate anyway — so unsampled spans cost next to
    /// nothing. A `named` frame is also unowned (no guard ends it; see
    /// [`Frame::is_unowned`]).
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
        let Placement {
            trace_id,
            parent_id,
            sampled,
            debug,
            remote_parent,
            held,
        } = sample::place(
            tracer.head(),
            parent,
            tracer.wide_trace_ids(),
            &self.name,
            self.kind,
            &self.tags,
        );
        let token = TraceToken {
            trace_id,
            span_id: SpanId::random(),
            sampled,
            debug,
            remote: false,
            deferred: held,
        };
        if !sampled {
            return Some(Frame::Unsampled {
                token,
                name: self.name,
                unowned: named,
            });
        }
        let local_endpoint = resolve_endpoint(tracer, self.endpoint, inherited);
        let span = Span {
            trace_id,
            id: token.span_id,
            parent_id,
            name: self.name,
            kind: self.kind,
            local_endpoint,
            peer: self
                .remote
                .map(|r| Peer::Endpoint(EndpointRef::Shared(Arc::new(r)))),
            start: Timestamp::now(),
            end: Timestamp::default(),
            annotations: ThinVec::new(),
            tags: self.tags,
            debug,
            shared: self.shared,
            remote_parent,
            unowned: named,
            held,
        };
        Some(Frame::Recording(span))
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

/// A started span, current until this guard is dropped; dropping it stops the span (also on
/// early return and during a panic, so a panic cannot leak spans into the next request on the
/// thread). Spans opened above it and left open are stopped with it.
///
/// The guard may move between threads with its future (see [`crate::FutureExt`]); dropped on
/// a thread where its span is not current, it does nothing.
#[must_use = "the span stops when the guard is dropped; bind it: `let _span = ...`"]
#[derive(Debug)]
pub struct SpanGuard {
    /// This span's token; for an unsampled child, its parent's (what it propagates).
    token: Option<TraceToken>,
    /// Whether the guard has a frame of its own on the stack to stop.
    owns: bool,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl SpanGuard {
    /// A guard that holds no span (tracing off); every method does nothing.
    #[inline]
    pub fn none() -> Self {
        Self {
            token: None,
            owns: false,
            _not_sync: PhantomData,
        }
    }

    /// This span's id; `None` when tracing is off or the span is an unsampled child (which
    /// has no id of its own).
    pub fn id(&self) -> Option<SpanId> {
        self.owned_id()
    }

    #[inline]
    fn owned_id(&self) -> Option<SpanId> {
        self.token.filter(|_| self.owns).map(|t| t.span_id)
    }

    /// Whether this span is recorded (tracing on, sampled, and still open here).
    pub fn is_recording(&self) -> bool {
        self.owned_id().is_some_and(stack::is_recording)
    }

    /// The token to continue this span's trace elsewhere (for an unsampled child: its
    /// parent's, which carries the "not sampled" decision downstream).
    pub fn token(&self) -> Option<TraceToken> {
        self.token
    }

    /// Adds a note.
    pub fn annotate(&self, value: impl Into<Text>) {
        self.with(|span| span.annotations.push(Note::new(Timestamp::now(), value)));
    }

    /// Adds a tag.
    pub fn tag(&self, key: impl Into<Text>, value: impl Into<TagValue>) {
        self.with(|span| span.tags.push(Tag::new(key, value)));
    }

    /// Adds the tag `f` computes; `f` runs only when the span is recorded.
    ///
    /// ```
    /// let span = tomograph::span("work").start();
    /// span.tag_with(|| ("rows", 3 * 7));
    /// ```
    pub fn tag_with<K: Into<Text>, V: Into<TagValue>>(&self, f: impl FnOnce() -> (K, V)) {
        self.with(|span| {
            let (k, v) = f();
            span.tags.push(Tag::new(k, v));
        });
    }

    /// Sets the remote endpoint after start (once the peer is known).
    pub fn set_remote_endpoint(&self, remote: Endpoint) {
        self.with(|span| span.set_remote_endpoint(EndpointRef::Shared(Arc::new(remote))));
    }

    /// Records a failure: an `error` tag with `message`, and a note `error`.
    pub fn record_error(&self, message: impl std::fmt::Display) {
        self.with(|span| record_error_on(span, message.to_string()));
    }

    /// Stops the span now.
    pub fn stop(self) {
        drop(self);
    }

    fn with(&self, f: impl FnOnce(&mut Span)) {
        if let Some(id) = self.owned_id() {
            stack::with_span(id, f);
        }
    }
}

impl Drop for SpanGuard {
    #[inline]
    fn drop(&mut self) {
        if let Some(id) = self.owned_id() {
            stop_guarded(id);
        }
    }
}

#[inline(never)]
fn stop_guarded(id: SpanId) {
    if !stack::stop_id(id) {
        tracer::note_misplaced_guard();
    }
}

// `SpanGuard` must be `Send` so that futures holding one across `.await` can be spawned.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<SpanGuard>();
};

/// A span that is on no stack: owned by whoever holds it, `Send`, stopped on drop or by
/// [`finish`](DetachedSpan::finish). Made by [`SpanBuilder::start_detached`].
#[must_use = "the span stops when dropped"]
#[derive(Debug)]
pub struct DetachedSpan {
    token: Option<TraceToken>,
    span: Option<Span>,
    /// Whether `token` is this span's own (false for an unsampled child: its parent's).
    owns_id: bool,
}

impl DetachedSpan {
    /// A span that records nothing.
    pub fn none() -> Self {
        Self {
            token: None,
            span: None,
            owns_id: false,
        }
    }

    /// The token to continue this span's trace (also when it is not sampled).
    pub fn token(&self) -> Option<TraceToken> {
        self.token
    }

    /// Whether this span is recorded.
    pub fn is_recording(&self) -> bool {
        self.span.is_some()
    }

    /// The span being recorded.
    pub fn span(&self) -> Option<&Span> {
        self.span.as_ref()
    }

    /// Adds a note.
    pub fn annotate(&mut self, value: impl Into<Text>) {
        if let Some(span) = &mut self.span {
            span.annotations.push(Note::new(Timestamp::now(), value));
        }
    }

    /// Adds a note that stands for an interval of `duration`.
    pub fn annotate_interval(&mut self, value: impl Into<Text>, duration: std::time::Duration) {
        if let Some(span) = &mut self.span {
            let mut note = Note::new(Timestamp::now(), value);
            note.duration = Some(duration);
            span.annotations.push(note);
        }
    }

    /// Adds a tag.
    pub fn tag(&mut self, key: impl Into<Text>, value: impl Into<TagValue>) {
        if let Some(span) = &mut self.span {
            span.tags.push(Tag::new(key, value));
        }
    }

    /// Adds the tag `f` computes; `f` runs only when the span is recorded.
    pub fn tag_with<K: Into<Text>, V: Into<TagValue>>(&mut self, f: impl FnOnce() -> (K, V)) {
        if let Some(span) = &mut self.span {
            let (k, v) = f();
            span.tags.push(Tag::new(k, v));
        }
    }

    /// Renames the span (a route known only after routing, say).
    pub fn set_name(&mut self, name: impl Into<Text>) {
        if let Some(span) = &mut self.span {
            span.name = name.into();
        }
    }

    /// Sets the remote endpoint.
    pub fn set_remote_endpoint(&mut self, remote: Endpoint) {
        if let Some(span) = &mut self.span {
            span.set_remote_endpoint(EndpointRef::Shared(Arc::new(remote)));
        }
    }

    /// Records a failure: an `error` tag with `message`, and a note `error`.
    pub fn record_error(&mut self, message: impl std::fmt::Display) {
        if let Some(span) = &mut self.span {
            record_error_on(span, message.to_string());
        }
    }

    /// Makes the span current on this thread until the returned guard drops (which stops it).
    pub fn enter(mut self) -> SpanGuard {
        let Some(token) = self.token.take() else {
            return SpanGuard::none();
        };
        let frame = match self.span.take() {
            Some(span) => Frame::Recording(span),
            None if self.owns_id => Frame::Unsampled {
                token,
                name: Text::from_static(""),
                unowned: false,
            },
            None => {
                return SpanGuard {
                    token: Some(token),
                    owns: false,
                    _not_sync: PhantomData,
                };
            }
        };
        stack::push(frame);
        SpanGuard {
            token: Some(token),
            owns: true,
            _not_sync: PhantomData,
        }
    }

    /// Makes this span the current context on this thread, without moving it, until
    /// [`exit_context`](Self::exit_context): spans started here ([`span`], [`start`],
    /// `#[traced]`, SQL statements) become its children (at its service) and
    /// [`get_trace_info`] returns its token. The span itself stays here, still recorded by
    /// whoever holds it.
    ///
    /// For bridges from other context systems whose spans are entered and left by callbacks
    /// on any thread, where no guard can be held between the two (`tomograph-tracing` calls
    /// it from `on_enter`). Scoped code should use [`enter`](Self::enter) or
    /// [`FutureExt::in_trace`](crate::FutureExt::in_trace) instead. Each call must be paired
    /// with an `exit_context` on the same thread; a span may be entered on several threads
    /// at once, and several times on one.
    ///
    /// ```
    /// # tomograph::init(tomograph::Config::builder().build()).unwrap();
    /// let outer = tomograph::span("outer").start_detached();
    /// outer.enter_context();
    /// assert_eq!(tomograph::get_trace_info(), outer.token());
    /// {
    ///     let child = tomograph::span("child").start();
    ///     assert_eq!(child.token().unwrap().trace_id(), outer.token().unwrap().trace_id());
    /// }
    /// assert!(outer.exit_context());
    /// assert_eq!(tomograph::get_trace_info(), None);
    /// ```
    pub fn enter_context(&self) {
        if let Some(token) = self.token {
            let endpoint = self.span.as_ref().map(|s| s.local_endpoint.clone());
            stack::push_entered(token, endpoint);
        }
    }

    /// Undoes the innermost [`enter_context`](Self::enter_context) of this span on this
    /// thread, also when spans opened after it are still open (they keep their place).
    /// Returns false when this thread has no such context (a guard opened before it and
    /// dropped since closed it).
    pub fn exit_context(&self) -> bool {
        self.token.is_some_and(stack::pop_entered)
    }

    /// Stops the span now.
    pub fn finish(self) {
        drop(self);
    }

    /// Gives the span to `f` (when recorded), for the rare change the methods above do not
    /// cover.
    pub(crate) fn with_span(&mut self, f: impl FnOnce(&mut Span)) {
        if let Some(span) = &mut self.span {
            f(span);
        }
    }
}

impl Drop for DetachedSpan {
    fn drop(&mut self) {
        if let Some(mut span) = self.span.take() {
            span.end = Timestamp::now();
            if std::thread::panicking() {
                record_panic(&mut span);
            }
            tracer::report(span);
        }
    }
}

/// Marks a span that ends while its thread unwinds from a panic.
#[cold]
pub(crate) fn record_panic(span: &mut Span) {
    record_error_on(span, "panicked".to_owned());
}

pub(crate) fn record_error_on(span: &mut Span, message: String) {
    span.annotations.push(Note::new(Timestamp::now(), "error"));
    span.tags.push(Tag::new("error", message));
}

/// Records a failure on the current span (`error` tag and note). Does nothing when no span is
/// recorded.
///
/// ```
/// let _g = tomograph::span("work").start();
/// tomograph::record_error("disk full");
/// ```
pub fn record_error(message: impl std::fmt::Display) {
    stack::with_current_span(|span| record_error_on(span, message.to_string()));
}

/// Number of frames on this thread's span stack; for tests of the stack's consistency.
#[doc(hidden)]
pub fn stack_depth() -> usize {
    stack::depth()
}
