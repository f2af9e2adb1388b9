//! A traced rusqlite r2d2 pool with manual spans: `cargo run -p tomograph-examples --example
//! rusqlite`.
//!
//! One "import" request fans out to four worker threads that share the pool; every
//! statement is a CLIENT span under its worker's span, each transaction a `TRANSACTION` span
//! around its `BEGIN`, statements and `COMMIT`, and the pool's checkout checks stay out of
//! the trace. A duplicate insert shows a failed statement (`error` tag,
//! `db.response.status_code = SQLITE_CONSTRAINT_UNIQUE`) and the `on_error` hook; the text of
//! statements is recorded with literals masked.
//!
//! The trace is printed in the terminal; `TOMOGRAPH_BACKENDS=console,zipkin` (with
//! `TOMOGRAPH_ZIPKIN_URL`) sends it to Zipkin too.

use std::error::Error;
use std::time::Duration;

use tomograph::ConfigBuilder;
use tomograph::sql::QueryText;
use tomograph_rusqlite::r2d2_sqlite::SqliteConnectionManager;
use tomograph_rusqlite::{TracedPool, TracedSqliteConnectionManager, r2d2};

const WORKERS: i64 = 4;

fn main() -> Result<(), Box<dyn Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    tomograph::init(ConfigBuilder::from_env("console")?.build())?;

    let path = std::env::temp_dir().join(format!("tomograph_rusqlite_{}.db", std::process::id()));
    let result = run(&path);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    result?;

    // Deliver everything before exiting.
    tomograph::shutdown(Duration::from_secs(5))?;
    Ok(())
}

fn run(path: &std::path::Path) -> Result<(), Box<dyn Error>> {
    let tracer = tomograph_rusqlite::sql_tracer()
        .namespace("main")
        .query_text(QueryText::Normalized)
        .on_error(|event| {
            log::warn!(
                "statement failed ({}): {}",
                event.code().unwrap_or("?"),
                event.error()
            );
        })
        .build();
    // SQLite allows one writer at a time: WAL, and let the others wait for it.
    let manager = TracedSqliteConnectionManager::new(
        SqliteConnectionManager::file(path).with_init(|c| {
            c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;")
        }),
        tracer,
    );
    let pool: TracedPool = r2d2::Pool::builder()
        .max_size(WORKERS as u32)
        .build(manager)?;

    // Schema set-up happens outside any trace: not recorded.
    pool.get()?.execute_batch(
        "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, worker INTEGER)",
    )?;

    let request = tomograph::span("import").start();
    let token = request.token();
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let pool = pool.clone();
            std::thread::spawn(move || -> Result<i64, Box<dyn Error + Send + Sync>> {
                let _span = tomograph::span(format!("worker {worker}"))
                    .child_of_opt(token)
                    .start();
                let mut conn = pool.get()?;
                let tx = conn.transaction()?;
                let mut insert =
                    tx.prepare_cached("INSERT INTO items (name, worker) VALUES (?1, ?2)")?;
                for n in 0..3 {
                    insert.execute((format!("item {worker}-{n}"), worker))?;
                }
                drop(insert);
                tx.commit()?;
                let count = conn.query_row(
                    "SELECT count(*) FROM items WHERE worker = ?1",
                    [worker],
                    |row| row.get(0),
                )?;
                Ok(count)
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker
            .join()
            .map_err(|_| "a worker panicked")?
            .map_err(|e| e.to_string())?;
    }
    request.tag("items.imported", total);

    // A failure: the span is marked, the hook logs it, the error is ours to handle.
    let conn = pool.get()?;
    match conn.execute("INSERT INTO items (name) VALUES ('item 0-0')", []) {
        Err(e) => println!("duplicate rejected as expected: {e}"),
        Ok(_) => return Err("the duplicate was accepted".into()),
    }
    drop(request);
    println!("imported {total} items");
    Ok(())
}
