//! r2d2 pools of [`TracedConnection`]s: [`TracedSqliteConnectionManager`] wraps
//! `r2d2_sqlite`'s manager.

use std::path::Path;

use r2d2_sqlite::SqliteConnectionManager;
use tomograph::sql::{DbSystem, PoolEvents, PoolState, PoolWatch, SqlTracer};

use crate::TracedConnection;

/// An r2d2 pool whose connections are [`TracedConnection`]s.
pub type TracedPool = r2d2::Pool<TracedSqliteConnectionManager>;

/// A connection borrowed from a [`TracedPool`]; derefs to [`TracedConnection`].
pub type TracedPooledConnection = r2d2::PooledConnection<TracedSqliteConnectionManager>;

/// An `r2d2::ManageConnection` that opens connections with `r2d2_sqlite`'s
/// [`SqliteConnectionManager`] (file or shared in-memory database, flags, init function)
/// and hands them out as [`TracedConnection`]s sharing one [`SqlTracer`]. Swap it in for
/// `SqliteConnectionManager`; the pool's health checks stay untraced. Build the pool with
/// [`pool_builder`] so that statements also say how long `get()` waited and pool timeouts
/// become spans.
///
/// ```
/// use tomograph_rusqlite::{TracedPool, TracedSqliteConnectionManager};
///
/// let manager = TracedSqliteConnectionManager::memory(tomograph_rusqlite::sql_tracer().build());
/// let pool: TracedPool = tomograph_rusqlite::pool_builder(&manager).max_size(4).build(manager).unwrap();
///
/// let conn = pool.get().unwrap();
/// conn.execute_batch("CREATE TABLE t (x INTEGER)")?;
/// conn.execute("INSERT INTO t VALUES (?1)", [7])?;
/// let x: i64 = pool.get().unwrap().query_row("SELECT x FROM t", [], |row| row.get(0))?;
/// assert_eq!(x, 7);
/// # Ok::<(), rusqlite::Error>(())
/// ```
#[derive(Debug)]
pub struct TracedSqliteConnectionManager {
    inner: SqliteConnectionManager,
    tracer: SqlTracer,
}

impl TracedSqliteConnectionManager {
    /// Traces the connections `manager` opens (use it for `with_flags` / `with_init`).
    ///
    /// ```
    /// use tomograph_rusqlite::r2d2_sqlite::SqliteConnectionManager;
    /// let manager = tomograph_rusqlite::TracedSqliteConnectionManager::new(
    ///     SqliteConnectionManager::memory().with_init(|c| c.execute_batch("PRAGMA foreign_keys = ON")),
    ///     tomograph_rusqlite::sql_tracer().build(),
    /// );
    /// ```
    pub fn new(manager: SqliteConnectionManager, tracer: SqlTracer) -> Self {
        Self {
            inner: manager,
            tracer,
        }
    }

    /// Connections to the database file at `path`.
    pub fn file(path: impl AsRef<Path>, tracer: SqlTracer) -> Self {
        Self::new(SqliteConnectionManager::file(path), tracer)
    }

    /// Connections to one in-memory database shared by the pool (`r2d2_sqlite`'s
    /// `SqliteConnectionManager::memory`).
    pub fn memory(tracer: SqlTracer) -> Self {
        Self::new(SqliteConnectionManager::memory(), tracer)
    }

    /// The tracer every connection shares (and its run-time switch).
    pub fn tracer(&self) -> &SqlTracer {
        &self.tracer
    }
}

impl r2d2::ManageConnection for TracedSqliteConnectionManager {
    type Connection = TracedConnection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<TracedConnection, rusqlite::Error> {
        self.inner
            .connect()
            .map(|conn| TracedConnection::new(conn, self.tracer.clone()))
    }

    fn is_valid(&self, conn: &mut TracedConnection) -> Result<(), rusqlite::Error> {
        self.inner.is_valid(conn.inner_mut())
    }

    fn has_broken(&self, conn: &mut TracedConnection) -> bool {
        self.inner.has_broken(conn.inner_mut())
    }
}

/// An r2d2 pool builder for connections from `manager` (r2d2's defaults otherwise) whose
/// event handler is tomograph's [`PoolEvents`], with the manager's tracer: each statement
/// span is tagged `db.client.connection.wait_time_us` with the time `pool.get()` waited for
/// its connection, and a `get()` that times out becomes a failed span `acquire connection`
/// (`error.type` = `PoolTimedOut`; the `on_error` hooks run once, with an empty `sql`).
///
/// A builder made otherwise gets the same with
/// `.event_handler(Box::new(PoolEvents::new(manager.tracer().clone())))` (r2d2 takes one
/// event handler per pool: one set later replaces this one).
///
/// ```
/// use std::time::Duration;
/// use tomograph_rusqlite::{TracedPool, TracedSqliteConnectionManager, pool_builder};
///
/// let manager = TracedSqliteConnectionManager::memory(tomograph_rusqlite::sql_tracer().build());
/// let pool: TracedPool = pool_builder(&manager)
///     .max_size(2)
///     .connection_timeout(Duration::from_secs(5))
///     .build(manager)
///     .unwrap();
/// let _request = tomograph::span("request").start();
/// let conn = pool.get().unwrap();
/// conn.execute_batch("CREATE TABLE t (x INTEGER)")?; // tagged with the wait of get()
/// # Ok::<(), rusqlite::Error>(())
/// ```
pub fn pool_builder(
    manager: &TracedSqliteConnectionManager,
) -> r2d2::Builder<TracedSqliteConnectionManager> {
    r2d2::Pool::builder().event_handler(Box::new(PoolEvents::new(manager.tracer.clone())))
}

/// Sends `pool`'s gauges to statsd (`db.sqlite.pool.{name}.used`, `.idle`, `.max`) on
/// tomograph's pool-gauge interval while the returned watch lives (and keeps the pool open):
/// see [`tomograph::sql::watch_pool`].
///
/// ```
/// use tomograph_rusqlite::{TracedPool, TracedSqliteConnectionManager};
/// let pool: TracedPool = tomograph_rusqlite::r2d2::Pool::builder()
///     .max_size(2)
///     .build(TracedSqliteConnectionManager::memory(tomograph_rusqlite::sql_tracer().build()))
///     .unwrap();
/// let _gauges = tomograph_rusqlite::watch_pool_gauges(&pool, "cache");
/// ```
pub fn watch_pool_gauges(pool: &TracedPool, name: &str) -> PoolWatch {
    let pool = pool.clone();
    tomograph::sql::watch_pool(DbSystem::Sqlite, name, move || {
        let state = pool.state();
        Some(PoolState::new(
            state.connections.saturating_sub(state.idle_connections),
            state.idle_connections,
            pool.max_size(),
        ))
    })
}
