//! A traced r2d2 pool: 8 connections used by 8 threads, each thread its own trace.
#![cfg(feature = "r2d2")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{counting, get, in_trace, spans, tag, temp_db};
use tomograph_rusqlite::r2d2_sqlite::SqliteConnectionManager;
use tomograph_rusqlite::{TracedPool, TracedSqliteConnectionManager, r2d2, sql_tracer};

const THREADS: usize = 8;
const ROUNDS: i64 = 10;

#[test]
fn eight_connections_eight_threads() {
    let path = temp_db("pool");
    let (builder, failures) = counting(sql_tracer().namespace("main"));
    let manager = TracedSqliteConnectionManager::new(
        SqliteConnectionManager::file(&path).with_init(|c| {
            c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;")
        }),
        builder.build(),
    );
    let pool: TracedPool = r2d2::Pool::builder()
        .max_size(THREADS as u32)
        .min_idle(Some(THREADS as u32))
        .connection_timeout(Duration::from_secs(30))
        .build(manager)
        .unwrap();
    assert_eq!(pool.state().connections, THREADS as u32);
    pool.get()
        .unwrap()
        .execute_batch("CREATE TABLE hits (thread INTEGER, round INTEGER)")
        .unwrap();

    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                in_trace(&format!("worker {thread}"), || {
                    for round in 0..ROUNDS {
                        let conn = pool.get().unwrap();
                        conn.execute("INSERT INTO hits VALUES (?1, ?2)", (thread as i64, round))
                            .unwrap();
                        let mut stmt = conn
                            .prepare_cached("SELECT count(*) FROM hits WHERE thread = ?1")
                            .unwrap();
                        let n: i64 = stmt.query_row([thread as i64], |r| r.get(0)).unwrap();
                        assert_eq!(n, round + 1);
                    }
                })
                .0
            })
        })
        .collect();
    let traces: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    assert_eq!(get(&failures), 0);
    for (thread, trace) in traces.into_iter().enumerate() {
        // Exactly the thread's statements: the pool's health checks are not traced.
        let expected = 2 * ROUNDS as usize + 1;
        let spans = spans(trace, expected);
        assert_eq!(spans.len(), expected, "worker {thread}");
        let root = spans.last().unwrap();
        assert_eq!(root.name(), format!("worker {thread}"));
        for span in &spans[..expected - 1] {
            assert_eq!(span.parent_id(), Some(root.id()));
            assert_eq!(tag(span, "db.system.name").as_deref(), Some("sqlite"));
            assert_eq!(tag(span, "db.namespace").as_deref(), Some("main"));
        }
        let inserts = spans.iter().filter(|s| s.name() == "INSERT hits").count();
        let selects = spans.iter().filter(|s| s.name() == "SELECT hits").count();
        assert_eq!((inserts, selects), (ROUNDS as usize, ROUNDS as usize));
    }
    drop(pool);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[test]
fn shared_memory_pool_and_tracer_switch() {
    let manager = TracedSqliteConnectionManager::memory(sql_tracer().build());
    let pool: TracedPool = r2d2::Pool::builder().max_size(2).build(manager).unwrap();
    let (trace, ()) = in_trace("memory pool", || {
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        a.execute_batch("CREATE TABLE t (x)").unwrap();
        a.execute("INSERT INTO t VALUES (1)", []).unwrap();
        // The pool's connections share one tracer and its switch.
        b.tracer().set_enabled(false);
        a.execute("INSERT INTO t VALUES (2)", []).unwrap();
        b.tracer().set_enabled(true);
        let n: i64 = b
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    });
    let spans = spans(trace, 4);
    let names: Vec<&str> = spans.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        ["CREATE TABLE t", "INSERT t", "SELECT t", "memory pool"]
    );
}
