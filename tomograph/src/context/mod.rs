//! Where the current span lives: a thread-local stack for synchronous code, futures that carry
//! their own frames for async code, and the closing of frames a caught panic left on a thread.
//! (The token that continues a trace anywhere else is the model's `TraceToken`.)

pub(crate) mod abandoned;
pub(crate) mod future;
pub(crate) mod stack;
