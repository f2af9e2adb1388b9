//! [`DetachedSpan`]: a span on no stack, owned by whoever holds it.

use std::sync::Arc;

use super::SpanGuard;
use crate::context::stack::{self, Frame};
use crate::model::{Endpoint, EndpointRef, Span, TagValue, Text, TraceToken};
use crate::tracer;

/// A span that is on no stack: owned by whoever holds it, `Send`, stopped on drop or by
/// [`finish`](DetachedSpan::finish). Made by [`SpanBuilder::start_detached`](super::SpanBuilder::start_detached).
#[must_use = "the span stops when dropped"]
#[derive(Debug)]
pub struct DetachedSpan {
    state: Detached,
}

/// What a detached span holds: its span (the token is derived from it), or only the context it
/// propagates.
#[derive(Debug)]
enum Detached {
    Recording(Span),
    Unrecorded {
        token: TraceToken,
        /// Whether `token` is this span's own (false for an unsampled child: its parent's).
        owns_id: bool,
    },
    None,
}

impl DetachedSpan {
    /// The detached span of `frame` (its parent resolved already). Inlined into the builder,
    /// so that the frame is not built aside and copied into the other layout.
    #[inline(always)]
    pub(crate) fn from_frame(frame: Frame) -> Self {
        let state = match frame {
            Frame::Recording(span) => Detached::Recording(span),
            other => Detached::Unrecorded {
                token: other.token(),
                owns_id: !other.is_link(),
            },
        };
        Self { state }
    }

    /// A span that records nothing.
    pub fn none() -> Self {
        Self {
            state: Detached::None,
        }
    }

    /// The token to continue this span's trace (also when it is not sampled).
    pub fn token(&self) -> Option<TraceToken> {
        match &self.state {
            Detached::Recording(span) => Some(span.token()),
            Detached::Unrecorded { token, .. } => Some(*token),
            Detached::None => None,
        }
    }

    /// Whether this span is recorded.
    pub fn is_recording(&self) -> bool {
        matches!(self.state, Detached::Recording(_))
    }

    /// The span being recorded.
    pub fn span(&self) -> Option<&Span> {
        match &self.state {
            Detached::Recording(span) => Some(span),
            _ => None,
        }
    }

    /// Adds a note.
    pub fn annotate(&mut self, value: impl Into<Text>) {
        self.with_span(|span| span.annotate(value));
    }

    /// Adds a note that stands for an interval of `duration`.
    pub fn annotate_interval(&mut self, value: impl Into<Text>, duration: std::time::Duration) {
        self.with_span(|span| span.annotate_interval(value, duration));
    }

    /// Adds a tag.
    pub fn tag(&mut self, key: impl Into<Text>, value: impl Into<TagValue>) {
        self.with_span(|span| span.tag(key, value));
    }

    /// Adds the tag `f` computes; `f` runs only when the span is recorded.
    pub fn tag_with<K: Into<Text>, V: Into<TagValue>>(&mut self, f: impl FnOnce() -> (K, V)) {
        self.with_span(|span| {
            let (k, v) = f();
            span.tag(k, v);
        });
    }

    /// Renames the span (a route known only after routing, say).
    pub fn set_name(&mut self, name: impl Into<Text>) {
        self.with_span(|span| span.name = name.into());
    }

    /// Sets the remote endpoint.
    pub fn set_remote_endpoint(&mut self, remote: Endpoint) {
        self.with_span(|span| span.set_remote_endpoint(EndpointRef::Shared(Arc::new(remote))));
    }

    /// Records a failure: an `error` tag with `message`, and a note `error`.
    pub fn record_error(&mut self, message: impl std::fmt::Display) {
        self.with_span(|span| span.record_error(message));
    }

    /// Makes the span current on this thread until the returned guard drops (which stops it).
    pub fn enter(mut self) -> SpanGuard {
        let frame = match std::mem::replace(&mut self.state, Detached::None) {
            Detached::Recording(span) => Frame::Recording(span),
            Detached::Unrecorded {
                token,
                owns_id: true,
            } => Frame::Unsampled {
                token,
                name: Text::from_static(""),
                unowned: false,
            },
            Detached::Unrecorded { token, .. } => return SpanGuard::borrowing(token),
            Detached::None => return SpanGuard::none(),
        };
        SpanGuard::enter(frame)
    }

    /// Makes this span the current context on this thread, without moving it, until
    /// [`exit_context`](Self::exit_context): spans started here ([`span`](crate::span), [`start`](crate::start),
    /// `#[traced]`, SQL statements) become its children (at its service) and
    /// [`get_trace_info`](crate::get_trace_info) returns its token. The span itself stays here, still recorded by
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
        if let Some(token) = self.token() {
            let endpoint = self.span().map(|s| s.local_endpoint.clone());
            stack::push_entered(token, endpoint);
        }
    }

    /// Undoes the innermost [`enter_context`](Self::enter_context) of this span on this
    /// thread, also when spans opened after it are still open (they keep their place).
    /// Returns false when this thread has no such context (a guard opened before it and
    /// dropped since closed it).
    pub fn exit_context(&self) -> bool {
        self.token().is_some_and(stack::pop_entered)
    }

    /// Stops the span now.
    pub fn finish(self) {
        // Dropped in place where `self` goes out of scope (`drop(self)` would copy the
        // 128-byte span into `drop`'s argument first).
    }

    /// Gives the span to `f` (when recorded), for the rare change the methods above do not
    /// cover.
    pub(crate) fn with_span(&mut self, f: impl FnOnce(&mut Span)) {
        if let Detached::Recording(span) = &mut self.state {
            f(span);
        }
    }
}

impl Drop for DetachedSpan {
    fn drop(&mut self) {
        if let Detached::Recording(span) = std::mem::replace(&mut self.state, Detached::None) {
            tracer::finish(span);
        }
    }
}
