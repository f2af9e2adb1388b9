//! tomograph-sqlx against `sqlx-tracing` 0.2 (a `tracing` span per statement, under
//! `tracing-opentelemetry` with the SDK's batch processor and a no-op exporter), configured as
//! its README shows (`sqlx_tracing::Pool::from(pool)`; sqlx's own query events stay at their
//! default level, as they would in an application). sqlx-tracing needs sqlx 0.8 and the
//! workspace has sqlx 0.9, so each tracer is measured against its own sqlx: the added cost
//! (traced − untraced per statement) is what compares.
//!
//! - SQLite in memory: sqlx-tracing on sqlx 0.8 only (tomograph-sqlx's SQLite side cannot be
//!   in this process, see Cargo.toml); tomograph-sqlx's SQLite number comes from
//!   `cargo bench -p tomograph-sqlx --bench peers`, run right after this one.
//! - PostgreSQL (`TOMOGRAPH_TEST_POSTGRES_URL`): both, one after the other, in this process.
//!
//! Also: sqlx 0.8's own query events under OpenTelemetry with no wrapper.
//!
//! OpenTelemetry is the process's global subscriber, switched on for the peers' arms only
//! ([`OtelSwitch`]): sqlx's SQLite driver logs its statements on its worker thread, which a
//! subscriber scoped to the calling thread never sees (how this bench measured until
//! 2026-12-07: on SQLite the peers' events were not recorded).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tomograph::FutureExt as _;
use tomograph_test_support::bench::awake::CpusAwake;
use tomograph_test_support::bench::peers::{OtelSwitch, assert_recorded, otel_exported};
use tomograph_test_support::bench::{
    Batch, CostReport, added_costs, bench_pairs, install_tomograph,
};
use tracing::Instrument as _;

const BATCH: u32 = 200;

async fn batch<F: AsyncFnMut() -> i64>(mut statement: F) -> Duration {
    let start = Instant::now();
    for _ in 0..BATCH {
        black_box(statement().await);
    }
    start.elapsed()
}

macro_rules! select_one {
    ($sqlx:ident, $executor:expr, $sql:expr) => {
        $sqlx::query_scalar::<_, i64>($sql)
            .bind(7_i64)
            .fetch_one($executor)
            .await
            .expect("the statement runs")
    };
}

/// sqlx 0.8: plain pool vs sqlx-tracing's pool and vs sqlx's events, both under OTel.
macro_rules! sqlx08_report {
    ($rt:expr, $otel:expr, $title:expr, $pool:expr, $sql:expr) => {{
        let rt = $rt;
        let otel = $otel;
        let pool = $pool;
        let traced = sqlx_tracing::Pool::from(pool.clone());
        let (pool, traced) = (&pool, &traced);
        let in_otel = |body: &mut dyn FnMut() -> Duration| otel.on(|| body());
        // Each peer records what it claims to, one batch each: sqlx-tracing a span per
        // statement (besides the batch's root), sqlx an event per statement.
        let recorded = |body: &mut dyn FnMut() -> Duration| {
            otel.flush();
            let before = otel_exported();
            in_otel(body);
            otel.flush();
            let after = otel_exported();
            (after.0 - before.0, after.1 - before.1)
        };
        let (spans, _) = recorded(&mut || {
            rt.block_on(
                batch(async || select_one!(sqlx08, traced, $sql))
                    .instrument(tracing::info_span!("bench root")),
            )
        });
        assert_recorded($title, "sqlx-tracing spans (OTel)", spans, BATCH);
        let (_, events) = recorded(&mut || {
            rt.block_on(
                batch(async || select_one!(sqlx08, pool, $sql))
                    .instrument(tracing::info_span!("bench root")),
            )
        });
        assert_recorded($title, "sqlx's events (OTel)", events, BATCH);
        let arms: Vec<(&str, Batch<'_>)> = vec![
            (
                "sqlx-tracing + OTel",
                Box::new(move || {
                    in_otel(&mut || {
                        rt.block_on(
                            batch(async || select_one!(sqlx08, traced, $sql))
                                .instrument(tracing::info_span!("bench root")),
                        )
                    })
                }),
            ),
            (
                "sqlx 0.8's query events + OTel",
                Box::new(move || {
                    in_otel(&mut || {
                        rt.block_on(
                            batch(async || select_one!(sqlx08, pool, $sql))
                                .instrument(tracing::info_span!("bench root")),
                        )
                    })
                }),
            ),
        ];
        added_costs(
            $title,
            bench_pairs(60),
            BATCH,
            Box::new(move || rt.block_on(batch(async || select_one!(sqlx08, pool, $sql)))),
            arms,
        )
    }};
}

fn main() {
    // Each statement hops between threads: on an idle VM the wake-ups, not the statement,
    // would be measured.
    let _awake = CpusAwake::start();
    install_tomograph();
    let otel: &OtelSwitch = OtelSwitch::global();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let sqlite = rt
        .block_on(
            sqlx08::pool::PoolOptions::<sqlx08::Sqlite>::new()
                .max_connections(1)
                .connect("sqlite::memory:"),
        )
        .expect("in-memory SQLite");
    sqlx08_report!(&rt, otel, "sqlx 0.8, SQLite in memory", sqlite, "SELECT ?1").print("none");

    let Ok(url) = std::env::var("TOMOGRAPH_TEST_POSTGRES_URL") else {
        eprintln!("SKIP PostgreSQL: TOMOGRAPH_TEST_POSTGRES_URL is not set");
        return;
    };
    let pg08 = rt
        .block_on(
            sqlx08::pool::PoolOptions::<sqlx08::Postgres>::new()
                .max_connections(1)
                .connect(&url),
        )
        .expect("PostgreSQL");
    let theirs: CostReport =
        sqlx08_report!(&rt, otel, "sqlx 0.8, PostgreSQL", pg08, "SELECT $1::int8");
    theirs.print("none");

    let pg09 = rt
        .block_on(
            sqlx::pool::PoolOptions::<sqlx::Postgres>::new()
                .max_connections(1)
                .connect(&url),
        )
        .expect("PostgreSQL");
    let traced = tomograph_sqlx::TracedPool::new(pg09.clone());
    let (pool, traced) = (&pg09, &traced);
    let ours = added_costs(
        "sqlx 0.9, PostgreSQL",
        bench_pairs(60),
        BATCH,
        Box::new(|| rt.block_on(batch(async || select_one!(sqlx, pool, "SELECT $1::int8")))),
        vec![(
            "tomograph-sqlx",
            Box::new(|| {
                rt.block_on(
                    batch(async || select_one!(sqlx, traced, "SELECT $1::int8"))
                        .traced_with(tomograph::span("bench root").root()),
                )
            }),
        )],
    );
    ours.print("tomograph-sqlx");
    if let (Some(us), Some(peer)) = (
        ours.arm("tomograph-sqlx"),
        theirs.arm("sqlx-tracing + OTel"),
    ) {
        eprintln!(
            "PostgreSQL: added cost tomograph-sqlx (sqlx 0.9) / sqlx-tracing (sqlx 0.8): {:.0} / {:.0} ns = {:.3}",
            us.added_ns.median,
            peer.added_ns.median,
            us.added_ns.median / peer.added_ns.median
        );
    }
}
