//! Traced statement overhead, side by side in one run: a prepared in-memory `SELECT ?1`
//! through plain rusqlite and through tomograph-rusqlite — inside an active trace (a span
//! per execution, reporter running with a no-op backend), with no trace in progress, and
//! with the tracer switched off — plus two references: the core's statement span alone (no
//! SQLite) and a bare detached span. Target (DESIGN.md §9): traced / untraced ≤ 1.15.
//!
//! Run: `cargo bench -p tomograph-rusqlite --bench select -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::Connection;
use tomograph::testing::DiscardBackend;
use tomograph::{Config, ReporterOptions};
use tomograph_rusqlite::{TracedConnection, sql_tracer};

fn select(c: &mut Criterion) {
    tomograph::init(
        Config::builder()
            .service_name("bench")
            .reporter(ReporterOptions::default().queue_capacity(1 << 16))
            .backend(DiscardBackend::default())
            .build(),
    )
    .expect("the only tracer");

    let plain = Connection::open_in_memory().expect("open");
    let traced = TracedConnection::open_in_memory(sql_tracer().build()).expect("open");
    let off = TracedConnection::open_in_memory(sql_tracer().enabled(false).build()).expect("open");
    let mut plain_stmt = plain.prepare("SELECT ?1").expect("prepare");
    let mut traced_stmt = traced.prepare("SELECT ?1").expect("prepare");
    let mut off_stmt = off.prepare("SELECT ?1").expect("prepare");

    {
        let _root = tomograph::span("bench root").root().start();
        interleaved(
            || plain_stmt.query_row([black_box(42i64)], |r| r.get::<_, i64>(0)),
            || traced_stmt.query_row([black_box(42i64)], |r| r.get::<_, i64>(0)),
        );
    }

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

/// Criterion measures the rows seconds apart, and on a shared 2-core machine the load drifts
/// in between. This prints the median ratio of alternating batches in ABBA order (untraced,
/// traced, traced, untraced, …) and an A/A control (untraced against untraced on the same
/// schedule), the harness's own bias and noise.
fn interleaved(
    mut plain: impl FnMut() -> rusqlite::Result<i64>,
    mut traced: impl FnMut() -> rusqlite::Result<i64>,
) {
    const BATCH: u32 = 20_000;
    const PAIRS: usize = 60;
    let mut batch = |f: &mut dyn FnMut() -> rusqlite::Result<i64>| {
        let start = Instant::now();
        for _ in 0..BATCH {
            black_box(f().expect("row"));
        }
        start.elapsed()
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let per = |d: Duration| d.as_secs_f64() * 1e9 / f64::from(BATCH);
    let (mut ratios, mut control, mut plain_ns, mut traced_ns) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for pair in 0..PAIRS {
        let (p, t) = if pair % 2 == 0 {
            let p = batch(&mut plain);
            (p, batch(&mut traced))
        } else {
            let t = batch(&mut traced);
            (batch(&mut plain), t)
        };
        ratios.push(t.as_secs_f64() / p.as_secs_f64());
        plain_ns.push(per(p));
        traced_ns.push(per(t));
        let (a, b) = (batch(&mut plain), batch(&mut plain));
        control.push(b.as_secs_f64() / a.as_secs_f64());
    }
    eprintln!(
        "rusqlite SELECT ?1 interleaved (median of {PAIRS} ABBA pairs of {BATCH}): untraced {:.0} ns, traced {:.0} ns per statement; traced/untraced {:.3}; A/A control {:.3}",
        median(plain_ns),
        median(traced_ns),
        median(ratios),
        median(control),
    );
}

criterion_group!(benches, select);
criterion_main!(benches);
