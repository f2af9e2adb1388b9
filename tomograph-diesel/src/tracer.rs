//! [`DieselTracer`]: a [`SqlTracer`] plus what is particular to diesel, and the ways to put
//! it on connections.

use diesel::connection::Connection;
use tomograph::sql::SqlTracer;

use crate::instrumentation::TracingInstrumentation;

/// How diesel connections are traced: the database and recording policy (a
/// [`SqlTracer`], shared with every connection it instruments) plus diesel's own options.
/// Cheap to clone; clones share the run-time switch and the `on_error` hooks.
///
/// ```
/// use diesel::prelude::*;
/// use tomograph::sql::QueryText;
/// use tomograph_diesel::DieselTracer;
///
/// # tomograph::testing::memory_tracer();
/// let tracer = DieselTracer::new(
///     tomograph_diesel::builder_for_url(":memory:")
///         .query_text(QueryText::Normalized)
///         .on_error(|event| eprintln!("{} failed: {}", event.sql(), event.error()))
///         .build(),
/// );
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// tracer.instrument(&mut conn);
///
/// let _request = tomograph::span("request").start();
/// diesel::sql_query("CREATE TABLE t (x INTEGER)").execute(&mut conn)?; // a CREATE span
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct DieselTracer {
    pub(crate) sql: SqlTracer,
    pub(crate) health_checks: bool,
    pub(crate) transactions: bool,
    pub(crate) connections: bool,
}

impl DieselTracer {
    /// Traces statements as `sql` says, with diesel's defaults: transaction spans and
    /// connection spans on, pool health checks off.
    pub fn new(sql: SqlTracer) -> Self {
        Self {
            sql,
            health_checks: false,
            transactions: true,
            connections: true,
        }
    }

    /// Every default, the database taken from its URL ([`crate::builder_for_url`]).
    ///
    /// ```
    /// let tracer = tomograph_diesel::DieselTracer::from_url("mysql://root@127.0.0.1:3306/test");
    /// assert_eq!(tracer.sql().system(), tomograph::sql::DbSystem::MySql);
    /// ```
    pub fn from_url(url: &str) -> Self {
        Self::new(crate::builder_for_url(url).build())
    }

    /// Also traces pools' liveness checks (default: off). A check is a statement that is
    /// exactly `SELECT 1` (diesel's r2d2 check) or `SELECT $1` / `SELECT ?` (diesel-async's
    /// `RecyclingMethod::Verified`); when off, such statements make no span, though a failing
    /// one still reaches the `on_error` hooks.
    #[must_use]
    pub fn trace_health_checks(mut self, trace: bool) -> Self {
        self.health_checks = trace;
        self
    }

    /// A span `TRANSACTION` per transaction (and per savepoint), parent of the statements run in it
    /// (default: on). Off, `BEGIN` / `COMMIT` / `ROLLBACK` still appear as statements.
    #[must_use]
    pub fn trace_transactions(mut self, trace: bool) -> Self {
        self.transactions = trace;
        self
    }

    /// A `connect` span (or note) when a connection is established (default: on). Only
    /// connections that diesel's default instrumentation watches from their start report
    /// it: see [`DieselTracer::install_default`].
    #[must_use]
    pub fn trace_connections(mut self, trace: bool) -> Self {
        self.connections = trace;
        self
    }

    /// The shared SQL tracer: its policy, its run-time switch
    /// ([`SqlTracer::set_enabled`]).
    pub fn sql(&self) -> &SqlTracer {
        &self.sql
    }

    /// A fresh [`diesel::connection::Instrumentation`] for one connection.
    pub fn instrumentation(&self) -> TracingInstrumentation {
        TracingInstrumentation::new(self.clone())
    }

    /// Traces every statement of `conn` from now on (replacing its instrumentation).
    pub fn instrument<C: Connection>(&self, conn: &mut C) {
        conn.set_instrumentation(self.instrumentation());
    }
}
