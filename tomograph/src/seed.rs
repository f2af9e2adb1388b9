//! The seed's free functions — `start`, `stop`, `annotate`, `tag`, `get_trace_info`,
//! `tracing_started` — and their Rust-era companions (`start_from`, `tag_with`,
//! `record_error`), all acting on the current span of this thread (or task). A facade: each
//! is a line or two over the span stack and the span handles, re-exported at the crate's
//! root.
//!
//! Everything here is a no-op costing a few nanoseconds when no tracer is installed, when
//! tracing is switched off, or when the span is not sampled.

use std::net::IpAddr;

use crate::context::abandoned;
use crate::context::stack;
use crate::error::StopError;
use crate::handle::span;
use crate::model::{Endpoint, TagValue, Text, TraceToken};

/// Starts a span `name` at service `service` (`address`:`port`), child of the current span,
/// or the root of a new trace. The seed's `tomograph.start`. Stop it with [`stop`].
///
/// `address` is an IP address; anything else (a host name, "") leaves the endpoint's address
/// unset. Port 0 means unknown.
///
/// # Panics and early returns
///
/// Nothing but [`stop`] ends this span: no guard owns it. When the code between `start` and
/// `stop` panics and a thread pool catches the panic, the span is left open on the thread.
/// The thread's **next request** closes it, with the tag `error=panicked`, reports it (ending
/// when the panic began), and starts clean: the next `start` is a root again, not a child of the dead span. The next
/// request is the first, once the panic has been caught, of: a `start` or [`start_from`],
/// a [`start_http`](crate::http::start_http), a request through the tower layer. Only the
/// frames the panic left are closed: a span whose guard outlived the panic (a pool's span
/// around its jobs) stays open, and so does everything below it. (A request opened with
/// `start` that catches a panic inside itself and carries on is taken as over; open it with a
/// guard.) A `start` left open by an early return (`?`) without a panic is not detected: the
/// thread's next spans become its children, until [`reset_thread`](crate::reset_thread),
/// which a pool can call between jobs.
///
/// Prefer a guard ([`span`]`(name).start()`): it ends the span on every path out of the
/// scope, early returns and panics included, with nothing left for the next request.
///
/// ```
/// # tomograph::init(tomograph::Config::builder().build()).unwrap();
/// let job = std::panic::catch_unwind(|| {
///     tomograph::start("worker", "job 1", "127.0.0.1", 0);
///     panic!("bug in job 1");
/// });
/// assert!(job.is_err());
/// assert_eq!(tomograph::stack_depth(), 1, "job 1's span is still open");
///
/// tomograph::start("worker", "job 2", "127.0.0.1", 0); // closes "job 1" (error=panicked)
/// assert_eq!(tomograph::stack_depth(), 1);
/// tomograph::stop("job 2").unwrap();
/// ```
///
/// ```
/// # tomograph::init(tomograph::Config::builder().build()).unwrap();
/// tomograph::start("my service", "a query", "127.0.0.1", 80);
/// tomograph::annotate("something happened");
/// tomograph::tag("key", "value");
/// tomograph::stop("a query").unwrap();
/// ```
pub fn start(service: impl Into<Text>, name: impl Into<Text>, address: &str, port: u16) {
    let builder = span(name).endpoint(seed_endpoint(service, address, port));
    abandoned::start_request(|| builder.into_frame(true));
}

/// Like [`start`], continuing the trace of `token` (from [`get_trace_info`] on another thread,
/// or parsed from a message).
///
/// ```
/// # tomograph::init(tomograph::Config::builder().build()).unwrap();
/// tomograph::start("svc", "parent", "127.0.0.1", 0);
/// let token = tomograph::get_trace_info();
/// std::thread::spawn(move || {
///     tomograph::start_from(token, "svc", "on another thread", "127.0.0.1", 0);
///     tomograph::stop("on another thread").unwrap();
/// }).join().unwrap();
/// tomograph::stop("parent").unwrap();
/// ```
pub fn start_from(
    token: Option<TraceToken>,
    service: impl Into<Text>,
    name: impl Into<Text>,
    address: &str,
    port: u16,
) {
    let builder = span(name).endpoint(seed_endpoint(service, address, port));
    abandoned::start_request(|| builder.child_of_opt(token).into_frame(true));
}

fn seed_endpoint(service: impl Into<Text>, address: &str, port: u16) -> Endpoint {
    Endpoint::new(service)
        .with_optional_ip(address.parse::<IpAddr>().ok())
        .with_port(port)
}

/// Stops the current span, which must be called `name`. The seed's `tomograph.stop`.
///
/// With no span open, or when the current span has another name, nothing changes and an
/// error says why (the original asserted and corrupted its stack).
///
/// ```
/// use tomograph::StopError;
/// assert!(matches!(tomograph::stop("nothing"), Err(StopError::NoSpanOpen { .. })));
/// ```
pub fn stop(name: &str) -> Result<(), StopError> {
    stack::stop_named(name)
}

/// Adds a note to the current span. Does nothing when no span is open (the original created
/// an "orphan" span that never stopped).
///
/// ```
/// let _g = tomograph::span("work").start();
/// tomograph::annotate("cache miss");
/// ```
pub fn annotate(value: impl Into<Text>) {
    stack::with_current_span(|span| span.annotate(value));
}

/// Tags the current span. Does nothing when no span is open.
///
/// ```
/// let _g = tomograph::span("work").start();
/// tomograph::tag("user", 42);
/// ```
pub fn tag(key: impl Into<Text>, value: impl Into<TagValue>) {
    stack::with_current_span(|span| span.tag(key, value));
}

/// Tags the current span with what `f` computes; `f` runs only when the span is recorded,
/// and may itself trace (its spans are children of the current span).
///
/// ```
/// let _g = tomograph::span("work").start();
/// tomograph::tag_with(|| ("expensive", format!("{:?}", vec![1, 2, 3])));
/// ```
pub fn tag_with<K: Into<Text>, V: Into<TagValue>>(f: impl FnOnce() -> (K, V)) {
    let Some(id) = stack::current_recording_id() else {
        return;
    };
    // Computed outside the stack's borrow, so that what `f` traces is recorded.
    let (k, v) = f();
    stack::with_span(id, |span| span.tag(k, v));
}

/// The token of the current span, to continue the trace on another thread or in another
/// process; `None` when no trace is in progress. The seed's `get_trace_info`.
pub fn get_trace_info() -> Option<TraceToken> {
    stack::current_token()
}

/// Whether a trace is in progress here (a span is open, or this task continues a trace).
pub fn tracing_started() -> bool {
    stack::current_token().is_some()
}

/// Records a failure on the current span (`error` tag and note). Does nothing when no span is
/// recorded.
///
/// ```
/// let _g = tomograph::span("work").start();
/// tomograph::record_error("disk full");
/// ```
pub fn record_error(message: impl std::fmt::Display) {
    let Some(id) = stack::current_recording_id() else {
        return;
    };
    // Formatted outside the stack's borrow, so that what the message's `Display` traces is
    // recorded (and the error still lands on the span that was current).
    let message = message.to_string();
    stack::with_span(id, |span| span.record_error_message(message));
}

/// Number of frames on this thread's span stack; for tests of the stack's consistency.
#[doc(hidden)]
pub fn stack_depth() -> usize {
    stack::depth()
}
