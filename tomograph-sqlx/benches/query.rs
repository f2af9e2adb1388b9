//! Traced vs untraced sqlx statements, side by side in one run: the same prepared
//! `SELECT $1` through the plain `sqlx::Pool` and through a `TracedPool` wrapping the very same
//! pool (one connection, so both use the same connection and statement cache), inside an active
//! root span, with a global tracer whose reporter runs (a backend that discards).
//!
//! SQLite in memory always; PostgreSQL when `TOMOGRAPH_TEST_POSTGRES_URL` is set.
//!
//! Run: `cargo bench -p tomograph-sqlx --all-features --bench query -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::{Database, Executor, Pool};
use tomograph::FutureExt;
use tomograph_sqlx::{TracedDatabase, TracedPool};
use tomograph_test_support::bench::{bench_pairs, install_tomograph, interleaved_ratios};

/// Runs `statement` `iters` times inside one root span; returns the time taken.
fn run<F>(rt: &tokio::runtime::Runtime, iters: u64, mut statement: F) -> Duration
where
    F: AsyncFnMut() -> i64,
{
    rt.block_on(
        async {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(statement().await);
            }
            start.elapsed()
        }
        .traced_with(tomograph::span("bench root").root()),
    )
}

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

fn compare<DB>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
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
    let wrapper = TracedPool::with_tracer(pool.clone(), switched_off());
    // Skipped when profiling single rows (`--profile-time`): it runs every arm for seconds.
    if !std::env::args().any(|a| a == "--profile-time") {
        interleaved(rt, name, &pool, &traced, &wrapper, sql);
    }
    let mut g = c.benchmark_group(name);
    // What tracing adds per statement without the database: the statement's span alone.
    g.bench_function("span_only", |b| {
        b.iter_custom(|n| {
            let tracer = traced.tracer();
            let _root = tomograph::span("bench root").root().start();
            let start = Instant::now();
            for _ in 0..n {
                tracer.start(black_box(sql)).finish_with_rows(1);
            }
            start.elapsed()
        })
    });
    g.bench_function("untraced", |b| {
        b.iter_custom(|n| run(rt, n, async || select_one(&pool, sql).await))
    });
    g.bench_function("traced", |b| {
        b.iter_custom(|n| run(rt, n, async || select_one(&traced, sql).await))
    });
    g.bench_function("wrapper_tracing_off", |b| {
        b.iter_custom(|n| run(rt, n, async || select_one(&wrapper, sql).await))
    });
    g.finish();
}

/// The adapter's delegation alone: a tracer switched off, so no span is made.
fn switched_off() -> tomograph::sql::SqlTracer {
    tomograph::sql::SqlTracer::builder(tomograph::sql::DbSystem::Other("bench"))
        .enabled(false)
        .build()
}

/// Criterion measures the rows seconds apart and the load of a shared 2-core machine drifts
/// in between; this prints ratios from alternating batches instead (see
/// [`tomograph::testing::interleaved_ratios`]), with the per-statement medians.
fn interleaved<DB>(
    rt: &tokio::runtime::Runtime,
    name: &str,
    pool: &Pool<DB>,
    traced: &TracedPool<DB>,
    wrapper: &TracedPool<DB>,
    sql: &'static str,
) where
    DB: TracedDatabase,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB> + for<'q> sqlx::Encode<'q, DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    const BATCH: u64 = 200;
    let pairs = bench_pairs(60);
    let report = interleaved_ratios(
        pairs,
        Box::new(|| run(rt, BATCH, async || select_one(pool, sql).await)),
        vec![
            (
                "traced",
                Box::new(|| run(rt, BATCH, async || select_one(traced, sql).await)),
            ),
            (
                "wrapper with tracing off",
                Box::new(|| run(rt, BATCH, async || select_one(wrapper, sql).await)),
            ),
            // The span without the wrapper: the plain pool, with the statement's span made and
            // finished by hand around it — what the span and its reporting cost on their own.
            (
                "plain pool + span by hand",
                Box::new(|| {
                    run(rt, BATCH, async || {
                        let span = traced.tracer().start(sql);
                        let value = select_one(pool, sql).await;
                        span.finish_with_rows(1);
                        value
                    })
                }),
            ),
            // A bare span (no tags, no remote endpoint) in its place: the span machinery alone.
            (
                "plain pool + bare span by hand",
                Box::new(|| {
                    run(rt, BATCH, async || {
                        let span = tomograph::span("SELECT").start_detached();
                        let value = select_one(pool, sql).await;
                        drop(span);
                        value
                    })
                }),
            ),
        ],
    );
    eprintln!("{name} interleaved, batches of {BATCH} statements, {report}");

    // `execute` (and `fetch_all`, `fetch`) go through `fetch_many`, a stream, where the traced
    // pool still delegates to the pool's own boxed stream.
    let report = interleaved_ratios(
        pairs,
        Box::new(|| run(rt, BATCH, async || execute(pool, sql).await)),
        vec![(
            "traced execute",
            Box::new(|| run(rt, BATCH, async || execute(traced, sql).await)),
        )],
    );
    eprintln!("{name} execute, interleaved, batches of {BATCH} statements, {report}");
}

async fn execute<'c, DB, E>(executor: E, sql: &'static str) -> i64
where
    DB: Database,
    E: Executor<'c, Database = DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    for<'q> <DB as Database>::Arguments: sqlx::IntoArguments<DB>,
{
    sqlx::query::<DB>(sql)
        .bind(7_i64)
        .execute(executor)
        .await
        .map(|_| 1)
        .expect("the statement runs")
}

fn benches(c: &mut Criterion) {
    install_tomograph();
    // One thread: the statement's future runs where it is awaited (fewest thread hops, least
    // noise on a shared machine).
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
    compare(c, &rt, "sqlx_sqlite_select", sqlite, "SELECT ?1");

    if let Ok(url) = std::env::var("TOMOGRAPH_TEST_POSTGRES_URL") {
        let postgres = rt
            .block_on(
                sqlx::pool::PoolOptions::<sqlx::Postgres>::new()
                    .max_connections(1)
                    .connect(&url),
            )
            .expect("PostgreSQL from TOMOGRAPH_TEST_POSTGRES_URL");
        compare(c, &rt, "sqlx_postgres_select", postgres, "SELECT $1::int8");
    } else {
        eprintln!("SKIP sqlx_postgres_select: TOMOGRAPH_TEST_POSTGRES_URL is not set");
    }
}

criterion_group!(query, benches);
criterion_main!(query);
