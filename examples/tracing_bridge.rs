//! One trace from three sources: `cargo run --example tracing_bridge`.
//!
//! A request span of tomograph's own; inside it, functions instrumented with `tracing`
//! (`#[tracing::instrument]`, `info_span!`, events), bridged by
//! `tomograph_tracing::TomographLayer`; SQLite statements traced by tomograph-rusqlite inside
//! those `tracing` spans; and `log` records, which env_logger keeps printing and
//! `tomograph_tracing::NoteLogger` also adds as notes (WARN and above). The console tree
//! shows them as one trace; set `TOMOGRAPH_BACKENDS=console,zipkin` (and
//! `TOMOGRAPH_ZIPKIN_URL`) to see it in Zipkin too.

use std::error::Error;
use std::time::Duration;

use tomograph::sql::{DbSystem, SqlTracer};
use tomograph::{ConfigBuilder, Kind};
use tomograph_rusqlite::TracedConnection;
use tomograph_tracing::{NoteLogger, TomographLayer};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Instrumented with `tracing`: a bridged span, parent of the SQL statement's span.
#[tracing::instrument(skip(db))]
fn list_images(db: &mut TracedConnection, min_size: i64) -> Result<Vec<String>, Box<dyn Error>> {
    let mut statement = db.prepare("SELECT name FROM images WHERE size > ?1 ORDER BY id")?;
    let names = statement
        .query_map([min_size], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    tracing::info!(count = names.len(), "listed");
    Ok(names)
}

#[tracing::instrument(fields(otel.kind = "client", bytes = tracing::field::Empty))]
fn upload(name: &str) {
    std::thread::sleep(Duration::from_millis(2));
    tracing::Span::current().record("bytes", 2048);
    if name.ends_with(".gif") {
        // Printed by env_logger, and a note on this (bridged) span.
        log::warn!("{name}: GIF thumbnails are slow");
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    // The application's logger, wrapped: it prints as before.
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    log::set_max_level(logger.filter());
    NoteLogger::new(logger).install()?;

    tomograph::init(ConfigBuilder::from_env("console")?.build())?;
    tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(TomographLayer::new())
        .init();

    let mut db = TracedConnection::open_in_memory(SqlTracer::builder(DbSystem::Sqlite).build())?;
    db.execute_batch(
        "CREATE TABLE images (id INTEGER PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL);
         INSERT INTO images (name, size) VALUES ('cat.png', 2048), ('dog.jpg', 4096), ('owl.gif', 3000);",
    )?;

    {
        // tomograph's own span: the request.
        let request = tomograph::span("POST /thumbnails")
            .kind(Kind::Server)
            .start();
        let names = list_images(&mut db, 1000)?;
        tracing::info_span!("upload thumbnails", count = names.len()).in_scope(|| {
            for name in &names {
                upload(name);
            }
        });
        log::info!("printed only: below the notes' level");
        log::warn!("a note on the request span");
        request.tag("images", names.len());
    }

    // Deliver everything before exiting.
    tomograph::shutdown(Duration::from_secs(5))?;
    Ok(())
}
