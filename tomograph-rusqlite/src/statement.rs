//! [`TracedStatement`]: a prepared statement whose executions become spans, and
//! [`TracedRows`] (with its mapped forms), whose span lasts until the rows are exhausted or
//! dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use rusqlite::{CachedStatement, Params, Row, Rows, Statement};
use tomograph::sql::{SqlSpan, SqlStatement, SqlTracer};

use crate::connection::fail;

/// A statement's text as written, and (once a traced execution needs it) as processed for
/// spans: shared by every execution, so an execution copies nothing.
#[derive(Debug)]
pub(crate) struct Prepared {
    sql: Box<str>,
    statement: OnceLock<SqlStatement>,
}

impl Prepared {
    pub(crate) fn new(sql: &str) -> Self {
        Self {
            sql: sql.into(),
            statement: OnceLock::new(),
        }
    }

    fn statement(&self, tracer: &SqlTracer) -> &SqlStatement {
        self.statement.get_or_init(|| tracer.statement(&self.sql))
    }
}

enum Stmt<'conn> {
    Plain(Statement<'conn>),
    Cached(CachedStatement<'conn>),
}

impl<'conn> Stmt<'conn> {
    fn get(&self) -> &Statement<'conn> {
        match self {
            Stmt::Plain(s) => s,
            Stmt::Cached(s) => s,
        }
    }

    fn get_mut(&mut self) -> &mut Statement<'conn> {
        match self {
            Stmt::Plain(s) => s,
            Stmt::Cached(s) => s,
        }
    }
}

/// A prepared statement whose executions are traced, made by
/// [`TracedConnection::prepare`](crate::TracedConnection::prepare) and
/// [`prepare_cached`](crate::TracedConnection::prepare_cached). It has the execution methods
/// of `rusqlite::Statement` with the same signatures; each execution is one span. The
/// statement's text is processed for spans once, at its first traced execution; when no
/// trace is in progress an execution costs what rusqlite's does (plus one check).
///
/// The rest of `rusqlite::Statement` (`column_names`, `parameter_index`, `expanded_sql`, the
/// `raw_*` binding API, …) is reachable through `Deref`/`DerefMut` and is **not** traced.
///
/// ```
/// let memory = tomograph::testing::memory_tracer();
/// let db = tomograph_rusqlite::TracedConnection::open_in_memory(tomograph_rusqlite::sql_tracer().build())?;
/// db.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3)")?;
///
/// let trace = {
///     let root = tomograph::span("report").root().start();
///     let mut stmt = db.prepare("SELECT x FROM t WHERE x >= ?1")?;
///     let xs: Vec<i64> = stmt.query_map([2], |row| row.get(0))?.collect::<Result<_, _>>()?;
///     assert_eq!(xs, [2, 3]);
///     assert!(stmt.exists([3])?);
///     root.token().unwrap().trace_id()
/// };
/// let spans = tomograph::testing::wait_for_trace(&memory, trace, 3, std::time::Duration::from_secs(5));
/// assert_eq!(spans[0].name(), "SELECT t");
/// assert_eq!(spans[0].tag_value("db.response.returned_rows").unwrap().to_string(), "2");
/// # Ok::<(), rusqlite::Error>(())
/// ```
pub struct TracedStatement<'conn> {
    stmt: Stmt<'conn>,
    prepared: Arc<Prepared>,
    tracer: &'conn SqlTracer,
}

impl fmt::Debug for TracedStatement<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedStatement")
            .field("sql", &self.prepared.sql)
            .field("cached", &matches!(self.stmt, Stmt::Cached(_)))
            .finish_non_exhaustive()
    }
}

impl<'conn> Deref for TracedStatement<'conn> {
    type Target = Statement<'conn>;

    fn deref(&self) -> &Statement<'conn> {
        self.stmt.get()
    }
}

impl DerefMut for TracedStatement<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.stmt.get_mut()
    }
}

impl<'conn> TracedStatement<'conn> {
    pub(crate) fn plain(
        stmt: Statement<'conn>,
        prepared: Arc<Prepared>,
        tracer: &'conn SqlTracer,
    ) -> Self {
        Self {
            stmt: Stmt::Plain(stmt),
            prepared,
            tracer,
        }
    }

    pub(crate) fn cached(
        stmt: CachedStatement<'conn>,
        prepared: Arc<Prepared>,
        tracer: &'conn SqlTracer,
    ) -> Self {
        Self {
            stmt: Stmt::Cached(stmt),
            prepared,
            tracer,
        }
    }

    /// The statement's text, as prepared.
    pub fn sql(&self) -> &str {
        &self.prepared.sql
    }

    /// Runs the statement and returns the number of rows changed (`db.response.affected_rows`).
    pub fn execute<P: Params>(&mut self, params: P) -> rusqlite::Result<usize> {
        self.run(
            |stmt| stmt.execute(params),
            |span, rows| span.affected_rows(*rows as u64),
        )
    }

    /// Runs an `INSERT` of one row and returns its rowid (rusqlite's [`Statement::insert`]).
    pub fn insert<P: Params>(&mut self, params: P) -> rusqlite::Result<i64> {
        self.run(|stmt| stmt.insert(params), |span, _| span.affected_rows(1))
    }

    /// Whether the query returns at least one row.
    pub fn exists<P: Params>(&mut self, params: P) -> rusqlite::Result<bool> {
        self.run(|stmt| stmt.exists(params), |_, _| {})
    }

    /// Runs a query expected to return at least one row and maps the first. As with
    /// [`TracedConnection::query_row`](crate::TracedConnection::query_row),
    /// `QueryReturnedNoRows` ends the span normally, with 0 rows.
    pub fn query_row<T, P, F>(&mut self, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.run(
            |stmt| stmt.query_row(params, f),
            |span, _| span.returned_rows(1),
        )
    }

    /// Like [`query_row`](Self::query_row), failing with `QueryReturnedMoreThanOneRow` when
    /// there is more than one row.
    pub fn query_one<T, P, F>(&mut self, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.run(
            |stmt| stmt.query_one(params, f),
            |span, _| span.returned_rows(1),
        )
    }

    /// Runs the query; its span lasts until the rows are exhausted, fail, or are dropped,
    /// and records how many were read (`db.response.returned_rows`).
    pub fn query<P: Params>(&mut self, params: P) -> rusqlite::Result<TracedRows<'_>> {
        let tracer = self.tracer;
        let sql: &str = &self.prepared.sql;
        let mut span = (tracer.would_trace() || tracer.watches_slow())
            .then(|| tracer.start_statement(self.prepared.statement(tracer)));
        match self.stmt.get_mut().query(params) {
            Ok(rows) => {
                if let Some(span) = &mut span {
                    span.parameters(|| {
                        rows.as_ref()
                            .map_or_else(Vec::new, |stmt| crate::params::describe(stmt, sql))
                    });
                }
                if let Some(span) = &mut span {
                    // Every query reports its rows, none included.
                    span.count_rows(0);
                }
                Ok(TracedRows {
                    rows,
                    span,
                    sql,
                    tracer,
                    count: 0,
                })
            }
            Err(e) => {
                fail(span.unwrap_or_else(|| tracer.start(sql)), sql, &e);
                Err(e)
            }
        }
    }

    /// Runs the query and maps each row with `f` (rusqlite's [`Statement::query_map`]).
    pub fn query_map<T, P, F>(
        &mut self,
        params: P,
        f: F,
    ) -> rusqlite::Result<TracedMappedRows<'_, F>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.query(params).map(|rows| rows.mapped(f))
    }

    /// Runs the query and maps each row with the fallible `f` (rusqlite's
    /// [`Statement::query_and_then`]).
    pub fn query_and_then<T, E, P, F>(
        &mut self,
        params: P,
        f: F,
    ) -> rusqlite::Result<TracedAndThenRows<'_, F>>
    where
        P: Params,
        E: From<rusqlite::Error>,
        F: FnMut(&Row<'_>) -> Result<T, E>,
    {
        self.query(params).map(|rows| rows.and_then(f))
    }

    /// Finalizes the statement (rusqlite's [`Statement::finalize`]); a cached statement goes
    /// back to the cache instead.
    pub fn finalize(self) -> rusqlite::Result<()> {
        match self.stmt {
            Stmt::Plain(stmt) => stmt.finalize(),
            Stmt::Cached(stmt) => {
                drop(stmt);
                Ok(())
            }
        }
    }

    /// One execution: `call` inside a span when a trace is in progress, `done` tags the
    /// success; on failure the span fails and the `on_error` hooks run (also untraced).
    #[inline]
    fn run<T>(
        &mut self,
        call: impl FnOnce(&mut Statement<'conn>) -> rusqlite::Result<T>,
        done: impl FnOnce(&mut SqlSpan<'_>, &T),
    ) -> rusqlite::Result<T> {
        let tracer = self.tracer;
        if !tracer.would_trace() && !tracer.watches_slow() {
            let result = call(self.stmt.get_mut());
            if let Err(e) = &result {
                fail(tracer.start(&self.prepared.sql), &self.prepared.sql, e);
            }
            return result;
        }
        let mut span = tracer.start_statement(self.prepared.statement(tracer));
        let result = call(self.stmt.get_mut());
        span.parameters(|| crate::params::describe(self.stmt.get(), &self.prepared.sql));
        match &result {
            Ok(value) => {
                done(&mut span, value);
                span.finish();
            }
            Err(e) => fail(span, &self.prepared.sql, e),
        }
        result
    }
}

/// The rows of a [`TracedStatement::query`]: rusqlite's `Rows`, counting. The statement's
/// span ends when [`next`](Self::next) returns `Ok(None)` or an error, or when this is
/// dropped, tagged with the rows read.
#[must_use = "rows are lazy and do nothing unless read"]
pub struct TracedRows<'stmt> {
    rows: Rows<'stmt>,
    span: Option<SqlSpan<'stmt>>,
    sql: &'stmt str,
    tracer: &'stmt SqlTracer,
    count: u64,
}

impl fmt::Debug for TracedRows<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedRows")
            .field("sql", &self.sql)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl<'stmt> TracedRows<'stmt> {
    /// The next row, `Ok(None)` when there are no more (rusqlite's [`Rows::next`]).
    #[allow(clippy::should_implement_trait)] // a streaming iterator, like rusqlite's
    pub fn next(&mut self) -> rusqlite::Result<Option<&Row<'stmt>>> {
        match self.rows.next() {
            Ok(Some(row)) => {
                self.count += 1;
                if let Some(span) = &mut self.span {
                    span.count_rows(1);
                }
                Ok(Some(row))
            }
            Ok(None) => {
                // Ended where it sits (dropping a span ends it as a success).
                self.span = None;
                Ok(None)
            }
            Err(e) => {
                let span = self
                    .span
                    .take()
                    .unwrap_or_else(|| self.tracer.start(self.sql));
                fail(span, self.sql, &e);
                Err(e)
            }
        }
    }

    /// Rows read so far.
    pub fn count_so_far(&self) -> u64 {
        self.count
    }

    /// An `Iterator` of `f` applied to each row (rusqlite's [`Rows::mapped`]).
    pub fn mapped<T, F>(self, f: F) -> TracedMappedRows<'stmt, F>
    where
        F: FnMut(&Row<'_>) -> rusqlite::Result<T>,
    {
        TracedMappedRows { rows: self, map: f }
    }

    /// An `Iterator` of the fallible `f` applied to each row (rusqlite's [`Rows::and_then`]).
    pub fn and_then<T, E, F>(self, f: F) -> TracedAndThenRows<'stmt, F>
    where
        E: From<rusqlite::Error>,
        F: FnMut(&Row<'_>) -> Result<T, E>,
    {
        TracedAndThenRows { rows: self, map: f }
    }
}

impl Drop for TracedRows<'_> {
    fn drop(&mut self) {
        // The span tags the rows it counted; ended here, where it sits, before the rows.
        self.span = None;
    }
}

/// The rows of [`TracedStatement::query_map`], an `Iterator` of mapped rows.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct TracedMappedRows<'stmt, F> {
    rows: TracedRows<'stmt>,
    map: F,
}

impl<F> fmt::Debug for TracedMappedRows<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TracedMappedRows").field(&self.rows).finish()
    }
}

impl<T, F> Iterator for TracedMappedRows<'_, F>
where
    F: FnMut(&Row<'_>) -> rusqlite::Result<T>,
{
    type Item = rusqlite::Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        let map = &mut self.map;
        self.rows.next().transpose().map(|row| row.and_then(map))
    }
}

/// The rows of [`TracedStatement::query_and_then`], an `Iterator` of fallibly mapped rows.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct TracedAndThenRows<'stmt, F> {
    rows: TracedRows<'stmt>,
    map: F,
}

impl<F> fmt::Debug for TracedAndThenRows<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TracedAndThenRows")
            .field(&self.rows)
            .finish()
    }
}

impl<T, E, F> Iterator for TracedAndThenRows<'_, F>
where
    E: From<rusqlite::Error>,
    F: FnMut(&Row<'_>) -> Result<T, E>,
{
    type Item = Result<T, E>;

    fn next(&mut self) -> Option<Self::Item> {
        let map = &mut self.map;
        self.rows
            .next()
            .transpose()
            .map(|row| row.map_err(E::from).and_then(map))
    }
}
