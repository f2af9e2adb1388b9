//! What every SQL adapter shares: turning "a statement starts / finishes / fails" into a span.
//!
//! The Rust form of the original's SQLAlchemy listeners (`before_execute`, `after_execute`,
//! `dbapi_error`). An adapter (tomograph-rusqlite, -diesel, -sqlx) owns a [`SqlTracer`]
//! describing its database and the user's policy, calls [`SqlTracer::start`] before a statement
//! and [`SqlSpan::finish`] or [`SqlSpan::fail`] after it. Everything else — naming, tags, text
//! policy, the error record, `on_error` hooks, annotation mode, the run-time switch — lives
//! here, once.
//!
//! Each statement becomes a CLIENT span, child of whatever span is current (a manual span, an
//! HTTP request, a `#[traced]` function), named by its operation (`SELECT`, `INSERT`, …), with
//! the database as remote endpoint and these tags:
//!
//! | tag | value |
//! |---|---|
//! | `sql.query`, `db.query.text` | the statement, as the policy says (raw, normalized, or absent) |
//! | `db.system.name` | `sqlite`, `postgresql`, `mysql` |
//! | `db.operation.name` | the operation |
//! | `db.namespace` | the database name, when known |
//! | `server.address`, `server.port` | the server, when known |
//! | `db.response.returned_rows` / `db.response.affected_rows` | when the adapter knows them |
//! | `db.query.parameter.<key>` | each bound value (key: 0-based index or name), only when opted in |
//! | `error`, `db.response.status_code` | on failure: the database's message (values masked) and code |
//!
//! What the database says on failure is data too: its message often quotes the bound value
//! that failed (`Duplicate entry 'alice@example.com' for key …`). Spans record it with every
//! quoted value masked ([`redact_message`]) unless the user opted in to bound values with
//! [`record_parameters(true)`](SqlTracerBuilder::record_parameters); `on_error` hooks get
//! the driver's error itself.
//!
//! What a statement's spans have in common — the text, operation, database tags and remote
//! endpoint — is built once per statement and interned; each span points at it and carries
//! only its own outcome (rows, error), so a statement span costs about what a bare span does.
//! A statement run again on the same thread is looked up in a small per-thread cache, without
//! a lock. (Past the interning cap, 4 MiB per process, spans carry copies instead.)
//!
//! ```
//! use tomograph::sql::{DbSystem, QueryText, SqlTracer};
//! let db = SqlTracer::builder(DbSystem::Postgres)
//!     .server("127.0.0.1", Some(5432))
//!     .namespace("shop")
//!     .query_text(QueryText::Normalized)
//!     .on_error(|event| eprintln!("{} failed: {}", event.sql(), event.error()))
//!     .build();
//!
//! let _request = tomograph::span("GET /orders").start();
//! let statement = db.start("SELECT * FROM orders WHERE id = 42");
//! // … run it …
//! statement.finish_with_rows(1);
//! ```

mod dialect;
mod hooks;
mod policy;
mod pool;
mod query;
#[cfg(feature = "r2d2")]
mod r2d2_events;
mod recent;
mod redact;
mod slow;
mod span;
mod statement;
mod summary;
mod system;
mod tracer;
mod transaction;
mod wait;

pub use self::dialect::Dialect;
pub use self::hooks::SqlErrorEvent;
pub use self::policy::{
    DEFAULT_MAX_QUERY_LEN, MAX_PARAMETER_LEN, MAX_PARAMETERS, QueryText, SqlMode,
};
pub use self::pool::{
    PoolState, PoolWatch, report_pool_gauges, set_pool_gauge_interval, watch_pool,
};
pub use self::query::{normalize, operation, truncate};
#[cfg(feature = "r2d2")]
pub use self::r2d2_events::{PoolEvents, PoolTimeout};
pub use self::redact::redact_message;
pub use self::span::SqlSpan;
pub use self::statement::{SqlStatement, Summarized, summarized, summary_override, with_summary};
pub use self::summary::{MAX_SUMMARY_LEN, QuerySummary, summarize};
pub use self::system::DbSystem;
pub use self::tracer::{SqlTracer, SqlTracerBuilder, SqlTracerError};
pub use self::transaction::{SqlTransaction, TransactionOutcome};
pub use self::wait::{
    ACQUIRE_SPAN_NAME, POOL_TIMED_OUT, clear_pending_connection_wait, set_pending_connection_wait,
};
