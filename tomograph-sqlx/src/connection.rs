//! [`TracedConnection`]: a pooled connection whose statements are traced.

use std::fmt;
use std::future::Future;

use sqlx::pool::PoolConnection;
use sqlx::{Error, Executor, SqlSafeStr, Transaction};
use tomograph::sql::SqlTracer;

use crate::database::TracedDatabase;
use crate::executor::{Target, delegate_executor};
use crate::transaction::{self, TracedTransaction};

/// A connection from a pool whose statements are traced; `&mut TracedConnection` is a
/// [`sqlx::Executor`]. Made by [`TracedPool::acquire`](crate::TracedPool::acquire); returns
/// to the pool when dropped.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let pool = tomograph_sqlx::TracedPool::<sqlx::Sqlite>::connect("sqlite::memory:").await.unwrap();
/// let mut conn = pool.acquire().await.unwrap();
/// sqlx::query("CREATE TEMP TABLE scratch (x INTEGER)").execute(&mut conn).await.unwrap();
/// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM scratch").fetch_one(&mut conn).await.unwrap();
/// assert_eq!(n, 0);
/// # });
/// # }
/// ```
pub struct TracedConnection<DB: TracedDatabase> {
    conn: PoolConnection<DB>,
    tracer: SqlTracer,
}

impl<DB: TracedDatabase> TracedConnection<DB> {
    /// Traces `conn` with `tracer`.
    pub fn new(conn: PoolConnection<DB>, tracer: SqlTracer) -> Self {
        Self { conn, tracer }
    }

    /// Starts a transaction on this connection; see [`TracedTransaction`].
    pub fn begin(
        &mut self,
    ) -> impl Future<Output = Result<TracedTransaction<'_, DB>, Error>> + Send + '_ {
        self.begin_inner(None)
    }

    /// Starts a transaction with `statement` instead of the driver's default `BEGIN`.
    pub fn begin_with(
        &mut self,
        statement: impl SqlSafeStr,
    ) -> impl Future<Output = Result<TracedTransaction<'_, DB>, Error>> + Send + '_ {
        self.begin_inner(Some(statement.into_sql_str()))
    }

    fn begin_inner(
        &mut self,
        statement: Option<sqlx::SqlStr>,
    ) -> impl Future<Output = Result<TracedTransaction<'_, DB>, Error>> + Send + '_ {
        let parent = tomograph::get_trace_info();
        let tracer = self.tracer.clone();
        let conn = &mut *self.conn;
        transaction::begin(tracer, parent, 0, statement, move |statement| {
            Transaction::begin(conn, statement)
        })
    }

    /// The sqlx connection, for anything sqlx-specific. Statements run through it directly
    /// are not traced.
    pub fn inner(&self) -> &PoolConnection<DB> {
        &self.conn
    }

    /// The sqlx connection, mutably (statements run through it are not traced).
    pub fn inner_mut(&mut self) -> &mut PoolConnection<DB> {
        &mut self.conn
    }

    /// Unwraps the connection.
    pub fn into_inner(self) -> PoolConnection<DB> {
        self.conn
    }

    /// The tracer.
    pub fn tracer(&self) -> &SqlTracer {
        &self.tracer
    }

    pub(crate) fn target(&mut self) -> Target<'_, impl Executor<'_, Database = DB>> {
        Target {
            executor: DB::connection_executor(&mut self.conn),
            tracer: &self.tracer,
            origin: crate::executor::Origin::here(),
        }
    }
}

delegate_executor!(impl<'c> for &'c mut TracedConnection<DB>);

impl<DB: TracedDatabase> fmt::Debug for TracedConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedConnection")
            .field("conn", &self.conn)
            .field("tracer", &self.tracer)
            .finish()
    }
}
