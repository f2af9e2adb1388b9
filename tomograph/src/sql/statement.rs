//! [`SqlStatement`]: a statement's text processed once (operation, recorded text, the
//! interned template of its spans' tags), and the per-thread cache in front of it.

use std::sync::Arc;

use super::{QueryText, SqlTracer, normalize, operation, recent, truncate};
use crate::model::{SpanTemplate, Text};
use crate::text::intern;

/// A statement's text, processed once: its operation, the text the policy records and the
/// statement's tags, shared by all its spans. Adapters keep one per prepared statement so
/// repeated executions copy nothing.
#[derive(Debug, Clone)]
pub struct SqlStatement {
    pub(super) operation: &'static str,
    pub(super) recorded: Option<Text>,
    /// Every tag of the statement's spans but their outcome (text, operation, the database's
    /// tags) and the remote endpoint; `None` once the interning capacity is used up, then
    /// each span carries copies.
    pub(super) template: Option<&'static SpanTemplate>,
}

impl SqlStatement {
    /// The operation (`SELECT`, …).
    pub fn operation(&self) -> &'static str {
        self.operation
    }
    /// The text recorded on spans, if any.
    pub fn recorded_text(&self) -> Option<&str> {
        self.recorded.as_deref()
    }
}

impl SqlTracer {
    /// Processes `sql` once for repeated use (prepared statements). Statements seen
    /// recently on this thread come from a small per-thread cache.
    pub fn statement(&self, sql: &str) -> SqlStatement {
        if let Some(known) = recent::get(self.inner.id, sql) {
            return known;
        }
        let statement = self.prepare(sql);
        recent::put(self.inner.id, sql, &statement);
        statement
    }

    fn prepare(&self, sql: &str) -> SqlStatement {
        let max = self.inner.max_query_len;
        let normalized;
        let text = match self.inner.query_text {
            QueryText::Off => None,
            QueryText::Raw => Some(truncate(sql, max)),
            QueryText::Normalized => {
                normalized = normalize(sql, self.inner.dialect);
                Some(truncate(&normalized, max))
            }
        };
        // Interned (or, past the interning cap, one `Arc<str>`): every span of this statement
        // shares the text without copying it or touching a reference count.
        let interned = text.as_deref().map(intern::text);
        let recorded = text.as_deref().map(|t| match interned.flatten() {
            Some(interned) => Text::from_static(interned),
            None => Text::from(Arc::<str>::from(t)),
        });
        let operation = operation(sql);
        let template = match interned {
            // Text past the interning cap: the spans carry copies.
            Some(None) => None,
            text => self
                .inner
                .base
                .and_then(|base| intern::statement_template(base, text.flatten(), operation)),
        };
        SqlStatement {
            operation,
            recorded,
            template,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::Timestamp;
    use crate::model::{Endpoint, EndpointRef, Peer, Span, SpanId, Tag};
    use crate::sql::DbSystem;

    #[test]
    fn statement_spans_share_their_tags_through_one_template() {
        let memory = crate::testing::memory_tracer();
        let db = SqlTracer::builder(DbSystem::Postgres)
            .server("127.0.0.1", Some(5432))
            .namespace("template_test")
            .build();
        let trace = {
            let _root = crate::span("template test").root().start();
            db.start("SELECT name FROM template_test").finish();
            db.start("SELECT name FROM template_test")
                .finish_with_rows(3);
            crate::get_trace_info().map(|t| t.trace_id())
        };
        crate::flush(Duration::from_secs(5)).expect("flushed");
        let statements: Vec<Span> = memory
            .spans()
            .into_iter()
            .filter(|s| Some(s.trace_id()) == trace && s.name() == "SELECT")
            .collect();
        assert_eq!(statements.len(), 2);
        let keys = |s: &Span| {
            s.tags()
                .iter()
                .map(|t| t.key.to_string())
                .collect::<Vec<_>>()
        };
        let shared = [
            "sql.query",
            "db.query.text",
            "db.operation.name",
            "db.system.name",
            "db.namespace",
            "server.address",
            "server.port",
        ];
        assert_eq!(keys(&statements[0]), shared);
        assert_eq!(
            keys(&statements[1]),
            shared
                .iter()
                .chain(&["db.response.returned_rows"])
                .copied()
                .collect::<Vec<_>>()
        );
        for span in &statements {
            assert_eq!(
                span.tag("sql.query").map(ToString::to_string).as_deref(),
                Some("SELECT name FROM template_test")
            );
            let remote = span.remote_endpoint().expect("the database");
            assert_eq!(
                (remote.service_name(), remote.port()),
                ("postgresql", Some(5432))
            );
        }
        // One template for both, and nothing copied into the spans but the outcome.
        let template = |s: &Span| match s.peer {
            Some(Peer::Template(t)) => std::ptr::from_ref(t),
            _ => std::ptr::null(),
        };
        assert!(!template(&statements[0]).is_null());
        assert_eq!(template(&statements[0]), template(&statements[1]));
        assert!(statements[0].tags.is_empty());
        assert_eq!(statements[1].tags.len(), 1);
    }

    #[test]
    fn a_span_given_its_own_remote_endpoint_keeps_its_templates_tags() {
        let db = SqlTracer::builder(DbSystem::MySql)
            .namespace("keep")
            .build();
        let template = db.statement("DELETE FROM keep").template.expect("interned");
        let mut span = Span::new(
            crate::TraceId::from_u64(1).unwrap(),
            SpanId::from_u64(1).unwrap(),
            "DELETE",
            Endpoint::new("svc"),
            Timestamp::now(),
        )
        .with_tag("mine", 1);
        span.peer = Some(Peer::Template(template));
        let before: Vec<Tag> = span.tags().iter().cloned().collect();
        span.set_remote_endpoint(EndpointRef::Shared(Arc::new(Endpoint::new("proxy"))));
        let after: Vec<Tag> = span.tags().iter().cloned().collect();
        assert_eq!(before, after);
        assert_eq!(after.last().map(|t| t.key.as_str()), Some("mine"));
        assert_eq!(
            span.remote_endpoint().map(Endpoint::service_name),
            Some("proxy")
        );
    }

    #[test]
    fn remembered_statements_belong_to_their_tracer() {
        let raw = SqlTracer::builder(DbSystem::Sqlite).build();
        let normalized = SqlTracer::builder(DbSystem::Sqlite)
            .query_text(QueryText::Normalized)
            .build();
        let sql = "SELECT * FROM remembered WHERE a = 5";
        for _ in 0..2 {
            assert_eq!(raw.statement(sql).recorded_text(), Some(sql));
            assert_eq!(
                normalized.statement(sql).recorded_text(),
                Some("SELECT * FROM remembered WHERE a = ?")
            );
        }
        let first = raw.statement(sql).template.map(std::ptr::from_ref);
        assert!(first.is_some());
        assert_eq!(first, raw.statement(sql).template.map(std::ptr::from_ref));
    }
}
