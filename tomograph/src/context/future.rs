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

use crate::context::stack::{self, Frame};

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
    /// On completion, keep the outermost frame (for whoever outlives the future, such as a
    /// response body) instead of finishing it.
    keep_outer: bool,
    kept: Option<Frame>,
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
        if let Some(kept) = self.kept.take() {
            kept.finish();
        }
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
        let result = in_frames(&mut this.context.frames, || this.inner.poll(cx));
        if result.is_ready() {
            // The task's own span (if any) and anything left open inside it end now.
            let mut frames = std::mem::take(&mut this.context.frames);
            if this.context.keep_outer && !frames.is_empty() {
                this.context.kept = Some(frames.remove(0));
            }
            stack::finish_all(frames);
        }
        result
    }
}

/// Runs `f` with `frames` installed on this thread's stack, and takes them back afterwards
/// (also when `f` panics), with whatever `f` left open above them.
pub(crate) fn in_frames<R>(frames: &mut Vec<Frame>, f: impl FnOnce() -> R) -> R {
    let base = stack::install(frames);
    let _installed = Installed { base, frames };
    f()
}

impl<F> Traced<F> {
    pub(crate) fn new(inner: F, frame: Option<Frame>) -> Self {
        Self::with_frames(inner, frame.into_iter().collect())
    }

    /// A future that owns `frames` (outermost first).
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn with_frames(inner: F, frames: Vec<Frame>) -> Self {
        Self {
            inner,
            context: TaskContext {
                frames,
                installed_at: None,
                keep_outer: false,
                kept: None,
            },
        }
    }

    /// On completion, keeps the outermost frame open for [`take_kept`](Self::take_kept)
    /// instead of finishing it (it is finished on drop if nobody takes it).
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn keep_outer_frame(mut self) -> Self {
        self.context.keep_outer = true;
        self
    }

    /// The outermost frame kept on completion (see [`keep_outer_frame`](Self::keep_outer_frame)).
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn take_kept(self: Pin<&mut Self>) -> Option<Frame> {
        self.project().context.kept.take()
    }
}
