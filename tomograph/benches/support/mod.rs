//! What the core's benches share.

use std::time::Duration;

use tomograph::{Endpoint, Kind, Span, SpanId, Timestamp, TraceId};

/// A SQL client span as the adapters make it, finished 120 µs after it started: three tags,
/// one of them the statement (owned).
pub fn typical_span(service: &str, trace: TraceId, parent: Option<SpanId>) -> Span {
    let t0 = Timestamp::now();
    let span = Span::new(
        trace,
        SpanId::random(),
        "SELECT",
        Endpoint::new(service.to_owned()).with_ip("10.0.0.1".parse().expect("ip")),
        t0,
    )
    .with_kind(Kind::Client)
    .with_end(t0 + Duration::from_micros(120))
    .with_tag(
        "sql.query",
        String::from("SELECT id, name FROM users WHERE id = ?"),
    )
    .with_tag("db.system.name", "postgresql")
    .with_tag("server.port", 5432);
    match parent {
        Some(p) => span.with_parent(p),
        None => span,
    }
}
