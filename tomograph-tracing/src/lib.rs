//! # tomograph-tracing
//!
//! Bridges between [tomograph] and the two ways the Rust ecosystem reports what it
//! does:
//!
//! - [`TomographLayer`], a [`tracing_subscriber::Layer`]: every `tracing` span it sees
//!   (hyper, tower-http's `TraceLayer`, `#[tracing::instrument]` functions, …) becomes a
//!   tomograph span in the same trace as tomograph's own, and while it is entered it is
//!   tomograph's current context, so tomograph spans, `#[traced]` functions, SQL statements
//!   and outgoing requests made inside it are its children. Its events become notes.
//! - [`NoteLogger`], a [`log::Log`](::log::Log) around the application's logger: WARN and ERROR records
//!   (or whatever level you choose) also become notes on the current span.
//!
//! A crate of its own, so that applications that do not use `tracing` do not compile
//! `tracing-subscriber`; the `log` bridge lives here too because inside a bridged span the
//! current span is `tracing`'s.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::util::SubscriberInitExt;
//!
//! let memory = tomograph::testing::memory_tracer();
//! tracing_subscriber::registry()
//!     .with(tomograph_tracing::TomographLayer::new())
//!     .init();
//!
//! #[tracing::instrument]
//! fn load(id: u64) {
//!     let _query = tomograph::span("SELECT").start(); // a child of `load`
//! }
//!
//! let trace = {
//!     let request = tomograph::span("GET /users/{id}").root().start();
//!     load(7);
//!     request.token().unwrap().trace_id()
//! };
//! let spans = tomograph::testing::wait_for_trace(&memory, trace, 3, std::time::Duration::from_secs(5));
//! let names: Vec<_> = spans.iter().map(|s| s.name()).collect();
//! assert_eq!(names, ["SELECT", "load", "GET /users/{id}"]);
//! assert_eq!(spans[0].parent_id(), Some(spans[1].id()));
//! assert_eq!(spans[1].parent_id(), Some(spans[2].id()));
//! ```
#![warn(missing_docs)]

mod fields;
mod layer;
mod log;

pub use crate::layer::TomographLayer;
pub use crate::log::NoteLogger;
