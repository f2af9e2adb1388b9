//! Tag keys: the names of the tags tomograph writes, as constants, grouped by concern.
//!
//! The names are OpenTelemetry's semantic conventions (database conventions stable since
//! semconv 1.33, HTTP's) and the Zipkin/Brave names (`sql.query`, `error`) that Zipkin's UI
//! and existing dashboards read. Use them to read a span's tags in tests and backends, or to
//! write your own spans the way tomograph's adapters do.
//!
//! This module is the bottom layer of the crate: it imports nothing from it.
//!
//! ```
//! use tomograph::keys;
//! assert_eq!(keys::db::QUERY_TEXT, "db.query.text");
//! assert_eq!(keys::SQL_QUERY, "sql.query");
//! let span = tomograph::Span::new(
//!     tomograph::TraceId::from_u64(1).unwrap(),
//!     tomograph::SpanId::from_u64(2).unwrap(),
//!     "SELECT users",
//!     tomograph::Endpoint::new("web"),
//!     tomograph::Timestamp::now(),
//! )
//! .with_tag(keys::db::SYSTEM_NAME, "postgresql");
//! assert_eq!(span.tag_value(keys::db::SYSTEM_NAME).unwrap().to_string(), "postgresql");
//! ```

/// Zipkin's (and the original library's) tag for a failed span: the error message. A span
/// with it is an error in Zipkin's UI.
pub const ERROR: &str = "error";

/// OpenTelemetry's class of the error (`error.type`): a status code, an error kind, or
/// `_OTHER`.
pub const ERROR_TYPE: &str = "error.type";

/// The value of [`ERROR_TYPE`] when nothing more precise is known (OpenTelemetry's fallback).
pub const ERROR_TYPE_OTHER: &str = "_OTHER";

/// Zipkin/Brave's tag for a statement's text (recorded beside [`db::QUERY_TEXT`]).
pub const SQL_QUERY: &str = "sql.query";

/// OpenTelemetry's database conventions (`db.*`), and tomograph's own `db.*` additions.
pub mod db {
    /// The database management system: `postgresql`, `mysql`, `mariadb`, `sqlite`.
    pub const SYSTEM_NAME: &str = "db.system.name";
    /// The database (schema) name.
    pub const NAMESPACE: &str = "db.namespace";
    /// The statement's text, as the recording policy allows.
    pub const QUERY_TEXT: &str = "db.query.text";
    /// A low-cardinality summary of the statement, `{operation} {collection} …`
    /// (`SELECT users`, `INSERT orders SELECT carts`): never a literal.
    pub const QUERY_SUMMARY: &str = "db.query.summary";
    /// The statement's operation (`SELECT`, `INSERT`, …).
    pub const OPERATION_NAME: &str = "db.operation.name";
    /// The table a single-table statement works on.
    pub const COLLECTION_NAME: &str = "db.collection.name";
    /// Prefix of the bound values' tags, `db.query.parameter.<key>` (opt-in).
    pub const QUERY_PARAMETER_PREFIX: &str = "db.query.parameter.";
    /// How many bound values were not recorded (past the cap).
    pub const QUERY_PARAMETERS_OMITTED: &str = "db.query.parameters.omitted";
    /// Rows the statement returned.
    pub const RESPONSE_RETURNED_ROWS: &str = "db.response.returned_rows";
    /// Rows the statement changed.
    pub const RESPONSE_AFFECTED_ROWS: &str = "db.response.affected_rows";
    /// The database's status code on failure: PostgreSQL's SQLSTATE, MySQL's error number,
    /// SQLite's extended result code.
    pub const RESPONSE_STATUS_CODE: &str = "db.response.status_code";
    /// Set (`true`) on a statement slower than the tracer's slow-statement threshold.
    pub const SLOW: &str = "db.slow";
    /// How long the statement waited for a pooled connection, in microseconds.
    pub const CONNECTION_WAIT_TIME_US: &str = "db.client.connection.wait_time_us";
    /// The name of a connection pool.
    pub const POOL_NAME: &str = "db.client.connection.pool.name";
    /// How a transaction ended: `commit`, `rollback` or `failed`.
    pub const TRANSACTION_OUTCOME: &str = "db.transaction.outcome";
    /// A transaction's nesting depth: 1 for a transaction, 2 and up for savepoints.
    pub const TRANSACTION_DEPTH: &str = "db.transaction.depth";
    /// How a transaction takes its locks (SQLite: `deferred`, `immediate`, `exclusive`).
    pub const TRANSACTION_BEHAVIOR: &str = "db.transaction.behavior";
}

/// The server's address and port (OpenTelemetry's `server.*`).
pub mod server {
    /// Host name or IP address.
    pub const ADDRESS: &str = "server.address";
    /// Port.
    pub const PORT: &str = "server.port";
}

/// HTTP tags (the Zipkin names tomograph's HTTP spans have always carried).
pub mod http {
    /// The request method.
    pub const METHOD: &str = "http.method";
    /// The request path.
    pub const PATH: &str = "http.path";
    /// The matched route (`/users/{id}`).
    pub const ROUTE: &str = "http.route";
    /// The response status code.
    pub const STATUS_CODE: &str = "http.status_code";
}
