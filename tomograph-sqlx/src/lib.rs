//! # tomograph-sqlx
//!
//! Traced [sqlx] pools, connections and transactions: every statement run through them
//! becomes a CLIENT span, child of the current [tomograph] context — a request handled by the
//! tomograph middleware, a `#[traced]` async fn, a manual span — across `.await` and worker
//! threads.
//!
//! sqlx has no query hook, so this crate wraps the executors: [`TracedPool`],
//! [`TracedConnection`] (from [`TracedPool::acquire`]) and [`TracedTransaction`] (from
//! `begin()`) implement [`sqlx::Executor`] themselves and delegate to sqlx. Use them wherever
//! sqlx takes an executor: `query(..).fetch_all(&pool)`, `query_as`, `query_scalar`,
//! `execute`, `fetch` streams (the span ends when the stream is exhausted or dropped, with the
//! row count), and the output of the `query!` macros.
//!
//! Spans are named by the statement's query summary (`SELECT users`, see [`tomograph::sql`])
//! and carry the tags of
//! [`tomograph::sql`]: `sql.query`, `db.system.name`, `db.namespace`, `server.address`,
//! `server.port` (read from the pool's connect options), `db.response.returned_rows` /
//! `db.response.affected_rows`, and on failure `error` (the database's message, every value
//! it quotes masked unless opted in), `error.type` (`UniqueViolation`, `PoolTimedOut`, …, else
//! the code) and `db.response.status_code` (PostgreSQL's SQLSTATE, MySQL's error number,
//! SQLite's extended result code). Statements of a [`TracedPool`] that waited for a connection
//! carry `db.client.connection.wait_time_us`. Bound values (`record_parameters(true)`) are recorded for
//! SQLite, one tag `db.query.parameter.<index>` each; sqlx's PostgreSQL and MySQL drivers
//! keep them encoded, so [`tracer_builder`] refuses the option for them. The policy — query text raw, normalized or off, length cap,
//! parameters, annotations instead of spans, statements outside any trace, the run-time
//! switch, `on_error` hooks — is a [`SqlTracer`](tomograph::sql::SqlTracer): build one with
//! [`tracer_builder`] and pass it to [`TracedPool::with_tracer`].
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use tomograph::FutureExt;
//! use tomograph::sql::QueryText;
//! use tomograph_sqlx::TracedPool;
//!
//! let memory = tomograph::testing::memory_tracer();
//!
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
//! let tracer = tomograph_sqlx::tracer_builder(&pool)
//!     .query_text(QueryText::Normalized)
//!     .on_error(|event| eprintln!("{} failed: {:?}", event.sql(), event.code()))
//!     .build();
//! let pool = TracedPool::with_tracer(pool, tracer);
//!
//! let trace = async {
//!     sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)").execute(&pool).await.unwrap();
//!     sqlx::query("INSERT INTO users (name) VALUES ('ada')").execute(&pool).await.unwrap();
//!     let names: Vec<(String,)> = sqlx::query_as("SELECT name FROM users").fetch_all(&pool).await.unwrap();
//!     assert_eq!(names, [("ada".to_owned(),)]);
//!     tomograph::get_trace_info().unwrap().trace_id()
//! }
//! .traced_with(tomograph::span("GET /users").root())
//! .await;
//!
//! let spans = tomograph::testing::wait_for_trace(&memory, trace, 4, Duration::from_secs(5));
//! let names: Vec<&str> = spans.iter().map(|s| s.name()).collect();
//! assert_eq!(names, ["CREATE TABLE users", "INSERT users", "SELECT users", "GET /users"]);
//! let insert = &spans[1];
//! assert_eq!(insert.parent_id(), Some(spans[3].id()));
//! assert_eq!(insert.tag_value("sql.query").unwrap().to_string(), "INSERT INTO users (name) VALUES (?)");
//! assert_eq!(insert.tag_value("db.response.affected_rows").unwrap().to_string(), "1");
//! # });
//! # }
//! ```
//!
//! ## Context
//!
//! The parent of a statement is the context current when the executor method is called
//! (`fetch_all(&pool)` and friends call it in the caller's poll); the span itself starts when
//! the statement starts and ends when it completes. In async code that context exists when
//! the caller's future is wrapped by [`tomograph::FutureExt`] (`traced`, `traced_with`,
//! `in_current_trace`; the `#[traced]` attribute does this) or when a span guard is opened in
//! the same poll. Statements run through a [`TracedTransaction`] are children of its
//! `TRANSACTION` span wherever they are issued.
//!
//! ## Features
//!
//! `sqlite` (default), `postgres`, `mysql`: the databases, as in sqlx.
//!
//! [sqlx]: https://docs.rs/sqlx
//! [tomograph]: https://docs.rs/tomograph
#![warn(missing_docs)]

mod arguments;
mod connection;
mod database;
mod executor;
mod options;
mod pool;
mod stream;
mod transaction;

pub use connection::TracedConnection;
pub use database::{ConnectOptionsOf, TracedDatabase};
pub use options::{ServerInfo, tracer_builder, tracer_builder_for};
pub use pool::TracedPool;
pub use transaction::TracedTransaction;
