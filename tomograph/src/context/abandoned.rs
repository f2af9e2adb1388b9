//! Frames a panic left behind on a thread's stack, and closing them.
//!
//! The seed API's `start`, `start_from` and `start_http` push frames that nothing owns but the
//! stack: only `stop(name)` ends them. When a request unwinds from a panic and a thread pool
//! catches it (`catch_unwind`, a runtime's task boundary), those frames stay, and the thread's
//! next `start` would become their child. Guards and traced futures own their frames and end
//! them while unwinding; they never need this.
//!
//! How a dead frame is told from a live one, with no work on the span hot path:
//!
//! - The first seed frame pushed installs a panic hook (chained to the one in place; none
//!   while tracing is off or no tracer is installed, when nothing is pushed). When a panic
//!   begins on a thread that has frames, the hook notes it and keeps the marks (token and
//!   kind) of the frames on the stack at that moment.
//! - Once the panic has been caught (the thread is no longer unwinding), the **next request**
//!   on the thread settles it. The next request is the first of: a seed `start` or
//!   `start_from` (whatever its parent), a `start_http`, a request through the tower layer.
//! - Settling: the frames still on the stack that were there when the panic began are those
//!   the unwinding did not end. Of them, the innermost run of unowned frames is dead — their
//!   owners unwound — and is closed with `error=panicked`, innermost first, and reported;
//!   each ends when the panic began, not when it was found.
//!   An owned frame (a guard's, a future's) that survived the unwinding is alive, and so is
//!   everything below it: settling stops there. So a pool that keeps a guard open around its
//!   jobs, or a request opened by a guard that catches a panic inside itself, keeps its span.
//! - Frames opened after the panic are alive: while any is above the dead ones, settling
//!   waits (a later request settles it, or [`reset_thread`]). Nothing is ever removed from
//!   under a live frame.
//!
//! What cannot be told (where the panic was caught is not known): a request opened with the
//! seed `start` that catches a panic inside itself and carries on. Its own frame was on the
//! stack at the panic, unowned, like a dead one: its next `start` closes it (and the later
//! `stop(name)` returns an error). Likewise a seed span kept open on a thread that also runs a
//! runtime's tasks (a test's `start` around `block_on` on a current-thread runtime) when one
//! of those tasks panics. Open such spans with a guard. A `start` left open by an early return,
//! with no panic, is not detected while its thread lives: only [`reset_thread`] closes it.
//! Replacing the panic hook after the first seed span switches the detection off (the hook
//! chains only to what was in place before it); [`reset_thread`] still works.
//!
//! - When a thread **ends** — its function returned, or a panic it did not catch killed it —
//!   the frames still on its stack are closed as [`reset_thread`] closes them
//!   (`error=panicked` for those a panic left, ended when it began; `error=abandoned` for the
//!   rest) and reported, instead of vanishing with the thread. (The main thread's are closed
//!   when `main` returns, after any `shutdown`: counted then as reported after shutdown.
//!   Threads still running when the process exits are never told: theirs are not reported.)

use std::cell::{Cell, RefCell};
use std::sync::Once;

use crate::clock::Timestamp;
use crate::context::stack::{self, Frame};
use crate::model::TraceToken;

/// The tag value of a frame closed because its thread panicked while it was open.
const PANICKED: &str = "panicked";
/// The tag value of a frame closed by [`reset_thread`] that no panic is known to have left.
const ABANDONED: &str = "abandoned";

/// The frames on a thread's stack when a panic began there.
struct Snapshot {
    /// Outermost first; when not `complete`, only the innermost frame's token (the stack was
    /// busy: the panic began in code that ran on a span, a user's conversion into a tag value).
    marks: Vec<(TraceToken, bool)>,
    complete: bool,
    /// When the panic began: where the spans it left end.
    at: Timestamp,
}

thread_local! {
    /// A panic began on this thread with frames on its stack, and no request has settled it.
    static PENDING: Cell<bool> = const { Cell::new(false) };
    static AT_PANIC: RefCell<Snapshot> = const {
        RefCell::new(Snapshot { marks: Vec::new(), complete: true, at: Timestamp::from_unix_nanos(0) })
    };
}

static HOOK: Once = Once::new();

/// Installs the panic hook that notes panics (once per process; not while unwinding, when
/// `set_hook` would panic).
#[inline]
pub(crate) fn watch_panics() {
    if !HOOK.is_completed() {
        install_hook();
    }
}

#[cold]
#[inline(never)]
fn install_hook() {
    if std::thread::panicking() {
        return;
    }
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            note_panic();
            previous(info);
        }));
    });
}

/// The hook's part: keeps the marks of this thread's frames. Allocation-free after the
/// thread's first panic (the snapshot's buffer is reused); nothing at all on a thread with
/// no frames.
fn note_panic() {
    if stack::current_token().is_none() {
        return;
    }
    let _ = PENDING.try_with(|p| p.set(true));
    let _ = AT_PANIC.try_with(|snapshot| {
        if let Ok(mut snapshot) = snapshot.try_borrow_mut() {
            let snapshot = &mut *snapshot;
            snapshot.at = Timestamp::now();
            snapshot.marks.clear();
            snapshot.complete = stack::marks_into(&mut snapshot.marks);
            if !snapshot.complete {
                snapshot.marks.clear();
                snapshot
                    .marks
                    .extend(stack::current_token().map(|t| (t, false)));
            }
        }
    });
}

/// Opens a frame that no guard owns (the seed's `start`, `start_from`, `start_http`): first
/// the frames a caught panic left are closed ([`next_request`]), then `frame` makes the new
/// span's frame (its parent is the current span once they are gone), which goes on the stack
/// until `stop(name)`.
pub(crate) fn start_request(frame: impl FnOnce() -> Option<Frame>) {
    next_request();
    if let Some(frame) = frame() {
        watch_panics();
        stack::push(frame);
        close_at_thread_exit();
    }
}

thread_local! {
    /// Its destructor closes the frames the thread still has when it ends.
    static THREAD_EXIT: ThreadExit = const { ThreadExit };
}

/// Closes, as [`reset_thread`] does, the frames a thread leaves on its stack when it ends:
/// seed spans a job returned without stopping, or that a panic the thread died of left open
/// (`error=panicked`, ended when the panic began). Without it they would be dropped with the
/// stack, unreported and uncounted.
struct ThreadExit;

impl Drop for ThreadExit {
    fn drop(&mut self) {
        reset_thread();
    }
}

/// Makes the thread's end close its frames (see [`ThreadExit`]). std destroys a thread's
/// locals in the reverse order of their first use (on the platforms whose thread-exit hooks it
/// uses, glibc's among them; `panics.rs` checks it): the stack (used by the push before this)
/// and the panic snapshot (touched here first) are still there when it runs.
#[inline]
fn close_at_thread_exit() {
    let _ = AT_PANIC.try_with(|_| ());
    let _ = THREAD_EXIT.try_with(|_| ());
}

/// Runs user code that tomograph calls and survives the panic of (an `on_error` hook),
/// catching the panic. The thread goes on where it was, so the panic is settled here rather
/// than by the next request: seed frames `f` opened and left (a `start` without its `stop`
/// before the panic) are closed now, `error=panicked`, and the frames below them, still in
/// use, are not marked as left by it.
pub(crate) fn catch_panic<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    let pending = PENDING.try_with(Cell::get).unwrap_or(false);
    let depth = stack::depth();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    if result.is_err() {
        if !pending {
            let _ = PENDING.try_with(|p| p.set(false));
        }
        let at = AT_PANIC
            .try_with(|snapshot| snapshot.try_borrow().ok().map(|s| s.at))
            .ok()
            .flatten();
        if let Some(left) = stack::split_off_with(|frames| (frames.len() > depth).then_some(depth))
        {
            for frame in left.into_iter().rev() {
                frame.abandon(PANICKED, at);
            }
        }
    }
    result
}

/// A request starts on this thread: closes the frames a caught panic left (see the module's
/// documentation). One thread-local load when no panic is pending.
#[inline]
pub(crate) fn next_request() {
    if PENDING.try_with(Cell::get).unwrap_or(false) {
        settle();
    }
}

#[cold]
#[inline(never)]
fn settle() {
    if std::thread::panicking() {
        // Still unwinding (a `start` in a destructor): the frames' owners may yet end them.
        return;
    }
    let dead = AT_PANIC
        .try_with(|snapshot| {
            let snapshot = snapshot.try_borrow().ok()?;
            let dead =
                stack::split_off_with(|frames| dead_from(frames, survivors(frames, &snapshot)))?;
            Some((dead, snapshot.at))
        })
        .ok()
        .flatten();
    if let Some((dead, at)) = dead {
        let _ = PENDING.try_with(|p| p.set(false));
        // Innermost first, so that children end before their parents.
        for frame in dead.into_iter().rev() {
            frame.abandon(PANICKED, Some(at));
        }
    }
}

/// How many of `frames`, from the outermost, were on the stack when the panic began: the
/// frames of a stack only go away from the top, so those still there are a prefix.
fn survivors(frames: &[Frame], snapshot: &Snapshot) -> usize {
    if snapshot.complete {
        frames
            .iter()
            .zip(&snapshot.marks)
            .take_while(|(frame, mark)| frame.mark() == **mark)
            .count()
    } else {
        snapshot
            .marks
            .first()
            .and_then(|(top, _)| frames.iter().rposition(|f| f.token() == *top))
            .map_or(0, |i| i + 1)
    }
}

/// Where the dead frames start, given that the first `survivors` were there at the panic;
/// `None` to wait, because frames opened since the panic are above them.
fn dead_from(frames: &[Frame], survivors: usize) -> Option<usize> {
    if survivors == 0 {
        return Some(frames.len());
    }
    if survivors < frames.len() {
        return None;
    }
    Some(
        frames[..survivors]
            .iter()
            .rposition(|f| !f.is_unowned())
            .map_or(0, |owned| owned + 1),
    )
}

/// Closes every frame on this thread's span stack and returns how many there were: for a
/// thread pool or a server loop to call between jobs, where no span of a job can be open.
///
/// Recorded spans among them are reported with `error=panicked` (ending when the panic began)
/// when a panic began on this thread while they were open, else with `error=abandoned`
/// (ending now) (a job that returned without
/// [`stop`](crate::stop), a guard that was leaked). The next request on a thread closes the
/// frames a caught panic left anyway (see [`start`](crate::start)); this is the sure way, also
/// for frames no panic left, and costs nothing when the stack is empty.
///
/// Everything on the stack is closed, also spans that are still wanted: call it only where
/// none of the thread's work is in progress (not inside a span's guard, nor inside a traced
/// future). Returns 0 when called while the stack is busy (from a user's conversion into a tag
/// value, run on a span).
///
/// ```
/// # tomograph::init(tomograph::Config::builder().build()).unwrap();
/// // a job that returned early, without its stop("job")
/// tomograph::start("worker", "job", "127.0.0.1", 0);
///
/// // the pool, before it runs the next job on this thread
/// assert_eq!(tomograph::reset_thread(), 1);
/// assert_eq!(tomograph::stack_depth(), 0);
/// assert_eq!(tomograph::reset_thread(), 0);
/// ```
pub fn reset_thread() -> usize {
    let Some(frames) = stack::split_off_with(|_| Some(0)) else {
        return 0;
    };
    if frames.is_empty() {
        let _ = PENDING.try_with(|p| p.set(false));
        return 0;
    }
    let count = frames.len();
    let pending = PENDING.try_with(|p| p.replace(false)).unwrap_or(false);
    let (panicked, at) = if pending {
        AT_PANIC
            .try_with(|s| {
                s.try_borrow()
                    .map_or((0, None), |s| (survivors(&frames, &s), Some(s.at)))
            })
            .unwrap_or((0, None))
    } else {
        (0, None)
    };
    for (i, frame) in frames.into_iter().enumerate().rev() {
        if i < panicked {
            frame.abandon(PANICKED, at);
        } else {
            frame.abandon(ABANDONED, None);
        }
    }
    count
}
