//! What `tracing` fields become: typed tags on a span, text in a note, and the conventional
//! fields (`otel.name`, `otel.kind`, `span.kind`, `error`, `otel.status_code`) that change the
//! span itself.

use std::fmt::{self, Write as _};

use tomograph::{DetachedSpan, Kind};
use tracing_core::field::{Field, Visit};

/// Fields whose value is the span's name, not a tag.
const OTEL_NAME: &str = "otel.name";
/// Fields whose value is the span's kind, not a tag.
const KIND_FIELDS: [&str; 2] = ["otel.kind", "span.kind"];
/// A field that marks the span as failed (its value is the message).
const ERROR: &str = "error";
/// OpenTelemetry's status: `ERROR` marks the span as failed.
const OTEL_STATUS_CODE: &str = "otel.status_code";

/// The kind a `otel.kind` / `span.kind` value names (any case: `server`, `SERVER`, …).
pub(crate) fn parse_kind(value: &str) -> Option<Kind> {
    let kinds = [
        ("client", Kind::Client),
        ("server", Kind::Server),
        ("producer", Kind::Producer),
        ("consumer", Kind::Consumer),
    ];
    kinds
        .into_iter()
        .find(|(name, _)| value.eq_ignore_ascii_case(name))
        .map(|(_, kind)| kind)
}

/// Whether a span's field set names its kind (checked before the span starts, which is the
/// only time its kind can be set).
pub(crate) fn names_kind(fields: &tracing_core::field::FieldSet) -> bool {
    fields.iter().any(|f| KIND_FIELDS.contains(&f.name()))
}

/// Finds the kind among a span's fields.
#[derive(Default)]
pub(crate) struct KindFinder(pub(crate) Option<Kind>);

impl Visit for KindFinder {
    fn record_str(&mut self, field: &Field, value: &str) {
        if KIND_FIELDS.contains(&field.name()) {
            self.0 = parse_kind(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if KIND_FIELDS.contains(&field.name()) {
            self.0 = parse_kind(format!("{value:?}").trim_matches('"'));
        }
    }
}

/// Records a span's fields on its tomograph span: each field a tag of the same type
/// (integers, floats, booleans, text; anything else its `Debug` text).
pub(crate) struct SpanFields<'a>(pub(crate) &'a mut DetachedSpan);

impl SpanFields<'_> {
    fn text(&mut self, field: &Field, value: String) {
        let name = field.name();
        if name == OTEL_NAME {
            self.0.set_name(value);
        } else if KIND_FIELDS.contains(&name) {
            // Set at start; a kind recorded later cannot change it.
        } else if name == ERROR {
            self.0.record_error(value);
        } else if name == OTEL_STATUS_CODE {
            if value.eq_ignore_ascii_case("error") {
                self.0.record_error("ERROR");
            }
            self.0.tag(name, value);
        } else {
            self.0.tag(name, value);
        }
    }
}

impl Visit for SpanFields<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.tag(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.tag(field.name(), value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.tag(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == ERROR {
            if value {
                self.0.record_error("true");
            }
            return;
        }
        self.0.tag(field.name(), value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }
}

/// Writes an event as the text of one note: `LEVEL message key=value …` (text values
/// quoted), or `LEVEL target key=value …` when it has no message.
pub(crate) struct NoteText {
    /// ` key=value` for each field but the message.
    fields: String,
    message: Option<String>,
}

impl NoteText {
    pub(crate) fn new() -> Self {
        Self {
            fields: String::new(),
            message: None,
        }
    }

    /// The note: level, message (or target) and fields; and the message alone, for the
    /// `error` tag of an ERROR event.
    pub(crate) fn finish(self, level: &tracing_core::Level, target: &str) -> (String, String) {
        let head = self.message.unwrap_or_else(|| target.to_owned());
        let text = format!("{level} {head}{}", self.fields);
        (text, head)
    }

    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let _ = write!(self.fields, " {}={value}", field.name());
    }
}

impl Visit for NoteText {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, format_args!("{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, format_args!("{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.field(field, format_args!("{:?}", value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_in_any_case() {
        assert_eq!(parse_kind("server"), Some(Kind::Server));
        assert_eq!(parse_kind("CLIENT"), Some(Kind::Client));
        assert_eq!(parse_kind("Producer"), Some(Kind::Producer));
        assert_eq!(parse_kind("consumer"), Some(Kind::Consumer));
        assert_eq!(parse_kind("internal"), None);
    }
}
