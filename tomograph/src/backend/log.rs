//! One line per span through the `log` crate (target `tomograph`).

use std::fmt::Write as _;

use crate::backend::Backend;
use crate::error::BackendError;
use crate::model::Span;

/// Writes one `log` record per span, at `info` by default, target `tomograph`.
///
/// ```
/// use tomograph::{Config, LogBackend};
/// let config = Config::builder().backend(LogBackend::new().level(log::Level::Debug)).build();
/// ```
#[derive(Debug, Clone)]
pub struct LogBackend {
    level: log::Level,
}

impl LogBackend {
    /// A backend logging at `info`.
    pub fn new() -> Self {
        Self {
            level: log::Level::Info,
        }
    }

    /// The same backend logging at `level`.
    pub fn level(mut self, level: log::Level) -> Self {
        self.level = level;
        self
    }

    /// The line logged for `span`.
    ///
    /// ```
    /// use tomograph::{Endpoint, LogBackend, Span, SpanId, Timestamp, TraceId};
    /// let span = Span::new(TraceId::from_u64(1).unwrap(), SpanId::from_u64(2).unwrap(), "GET /", Endpoint::new("web"), Timestamp::from_unix_micros(0))
    ///     .with_tag("http.status_code", 200);
    /// assert_eq!(
    ///     LogBackend::format(&span),
    ///     "span trace=0000000000000001 id=0000000000000002 parent=- service=web name=\"GET /\" duration_us=0 http.status_code=200"
    /// );
    /// ```
    pub fn format(span: &Span) -> String {
        let mut line = format!(
            "span trace={} id={} parent={} service={} name={:?} duration_us={}",
            span.trace_id(),
            span.id(),
            span.parent_id()
                .map_or_else(|| "-".to_owned(), |p| p.to_string()),
            span.local_endpoint().service_name(),
            span.name(),
            span.duration().as_micros()
        );
        if let Some(kind) = span.kind() {
            let _ = write!(line, " kind={}", kind.as_str());
        }
        for note in span.annotations() {
            let _ = write!(line, " note={:?}", &*note.value);
        }
        for tag in span.tags() {
            let _ = write!(line, " {}={}", tag.key, tag.value);
        }
        line
    }
}

impl Default for LogBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl Backend for LogBackend {
    fn name(&self) -> &str {
        "log"
    }

    fn send(&mut self, spans: &[Span]) -> Result<(), BackendError> {
        if log::log_enabled!(target: "tomograph", self.level) {
            for span in spans {
                log::log!(target: "tomograph", self.level, "{}", Self::format(span));
            }
        }
        Ok(())
    }
}
