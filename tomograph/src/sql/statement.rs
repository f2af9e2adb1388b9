//! [`SqlStatement`]: a statement's text processed once (operation, recorded text, the
//! interned template of its spans' tags), and the per-thread cache in front of it.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{
    MAX_SUMMARY_LEN, QueryText, SqlTracer, normalize, operation, recent, summarize, truncate,
};
use crate::keys;
use crate::model::intern;
use crate::model::{SpanTemplate, Text};

/// A statement's text, processed once: its operation, its query summary (the span name), the
/// text the policy records and the statement's tags, shared by all its spans. Adapters keep
/// one per prepared statement so repeated executions copy nothing.
#[derive(Debug, Clone)]
pub struct SqlStatement {
    pub(super) operation: &'static str,
    /// The span name: the query summary, else the operation, else the database's name.
    pub(super) summary: Text,
    pub(super) recorded: Option<Text>,
    /// Every tag of the statement's spans but their outcome (text, operation, summary, the
    /// database's tags) and the remote endpoint; `None` once the interning capacity is used
    /// up, then each span carries copies.
    pub(super) template: Option<&'static SpanTemplate>,
    /// The tags of the statement itself (text, operation, summary, collection), for spans
    /// that carry copies (only without a template: a clone then costs nothing).
    pub(super) own_tags: Option<Arc<[(&'static str, Text)]>>,
}

impl SqlStatement {
    /// The operation (`SELECT`, …).
    pub fn operation(&self) -> &'static str {
        self.operation
    }
    /// The name of the statement's spans: its query summary (`SELECT users`), or its
    /// operation, or the database's name when the text says neither.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Postgres).build();
    /// assert_eq!(db.statement("SELECT * FROM users WHERE id = $1").summary(), "SELECT users");
    /// assert_eq!(db.statement("LISTEN jobs").summary(), "LISTEN");
    /// assert_eq!(db.statement("frobnicate 42").summary(), "postgresql");
    /// ```
    pub fn summary(&self) -> &str {
        &self.summary
    }
    /// The text recorded on spans, if any.
    pub fn recorded_text(&self) -> Option<&str> {
        self.recorded.as_deref()
    }
}

thread_local! {
    /// The summary set by [`with_summary`] for the statements started in its scope.
    static SUMMARY: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Runs `f` with `summary` as the query summary (span name, `db.query.summary`) of every
/// statement started in it on this thread, instead of the one read from the text: for a
/// statement whose generated text says little, or to group several statements under one
/// name. Summaries should be few (they name metrics): each distinct one is kept for the
/// life of the process.
///
/// Statements start where the adapter calls into the driver: a rusqlite or diesel call inside
/// `f`. Async adapters (sqlx, diesel-async) start theirs when the statement's future is
/// polled: wrap that future with [`summarized`] instead.
///
/// ```
/// use tomograph::sql::{DbSystem, SqlTracer, with_summary};
/// let db = SqlTracer::builder(DbSystem::Sqlite).build();
/// let statement = with_summary("load cart", || db.statement("SELECT * FROM carts WHERE id = ?"));
/// assert_eq!(statement.summary(), "load cart");
/// assert_eq!(db.statement("SELECT * FROM carts WHERE id = ?").summary(), "SELECT carts");
/// ```
pub fn with_summary<R>(summary: &str, f: impl FnOnce() -> R) -> R {
    with_summary_static(interned_summary(summary), f)
}

fn with_summary_static<R>(summary: &'static str, f: impl FnOnce() -> R) -> R {
    let previous = SUMMARY.with(|s| s.replace(Some(summary)));
    struct Restore(Option<&'static str>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0;
            SUMMARY.with(|s| s.set(previous));
        }
    }
    let _restore = Restore(previous);
    f()
}

/// Polls `future` with `summary` as the query summary of every statement it starts (as
/// [`with_summary`] does for a closure): for async adapters, which start a statement when its
/// future is polled (`sqlx::query(..).fetch_one(&pool)`, diesel-async).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tomograph::sql::{DbSystem, SqlTracer, summarized};
/// let db = SqlTracer::builder(DbSystem::Postgres).build();
/// let named = summarized("load cart", async { db.statement("SELECT * FROM carts").summary().to_owned() });
/// assert_eq!(named.await, "load cart");
/// # });
/// ```
pub fn summarized<F: Future>(summary: &str, future: F) -> Summarized<F> {
    Summarized {
        inner: future,
        summary: interned_summary(summary),
    }
}

pin_project_lite::pin_project! {
    /// A future whose statements are named by one summary: see [`summarized`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Summarized<F> {
        #[pin]
        inner: F,
        summary: &'static str,
    }
}

impl<F: Future> Future for Summarized<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let summary = *this.summary;
        let inner = this.inner;
        with_summary_static(summary, || inner.poll(cx))
    }
}

/// The summary [`with_summary`] set on this thread, if any (adapters that start statements
/// later, elsewhere, capture it when the statement is issued).
pub fn summary_override() -> Option<&'static str> {
    SUMMARY.try_with(Cell::get).ok().flatten()
}

/// `summary` capped and interned (or leaked past the interning cap: summaries are few).
fn interned_summary(summary: &str) -> &'static str {
    let capped = truncate(summary, MAX_SUMMARY_LEN);
    intern::text(&capped).unwrap_or_else(|| Box::leak(capped.into_owned().into_boxed_str()))
}

impl SqlTracer {
    /// Processes `sql` once for repeated use (prepared statements). Statements seen
    /// recently on this thread come from a small per-thread cache. Inside
    /// [`with_summary`], the statement is named by that summary.
    pub fn statement(&self, sql: &str) -> SqlStatement {
        if let Some(summary) = summary_override() {
            return self.prepare(sql, Some(summary));
        }
        if let Some(known) = recent::get(self.inner.id, sql) {
            return known;
        }
        let statement = self.prepare(sql, None);
        recent::put(self.inner.id, sql, &statement);
        statement
    }

    /// Like [`statement`](Self::statement), named by `summary` instead of the summary read
    /// from the text (as [`with_summary`] does for a scope).
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::MySql).build();
    /// let statement = db.statement_with_summary("CALL refresh_totals()", "refresh totals");
    /// assert_eq!(statement.summary(), "refresh totals");
    /// ```
    pub fn statement_with_summary(&self, sql: &str, summary: &str) -> SqlStatement {
        self.prepare(sql, Some(interned_summary(summary)))
    }

    fn prepare(&self, sql: &str, summary: Option<&'static str>) -> SqlStatement {
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
        let read = summarize(sql, self.inner.dialect);
        let (summary, collection): (Text, Option<Text>) = match (summary, read) {
            (Some(summary), read) => (
                Text::from_static(summary),
                read.and_then(|r| r.collection().map(interned_text)),
            ),
            (None, Some(read)) => (
                interned_text(read.text()),
                read.collection().map(interned_text),
            ),
            (None, None) if operation != "SQL" => (Text::from_static(operation), None),
            (None, None) => (Text::from_static(self.inner.system.name()), None),
        };
        let mut own: Vec<(&'static str, Text)> = Vec::with_capacity(5);
        if let Some(text) = &recorded {
            own.push((keys::SQL_QUERY, text.clone()));
            own.push((keys::db::QUERY_TEXT, text.clone()));
        }
        own.push((keys::db::OPERATION_NAME, Text::from_static(operation)));
        own.push((keys::db::QUERY_SUMMARY, summary.clone()));
        if let Some(collection) = &collection {
            own.push((keys::db::COLLECTION_NAME, collection.clone()));
        }
        // Shared through one interned template when every value is interned.
        let statics: Option<Vec<(&'static str, &'static str)>> = own
            .iter()
            .map(|(k, v)| v.as_static().map(|v| (*k, v)))
            .collect();
        let template = statics.and_then(|statics| {
            self.inner
                .base
                .and_then(|base| intern::statement_template(base, &statics))
        });
        SqlStatement {
            operation,
            summary,
            recorded,
            template,
            own_tags: template.is_none().then(|| own.into()),
        }
    }
}

/// `text` interned, or shared past the interning cap.
fn interned_text(text: &str) -> Text {
    match intern::text(text) {
        Some(t) => Text::from_static(t),
        None => Text::from(Arc::<str>::from(text)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::Timestamp;
    use crate::model::{Endpoint, EndpointRef, Peer, RowCounts, Span, SpanId, Tag};
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
            .filter(|s| Some(s.trace_id()) == trace && s.name() == "SELECT template_test")
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
            "db.query.summary",
            "db.collection.name",
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
                span.tag_value("sql.query")
                    .map(ToString::to_string)
                    .as_deref(),
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
        // (the row count is interned: no tag vector either)
        assert!(statements[0].tags.is_empty());
        assert!(statements[1].tags.is_empty());
        assert_ne!(statements[1].row_counts, RowCounts::NONE);
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
        span.row_counts = RowCounts::new(Some(3), None).unwrap();
        let before: Vec<Tag> = span.tags().iter().cloned().collect();
        span.set_remote_endpoint(EndpointRef::Shared(Arc::new(Endpoint::new("proxy"))));
        let after: Vec<Tag> = span.tags().iter().cloned().collect();
        assert_eq!(before, after);
        let last: Vec<&str> = after.iter().rev().take(2).map(|t| t.key.as_str()).collect();
        assert_eq!(last, ["db.response.returned_rows", "mine"]);
        assert!(
            !span
                .tags
                .iter()
                .any(|t| t.key == "db.response.returned_rows")
        );
        assert_eq!(span.tag_value("db.response.returned_rows"), Some(&3.into()));
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
