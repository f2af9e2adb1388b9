//! What a tracer records and how: the text policy, spans or notes, the caps.

/// What a span records of the statement's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QueryText {
    /// The text as written (the default). Bound parameters are placeholders in it, so their
    /// values are not recorded.
    #[default]
    Raw,
    /// Literals replaced by `?` ([`normalize`](super::normalize), in the database's [`Dialect`](super::Dialect)), for
    /// statements built with inline values.
    Normalized,
    /// No text; the span name still gives the operation.
    Off,
}

/// How statements appear in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SqlMode {
    /// A child span per statement (the default).
    #[default]
    Spans,
    /// Notes on the current span instead (the original's `db_trace_as_spans = False`):
    /// `sql SELECT` when the statement starts, `sql SELECT done` (with its duration) or
    /// `sql SELECT error` when it ends, and the text as a `sql.query` tag.
    Annotations,
}

/// Default cap on recorded statement text, in bytes.
pub const DEFAULT_MAX_QUERY_LEN: usize = 4096;

/// Longest recorded bound value, in bytes (longer ones are cut and end with `…`).
pub const MAX_PARAMETER_LEN: usize = 256;

/// Bound values recorded per statement at most; the number of the others is the tag
/// `db.query.parameters.omitted`.
pub const MAX_PARAMETERS: usize = 64;
