//! [`TracedConnection`]: a `rusqlite::Connection` whose statements become spans.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, Params, Row, TransactionBehavior};
use tomograph::sql::{SqlSpan, SqlTracer};

use crate::statement::{Prepared, TracedStatement};
use crate::transaction::TracedTransaction;

/// How many statements' processed text [`TracedConnection::prepare_cached`] keeps (rusqlite's
/// own statement cache is separate and keeps its own capacity).
const TEXT_CACHE_CAPACITY: usize = 128;

/// A `rusqlite::Connection` that traces every statement it runs: each one becomes a CLIENT
/// span, child of the current span, named by its operation and tagged with its text (see
/// [`tomograph::sql`]). Change the type, keep the calls: `execute`, `execute_batch`,
/// `query_row`, `query_one`, `query_row_and_then`, `prepare`, `prepare_cached` and the
/// transactions have rusqlite's signatures and behaviour, errors included.
///
/// Everything else of `rusqlite::Connection` is reachable through `Deref` (or
/// [`inner`](Self::inner)) and is **not** traced: pragmas helpers, `backup`, `blob_open`,
/// `last_insert_rowid`, …
///
/// ```
/// use tomograph::sql::SqlTracer;
/// use tomograph_rusqlite::TracedConnection;
///
/// let memory = tomograph::testing::memory_tracer();
/// let db = TracedConnection::open_in_memory(tomograph_rusqlite::sql_tracer().build())?;
///
/// let trace = {
///     let request = tomograph::span("request").root().start();
///     db.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")?;
///     db.execute("INSERT INTO users (name) VALUES (?1)", ["ada"])?;
///     let name: String = db.query_row("SELECT name FROM users WHERE id = ?1", [1], |row| row.get(0))?;
///     assert_eq!(name, "ada");
///     println!("last id: {}", db.last_insert_rowid()); // rusqlite's, through Deref
///     request.token().unwrap().trace_id()
/// };
///
/// let spans = tomograph::testing::wait_for_trace(&memory, trace, 4, std::time::Duration::from_secs(5));
/// let names: Vec<&str> = spans.iter().map(|s| s.name()).collect();
/// assert_eq!(names, ["CREATE TABLE users", "INSERT users", "SELECT users", "request"]);
/// assert_eq!(spans[1].tag_value("db.query.text").unwrap().to_string(), "INSERT INTO users (name) VALUES (?1)");
/// # Ok::<(), rusqlite::Error>(())
/// ```
pub struct TracedConnection {
    conn: Connection,
    tracer: SqlTracer,
    behavior: TransactionBehavior,
    /// Statement text processed for spans, per SQL text, for `prepare_cached`.
    cache: RefCell<HashMap<Box<str>, Arc<Prepared>>>,
}

impl fmt::Debug for TracedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedConnection")
            .field("conn", &self.conn)
            .field("tracer", &self.tracer)
            .finish_non_exhaustive()
    }
}

impl Deref for TracedConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl TracedConnection {
    /// Traces the statements of `conn` as `tracer` says.
    ///
    /// ```
    /// use tomograph::sql::{QueryText, SqlTracer};
    /// let tracer = tomograph_rusqlite::sql_tracer()
    ///     .namespace("main")
    ///     .query_text(QueryText::Normalized)
    ///     .build();
    /// let db = tomograph_rusqlite::TracedConnection::new(rusqlite::Connection::open_in_memory()?, tracer);
    /// # Ok::<(), rusqlite::Error>(())
    /// ```
    pub fn new(conn: Connection, tracer: SqlTracer) -> Self {
        Self {
            conn,
            tracer,
            behavior: TransactionBehavior::Deferred,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// Opens the database file at `path` (rusqlite's [`Connection::open`]).
    pub fn open(path: impl AsRef<Path>, tracer: SqlTracer) -> rusqlite::Result<Self> {
        Connection::open(path).map(|conn| Self::new(conn, tracer))
    }

    /// Opens a new in-memory database (rusqlite's [`Connection::open_in_memory`]).
    pub fn open_in_memory(tracer: SqlTracer) -> rusqlite::Result<Self> {
        Connection::open_in_memory().map(|conn| Self::new(conn, tracer))
    }

    /// The tracer: its policy, and its run-time switch ([`SqlTracer::set_enabled`]).
    pub fn tracer(&self) -> &SqlTracer {
        &self.tracer
    }

    /// The wrapped connection (untraced).
    pub fn inner(&self) -> &Connection {
        &self.conn
    }

    /// The wrapped connection, mutably (untraced), e.g. for rusqlite's `savepoint`.
    pub fn inner_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The wrapped connection.
    pub fn into_inner(self) -> Connection {
        self.conn
    }

    /// Runs one statement and returns the number of rows changed (rusqlite's
    /// [`Connection::execute`]); its span is tagged `db.response.affected_rows`.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        let mut span = self.tracer.start(sql);
        let result = self.conn.prepare(sql).and_then(|mut stmt| {
            let result = stmt.execute(params);
            span.parameters(|| crate::params::describe(&stmt, sql));
            result
        });
        match &result {
            Ok(rows) => {
                span.affected_rows(*rows as u64);
                span.finish();
            }
            Err(e) => fail(span, sql, e),
        }
        result
    }

    /// Runs several statements separated by `;` (rusqlite's [`Connection::execute_batch`]),
    /// as one span named by the first statement's operation.
    pub fn execute_batch(&self, sql: &str) -> rusqlite::Result<()> {
        let span = self.tracer.start(sql);
        let result = self.conn.execute_batch(sql);
        match &result {
            Ok(()) => span.finish(),
            Err(e) => fail(span, sql, e),
        }
        result
    }

    /// Runs a query expected to return at least one row and maps the first (rusqlite's
    /// [`Connection::query_row`]). `Err(QueryReturnedNoRows)` is not a failed statement: its
    /// span ends normally with 0 rows.
    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.with_statement(sql, |stmt| stmt.query_row(params, f))
    }

    /// Like [`query_row`](Self::query_row), and fails with `QueryReturnedMoreThanOneRow` when
    /// there is more than one row (rusqlite's [`Connection::query_one`]).
    pub fn query_one<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.with_statement(sql, |stmt| stmt.query_one(params, f))
    }

    /// Like [`query_row`](Self::query_row) with a fallible closure of your error type
    /// (rusqlite's [`Connection::query_row_and_then`]). The span records SQLite's errors; an
    /// error of your closure is yours and leaves the statement's span successful.
    pub fn query_row_and_then<T, E, P, F>(&self, sql: &str, params: P, f: F) -> Result<T, E>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T, E>,
        E: From<rusqlite::Error>,
    {
        let mut span = self.tracer.start(sql);
        let mut stmt = match self.conn.prepare(sql) {
            Ok(stmt) => stmt,
            Err(e) => {
                fail(span, sql, &e);
                return Err(e.into());
            }
        };
        let mut rows = match stmt.query(params) {
            Ok(rows) => rows,
            Err(e) => {
                fail(span, sql, &e);
                return Err(e.into());
            }
        };
        let (returned, result) = match rows.next() {
            Ok(Some(row)) => (1, f(row)),
            Ok(None) => (0, Err(rusqlite::Error::QueryReturnedNoRows.into())),
            Err(e) => {
                fail(span, sql, &e);
                return Err(e.into());
            }
        };
        drop(rows);
        span.parameters(|| crate::params::describe(&stmt, sql));
        span.finish_with_rows(returned);
        result
    }

    /// Prepares a statement whose executions are traced (rusqlite's
    /// [`Connection::prepare`]). A statement that does not prepare (a syntax error) gives a
    /// failed span of its own.
    ///
    /// ```
    /// let db = tomograph_rusqlite::TracedConnection::open_in_memory(tomograph_rusqlite::sql_tracer().build())?;
    /// let mut stmt = db.prepare("SELECT ?1 + 1")?;
    /// let two: i64 = stmt.query_row([1], |row| row.get(0))?;
    /// assert_eq!(two, 2);
    /// # Ok::<(), rusqlite::Error>(())
    /// ```
    pub fn prepare(&self, sql: &str) -> rusqlite::Result<TracedStatement<'_>> {
        match self.conn.prepare(sql) {
            Ok(stmt) => Ok(TracedStatement::plain(
                stmt,
                Arc::new(Prepared::new(sql)),
                &self.tracer,
            )),
            Err(e) => {
                fail(self.tracer.start(sql), sql, &e);
                Err(e)
            }
        }
    }

    /// Prepares a statement through rusqlite's statement cache (rusqlite's
    /// [`Connection::prepare_cached`]). The text processed for spans is cached too, so a
    /// cached statement's executions copy nothing.
    pub fn prepare_cached(&self, sql: &str) -> rusqlite::Result<TracedStatement<'_>> {
        match self.conn.prepare_cached(sql) {
            Ok(stmt) => Ok(TracedStatement::cached(
                stmt,
                self.cached_text(sql),
                &self.tracer,
            )),
            Err(e) => {
                fail(self.tracer.start(sql), sql, &e);
                Err(e)
            }
        }
    }

    fn cached_text(&self, sql: &str) -> Arc<Prepared> {
        let mut cache = self.cache.borrow_mut();
        if let Some(prepared) = cache.get(sql) {
            return Arc::clone(prepared);
        }
        if cache.len() >= TEXT_CACHE_CAPACITY {
            cache.clear();
        }
        let prepared = Arc::new(Prepared::new(sql));
        cache.insert(sql.into(), Arc::clone(&prepared));
        prepared
    }

    /// Begins a transaction with the connection's default behaviour (`DEFERRED`, see
    /// [`set_transaction_behavior`](Self::set_transaction_behavior)). See
    /// [`TracedTransaction`] for what it traces.
    pub fn transaction(&mut self) -> rusqlite::Result<TracedTransaction<'_>> {
        TracedTransaction::begin(self, self.behavior)
    }

    /// Begins a transaction with `behavior` (`BEGIN DEFERRED` / `IMMEDIATE` / `EXCLUSIVE`).
    pub fn transaction_with_behavior(
        &mut self,
        behavior: TransactionBehavior,
    ) -> rusqlite::Result<TracedTransaction<'_>> {
        TracedTransaction::begin(self, behavior)
    }

    /// Begins a transaction from a shared reference, leaving nesting checks to you
    /// (rusqlite's [`Connection::unchecked_transaction`]).
    pub fn unchecked_transaction(&self) -> rusqlite::Result<TracedTransaction<'_>> {
        TracedTransaction::begin(self, self.behavior)
    }

    /// The behaviour of [`transaction`](Self::transaction) (rusqlite's
    /// [`Connection::set_transaction_behavior`]).
    pub fn set_transaction_behavior(&mut self, behavior: TransactionBehavior) {
        self.behavior = behavior;
        self.conn.set_transaction_behavior(behavior);
    }

    /// Prepares `sql`, runs `call` on it inside a span, closes the span with the outcome.
    fn with_statement<T>(
        &self,
        sql: &str,
        call: impl FnOnce(&mut rusqlite::Statement<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut span = self.tracer.start(sql);
        let result = self.conn.prepare(sql).and_then(|mut stmt| {
            let result = call(&mut stmt);
            span.parameters(|| crate::params::describe(&stmt, sql));
            result
        });
        match &result {
            Ok(_) => span.finish_with_rows(1),
            Err(e) => fail(span, sql, e),
        }
        result
    }
}

/// Ends `span` for a statement that returned `error`: a failure with SQLite's code (hooks
/// run), except `QueryReturnedNoRows`, which is a successful statement with no rows.
pub(crate) fn fail(span: SqlSpan<'_>, sql: &str, error: &rusqlite::Error) {
    if matches!(error, rusqlite::Error::QueryReturnedNoRows) {
        span.finish_with_rows(0);
    } else {
        span.fail(sql, error, crate::error_code(error));
    }
}
