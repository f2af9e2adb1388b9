//! [`TracedTransaction`]: a transaction that is a span, with its `BEGIN`, statements and
//! `COMMIT`/`ROLLBACK` as children.

use std::fmt;
use std::ops::Deref;

use rusqlite::{DropBehavior, TransactionBehavior};
use tomograph::SpanGuard;
use tomograph::keys;

use crate::TracedConnection;

/// A transaction on a [`TracedConnection`], with rusqlite's `Transaction` API: it derefs to
/// the connection (so its statements are traced), commits with [`commit`](Self::commit),
/// rolls back with [`rollback`](Self::rollback) or when dropped (see
/// [`set_drop_behavior`](Self::set_drop_behavior)).
///
/// In a trace, a transaction is a span `TRANSACTION` (current while the transaction is
/// open, so everything run inside it is its child), containing the `BEGIN` span, the
/// statements' spans and the `COMMIT` or `ROLLBACK` span — also the `ROLLBACK` run on drop.
/// The span's duration is how long the transaction held its locks, and its
/// `db.transaction.outcome` tag says `commit` or `rollback`; a failed `BEGIN`/`COMMIT` marks it
/// as an error too. With [`SqlMode::Annotations`](tomograph::sql::SqlMode::Annotations) there
/// is no `TRANSACTION` span, only the statements' notes.
///
/// The `TRANSACTION` span sits on the thread's span stack: spans opened inside the
/// transaction should end before it does (guards do, by scope).
///
/// ```
/// let memory = tomograph::testing::memory_tracer();
/// let mut db = tomograph_rusqlite::TracedConnection::open_in_memory(tomograph_rusqlite::sql_tracer().build())?;
/// db.execute_batch("CREATE TABLE t (x INTEGER)")?;
///
/// let trace = {
///     let root = tomograph::span("transfer").root().start();
///     let tx = db.transaction()?;
///     tx.execute("INSERT INTO t VALUES (?1)", [1])?;
///     tx.commit()?;
///     root.token().unwrap().trace_id()
/// };
/// let spans = tomograph::testing::wait_for_trace(&memory, trace, 5, std::time::Duration::from_secs(5));
/// let names: Vec<&str> = spans.iter().map(|s| s.name()).collect();
/// assert_eq!(names, ["BEGIN", "INSERT", "COMMIT", "TRANSACTION", "transfer"]);
/// let transaction = spans[3].id();
/// assert!(spans[..3].iter().all(|s| s.parent_id() == Some(transaction)));
/// # Ok::<(), rusqlite::Error>(())
/// ```
pub struct TracedTransaction<'conn> {
    conn: &'conn TracedConnection,
    drop_behavior: DropBehavior,
    open: bool,
    span: SpanGuard,
}

impl fmt::Debug for TracedTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedTransaction")
            .field("drop_behavior", &self.drop_behavior)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Deref for TracedTransaction<'_> {
    type Target = TracedConnection;

    fn deref(&self) -> &TracedConnection {
        self.conn
    }
}

impl<'conn> TracedTransaction<'conn> {
    pub(crate) fn begin(
        conn: &'conn TracedConnection,
        behavior: TransactionBehavior,
    ) -> rusqlite::Result<Self> {
        let (sql, name) = match behavior {
            TransactionBehavior::Immediate => ("BEGIN IMMEDIATE", "immediate"),
            TransactionBehavior::Exclusive => ("BEGIN EXCLUSIVE", "exclusive"),
            _ => ("BEGIN DEFERRED", "deferred"),
        };
        let span = conn.tracer().start_transaction();
        span.tag(keys::db::TRANSACTION_BEHAVIOR, name);
        match conn.execute_batch(sql) {
            Ok(()) => Ok(Self {
                conn,
                drop_behavior: DropBehavior::Rollback,
                open: true,
                span,
            }),
            Err(e) => {
                span.record_error(conn.tracer().error_message(&e));
                Err(e)
            }
        }
    }

    /// What happens when the transaction is dropped open: roll back (the default), commit,
    /// nothing, or panic.
    pub fn drop_behavior(&self) -> DropBehavior {
        self.drop_behavior
    }

    /// Sets what happens when the transaction is dropped open.
    pub fn set_drop_behavior(&mut self, drop_behavior: DropBehavior) {
        self.drop_behavior = drop_behavior;
    }

    /// Commits (a `COMMIT` span). On failure the transaction is rolled back, as rusqlite
    /// does, and the error returned.
    pub fn commit(mut self) -> rusqlite::Result<()> {
        self.end("COMMIT", "commit")
    }

    /// Rolls back (a `ROLLBACK` span).
    pub fn rollback(mut self) -> rusqlite::Result<()> {
        self.end("ROLLBACK", "rollback")
    }

    /// Ends the transaction as its drop behaviour says, returning the error a drop would
    /// swallow.
    pub fn finish(mut self) -> rusqlite::Result<()> {
        self.finish_()
    }

    fn end(&mut self, sql: &str, outcome: &'static str) -> rusqlite::Result<()> {
        let result = self.conn.execute_batch(sql);
        match &result {
            Ok(()) => {
                self.open = false;
                self.span.tag(keys::db::TRANSACTION_OUTCOME, outcome);
            }
            Err(e) => self.span.record_error(self.conn.tracer().error_message(e)),
        }
        result
    }

    fn finish_(&mut self) -> rusqlite::Result<()> {
        if !self.open || self.conn.is_autocommit() {
            // Already ended (or ended by a statement of the user's, like "COMMIT").
            self.open = false;
            return Ok(());
        }
        match self.drop_behavior {
            DropBehavior::Commit => self
                .end("COMMIT", "commit")
                .or_else(|_| self.end("ROLLBACK", "rollback")),
            DropBehavior::Ignore => {
                self.open = false;
                Ok(())
            }
            // Like rusqlite, but no panic while already panicking (that would abort).
            DropBehavior::Panic if !std::thread::panicking() => {
                panic!("Transaction dropped unexpectedly.")
            }
            _ => self.end("ROLLBACK", "rollback"),
        }
    }
}

impl Drop for TracedTransaction<'_> {
    fn drop(&mut self) {
        // As rusqlite: errors on drop are ignored (call `finish` to see them). The
        // `TRANSACTION` span ends after this, when `span` drops.
        let _ = self.finish_();
    }
}
