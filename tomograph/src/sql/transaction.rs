//! Transaction spans: one schema for every adapter ([`SqlTransaction`]), built here.

use std::error::Error;

use super::{SqlMode, SqlTracer};
use crate::handle::{self as api, DetachedSpan};
use crate::keys;
use crate::model::TraceToken;

/// How a transaction ended (`db.transaction.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransactionOutcome {
    /// Committed (a savepoint: released).
    Commit,
    /// Rolled back (a savepoint: rolled back to), by the application, on drop, or by the
    /// database after a failed commit.
    Rollback,
    /// Never began: `BEGIN` (or `SAVEPOINT`) failed.
    Failed,
}

impl TransactionOutcome {
    /// The tag value: `commit`, `rollback`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionOutcome::Commit => "commit",
            TransactionOutcome::Rollback => "rollback",
            TransactionOutcome::Failed => "failed",
        }
    }
}

/// A transaction's span, built the same way for every adapter: see
/// below for its tags. Made by [`SqlTracer::begin_transaction`] (current while
/// open: for synchronous adapters, whose statements then nest under it by themselves) or
/// [`SqlTracer::begin_transaction_under`] (owned: statements start under
/// [`statement_parent`](Self::statement_parent)). Records nothing when tracing is off, the
/// trace is not sampled, or in [`SqlMode::Annotations`].
///
/// ```
/// use tomograph::sql::{DbSystem, SqlTracer, TransactionOutcome};
/// let memory = tomograph::testing::memory_tracer();
/// let db = SqlTracer::builder(DbSystem::Sqlite).build();
/// let trace = {
///     let request = tomograph::span("request").root().start();
///     let mut transaction = db.begin_transaction(1);
///     db.start("BEGIN").finish();
///     db.start("INSERT INTO t VALUES (1)").finish();
///     db.start("COMMIT").finish();
///     transaction.end(TransactionOutcome::Commit);
///     request.token().unwrap().trace_id()
/// };
/// let spans = tomograph::testing::wait_for_trace(&memory, trace, 5, std::time::Duration::from_secs(5));
/// let transaction = spans.iter().find(|s| s.name() == "TRANSACTION").unwrap();
/// assert_eq!(transaction.tag_value("db.transaction.outcome").unwrap().to_string(), "commit");
/// assert_eq!(transaction.tag_value("db.transaction.depth").unwrap().to_string(), "1");
/// ```
///
/// A transaction — or a savepoint inside one — is a span `TRANSACTION` around its
/// statements (`BEGIN`, the statements, `COMMIT` or `ROLLBACK`), tagged:
///
/// | tag | value |
/// |---|---|
/// | `db.system.name`, `db.namespace`, `server.*` | the database's |
/// | `db.transaction.depth` | 1 for a transaction, 2 and up for savepoints (nested transactions) |
/// | `db.transaction.outcome` | `commit`, `rollback`, or `failed` (it never began) |
/// | `db.transaction.behavior` | how it takes its locks, where the adapter knows (SQLite's `deferred`, `immediate`, `exclusive`) |
/// | `error`, `error.type`, `db.response.status_code` | when `BEGIN`, `COMMIT` or `ROLLBACK` failed |
///
/// and a note `commit` or `rollback` when it ends.
#[derive(Debug)]
#[must_use = "end() the transaction with its outcome"]
pub struct SqlTransaction {
    tracer: SqlTracer,
    span: DetachedSpan,
    /// Made the current context on this thread (by `begin_transaction`) until dropped.
    entered: bool,
    parent: Option<TraceToken>,
    depth: u32,
    outcome: Option<TransactionOutcome>,
}

impl Drop for SqlTransaction {
    fn drop(&mut self) {
        if self.entered {
            self.span.exit_context();
        }
    }
}

impl SqlTransaction {
    /// 1 for a transaction, 2 and up for savepoints.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Whether the span is recorded.
    pub fn is_recording(&self) -> bool {
        self.span.is_recording()
    }

    /// The transaction span's token, when it is recorded.
    pub fn token(&self) -> Option<TraceToken> {
        self.span.token().filter(|_| self.span.is_recording())
    }

    /// Where the transaction's statements belong: its span, or the context it was begun in
    /// when its span is not recorded (annotation mode).
    pub fn statement_parent(&self) -> Option<TraceToken> {
        self.token().or(self.parent)
    }

    /// The outcome, once [`end`](Self::end) was called.
    pub fn outcome(&self) -> Option<TransactionOutcome> {
        self.outcome
    }

    /// How the transaction takes its locks (`db.transaction.behavior`: SQLite's `deferred`,
    /// `immediate`, `exclusive`).
    pub fn behavior(&mut self, behavior: &'static str) {
        self.tag(keys::db::TRANSACTION_BEHAVIOR, behavior);
    }

    /// `BEGIN`, `COMMIT` or `ROLLBACK` failed: the span gets `error` (the message, as
    /// [`SqlTracer::error_message`] records it), `error.type` (`error_type`, else `code`,
    /// else `_OTHER`) and `db.response.status_code`. The transaction is not ended.
    pub fn fail(
        &mut self,
        error: &(dyn Error + 'static),
        code: Option<&str>,
        error_type: Option<&str>,
    ) {
        let message = self.tracer.error_message(error);
        self.span.record_error(message);
        if let Some(code) = code {
            self.tag(keys::db::RESPONSE_STATUS_CODE, code.to_owned());
        }
        let error_type = error_type.or(code).unwrap_or(keys::ERROR_TYPE_OTHER);
        self.tag(keys::ERROR_TYPE, error_type.to_owned());
    }

    /// The transaction ended with `outcome`: the tag `db.transaction.outcome` and, for a
    /// commit or a rollback, a note saying so. Only the first call counts; the span itself
    /// ends when this is dropped.
    pub fn end(&mut self, outcome: TransactionOutcome) {
        if self.outcome.is_some() {
            return;
        }
        self.outcome = Some(outcome);
        if outcome != TransactionOutcome::Failed {
            self.span.annotate(outcome.as_str());
        }
        self.tag(keys::db::TRANSACTION_OUTCOME, outcome.as_str());
    }

    fn tag(&mut self, key: &'static str, value: impl Into<crate::model::TagValue>) {
        self.span.tag(key, value);
    }
}

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

    /// Begins the span of a transaction (`depth` 1) or savepoint (2 and up), current on
    /// this thread until the returned [`SqlTransaction`] drops, so the statements run in
    /// it become its children: for synchronous adapters. Recorded when a statement started
    /// now would be ([`would_trace`](Self::would_trace)) and in [`SqlMode::Spans`].
    pub fn begin_transaction(&self, depth: u32) -> SqlTransaction {
        let parent = crate::context::stack::current_token();
        if self.inner.mode != SqlMode::Spans || !self.would_trace() {
            let mut untraced = self.untraced_transaction(depth);
            untraced.parent = parent;
            return untraced;
        }
        // With no current span (only under `trace_roots`) the root of a new trace.
        let mut transaction = self.begin_transaction_under(parent, depth);
        transaction.span.enter_context();
        transaction.entered = true;
        transaction
    }

    /// Begins the span of a transaction (`depth` 1) or savepoint (2 and up) as a child of
    /// `parent` — the context captured when the transaction was requested, or the span of
    /// the enclosing transaction — owned by the returned [`SqlTransaction`] rather than made
    /// current: for adapters whose transactions outlive a poll or are seen through events.
    /// With no `parent`, the root of a new trace under `trace_roots`, else not recorded.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer, TransactionOutcome};
    /// let db = SqlTracer::builder(DbSystem::Postgres).build();
    /// let request = tomograph::span("request").start_detached();
    /// let mut transaction = db.begin_transaction_under(request.token(), 1);
    /// db.start_under("BEGIN", transaction.statement_parent()).finish();
    /// db.start_under("ROLLBACK", transaction.statement_parent()).finish();
    /// transaction.end(TransactionOutcome::Rollback);
    /// ```
    pub fn begin_transaction_under(
        &self,
        parent: Option<TraceToken>,
        depth: u32,
    ) -> SqlTransaction {
        let mut span = self.start_transaction_detached(parent);
        span.tag(crate::keys::db::TRANSACTION_DEPTH, i64::from(depth));
        SqlTransaction {
            tracer: self.clone(),
            span,
            entered: false,
            parent,
            depth,
            outcome: None,
        }
    }

    /// A transaction (or savepoint) the adapter does not trace: records nothing, keeps its
    /// depth and outcome for the adapter's bookkeeping.
    pub fn untraced_transaction(&self, depth: u32) -> SqlTransaction {
        SqlTransaction {
            tracer: self.clone(),
            span: DetachedSpan::none(),
            entered: false,
            parent: None,
            depth,
            outcome: None,
        }
    }

    /// `builder` with the database's tags (`db.system.name`, `db.namespace`, `server.*`).
    pub(super) fn with_fixed_tags(&self, mut builder: api::SpanBuilder) -> api::SpanBuilder {
        for tag in &self.inner.fixed_tags {
            builder = builder.tag(tag.key.clone(), tag.value.clone());
        }
        builder
    }
}
