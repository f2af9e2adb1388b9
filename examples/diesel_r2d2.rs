//! A traced diesel r2d2 pool with manual spans: `cargo run -p tomograph-examples --example
//! diesel_r2d2`.
//!
//! One "request" fans out to four worker threads that share the pool; every statement is a
//! CLIENT span under its worker's span, each transaction a span around its statements, and
//! the pool's `SELECT 1` checkout checks stay out of the trace. A duplicate insert shows a
//! failed statement (an `error` tag, `error.type = UniqueViolation`) and the `on_error` hook.
//!
//! SQLite (a temporary file) by default; set `DATABASE_URL=postgres://…` to use PostgreSQL
//! (build with `--features diesel-postgres`, which links libpq).
//! The trace is printed in the terminal; `TOMOGRAPH_BACKENDS=console,zipkin` (with
//! `TOMOGRAPH_ZIPKIN_URL`) sends it to Zipkin too.

use std::error::Error;
use std::time::Duration;

use diesel::prelude::*;
use diesel::query_builder::SqlQuery;
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection, R2D2Connection};
use tomograph::ConfigBuilder;
use tomograph_diesel::DieselTracer;
use tomograph_diesel::r2d2::TracingCustomizer;

const WORKERS: usize = 4;

fn main() -> Result<(), Box<dyn Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    tomograph::init(ConfigBuilder::from_env("console")?.build())?;

    match std::env::var("DATABASE_URL") {
        #[cfg(feature = "diesel-postgres")]
        Ok(url) if url.starts_with("postgres") => run::<PgConnection>(&url, None)?,
        #[cfg(not(feature = "diesel-postgres"))]
        Ok(url) if url.starts_with("postgres") => {
            return Err(
                "DATABASE_URL names PostgreSQL: run with --features diesel-postgres".into(),
            );
        }
        _ => {
            let path = std::env::temp_dir()
                .join(format!("tomograph_diesel_r2d2_{}.db", std::process::id()));
            let url = path.to_string_lossy().into_owned();
            // SQLite allows one writer at a time: let the others wait for it.
            let result = run::<SqliteConnection>(&url, Some("PRAGMA busy_timeout = 5000"));
            let _ = std::fs::remove_file(&path);
            result?;
        }
    }

    // Deliver everything before exiting.
    tomograph::shutdown(Duration::from_secs(5))?;
    Ok(())
}

fn run<C>(url: &str, setup_sql: Option<&str>) -> Result<(), Box<dyn Error>>
where
    C: R2D2Connection + Send + 'static,
    SqlQuery: ExecuteDsl<PooledConnection<ConnectionManager<C>>>,
{
    // The database from its URL (system, server, name; never the credentials), the default
    // policy (SQL text as written, no bound values), and a hook for failed statements.
    let tracer = DieselTracer::new(
        tomograph_diesel::builder_for_url(url)
            .on_error(|event| log::warn!("statement failed: {} ({})", event.sql(), event.error()))
            .build(),
    );
    // `tomograph_diesel::r2d2::pool_builder(tracer)` is the short form; the customizer also
    // runs per-connection set-up SQL.
    let mut customizer = TracingCustomizer::new(tracer);
    if let Some(sql) = setup_sql {
        customizer = customizer.setup_sql(sql);
    }
    let pool = Pool::builder()
        .max_size(WORKERS as u32)
        .connection_customizer(Box::new(customizer))
        .build(ConnectionManager::new(url))?;

    // Outside any trace: set-up statements are not traced.
    let mut conn = pool.get()?;
    diesel::sql_query("DROP TABLE IF EXISTS tg_diesel_example_orders").execute(&mut conn)?;
    diesel::sql_query(
        "CREATE TABLE tg_diesel_example_orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)",
    )
    .execute(&mut conn)?;
    drop(conn);

    let request = tomograph::span("POST /orders").root().start();
    let token = request.token();
    std::thread::scope(|scope| {
        for worker in 0..WORKERS {
            let pool = pool.clone();
            scope.spawn(move || {
                let span = tomograph::span(format!("worker {worker}"))
                    .child_of_opt(token)
                    .start();
                if let Err(e) = place_order(&pool, worker) {
                    span.record_error(&e);
                    log::error!("worker {worker}: {e}");
                }
            });
        }
    });

    // The same id again: a unique violation, recorded on its span and passed to the hook.
    let mut conn = pool.get()?;
    let duplicate =
        diesel::sql_query("INSERT INTO tg_diesel_example_orders (id, item) VALUES (0, 'again')")
            .execute(&mut conn);
    request.annotate(if duplicate.is_err() {
        "duplicate refused"
    } else {
        "duplicate accepted"
    });
    drop(request);
    Ok(())
}

fn place_order<C>(pool: &Pool<ConnectionManager<C>>, worker: usize) -> Result<(), Box<dyn Error>>
where
    C: R2D2Connection + Send + 'static,
    SqlQuery: ExecuteDsl<PooledConnection<ConnectionManager<C>>>,
{
    let mut conn = pool.get()?;
    // BEGIN, INSERT, UPDATE, COMMIT under a `transaction` span, child of this worker's span.
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        diesel::sql_query(format!(
            "INSERT INTO tg_diesel_example_orders (id, item) VALUES ({worker}, 'item {worker}')"
        ))
        .execute(conn)?;
        diesel::sql_query(format!(
            "UPDATE tg_diesel_example_orders SET item = item || ' (paid)' WHERE id = {worker}"
        ))
        .execute(conn)?;
        Ok(())
    })?;
    tomograph::annotate("order placed");
    Ok(())
}
