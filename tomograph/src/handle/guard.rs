//! [`SpanGuard`]: a span current on this thread until the guard drops.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::context::stack::{self, Frame};
use crate::model::{Endpoint, EndpointRef, Span, SpanId, TagValue, Text, TraceToken};
use crate::tracer;

/// A started span, current until this guard is dropped; dropping it stops the span (also on
/// early return and during a panic, so a panic cannot leak spans into the next request on the
/// thread). Spans opened above it and left open are stopped with it.
///
/// The guard is neither `Send` nor `Sync`: its span is on this thread's stack, so the guard
/// stays on this thread (a future that holds one across `.await` cannot be spawned on a
/// multi-thread runtime). To trace a future, give it its own span with
/// [`FutureExt::traced`](crate::FutureExt::traced); to hand a span to another thread, start it
/// with [`start_detached`](crate::SpanBuilder::start_detached).
///
/// ```compile_fail
/// let guard = tomograph::span("request").start();
/// std::thread::spawn(move || drop(guard)); // error: `*const ()` cannot be sent between threads
/// ```
#[must_use = "the span stops when the guard is dropped; bind it: `let _span = ...`"]
#[derive(Debug)]
pub struct SpanGuard {
    /// This span's token; for an unsampled child, its parent's (what it propagates).
    token: Option<TraceToken>,
    /// Whether the guard has a frame of its own on the stack to stop.
    owns: bool,
    /// Not `Send`, not `Sync` (see above).
    _not_send: PhantomData<*const ()>,
}

impl SpanGuard {
    /// The guard of `frame`, pushed on this thread's stack (a link is not: the guard then
    /// only carries its parent's token).
    #[inline(always)]
    pub(crate) fn enter(frame: Frame) -> Self {
        let token = frame.token();
        let owns = !frame.is_link();
        if owns {
            stack::push(frame);
        }
        Self {
            token: Some(token),
            owns,
            _not_send: PhantomData,
        }
    }

    /// The guard of a span just pushed on this thread's stack.
    #[inline(always)]
    pub(crate) fn entered(token: TraceToken) -> Self {
        Self {
            token: Some(token),
            owns: true,
            _not_send: PhantomData,
        }
    }

    /// A guard with no frame of its own that propagates `parent` (an unsampled child).
    #[inline]
    pub(crate) fn borrowing(parent: TraceToken) -> Self {
        Self {
            token: Some(parent),
            owns: false,
            _not_send: PhantomData,
        }
    }

    /// A guard that holds no span (tracing off); every method does nothing.
    #[inline]
    pub fn none() -> Self {
        Self {
            token: None,
            owns: false,
            _not_send: PhantomData,
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
        self.with(|span| span.annotate(value));
    }

    /// Adds a tag.
    pub fn tag(&self, key: impl Into<Text>, value: impl Into<TagValue>) {
        self.with(|span| span.tag(key, value));
    }

    /// Adds the tag `f` computes; `f` runs only when the span is recorded, and may itself
    /// trace (its spans are children of this one).
    ///
    /// ```
    /// let span = tomograph::span("work").start();
    /// span.tag_with(|| ("rows", 3 * 7));
    /// ```
    pub fn tag_with<K: Into<Text>, V: Into<TagValue>>(&self, f: impl FnOnce() -> (K, V)) {
        if self.is_recording() {
            // Computed outside the stack's borrow, so that what `f` traces is recorded.
            let (k, v) = f();
            self.with(|span| span.tag(k, v));
        }
    }

    /// Sets the remote endpoint after start (once the peer is known).
    pub fn set_remote_endpoint(&self, remote: Endpoint) {
        self.with(|span| span.set_remote_endpoint(EndpointRef::Shared(Arc::new(remote))));
    }

    /// Records a failure: an `error` tag with `message`, and a note `error`.
    pub fn record_error(&self, message: impl std::fmt::Display) {
        if self.is_recording() {
            // Formatted outside the stack's borrow, so that what the message's `Display`
            // traces is recorded.
            let message = message.to_string();
            self.with(|span| span.record_error_message(message));
        }
    }

    /// Stops the span now (what dropping the guard does).
    pub fn finish(self) {
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
