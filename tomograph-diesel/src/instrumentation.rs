//! The [`Instrumentation`] that turns diesel's connection events into spans.
//!
//! | diesel event | in the trace |
//! |---|---|
//! | `StartQuery` … `FinishQuery` | a CLIENT span per statement ([`tomograph::sql`]), `error.type` and the `on_error` hooks on failure |
//! | `CacheQuery` | a note `statement cached` on the statement's span (first execution of a prepared statement) |
//! | `BeginTransaction` … `CommitTransaction` / `RollbackTransaction` | a span `TRANSACTION` around its statements (nested ones, savepoints, inside it), tagged `db.transaction.depth` and `db.transaction.outcome` |
//! | `StartEstablishConnection` … `FinishEstablishConnection` | a CLIENT span `connect`, with the error when it fails |

use std::time::Duration;

use diesel::connection::{DebugQuery, Instrumentation, InstrumentationEvent};
use diesel::result::{ConnectionError, DatabaseErrorKind, Error};
use tomograph::keys;
use tomograph::sql::{SqlMode, SqlTransaction, TransactionOutcome};
use tomograph::{DetachedSpan, Kind, SpanId, TraceToken};

use crate::in_flight::InFlight;
use crate::last_statement::LastStatement;
use crate::query;
use crate::tracer::DieselTracer;

/// diesel [`Instrumentation`] for one connection: every statement becomes a span, child of
/// the current span (or of the open transaction's span). Made by
/// [`DieselTracer::instrumentation`]; set it with `Connection::set_instrumentation`, or let
/// [`DieselTracer::instrument`], [`DieselTracer::install_default`], the r2d2 customizer or
/// the diesel-async managers do it.
///
/// diesel calls it in the thread (or the future) running the statement, so statements
/// parent to the span current there. In async code that is the task's context: wrap the
/// future with [`tomograph::FutureExt`] (`in_current_trace`, `traced`) so the context
/// follows it across `.await`.
///
/// Statements on a connection finish in the order they started (diesel-async's pipelined
/// PostgreSQL queries included): finishes are matched to starts first-in, first-out.
#[derive(Debug)]
pub struct TracingInstrumentation {
    config: DieselTracer,
    /// Statements started and not yet finished. (Their spans are owned: they sit beside the
    /// tracer they would borrow.)
    statements: InFlight,
    transactions: Vec<Transaction>,
    connect: Option<DetachedSpan>,
    /// How long the pool made the task wait for this connection, for its next statement
    /// (diesel-async pools: [`crate::asynchronous::TracedGet`]).
    pending_wait: Option<Duration>,
    /// Where each statement's text is written (kept: reading a statement allocates nothing).
    text: String,
    /// The statement started last, recognised by its text when it comes again.
    last: LastStatement,
}

#[derive(Debug)]
struct Transaction {
    /// The span current when it began: statements run under that span belong to it.
    outer: Option<SpanId>,
    /// Its `TRANSACTION` span, built by [`tomograph::sql`] (one schema for every adapter).
    span: SqlTransaction,
    state: TxState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    /// `BEGIN` / `SAVEPOINT` is running.
    Beginning,
    Open,
    /// `COMMIT` / `RELEASE` or `ROLLBACK` is running.
    Ending(TransactionOutcome),
    /// `COMMIT` failed: diesel may roll back next (then the `ROLLBACK` belongs here), or the
    /// transaction is already over.
    CommitFailed,
}

impl TracingInstrumentation {
    pub(crate) fn new(config: DieselTracer) -> Self {
        Self {
            config,
            statements: InFlight::default(),
            transactions: Vec::new(),
            connect: None,
            pending_wait: None,
            text: String::new(),
            last: LastStatement::default(),
        }
    }

    /// The configuration it traces with.
    pub fn tracer(&self) -> &DieselTracer {
        &self.config
    }

    /// The connection was lent by a pool after a wait of `wait`: the next statement on it
    /// takes it, and its span (when recorded) is tagged `db.client.connection.wait_time_us`.
    /// The next statement, recorded or not, takes it, so that a wait never reaches the next
    /// borrower of the connection (whose pool's health check, a statement too, takes what the
    /// previous one left). Pools with an event hook set it through tomograph; for diesel-async
    /// pools, [`TracedGet`](crate::asynchronous::TracedGet) does.
    pub fn set_pending_wait(&mut self, wait: Duration) {
        self.pending_wait = Some(wait);
    }

    fn query_started(&mut self, query: &dyn DebugQuery) {
        let waited = self.pending_wait.take();
        let sql = &self.config.sql;
        let parent = self.transaction_parent();
        let traced = match parent {
            Some(_) => sql.is_enabled(),
            None => sql.would_trace(),
        };
        let span = if traced {
            let (text, binds) = if sql.records_parameters() {
                let (text, binds) = query::sql_and_binds(query);
                self.text = text;
                (self.text.as_str(), binds)
            } else {
                (query::sql_of(query, &mut self.text), None)
            };
            if !self.config.health_checks && is_health_check(text) {
                None
            } else {
                let statement = self.last.statement(sql, text);
                // In the open transaction, or where the statement runs.
                let mut span = sql.start_statement_under_owned(
                    &statement,
                    parent.or_else(tomograph::get_trace_info),
                );
                if let Some(binds) = binds {
                    span.parameters(|| query::bind_values(&binds));
                }
                if let Some(waited) = waited {
                    span.connection_wait(waited);
                }
                Some(span)
            }
        } else if sql.watches_slow() {
            // Timed only: the text is read at the end, if the statement was slow.
            Some(sql.start_timer().into_owned())
        } else {
            None
        };
        self.statements.push(span);
    }

    fn query_cached(&mut self) {
        if let Some(span) = self.statements.newest_mut() {
            span.annotate("statement cached");
        }
    }

    fn query_finished(&mut self, query: &dyn DebugQuery, error: Option<&Error>) {
        if let Some(span) = self.statements.oldest_mut()
            && span.needs_statement()
        {
            let text = query::sql_of(query, &mut self.text);
            if !self.config.health_checks && is_health_check(text) {
                // A health check, not traced: ended as it stands, without its text.
                self.statements.take_oldest();
                return self.transaction_statement_finished(error);
            }
            span.set_statement(text);
        }
        match error {
            // Ended where it sits.
            None => self.statements.end_oldest(),
            Some(error) => {
                let text = query::sql_of(query, &mut self.text);
                let span = self
                    .statements
                    .take_oldest()
                    .unwrap_or_else(|| self.config.sql.untraced());
                // diesel exposes no SQLSTATE or error number: `error.type` is its kind.
                span.fail_as(text, error, None, Some(error_type(error)));
            }
        }
        self.transaction_statement_finished(error);
    }

    /// The span of the open transaction, when statements run now belong to it.
    fn transaction_parent(&self) -> Option<TraceToken> {
        let top = self.transactions.last()?;
        let token = top.span.token()?;
        let current = tomograph::get_trace_info().map(|t| t.span_id());
        (current == top.outer).then_some(token)
    }

    fn transaction_begun(&mut self, depth: u32) {
        self.close_transactions_deeper_than(depth.saturating_sub(1));
        let outer = tomograph::get_trace_info().map(|t| t.span_id());
        let span = self.transaction_span(depth);
        self.transactions.push(Transaction {
            outer,
            span,
            state: TxState::Beginning,
        });
    }

    fn transaction_span(&self, depth: u32) -> SqlTransaction {
        let sql = &self.config.sql;
        if !self.config.transactions {
            return sql.untraced_transaction(depth);
        }
        match self.transaction_parent() {
            Some(parent) => sql.begin_transaction_under(Some(parent), depth),
            None if sql.would_trace() => {
                sql.begin_transaction_under(tomograph::get_trace_info(), depth)
            }
            None => sql.untraced_transaction(depth),
        }
    }

    fn transaction_ending(&mut self, depth: u32, outcome: TransactionOutcome) {
        self.close_transactions_deeper_than(depth);
        if let Some(top) = self.transactions.last_mut()
            && top.span.depth() == depth
        {
            top.state = TxState::Ending(outcome);
        }
    }

    fn transaction_statement_finished(&mut self, error: Option<&Error>) {
        let Some(top) = self.transactions.last_mut() else {
            return;
        };
        match (top.state, error) {
            (TxState::Open | TxState::CommitFailed, _) => {}
            (TxState::Beginning, None) => top.state = TxState::Open,
            (TxState::Ending(TransactionOutcome::Commit), Some(error)) if top.span.depth() == 1 => {
                // diesel rolls back after a failed top-level COMMIT when the transaction is
                // still open; keep the span for that ROLLBACK.
                top.span.fail(error, None, Some(error_type(error)));
                top.state = TxState::CommitFailed;
            }
            (TxState::Beginning | TxState::Ending(_), _) => {
                if let Some(error) = error {
                    top.span.fail(error, None, Some(error_type(error)));
                }
                match top.state {
                    TxState::Ending(outcome) => top.span.end(outcome),
                    // BEGIN (or SAVEPOINT) failed: the transaction never began.
                    _ => top.span.end(TransactionOutcome::Failed),
                }
                self.transactions.pop();
            }
        }
    }

    /// After a failed COMMIT, anything but diesel's ROLLBACK means the transaction is over.
    fn settle_failed_commit(&mut self, event: &InstrumentationEvent<'_>) {
        if self
            .transactions
            .last()
            .is_some_and(|t| t.state == TxState::CommitFailed)
            && !matches!(event, InstrumentationEvent::RollbackTransaction { .. })
            && let Some(mut tx) = self.transactions.pop()
        {
            // The database ended it: a failed COMMIT commits nothing.
            tx.span.end(TransactionOutcome::Rollback);
        }
    }

    /// Ends transactions diesel has left (a failed savepoint release, a connection reused
    /// after a broken transaction).
    fn close_transactions_deeper_than(&mut self, depth: u32) {
        while self
            .transactions
            .last()
            .is_some_and(|t| t.span.depth() > depth)
        {
            self.transactions.pop();
        }
    }

    fn connect_started(&mut self) {
        let sql = &self.config.sql;
        if !self.config.connections {
            return;
        }
        match sql.mode() {
            SqlMode::Spans if sql.would_trace() => {
                self.connect = Some(
                    tomograph::span("connect")
                        .kind(Kind::Client)
                        .remote_endpoint(sql.remote_endpoint().clone())
                        .tag(keys::db::SYSTEM_NAME, sql.system().name())
                        .start_detached(),
                );
            }
            SqlMode::Annotations if sql.is_enabled() => tomograph::annotate("db connect"),
            _ => {}
        }
    }

    fn connect_finished(&mut self, error: Option<&ConnectionError>) {
        if !self.config.connections {
            return;
        }
        match (self.connect.take(), self.config.sql.mode()) {
            (Some(mut span), _) => {
                if let Some(error) = error {
                    span.record_error(self.config.sql.error_message(error));
                    span.tag(keys::ERROR_TYPE, connection_error_type(error));
                }
            }
            (None, SqlMode::Annotations) if self.config.sql.is_enabled() => match error {
                None => tomograph::annotate("db connect done"),
                Some(error) => {
                    tomograph::annotate("db connect error");
                    tomograph::record_error(self.config.sql.error_message(error));
                }
            },
            (None, _) => {}
        }
    }
}

impl Instrumentation for TracingInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        self.settle_failed_commit(&event);
        match event {
            InstrumentationEvent::StartQuery { query, .. } => self.query_started(query),
            InstrumentationEvent::CacheQuery { .. } => self.query_cached(),
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                self.query_finished(query, error);
            }
            InstrumentationEvent::BeginTransaction { depth, .. } => {
                self.transaction_begun(depth.get());
            }
            InstrumentationEvent::CommitTransaction { depth, .. } => {
                self.transaction_ending(depth.get(), TransactionOutcome::Commit);
            }
            InstrumentationEvent::RollbackTransaction { depth, .. } => {
                self.transaction_ending(depth.get(), TransactionOutcome::Rollback);
            }
            InstrumentationEvent::StartEstablishConnection { .. } => self.connect_started(),
            InstrumentationEvent::FinishEstablishConnection { error, .. } => {
                self.connect_finished(error);
            }
            _ => {}
        }
    }
}

/// Whether `sql` is a pool's liveness check.
fn is_health_check(sql: &str) -> bool {
    // Longer than any check with room for blanks and `;`: most statements end here.
    if sql.len() > 32 {
        return false;
    }
    let sql = sql.trim().trim_end_matches(';');
    ["SELECT 1", "SELECT $1", "SELECT ?"]
        .iter()
        .any(|check| sql.eq_ignore_ascii_case(check))
}

/// The error's class, for `error.type`: the [`DatabaseErrorKind`] for errors from the
/// database (`UniqueViolation`, …), else diesel's error variant.
pub(crate) fn error_type(error: &Error) -> &'static str {
    match error {
        Error::DatabaseError(kind, _) => match kind {
            DatabaseErrorKind::UniqueViolation => "UniqueViolation",
            DatabaseErrorKind::ForeignKeyViolation => "ForeignKeyViolation",
            DatabaseErrorKind::UnableToSendCommand => "UnableToSendCommand",
            DatabaseErrorKind::SerializationFailure => "SerializationFailure",
            DatabaseErrorKind::ReadOnlyTransaction => "ReadOnlyTransaction",
            DatabaseErrorKind::RestrictViolation => "RestrictViolation",
            DatabaseErrorKind::NotNullViolation => "NotNullViolation",
            DatabaseErrorKind::CheckViolation => "CheckViolation",
            DatabaseErrorKind::ExclusionViolation => "ExclusionViolation",
            DatabaseErrorKind::ClosedConnection => "ClosedConnection",
            _ => "DatabaseError",
        },
        Error::InvalidCString(_) => "InvalidCString",
        Error::NotFound => "NotFound",
        Error::QueryBuilderError(_) => "QueryBuilderError",
        Error::DeserializationError(_) => "DeserializationError",
        Error::SerializationError(_) => "SerializationError",
        Error::RollbackErrorOnCommit { .. } => "RollbackErrorOnCommit",
        Error::RollbackTransaction => "RollbackTransaction",
        Error::AlreadyInTransaction => "AlreadyInTransaction",
        Error::NotInTransaction => "NotInTransaction",
        Error::BrokenTransactionManager => "BrokenTransactionManager",
        _ => "Error",
    }
}

fn connection_error_type(error: &ConnectionError) -> &'static str {
    match error {
        ConnectionError::InvalidCString(_) => "InvalidCString",
        ConnectionError::BadConnection(_) => "BadConnection",
        ConnectionError::InvalidConnectionUrl(_) => "InvalidConnectionUrl",
        ConnectionError::CouldntSetupConfiguration(_) => "CouldntSetupConfiguration",
        _ => "ConnectionError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_health_checks_only() {
        for sql in ["SELECT 1", "select 1;", " SELECT $1", "SELECT ?"] {
            assert!(is_health_check(sql), "{sql}");
        }
        for sql in ["SELECT 2", "SELECT 1 FROM t", "SELECT $1, $2", "INSERT"] {
            assert!(!is_health_check(sql), "{sql}");
        }
    }
}
