//! Backends: where finished spans go. Several may run at once; each receives every span.
//!
//! - [`LogBackend`]: one line per span through the `log` crate, like the original.
//! - [`ConsoleBackend`]: a readable tree of each finished trace, for the quickstart and for
//!   debugging.
//! - [`MemoryBackend`]: keeps spans in memory, to test your own instrumentation.
//! - `zipkin` (feature `zipkin`): JSON v2 or thrift v1 over HTTP, or Scribe.
//! - `statsd` (feature `statsd`): a timer per span and a counter per note.

mod console;
mod log;
mod memory;
#[cfg(feature = "statsd")]
pub(crate) mod metrics;
#[cfg(feature = "statsd")]
pub mod statsd;
#[cfg(feature = "zipkin")]
pub mod zipkin;

pub use self::console::ConsoleBackend;
pub use self::log::LogBackend;
pub use self::memory::MemoryBackend;
