//! Where the current span lives: a thread-local stack for synchronous code, futures that carry
//! their own frames for async code, tokens to continue a trace anywhere else, and the
//! closing of frames a caught panic left on a thread.

pub(crate) mod abandoned;
pub(crate) mod future;
pub(crate) mod stack;
