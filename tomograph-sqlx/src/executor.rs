//! The delegating executor shared by every wrapper: one generic implementation of
//! `fetch_many`, `fetch_optional`, `prepare_with` and `describe` that traces the statement and
//! hands it to the driver's own executor. sqlx builds `execute`, `fetch`, `fetch_all` and
//! `fetch_one` on these, so every call is traced exactly once.
//!
//! A statement that nothing would observe ([`SqlTracer::observes`]: no sampled trace, tracing
//! off, no `on_error` hook) goes straight to the driver's executor, untouched.
//!
//! The parent is captured when the executor method is called (synchronously, in the caller's
//! poll, where the caller's context is installed); the span starts when the statement starts
//! (first poll of the returned future or stream) and ends when it completes, fails, or is
//! dropped.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::StreamExt;
use sqlx::error::BoxDynError;
use sqlx::{Arguments, Database, Describe, Either, Error, Execute, Executor, SqlStr};
use tomograph::TraceToken;
use tomograph::sql::{SqlSpan, SqlTracer};

use crate::database::TracedDatabase;
use crate::stream::FutureStream;

/// Where a statement was issued: the context current in the executor call (its parent) and
/// the summary [`tomograph::sql::with_summary`] set there, if any. Captured synchronously, in
/// the caller's poll.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub(crate) parent: Option<TraceToken>,
    summary: Option<&'static str>,
}

impl Origin {
    /// The caller's context, now.
    pub(crate) fn here() -> Self {
        Self {
            parent: tomograph::get_trace_info(),
            summary: tomograph::sql::summary_override(),
        }
    }

    /// Under `parent` (a transaction's span), named from the text.
    pub(crate) fn under(parent: Option<TraceToken>) -> Self {
        Self {
            parent,
            summary: None,
        }
    }
}

/// A driver executor plus what tracing needs: the tracer and where the statement was issued.
pub(crate) struct Target<'c, X> {
    pub(crate) executor: X,
    pub(crate) tracer: &'c SqlTracer,
    pub(crate) origin: Origin,
}

/// Starts the span of a statement issued at `origin` ([`SqlTracer::start_under`]). Owned: it
/// lives in futures and streams that outlive the borrow (a reference count is nothing beside
/// a round trip to the database).
pub(crate) fn start(tracer: &SqlTracer, origin: Origin, sql: &str) -> SqlSpan<'static> {
    match origin.summary {
        Some(summary) => {
            let statement = tracer.statement_with_summary(sql, summary);
            tracer.start_statement_under_owned(&statement, origin.parent)
        }
        None => tracer.start_under_owned(sql, origin.parent),
    }
}

/// One statement in flight: its span (which counts the rows) and its text. Dropped before
/// [`finish`](Call::finish) or [`fail`](Call::fail) (which end the span; later calls do
/// nothing) (a cancelled future, a stream dropped early), the span ends with the rows
/// counted so far and a `dropped` note.
pub(crate) struct Call<DB: TracedDatabase> {
    sql: SqlStr,
    span: Option<SqlSpan<'static>>,
    _db: PhantomData<fn() -> DB>,
}

impl<DB: TracedDatabase> Call<DB> {
    pub(crate) fn start(
        tracer: &SqlTracer,
        origin: Origin,
        sql: SqlStr,
        arguments: Option<&DB::Arguments>,
    ) -> Self {
        let mut span = start(tracer, origin, sql.as_str());
        if let Some(arguments) = arguments {
            span.parameters(|| DB::describe_arguments(arguments));
        }
        // Every statement reports its rows, none included.
        span.count_rows(0);
        Self {
            sql,
            span: Some(span),
            _db: PhantomData,
        }
    }

    /// The statement waited `wait` for a pooled connection.
    fn waited(&mut self, wait: Duration) {
        if let Some(span) = &mut self.span {
            span.connection_wait(wait);
        }
    }

    pub(crate) fn annotate(&mut self, note: &'static str) {
        if let Some(span) = &mut self.span {
            span.annotate(note);
        }
    }

    fn row(&mut self) {
        if let Some(span) = &mut self.span {
            span.count_rows(1);
        }
    }

    fn observe(&mut self, item: &Either<DB::QueryResult, DB::Row>) {
        match item {
            Either::Left(result) => {
                if let Some(span) = &mut self.span {
                    span.count_affected(DB::rows_affected(result));
                }
            }
            Either::Right(_) => self.row(),
        }
    }

    /// The statement completed.
    pub(crate) fn finish(&mut self) {
        // Ended where it sits (dropping a span ends it as a success): not moved out first, a
        // copy of a few hundred bytes.
        self.span = None;
    }

    /// The statement ended with `result`: [`finish`](Call::finish) or [`fail`](Call::fail).
    pub(crate) fn settle<T>(&mut self, result: &Result<T, Error>) {
        match result {
            Ok(_) => self.finish(),
            Err(error) => self.fail(error),
        }
    }

    /// A `fetch_optional` ended with `result`: at most one row.
    pub(crate) fn settle_optional(&mut self, result: &Result<Option<DB::Row>, Error>) {
        if let Ok(Some(_)) = result {
            self.row();
        }
        self.settle(result);
    }

    /// The statement failed: error tags and note, `on_error` hooks, the database's code
    /// where the driver gives one ([`DB::status_code`](TracedDatabase::status_code)).
    pub(crate) fn fail(&mut self, error: &Error) {
        if let Some(span) = self.span.take() {
            let code = status_code::<DB>(error);
            span.fail_as(self.sql.as_str(), error, code.as_deref(), error_type(error));
        }
    }
}

/// The database's code for `error` (`db.response.status_code`), when it came from the
/// database.
pub(crate) fn status_code<DB: TracedDatabase>(error: &Error) -> Option<String> {
    match error {
        Error::Database(e) => DB::status_code(&**e),
        _ => None,
    }
}

/// The error's class, for `error.type`, where sqlx says more than the status code: the
/// database's kind of failure (`UniqueViolation`, …) or sqlx's error variant (`PoolTimedOut`,
/// …); `None` for other database errors, whose code is their class.
pub(crate) fn error_type(error: &Error) -> Option<&'static str> {
    use sqlx::error::ErrorKind;
    Some(match error {
        Error::Database(e) => match e.kind() {
            ErrorKind::UniqueViolation => "UniqueViolation",
            ErrorKind::ForeignKeyViolation => "ForeignKeyViolation",
            ErrorKind::NotNullViolation => "NotNullViolation",
            ErrorKind::CheckViolation => "CheckViolation",
            _ => return None,
        },
        Error::Configuration(_) => "Configuration",
        Error::InvalidArgument(_) => "InvalidArgument",
        Error::Io(_) => "Io",
        Error::Tls(_) => "Tls",
        Error::Protocol(_) => "Protocol",
        Error::RowNotFound => "RowNotFound",
        Error::TypeNotFound { .. } => "TypeNotFound",
        Error::ColumnIndexOutOfBounds { .. } => "ColumnIndexOutOfBounds",
        Error::ColumnNotFound(_) => "ColumnNotFound",
        Error::ColumnDecode { .. } => "ColumnDecode",
        Error::Encode(_) => "Encode",
        Error::Decode(_) => "Decode",
        Error::PoolTimedOut => "PoolTimedOut",
        Error::PoolClosed => "PoolClosed",
        Error::WorkerCrashed => "WorkerCrashed",
        _ => return None,
    })
}

impl<DB: TracedDatabase> Drop for Call<DB> {
    fn drop(&mut self) {
        // The span ends after this, with the field, where it sits.
        if let Some(span) = &mut self.span {
            span.annotate("dropped");
        }
    }
}

/// A query taken apart: `Execute::sql` consumes the query, so the adapter reads every part
/// once and hands the driver this stand-in with the same behaviour.
pub(crate) struct Forward<DB: Database> {
    sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<Result<Option<DB::Arguments>, BoxDynError>>,
    persistent: bool,
}

impl<DB: Database> Forward<DB> {
    pub(crate) fn new<'q, E: Execute<'q, DB>>(mut query: E) -> Self {
        let statement = query.statement().cloned();
        let arguments = Some(query.take_arguments());
        let persistent = query.persistent();
        let sql = query.sql();
        Self {
            sql,
            statement,
            arguments,
            persistent,
        }
    }

    fn arguments(&self) -> Option<&DB::Arguments> {
        match &self.arguments {
            Some(Ok(Some(arguments))) if arguments.len() > 0 => Some(arguments),
            _ => None,
        }
    }
}

impl<DB: Database> Execute<'_, DB> for Forward<DB> {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.statement.as_ref()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

type Step<DB> = Result<Either<<DB as Database>::QueryResult, <DB as Database>::Row>, Error>;

/// `Executor::fetch_many` of every wrapper.
pub(crate) fn fetch_many<'c, 'e, 'q, DB, X, E>(
    target: Target<'c, X>,
    query: E,
) -> BoxStream<'e, Step<DB>>
where
    'c: 'e,
    'q: 'e,
    DB: TracedDatabase,
    X: Executor<'c, Database = DB> + 'c,
    E: 'q + Execute<'q, DB>,
{
    if !target.tracer.observes(target.origin.parent) {
        return target.executor.fetch_many(query);
    }
    Box::pin(TracedStream {
        pending: Some((target.executor, Forward::new(query))),
        tracer: target.tracer,
        origin: target.origin,
        inner: None,
        call: None,
        _lifetime: PhantomData,
    })
}

/// The stream of a traced `fetch_many`: starts the statement's span and the driver's stream
/// on first poll, counts rows, ends the span when the stream ends, fails or is dropped.
struct TracedStream<'c, 'e, DB: TracedDatabase, X> {
    pending: Option<(X, Forward<DB>)>,
    tracer: &'c SqlTracer,
    origin: Origin,
    inner: Option<BoxStream<'e, Step<DB>>>,
    call: Option<Call<DB>>,
    _lifetime: PhantomData<&'e ()>,
}

// Nothing in the stream is structurally pinned: the driver's stream is boxed and pinned on its
// own, and the executor and query are moved out before they are used.
impl<DB: TracedDatabase, X> Unpin for TracedStream<'_, '_, DB, X> {}

impl<'c, 'e, DB, X> Stream for TracedStream<'c, 'e, DB, X>
where
    'c: 'e,
    DB: TracedDatabase,
    X: Executor<'c, Database = DB> + 'c,
{
    type Item = Step<DB>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some((executor, query)) = this.pending.take() {
            let sql = query.sql.clone();
            this.call = Some(Call::start(
                this.tracer,
                this.origin,
                sql,
                query.arguments(),
            ));
            this.inner = Some(executor.fetch_many(query));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let item = ready!(inner.poll_next_unpin(cx));
        match &item {
            Some(Ok(step)) => {
                if let Some(call) = &mut this.call {
                    call.observe(step);
                }
            }
            Some(Err(error)) => {
                if let Some(call) = &mut this.call {
                    call.fail(error);
                }
            }
            None => {
                if let Some(call) = &mut this.call {
                    call.finish();
                }
                this.inner = None;
            }
        }
        Poll::Ready(item)
    }
}

/// `Executor::fetch_optional` of every wrapper.
pub(crate) fn fetch_optional<'c, 'e, 'q, DB, X, E>(
    target: Target<'c, X>,
    query: E,
) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
where
    'c: 'e,
    'q: 'e,
    DB: TracedDatabase,
    X: Executor<'c, Database = DB> + 'c,
    E: 'q + Execute<'q, DB>,
{
    if !target.tracer.observes(target.origin.parent) {
        return target.executor.fetch_optional(query);
    }
    traced_optional(
        target.tracer,
        target.origin,
        Forward::new(query),
        move |query| target.executor.fetch_optional(query),
    )
}

/// What a traced pool's statements need: the pool, the tracer, and the count of acquires in
/// flight (the pool's `pending` gauge).
#[derive(Clone, Copy)]
pub(crate) struct Pooled<'c, DB: Database> {
    pub(crate) pool: &'c sqlx::Pool<DB>,
    pub(crate) tracer: &'c SqlTracer,
    pub(crate) pending: &'c AtomicU32,
}

/// One acquire in flight, counted until it is dropped (acquired, failed or cancelled).
struct Waiting<'a>(&'a AtomicU32);

impl<'a> Waiting<'a> {
    fn new(pending: &'a AtomicU32) -> Self {
        pending.fetch_add(1, Ordering::Relaxed);
        Self(pending)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection from `pool`, the acquire counted in `pending` while it waits.
pub(crate) async fn acquire_counted<DB: Database>(
    pool: &sqlx::Pool<DB>,
    pending: &AtomicU32,
) -> Result<sqlx::pool::PoolConnection<DB>, Error> {
    let _waiting = Waiting::new(pending);
    pool.acquire().await
}

impl<'c, DB: TracedDatabase> Pooled<'c, DB> {
    /// A connection for `call`'s statement, the time it waited tagged on the statement's span
    /// (a tag, not an acquire span: one more span per statement would double what a busy
    /// service sends).
    async fn acquire_for(
        &self,
        call: &mut Call<DB>,
    ) -> Result<sqlx::pool::PoolConnection<DB>, Error> {
        let waiting = Instant::now();
        let conn = acquire_counted(self.pool, self.pending).await;
        call.waited(waiting.elapsed());
        conn
    }
}

/// `Executor::fetch_optional` of a traced pool: the connection is acquired inside the traced
/// future (its wait tagged `db.client.connection.wait_time_us`, a timeout failing the
/// statement with `PoolTimedOut`), so the statement goes through as many boxed futures as an
/// untraced one (the pool's own `fetch_optional` boxes a future that acquires and delegates).
/// Measured: PostgreSQL `fetch_one` 1.004–1.014 instead of 1.006–1.023. Statements nothing
/// observes take the same path without the span (their acquire is counted for the pool's
/// `pending` gauge).
pub(crate) fn fetch_optional_pooled<'c, 'e, 'q, DB, E>(
    pooled: Pooled<'c, DB>,
    origin: Origin,
    query: E,
) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
where
    'c: 'e,
    'q: 'e,
    DB: TracedDatabase,
    E: 'q + Execute<'q, DB>,
{
    if !pooled.tracer.observes(origin.parent) {
        return Box::pin(async move {
            let mut conn = acquire_counted(pooled.pool, pooled.pending).await?;
            DB::connection_executor(&mut conn)
                .fetch_optional(query)
                .await
        });
    }
    let query = Forward::new(query);
    Box::pin(async move {
        let mut call =
            Call::<DB>::start(pooled.tracer, origin, query.sql.clone(), query.arguments());
        let result = match pooled.acquire_for(&mut call).await {
            Ok(mut conn) => {
                DB::connection_executor(&mut conn)
                    .fetch_optional(query)
                    .await
            }
            Err(error) => Err(error),
        };
        call.settle_optional(&result);
        result
    })
}

/// `Executor::fetch_many` of a traced pool (and so `execute`, `fetch`, `fetch_all` through
/// it): like [`fetch_optional_pooled`], the connection is acquired inside the traced stream,
/// its wait tagged on the statement's span and a timeout failing it. The stream is a future
/// that owns the connection and hands the driver's items out one by one
/// ([`FutureStream`](crate::stream::FutureStream)), as sqlx's own pool executor does: the
/// same allocations as an untraced pooled `fetch_many`. As there, the stream ends at the first
/// error.
pub(crate) fn fetch_many_pooled<'c, 'e, 'q, DB, E>(
    pooled: Pooled<'c, DB>,
    origin: Origin,
    query: E,
) -> BoxStream<'e, Step<DB>>
where
    'c: 'e,
    'q: 'e,
    DB: TracedDatabase,
    E: 'q + Execute<'q, DB>,
{
    if !pooled.tracer.observes(origin.parent) {
        return Box::pin(FutureStream::new(move |out| async move {
            let mut conn = acquire_counted(pooled.pool, pooled.pending).await?;
            let mut stream = DB::connection_executor(&mut conn).fetch_many(query);
            while let Some(item) = stream.next().await {
                out.give(item?).await;
            }
            Ok(())
        }));
    }
    let query = Forward::new(query);
    Box::pin(FutureStream::new(move |out| async move {
        let mut call =
            Call::<DB>::start(pooled.tracer, origin, query.sql.clone(), query.arguments());
        let mut conn = match pooled.acquire_for(&mut call).await {
            Ok(conn) => conn,
            Err(error) => {
                call.fail(&error);
                return Err(error);
            }
        };
        let mut stream = DB::connection_executor(&mut conn).fetch_many(query);
        while let Some(item) = stream.next().await {
            match item {
                Ok(step) => {
                    call.observe(&step);
                    out.give(step).await;
                }
                Err(error) => {
                    call.fail(&error);
                    return Err(error);
                }
            }
        }
        call.finish();
        Ok(())
    }))
}

/// The traced future of a `fetch_optional`: the statement's span around `run(query)`.
fn traced_optional<'e, DB, F>(
    tracer: &'e SqlTracer,
    origin: Origin,
    query: Forward<DB>,
    run: impl FnOnce(Forward<DB>) -> F + Send + 'e,
) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
where
    DB: TracedDatabase,
    F: Future<Output = Result<Option<DB::Row>, Error>> + Send + 'e,
{
    Box::pin(async move {
        let mut call = Call::<DB>::start(tracer, origin, query.sql.clone(), query.arguments());
        let result = run(query).await;
        call.settle_optional(&result);
        result
    })
}

/// `Executor::prepare_with` of every wrapper: a span for the statement with a `prepare` note.
pub(crate) fn prepare_with<'c, 'e, DB, X>(
    target: Target<'c, X>,
    sql: SqlStr,
    parameters: &'e [DB::TypeInfo],
) -> BoxFuture<'e, Result<DB::Statement, Error>>
where
    'c: 'e,
    DB: TracedDatabase,
    X: Executor<'c, Database = DB> + 'c,
{
    if !target.tracer.observes(target.origin.parent) {
        return target.executor.prepare_with(sql, parameters);
    }
    Box::pin(async move {
        let mut call = Call::<DB>::start(target.tracer, target.origin, sql.clone(), None);
        call.annotate("prepare");
        let result = target.executor.prepare_with(sql, parameters).await;
        call.settle(&result);
        result
    })
}

/// `Executor::describe` of every wrapper (used by sqlx's macros): like a prepare, with a
/// `describe` note.
pub(crate) fn describe<'c, 'e, DB, X>(
    target: Target<'c, X>,
    sql: SqlStr,
) -> BoxFuture<'e, Result<Describe<DB>, Error>>
where
    'c: 'e,
    DB: TracedDatabase,
    X: Executor<'c, Database = DB> + 'c,
{
    if !target.tracer.observes(target.origin.parent) {
        return target.executor.describe(sql);
    }
    Box::pin(async move {
        let mut call = Call::<DB>::start(target.tracer, target.origin, sql.clone(), None);
        call.annotate("describe");
        let result = target.executor.describe(sql).await;
        call.settle(&result);
        result
    })
}

/// Implements `sqlx::Executor` for a wrapper with an inherent
/// `fn target(self) -> Target<'c, impl Executor<'c, Database = DB>>`, by delegating to the
/// functions above: the four methods every sqlx executor provides, written once. A wrapper may
/// give its own `fetch_optional` (`fetch_optional: |this, query| …`), and its own `fetch_many`
/// before it (`fetch_many: |this, query| …, fetch_optional: …`).
macro_rules! delegate_executor {
    (impl<$c:lifetime $(, $extra:lifetime)*> for $ty:ty) => {
        $crate::executor::delegate_executor!(
            impl<$c $(, $extra)*> for $ty,
            fetch_optional: |this, query| $crate::executor::fetch_optional(this.target(), query)
        );
    };
    (
        impl<$c:lifetime $(, $extra:lifetime)*> for $ty:ty,
        fetch_optional: |$this:ident, $query:ident| $fetch_optional:expr
    ) => {
        $crate::executor::delegate_executor!(
            impl<$c $(, $extra)*> for $ty,
            fetch_many: |this, query| $crate::executor::fetch_many(this.target(), query),
            fetch_optional: |$this, $query| $fetch_optional
        );
    };
    (
        impl<$c:lifetime $(, $extra:lifetime)*> for $ty:ty,
        fetch_many: |$this_many:ident, $query_many:ident| $fetch_many:expr,
        fetch_optional: |$this:ident, $query:ident| $fetch_optional:expr
    ) => {
        impl<$c $(, $extra)*, DB: $crate::database::TracedDatabase> sqlx::Executor<$c> for $ty {
            type Database = DB;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> futures_core::stream::BoxStream<
                'e,
                Result<sqlx::Either<DB::QueryResult, DB::Row>, sqlx::Error>,
            >
            where
                $c: 'e,
                E: 'q + sqlx::Execute<'q, DB>,
            {
                let $this_many = self;
                let $query_many = query;
                $fetch_many
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> futures_core::future::BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
            where
                $c: 'e,
                E: 'q + sqlx::Execute<'q, DB>,
            {
                let $this = self;
                let $query = query;
                $fetch_optional
            }

            fn prepare_with<'e>(
                self,
                sql: sqlx::SqlStr,
                parameters: &'e [DB::TypeInfo],
            ) -> futures_core::future::BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
            where
                $c: 'e,
            {
                $crate::executor::prepare_with(self.target(), sql, parameters)
            }

            #[doc(hidden)]
            fn describe<'e>(
                self,
                sql: sqlx::SqlStr,
            ) -> futures_core::future::BoxFuture<'e, Result<sqlx::Describe<DB>, sqlx::Error>>
            where
                $c: 'e,
            {
                $crate::executor::describe(self.target(), sql)
            }
        }
    };
}

pub(crate) use delegate_executor;
