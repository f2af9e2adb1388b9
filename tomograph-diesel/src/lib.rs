//! # tomograph-diesel
//!
//! Every statement diesel runs becomes a span of the current trace, through diesel's own
//! [`Instrumentation`](diesel::connection::Instrumentation) hook: a CLIENT span named by the
//! operation (`SELECT`, `INSERT`, …), child of whatever span is current (a manual span, an
//! HTTP request, a `#[traced]` function), tagged with the SQL and the database as
//! [`tomograph::sql`] describes. Transactions are spans around their statements; connection
//! attempts can be spans too.
//!
//! ```
//! use diesel::prelude::*;
//! use tomograph_diesel::DieselTracer;
//!
//! let memory = tomograph::testing::memory_tracer();
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! DieselTracer::from_url(":memory:").instrument(&mut conn);
//!
//! let trace = {
//!     let request = tomograph::span("request").root().start();
//!     diesel::sql_query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)").execute(&mut conn)?;
//!     conn.transaction(|conn| {
//!         diesel::sql_query("INSERT INTO users (name) VALUES ('ada')").execute(conn)
//!     })?;
//!     request.token().map(|t| t.trace_id())
//! };
//!
//! # let trace = trace.expect("traced");
//! let spans = tomograph::testing::wait_for_trace(&memory, trace, 6, std::time::Duration::from_secs(5));
//! let names: Vec<&str> = spans.iter().map(|s| s.name()).collect();
//! // CREATE; BEGIN, INSERT, COMMIT inside TRANSACTION; the request
//! assert_eq!(names, ["CREATE TABLE users", "BEGIN", "INSERT users", "COMMIT", "TRANSACTION", "request"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Ways in
//!
//! - one connection: [`DieselTracer::instrument`] (or `set_instrumentation` with
//!   [`DieselTracer::instrumentation`]);
//! - every new connection: [`DieselTracer::install_default`], diesel's default
//!   instrumentation — also the only way to trace connection establishment;
//! - r2d2 pools (feature `r2d2`): [`r2d2::pool_builder`] (also the wait for each connection,
//!   tagged `db.client.connection.wait_time_us` on its next statement, and pool timeouts as
//!   `acquire connection` spans) or the [`r2d2::TracingCustomizer`];
//! - diesel-async (feature `async`, with `postgres` / `mysql`; pools with `bb8` /
//!   `deadpool`): [`asynchronous`] (connection waits and pool timeouts
//!   with [`asynchronous::TracedGet::get_traced`]).
//!
//! ## What is recorded
//!
//! Everything [`tomograph::sql`] offers, set on the [`SqlTracer`](tomograph::sql::SqlTracer)
//! inside a [`DieselTracer`] (start from [`builder_for_url`]): the text as written,
//! normalized, or not at all; a length cap; bound values only when opted in
//! (`record_parameters`: one tag `db.query.parameter.<index>` per value, taken from diesel's
//! `-- binds: [...]`, which is otherwise never formatted; the same switch records the
//! database's error messages unmasked); notes on the current span instead of spans (`SqlMode::Annotations`); the
//! run-time switch; `on_error` hooks, called once per failed statement, traced or not.
//!
//! A failed statement's span gets the `error` tag (the database's message, every value it
//! quotes masked unless opted in) and note, and `error.type`: the
//! [`DatabaseErrorKind`](diesel::result::DatabaseErrorKind) (`UniqueViolation`,
//! `ForeignKeyViolation`, …) for errors from the database, else diesel's error variant.
//! diesel exposes no status code — its `DatabaseErrorInformation` has the message, details,
//! hint, table, column and constraint names, but not PostgreSQL's SQLSTATE, MySQL's error
//! number or SQLite's result code — so `db.response.status_code` is not set, and
//! `SqlErrorEvent::code` is `None` while `SqlErrorEvent::error_type` is the kind; hooks can
//! downcast [`SqlErrorEvent::error`](tomograph::sql::SqlErrorEvent::error) to
//! [`diesel::result::Error`].
//!
//! | span | when | tags |
//! |---|---|---|
//! | `SELECT users`, `INSERT orders`, … (CLIENT; the query summary) | each statement | those of [`tomograph::sql`], `error.type` on failure; a note `statement cached` when diesel prepares it for its cache |
//! | `TRANSACTION` | `BEGIN` … `COMMIT`/`ROLLBACK`; a nested one (savepoint) inside its parent | the schema of [`tomograph::sql::SqlTransaction`]: `db.system.name` (and `db.namespace`, `server.*`), `db.transaction.depth`, `db.transaction.outcome` (`commit`/`rollback`/`failed`), a note `commit`/`rollback`; `error`, `error.type` when `BEGIN` or `COMMIT` fails |
//! | `connect` (CLIENT) | establishing a connection (default instrumentation only) | `db.system.name`; `error`, `error.type` on failure |
//!
//! A statement belongs to the open transaction when it runs under the span that was current
//! at `BEGIN`; one run under a span opened inside the transaction is that span's child.
//! Pool health checks (`SELECT 1`) make no span unless asked for
//! ([`DieselTracer::trace_health_checks`]). Statements outside any trace are not traced
//! unless the `SqlTracer` has `trace_roots`.
//!
//! ## Cost
//!
//! diesel tells an instrumentation about a statement with an opaque `&dyn DebugQuery`; the
//! only way to read its SQL is to format it, which makes diesel walk the query (boxing every
//! bound value) and rebuild the SQL text, on every execution, cached statement or not. That
//! is most of what tracing a diesel statement costs: ≈ 0.4–0.6 µs per statement (18 % of a
//! 3.3 µs in-memory SQLite query, ≈ 2.5 % of a PostgreSQL round trip on loopback); the span
//! itself is ≈ 0.22 µs (`BENCHMARKS.md`). Statements outside a sampled trace are never formatted:
//! there the instrumentation costs 0.2–1 %.
//!
//! ## Features and native libraries
//!
//! `sqlite` (default; bundled SQLite, no system library), `postgres` (needs libpq:
//! Debian/Ubuntu `libpq-dev`), `mysql` (needs libmysqlclient: `default-libmysqlclient-dev`),
//! `r2d2` (default), `async` (diesel-async; pure Rust drivers), `bb8`, `deadpool`.
#![warn(missing_docs)]

#[cfg(feature = "async")]
#[path = "async.rs"]
pub mod asynchronous;
mod default;
mod error;
mod in_flight;
mod instrumentation;
mod last_statement;
mod query;
#[cfg(feature = "r2d2")]
pub mod r2d2;
mod tracer;
mod url;

pub use default::uninstall_default;
pub use error::InstallError;
pub use instrumentation::TracingInstrumentation;
pub use tracer::DieselTracer;
pub use url::builder_for_url;
