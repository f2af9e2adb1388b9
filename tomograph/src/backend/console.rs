//! A readable tree of each finished trace, for the quickstart and for debugging.
//!
//! Spans arrive as they finish, children before parents. The backend holds a trace's spans
//! until its local root finishes (a span with no parent, or whose parent is in another
//! process), then prints the tree. Flush prints what is still held.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use crate::backend::Backend;
use crate::error::BackendError;
use crate::keys;
use crate::model::{Span, SpanId, TraceId};

/// Spans held at most while waiting for their roots; past this the oldest trace is printed
/// as it stands.
const MAX_HELD_SPANS: usize = 10_000;

/// Prints each finished trace as a tree with durations, tags and notes.
///
/// ```
/// use tomograph::{ConsoleBackend, Backend, Endpoint, Span, SpanId, Timestamp, TraceId};
/// use std::time::Duration;
/// let t0 = Timestamp::from_unix_micros(1_000_000);
/// let trace = TraceId::from_u64(0xabc).unwrap();
/// let root = Span::new(trace, SpanId::from_u64(1).unwrap(), "request", Endpoint::new("web"), t0)
///     .with_end(t0 + Duration::from_millis(3));
/// let child = Span::new(trace, SpanId::from_u64(2).unwrap(), "SELECT", Endpoint::new("web"), t0)
///     .with_parent(root.id())
///     .with_end(t0 + Duration::from_micros(1500))
///     .with_tag("sql.query", "SELECT 1");
/// let text = ConsoleBackend::render(&[child, root]);
/// assert!(text.contains("└─ request  3.000 ms"));
/// assert!(text.contains("   └─ SELECT  1.500 ms"));
/// ```
pub struct ConsoleBackend {
    out: Box<dyn Write + Send>,
    held: HashMap<TraceId, Vec<Span>>,
    order: Vec<TraceId>,
    held_spans: usize,
}

impl std::fmt::Debug for ConsoleBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleBackend")
            .field("held_spans", &self.held_spans)
            .finish()
    }
}

impl ConsoleBackend {
    /// Prints to standard output.
    pub fn stdout() -> Self {
        Self::to_writer(std::io::stdout())
    }

    /// Prints to standard error.
    pub fn stderr() -> Self {
        Self::to_writer(std::io::stderr())
    }

    /// Prints to `out`.
    pub fn to_writer(out: impl Write + Send + 'static) -> Self {
        Self {
            out: Box::new(out),
            held: HashMap::new(),
            order: Vec::new(),
            held_spans: 0,
        }
    }

    /// The text printed for the spans of one trace: one tree per span whose parent is not
    /// among them.
    pub fn render(spans: &[Span]) -> String {
        let mut out = String::new();
        let Some(first) = spans.first() else {
            return out;
        };
        let ids: std::collections::HashSet<SpanId> = spans.iter().map(Span::id).collect();
        let mut children: HashMap<Option<SpanId>, Vec<&Span>> = HashMap::new();
        for span in spans {
            let parent = span.parent_id().filter(|p| ids.contains(p));
            children.entry(parent).or_default().push(span);
        }
        for list in children.values_mut() {
            list.sort_by_key(|s| s.start());
        }
        let roots = children.get(&None).cloned().unwrap_or_default();
        let total = roots.iter().map(|s| s.duration()).max().unwrap_or_default();
        let _ = writeln!(
            out,
            "trace {} · {} · {} span(s) · {}",
            first.trace_id(),
            roots
                .first()
                .map_or("?", |r| r.local_endpoint().service_name()),
            spans.len(),
            fmt_duration(total)
        );
        let count = roots.len();
        for (i, root) in roots.into_iter().enumerate() {
            render_node(&mut out, root, &children, "", i + 1 == count);
        }
        out
    }

    fn print(&mut self, spans: &[Span]) -> Result<(), BackendError> {
        let text = Self::render(spans);
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(BackendError::permanent)
    }

    fn release(&mut self, trace: TraceId) -> Option<Vec<Span>> {
        let spans = self.held.remove(&trace)?;
        self.order.retain(|t| *t != trace);
        self.held_spans -= spans.len();
        Some(spans)
    }
}

fn render_node(
    out: &mut String,
    span: &Span,
    children: &HashMap<Option<SpanId>, Vec<&Span>>,
    prefix: &str,
    last: bool,
) {
    let _ = write!(
        out,
        "{prefix}{} {}  {}",
        if last { "└─" } else { "├─" },
        span.name(),
        fmt_duration(span.duration())
    );
    let service = span.local_endpoint().service_name();
    match span.remote_endpoint() {
        Some(remote) => {
            let _ = write!(out, "  [{service} → {}]", remote.service_name());
        }
        None => {
            let _ = write!(out, "  [{service}]");
        }
    }
    if let Some(kind) = span.kind() {
        let _ = write!(out, " {}", kind.as_str().to_ascii_lowercase());
    }
    for tag in span.tags() {
        // The OpenTelemetry copy of the statement text repeats `sql.query` word for word:
        // the tree shows it once.
        if &*tag.key == keys::db::QUERY_TEXT && span.tag_value(keys::SQL_QUERY) == Some(&tag.value)
        {
            continue;
        }
        let _ = write!(out, "  {}={:?}", tag.key, tag.value.to_string());
    }
    out.push('\n');
    let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
    for note in span.annotations() {
        let at = note.timestamp.saturating_duration_since(span.start());
        let _ = writeln!(
            out,
            "{child_prefix}• {} at +{}",
            note.value,
            fmt_duration(at)
        );
    }
    if let Some(kids) = children.get(&Some(span.id())) {
        let n = kids.len();
        for (i, kid) in kids.iter().enumerate() {
            render_node(out, kid, children, &child_prefix, i + 1 == n);
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

impl Backend for ConsoleBackend {
    fn name(&self) -> &str {
        "console"
    }

    fn send(&mut self, spans: &[Span]) -> Result<(), BackendError> {
        let mut ready = Vec::new();
        for span in spans {
            let trace = span.trace_id();
            let local_root = span.parent_id().is_none() || span.has_remote_parent();
            let held = self.held.entry(trace).or_insert_with(|| {
                self.order.push(trace);
                Vec::new()
            });
            held.push(span.clone());
            self.held_spans += 1;
            if local_root {
                ready.push(trace);
            }
        }
        for trace in ready {
            if let Some(spans) = self.release(trace) {
                self.print(&spans)?;
            }
        }
        while self.held_spans > MAX_HELD_SPANS {
            let Some(&oldest) = self.order.first() else {
                break;
            };
            if let Some(spans) = self.release(oldest) {
                self.print(&spans)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        for trace in self.order.clone() {
            if let Some(spans) = self.release(trace) {
                self.print(&spans)?;
            }
        }
        Ok(())
    }
}
