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

use diesel::ConnectionResult;
use diesel_async::AsyncConnection;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use futures_util::FutureExt as _;

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
