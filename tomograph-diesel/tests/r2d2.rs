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

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_pool_shared_by_eight_threads() {
    let path = std::env::temp_dir().join(format!("tg_diesel_r2d2_{}.db", std::process::id()));
    let url = path.to_string_lossy().into_owned();
    let pool =
        tomograph_diesel::r2d2::pool_builder::<SqliteConnection>(DieselTracer::from_url(&url))
            .max_size(4)
            .build(ConnectionManager::new(&url))
            .unwrap();
    pool.get()
        .unwrap()
        .batch_execute("PRAGMA journal_mode = WAL")
        .unwrap();
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
