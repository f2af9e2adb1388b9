//! rusqlite statements as Etsy's statsd (`peers/statsd-peer`) sees them, with sampling at 0:
//! the database timers and error counters of sampled statements, and a slow statement (a
//! recursive CTE) counted although its trace is not sampled; an r2d2 pool's gauges; no bad
//! line. Needs
//! `TOMOGRAPH_TEST_STATSD_ADDR` and `TOMOGRAPH_TEST_STATSD_ADMIN` (`scripts/test`).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tomograph::backend::statsd::StatsdBackend;
use tomograph::{Config, SpanId, TraceId, TraceToken};
use tomograph_rusqlite::{TracedConnection, sql_tracer};
use tomograph_test_support::statsd::query;

/// A statement that runs long whatever the machine: a million-row recursive CTE.
const SLOW: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) \
                    SELECT count(*) FROM c";

#[test]
fn database_metrics_and_slow_statements_in_etsy_statsd() {
    let (Some(addr), Some(admin)) = (
        tomograph::testing::require_env("TOMOGRAPH_TEST_STATSD_ADDR"),
        tomograph::testing::require_env("TOMOGRAPH_TEST_STATSD_ADMIN"),
    ) else {
        return;
    };
    let prefix = format!("tg-rusqlite-{:08x}", fastrand_u32());
    let statsd = StatsdBackend::builder(addr)
        .prefix(&prefix)
        .build()
        .expect("statsd");
    tomograph::init(
        Config::builder()
            .service_name("rusqlite-statsd")
            .sample_rate(0.0)
            .backend(statsd)
            .build(),
    )
    .expect("init");

    let db = TracedConnection::open_in_memory(sql_tracer().build()).unwrap();
    db.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .unwrap();
    // A sampled request (its upstream decided so): its statements are spans.
    {
        let upstream = TraceToken::new(TraceId::random(false), SpanId::random(), true);
        let request = tomograph::span("sampled").child_of(upstream).start();
        assert!(request.is_recording());
        db.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert!(db.execute("INSERT INTO t VALUES (1)", []).is_err());
        let n: i64 = db
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
    // Sampling at 0: nothing of this request is recorded, but its slow statement is counted.
    let watched = TracedConnection::open_in_memory(
        sql_tracer()
            .slow_threshold(Duration::from_millis(1))
            .build(),
    )
    .unwrap();
    {
        let request = tomograph::span("unsampled").root().start();
        assert!(!request.is_recording());
        let n: i64 = watched.query_row(SLOW, [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1_000_000);
    }
    // Pool gauges: a pool of 2 with one connection lent out.
    let pool: tomograph_rusqlite::TracedPool = tomograph_rusqlite::r2d2::Pool::builder()
        .max_size(2)
        .build(tomograph_rusqlite::TracedSqliteConnectionManager::memory(
            sql_tracer().build(),
        ))
        .unwrap();
    let lent = pool.get().unwrap();
    let gauges = tomograph_rusqlite::watch_pool_gauges(&pool, "gauge test");
    tomograph::sql::report_pool_gauges();
    tomograph::flush(Duration::from_secs(10)).expect("flushed");

    let mut want_counters = BTreeMap::new();
    want_counters.insert(format!("{prefix}.db.sqlite.slow"), 1);
    want_counters.insert(format!("{prefix}.db.sqlite.slow.SELECT-SELECT-SELECT"), 1);
    want_counters.insert(
        format!("{prefix}.db.sqlite.errors.SQLITE_CONSTRAINT_PRIMARYKEY"),
        1,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let (counters, timers) = loop {
        let counters = query("counters", &admin);
        let timers = query("timers", &admin);
        let have = want_counters
            .iter()
            .all(|(k, v)| counters.get(k).and_then(Value::as_u64) == Some(*v))
            && timers.contains_key(&format!("{prefix}.db.sqlite.SELECT-t"));
        if have || Instant::now() > deadline {
            break (counters, timers);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let db_counters: BTreeMap<String, u64> = counters
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{prefix}.db.")))
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(u64::MAX)))
        .collect();
    assert_eq!(db_counters, want_counters);
    let count = |key: &str| {
        timers
            .get(&format!("{prefix}.{key}"))
            .and_then(Value::as_array)
            .map(Vec::len)
    };
    // One timer per statement shape, one value per execution (the failed INSERT too).
    assert_eq!(count("db.sqlite.INSERT-t"), Some(2), "{timers:#?}");
    assert_eq!(count("db.sqlite.SELECT-t"), Some(1), "{timers:#?}");
    assert_eq!(count("db.sqlite.SELECT-SELECT-SELECT"), None, "not sampled");
    let pool_gauges: BTreeMap<String, u64> = query("gauges", &admin)
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{prefix}.db.sqlite.pool.")))
        .map(|(k, v)| (k, v.as_u64().unwrap_or(u64::MAX)))
        .collect();
    let gauge = |what: &str| (format!("{prefix}.db.sqlite.pool.gauge-test.{what}"), 1);
    let mut want_gauges: BTreeMap<String, u64> = [gauge("used"), gauge("idle")].into();
    want_gauges.insert(format!("{prefix}.db.sqlite.pool.gauge-test.max"), 2);
    assert_eq!(pool_gauges, want_gauges);
    drop((gauges, lent));
    assert_eq!(
        counters
            .get("statsd.bad_lines_seen")
            .and_then(Value::as_u64),
        Some(0)
    );
}

/// A random tag for this run's metric names (no extra dependency: the clock's nanoseconds).
fn fastrand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ std::process::id())
}
