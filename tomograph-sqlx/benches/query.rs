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
use tomograph::testing::DiscardBackend;
use tomograph::{Config, FutureExt, ReporterOptions};
use tomograph_sqlx::{TracedDatabase, TracedPool};

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

/// On a shared machine the load drifts between criterion's two measurements; this also prints
/// the ratio of alternating batches, the median of the per-pair ratios, which drift affects
/// far less. Batches run in ABBA order (untraced, traced, traced, untraced, …) so that neither
/// side always runs first, and an A/A line (untraced against untraced, same schedule) shows
/// the harness's own bias and noise: read the traced ratio against it.
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
    const PAIRS: usize = 60;
    let plain_batch = || run(rt, BATCH, async || select_one(pool, sql).await);
    let traced_batch = || run(rt, BATCH, async || select_one(traced, sql).await);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / BATCH as f64;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut ratios, mut control, mut wrapped) = (Vec::new(), Vec::new(), Vec::new());
    let (mut plain_us, mut traced_us) = (Vec::new(), Vec::new());
    for pair in 0..PAIRS {
        let (plain, with) = if pair % 2 == 0 {
            let p = plain_batch();
            (p, traced_batch())
        } else {
            let t = traced_batch();
            (plain_batch(), t)
        };
        ratios.push(with.as_secs_f64() / plain.as_secs_f64());
        plain_us.push(per(plain));
        traced_us.push(per(with));
        let (a, b) = (plain_batch(), plain_batch());
        control.push(b.as_secs_f64() / a.as_secs_f64());
        let a = plain_batch();
        let w = run(rt, BATCH, async || select_one(wrapper, sql).await);
        wrapped.push(w.as_secs_f64() / a.as_secs_f64());
    }
    eprintln!(
        "{name} interleaved (median of {PAIRS} ABBA pairs of {BATCH}): untraced {:.1} µs, traced {:.1} µs per statement; traced/untraced {:.3}; wrapper with tracing off/untraced {:.3}; A/A control {:.3}",
        median(plain_us),
        median(traced_us),
        median(ratios),
        median(wrapped),
        median(control),
    );
}

fn benches(c: &mut Criterion) {
    tomograph::init(
        Config::builder()
            .service_name("bench")
            .reporter(ReporterOptions::default().queue_capacity(65_536))
            .backend(DiscardBackend::default())
            .build(),
    )
    .expect("tracer installs once");
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
