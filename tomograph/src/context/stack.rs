//! The thread-local span stack: the seed's model, where `start`/`stop` nest on one thread.
//!
//! Every operation touches only this thread's stack; the only shared state on the hot path is
//! the reporter's queue when a sampled span stops. User code runs outside the stack's borrow
//! (a lazy tag's closure, an error message's `Display`, an `on_error` hook may themselves
//! trace); the one kind that still runs inside it is a user's own conversion into a tag value
//! or a note (`impl From<MyType> for TagValue`), and a re-entrant call from there finds the
//! stack busy and does nothing rather than panic.

use std::cell::{Cell, RefCell};

use crate::clock::Timestamp;
use crate::error::StopError;
use crate::model::token::{PackedToken, TraceToken};
use crate::model::{EndpointRef, Span, SpanId, Text};

/// One entry of the stack. A recording frame is just its span (its token is derived from it),
/// so that a frame is no larger than a span and moves in as few bytes as possible.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A sampled span being recorded.
    Recording(Span),
    /// A span that is not sampled: it has ids (so its children and downstream services
    /// continue the trace) but records nothing. `unowned` as [`Span`]'s field of that name.
    Unsampled {
        token: TraceToken,
        name: Text,
        unowned: bool,
    },
    /// Not a span of this stack: the context a task or thread continues (a parent to attach
    /// children to). Never reported, never stopped by name.
    Link(TraceToken),
    /// A span recorded elsewhere (a bridged `tracing` span), entered on this thread: a parent
    /// like a link, whose children also inherit its local endpoint.
    Entered {
        token: TraceToken,
        endpoint: Option<EndpointRef>,
    },
}

impl Frame {
    /// This frame's identity; for a link, the borrowed parent's.
    #[inline]
    pub(crate) fn token(&self) -> TraceToken {
        match self {
            Frame::Recording(span) => span.token(),
            Frame::Unsampled { token, .. } | Frame::Link(token) | Frame::Entered { token, .. } => {
                *token
            }
        }
    }

    /// Whether the frame is a link rather than a span of its own.
    pub(crate) fn is_link(&self) -> bool {
        matches!(self, Frame::Link(_) | Frame::Entered { .. })
    }

    /// Whether nothing owns this frame but the stack: the seed API (`start`, `start_from`,
    /// `start_http`) opened it and only `stop(name)` ends it, so a panic leaves it behind.
    /// Guards' and futures' frames are owned: their owners end them, also when unwinding.
    pub(crate) fn is_unowned(&self) -> bool {
        match self {
            Frame::Recording(span) => span.unowned,
            Frame::Unsampled { unowned, .. } => *unowned,
            // An entered bridged span belongs to its `tracing` span, which exits it.
            Frame::Link(_) | Frame::Entered { .. } => false,
        }
    }

    /// The local endpoint this frame's children inherit, when it is not the tracer's.
    #[inline]
    fn own_endpoint(&self) -> Option<&EndpointRef> {
        let endpoint = match self {
            Frame::Recording(span) => Some(&span.local_endpoint),
            Frame::Entered { endpoint, .. } => endpoint.as_ref(),
            Frame::Unsampled { .. } | Frame::Link(_) => None,
        };
        // A `'static` endpoint is the tracer's own (see `EndpointRef`).
        endpoint.filter(|e| matches!(e, EndpointRef::Shared(_)))
    }

    /// What tells this frame from any other on a stack (for [`super::abandoned`]'s snapshot).
    pub(crate) fn mark(&self) -> (TraceToken, bool) {
        (self.token(), self.is_link())
    }

    fn name(&self) -> Option<&str> {
        match self {
            Frame::Recording(span) => Some(&span.name),
            Frame::Unsampled { name, .. } => Some(name),
            Frame::Link(_) | Frame::Entered { .. } => None,
        }
    }

    #[inline]
    fn is_span(&self, id: SpanId) -> bool {
        match self {
            Frame::Recording(span) => span.id == id,
            Frame::Unsampled { token, .. } => token.span_id == id,
            Frame::Link(_) | Frame::Entered { .. } => false,
        }
    }

    /// Ends the frame: a recorded span is finished and reported.
    #[inline(always)]
    pub(crate) fn finish(self) {
        if let Frame::Recording(span) = self {
            crate::tracer::finish(span);
        }
    }

    /// Ends a frame whose owner is gone at `end` (see [`Span::abandon`]).
    #[cold]
    pub(crate) fn abandon(self, reason: &'static str, end: Option<Timestamp>) {
        if let Frame::Recording(mut span) = self {
            span.abandon(reason, end);
            crate::tracer::report(span);
        }
    }
}

thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    /// The innermost frame's token, kept in step with `STACK` by every change to it, marked
    /// when the frame's children inherit an endpoint of their own. A `Copy` cell needs no
    /// destructor, so reading it is a plain load: the current token (asked for by every SQL
    /// statement and outgoing request) and the parent of a new child (unless it has an
    /// endpoint of its own) need no visit of the stack.
    static TOP: Cell<PackedToken> = const { Cell::new(PackedToken::NONE) };
}

/// Runs `f` on this thread's stack; `None` when the stack is busy (re-entrant call) or the
/// thread is being torn down.
#[inline(always)]
fn with_stack<R>(f: impl FnOnce(&mut Vec<Frame>) -> R) -> Option<R> {
    STACK
        .try_with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s)))
        .ok()
        .flatten()
}

/// Like [`with_stack`], for changes to the stack: keeps `TOP` in step.
#[inline(always)]
fn with_stack_mut<R>(f: impl FnOnce(&mut Vec<Frame>) -> R) -> Option<R> {
    with_stack(|s| {
        let result = f(s);
        let top = s.last();
        let packed = PackedToken::pack(top.map(Frame::token))
            .with_own_endpoint(top.and_then(Frame::own_endpoint).is_some());
        // `try_with` fails only while the thread is being torn down.
        let _ = TOP.try_with(|c| c.set(packed));
        result
    })
}

/// The token of the innermost frame.
#[inline]
pub(crate) fn current_token() -> Option<TraceToken> {
    TOP.try_with(Cell::get).ok().and_then(PackedToken::unpack)
}

/// The innermost frame's token when it is not sampled (its children record nothing).
#[inline]
pub(crate) fn current_unsampled() -> Option<TraceToken> {
    current_token().filter(|t| !t.sampled)
}

/// The innermost frame's token, and the local endpoint a new child inherits from it when it is
/// not the tracer's (`None`: the tracer's). Unless the frame has an endpoint of its own, read
/// from `TOP` alone, without a visit of the stack.
#[inline]
pub(crate) fn current_parent() -> Option<(TraceToken, Option<EndpointRef>)> {
    let top = TOP.try_with(Cell::get).ok()?;
    if !top.has_own_endpoint() {
        return top.unpack().map(|token| (token, None));
    }
    own_endpoint_parent()
}

/// [`current_parent`] for a frame with an endpoint of its own: from the stack.
#[cold]
#[inline(never)]
fn own_endpoint_parent() -> Option<(TraceToken, Option<EndpointRef>)> {
    with_stack(|s| s.last().map(|f| (f.token(), f.own_endpoint().cloned()))).flatten()
}

#[inline(always)]
pub(crate) fn push(frame: Frame) {
    // If the stack is busy the frame is dropped unreported: only possible from a user's
    // conversion into a tag value or note, run on a span, where starting spans makes no sense.
    with_stack_mut(|s| s.push(frame));
}

/// Pushes the span `make` builds as a recording frame of `token` (whose children inherit the
/// tracer's endpoint). The closure builds the record inside the visit of the stack, so that
/// it is written once, into the stack; built by the caller and moved in as a [`Frame`], it
/// would be copied three times on the way, each copy reading with wide loads what narrow
/// stores had just written (a stalled store forward per copy).
#[inline(always)]
pub(crate) fn push_recording(token: TraceToken, make: impl FnOnce() -> Span) {
    // `TOP` from the token, not read back from the record just written.
    let packed = PackedToken::pack(Some(token));
    // If the stack is busy the span is dropped unreported, as in `push`.
    let mut make = Some(make);
    let pushed = with_stack(|s| {
        // Room first, then the record built into it: `push` would build it aside while it
        // makes room, and copy it.
        s.resize_with(s.len() + 1, || match make.take() {
            Some(make) => Frame::Recording(make()),
            // Not reached: one slot is added, so the closure runs once.
            None => Frame::Link(token),
        })
    });
    if pushed.is_some() {
        let _ = TOP.try_with(|c| c.set(packed));
    }
}

/// Makes a span recorded elsewhere current on this thread, for contexts entered and left by
/// callbacks rather than by a scope (see [`crate::DetachedSpan::enter_context`]).
pub(crate) fn push_entered(token: TraceToken, endpoint: Option<EndpointRef>) {
    push(Frame::Entered { token, endpoint });
}

/// Removes the innermost entered frame of `token` (the inverse of [`push_entered`]), wherever
/// it is on the stack: frames opened above it and still open stay where they are. Returns
/// false when there is none (a guard below it closed it already).
pub(crate) fn pop_entered(token: TraceToken) -> bool {
    with_stack_mut(|s| {
        let is_it = |f: &Frame| matches!(f, Frame::Entered { token: t, .. } if *t == token);
        if s.last().is_some_and(is_it) {
            s.pop();
            return true;
        }
        match s.iter().rposition(is_it) {
            Some(pos) => {
                s.remove(pos);
                true
            }
            None => false,
        }
    })
    .unwrap_or(false)
}

/// The seed's `stop(name)`: stops the innermost span if it has that name.
pub(crate) fn stop_named(name: &str) -> Result<(), StopError> {
    let frame = with_stack_mut(|s| {
        let current = s.last().and_then(Frame::name);
        match current {
            None => Err(StopError::NoSpanOpen {
                name: name.to_owned(),
            }),
            Some(current) if current != name => Err(StopError::NameMismatch {
                name: name.to_owned(),
                current: current.to_owned(),
            }),
            Some(_) => s.pop().ok_or_else(|| StopError::NoSpanOpen {
                name: name.to_owned(),
            }),
        }
    })
    .unwrap_or_else(|| {
        Err(StopError::NoSpanOpen {
            name: name.to_owned(),
        })
    })?;
    frame.finish();
    Ok(())
}

/// Stops span `id` and every frame opened above it and left open (a guard dropped during a
/// panic, or a `start` without its `stop`). Returns false when `id` is not on this stack.
pub(crate) fn stop_id(id: SpanId) -> bool {
    // The clock read and converted before the visit, so that the end's store is ready well
    // before the record moves out (see below).
    let end = Timestamp::now();
    let closed = with_stack_mut(|s| {
        // Fast path: the span is the innermost one (guards drop in order). Finishing it in
        // place saves moving the frame out through the closure.
        if let Some(top) = s.last_mut().filter(|f| f.is_span(id)) {
            // Its end is written where the span lies, before it moves out of the stack:
            // reading the record right after a narrower write into it stalls the copy.
            if let Frame::Recording(span) = top {
                span.finish_at(end);
            }
            if let Some(Frame::Recording(span)) = s.pop() {
                crate::tracer::report(span);
            }
            return Some(None);
        }
        let pos = s.iter().rposition(|f| f.is_span(id))?;
        Some(Some(s.split_off(pos)))
    })
    .flatten();
    match closed {
        // The innermost frame, finished above.
        Some(None) => true,
        Some(Some(frames)) => {
            finish_all(frames);
            true
        }
        None => false,
    }
}

/// Finishes frames innermost first, so that children end before their parents.
pub(crate) fn finish_all(frames: Vec<Frame>) {
    for frame in frames.into_iter().rev() {
        frame.finish();
    }
}

/// Runs `f` on the innermost frame's span when it is being recorded.
pub(crate) fn with_current_span<R>(f: impl FnOnce(&mut Span) -> R) -> Option<R> {
    with_stack(|s| match s.last_mut() {
        Some(Frame::Recording(span)) => Some(f(span)),
        _ => None,
    })
    .flatten()
}

/// The innermost frame's span, when it is being recorded.
pub(crate) fn current_recording_id() -> Option<SpanId> {
    with_current_span(|span| span.id)
}

/// Runs `f` on span `id` when it is on this stack and being recorded.
pub(crate) fn with_span<R>(id: SpanId, f: impl FnOnce(&mut Span) -> R) -> Option<R> {
    with_stack(|s| {
        let frame = s.iter_mut().rev().find(|f| f.is_span(id))?;
        match frame {
            Frame::Recording(span) => Some(f(span)),
            _ => None,
        }
    })
    .flatten()
}

/// Whether span `id` is on this stack and being recorded.
pub(crate) fn is_recording(id: SpanId) -> bool {
    with_span(id, |_| ()).is_some()
}

/// Moves `frames` onto this thread's stack; returns where they start.
pub(crate) fn install(frames: &mut Vec<Frame>) -> usize {
    with_stack_mut(|s| {
        let base = s.len();
        s.append(frames);
        base
    })
    .unwrap_or(usize::MAX)
}

/// Moves the frames from `base` up back into `frames` (the inverse of [`install`]).
pub(crate) fn uninstall(base: usize, frames: &mut Vec<Frame>) {
    if base == usize::MAX {
        return;
    }
    with_stack_mut(|s| {
        if base <= s.len() {
            frames.extend(s.drain(base..));
        }
    });
}

/// The marks of this thread's frames, outermost first, into `out`; false when the stack is
/// busy (borrowed by code that runs on a span: a user's conversion into a tag value).
pub(crate) fn marks_into(out: &mut Vec<(TraceToken, bool)>) -> bool {
    with_stack(|s| out.extend(s.iter().map(Frame::mark))).is_some()
}

/// Removes the frames from the index `from` returns up (`None`: none, and `None` back; so
/// also when the stack is busy).
pub(crate) fn split_off_with(from: impl FnOnce(&[Frame]) -> Option<usize>) -> Option<Vec<Frame>> {
    with_stack_mut(|s| from(s).map(|at| s.split_off(at.min(s.len())))).flatten()
}

/// Number of frames on this thread's stack (for tests and diagnostics).
pub(crate) fn depth() -> usize {
    with_stack(|s| s.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_no_larger_than_its_span() {
        // The ownership flag lives in the span's padding, not beside it.
        assert_eq!(
            std::mem::size_of::<Frame>(),
            std::mem::size_of::<Span>(),
            "{} vs {}",
            std::mem::size_of::<Frame>(),
            std::mem::size_of::<Span>()
        );
    }
}
