//! Slow statements with sampling at 0: `pg_sleep` on PostgreSQL and `SLEEP` on MariaDB, outside
//! any sampled trace, are counted in Etsy's statsd (`peers/statsd-peer`), and nothing else of
//! those requests nor any bad line reaches it. Needs the databases and `TOMOGRAPH_TEST_STATSD_ADDR` /
//! `TOMOGRAPH_TEST_STATSD_ADMIN` (`scripts/test`).
#![cfg(all(feature = "postgres", feature = "mysql"))]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tomograph::FutureExt;
use tomograph::backend::statsd::StatsdBackend;
use tomograph::testing::require_env;
use tomograph_sqlx::{TracedPool, tracer_builder};
use tomograph_test_support::statsd::query;

async fn slow_and_fast<DB: tomograph_sqlx::TracedDatabase>(url: &str, slow: &'static str)
where
    for<'c> &'c TracedPool<DB>: sqlx::Executor<'c, Database = DB>,
{
    let pool = sqlx::Pool::<DB>::connect(url).await.unwrap();
    let tracer = tracer_builder(&pool)
        // Well below the server-side sleep: no clock race decides the outcome.
        .slow_threshold(Duration::from_millis(100))
        .build();
    let pool = TracedPool::with_tracer(pool, tracer);
    async {
        assert!(
            !tomograph::span("probe").start().is_recording(),
            "sampling at 0"
        );
        sqlx::Executor::execute(&pool, slow).await.unwrap();
    }
    .traced_with(tomograph::span("unsampled request").root())
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_statements_of_unsampled_traces_reach_statsd() {
    let (Some(pg), Some(my), Some(addr), Some(admin)) = (
        require_env("TOMOGRAPH_TEST_POSTGRES_URL"),
        require_env("TOMOGRAPH_TEST_MYSQL_URL"),
        require_env("TOMOGRAPH_TEST_STATSD_ADDR"),
        require_env("TOMOGRAPH_TEST_STATSD_ADMIN"),
    ) else {
        return;
    };
    let prefix = format!("tg-sqlx-slow-{}", std::process::id());
    let statsd = StatsdBackend::builder(addr)
        .prefix(&prefix)
        .build()
        .expect("statsd");
    tomograph::init(
        tomograph::Config::builder()
            .service_name("sqlx-slow")
            .sample_rate(0.0)
            .backend(statsd)
            .build(),
    )
    .expect("init");
    slow_and_fast::<sqlx::Postgres>(&pg, "SELECT pg_sleep(0.3)").await;
    slow_and_fast::<sqlx::MySql>(&my, "SELECT SLEEP(0.3)").await;
    tomograph::flush(Duration::from_secs(10)).unwrap();

    let mut want = BTreeMap::new();
    for system in ["postgresql", "mysql"] {
        want.insert(format!("{prefix}.db.{system}.slow"), 1);
        want.insert(format!("{prefix}.db.{system}.slow.SELECT"), 1);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let counters = loop {
        let counters = query("counters", &admin);
        let have = want
            .iter()
            .all(|(k, v)| counters.get(k).and_then(Value::as_u64) == Some(*v));
        if have || Instant::now() > deadline {
            break counters;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mine: BTreeMap<String, u64> = counters
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(u64::MAX)))
        .collect();
    // Only the slow statements: nothing else of the unsampled requests reached statsd.
    assert_eq!(mine, want);
    assert_eq!(
        counters
            .get("statsd.bad_lines_seen")
            .and_then(Value::as_u64),
        Some(0)
    );
}
