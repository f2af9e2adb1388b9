//! r2d2 pools whose connections are traced.
//!
//! ```
//! use diesel::prelude::*;
//! use diesel::r2d2::{ConnectionManager, Pool};
//! use tomograph_diesel::DieselTracer;
//!
//! # tomograph::testing::memory_tracer();
//! let pool: Pool<ConnectionManager<SqliteConnection>> =
//!     tomograph_diesel::r2d2::pool_builder(DieselTracer::from_url(":memory:"))
//!         .max_size(4)
//!         .build(ConnectionManager::new(":memory:"))?;
//!
//! let _request = tomograph::span("request").start();
//! let mut conn = pool.get()?; // the pool's `SELECT 1` check makes no span
//! diesel::sql_query("SELECT 42").execute(&mut conn)?; // a SELECT span, child of "request"
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use diesel::connection::Connection;
use diesel::r2d2::{Builder, ConnectionManager, CustomizeConnection, Error, Pool, R2D2Connection};

pub use tomograph::sql::PoolEvents;
use tomograph::sql::{PoolState, PoolWatch};

use crate::tracer::DieselTracer;

/// An r2d2 [`CustomizeConnection`] that instruments every connection the pool opens. Give it
/// to `Pool::builder().connection_customizer(Box::new(...))`, or use [`pool_builder`].
///
/// The pool checks each connection it hands out with `SELECT 1` (`test_on_check_out`);
/// those checks make no span unless [`DieselTracer::trace_health_checks`] says so.
#[derive(Debug, Clone)]
pub struct TracingCustomizer {
    tracer: DieselTracer,
    setup_sql: Option<String>,
}

impl TracingCustomizer {
    /// Instruments connections with `tracer`.
    pub fn new(tracer: DieselTracer) -> Self {
        Self {
            tracer,
            setup_sql: None,
        }
    }

    /// Also runs `sql` (`batch_execute`) on every new connection, once it is instrumented
    /// (r2d2 takes one customizer per pool): `PRAGMA busy_timeout = 5000` for SQLite,
    /// `SET application_name = 'app'` for PostgreSQL. Runs on r2d2's threads, outside any
    /// trace; a failure is r2d2's connection error (and reaches the `on_error` hooks).
    ///
    /// ```
    /// use diesel::prelude::*;
    /// use diesel::r2d2::{ConnectionManager, Pool};
    /// use tomograph_diesel::{DieselTracer, r2d2::TracingCustomizer};
    /// let customizer = TracingCustomizer::new(DieselTracer::from_url(":memory:"))
    ///     .setup_sql("PRAGMA busy_timeout = 5000");
    /// let pool: Pool<ConnectionManager<SqliteConnection>> = Pool::builder()
    ///     .connection_customizer(Box::new(customizer))
    ///     .build(ConnectionManager::new(":memory:"))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn setup_sql(mut self, sql: impl Into<String>) -> Self {
        self.setup_sql = Some(sql.into());
        self
    }
}

impl<C> CustomizeConnection<C, Error> for TracingCustomizer
where
    C: Connection + Send + 'static,
{
    fn on_acquire(&self, conn: &mut C) -> Result<(), Error> {
        self.tracer.instrument(conn);
        if let Some(sql) = &self.setup_sql {
            conn.batch_execute(sql).map_err(Error::QueryError)?;
        }
        Ok(())
    }
}

/// An r2d2 pool builder whose connections are traced by `tracer` (r2d2's defaults
/// otherwise; a customizer set later on the builder replaces this one: to run set-up SQL
/// too, see [`TracingCustomizer::setup_sql`]).
///
/// Its event handler is tomograph's [`PoolEvents`]: each statement span is tagged
/// `db.client.connection.wait_time_us` with the time `pool.get()` waited for its connection
/// (the first statement recorded on that thread after the checkout: the pool's health check
/// runs before and never takes it), and a `get()` that times out becomes a failed span
/// `acquire connection`, child of the current span, `error.type` = `PoolTimedOut` (the
/// `on_error` hooks run once, with an empty `sql`). A builder made otherwise gets the same
/// with `.event_handler(Box::new(PoolEvents::new(tracer.sql().clone())))` (r2d2 takes one
/// event handler per pool).
///
/// ```
/// use std::time::Duration;
/// use diesel::prelude::*;
/// use diesel::r2d2::{ConnectionManager, Pool};
/// use tomograph_diesel::DieselTracer;
///
/// # tomograph::testing::memory_tracer();
/// let pool: Pool<ConnectionManager<SqliteConnection>> =
///     tomograph_diesel::r2d2::pool_builder(DieselTracer::from_url(":memory:"))
///         .max_size(1)
///         .connection_timeout(Duration::from_millis(100))
///         .build(ConnectionManager::new(":memory:"))?;
/// let _request = tomograph::span("request").start();
/// let mut conn = pool.get()?;
/// diesel::sql_query("SELECT 42").execute(&mut conn)?; // tagged with the wait of get()
/// assert!(pool.get().is_err()); // a span `acquire connection`, error.type PoolTimedOut
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pool_builder<C>(tracer: DieselTracer) -> Builder<ConnectionManager<C>>
where
    C: R2D2Connection + Send + 'static,
{
    let events = PoolEvents::new(tracer.sql().clone());
    Pool::builder()
        .connection_customizer(Box::new(TracingCustomizer::new(tracer)))
        .event_handler(Box::new(events))
}

/// Sends `pool`'s gauges to statsd (`db.{system}.pool.{name}.used`, `.idle`, `.max`) on
/// tomograph's pool-gauge interval while the returned watch lives (and keeps the pool open):
/// see [`tomograph::sql::watch_pool`].
///
/// ```
/// use diesel::prelude::*;
/// use diesel::r2d2::{ConnectionManager, Pool};
/// use tomograph_diesel::DieselTracer;
/// let tracer = DieselTracer::from_url(":memory:");
/// let pool: Pool<ConnectionManager<SqliteConnection>> =
///     tomograph_diesel::r2d2::pool_builder(tracer.clone()).max_size(2).build(ConnectionManager::new(":memory:"))?;
/// let _gauges = tomograph_diesel::r2d2::watch_gauges(&pool, &tracer, "main");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn watch_gauges<C>(
    pool: &Pool<ConnectionManager<C>>,
    tracer: &DieselTracer,
    name: &str,
) -> PoolWatch
where
    C: R2D2Connection + Send + 'static,
{
    let pool = pool.clone();
    tomograph::sql::watch_pool(tracer.sql().system(), name, move || {
        let state = pool.state();
        Some(PoolState::new(
            state.connections.saturating_sub(state.idle_connections),
            state.idle_connections,
            pool.max_size(),
        ))
    })
}
