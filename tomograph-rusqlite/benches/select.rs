//! Traced statement overhead, side by side in one run: a prepared in-memory `SELECT ?1`
//! through plain rusqlite and through tomograph-rusqlite — inside an active trace (a span
//! per execution, reporter running with a no-op backend), with no trace in progress, and
//! with the tracer switched off — plus two references: the core's statement span alone (no
//! SQLite) and a bare detached span. Target (DESIGN.md §9): traced / untraced ≤ 1.15.
//!
//! Run: `cargo bench -p tomograph-rusqlite --bench select -- --warm-up-time 1 --measurement-time 3`.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::Connection;
use tomograph::{SpanId, TraceId, TraceToken};
use tomograph_rusqlite::{TracedConnection, TracedStatement, sql_tracer};
use tomograph_test_support::bench::{bench_pairs, install_tomograph, interleaved_ratios};

fn select(c: &mut Criterion) {
    install_tomograph();

    let plain = Connection::open_in_memory().expect("open");
    let traced = TracedConnection::open_in_memory(sql_tracer().build()).expect("open");
    let off = TracedConnection::open_in_memory(sql_tracer().enabled(false).build()).expect("open");
    let mut plain_stmt = plain.prepare("SELECT ?1").expect("prepare");
    let mut traced_stmt = traced.prepare("SELECT ?1").expect("prepare");
    let mut off_stmt = off.prepare("SELECT ?1").expect("prepare");

    // The slow-statement check (a threshold no statement reaches): its cost on statements of
    // unsampled traces, which it must time too.
    let watched = TracedConnection::open_in_memory(
        sql_tracer().slow_threshold(Duration::from_secs(1)).build(),
    )
    .expect("open");
    let mut watched_stmt = watched.prepare("SELECT ?1").expect("prepare");
    interleaved(&mut plain_stmt, &mut traced_stmt, &mut watched_stmt);

    let mut group = c.benchmark_group("rusqlite SELECT ?1");
    group.bench_function("untraced (rusqlite)", |b| {
        b.iter(|| {
            plain_stmt
                .query_row([black_box(42i64)], |r| r.get::<_, i64>(0))
                .expect("row")
        })
    });
    group.bench_function("traced, active trace", |b| {
        let _root = tomograph::span("bench root").root().start();
        b.iter(|| {
            traced_stmt
                .query_row([black_box(42i64)], |r| r.get::<_, i64>(0))
                .expect("row")
        })
    });
    group.bench_function("traced, no active trace", |b| {
        b.iter(|| {
            traced_stmt
                .query_row([black_box(42i64)], |r| r.get::<_, i64>(0))
                .expect("row")
        })
    });
    group.bench_function("traced, tracer switched off", |b| {
        let _root = tomograph::span("bench root").root().start();
        b.iter(|| {
            off_stmt
                .query_row([black_box(42i64)], |r| r.get::<_, i64>(0))
                .expect("row")
        })
    });
    // References: what the core costs without any driver, for reading the ratio above.
    let core = sql_tracer().build();
    let statement = core.statement("SELECT ?1");
    group.bench_function("reference: statement span alone (no SQLite)", |b| {
        let _root = tomograph::span("bench root").root().start();
        b.iter(|| {
            core.start_statement(black_box(&statement))
                .finish_with_rows(1)
        })
    });
    group.bench_function("reference: bare detached span alone", |b| {
        let _root = tomograph::span("bench root").root().start();
        b.iter(|| tomograph::span("SELECT").start_detached())
    });
    group.finish();

    let _ = tomograph::flush(Duration::from_secs(5));
    let stats = tomograph::stats();
    eprintln!("reporter: {stats:?}");
}

/// The trace the traced statement runs in.
#[derive(Clone, Copy)]
enum Trace {
    Sampled,
    Unsampled,
    Outside,
}

/// Criterion measures the rows seconds apart and the load of a shared 2-core machine drifts
/// in between; this prints ratios from alternating batches instead (see
/// [`tomograph::testing::interleaved_ratios`]): the traced connection inside a sampled trace,
/// inside an unsampled one (the common case under a sample rate), and outside any trace.
fn interleaved(
    plain: &mut rusqlite::Statement<'_>,
    traced: &mut TracedStatement<'_>,
    watched: &mut TracedStatement<'_>,
) {
    const BATCH: u32 = 20_000;
    fn timed(mut statement: impl FnMut() -> rusqlite::Result<i64>) -> Duration {
        let start = Instant::now();
        for _ in 0..BATCH {
            black_box(statement().expect("row"));
        }
        start.elapsed()
    }
    let pairs = bench_pairs(60);
    let unsampled = TraceToken::new(TraceId::random(false), SpanId::random(), false);
    let traced = RefCell::new(traced);
    let traced_batch = |context: Trace| {
        let _root = match context {
            Trace::Sampled => tomograph::span("bench root").root().start(),
            Trace::Unsampled => tomograph::span("bench root").child_of(unsampled).start(),
            Trace::Outside => tomograph::SpanGuard::none(),
        };
        let mut traced = traced.borrow_mut();
        timed(|| traced.query_row([black_box(42i64)], |r| r.get::<_, i64>(0)))
    };
    let report = interleaved_ratios(
        pairs,
        Box::new(|| timed(|| plain.query_row([black_box(42i64)], |r| r.get::<_, i64>(0)))),
        vec![
            (
                "traced, sampled trace",
                Box::new(|| traced_batch(Trace::Sampled)),
            ),
            (
                "traced, unsampled trace",
                Box::new(|| traced_batch(Trace::Unsampled)),
            ),
            (
                "traced, no trace",
                Box::new(|| traced_batch(Trace::Outside)),
            ),
            (
                "slow-statement threshold set, unsampled trace",
                Box::new(|| {
                    let _root = tomograph::span("bench root").child_of(unsampled).start();
                    timed(|| watched.query_row([black_box(42i64)], |r| r.get::<_, i64>(0)))
                }),
            ),
        ],
    );
    eprintln!("rusqlite SELECT ?1 interleaved, batches of {BATCH} statements, {report}");
}

criterion_group!(benches, select);
criterion_main!(benches);
