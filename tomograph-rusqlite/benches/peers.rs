//! tomograph-rusqlite against what a `tracing` user writes for rusqlite (no tracing crate for
//! rusqlite exists): a span made with `tracing` around the same call, under
//! `tracing-opentelemetry` with the SDK's batch processor and a no-op exporter, carrying the
//! same information (the SQL text, `db.system`, client kind; no bound values). The statement
//! is a prepared in-memory `SELECT ?1`. tomograph has its reporter running with a discarding
//! backend. Each tracer runs inside a root span of its own, opened per batch; the baseline is
//! plain rusqlite.
//!
//! Run: `cargo bench -p tomograph-rusqlite --bench peers`.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tomograph_rusqlite::{TracedConnection, sql_tracer};
use tomograph_test_support::bench::peers::{assert_recorded, otel_dispatch, otel_exported};
use tomograph_test_support::bench::{Batch, added_costs, bench_pairs, install_tomograph};

const BATCH: u32 = 2_000;
const SQL: &str = "SELECT ?1";

fn timed(mut statement: impl FnMut() -> i64) -> Duration {
    let start = Instant::now();
    for _ in 0..BATCH {
        black_box(statement());
    }
    start.elapsed()
}

fn main() {
    install_tomograph();
    let otel = otel_dispatch();

    let plain = Connection::open_in_memory().expect("open");
    let traced = TracedConnection::open_in_memory(sql_tracer().build()).expect("open");
    let plain_stmt = RefCell::new(plain.prepare(SQL).expect("prepare"));
    let mut traced_stmt = traced.prepare(SQL).expect("prepare");
    let run_plain = || {
        plain_stmt
            .borrow_mut()
            .query_row([black_box(42i64)], |r| r.get::<_, i64>(0))
            .expect("row")
    };

    let mut tomograph_arm = || {
        let _root = tomograph::span("bench root").root().start();
        timed(|| {
            traced_stmt
                .query_row([black_box(42i64)], |r| r.get::<_, i64>(0))
                .expect("row")
        })
    };
    let peer_arm = || {
        tracing::dispatcher::with_default(&otel, || {
            let root = tracing::info_span!("bench root");
            let _root = root.enter();
            timed(|| {
                let span = tracing::info_span!(
                    "SELECT",
                    db.system = "sqlite",
                    db.statement = SQL,
                    otel.kind = "client",
                );
                let _entered = span.enter();
                run_plain()
            })
        })
    };
    // Each arm records what it claims to, one batch each: a span per statement (the batch's
    // root adds one).
    const TITLE: &str = "rusqlite, SQLite in memory, prepared SELECT ?1";
    let before = tomograph::stats().accepted;
    tomograph_arm();
    let ours = tomograph::stats().accepted - before;
    assert_recorded(TITLE, "tomograph spans", ours, BATCH);
    let (before, _) = otel_exported();
    peer_arm();
    assert_recorded(
        TITLE,
        "tracing spans (OTel)",
        otel_exported().0 - before,
        BATCH,
    );

    let arms: Vec<(&str, Batch<'_>)> = vec![
        ("tomograph-rusqlite", Box::new(tomograph_arm)),
        ("tracing span by hand + OTel", Box::new(peer_arm)),
    ];
    added_costs(
        TITLE,
        bench_pairs(60),
        BATCH,
        Box::new(|| timed(run_plain)),
        arms,
    )
    .print("tomograph-rusqlite");
}
