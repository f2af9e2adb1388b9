//! [`FutureExt`]: futures that run inside a span or a trace (see [`Traced`]).

use std::future::Future;

use super::SpanBuilder;
use crate::context::future::Traced;
use crate::context::stack;
use crate::context::stack::Frame;
use crate::model::{Text, TraceToken};

/// Extension methods that give a future its trace context.
///
/// ```
/// use tomograph::FutureExt;
/// # let rt = tokio::runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let _root = tomograph::span("request").start();
/// // The spawned task's spans are children of "request", on whatever thread it runs.
/// let task = tokio::spawn(async {
///     tokio::task::yield_now().await;
///     tomograph::annotate("still here after .await");
/// }.traced("work"));
/// task.await.unwrap();
/// // `in_current_trace` carries the context alone; a guard inside a spawned task must not be
/// // held across `.await` (it is not `Send`): the future's own span is the way.
/// let task = tokio::spawn(async {
///     tokio::task::yield_now().await;
///     let _child = tomograph::span("step").start();
///     tomograph::annotate("a synchronous step");
/// }.in_current_trace());
/// task.await.unwrap();
/// # });
/// ```
pub trait FutureExt: Future + Sized {
    /// Runs the future inside a new span `name`, child of the current context at the time of
    /// this call; the span ends when the future completes or is dropped.
    fn traced(self, name: impl Into<Text>) -> Traced<Self> {
        self.traced_with(super::span(name))
    }

    /// Like [`traced`](FutureExt::traced), with the span's options set on a builder.
    fn traced_with(self, builder: SpanBuilder) -> Traced<Self> {
        Traced::new(self, builder.into_frame(false))
    }

    /// Runs the future as part of the current trace: spans it opens are children of the span
    /// current at the time of this call. For `tokio::spawn` and friends.
    fn in_current_trace(self) -> Traced<Self> {
        Traced::new(self, stack::current_token().map(Frame::Link))
    }

    /// Runs the future as a continuation of `token` (from a header, a queue message, …).
    fn in_trace(self, token: TraceToken) -> Traced<Self> {
        Traced::new(self, Some(Frame::Link(token)))
    }
}

impl<F: Future> FutureExt for F {}
