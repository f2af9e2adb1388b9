//! Transaction spans: a span `TRANSACTION` around a transaction's statements.

use super::{SqlMode, SqlTracer};
use crate::api::{self, DetachedSpan};
use crate::context::token::TraceToken;

impl SqlTracer {
    /// Starts a span `TRANSACTION` that is current until the returned guard drops, so the
    /// statements of the transaction (`BEGIN`, …, `COMMIT`) become its children. It carries
    /// the database's tags (`db.system.name`, `db.namespace`, `server.*`); adapters add the
    /// outcome. A guard that holds nothing when [`would_trace`](Self::would_trace) is false
    /// or in [`SqlMode::Annotations`] (there, only the statements' notes appear).
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Sqlite).build();
    /// let _request = tomograph::span("request").start();
    /// let transaction = db.start_transaction();
    /// db.start("BEGIN").finish();
    /// db.start("COMMIT").finish();
    /// transaction.tag("db.transaction.outcome", "commit");
    /// ```
    pub fn start_transaction(&self) -> api::SpanGuard {
        if self.inner.mode != SqlMode::Spans || !self.would_trace() {
            return api::SpanGuard::none();
        }
        // With no current span (only under `trace_roots`) the builder starts a new trace.
        self.with_fixed_tags(api::span("TRANSACTION")).start()
    }

    /// Like [`start_transaction`](Self::start_transaction) for async adapters, whose
    /// transactions outlive a poll and move between threads: the span is owned by the returned
    /// [`DetachedSpan`] instead of being made current, and is a child of `parent` (the context
    /// captured when the transaction was requested) — or, when `parent` is `None`, the root of
    /// a new trace if `trace_roots` is set. The transaction's statements become its children
    /// through [`start_child_of`](Self::start_child_of) with its token. Records nothing when
    /// tracing is off or in [`SqlMode::Annotations`].
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Sqlite).build();
    /// let _request = tomograph::span("request").start();
    /// let mut transaction = db.start_transaction_detached(tomograph::get_trace_info());
    /// if let Some(parent) = transaction.token() {
    ///     db.start_child_of("BEGIN", parent).finish();
    ///     db.start_child_of("COMMIT", parent).finish();
    /// }
    /// transaction.tag("db.transaction.outcome", "commit");
    /// ```
    pub fn start_transaction_detached(&self, parent: Option<TraceToken>) -> DetachedSpan {
        if self.inner.mode != SqlMode::Spans || !self.switched_on() {
            return DetachedSpan::none();
        }
        let builder = match parent {
            Some(parent) => api::span("TRANSACTION").child_of(parent),
            None if self.inner.trace_roots => api::span("TRANSACTION").root(),
            None => return DetachedSpan::none(),
        };
        self.with_fixed_tags(builder).start_detached()
    }

    /// `builder` with the database's tags (`db.system.name`, `db.namespace`, `server.*`).
    pub(super) fn with_fixed_tags(&self, mut builder: api::SpanBuilder) -> api::SpanBuilder {
        for tag in &self.inner.fixed_tags {
            builder = builder.tag(tag.key.clone(), tag.value.clone());
        }
        builder
    }
}
