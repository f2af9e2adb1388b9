//! A simple query (`SELECT name FROM t WHERE id = ?`, prepared and cached by diesel) traced
//! vs untraced, side by side in one run: SQLite in memory, and PostgreSQL on loopback when
//! `TOMOGRAPH_TEST_POSTGRES_URL` is set. A global tracer with a running reporter (discarding
//! backend) and an active root span, as in a request handler.
//!
//! Run: `cargo bench -p tomograph-diesel --all-features --bench query`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use diesel::connection::LoadConnection;
use diesel::prelude::*;
use tomograph::Config;
use tomograph::testing::DiscardBackend;
use tomograph_diesel::DieselTracer;

diesel::table! {
    #[sql_name = "tg_diesel_bench"]
    t (id) {
        id -> Integer,
        name -> Text,
    }
}

fn setup<C: Connection>(conn: &mut C)
where
    diesel::query_builder::SqlQuery: diesel::query_dsl::methods::ExecuteDsl<C>,
{
    for sql in [
        "DROP TABLE IF EXISTS tg_diesel_bench",
        "CREATE TABLE tg_diesel_bench (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        "INSERT INTO tg_diesel_bench (id, name) VALUES (1, 'one')",
    ] {
        diesel::sql_query(sql).execute(conn).expect("bench table");
    }
}

fn simple_query<C>(conn: &mut C) -> String
where
    C: LoadConnection,
    C::Backend: diesel::backend::DieselReserveSpecialization
        + diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    for<'a> diesel::dsl::Limit<
        diesel::dsl::Select<diesel::dsl::Filter<t::table, diesel::dsl::Eq<t::id, i32>>, t::name>,
    >: diesel::query_dsl::LoadQuery<'a, C, String>,
{
    t::table
        .filter(t::id.eq(black_box(1)))
        .select(t::name)
        .first::<String>(conn)
        .expect("query")
}

fn group<C>(c: &mut Criterion, name: &str, url: &str)
where
    C: LoadConnection,
    C::Backend: diesel::backend::DieselReserveSpecialization
        + diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    diesel::query_builder::SqlQuery: diesel::query_dsl::methods::ExecuteDsl<C>,
    for<'a> diesel::dsl::Limit<
        diesel::dsl::Select<diesel::dsl::Filter<t::table, diesel::dsl::Eq<t::id, i32>>, t::name>,
    >: diesel::query_dsl::LoadQuery<'a, C, String>,
{
    let mut plain = C::establish(url).expect("connect");
    setup(&mut plain);
    let mut traced = C::establish(url).expect("connect");
    DieselTracer::from_url(url).instrument(&mut traced);

    let _root = tomograph::span(format!("bench {name}")).root().start();
    interleaved(name, &mut plain, &mut traced);
    let mut group = c.benchmark_group(name);
    group.bench_function("untraced", |b| b.iter(|| simple_query(&mut plain)));
    group.bench_function("traced", |b| b.iter(|| simple_query(&mut traced)));
    group.finish();
}

/// Criterion measures the two rows seconds apart, and on a shared 2-core machine the load
/// drifts in between. This also prints the median ratio of alternating batches in ABBA order
/// (untraced, traced, traced, untraced, …) and an A/A control (untraced against untraced on
/// the same schedule): the harness's own bias and noise, to read the traced ratio against.
fn interleaved<C>(name: &str, plain: &mut C, traced: &mut C)
where
    C: LoadConnection,
    C::Backend: diesel::backend::DieselReserveSpecialization
        + diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    for<'a> diesel::dsl::Limit<
        diesel::dsl::Select<diesel::dsl::Filter<t::table, diesel::dsl::Eq<t::id, i32>>, t::name>,
    >: diesel::query_dsl::LoadQuery<'a, C, String>,
{
    const BATCH: u32 = 200;
    const PAIRS: usize = 60;
    fn batch<C>(conn: &mut C) -> Duration
    where
        C: LoadConnection,
        C::Backend: diesel::backend::DieselReserveSpecialization
            + diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
        for<'a> diesel::dsl::Limit<
            diesel::dsl::Select<
                diesel::dsl::Filter<t::table, diesel::dsl::Eq<t::id, i32>>,
                t::name,
            >,
        >: diesel::query_dsl::LoadQuery<'a, C, String>,
    {
        let start = Instant::now();
        for _ in 0..BATCH {
            black_box(simple_query(conn));
        }
        start.elapsed()
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(BATCH);
    let (mut ratios, mut control, mut plain_us, mut traced_us) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for pair in 0..PAIRS {
        let (p, t) = if pair % 2 == 0 {
            let p = batch(plain);
            (p, batch(traced))
        } else {
            let t = batch(traced);
            (batch(plain), t)
        };
        ratios.push(t.as_secs_f64() / p.as_secs_f64());
        plain_us.push(per(p));
        traced_us.push(per(t));
        let (a, b) = (batch(plain), batch(plain));
        control.push(b.as_secs_f64() / a.as_secs_f64());
    }
    eprintln!(
        "{name} interleaved (median of {PAIRS} ABBA pairs of {BATCH}): untraced {:.2} µs, traced {:.2} µs per query; traced/untraced {:.3}; A/A control {:.3}",
        median(plain_us),
        median(traced_us),
        median(ratios),
        median(control),
    );
}

fn benches(c: &mut Criterion) {
    tomograph::init(
        Config::builder()
            .service_name("bench")
            .backend(DiscardBackend::default())
            .build(),
    )
    .expect("tracer");
    group::<SqliteConnection>(
        c,
        "diesel_sqlite",
        "file:tg_diesel_bench?mode=memory&cache=shared",
    );
    match std::env::var("TOMOGRAPH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => group::<PgConnection>(c, "diesel_postgres", &url),
        _ => eprintln!("SKIP diesel_postgres: TOMOGRAPH_TEST_POSTGRES_URL is not set"),
    }
}

criterion_group!(query, benches);
criterion_main!(query);
