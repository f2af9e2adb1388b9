//! tomograph-sqlx against sqlx's own query events under `tracing-opentelemetry` (what a user
//! of `tracing` gets from sqlx alone: at its default `log_statements` level, DEBUG, sqlx emits
//! one `sqlx::query` event per statement — summary, `db.statement`, rows, elapsed — which the
//! OpenTelemetry layer attaches to the current span), same statement, same pool and
//! connection, one process. SQLite in memory, and PostgreSQL when
//! `TOMOGRAPH_TEST_POSTGRES_URL` is set. The comparison with `sqlx-tracing` 0.2 needs sqlx 0.8
//! and lives in `benches/sqlx-peers/` (its own lock file).
//!
//! tomograph has its reporter running with a discarding backend; OpenTelemetry the SDK's
//! batch processor with a no-op exporter, installed as the global subscriber as an
//! application installs it ([`OtelSwitch`]): sqlx's SQLite driver logs each statement on its
//! worker thread, which a subscriber scoped to the calling thread (`with_default`) never sees
//! — measured that way until 2026-12-07, sqlx's events cost only the span it enters on the
//! worker, and recorded no event. The bench checks that each statement of that arm adds one
//! event to its root span. Each tracer runs inside a root span of its own, opened per batch;
//! the baseline is the plain pool with OpenTelemetry switched off.
//!
//! Run: `TOMOGRAPH_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1/test
//! cargo bench -p tomograph-sqlx --all-features --bench peers`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use sqlx::{Database, Executor, Pool};
use tomograph::FutureExt;
use tomograph_sqlx::{TracedDatabase, TracedPool};
use tomograph_test_support::bench::awake::CpusAwake;
use tomograph_test_support::bench::peers::{OtelSwitch, assert_recorded, otel_exported};
use tomograph_test_support::bench::{Batch, added_costs, bench_pairs, install_tomograph};
use tracing::Instrument as _;

const BATCH: u32 = 200;

async fn select_one<'c, DB, E>(executor: E, sql: &'static str) -> i64
where
    DB: Database,
    E: Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB> + for<'q> sqlx::Encode<'q, DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    sqlx::query_scalar::<DB, i64>(sql)
        .bind(7_i64)
        .fetch_one(executor)
        .await
        .expect("the statement runs")
}

async fn batch<F: AsyncFnMut() -> i64>(mut statement: F) -> Duration {
    let start = Instant::now();
    for _ in 0..BATCH {
        black_box(statement().await);
    }
    start.elapsed()
}

fn compare<DB>(
    rt: &tokio::runtime::Runtime,
    otel: &OtelSwitch,
    title: &str,
    pool: Pool<DB>,
    sql: &'static str,
) where
    DB: TracedDatabase,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB> + for<'q> sqlx::Encode<'q, DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let traced = TracedPool::new(pool.clone());
    let pool = &pool;
    let traced = &traced;
    let in_otel = || {
        otel.on(|| {
            rt.block_on(
                batch(async || select_one(pool, sql).await)
                    .instrument(tracing::info_span!("bench root")),
            )
        })
    };
    let in_tomograph = || {
        rt.block_on(
            batch(async || select_one(traced, sql).await)
                .traced_with(tomograph::span("bench root").root()),
        )
    };
    // Each arm records what it claims to: a span per statement for tomograph (the batch's
    // root adds one), one event per statement for sqlx's log.
    let before = tomograph::stats().accepted;
    in_tomograph();
    let spans = tomograph::stats().accepted - before;
    assert_recorded(title, "tomograph spans", spans, BATCH);
    otel.flush();
    let (_, before) = otel_exported();
    in_otel();
    otel.flush();
    assert_recorded(
        title,
        "sqlx's events (OTel)",
        otel_exported().1 - before,
        BATCH,
    );
    let arms: Vec<(&str, Batch<'_>)> = vec![
        ("tomograph-sqlx", Box::new(in_tomograph)),
        ("sqlx's query events + OTel", Box::new(in_otel)),
    ];
    added_costs(
        title,
        bench_pairs(60),
        BATCH,
        Box::new(|| rt.block_on(batch(async || select_one(pool, sql).await))),
        arms,
    )
    .print("tomograph-sqlx");
}

fn main() {
    // Each statement hops to sqlx's worker thread and back: on an idle VM the wake-ups, not
    // the statement, would be measured.
    let _awake = CpusAwake::start();
    install_tomograph();
    let otel = OtelSwitch::global();
    // One thread: the statement's future runs where it is awaited.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let sqlite = rt
        .block_on(
            sqlx::pool::PoolOptions::<sqlx::Sqlite>::new()
                .max_connections(1)
                .connect("sqlite::memory:"),
        )
        .expect("in-memory SQLite");
    compare(&rt, otel, "sqlx 0.9, SQLite in memory", sqlite, "SELECT ?1");

    match std::env::var("TOMOGRAPH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let postgres = rt
                .block_on(
                    sqlx::pool::PoolOptions::<sqlx::Postgres>::new()
                        .max_connections(1)
                        .connect(&url),
                )
                .expect("PostgreSQL from TOMOGRAPH_TEST_POSTGRES_URL");
            compare(
                &rt,
                otel,
                "sqlx 0.9, PostgreSQL",
                postgres,
                "SELECT $1::int8",
            );
        }
        _ => eprintln!("SKIP sqlx 0.9, PostgreSQL: TOMOGRAPH_TEST_POSTGRES_URL is not set"),
    }
}
