//! [`TracedPool`]: a `sqlx::Pool` whose statements are traced.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Error, Executor, Pool, SqlSafeStr, Transaction};
use tomograph::sql::{PoolState, PoolWatch, SqlTracer};

use crate::connection::TracedConnection;
use crate::database::TracedDatabase;
use crate::executor::{Pooled, Target, acquire_counted, delegate_executor};
use crate::options::tracer_builder;
use crate::transaction::{self, TracedTransaction};

/// A [`sqlx::Pool`] whose every statement becomes a child span of the current context.
///
/// `&TracedPool` is a [`sqlx::Executor`]: use it wherever sqlx takes one (`fetch_all(&pool)`,
/// `execute(&pool)`, `query_as`, `query_scalar`, `fetch` streams, the output of the
/// `query!` macros). [`acquire`](TracedPool::acquire) gives a traced connection and
/// [`begin`](TracedPool::begin) a traced transaction. Clones share the pool and the tracer.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tomograph::FutureExt;
/// use tomograph_sqlx::TracedPool;
///
/// let memory = tomograph::testing::memory_tracer();
/// let pool = TracedPool::<sqlx::Sqlite>::connect("sqlite::memory:").await.unwrap();
///
/// let (trace, answer) = async {
///     let trace = tomograph::get_trace_info().unwrap().trace_id();
///     let answer: i64 = sqlx::query_scalar("SELECT 6 * 7").fetch_one(&pool).await.unwrap();
///     (trace, answer)
/// }
/// .traced_with(tomograph::span("request").root())
/// .await;
///
/// assert_eq!(answer, 42);
/// let spans = tomograph::testing::wait_for_trace(&memory, trace, 2, std::time::Duration::from_secs(5));
/// let select = spans.iter().find(|s| s.name() == "SELECT").unwrap();
/// assert_eq!(select.tag_value("sql.query").unwrap().to_string(), "SELECT 6 * 7");
/// # });
/// # }
/// ```
pub struct TracedPool<DB: TracedDatabase> {
    pool: Pool<DB>,
    tracer: SqlTracer,
    /// Acquires in flight through this pool and its clones (the `pending` gauge).
    pending: Arc<AtomicU32>,
}

impl<DB: TracedDatabase> TracedPool<DB> {
    /// Traces `pool` with the default policy; the database's address, port and name come
    /// from its connect options.
    pub fn new(pool: Pool<DB>) -> Self {
        let tracer = tracer_builder(&pool).build();
        Self::with_tracer(pool, tracer)
    }

    /// Traces `pool` with `tracer` (made with [`crate::tracer_builder`] to keep the database's
    /// address and name, then the policy of your choice).
    pub fn with_tracer(pool: Pool<DB>, tracer: SqlTracer) -> Self {
        Self {
            pool,
            tracer,
            pending: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Opens a pool with sqlx's default options ([`Pool::connect`]) and traces it.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Ok(Self::new(Pool::connect(url).await?))
    }

    /// A pool that connects on first use ([`Pool::connect_lazy`]), traced.
    pub fn connect_lazy(url: &str) -> Result<Self, Error> {
        Ok(Self::new(Pool::connect_lazy(url)?))
    }

    /// The pool itself, for migrations and anything sqlx-specific. Statements run through it
    /// directly are not traced.
    pub fn inner(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Unwraps the pool.
    pub fn into_inner(self) -> Pool<DB> {
        self.pool
    }

    /// The tracer: its policy, [`set_enabled`](SqlTracer::set_enabled) switch and hooks.
    pub fn tracer(&self) -> &SqlTracer {
        &self.tracer
    }

    /// Sends the pool's gauges to statsd (`db.{system}.pool.{name}.used`, `.idle`, `.max`,
    /// `.pending`) on tomograph's pool-gauge interval while the returned watch lives (and
    /// keeps the pool open): see [`tomograph::sql::watch_pool`]. `pending` counts the
    /// connections being waited for through this wrapper and its clones (statements,
    /// [`acquire`](Self::acquire), [`begin`](Self::begin)), not those asked of the inner
    /// `sqlx::Pool` directly ([`pending`](Self::pending)).
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] {
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = tomograph_sqlx::TracedPool::<sqlx::Sqlite>::connect("sqlite::memory:").await.unwrap();
    /// let _gauges = pool.watch_gauges("main");
    /// # });
    /// # }
    /// ```
    pub fn watch_gauges(&self, name: &str) -> PoolWatch {
        let pool = self.clone();
        tomograph::sql::watch_pool(DB::SYSTEM, name, move || Some(pool.pool_state()))
    }

    /// What the pool holds now, as [`watch_gauges`](Self::watch_gauges) reports it: the
    /// connections lent out and idle, the most it opens, and [`pending`](Self::pending).
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] {
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = tomograph_sqlx::TracedPool::<sqlx::Sqlite>::connect("sqlite::memory:").await.unwrap();
    /// let _conn = pool.acquire().await.unwrap();
    /// let state = pool.pool_state();
    /// assert_eq!((state.used(), state.pending()), (1, Some(0)));
    /// # });
    /// # }
    /// ```
    pub fn pool_state(&self) -> PoolState {
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        PoolState::new(
            size.saturating_sub(idle),
            idle,
            self.pool.options().get_max_connections(),
        )
        .with_pending(self.pending())
    }

    /// How many connections are being waited for through this pool (statements,
    /// [`acquire`](Self::acquire), [`begin`](Self::begin), from this wrapper and its clones)
    /// right now: the `pending` gauge of [`watch_gauges`](Self::watch_gauges).
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] {
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = tomograph_sqlx::TracedPool::<sqlx::Sqlite>::connect("sqlite::memory:").await.unwrap();
    /// assert_eq!(pool.pending(), 0);
    /// # });
    /// # }
    /// ```
    pub fn pending(&self) -> u32 {
        self.pending.load(Ordering::Relaxed)
    }

    /// A connection from the pool ([`Pool::acquire`]) whose statements are traced.
    pub async fn acquire(&self) -> Result<TracedConnection<DB>, Error> {
        let conn = acquire_counted(&self.pool, &self.pending).await?;
        Ok(TracedConnection::new(conn, self.tracer.clone()))
    }

    /// Starts a transaction on a connection from the pool ([`Pool::begin`]): a span
    /// `TRANSACTION`, child of the current context, with `BEGIN`, the statements run through
    /// the transaction, and `COMMIT` or `ROLLBACK` as its children.
    pub fn begin(
        &self,
    ) -> impl Future<Output = Result<TracedTransaction<'static, DB>, Error>> + Send + '_ {
        self.begin_inner(None)
    }

    /// Like [`begin`](TracedPool::begin), starting the transaction with `statement` (say,
    /// `BEGIN IMMEDIATE` on SQLite) instead of the driver's default ([`Pool::begin_with`]).
    pub fn begin_with(
        &self,
        statement: impl SqlSafeStr,
    ) -> impl Future<Output = Result<TracedTransaction<'static, DB>, Error>> + Send + '_ {
        self.begin_inner(Some(statement.into_sql_str()))
    }

    fn begin_inner(
        &self,
        statement: Option<sqlx::SqlStr>,
    ) -> impl Future<Output = Result<TracedTransaction<'static, DB>, Error>> + Send + '_ {
        let parent = tomograph::get_trace_info();
        transaction::begin(
            self.tracer.clone(),
            parent,
            0,
            statement,
            move |statement| async move {
                let conn = acquire_counted(&self.pool, &self.pending).await?;
                Transaction::begin(conn, statement).await
            },
        )
    }

    /// Closes the pool ([`Pool::close`]).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pooled(&self) -> Pooled<'_, DB> {
        Pooled {
            pool: &self.pool,
            tracer: &self.tracer,
            pending: &self.pending,
        }
    }

    pub(crate) fn target(&self) -> Target<'_, impl Executor<'_, Database = DB>> {
        Target {
            executor: DB::pool_executor(&self.pool),
            tracer: &self.tracer,
            origin: crate::executor::Origin::here(),
        }
    }
}

delegate_executor!(
    impl<'c> for &'c TracedPool<DB>,
    fetch_many: |this, query| crate::executor::fetch_many_pooled(
        this.pooled(),
        crate::executor::Origin::here(),
        query,
    ),
    fetch_optional: |this, query| crate::executor::fetch_optional_pooled(
        this.pooled(),
        crate::executor::Origin::here(),
        query,
    )
);

impl<DB: TracedDatabase> Clone for TracedPool<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            tracer: self.tracer.clone(),
            pending: Arc::clone(&self.pending),
        }
    }
}

impl<DB: TracedDatabase> fmt::Debug for TracedPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedPool")
            .field("pool", &self.pool)
            .field("tracer", &self.tracer)
            .finish()
    }
}

impl<DB: TracedDatabase> AsRef<Pool<DB>> for TracedPool<DB> {
    fn as_ref(&self) -> &Pool<DB> {
        &self.pool
    }
}

impl<DB: TracedDatabase> From<Pool<DB>> for TracedPool<DB> {
    fn from(pool: Pool<DB>) -> Self {
        Self::new(pool)
    }
}
