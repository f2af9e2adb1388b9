//! Slow statements: a statement that ran longer than the tracer's threshold
//! ([`SqlTracerBuilder::slow_threshold`](super::SqlTracerBuilder::slow_threshold)) is
//! reported whether its trace is sampled or not — those are the ones a user needs to see:
//!
//! - its span (when recorded) gets the tag `db.slow = true` and a note `slow statement`;
//! - one `log::warn!` names it: database, duration, summary and the text as the recording
//!   policy allows (normalized, raw or none);
//! - with a statsd backend, the counter `db.{system}.slow` (and
//!   `db.{system}.slow.{summary}`) goes up by one, sent at once.

use std::time::Duration;

use super::SqlSpan;
use super::span::State;
use crate::keys;

/// Reports `span`'s statement as slow (it ran `elapsed`).
pub(super) fn report(span: &mut SqlSpan<'_>, elapsed: Duration) {
    if let State::Span(recorded) = &mut span.state {
        recorded.tag(keys::db::SLOW, true);
        recorded.annotate("slow statement");
    }
    let system = span.tracer.system().name();
    let summary = span
        .statement
        .as_ref()
        .map_or(system, |statement| statement.get().summary());
    let text = span
        .statement
        .as_ref()
        .and_then(|statement| statement.get().recorded_text())
        .unwrap_or("(text not recorded)");
    log::warn!(
        "tomograph: slow statement on {system} ({:.3} ms): {summary}: {text}",
        elapsed.as_secs_f64() * 1000.0
    );
    count(system, summary);
}

#[cfg(feature = "statsd")]
fn count(system: &str, summary: &str) {
    use crate::backend::statsd::sanitize;
    if !crate::backend::metrics::is_on() {
        return;
    }
    let system = sanitize(system);
    let total = format!("db.{system}.slow");
    let by_summary = format!("{total}.{}", sanitize(&summary.replace('.', "-")));
    crate::backend::metrics::send(&[(&total, "1|c"), (&by_summary, "1|c")]);
}

#[cfg(not(feature = "statsd"))]
fn count(_system: &str, _summary: &str) {}
