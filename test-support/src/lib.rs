//! Helpers shared by the workspace's tests and benchmarks, written once instead of copied
//! into each crate's `tests/` or `benches/`. Not published: a dev-dependency only.
//!
//! - [`bench`]: benchmark statistics (medians with confidence intervals, batches in ABBA
//!   order against a baseline, added cost per operation) and the span benchmarks' shared
//!   harness;
//! - [`collector`]: the Zipkin-compatible test collector's HTTP API (`scripts/test` starts it);
//! - [`spans`]: spans made by hand, for backends' and reporters' tests;
//! - [`statsd`]: Etsy's statsd daemon as the tests read it (`peers/statsd-peer`);
//! - [`tracer`]: the process's one tracer, installed once and taken in turns.
//!
//! What a user needs to test their own instrumentation stays in `tomograph::testing`.

pub mod bench;
pub mod collector;
pub mod spans;
pub mod statsd;
pub mod tracer;
