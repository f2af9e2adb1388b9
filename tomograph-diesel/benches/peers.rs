//! tomograph-diesel against the diesel tracers a user would pick instead, same statement, same
//! database, one process: `diesel-tracing` 0.4 (its `TracingInstrumentation`, the form its
//! README shows first: `tracing` events; and its instrumented connection with the
//! `statement-fields` feature: one `tracing` span per statement) under `tracing-opentelemetry`
//! with the SDK's batch processor and a no-op exporter, and `fastrace-diesel` (query capture
//! on, its default) with a no-op fastrace reporter. tomograph has its reporter running with a
//! discarding backend. Each tracer runs inside a root span of its own, opened per batch.
//!
//! Every arm but diesel-tracing's connection wrapper runs on **one** connection whose
//! instrumentation is swapped per batch (a no-op instrumentation for the baseline), so the
//! server side is the same for all; the wrapper is a connection type of its own, so it runs
//! on a second connection (SQLite only: two PostgreSQL connections are two server processes,
//! which this VM schedules differently).
//!
//! What each records: diesel hands an `Instrumentation` the query only as `&dyn DebugQuery`,
//! whose `Display` is the SQL followed by its bind values. tomograph keeps the SQL and drops
//! the binds; diesel-tracing and fastrace-diesel record the whole text (SQL and binds) — they
//! have no option for SQL alone (fastrace-diesel can only switch capture off altogether).
//!
//! Run: `TOMOGRAPH_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1/test
//! cargo bench -p tomograph-diesel --all-features --bench peers`
//! (`TOMOGRAPH_BENCH_PAIRS`, default 60, sets the pairs of batches).

use std::hint::black_box;
use std::time::{Duration, Instant};

use diesel::connection::{Instrumentation, InstrumentationEvent, LoadConnection};
use diesel::prelude::*;
use tomograph_diesel::DieselTracer;
use tomograph_test_support::bench::awake::CpusAwake;
use tomograph_test_support::bench::peers::{
    assert_recorded, fastrace_reported, install_fastrace, otel_dispatch, otel_exported,
};
use tomograph_test_support::bench::{Batch, added_costs, bench_pairs, install_tomograph};

const BATCH: u32 = 200;

#[path = "support/statement.rs"]
mod statement;
use statement::{prepared_query, setup, simple_query};

/// The baseline's instrumentation: does nothing.
struct Nothing;
impl Instrumentation for Nothing {
    fn on_connection_event(&mut self, _: InstrumentationEvent<'_>) {}
}

/// No tracer: only the query's text, formatted once per statement as diesel's `Display`
/// gives it (SQL and binds) — what the peers pay diesel before they record anything (they
/// record the binds too; tomograph stops at them, see [`SqlTextOnly`]).
struct FormatOnly;
impl Instrumentation for FormatOnly {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            black_box(query.to_string());
        }
    }
}

/// No tracer: the query's SQL alone, formatted once per statement and stopped where diesel's
/// `Display` starts on the binds (into a buffer kept across statements) — what tomograph-diesel
/// pays diesel before it records anything; its own cost is its added cost over this.
struct SqlTextOnly(String);
impl Instrumentation for SqlTextOnly {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            use std::fmt::Write as _;
            let mut text = UntilBinds(std::mem::take(&mut self.0));
            text.0.clear();
            let _ = write!(text, "{query}");
            self.0 = black_box(text.0);
        }
    }
}

/// Keeps what is written before diesel's `" -- binds: "` piece, then refuses more.
struct UntilBinds(String);
impl std::fmt::Write for UntilBinds {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if s.starts_with(" -- binds: ") {
            return Err(std::fmt::Error);
        }
        self.0.push_str(s);
        Ok(())
    }
}

fn timed(mut query: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..BATCH {
        query();
    }
    start.elapsed()
}

/// The batch inside a `tracing` root span under the OpenTelemetry subscriber.
fn in_otel_root(otel: &tracing::Dispatch, body: impl FnOnce() -> Duration) -> Duration {
    tracing::dispatcher::with_default(otel, || {
        let root = tracing::info_span!("bench root");
        let _entered = root.enter();
        body()
    })
}

#[allow(clippy::too_many_arguments)]
fn compare<C>(
    title: &str,
    url: &str,
    otel: &tracing::Dispatch,
    fastrace_instrumentation: fn(&str) -> fastrace_diesel::FastraceInstrumentation,
    query: fn(&mut C) -> String,
    wrapper: Option<&mut dyn FnMut() -> String>,
) where
    C: LoadConnection,
    diesel::query_builder::SqlQuery: diesel::query_dsl::methods::ExecuteDsl<C>,
{
    let mut conn = C::establish(url).expect("connect");
    setup(&mut conn);
    let conn = std::cell::RefCell::new(conn);
    let tracer = DieselTracer::from_url(url);
    let plain = || {
        let mut conn = conn.borrow_mut();
        conn.set_instrumentation(Nothing);
        timed(|| {
            black_box(query(&mut *conn));
        })
    };
    let tomograph = || {
        let mut conn = conn.borrow_mut();
        tracer.instrument(&mut *conn);
        let _root = tomograph::span("bench root").root().start();
        timed(|| {
            black_box(query(&mut *conn));
        })
    };
    let diesel_tracing = || {
        let mut conn = conn.borrow_mut();
        conn.set_instrumentation(diesel_tracing::TracingInstrumentation::new(false));
        in_otel_root(otel, || {
            timed(|| {
                black_box(query(&mut *conn));
            })
        })
    };
    let fastrace = || {
        let mut conn = conn.borrow_mut();
        conn.set_instrumentation(fastrace_instrumentation(url));
        let root = fastrace::Span::root("bench root", fastrace::collector::SpanContext::random());
        let _parent = root.set_local_parent();
        timed(|| {
            black_box(query(&mut *conn));
        })
    };
    let format_only = || {
        let mut conn = conn.borrow_mut();
        conn.set_instrumentation(FormatOnly);
        timed(|| {
            black_box(query(&mut *conn));
        })
    };
    let sql_text_only = || {
        let mut conn = conn.borrow_mut();
        conn.set_instrumentation(SqlTextOnly(String::new()));
        timed(|| {
            black_box(query(&mut *conn));
        })
    };
    // Each tracer records what it claims to, one batch each: a span per statement (the
    // batch's root adds one) or, for diesel-tracing's instrumentation, an event per statement.
    let check = |what: &str, recorded: u64| assert_recorded(title, what, recorded, BATCH);
    let before = tomograph::stats().accepted;
    tomograph();
    check("tomograph spans", tomograph::stats().accepted - before);
    let (_, before) = otel_exported();
    diesel_tracing();
    check("diesel-tracing events (OTel)", otel_exported().1 - before);
    let before = fastrace_reported();
    fastrace();
    check("fastrace-diesel spans", fastrace_reported() - before);
    let mut arms: Vec<(&str, Batch<'_>)> = vec![
        ("tomograph-diesel", Box::new(tomograph)),
        (
            "diesel's SQL alone, stopped at the binds (tomograph-diesel's floor)",
            Box::new(sql_text_only),
        ),
        (
            "diesel's query text and binds alone (the peers' floor)",
            Box::new(format_only),
        ),
        (
            "diesel-tracing Instrumentation (events) + OTel",
            Box::new(diesel_tracing),
        ),
        ("fastrace-diesel", Box::new(fastrace)),
    ];
    if let Some(wrapper) = wrapper {
        let mut wrapped = move || {
            in_otel_root(otel, || {
                timed(|| {
                    black_box(wrapper());
                })
            })
        };
        let (before, _) = otel_exported();
        wrapped();
        check(
            "diesel-tracing connection spans (OTel)",
            otel_exported().0 - before,
        );
        arms.push((
            "diesel-tracing connection (spans) + OTel",
            Box::new(wrapped),
        ));
    }
    added_costs(title, bench_pairs(60), BATCH, Box::new(plain), arms).print("tomograph-diesel");
}

fn main() {
    install_tomograph();
    install_fastrace();
    let otel = otel_dispatch();

    let url = "file:tg_diesel_peers?mode=memory&cache=shared";
    // Holds the shared in-memory database and its table for the whole run.
    let mut owner = SqliteConnection::establish(url).expect("connect");
    setup(&mut owner);
    let mut wrapped =
        diesel_tracing::sqlite::InstrumentedSqliteConnection::establish(url).expect("connect");
    compare::<SqliteConnection>(
        "diesel, SQLite in memory",
        url,
        &otel,
        fastrace_diesel::FastraceInstrumentation::sqlite,
        simple_query,
        Some(&mut || simple_query(&mut wrapped)),
    );
    // The same row without `.first()`'s LIMIT: the statement SQLite keeps prepared, six
    // times faster, so that every tracer's cost shows over a statement that is not mostly
    // SQLite preparing it again.
    compare::<SqliteConnection>(
        "diesel, SQLite in memory, statement kept prepared (no LIMIT)",
        url,
        &otel,
        fastrace_diesel::FastraceInstrumentation::sqlite,
        prepared_query,
        Some(&mut || prepared_query(&mut wrapped)),
    );

    match std::env::var("TOMOGRAPH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            // Each statement wakes the server's process and waits for it: on an idle VM the
            // wake-ups, not the statement, would be measured.
            let _awake = CpusAwake::start();
            compare::<PgConnection>(
                "diesel, PostgreSQL",
                &url,
                &otel,
                fastrace_diesel::FastraceInstrumentation::postgres,
                simple_query,
                None,
            );
        }
        _ => eprintln!("SKIP diesel, PostgreSQL: TOMOGRAPH_TEST_POSTGRES_URL is not set"),
    }
}
