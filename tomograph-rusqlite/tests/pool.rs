//! A traced r2d2 pool: 8 connections used by 8 threads, each thread its own trace.
#![cfg(feature = "r2d2")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{counting, find, get, in_trace, spans, tag, temp_db};
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

const WAITERS: usize = 20;

/// A pool of 2 under 20 threads, each holding its connection a few milliseconds: every
/// statement (the first on its connection, inside its thread's own trace) says how long its
/// `pool.get()` waited, and some waited.
#[test]
fn twenty_threads_on_a_pool_of_two_say_how_long_they_waited() {
    let path = temp_db("waits");
    let manager = TracedSqliteConnectionManager::new(
        SqliteConnectionManager::file(&path).with_init(|c| {
            c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;")
        }),
        sql_tracer().build(),
    );
    let pool: TracedPool = tomograph_rusqlite::pool_builder(&manager)
        .max_size(2)
        .connection_timeout(Duration::from_secs(30))
        .build(manager)
        .unwrap();
    let threads: Vec<_> = (0..WAITERS)
        .map(|n| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                in_trace(&format!("waiter {n}"), || {
                    let conn = pool.get().unwrap();
                    let got: i64 = conn
                        .query_row(&format!("SELECT {n} AS waiter"), [], |r| r.get(0))
                        .unwrap();
                    assert_eq!(got, n as i64);
                    // A second statement on the same connection: the wait is the first's.
                    conn.execute_batch("SELECT 0").unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                })
                .0
            })
        })
        .collect();
    let traces: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut waits = Vec::new();
    for (n, trace) in traces.into_iter().enumerate() {
        let spans = spans(trace, 3);
        let root = spans.last().unwrap();
        assert_eq!(root.name(), format!("waiter {n}"));
        let first = spans
            .iter()
            .find(|s| tag(s, "sql.query").is_some_and(|q| q.contains("AS waiter")))
            .unwrap();
        assert_eq!(first.parent_id(), Some(root.id()));
        let wait = tag(first, "db.client.connection.wait_time_us")
            .and_then(|w| w.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("waiter {n}: no wait on {first:?}"));
        waits.push(wait);
        let second = spans
            .iter()
            .find(|s| tag(s, "sql.query").as_deref() == Some("SELECT 0"))
            .unwrap();
        assert_eq!(
            tag(second, "db.client.connection.wait_time_us"),
            None,
            "the wait goes to the first statement only"
        );
    }
    assert!(waits.iter().any(|&w| w > 0), "some waited: {waits:?}");
    drop(pool);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// One connection held, a second `get()` gives up after 300 ms: a failed span
/// `acquire connection`, child of the current span, started when the wait did; the hook runs
/// once with `PoolTimedOut`. The next statement is not tagged with anything left over.
#[test]
fn a_pool_timeout_is_a_failed_acquire_connection_span() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let tracer = sql_tracer()
        .on_error(move |event| {
            seen.lock()
                .unwrap()
                .push((event.sql().to_owned(), event.error_type().to_owned()));
        })
        .build();
    let manager = TracedSqliteConnectionManager::memory(tracer);
    let pool: TracedPool = tomograph_rusqlite::pool_builder(&manager)
        .max_size(1)
        .connection_timeout(Duration::from_millis(300))
        .build(manager)
        .unwrap();
    let (trace, root) = in_trace("timeout", || {
        let held = pool.get().unwrap();
        assert!(pool.get().is_err(), "the only connection is held");
        held.execute_batch("SELECT 1").unwrap();
        tomograph::get_trace_info().unwrap().span_id()
    });
    let spans = spans(trace, 3);
    let acquire = find(&spans, "acquire connection");
    assert_eq!(acquire.parent_id(), Some(root));
    assert_eq!(acquire.kind(), Some(tomograph::Kind::Client));
    assert!(acquire.is_error());
    assert!(tag(acquire, "error").is_some_and(|e| e.contains("timed out")));
    assert_eq!(tag(acquire, "error.type").as_deref(), Some("PoolTimedOut"));
    assert_eq!(tag(acquire, "db.system.name").as_deref(), Some("sqlite"));
    assert_eq!(
        tag(acquire, "db.client.connection.wait_time_us").as_deref(),
        Some("300000")
    );
    assert!(
        acquire.duration() >= Duration::from_millis(300),
        "starts when the wait started: {:?}",
        acquire.duration()
    );
    assert_eq!(
        *calls.lock().unwrap(),
        [(String::new(), "PoolTimedOut".to_owned())]
    );
    // The held connection's statement carries its own (first) checkout's wait.
    let select = spans
        .iter()
        .find(|s| tag(s, "sql.query").as_deref() == Some("SELECT 1"))
        .unwrap();
    assert!(tag(select, "db.client.connection.wait_time_us").is_some());
}

/// The same handler on a builder made by hand.
#[test]
fn pool_events_on_a_hand_built_pool() {
    let manager = TracedSqliteConnectionManager::memory(sql_tracer().build());
    let events = tomograph::sql::PoolEvents::new(manager.tracer().clone());
    let pool: TracedPool = r2d2::Pool::builder()
        .max_size(1)
        .event_handler(Box::new(events))
        .build(manager)
        .unwrap();
    let (trace, ()) = in_trace("hand built", || {
        pool.get().unwrap().execute_batch("SELECT 2").unwrap();
    });
    let spans = spans(trace, 2);
    assert!(tag(&spans[0], "db.client.connection.wait_time_us").is_some());
}
