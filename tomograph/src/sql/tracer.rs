//! [`SqlTracer`]: one database as an adapter sees it (identity, policy, hooks, switch), and
//! its builder.

use std::fmt::Display;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::hooks::{ErrorHook, ErrorHookEntry};
use super::{
    DEFAULT_MAX_QUERY_LEN, DbSystem, Dialect, QueryText, SqlErrorEvent, SqlMode, redact_message,
};
use crate::context::stack;
use crate::keys;
use crate::model::TraceToken;
use crate::model::intern;
use crate::model::{Endpoint, EndpointRef, SpanTemplate, Tag, Text};

#[derive(Debug)]
pub(super) struct Inner {
    /// Tells tracers apart in the per-thread statement cache (never reused).
    pub(super) id: u64,
    pub(super) system: DbSystem,
    /// Shared by every span (interned: no allocation, no reference count per statement).
    pub(super) remote: EndpointRef,
    pub(super) fixed_tags: Vec<Tag>,
    /// The remote endpoint and `fixed_tags`, shared (`None` past the interning capacity).
    pub(super) base: Option<&'static SpanTemplate>,
    pub(super) query_text: QueryText,
    pub(super) dialect: Dialect,
    pub(super) max_query_len: usize,
    pub(super) record_parameters: bool,
    pub(super) mode: SqlMode,
    pub(super) trace_roots: bool,
    /// Statements slower than this are reported (`None`: off).
    pub(super) slow_threshold: Option<Duration>,
    pub(super) enabled: AtomicBool,
    pub(super) on_error: Vec<ErrorHookEntry>,
}

/// One database as seen by a SQL adapter: its identity, the recording policy, the `on_error`
/// hooks and a run-time switch. Cheap to clone (clones share the switch and hooks).
#[derive(Debug, Clone)]
pub struct SqlTracer {
    pub(super) inner: Arc<Inner>,
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
    slow_threshold: Option<Duration>,
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
pub(super) fn interned(text: String) -> Text {
    match intern::text(&text) {
        Some(t) => Text::from_static(t),
        None => Text::from(text).into_shared(),
    }
}

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
    /// (the 0-based index, or the name of a named parameter; at most [`MAX_PARAMETERS`](super::MAX_PARAMETERS)
    /// values of at most [`MAX_PARAMETER_LEN`](super::MAX_PARAMETER_LEN) bytes each), and the database's error
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
    /// Reports statements slower than `threshold` (off by default), sampled or not: their
    /// span (when recorded) gets the tag `db.slow = true` and a note `slow statement`, a
    /// `log::warn!` names each one (its summary and its text as [`query_text`] allows), and,
    /// with a statsd backend, the counters `db.{system}.slow` and
    /// `db.{system}.slow.{summary}` count them. Costs a clock read per statement outside
    /// sampled traces (see `BENCHMARKS.md`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Postgres)
    ///     .slow_threshold(Duration::from_millis(250))
    ///     .build();
    /// assert_eq!(db.slow_threshold(), Some(Duration::from_millis(250)));
    /// ```
    ///
    /// [`query_text`]: Self::query_text
    pub fn slow_threshold(mut self, threshold: Duration) -> Self {
        self.slow_threshold = Some(threshold);
        self
    }
    /// Starts switched on (default) or off; see [`SqlTracer::set_enabled`].
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }
    /// Calls `hook` exactly once for every failed statement, traced or not, with the SQL, the
    /// error and the span. Hooks run in the order they were added, on the thread where the
    /// statement failed, and may themselves trace (open a span, add a note, log through the
    /// bridges): what they record lands under the current span. A hook that panics is caught
    /// and logged (`log::error!`): the hooks after it still run, and the statement fails as it
    /// would have — the panic never unwinds through the driver.
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
                slow_threshold: self.slow_threshold,
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
            slow_threshold: None,
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

    /// The slow-statement threshold, when set
    /// ([`SqlTracerBuilder::slow_threshold`]).
    pub fn slow_threshold(&self) -> Option<Duration> {
        self.inner.slow_threshold
    }

    /// Whether statements are timed for the slow-statement check (a threshold set, this
    /// database's tracing on): then adapters must start a [`SqlSpan`](super::SqlSpan) for
    /// every statement, sampled or not.
    pub fn watches_slow(&self) -> bool {
        self.inner.slow_threshold.is_some() && self.is_enabled()
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

    /// Whether a statement started now would be recorded: tracing on, for this database and
    /// globally, and a sampled trace in progress (or none, under `trace_roots`). Adapters skip
    /// their work when not — formatting the statement, reading its parameters — so that
    /// statements of unsampled requests cost next to nothing.
    pub fn would_trace(&self) -> bool {
        self.switched_on() && self.records_under(stack::current_token())
    }

    /// Whether a statement whose context is `context` is recorded (tracing being on): a sampled
    /// trace's, or no trace under `trace_roots`.
    pub(super) fn records_under(&self, context: Option<TraceToken>) -> bool {
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
        if !self.inner.on_error.is_empty() || self.watches_slow() {
            return true;
        }
        // Annotation mode writes on whatever span is current when the statement starts, which
        // may not be `parent`'s: it always takes the adapter's path.
        self.switched_on()
            && (self.records_under(parent)
                || (parent.is_some() && self.inner.mode == SqlMode::Annotations))
    }

    /// Tracing is on for this database and globally.
    pub(super) fn switched_on(&self) -> bool {
        self.is_enabled() && crate::tracer::get().is_some_and(|t| t.is_enabled())
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
