//! Where the current span lives: a thread-local stack for synchronous code, futures that carry
//! their own frames for async code, and tokens to continue a trace anywhere else.

pub(crate) mod future;
pub(crate) mod stack;
pub(crate) mod token;
