//! Async context: futures that carry their spans across `.await` and worker threads.
//!
//! A thread-local stack is wrong across `.await` on a multi-thread runtime: a task may resume
//! on another thread, and other tasks run on this one in between. [`Traced`] owns the task's
//! frames; on every poll it moves them onto the polling thread's stack and takes them back
//! afterwards (also on panic), so guards and `start`/`stop` inside the future nest as on a
//! thread, and thousands of tasks never see each other's spans. On drop it installs them once
//! more while the inner future is dropped, so guards inside a cancelled future close properly.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::api::SpanBuilder;
use crate::context::stack::{self, Frame};
use crate::context::token::TraceToken;
use crate::model::Text;

pin_project! {
    /// A future that runs inside its own trace context; see [`FutureExt`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct Traced<F> {
        #[pin]
        inner: F,
        // Declared after `inner`: dropped after it, so it can close what `inner` left open.
        context: TaskContext,
    }

    impl<F> PinnedDrop for Traced<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.context.install_for_drop();
        }
    }
}

/// The frames a task owns while it is not being polled.
#[derive(Debug)]
struct TaskContext {
    frames: Vec<Frame>,
    /// Where the frames sit on the thread's stack while the inner future is dropped.
    installed_at: Option<usize>,
}

impl TaskContext {
    fn install_for_drop(&mut self) {
        if !self.frames.is_empty() {
            self.installed_at = Some(stack::install(&mut self.frames));
        }
    }
}

impl Drop for TaskContext {
    fn drop(&mut self) {
        if let Some(base) = self.installed_at.take() {
            stack::uninstall(base, &mut self.frames);
        }
        stack::finish_all(std::mem::take(&mut self.frames));
    }
}

/// Takes the frames back from the thread's stack when dropped, so a panicking poll does not
/// leave this task's spans on the worker thread.
struct Installed<'a> {
    base: usize,
    frames: &'a mut Vec<Frame>,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        stack::uninstall(self.base, self.frames);
    }
}

impl<F: Future> Future for Traced<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let result = {
            let base = stack::install(&mut this.context.frames);
            let _installed = Installed {
                base,
                frames: &mut this.context.frames,
            };
            this.inner.poll(cx)
        };
        if result.is_ready() {
            // The task's own span (if any) and anything left open inside it end now.
            stack::finish_all(std::mem::take(&mut this.context.frames));
        }
        result
    }
}

impl<F> Traced<F> {
    fn new(inner: F, frame: Option<Frame>) -> Self {
        Self {
            inner,
            context: TaskContext {
                frames: frame.into_iter().collect(),
                installed_at: None,
            },
        }
    }
}

/// Extension methods that give a future its trace context.
///
/// ```
/// use tomograph::FutureExt;
/// # let rt = tokio::runtime::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let _root = tomograph::span("request").start();
/// // The spawned task's spans are children of "request", on whatever thread it runs.
/// let task = tokio::spawn(async {
///     let _child = tomograph::span("work").start();
///     tokio::task::yield_now().await;
///     tomograph::annotate("still here after .await");
/// }.in_current_trace());
/// task.await.unwrap();
/// # });
/// ```
pub trait FutureExt: Future + Sized {
    /// Runs the future inside a new span `name`, child of the current context at the time of
    /// this call; the span ends when the future completes or is dropped.
    fn traced(self, name: impl Into<Text>) -> Traced<Self> {
        self.traced_with(crate::api::span(name))
    }

    /// Like [`traced`](FutureExt::traced), with the span's options set on a builder.
    fn traced_with(self, builder: SpanBuilder) -> Traced<Self> {
        Traced::new(self, builder.into_frame())
    }

    /// Runs the future as part of the current trace: spans it opens are children of the span
    /// current at the time of this call. For `tokio::spawn` and friends.
    fn in_current_trace(self) -> Traced<Self> {
        Traced::new(self, stack::current_token().map(Frame::link))
    }

    /// Runs the future as a continuation of `token` (from a header, a queue message, …).
    fn in_trace(self, token: TraceToken) -> Traced<Self> {
        Traced::new(self, Some(Frame::link(token)))
    }
}

impl<F: Future> FutureExt for F {}
