//! [`TracedTransaction`]: a transaction that is a span, with its `BEGIN`, statements and
//! `COMMIT`/`ROLLBACK` as children.

use std::fmt;
use std::ops::Deref;

use rusqlite::{DropBehavior, TransactionBehavior};
use tomograph::sql::{SqlTransaction, TransactionOutcome};

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
/// assert_eq!(names, ["BEGIN", "INSERT t", "COMMIT", "TRANSACTION", "transfer"]);
/// let transaction = spans[3].id();
/// assert!(spans[..3].iter().all(|s| s.parent_id() == Some(transaction)));
/// # Ok::<(), rusqlite::Error>(())
/// ```
pub struct TracedTransaction<'conn> {
    conn: &'conn TracedConnection,
    drop_behavior: DropBehavior,
    open: bool,
    /// The `TRANSACTION` span ([`SqlTransaction`]: one schema for every adapter).
    span: SqlTransaction,
    /// The savepoint's name (`None` for the transaction itself).
    savepoint: Option<String>,
}

impl fmt::Debug for TracedTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedTransaction")
            .field("drop_behavior", &self.drop_behavior)
            .field("open", &self.open)
            .field("depth", &self.span.depth())
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
        let mut span = conn.tracer().begin_transaction(1);
        span.behavior(name);
        Self::open(conn, span, sql, None)
    }

    fn open(
        conn: &'conn TracedConnection,
        mut span: SqlTransaction,
        sql: &str,
        savepoint: Option<String>,
    ) -> rusqlite::Result<Self> {
        match conn.execute_batch(sql) {
            Ok(()) => Ok(Self {
                conn,
                drop_behavior: DropBehavior::Rollback,
                open: true,
                span,
                savepoint,
            }),
            Err(e) => {
                span.fail(&e, crate::error_code(&e), None);
                span.end(TransactionOutcome::Failed);
                Err(e)
            }
        }
    }

    /// Starts a savepoint inside this transaction (or savepoint), like rusqlite's
    /// `Transaction::savepoint`: a nested `TRANSACTION` span (its `db.transaction.depth` one
    /// more than this one's) around `SAVEPOINT`, the statements run through it, and
    /// `RELEASE` (commit) or `ROLLBACK TO` (rollback, also on drop by default). The savepoint
    /// is a transaction with rusqlite's API: [`commit`](Self::commit),
    /// [`rollback`](Self::rollback), [`savepoint`](Self::savepoint) again.
    ///
    /// ```
    /// let mut db = tomograph_rusqlite::TracedConnection::open_in_memory(tomograph_rusqlite::sql_tracer().build())?;
    /// db.execute_batch("CREATE TABLE t (x INTEGER)")?;
    /// let mut tx = db.transaction()?;
    /// tx.execute("INSERT INTO t VALUES (1)", [])?;
    /// {
    ///     let sp = tx.savepoint()?;
    ///     sp.execute("INSERT INTO t VALUES (2)", [])?;
    ///     sp.rollback()?; // only the second row goes
    /// }
    /// tx.commit()?;
    /// let n: i64 = db.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
    /// assert_eq!(n, 1);
    /// # Ok::<(), rusqlite::Error>(())
    /// ```
    pub fn savepoint(&mut self) -> rusqlite::Result<TracedTransaction<'_>> {
        let depth = self.span.depth() + 1;
        let name = format!("tomograph_sp_{depth}");
        let span = self.conn.tracer().begin_transaction(depth);
        TracedTransaction::open(self.conn, span, &format!("SAVEPOINT {name}"), Some(name))
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

    /// Commits (a `COMMIT` span; for a savepoint, `RELEASE`). On failure the transaction is
    /// rolled back, as rusqlite does, and the error returned.
    pub fn commit(mut self) -> rusqlite::Result<()> {
        self.end(TransactionOutcome::Commit)
    }

    /// Rolls back (a `ROLLBACK` span; for a savepoint, `ROLLBACK TO` and `RELEASE`).
    pub fn rollback(mut self) -> rusqlite::Result<()> {
        self.end(TransactionOutcome::Rollback)
    }

    /// Ends the transaction as its drop behaviour says, returning the error a drop would
    /// swallow.
    pub fn finish(mut self) -> rusqlite::Result<()> {
        self.finish_()
    }

    fn end(&mut self, outcome: TransactionOutcome) -> rusqlite::Result<()> {
        let sql = match (&self.savepoint, outcome) {
            (None, TransactionOutcome::Commit) => "COMMIT".to_owned(),
            (None, _) => "ROLLBACK".to_owned(),
            (Some(name), TransactionOutcome::Commit) => format!("RELEASE {name}"),
            (Some(name), _) => format!("ROLLBACK TO {name}; RELEASE {name}"),
        };
        let result = self.conn.execute_batch(&sql);
        match &result {
            Ok(()) => {
                self.open = false;
                self.span.end(outcome);
            }
            Err(e) => self.span.fail(e, crate::error_code(e), None),
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
                .end(TransactionOutcome::Commit)
                .or_else(|_| self.end(TransactionOutcome::Rollback)),
            DropBehavior::Ignore => {
                self.open = false;
                Ok(())
            }
            // Like rusqlite, but no panic while already panicking (that would abort).
            DropBehavior::Panic if !std::thread::panicking() => {
                panic!("Transaction dropped unexpectedly.")
            }
            _ => self.end(TransactionOutcome::Rollback),
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
