//! diesel-async: traced bb8 and deadpool pools on PostgreSQL and MariaDB; statements are
//! children of the task's context (given with tomograph's `FutureExt`), on a multi-thread
//! runtime with many tasks at once.
#![cfg(feature = "async")]
#![allow(clippy::unwrap_used)]

mod common;

use diesel_async::{AsyncConnection, RunQueryDsl};
use tomograph::FutureExt;
use tomograph_diesel::DieselTracer;

use common::*;

const TASKS: usize = 16;

/// Runs `TASKS` tasks, each inside its own span `task {i}` of one trace, each running
/// `SELECT {i}` on a pooled connection; checks every statement is its task's child.
async fn tasks_on_pool<F, Fut>(label: &str, run: F)
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let memory = memory();
    let root = tomograph::span(label.to_owned()).root().start();
    let trace = root.token().unwrap().trace_id();
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let run = run.clone();
        handles.push(tokio::spawn(
            async move {
                tokio::task::yield_now().await;
                run(format!("SELECT {i} AS task")).await;
                tokio::task::yield_now().await;
            }
            .traced(format!("task {i}")),
        ));
    }
    drop(root);
    for handle in handles {
        handle.await.unwrap();
    }
    let spans = exact_spans(&memory, trace, 1 + 2 * TASKS);
    for i in 0..TASKS {
        let task = one(&spans, &format!("task {i}"));
        let mine = with_sql(&spans, &format!("SELECT {i} AS task"));
        assert_eq!(mine.len(), 1, "task {i}: {}", names(&spans));
        assert_eq!(mine[0].parent_id(), Some(task.id()));
    }
    assert!(with_sql(&spans, "SELECT $1").is_empty() && with_sql(&spans, "SELECT ?").is_empty());
}

#[cfg(all(feature = "postgres", feature = "bb8"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bb8_pool() {
    use diesel_async::AsyncPgConnection;
    use diesel_async::pooled_connection::bb8::Pool;
    let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_POSTGRES_URL") else {
        return;
    };
    let manager = tomograph_diesel::asynchronous::manager::<AsyncPgConnection>(
        &url,
        DieselTracer::from_url(&url),
    );
    let pool = Pool::builder().max_size(4).build(manager).await.unwrap();
    tasks_on_pool("pg bb8", move |sql| {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.unwrap();
            diesel::sql_query(sql).execute(&mut conn).await.unwrap();
        }
    })
    .await;
}

#[cfg(all(feature = "mysql", feature = "deadpool"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_deadpool_pool() {
    use diesel_async::AsyncMysqlConnection;
    use diesel_async::pooled_connection::deadpool::Pool;
    let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_MYSQL_URL") else {
        return;
    };
    let manager = tomograph_diesel::asynchronous::manager::<AsyncMysqlConnection>(
        &url,
        DieselTracer::from_url(&url),
    );
    let pool = Pool::builder(manager).max_size(4).build().unwrap();
    tasks_on_pool("mysql deadpool", move |sql| {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.unwrap();
            diesel::sql_query(sql).execute(&mut conn).await.unwrap();
        }
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_async_transaction_and_unique_violation() {
    use diesel_async::AsyncPgConnection;
    let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_POSTGRES_URL") else {
        return;
    };
    let memory = memory();
    let hooks = Hooks::default();
    let tracer = DieselTracer::new(
        hooks
            .install(tomograph_diesel::builder_for_url(&url))
            .build(),
    );
    let mut conn: AsyncPgConnection = tomograph_diesel::asynchronous::establish(&url, &tracer)
        .await
        .unwrap();
    let table = "tg_diesel_async_pg_tx";
    diesel::sql_query(format!("DROP TABLE IF EXISTS {table}"))
        .execute(&mut conn)
        .await
        .unwrap();
    diesel::sql_query(format!("CREATE TABLE {table} (name TEXT PRIMARY KEY)"))
        .execute(&mut conn)
        .await
        .unwrap();
    let root = tomograph::span("async tx").root().start();
    let trace = root.token().unwrap().trace_id();
    let work = async {
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            diesel::sql_query(format!("INSERT INTO {table} VALUES ('a')"))
                .execute(conn)
                .await?;
            tokio::task::yield_now().await;
            diesel::sql_query(format!("INSERT INTO {table} VALUES ('a')"))
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
    }
    .in_current_trace();
    drop(root);
    let result = work.await;
    assert!(result.is_err());
    let spans = exact_spans(&memory, trace, 6);
    let tx = one(&spans, "TRANSACTION");
    assert_eq!(
        tag(tx, "db.transaction.outcome").as_deref(),
        Some("rollback")
    );
    let failed: Vec<_> = spans
        .iter()
        .filter(|s| s.name() == format!("INSERT {table}") && s.is_error())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].parent_id(), Some(tx.id()));
    assert_eq!(
        tag(failed[0], "error.type").as_deref(),
        Some("UniqueViolation")
    );
    assert_eq!(one(&spans, "ROLLBACK").parent_id(), Some(tx.id()));
    assert_eq!(hooks.calls().len(), 1);
}

const WAITERS: usize = 20;

/// 20 tasks, each the root of its own trace, share a pool of 2 through `run` (which gets a
/// connection with `get_traced`, runs the statement it is given and holds the connection a
/// few milliseconds): every statement says how long its task waited, and some waited.
async fn twenty_tasks_on_a_pool_of_two<F, Fut>(label: &str, run: F)
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let memory = memory();
    let handles: Vec<_> = (0..WAITERS)
        .map(|n| {
            let run = run.clone();
            tokio::spawn(
                async move {
                    run(format!("SELECT {n} AS waiter")).await;
                    tomograph::get_trace_info().unwrap().trace_id()
                }
                .traced_with(tomograph::span(format!("{label} waiter {n}")).root()),
            )
        })
        .collect();
    let mut traces = Vec::new();
    for handle in handles {
        traces.push(handle.await.unwrap());
    }
    assert_waiters_waited(&memory, traces);
}

/// `timed_out` holds the pool's only connection and asks for another with `get_traced`
/// (true when that timed out): a failed `acquire connection` span under the task's span, the
/// hooks called once with `PoolTimedOut`.
async fn a_timeout_in_a_task<Fut>(hooks: &TypeHooks, system: &str, timed_out: Fut)
where
    Fut: std::future::Future<Output = bool> + Send,
{
    let memory = memory();
    let (trace, root, timed_out) = async {
        let token = tomograph::get_trace_info().unwrap();
        (token.trace_id(), token.span_id(), timed_out.await)
    }
    .traced_with(tomograph::span("timeout").root())
    .await;
    assert!(timed_out, "the pool timed out");
    let spans = exact_spans(&memory, trace, 2);
    assert_pool_timeout(&spans, root, system, TIMEOUT);
    assert_eq!(
        hooks.calls(),
        [(String::new(), "PoolTimedOut".to_owned(), true)]
    );
}

const TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);

/// A tracer for `url` whose hooks `hooks` records.
fn hooked(url: &str, hooks: &TypeHooks) -> DieselTracer {
    DieselTracer::new(
        hooks
            .install(tomograph_diesel::builder_for_url(url))
            .build(),
    )
}

macro_rules! bb8_waits {
    ($name:ident, $feature:literal, $conn:ty, $env:literal, $system:literal) => {
        #[cfg(all(feature = $feature, feature = "bb8"))]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            use diesel_async::pooled_connection::bb8::Pool;
            use tomograph_diesel::asynchronous::TracedGet;
            let Some(url) = tomograph::testing::require_env($env) else {
                return;
            };
            let tracer = DieselTracer::from_url(&url);
            let manager = tomograph_diesel::asynchronous::manager::<$conn>(&url, tracer.clone());
            let pool = Pool::builder().max_size(2).build(manager).await.unwrap();
            twenty_tasks_on_a_pool_of_two($system, move |sql| {
                let (pool, tracer) = (pool.clone(), tracer.clone());
                async move {
                    let mut conn = pool.get_traced(&tracer).await.unwrap();
                    diesel::sql_query(sql).execute(&mut conn).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
            .await;

            let hooks = TypeHooks::default();
            let tracer = hooked(&url, &hooks);
            let manager = tomograph_diesel::asynchronous::manager::<$conn>(&url, tracer.clone());
            let pool = Pool::builder()
                .max_size(1)
                .connection_timeout(TIMEOUT)
                .build(manager)
                .await
                .unwrap();
            a_timeout_in_a_task(&hooks, $system, async {
                let _held = pool.get_traced(&tracer).await.unwrap();
                matches!(pool.get_traced(&tracer).await, Err(bb8::RunError::TimedOut))
            })
            .await;
        }
    };
}

macro_rules! deadpool_waits {
    ($name:ident, $feature:literal, $conn:ty, $env:literal, $system:literal) => {
        #[cfg(all(feature = $feature, feature = "deadpool"))]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            use diesel_async::pooled_connection::deadpool::Pool;
            use tomograph_diesel::asynchronous::TracedGet;
            let Some(url) = tomograph::testing::require_env($env) else {
                return;
            };
            let tracer = DieselTracer::from_url(&url);
            let manager = tomograph_diesel::asynchronous::manager::<$conn>(&url, tracer.clone());
            let pool = Pool::builder(manager).max_size(2).build().unwrap();
            twenty_tasks_on_a_pool_of_two($system, move |sql| {
                let (pool, tracer) = (pool.clone(), tracer.clone());
                async move {
                    let mut conn = pool.get_traced(&tracer).await.unwrap();
                    diesel::sql_query(sql).execute(&mut conn).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
            .await;

            let hooks = TypeHooks::default();
            let tracer = hooked(&url, &hooks);
            let manager = tomograph_diesel::asynchronous::manager::<$conn>(&url, tracer.clone());
            let pool = Pool::builder(manager)
                .max_size(1)
                .wait_timeout(Some(TIMEOUT))
                .runtime(deadpool::Runtime::Tokio1)
                .build()
                .unwrap();
            a_timeout_in_a_task(&hooks, $system, async {
                let _held = pool.get_traced(&tracer).await.unwrap();
                matches!(
                    pool.get_traced(&tracer).await,
                    Err(deadpool::managed::PoolError::Timeout(_))
                )
            })
            .await;
        }
    };
}

bb8_waits!(
    postgres_bb8_pool_of_two_under_twenty_tasks_and_a_timeout,
    "postgres",
    diesel_async::AsyncPgConnection,
    "TOMOGRAPH_TEST_POSTGRES_URL",
    "postgresql"
);
deadpool_waits!(
    postgres_deadpool_pool_of_two_under_twenty_tasks_and_a_timeout,
    "postgres",
    diesel_async::AsyncPgConnection,
    "TOMOGRAPH_TEST_POSTGRES_URL",
    "postgresql"
);
bb8_waits!(
    mysql_bb8_pool_of_two_under_twenty_tasks_and_a_timeout,
    "mysql",
    diesel_async::AsyncMysqlConnection,
    "TOMOGRAPH_TEST_MYSQL_URL",
    "mysql"
);
deadpool_waits!(
    mysql_deadpool_pool_of_two_under_twenty_tasks_and_a_timeout,
    "mysql",
    diesel_async::AsyncMysqlConnection,
    "TOMOGRAPH_TEST_MYSQL_URL",
    "mysql"
);
