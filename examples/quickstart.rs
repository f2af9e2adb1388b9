//! The README's first command: `cargo run --example quickstart`.
//!
//! One request of an "image service": manual spans (the seed's start/annotate/tag/stop),
//! an embedded SQLite database traced statement by statement, work continued on other
//! threads with a trace token and in async tasks across `.await`. The trace tree is printed
//! in the terminal; set `TOMOGRAPH_BACKENDS=console,zipkin,statsd` (with
//! `TOMOGRAPH_ZIPKIN_URL` / `TOMOGRAPH_STATSD_ADDR`) to send it to Zipkin and statsd too.

use std::error::Error;
use std::time::Duration;

use tomograph::sql::{DbSystem, SqlTracer};
use tomograph::{ConfigBuilder, FutureExt, Kind};
use tomograph_rusqlite::TracedConnection;

fn main() -> Result<(), Box<dyn Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    tomograph::init(ConfigBuilder::from_env("console")?.build())?;

    let db_tracer = SqlTracer::builder(DbSystem::Sqlite)
        .namespace("main")
        .build();
    let mut db = TracedConnection::open_in_memory(db_tracer)?;
    // Outside any trace: set-up statements are not traced.
    db.execute_batch(
        "CREATE TABLE images (id INTEGER PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL)",
    )?;

    // The seed's manual API: a span per start/stop pair, nested on this thread.
    tomograph::start("quickstart", "GET /images", "127.0.0.1", 8080);
    tomograph::annotate("request received");
    tomograph::tag("http.method", "GET");

    {
        // Every statement becomes a CLIENT child span named by its operation.
        let tx = db.transaction()?;
        for (name, size) in [("cat.png", 2048), ("dog.jpg", 4096), ("owl.gif", 512)] {
            tx.execute(
                "INSERT INTO images (name, size) VALUES (?1, ?2)",
                (name, size),
            )?;
        }
        tx.commit()?;
    }

    // Continue the trace on other threads with a token.
    let token = tomograph::get_trace_info();
    std::thread::scope(|scope| {
        for i in 0..2 {
            scope.spawn(move || {
                tomograph::start_from(
                    token,
                    "quickstart",
                    format!("thumbnail {i}"),
                    "127.0.0.1",
                    0,
                );
                std::thread::sleep(Duration::from_millis(2 + i));
                tomograph::annotate("resized");
                if let Err(e) = tomograph::stop(&format!("thumbnail {i}")) {
                    eprintln!("{e}");
                }
            });
        }
    });

    // Async tasks: spans follow each task across `.await` and worker threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let tasks: Vec<_> = ["cdn-eu", "cdn-us"]
            .into_iter()
            .map(|cdn| {
                tokio::spawn(
                    async move {
                        // A span across `.await` is the future's own (a guard is not `Send`).
                        async {
                            tokio::time::sleep(Duration::from_millis(3)).await;
                            tomograph::annotate("purged");
                        }
                        .traced_with(tomograph::span(format!("purge {cdn}")).kind(Kind::Client))
                        .await
                    }
                    .in_current_trace(),
                )
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });

    let mut statement = db.prepare("SELECT id, name FROM images WHERE size > ?1 ORDER BY id")?;
    let names = statement
        .query_map([1000], |row| row.get::<_, String>(1))?
        .collect::<Result<Vec<_>, _>>()?;
    tomograph::tag("images", names.len());
    tomograph::annotate("response sent");
    tomograph::stop("GET /images")?;

    println!("images larger than 1000 bytes: {names:?}");
    // Deliver everything before exiting.
    tomograph::shutdown(Duration::from_secs(5))?;
    Ok(())
}
