//! r2d2: a traced pool shared by 8 threads; each thread's statements are children of its own
//! manual span, and the pool's `SELECT 1` checks stay out of the trace.
#![cfg(feature = "r2d2")]
#![allow(clippy::unwrap_used)]

mod common;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};
use tomograph_diesel::DieselTracer;

use common::*;

const THREADS: usize = 8;
const QUERIES: usize = 5;

/// Runs `sql` on a connection from `pool`.
type Exec<C> = fn(&Pool<ConnectionManager<C>>, &str);

fn eight_threads<C>(pool: Pool<ConnectionManager<C>>, exec: Exec<C>, label: &str)
where
    C: R2D2Connection + Send + 'static,
{
    let memory = memory();
    let (workers, trace) = traced(label, || {
        let token = tomograph::get_trace_info().unwrap();
        let threads: Vec<_> = (0..THREADS)
            .map(|i| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    let worker = tomograph::span(format!("worker {i}"))
                        .child_of(token)
                        .start();
                    for q in 0..QUERIES {
                        exec(&pool, &format!("SELECT {i} AS worker, {q} AS q"));
                    }
                    worker.id().unwrap()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    let spans = exact_spans(&memory, trace, 1 + THREADS + THREADS * QUERIES);
    let root = root(&spans);
    for (i, worker) in workers.iter().enumerate() {
        let span = one(&spans, &format!("worker {i}"));
        assert_eq!(span.id(), *worker);
        assert_eq!(span.parent_id(), Some(root.id()));
        let mine = with_sql(&spans, &format!("SELECT {i} AS worker"));
        assert_eq!(mine.len(), QUERIES);
        for statement in mine {
            assert_eq!(
                statement.parent_id(),
                Some(*worker),
                "worker {i}: {statement:?}"
            );
        }
    }
    assert!(
        with_sql(&spans, "SELECT 1")
            .iter()
            .all(|s| tag(s, "sql.query").unwrap() != "SELECT 1")
    );
}

/// A traced pool of `size` connections to a new SQLite file in WAL mode (shared by threads).
#[cfg(feature = "sqlite")]
fn sqlite_file_pool(
    name: &str,
    size: u32,
) -> (
    std::path::PathBuf,
    String,
    Pool<ConnectionManager<SqliteConnection>>,
) {
    let path = std::env::temp_dir().join(format!("{name}_{}.db", std::process::id()));
    let url = path.to_string_lossy().into_owned();
    let pool =
        tomograph_diesel::r2d2::pool_builder::<SqliteConnection>(DieselTracer::from_url(&url))
            .max_size(size)
            .build(ConnectionManager::new(&url))
            .unwrap();
    pool.get()
        .unwrap()
        .batch_execute("PRAGMA journal_mode = WAL")
        .unwrap();
    (path, url, pool)
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_pool_shared_by_eight_threads() {
    let (path, _url, pool) = sqlite_file_pool("tg_diesel_r2d2", 4);
    eight_threads(
        pool,
        |pool, sql| {
            diesel::sql_query(sql)
                .execute(&mut pool.get().unwrap())
                .unwrap();
        },
        "sqlite pool",
    );
    let _ = std::fs::remove_file(&path);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_pool_shared_by_eight_threads() {
    let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_POSTGRES_URL") else {
        return;
    };
    let pool = tomograph_diesel::r2d2::pool_builder::<PgConnection>(DieselTracer::from_url(&url))
        .max_size(4)
        .build(ConnectionManager::new(&url))
        .unwrap();
    eight_threads(
        pool,
        |pool, sql| {
            diesel::sql_query(sql)
                .execute(&mut pool.get().unwrap())
                .unwrap();
        },
        "postgres pool",
    );
}

#[cfg(feature = "sqlite")]
#[test]
fn customizer_on_a_hand_built_pool_and_traced_health_checks() {
    let memory = memory();
    let tracer = DieselTracer::from_url(":memory:").trace_health_checks(true);
    let pool: Pool<ConnectionManager<SqliteConnection>> = Pool::builder()
        .max_size(1)
        .connection_customizer(Box::new(tomograph_diesel::r2d2::TracingCustomizer::new(
            tracer,
        )))
        .build(ConnectionManager::new(":memory:"))
        .unwrap();
    let (_, trace) = traced("checked out", || {
        let mut conn = pool.get().unwrap();
        diesel::sql_query("SELECT 'work'")
            .execute(&mut conn)
            .unwrap();
    });
    let spans = exact_spans(&memory, trace, 3);
    let root = root(&spans);
    let check = with_sql(&spans, "SELECT 1");
    assert_eq!(check.len(), 1, "the checkout check, traced on request");
    assert_eq!(check[0].parent_id(), Some(root.id()));
}

const WAITERS: usize = 20;

/// A pool of 2 under 20 threads, each in its own trace, each holding its connection a few
/// milliseconds: every statement says how long its `pool.get()` waited, and some waited.
fn twenty_threads_on_a_pool_of_two<C>(pool: Pool<ConnectionManager<C>>, label: &str)
where
    C: R2D2Connection + Send + 'static,
{
    let memory = memory();
    let threads: Vec<_> = (0..WAITERS)
        .map(|n| {
            let pool = pool.clone();
            let label = label.to_owned();
            std::thread::spawn(move || {
                traced(&format!("{label} waiter {n}"), || {
                    let mut conn = pool.get().unwrap();
                    conn.batch_execute(&format!("SELECT {n} AS waiter"))
                        .unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(5));
                })
                .1
            })
        })
        .collect();
    let traces: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_waiters_waited(&memory, traces);
}

/// One connection held, a second `get()` gives up after 300 ms: a failed `acquire connection`
/// span under the current span, the hooks called once with `PoolTimedOut`.
fn a_timeout_on_a_pool_of_one<C>(url: &str)
where
    C: R2D2Connection + Send + 'static,
{
    let memory = memory();
    let hooks = TypeHooks::default();
    let tracer = DieselTracer::new(
        hooks
            .install(tomograph_diesel::builder_for_url(url))
            .build(),
    );
    let system = tracer.sql().system().name();
    let timeout = std::time::Duration::from_millis(300);
    let pool = tomograph_diesel::r2d2::pool_builder::<C>(tracer)
        .max_size(1)
        .connection_timeout(timeout)
        .build(ConnectionManager::new(url))
        .unwrap();
    let (root, trace) = traced("timeout", || {
        let _held = pool.get().unwrap();
        assert!(pool.get().is_err(), "the only connection is held");
        tomograph::get_trace_info().unwrap().span_id()
    });
    let spans = exact_spans(&memory, trace, 2);
    assert_pool_timeout(&spans, root, system, timeout);
    assert_eq!(
        hooks.calls(),
        [(String::new(), "PoolTimedOut".to_owned(), true)]
    );
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_pool_of_two_under_twenty_threads_and_a_timeout() {
    let (path, url, pool) = sqlite_file_pool("tg_diesel_r2d2_wait", 2);
    twenty_threads_on_a_pool_of_two(pool, "sqlite");
    a_timeout_on_a_pool_of_one::<SqliteConnection>(&url);
    let _ = std::fs::remove_file(&path);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_pool_of_two_under_twenty_threads_and_a_timeout() {
    let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_POSTGRES_URL") else {
        return;
    };
    let pool = tomograph_diesel::r2d2::pool_builder::<PgConnection>(DieselTracer::from_url(&url))
        .max_size(2)
        .build(ConnectionManager::new(&url))
        .unwrap();
    twenty_threads_on_a_pool_of_two(pool, "postgres");
    a_timeout_on_a_pool_of_one::<PgConnection>(&url);
}

#[cfg(feature = "mysql")]
#[test]
fn mysql_pool_of_two_under_twenty_threads_and_a_timeout() {
    let Some(url) = tomograph::testing::require_env("TOMOGRAPH_TEST_MYSQL_URL") else {
        return;
    };
    let pool =
        tomograph_diesel::r2d2::pool_builder::<MysqlConnection>(DieselTracer::from_url(&url))
            .max_size(2)
            .build(ConnectionManager::new(&url))
            .unwrap();
    twenty_threads_on_a_pool_of_two(pool, "mysql");
    a_timeout_on_a_pool_of_one::<MysqlConnection>(&url);
}

/// The pool's health check (`SELECT 1`, traced on request here) runs before the checkout is
/// reported: it does not take the wait, the statement after it does.
#[cfg(feature = "sqlite")]
#[test]
fn the_health_check_does_not_take_the_wait() {
    let memory = memory();
    let tracer = DieselTracer::from_url(":memory:").trace_health_checks(true);
    let pool = tomograph_diesel::r2d2::pool_builder::<SqliteConnection>(tracer)
        .max_size(1)
        .build(ConnectionManager::new(":memory:"))
        .unwrap();
    let (_, trace) = traced("checked", || {
        let mut conn = pool.get().unwrap();
        diesel::sql_query("SELECT 'work'")
            .execute(&mut conn)
            .unwrap();
    });
    let spans = exact_spans(&memory, trace, 3);
    let check = with_sql(&spans, "SELECT 1");
    assert_eq!(check.len(), 1, "{}", names(&spans));
    assert_eq!(tag(check[0], "db.client.connection.wait_time_us"), None);
    wait_of(with_sql(&spans, "'work'")[0]);
}

/// A hand-built pool gets the waits with the event handler.
#[cfg(feature = "sqlite")]
#[test]
fn pool_events_on_a_hand_built_pool() {
    let memory = memory();
    let tracer = DieselTracer::from_url(":memory:");
    let pool: Pool<ConnectionManager<SqliteConnection>> = Pool::builder()
        .max_size(1)
        .connection_customizer(Box::new(tomograph_diesel::r2d2::TracingCustomizer::new(
            tracer.clone(),
        )))
        .event_handler(Box::new(tomograph_diesel::r2d2::PoolEvents::new(
            tracer.sql().clone(),
        )))
        .build(ConnectionManager::new(":memory:"))
        .unwrap();
    let (_, trace) = traced("hand built", || {
        diesel::sql_query("SELECT 'hand'")
            .execute(&mut pool.get().unwrap())
            .unwrap();
    });
    let spans = exact_spans(&memory, trace, 2);
    wait_of(with_sql(&spans, "'hand'")[0]);
}
