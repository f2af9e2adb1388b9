//! # tomograph-rusqlite
//!
//! Traced [rusqlite] connections and `r2d2_sqlite` pools: every SQL statement becomes a
//! [tomograph] span — the Rust form of the original tomograph's SQLAlchemy listeners.
//!
//! Change one type: [`TracedConnection`] wraps `rusqlite::Connection` and keeps its
//! methods (`execute`, `execute_batch`, `query_row`, `prepare`, `prepare_cached`,
//! `transaction`, …) with the same signatures and errors. Each statement becomes a CLIENT
//! span, child of whatever span is current (a manual span, an HTTP request, a traced
//! future), named by its operation (`SELECT`, `INSERT`, …) and tagged with its text,
//! `db.system.name = sqlite` and the rows it returned or changed. What is recorded, and
//! whether, is the [`SqlTracer`]'s policy, shared by every tomograph SQL adapter (see
//! [`tomograph::sql`]): raw, normalized (literals masked) or no text, a length cap, bound
//! parameters only when opted in, spans or notes, a run-time switch, `on_error` hooks.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use tomograph::sql::QueryText;
//! use tomograph_rusqlite::TracedConnection;
//!
//! let memory = tomograph::testing::memory_tracer(); // or tomograph::init(..) in your app
//! let failures = Arc::new(AtomicUsize::new(0));
//! let counter = failures.clone();
//! let tracer = tomograph_rusqlite::sql_tracer()
//!     .query_text(QueryText::Normalized)
//!     .on_error(move |event| {
//!         counter.fetch_add(1, Ordering::Relaxed);
//!         eprintln!("{} failed ({:?}): {}", event.sql(), event.code(), event.error());
//!     })
//!     .build();
//! let db = TracedConnection::open_in_memory(tracer)?;
//!
//! let trace = {
//!     let request = tomograph::span("GET /users").root().start();
//!     db.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")?;
//!     db.execute("INSERT INTO users (name) VALUES ('ada')", [])?;
//!     let duplicate = db.execute("INSERT INTO users (name) VALUES ('ada')", []);
//!     assert!(duplicate.is_err()); // the caller gets rusqlite's error, unchanged
//!     request.token().unwrap().trace_id()
//! };
//!
//! let spans = tomograph::testing::wait_for_trace(&memory, trace, 4, std::time::Duration::from_secs(5));
//! let insert = &spans[1];
//! assert_eq!(insert.name(), "INSERT users");
//! assert_eq!(insert.parent_id(), Some(spans[3].id()));
//! assert_eq!(insert.tag_value("db.query.text").unwrap().to_string(), "INSERT INTO users (name) VALUES (?)");
//! let failed = &spans[2];
//! assert!(failed.is_error());
//! assert_eq!(failed.tag_value("db.response.status_code").unwrap().to_string(), "SQLITE_CONSTRAINT_UNIQUE");
//! assert_eq!(failures.load(Ordering::Relaxed), 1);
//! # Ok::<(), rusqlite::Error>(())
//! ```
//!
//! ## What is traced
//!
//! - [`TracedConnection`]: `execute`, `execute_batch` (one span for the batch, named by its
//!   first statement), `query_row`, `query_one`, `query_row_and_then`; everything else of
//!   `rusqlite::Connection` is reachable through `Deref`, untraced.
//! - [`TracedStatement`] (from `prepare` / `prepare_cached`): `execute`, `insert`,
//!   `exists`, `query_row`, `query_one`, and `query` / `query_map` / `query_and_then`,
//!   whose span lasts until the rows are exhausted or dropped and records how many were
//!   read. The statement's text is processed once per prepared statement (and once per SQL
//!   text for `prepare_cached`), so repeated executions copy nothing; with no trace in
//!   progress an execution does nothing more than rusqlite's.
//! - [`TracedTransaction`]: a `TRANSACTION` span containing `BEGIN`, the statements, and
//!   `COMMIT` or `ROLLBACK` (also the rollback on drop).
//! - Errors (syntax errors, constraint violations, busy or locked databases, rusqlite's own
//!   errors): the span gets an `error` tag and note and `db.response.status_code` (see
//!   [`error_code`]), every `on_error` hook runs once — also when tracing is off — and the
//!   caller gets the error unchanged. `QueryReturnedNoRows` from `query_row` is a statement
//!   that returned no rows, not a failure. A statement that does not prepare gives a failed
//!   span of its own.
//! - Bound parameters (one tag `db.query.parameter.<key>` each, only with
//!   [`record_parameters(true)`](tomograph::sql::SqlTracerBuilder::record_parameters)):
//!   read back from SQLite after binding, keyed by 0-based index or name (`0` = `42`,
//!   `name` = `'ada'`); never touched otherwise. The same switch records SQLite's error
//!   messages as they are; by default their quoted literals are masked.
//! - r2d2 (feature `r2d2`, default): [`TracedSqliteConnectionManager`], [`TracedPool`], and
//!   [`pool_builder`], whose pools tag each statement with the wait for its connection
//!   (`db.client.connection.wait_time_us`) and trace timeouts (`acquire connection`).
//!
//! The crate re-exports the `rusqlite` (and with `r2d2`, the `r2d2` and `r2d2_sqlite`)
//! it was built with.
#![warn(missing_docs)]

mod code;
mod connection;
mod params;
#[cfg(feature = "r2d2")]
mod pool;
mod statement;
mod transaction;

pub use code::error_code;
pub use connection::TracedConnection;
#[cfg(feature = "r2d2")]
pub use pool::{
    TracedPool, TracedPooledConnection, TracedSqliteConnectionManager, pool_builder,
    watch_pool_gauges,
};
pub use statement::{TracedAndThenRows, TracedMappedRows, TracedRows, TracedStatement};
pub use transaction::TracedTransaction;

#[cfg(feature = "r2d2")]
pub use r2d2;
#[cfg(feature = "r2d2")]
pub use r2d2_sqlite;
pub use rusqlite;

use tomograph::sql::{DbSystem, SqlTracer, SqlTracerBuilder};

/// A [`SqlTracer`] builder for SQLite: `SqlTracer::builder(DbSystem::Sqlite)`.
///
/// ```
/// use tomograph::sql::QueryText;
/// let tracer = tomograph_rusqlite::sql_tracer()
///     .namespace("main")
///     .query_text(QueryText::Normalized)
///     .max_query_len(1024)
///     .build();
/// assert_eq!(tracer.remote_endpoint().service_name(), "sqlite");
/// ```
pub fn sql_tracer() -> SqlTracerBuilder {
    SqlTracer::builder(DbSystem::Sqlite)
}
