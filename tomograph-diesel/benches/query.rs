//! A simple query (`SELECT name FROM t WHERE id = ? LIMIT ?`, prepared and cached by diesel;
//! SQLite re-prepares it on each execution, see `support/statement.rs`) traced
//! vs untraced, side by side in one run: SQLite in memory, and PostgreSQL on loopback when
//! `TOMOGRAPH_TEST_POSTGRES_URL` is set. A global tracer with a running reporter (discarding
//! backend) and an active root span, as in a request handler.
//!
//! Run: `cargo bench -p tomograph-diesel --all-features --bench query`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use diesel::connection::{Instrumentation, InstrumentationEvent, LoadConnection};
use diesel::prelude::*;
use tomograph::{SpanId, TraceId, TraceToken};
use tomograph_diesel::DieselTracer;
use tomograph_test_support::bench::{bench_pairs, install_tomograph, interleaved_ratios};

#[path = "support/statement.rs"]
mod statement;
use statement::{ByIdName, setup, simple_query};

/// `two_connections`: also compare a plain connection with a traced one. Only for SQLite: two
/// PostgreSQL connections are two server processes, which the scheduler places differently
/// (on this 2-core VM one ran 2.4× faster than the other, whatever was traced), so there only
/// the one-connection comparison means anything.
fn group<C>(c: &mut Criterion, name: &str, url: &str, two_connections: bool)
where
    C: LoadConnection,
    C::Backend: diesel::backend::DieselReserveSpecialization
        + diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    diesel::query_builder::SqlQuery: diesel::query_dsl::methods::ExecuteDsl<C>,
    for<'a> diesel::dsl::Limit<ByIdName>: diesel::query_dsl::LoadQuery<'a, C, String>,
{
    // On a connection of its own, kept open (it holds SQLite's shared in-memory database):
    // neither measured connection is the session that created the table.
    let mut owner = C::establish(url).expect("connect");
    setup(&mut owner);
    let mut plain = C::establish(url).expect("connect");
    let mut traced = C::establish(url).expect("connect");
    let tracer = DieselTracer::from_url(url);
    tracer.instrument(&mut traced);

    let _root = tomograph::span(format!("bench {name}")).root().start();
    if two_connections {
        interleaved(
            name,
            || simple_query(&mut plain),
            std::cell::RefCell::new(|| simple_query(&mut traced)),
        );
    }
    same_connection(name, &tracer, &mut traced, simple_query::<C>);
    let mut group = c.benchmark_group(name);
    group.bench_function("untraced", |b| b.iter(|| simple_query(&mut plain)));
    group.bench_function("traced", |b| b.iter(|| simple_query(&mut traced)));
    group.finish();
}

/// Criterion measures the rows seconds apart and the load of a shared 2-core machine drifts
/// in between; this prints ratios from alternating batches instead (see
/// [`tomograph::testing::interleaved_ratios`]).
fn interleaved(
    name: &str,
    mut plain: impl FnMut() -> String,
    traced: std::cell::RefCell<impl FnMut() -> String>,
) {
    const BATCH: u32 = 200;
    let pairs = bench_pairs(60);
    fn timed(mut query: impl FnMut() -> String) -> std::time::Duration {
        let start = Instant::now();
        for _ in 0..BATCH {
            black_box(query());
        }
        start.elapsed()
    }
    // The traced connection in a sampled trace (the caller's root), and in an unsampled one —
    // the common case under a sample rate, where nothing may be formatted.
    let unsampled = TraceToken::new(TraceId::random(false), SpanId::random(), false);
    let report = interleaved_ratios(
        pairs,
        Box::new(|| timed(&mut plain)),
        vec![
            (
                "traced, sampled trace",
                Box::new(|| timed(&mut *traced.borrow_mut())),
            ),
            (
                "traced, unsampled trace",
                Box::new(|| {
                    let _unsampled = tomograph::span("unsampled").child_of(unsampled).start();
                    timed(&mut *traced.borrow_mut())
                }),
            ),
        ],
    );
    eprintln!("{name} interleaved, batches of {BATCH} queries, {report}");
}

/// What any diesel `Instrumentation` pays to learn a statement's SQL: diesel hands it only
/// `&dyn DebugQuery`, whose `Display` walks the query (boxing every bind value) and rebuilds
/// its SQL text on every execution. This one does that and nothing else.
struct FormattingOnly;

impl Instrumentation for FormattingOnly {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            black_box(query.to_string());
        }
    }
}

/// The bench's two connections are two server sessions (two PostgreSQL backends), which
/// differ by a few percent on their own. This compares one instrumented connection with its
/// tracer switched on and off — the instrumentation still runs when off, but only to find
/// that nothing is traced — so the server side is the same for both arms.
fn same_connection<C: Connection>(
    name: &str,
    tracer: &DieselTracer,
    conn: &mut C,
    query: fn(&mut C) -> String,
) {
    const BATCH: u32 = 200;
    let pairs = bench_pairs(60);
    let unsampled = TraceToken::new(TraceId::random(false), SpanId::random(), false);
    let conn = std::cell::RefCell::new(conn);
    let timed = |on: bool| {
        tracer.sql().set_enabled(on);
        let mut conn = conn.borrow_mut();
        let start = Instant::now();
        for _ in 0..BATCH {
            black_box(query(&mut conn));
        }
        start.elapsed()
    };
    // diesel's formatting alone, in place of the tracing instrumentation.
    let formatting = || {
        let mut conn = conn.borrow_mut();
        conn.set_instrumentation(FormattingOnly);
        let start = Instant::now();
        for _ in 0..BATCH {
            black_box(query(&mut conn));
        }
        let elapsed = start.elapsed();
        tracer.instrument(&mut **conn);
        elapsed
    };
    // The statement's span made by hand around the untraced query: the span and its
    // reporting without the instrumentation's work (formatting the SQL); and a bare span (no
    // tags, no statement text) in its place, to tell the span machinery from the SQL span's
    // own work.
    let hand = tomograph::sql::SqlTracer::builder(tomograph::sql::DbSystem::Other("bench")).build();
    let by_hand = |bare: bool| {
        tracer.sql().set_enabled(false);
        let mut conn = conn.borrow_mut();
        let start = Instant::now();
        for _ in 0..BATCH {
            if bare {
                let span = tomograph::span("SELECT").start_detached();
                black_box(query(&mut conn));
                drop(span);
            } else {
                let span = hand.start("SELECT name FROM tg_diesel_bench WHERE id = $1 LIMIT $2");
                black_box(query(&mut conn));
                span.finish_with_rows(1);
            }
        }
        start.elapsed()
    };
    let report = interleaved_ratios(
        pairs,
        Box::new(|| timed(false)),
        vec![
            ("tracing on", Box::new(|| timed(true))),
            (
                "tracing on, unsampled trace",
                Box::new(|| {
                    let _unsampled = tomograph::span("unsampled").child_of(unsampled).start();
                    timed(true)
                }),
            ),
            (
                "tracing off + SQL span by hand",
                Box::new(|| by_hand(false)),
            ),
            (
                "tracing off + bare span by hand",
                Box::new(|| by_hand(true)),
            ),
            ("diesel's formatting alone", Box::new(formatting)),
        ],
    );
    tracer.sql().set_enabled(true);
    eprintln!("{name} one connection, tracing off vs on, batches of {BATCH} queries, {report}");
}

fn benches(c: &mut Criterion) {
    install_tomograph();
    group::<SqliteConnection>(
        c,
        "diesel_sqlite",
        "file:tg_diesel_bench?mode=memory&cache=shared",
        true,
    );
    match std::env::var("TOMOGRAPH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => group::<PgConnection>(c, "diesel_postgres", &url, false),
        _ => eprintln!("SKIP diesel_postgres: TOMOGRAPH_TEST_POSTGRES_URL is not set"),
    }
}

criterion_group!(query, benches);
criterion_main!(query);
