//! # tomograph
//!
//! Distributed tracing for Rust applications, sent to [Zipkin] and [statsd]: the Rust
//! successor of the Python `tomograph` library.
//!
//! A request is a trace; a trace is a set of spans; a span is a set of notes (timestamped
//! annotations) plus tags. Spans nest on a thread-local stack (the seed's
//! `start`/`stop`/`annotate`/`tag`), or under guards, or inside futures that carry their
//! context across `.await`. Finished spans go through a bounded, non-blocking reporter to
//! one or more backends.
//!
//! ```
//! use tomograph::{Config, MemoryBackend};
//! use std::time::Duration;
//!
//! let memory = MemoryBackend::new();
//! tomograph::init(Config::builder().service_name("example").backend(memory.clone()).build()).unwrap();
//!
//! tomograph::start("example", "handle request", "127.0.0.1", 80);
//! {
//!     let query = tomograph::span("load user").start();
//!     query.tag("user.id", 7);
//! }
//! tomograph::annotate("rendered");
//! tomograph::stop("handle request").unwrap();
//!
//! tomograph::flush(Duration::from_secs(5)).unwrap();
//! let spans = memory.spans();
//! assert_eq!(spans.len(), 2);
//! assert_eq!(spans[0].parent_id(), Some(spans[1].id()));
//! ```
//!
//! [Zipkin]: https://zipkin.io
//! [statsd]: https://github.com/statsd/statsd
#![warn(missing_docs)]

// The modules in layers, each using only those below it (`scripts/check-layers` fails on an
// import cycle): text, clock, error; env (the `TOMOGRAPH_*` variables); model (ids, endpoints,
// tags, notes, the span, tokens, the interner); propagation (header formats), recycle;
// sample (the samplers, and the traces held for the tail decision); backend (the `Backend`
// trait and the built-in backends); report (queue, batches, accounting); config; tracer; context (the span stack, async frames, abandoned frames);
// handle (builder, guard, detached span, `FutureExt`); then seed (the seed's free
// functions), http, sql, and testing.
pub mod backend;
mod clock;
mod config;
mod context;
pub mod env;
mod error;
mod handle;
pub mod http;
pub mod keys;
#[doc(hidden)]
pub mod macro_support;
mod model;
pub mod propagation;
mod recycle;
mod report;
pub mod sample;
mod seed;
pub mod sql;
pub mod testing;
mod text;
mod tracer;

pub use backend::{BACKEND_NAMES, Backend, ConsoleBackend, Delivery, LogBackend, MemoryBackend};
pub use clock::Timestamp;
pub use config::{Config, ConfigBuilder};
pub use context::abandoned::reset_thread;
pub use context::future::Traced;
pub use env::EnvLookup;
pub use error::{BackendError, ConfigError, IdParseError, InitError, StopError, TokenParseError};
pub use handle::{DetachedSpan, FutureExt, SpanBuilder, SpanGuard, span};
pub use model::{
    Endpoint, Kind, Note, START_NOTE, STOP_NOTE, Span, SpanId, Tag, TagValue, Tags, TagsIter, Text,
    TraceId, TraceToken,
};
pub use report::{
    BackendStats, FlushError, Loss, Rejection, Reporter, ReporterOptions, ReporterStats,
};
pub use seed::{
    annotate, get_trace_info, record_error, stack_depth, start, start_from, stop, tag, tag_with,
    tracing_started,
};
pub use tracer::{Tracer, flush, init, set_enabled, shutdown, stats};

/// Traces a function: each call is a span (`#[traced]`, or `#[traced("service", "name")]`
/// like the seed's decorator).
#[cfg(feature = "macros")]
pub use tomograph_macros::traced;

/// The installed tracer, if [`init`] was called.
pub fn tracer() -> Option<&'static Tracer> {
    tracer::get()
}
