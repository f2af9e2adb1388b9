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
mod query;
mod recent;
mod redact;

use std::error::Error;
use std::fmt::Display;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use self::dialect::Dialect;
pub use self::query::{normalize, operation, truncate};
pub use self::redact::redact_message;
use crate::api::{self, DetachedSpan};
use crate::clock::Timestamp;
use crate::context::stack;
use crate::context::token::TraceToken;
use crate::keys;
use crate::model::{
    Endpoint, EndpointRef, Kind, Note, Peer, Span, SpanId, SpanTemplate, Tag, TagValue, Text,
};
use crate::text::intern;

/// The kind of database, for the remote endpoint and `db.system.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbSystem {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
    /// Another database, by its OpenTelemetry name.
    Other(&'static str),
}

impl DbSystem {
    /// The OpenTelemetry `db.system.name` (`sqlite`, `postgresql`, `mysql`).
    pub fn name(self) -> &'static str {
        match self {
            DbSystem::Sqlite => "sqlite",
            DbSystem::Postgres => "postgresql",
            DbSystem::MySql => "mysql",
            DbSystem::Other(name) => name,
        }
    }
}

/// What a span records of the statement's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryText {
    /// The text as written (the default). Bound parameters are placeholders in it, so their
    /// values are not recorded.
    #[default]
    Raw,
    /// Literals replaced by `?` ([`normalize`], in the database's [`Dialect`]), for
    /// statements built with inline values.
    Normalized,
    /// No text; the span name still gives the operation.
    Off,
}

/// How statements appear in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqlMode {
    /// A child span per statement (the default).
    #[default]
    Spans,
    /// Notes on the current span instead (the original's `db_trace_as_spans = False`):
    /// `sql SELECT` when the statement starts, `sql SELECT done` (with its duration) or
    /// `sql SELECT error` when it ends, and the text as a `sql.query` tag.
    Annotations,
}

type ErrorHook = Arc<dyn Fn(&mut SqlErrorEvent<'_>) + Send + Sync>;

/// What an `on_error` hook receives: the statement, the error, and the span to tag.
pub struct SqlErrorEvent<'a> {
    sql: &'a str,
    error: &'a (dyn Error + 'static),
    code: Option<&'a str>,
    system: DbSystem,
    span: Option<&'a mut Span>,
}

impl std::fmt::Debug for SqlErrorEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlErrorEvent")
            .field("sql", &self.sql)
            .field("error", &self.error.to_string())
            .field("code", &self.code)
            .finish()
    }
}

impl<'a> SqlErrorEvent<'a> {
    /// The statement as the application wrote it (the hook is user code: it gets the raw
    /// text, whatever the recording policy).
    pub fn sql(&self) -> &str {
        self.sql
    }
    /// The driver's error; downcast it to the driver's type for details.
    pub fn error(&self) -> &(dyn Error + 'static) {
        self.error
    }
    /// The database's error code (SQLSTATE, SQLite extended code, MySQL error number).
    pub fn code(&self) -> Option<&str> {
        self.code
    }
    /// The database.
    pub fn system(&self) -> DbSystem {
        self.system
    }
    /// The statement's span, when it is recorded.
    pub fn span(&self) -> Option<&Span> {
        self.span.as_deref()
    }
    /// Tags the statement's span (nothing when it is not recorded).
    pub fn tag(&mut self, key: impl Into<Text>, value: impl Into<TagValue>) {
        if let Some(span) = self.span.as_deref_mut() {
            span.tags.push(Tag::new(key, value));
        }
    }
}

/// A statement's text, processed once: its operation, the text the policy records and the
/// statement's tags, shared by all its spans. Adapters keep one per prepared statement so
/// repeated executions copy nothing.
#[derive(Debug, Clone)]
pub struct SqlStatement {
    operation: &'static str,
    recorded: Option<Text>,
    /// Every tag of the statement's spans but their outcome (text, operation, the database's
    /// tags) and the remote endpoint; `None` once the interning capacity is used up, then
    /// each span carries copies.
    template: Option<&'static SpanTemplate>,
}

impl SqlStatement {
    /// The operation (`SELECT`, …).
    pub fn operation(&self) -> &'static str {
        self.operation
    }
    /// The text recorded on spans, if any.
    pub fn recorded_text(&self) -> Option<&str> {
        self.recorded.as_deref()
    }
}

#[derive(Debug)]
struct Inner {
    /// Tells tracers apart in the per-thread statement cache (never reused).
    id: u64,
    system: DbSystem,
    /// Shared by every span (interned: no allocation, no reference count per statement).
    remote: EndpointRef,
    fixed_tags: Vec<Tag>,
    /// The remote endpoint and `fixed_tags`, shared (`None` past the interning capacity).
    base: Option<&'static SpanTemplate>,
    query_text: QueryText,
    dialect: Dialect,
    max_query_len: usize,
    record_parameters: bool,
    mode: SqlMode,
    trace_roots: bool,
    enabled: AtomicBool,
    on_error: Vec<ErrorHookEntry>,
}

struct ErrorHookEntry(ErrorHook);

impl std::fmt::Debug for ErrorHookEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("on_error hook")
    }
}

/// One database as seen by a SQL adapter: its identity, the recording policy, the `on_error`
/// hooks and a run-time switch. Cheap to clone (clones share the switch and hooks).
#[derive(Debug, Clone)]
pub struct SqlTracer {
    inner: Arc<Inner>,
}

/// Builds a [`SqlTracer`]; made by [`SqlTracer::builder`].
#[must_use]
pub struct SqlTracerBuilder {
    system: DbSystem,
    service_name: Option<Text>,
    address: Option<String>,
    port: Option<u16>,
    namespace: Option<String>,
    query_text: QueryText,
    dialect: Option<Dialect>,
    max_query_len: usize,
    record_parameters: bool,
    opaque_parameters: Option<&'static str>,
    mode: SqlMode,
    trace_roots: bool,
    enabled: bool,
    on_error: Vec<ErrorHook>,
}

impl std::fmt::Debug for SqlTracerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlTracerBuilder")
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

/// `text` interned (`&'static`), or shared once the interning cap is reached.
fn interned(text: String) -> Text {
    match intern::text(&text) {
        Some(t) => Text::from_static(t),
        None => Text::from(text).into_shared(),
    }
}

/// Default cap on recorded statement text, in bytes.
pub const DEFAULT_MAX_QUERY_LEN: usize = 4096;

/// Longest recorded bound value, in bytes (longer ones are cut and end with `…`).
pub const MAX_PARAMETER_LEN: usize = 256;

/// Bound values recorded per statement at most; the number of the others is the tag
/// `db.query.parameters.omitted`.
pub const MAX_PARAMETERS: usize = 64;

/// A [`SqlTracerBuilder`] asked for something its adapter cannot do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlTracerError {
    /// [`record_parameters(true)`](SqlTracerBuilder::record_parameters) on a driver that
    /// keeps bound values opaque.
    #[error(
        "record_parameters(true) is not supported here: {driver} keeps bound values opaque \
         (an encoded buffer), so they cannot be recorded as text"
    )]
    OpaqueParameters {
        /// The driver (`sqlx PostgreSQL`, …).
        driver: &'static str,
    },
}

impl SqlTracerBuilder {
    /// The remote endpoint's service name (default: the system's name, e.g. `postgresql`).
    pub fn service_name(mut self, name: impl Into<Text>) -> Self {
        self.service_name = Some(name.into());
        self
    }
    /// The server's host name or IP and port (`server.address`, `server.port`).
    pub fn server(mut self, address: impl Into<String>, port: Option<u16>) -> Self {
        self.address = Some(address.into());
        self.port = port;
        self
    }
    /// The database name (`db.namespace`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }
    /// What to record of the statement text (default [`QueryText::Raw`]).
    pub fn query_text(mut self, policy: QueryText) -> Self {
        self.query_text = policy;
        self
    }
    /// Longest recorded text in bytes (default [`DEFAULT_MAX_QUERY_LEN`]); longer text is cut
    /// and ends with `…`.
    pub fn max_query_len(mut self, bytes: usize) -> Self {
        self.max_query_len = bytes;
        self
    }
    /// The SQL dialect [`QueryText::Normalized`] reads statements in (default: the
    /// system's, [`DbSystem::dialect`]); for a MySQL server running with `ANSI_QUOTES` or
    /// `NO_BACKSLASH_ESCAPES`, say.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, Dialect, QueryText, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::MySql)
    ///     .dialect(Dialect::MySql { ansi_quotes: true, backslash_escapes: true })
    ///     .query_text(QueryText::Normalized)
    ///     .build();
    /// assert_eq!(
    ///     db.statement(r#"SELECT "name" FROM t WHERE a = 'x'"#).recorded_text(),
    ///     Some(r#"SELECT "name" FROM t WHERE a = ?"#)
    /// );
    /// ```
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = Some(dialect);
        self
    }
    /// Records what is user data: each bound value as a tag `db.query.parameter.<key>`
    /// (the 0-based index, or the name of a named parameter; at most [`MAX_PARAMETERS`]
    /// values of at most [`MAX_PARAMETER_LEN`] bytes each), and the database's error
    /// messages as they are (by default every value they quote is masked:
    /// [`redact_message`]). Off by default.
    ///
    /// An adapter whose driver keeps bound values opaque refuses it:
    /// [`try_build`](Self::try_build) fails.
    pub fn record_parameters(mut self, record: bool) -> Self {
        self.record_parameters = record;
        self
    }
    /// For adapters: the driver keeps bound values opaque (`driver` names it, e.g.
    /// `"sqlx PostgreSQL"`), so [`record_parameters(true)`](Self::record_parameters) cannot
    /// be honoured and makes the build fail.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer, SqlTracerError};
    /// let refused = SqlTracer::builder(DbSystem::Postgres)
    ///     .opaque_parameters("a binary driver")
    ///     .record_parameters(true)
    ///     .try_build();
    /// assert_eq!(refused.unwrap_err(), SqlTracerError::OpaqueParameters { driver: "a binary driver" });
    /// ```
    pub fn opaque_parameters(mut self, driver: &'static str) -> Self {
        self.opaque_parameters = Some(driver);
        self
    }
    /// Spans (default) or notes on the current span.
    pub fn mode(mut self, mode: SqlMode) -> Self {
        self.mode = mode;
        self
    }
    /// Also trace statements run outside any trace, each as the root of its own trace. Off by
    /// default, so pool health checks and start-up migrations do not flood the collector.
    pub fn trace_roots(mut self, trace: bool) -> Self {
        self.trace_roots = trace;
        self
    }
    /// Starts switched on (default) or off; see [`SqlTracer::set_enabled`].
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }
    /// Calls `hook` exactly once for every failed statement, traced or not, with the SQL, the
    /// error and the span. Hooks run in the order they were added.
    pub fn on_error(
        mut self,
        hook: impl Fn(&mut SqlErrorEvent<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_error.push(Arc::new(hook));
        self
    }

    /// The tracer.
    ///
    /// # Panics
    ///
    /// When the adapter refuses the configuration ([`record_parameters(true)`] on a driver
    /// that keeps bound values opaque); [`try_build`](Self::try_build) returns the error
    /// instead.
    ///
    /// [`record_parameters(true)`]: Self::record_parameters
    pub fn build(self) -> SqlTracer {
        match self.try_build() {
            Ok(tracer) => tracer,
            Err(error) => panic!("{error}"),
        }
    }

    /// The tracer, or why the adapter refuses the configuration.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Sqlite).record_parameters(true).try_build()?;
    /// assert!(db.records_parameters());
    /// # Ok::<(), tomograph::sql::SqlTracerError>(())
    /// ```
    pub fn try_build(self) -> Result<SqlTracer, SqlTracerError> {
        if self.record_parameters
            && let Some(driver) = self.opaque_parameters
        {
            return Err(SqlTracerError::OpaqueParameters { driver });
        }
        let ip = self
            .address
            .as_deref()
            .and_then(|a| a.trim_matches(['[', ']']).parse::<IpAddr>().ok());
        let service = self
            .service_name
            .unwrap_or_else(|| Text::from_static(self.system.name()));
        let mut remote = Endpoint::new(service).with_optional_ip(ip);
        if let Some(port) = self.port {
            remote = remote.with_port(port);
        }
        let mut fixed_tags = vec![Tag::new(keys::db::SYSTEM_NAME, self.system.name())];
        if let Some(ns) = self.namespace.filter(|n| !n.is_empty()) {
            fixed_tags.push(Tag::new(keys::db::NAMESPACE, interned(ns)));
        }
        if let Some(address) = self.address.filter(|a| !a.is_empty()) {
            fixed_tags.push(Tag::new(keys::server::ADDRESS, interned(address)));
        }
        if let Some(port) = self.port {
            fixed_tags.push(Tag::new(keys::server::PORT, i64::from(port)));
        }
        static IDS: AtomicU64 = AtomicU64::new(0);
        let interned_remote = intern::endpoint(&remote);
        let base = interned_remote.and_then(|r| intern::base_template(Some(r), &fixed_tags));
        Ok(SqlTracer {
            inner: Arc::new(Inner {
                id: IDS.fetch_add(1, Ordering::Relaxed),
                system: self.system,
                remote: interned_remote.map_or_else(
                    || EndpointRef::Shared(Arc::new(remote.clone())),
                    EndpointRef::Static,
                ),
                fixed_tags,
                base,
                query_text: self.query_text,
                dialect: self.dialect.unwrap_or_else(|| self.system.dialect()),
                max_query_len: self.max_query_len,
                record_parameters: self.record_parameters,
                mode: self.mode,
                trace_roots: self.trace_roots,
                enabled: AtomicBool::new(self.enabled),
                on_error: self.on_error.into_iter().map(ErrorHookEntry).collect(),
            }),
        })
    }
}

impl SqlTracer {
    /// A builder for database `system`.
    pub fn builder(system: DbSystem) -> SqlTracerBuilder {
        SqlTracerBuilder {
            system,
            service_name: None,
            address: None,
            port: None,
            namespace: None,
            query_text: QueryText::Raw,
            dialect: None,
            max_query_len: DEFAULT_MAX_QUERY_LEN,
            record_parameters: false,
            opaque_parameters: None,
            mode: SqlMode::Spans,
            trace_roots: false,
            enabled: true,
            on_error: Vec::new(),
        }
    }

    /// The database.
    pub fn system(&self) -> DbSystem {
        self.inner.system
    }

    /// The remote endpoint of its spans.
    pub fn remote_endpoint(&self) -> &Endpoint {
        &self.inner.remote
    }

    /// Whether bound parameter values (and raw error messages) are recorded.
    pub fn records_parameters(&self) -> bool {
        self.inner.record_parameters
    }

    /// The SQL dialect statements are read in.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// What spans record of an error the database returned: its message with every quoted
    /// value masked ([`redact_message`]), or as it is when the user opted in with
    /// [`record_parameters(true)`](SqlTracerBuilder::record_parameters). Adapters record
    /// every database error through it.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::MySql).build();
    /// assert_eq!(
    ///     db.error_message(&"Duplicate entry 'bob' for key 'PRIMARY'"),
    ///     "Duplicate entry ? for key 'PRIMARY'"
    /// );
    /// ```
    pub fn error_message(&self, error: &dyn Display) -> String {
        let message = error.to_string();
        if self.inner.record_parameters {
            message
        } else {
            redact_message(&message)
        }
    }

    /// How statements appear in a trace (spans or notes).
    pub fn mode(&self) -> SqlMode {
        self.inner.mode
    }

    /// Starts a span `TRANSACTION` that is current until the returned guard drops, so the
    /// statements of the transaction (`BEGIN`, …, `COMMIT`) become its children. It carries
    /// the database's tags (`db.system.name`, `db.namespace`, `server.*`); adapters add the
    /// outcome. A guard that holds nothing when [`would_trace`](Self::would_trace) is false
    /// or in [`SqlMode::Annotations`] (there, only the statements' notes appear).
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Sqlite).build();
    /// let _request = tomograph::span("request").start();
    /// let transaction = db.start_transaction();
    /// db.start("BEGIN").finish();
    /// db.start("COMMIT").finish();
    /// transaction.tag("db.transaction.outcome", "commit");
    /// ```
    pub fn start_transaction(&self) -> api::SpanGuard {
        if self.inner.mode != SqlMode::Spans || !self.would_trace() {
            return api::SpanGuard::none();
        }
        // With no current span (only under `trace_roots`) the builder starts a new trace.
        self.with_fixed_tags(api::span("TRANSACTION")).start()
    }

    /// Like [`start_transaction`](Self::start_transaction) for async adapters, whose
    /// transactions outlive a poll and move between threads: the span is owned by the returned
    /// [`DetachedSpan`] instead of being made current, and is a child of `parent` (the context
    /// captured when the transaction was requested) — or, when `parent` is `None`, the root of
    /// a new trace if `trace_roots` is set. The transaction's statements become its children
    /// through [`start_child_of`](Self::start_child_of) with its token. Records nothing when
    /// tracing is off or in [`SqlMode::Annotations`].
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Sqlite).build();
    /// let _request = tomograph::span("request").start();
    /// let mut transaction = db.start_transaction_detached(tomograph::get_trace_info());
    /// if let Some(parent) = transaction.token() {
    ///     db.start_child_of("BEGIN", parent).finish();
    ///     db.start_child_of("COMMIT", parent).finish();
    /// }
    /// transaction.tag("db.transaction.outcome", "commit");
    /// ```
    pub fn start_transaction_detached(&self, parent: Option<TraceToken>) -> DetachedSpan {
        if self.inner.mode != SqlMode::Spans || !self.switched_on() {
            return DetachedSpan::none();
        }
        let builder = match parent {
            Some(parent) => api::span("TRANSACTION").child_of(parent),
            None if self.inner.trace_roots => api::span("TRANSACTION").root(),
            None => return DetachedSpan::none(),
        };
        self.with_fixed_tags(builder).start_detached()
    }

    /// `builder` with the database's tags (`db.system.name`, `db.namespace`, `server.*`).
    fn with_fixed_tags(&self, mut builder: api::SpanBuilder) -> api::SpanBuilder {
        for tag in &self.inner.fixed_tags {
            builder = builder.tag(tag.key.clone(), tag.value.clone());
        }
        builder
    }

    /// Switches tracing of this database on or off at run time (the original's
    /// `db_tracing_enabled`); shared by every clone. `on_error` hooks still run when off.
    pub fn set_enabled(&self, enabled: bool) {
        self.inner.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Whether statements are traced.
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Relaxed)
    }

    /// Processes `sql` once for repeated use (prepared statements). Statements seen
    /// recently on this thread come from a small per-thread cache.
    pub fn statement(&self, sql: &str) -> SqlStatement {
        if let Some(known) = recent::get(self.inner.id, sql) {
            return known;
        }
        let statement = self.prepare(sql);
        recent::put(self.inner.id, sql, &statement);
        statement
    }

    fn prepare(&self, sql: &str) -> SqlStatement {
        let max = self.inner.max_query_len;
        let normalized;
        let text = match self.inner.query_text {
            QueryText::Off => None,
            QueryText::Raw => Some(truncate(sql, max)),
            QueryText::Normalized => {
                normalized = normalize(sql, self.inner.dialect);
                Some(truncate(&normalized, max))
            }
        };
        // Interned (or, past the interning cap, one `Arc<str>`): every span of this statement
        // shares the text without copying it or touching a reference count.
        let interned = text.as_deref().map(intern::text);
        let recorded = text.as_deref().map(|t| match interned.flatten() {
            Some(interned) => Text::from_static(interned),
            None => Text::from(Arc::<str>::from(t)),
        });
        let operation = operation(sql);
        let template = match interned {
            // Text past the interning cap: the spans carry copies.
            Some(None) => None,
            text => self
                .inner
                .base
                .and_then(|base| intern::statement_template(base, text.flatten(), operation)),
        };
        SqlStatement {
            operation,
            recorded,
            template,
        }
    }

    /// Whether a statement started now would be recorded: tracing on, for this database and
    /// globally, and a sampled trace in progress (or none, under `trace_roots`). Adapters skip
    /// their work when not — formatting the statement, reading its parameters — so that
    /// statements of unsampled requests cost next to nothing.
    pub fn would_trace(&self) -> bool {
        self.switched_on() && self.records_under(stack::current_token())
    }

    /// Whether a statement whose context is `context` is recorded (tracing being on): a sampled
    /// trace's, or no trace under `trace_roots`.
    fn records_under(&self, context: Option<TraceToken>) -> bool {
        match context {
            Some(context) => context.sampled(),
            None => self.inner.trace_roots,
        }
    }

    /// Whether a statement issued under `parent` (the context an adapter captured when the
    /// statement was issued) needs the adapter at all: it may be recorded, or `on_error` hooks
    /// wait for its failures. When not, an adapter can hand the statement straight to the
    /// driver — the path of every statement outside a sampled trace.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Sqlite).build();
    /// assert!(!db.observes(None)); // no trace in progress, roots not traced
    /// ```
    pub fn observes(&self, parent: Option<TraceToken>) -> bool {
        if !self.inner.on_error.is_empty() {
            return true;
        }
        // Annotation mode writes on whatever span is current when the statement starts, which
        // may not be `parent`'s: it always takes the adapter's path.
        self.switched_on()
            && (self.records_under(parent)
                || (parent.is_some() && self.inner.mode == SqlMode::Annotations))
    }

    /// Tracing is on for this database and globally.
    fn switched_on(&self) -> bool {
        self.is_enabled() && crate::tracer::get().is_some_and(|t| t.is_enabled())
    }

    /// A statement is about to run.
    pub fn start(&self, sql: &str) -> SqlSpan {
        if !self.would_trace() {
            return self.off();
        }
        self.begin(self.statement(sql))
    }

    /// A prepared statement is about to run (nothing is copied).
    pub fn start_statement(&self, statement: &SqlStatement) -> SqlSpan {
        if !self.would_trace() {
            return self.off();
        }
        self.begin(statement.clone())
    }

    /// A statement is about to run as a child of `parent` rather than of the current span:
    /// for adapters that keep spans of their own around statements (a database transaction).
    /// Traced whenever tracing is on and `parent` is sampled, whatever the current context.
    /// In [`SqlMode::Annotations`] this is [`start`](SqlTracer::start): notes go on the
    /// current span.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Sqlite).build();
    /// let transaction = tomograph::span("transaction").start_detached();
    /// if let Some(parent) = transaction.token() {
    ///     db.start_child_of("INSERT INTO t VALUES (1)", parent).finish();
    /// }
    /// ```
    pub fn start_child_of(&self, sql: &str, parent: TraceToken) -> SqlSpan {
        if self.inner.mode == SqlMode::Annotations {
            return self.start(sql);
        }
        if !self.switched_on() {
            return self.off();
        }
        self.begin_with(self.statement(sql), Some(parent))
    }

    /// A statement span that records nothing, for a statement the adapter chose not to trace
    /// (a pool's health check, say); [`SqlSpan::fail`] on it still runs the `on_error` hooks.
    pub fn untraced(&self) -> SqlSpan {
        self.off()
    }

    fn off(&self) -> SqlSpan {
        SqlSpan {
            tracer: self.clone(),
            state: State::Off,
            start: None,
        }
    }

    fn begin(&self, statement: SqlStatement) -> SqlSpan {
        self.begin_with(statement, None)
    }

    fn begin_with(&self, statement: SqlStatement, parent: Option<TraceToken>) -> SqlSpan {
        let inner = &*self.inner;
        match inner.mode {
            SqlMode::Spans => {
                let mut builder = api::span(statement.operation).kind(Kind::Client);
                // Without an explicit parent: the current span's child, or a new trace when
                // none is current (only under `trace_roots`).
                if let Some(parent) = parent {
                    builder = builder.child_of(parent);
                }
                let mut span = builder.start_detached();
                span.with_span(|span| {
                    if let Some(template) = statement.template {
                        span.peer = Some(Peer::Template(template));
                        return;
                    }
                    span.peer = Some(Peer::Endpoint(inner.remote.clone()));
                    crate::recycle::reserve(&mut span.tags, inner.fixed_tags.len() + 4);
                    if let Some(text) = &statement.recorded {
                        span.tags.push(Tag::new(keys::SQL_QUERY, text.clone()));
                        span.tags.push(Tag::new(keys::db::QUERY_TEXT, text.clone()));
                    }
                    span.tags
                        .push(Tag::new(keys::db::OPERATION_NAME, statement.operation));
                    span.tags.extend(inner.fixed_tags.iter().cloned());
                });
                SqlSpan {
                    tracer: self.clone(),
                    state: State::Span(span),
                    start: None,
                }
            }
            SqlMode::Annotations => {
                let id = stack::with_current_span(|span| {
                    span.annotations.push(Note::new(
                        Timestamp::now(),
                        format!("sql {}", statement.operation),
                    ));
                    if let Some(text) = &statement.recorded {
                        span.tags.push(Tag::new(keys::SQL_QUERY, text.clone()));
                    }
                    span.id
                });
                match id {
                    Some(id) => SqlSpan {
                        tracer: self.clone(),
                        state: State::Note {
                            span: id,
                            operation: statement.operation,
                        },
                        start: Some(Timestamp::now()),
                    },
                    None => self.off(),
                }
            }
        }
    }

    fn run_hooks(
        &self,
        sql: &str,
        error: &(dyn Error + 'static),
        code: Option<&str>,
        span: Option<&mut Span>,
    ) {
        let mut event = SqlErrorEvent {
            sql,
            error,
            code,
            system: self.inner.system,
            span,
        };
        for hook in &self.inner.on_error {
            (hook.0)(&mut event);
        }
    }
}

#[derive(Debug)]
enum State {
    Off,
    Span(DetachedSpan),
    Note {
        span: SpanId,
        operation: &'static str,
    },
}

/// One running statement. Not on any stack (statements have no children), so it may live
/// in a future across `.await` and move between threads. Dropped without
/// [`finish`](SqlSpan::finish) or [`fail`](SqlSpan::fail) (a cancelled future, a stream dropped
/// early), it ends as it stands.
#[must_use = "finish() or fail() the statement's span"]
#[derive(Debug)]
pub struct SqlSpan {
    tracer: SqlTracer,
    state: State,
    start: Option<Timestamp>,
}

impl SqlSpan {
    /// Whether anything is recorded.
    pub fn is_recording(&self) -> bool {
        match &self.state {
            State::Off => false,
            State::Span(s) => s.is_recording(),
            State::Note { .. } => true,
        }
    }

    /// Records the bound values, when the user opted in (`values` runs only then): one tag
    /// `db.query.parameter.<key>` each, `key` being the value's 0-based index or its
    /// parameter's name, the value as readable text; at most [`MAX_PARAMETERS`] values, each
    /// cut to [`MAX_PARAMETER_LEN`] bytes.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Sqlite).record_parameters(true).build();
    /// let _request = tomograph::span("request").start();
    /// let mut statement = db.start("SELECT * FROM t WHERE a = ?1 AND b = :b");
    /// statement.parameters(|| [("0", "42".to_owned()), ("b", "'x'".to_owned())]);
    /// statement.finish();
    /// ```
    pub fn parameters<K, I>(&mut self, values: impl FnOnce() -> I)
    where
        K: Display,
        I: IntoIterator<Item = (K, String)>,
    {
        if self.tracer.inner.record_parameters
            && let State::Span(span) = &mut self.state
            && span.is_recording()
        {
            let mut omitted = 0u64;
            for (n, (key, value)) in values().into_iter().enumerate() {
                if n >= MAX_PARAMETERS {
                    omitted += 1;
                    continue;
                }
                let capped = truncate(&value, MAX_PARAMETER_LEN).into_owned();
                span.tag(format!("{}{key}", keys::db::QUERY_PARAMETER_PREFIX), capped);
            }
            if omitted > 0 {
                span.tag(keys::db::QUERY_PARAMETERS_OMITTED, omitted);
            }
        }
    }

    /// Adds a tag to the statement's span.
    pub fn tag(&mut self, key: impl Into<Text>, value: impl Into<TagValue>) {
        if let State::Span(span) = &mut self.state {
            span.with_span(|span| {
                // A statement's own tags are few (rows, an error).
                crate::recycle::reserve(&mut span.tags, 2);
                span.tags.push(Tag::new(key, value));
            });
        }
    }

    /// Adds a note to the statement's span (e.g. `connection acquired`).
    pub fn annotate(&mut self, value: impl Into<Text>) {
        if let State::Span(span) = &mut self.state {
            span.annotate(value);
        }
    }

    /// Rows returned so far (`db.response.returned_rows`).
    pub fn returned_rows(&mut self, rows: u64) {
        self.tag(keys::db::RESPONSE_RETURNED_ROWS, rows);
    }

    /// Rows changed (`db.response.affected_rows`).
    pub fn affected_rows(&mut self, rows: u64) {
        self.tag(keys::db::RESPONSE_AFFECTED_ROWS, rows);
    }

    /// The statement succeeded.
    pub fn finish(self) {
        drop(self);
    }

    /// The statement succeeded and returned (or changed) `rows` rows.
    pub fn finish_with_rows(mut self, rows: u64) {
        self.returned_rows(rows);
        drop(self);
    }

    /// The statement failed: the span gets an `error` tag with the message, a
    /// `db.response.status_code` tag with `code`, an `error` note; then every `on_error` hook
    /// runs once, and the span ends. `sql` is the statement as written (for the hooks).
    /// The message is recorded as [`SqlTracer::error_message`] says (values masked unless
    /// opted in); the hooks get `error` itself.
    pub fn fail(mut self, sql: &str, error: &(dyn Error + 'static), code: Option<&str>) {
        let message = self.tracer.error_message(error);
        let tracer = self.tracer.clone();
        match &mut self.state {
            State::Span(span) => {
                span.record_error(&message);
                if let Some(code) = code {
                    span.tag(keys::db::RESPONSE_STATUS_CODE, code.to_owned());
                }
                let mut hooked = false;
                span.with_span(|s| {
                    tracer.run_hooks(sql, error, code, Some(s));
                    hooked = true;
                });
                if !hooked {
                    tracer.run_hooks(sql, error, code, None);
                }
            }
            State::Note { span, operation } => {
                let (id, op) = (*span, *operation);
                let ran = stack::with_span(id, |s| {
                    s.annotations
                        .push(Note::new(Timestamp::now(), format!("sql {op} error")));
                    api::record_error_on(s, message.clone());
                    if let Some(code) = code {
                        s.tags
                            .push(Tag::new(keys::db::RESPONSE_STATUS_CODE, code.to_owned()));
                    }
                    tracer.run_hooks(sql, error, code, Some(s));
                });
                if ran.is_none() {
                    tracer.run_hooks(sql, error, code, None);
                }
                self.state = State::Off;
            }
            State::Off => tracer.run_hooks(sql, error, code, None),
        }
    }
}

impl Drop for SqlSpan {
    fn drop(&mut self) {
        if let State::Note { span, operation } = self.state {
            let elapsed = self.start.map_or(Duration::ZERO, |s| {
                Timestamp::now().saturating_duration_since(s)
            });
            stack::with_span(span, |s| {
                let mut note = Note::new(Timestamp::now(), format!("sql {operation} done"));
                note.duration = Some(elapsed);
                s.annotations.push(note);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SpanId, TraceId};

    fn token(sampled: bool) -> TraceToken {
        TraceToken::new(TraceId::random(false), SpanId::random(), sampled)
    }

    #[test]
    fn observes_only_what_could_be_recorded_or_hooked() {
        let _memory = crate::testing::memory_tracer();
        let plain = SqlTracer::builder(DbSystem::Sqlite).build();
        assert!(plain.observes(Some(token(true))));
        assert!(!plain.observes(Some(token(false))));
        assert!(!plain.observes(None));

        let roots = SqlTracer::builder(DbSystem::Sqlite)
            .trace_roots(true)
            .build();
        assert!(roots.observes(None));

        let off = SqlTracer::builder(DbSystem::Sqlite).enabled(false).build();
        assert!(!off.observes(Some(token(true))));

        let hooked = SqlTracer::builder(DbSystem::Sqlite)
            .enabled(false)
            .on_error(|_| {})
            .build();
        assert!(
            hooked.observes(None),
            "hooks run on every failure, traced or not"
        );

        let notes = SqlTracer::builder(DbSystem::Sqlite)
            .mode(SqlMode::Annotations)
            .build();
        assert!(notes.observes(Some(token(false))));
    }

    #[test]
    fn statement_spans_share_their_tags_through_one_template() {
        let memory = crate::testing::memory_tracer();
        let db = SqlTracer::builder(DbSystem::Postgres)
            .server("127.0.0.1", Some(5432))
            .namespace("template_test")
            .build();
        let trace = {
            let _root = crate::span("template test").root().start();
            db.start("SELECT name FROM template_test").finish();
            db.start("SELECT name FROM template_test")
                .finish_with_rows(3);
            crate::get_trace_info().map(|t| t.trace_id())
        };
        crate::flush(Duration::from_secs(5)).expect("flushed");
        let statements: Vec<Span> = memory
            .spans()
            .into_iter()
            .filter(|s| Some(s.trace_id()) == trace && s.name() == "SELECT")
            .collect();
        assert_eq!(statements.len(), 2);
        let keys = |s: &Span| {
            s.tags()
                .iter()
                .map(|t| t.key.to_string())
                .collect::<Vec<_>>()
        };
        let shared = [
            "sql.query",
            "db.query.text",
            "db.operation.name",
            "db.system.name",
            "db.namespace",
            "server.address",
            "server.port",
        ];
        assert_eq!(keys(&statements[0]), shared);
        assert_eq!(
            keys(&statements[1]),
            shared
                .iter()
                .chain(&["db.response.returned_rows"])
                .copied()
                .collect::<Vec<_>>()
        );
        for span in &statements {
            assert_eq!(
                span.tag("sql.query").map(ToString::to_string).as_deref(),
                Some("SELECT name FROM template_test")
            );
            let remote = span.remote_endpoint().expect("the database");
            assert_eq!(
                (remote.service_name(), remote.port()),
                ("postgresql", Some(5432))
            );
        }
        // One template for both, and nothing copied into the spans but the outcome.
        let template = |s: &Span| match s.peer {
            Some(Peer::Template(t)) => std::ptr::from_ref(t),
            _ => std::ptr::null(),
        };
        assert!(!template(&statements[0]).is_null());
        assert_eq!(template(&statements[0]), template(&statements[1]));
        assert!(statements[0].tags.is_empty());
        assert_eq!(statements[1].tags.len(), 1);
    }

    #[test]
    fn a_span_given_its_own_remote_endpoint_keeps_its_templates_tags() {
        let db = SqlTracer::builder(DbSystem::MySql)
            .namespace("keep")
            .build();
        let template = db.statement("DELETE FROM keep").template.expect("interned");
        let mut span = Span::new(
            crate::TraceId::from_u64(1).unwrap(),
            SpanId::from_u64(1).unwrap(),
            "DELETE",
            Endpoint::new("svc"),
            Timestamp::now(),
        )
        .with_tag("mine", 1);
        span.peer = Some(Peer::Template(template));
        let before: Vec<Tag> = span.tags().iter().cloned().collect();
        span.set_remote_endpoint(EndpointRef::Shared(Arc::new(Endpoint::new("proxy"))));
        let after: Vec<Tag> = span.tags().iter().cloned().collect();
        assert_eq!(before, after);
        assert_eq!(after.last().map(|t| t.key.as_str()), Some("mine"));
        assert_eq!(
            span.remote_endpoint().map(Endpoint::service_name),
            Some("proxy")
        );
    }

    #[test]
    fn remembered_statements_belong_to_their_tracer() {
        let raw = SqlTracer::builder(DbSystem::Sqlite).build();
        let normalized = SqlTracer::builder(DbSystem::Sqlite)
            .query_text(QueryText::Normalized)
            .build();
        let sql = "SELECT * FROM remembered WHERE a = 5";
        for _ in 0..2 {
            assert_eq!(raw.statement(sql).recorded_text(), Some(sql));
            assert_eq!(
                normalized.statement(sql).recorded_text(),
                Some("SELECT * FROM remembered WHERE a = ?")
            );
        }
        let first = raw.statement(sql).template.map(std::ptr::from_ref);
        assert!(first.is_some());
        assert_eq!(first, raw.statement(sql).template.map(std::ptr::from_ref));
    }

    #[test]
    fn statements_of_an_unsampled_trace_are_not_traced() {
        let _memory = crate::testing::memory_tracer();
        let db = SqlTracer::builder(DbSystem::Sqlite)
            .trace_roots(true)
            .build();
        assert!(db.would_trace(), "a root, under trace_roots");
        {
            let _sampled = crate::span("sampled").root().start();
            assert!(db.would_trace());
        }
        let _unsampled = crate::span("unsampled").child_of(token(false)).start();
        assert!(!db.would_trace());
        assert!(!db.start("SELECT 1").is_recording());
    }
}
