//! diesel-async connections and pools (bb8, deadpool) whose statements are traced.
//!
//! diesel-async calls the instrumentation inside the future that runs the statement, so a
//! statement's span is a child of that future's trace context. A thread-local span does not
//! follow a future across `.await` on a multi-thread runtime: give the future its context
//! with [`tomograph::FutureExt`] (`.in_current_trace()`, `.traced("name")`), or open the
//! spans inside a `#[traced]` async fn.
//!
//! ```no_run
//! # #[cfg(all(feature = "postgres", feature = "bb8"))]
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel_async::{AsyncPgConnection, RunQueryDsl};
//! use diesel_async::pooled_connection::bb8::Pool;
//! use tomograph::FutureExt;
//! use tomograph_diesel::DieselTracer;
//!
//! let url = "postgres://postgres@127.0.0.1:5432/test";
//! let manager = tomograph_diesel::asynchronous::manager::<AsyncPgConnection>(url, DieselTracer::from_url(url));
//! let pool = Pool::builder().max_size(8).build(manager).await?;
//!
//! async {
//!     let mut conn = pool.get().await?;
//!     diesel::sql_query("SELECT 42").execute(&mut conn).await?; // child of "request"
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! }
//! .traced("request")
//! .await?;
//! # Ok(())
//! # }
//! ```

//! Connection waits: bb8 and deadpool have no hook a tracer could use, so get pooled
//! connections with [`TracedGet::get_traced`] instead of `get`: the next statement on the
//! connection is tagged `db.client.connection.wait_time_us` with the wait, and a timeout
//! becomes a failed span `acquire connection` (`error.type` = `PoolTimedOut`).
//!
//! Pool gauges: bb8 and deadpool report their state themselves; hand it to
//! [`tomograph::sql::watch_pool`] (deadpool also counts the requests waiting):
//!
//! ```no_run
//! # #[cfg(all(feature = "postgres", feature = "deadpool"))]
//! # fn gauges(pool: diesel_async::pooled_connection::deadpool::Pool<diesel_async::AsyncPgConnection>) {
//! use tomograph::sql::{DbSystem, PoolState, watch_pool};
//! let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
//! let _gauges = watch_pool(DbSystem::Postgres, "orders", move || {
//!     let s = pool.status();
//!     Some(PoolState::new(count(s.size - s.available), count(s.available), count(s.max_size))
//!         .with_pending(count(s.waiting)))
//! });
//! # }
//! ```

use std::time::{Duration, Instant};

use diesel::ConnectionResult;
use diesel_async::AsyncConnection;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use futures_util::FutureExt as _;

use crate::instrumentation::TracingInstrumentation;
use crate::tracer::DieselTracer;

impl DieselTracer {
    /// Traces every statement of the diesel-async connection `conn` from now on.
    pub fn instrument_async<C: AsyncConnection>(&self, conn: &mut C) {
        conn.set_instrumentation(self.instrumentation());
    }
}

/// Establishes a diesel-async connection traced by `tracer`. Its establishment is not traced
/// (the instrumentation is set once it exists): for `connect` spans, see
/// [`DieselTracer::install_default`].
///
/// # Errors
/// diesel-async's, when the connection cannot be established.
pub async fn establish<C: AsyncConnection>(
    url: &str,
    tracer: &DieselTracer,
) -> ConnectionResult<C> {
    let mut conn = C::establish(url).await?;
    tracer.instrument_async(&mut conn);
    Ok(conn)
}

/// A pool manager configuration whose connections are traced by `tracer` (diesel-async's
/// defaults otherwise). The `Verified` recycling check (`SELECT $1` / `SELECT ?`) makes no
/// span unless [`DieselTracer::trace_health_checks`] says so.
pub fn manager_config<C>(tracer: DieselTracer) -> ManagerConfig<C>
where
    C: AsyncConnection + 'static,
{
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(move |url| {
        let tracer = tracer.clone();
        let url = url.to_owned();
        async move { establish::<C>(&url, &tracer).await }.boxed()
    });
    config
}

/// A connection manager for bb8 / deadpool / mobc pools whose connections are traced by
/// `tracer`.
pub fn manager<C>(url: impl Into<String>, tracer: DieselTracer) -> AsyncDieselConnectionManager<C>
where
    C: AsyncConnection + 'static,
{
    AsyncDieselConnectionManager::new_with_config(url, manager_config(tracer))
}

/// Gets a connection from a diesel-async pool (bb8 with feature `bb8`, deadpool with
/// `deadpool`) like its own `get`, and traces the wait:
///
/// - the connection's [`TracingInstrumentation`] gets the time `get` took
///   ([`TracingInstrumentation::set_pending_wait`]): the next statement's span is tagged
///   `db.client.connection.wait_time_us` with it;
/// - a timeout (bb8's `RunError::TimedOut`, deadpool's `PoolError::Timeout`) becomes a failed
///   CLIENT span `acquire connection`, child of the task's current span, started when the wait
///   started, `error.type` = `PoolTimedOut`, and `tracer`'s `on_error` hooks run once with the
///   pool's error and an empty `sql` ([`tomograph::sql::SqlTracer::pool_timed_out`]).
///
/// It takes the tracer because a pool that times out has no connection to find one on (and
/// neither pool shows its manager's configuration): give the one the pool's
/// [`manager`] traces with. A connection the tracer does not instrument (a manager set up
/// otherwise) gets no wait tag; its timeouts are still traced.
///
/// ```no_run
/// # #[cfg(all(feature = "postgres", feature = "bb8"))]
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use diesel_async::{AsyncPgConnection, RunQueryDsl};
/// use diesel_async::pooled_connection::bb8::Pool;
/// use tomograph::FutureExt;
/// use tomograph_diesel::DieselTracer;
/// use tomograph_diesel::asynchronous::TracedGet;
///
/// let url = "postgres://postgres@127.0.0.1:5432/test";
/// let tracer = DieselTracer::from_url(url);
/// let manager = tomograph_diesel::asynchronous::manager::<AsyncPgConnection>(url, tracer.clone());
/// let pool = Pool::builder().max_size(2).connection_timeout(Duration::from_secs(1)).build(manager).await?;
///
/// async {
///     let mut conn = pool.get_traced(&tracer).await?;
///     diesel::sql_query("SELECT 42").execute(&mut conn).await?; // tagged with the wait
///     Ok::<_, Box<dyn std::error::Error>>(())
/// }
/// .traced("request")
/// .await?;
/// # Ok(())
/// # }
/// ```
pub trait TracedGet {
    /// The pooled connection (`bb8::PooledConnection`, `deadpool::managed::Object`).
    type Connection<'a>
    where
        Self: 'a;
    /// The pool's error.
    type Error;

    /// A connection from the pool, its wait traced.
    fn get_traced<'a>(
        &'a self,
        tracer: &'a DieselTracer,
    ) -> impl Future<Output = Result<Self::Connection<'a>, Self::Error>> + Send + 'a;
}

/// Hands `wait` to `conn`'s next statement, when tomograph instruments it.
fn lend<C: AsyncConnection>(conn: &mut C, wait: Duration) {
    if let Some(instrumentation) = conn
        .instrumentation()
        .downcast_mut::<TracingInstrumentation>()
    {
        instrumentation.set_pending_wait(wait);
    }
}

/// Times a pool's `get`: the connection it gives takes the wait for its next statement; a
/// timeout (`timed_out`) becomes the failed `acquire connection` span.
#[cfg(any(feature = "bb8", feature = "deadpool"))]
async fn timed_get<P, E>(
    tracer: &DieselTracer,
    get: impl std::future::Future<Output = Result<P, E>>,
    timed_out: impl FnOnce(&E) -> bool,
) -> Result<P, E>
where
    P: std::ops::DerefMut<Target: AsyncConnection>,
    E: std::error::Error + 'static,
{
    let started = Instant::now();
    match get.await {
        Ok(mut conn) => {
            lend(&mut *conn, started.elapsed());
            Ok(conn)
        }
        Err(error) => {
            if timed_out(&error) {
                tracer.sql().pool_timed_out(started.elapsed(), &error);
            }
            Err(error)
        }
    }
}

#[cfg(feature = "bb8")]
impl<M> TracedGet for bb8::Pool<M>
where
    M: bb8::ManageConnection,
    M::Connection: AsyncConnection,
    M::Error: std::error::Error,
{
    type Connection<'a> = bb8::PooledConnection<'a, M>;
    type Error = bb8::RunError<M::Error>;

    async fn get_traced<'a>(
        &'a self,
        tracer: &'a DieselTracer,
    ) -> Result<Self::Connection<'a>, Self::Error> {
        timed_get(tracer, self.get(), |error| {
            matches!(error, bb8::RunError::TimedOut)
        })
        .await
    }
}

#[cfg(feature = "deadpool")]
impl<M> TracedGet for deadpool::managed::Pool<M>
where
    M: deadpool::managed::Manager,
    M::Type: AsyncConnection,
    M::Error: std::error::Error + 'static,
{
    type Connection<'a>
        = deadpool::managed::Object<M>
    where
        M: 'a;
    type Error = deadpool::managed::PoolError<M::Error>;

    async fn get_traced<'a>(
        &'a self,
        tracer: &'a DieselTracer,
    ) -> Result<Self::Connection<'a>, Self::Error> {
        timed_get(tracer, self.get(), |error| {
            matches!(error, deadpool::managed::PoolError::Timeout(_))
        })
        .await
    }
}
