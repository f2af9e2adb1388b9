//! [`SqlSpan`]: one running statement — started by the tracer under the current span or a
//! captured parent, tagged with its outcome, ended by `finish` or `fail`.

use std::borrow::Cow;
use std::error::Error;
use std::fmt::Display;
use std::time::Duration;

use super::{
    MAX_PARAMETER_LEN, MAX_PARAMETERS, SqlMode, SqlStatement, SqlTracer, slow, truncate, wait,
};
use crate::clock::Timestamp;
use crate::context::stack;
use crate::handle::{self as api, DetachedSpan};
use crate::keys;
use crate::model::TraceToken;
use crate::model::{Kind, Peer, RowCounts, SpanId, Tag, TagValue, Text};

impl SqlTracer {
    /// A statement is about to run, as a child of the current span.
    pub fn start(&self, sql: &str) -> SqlSpan<'_> {
        let statement = self.statement(sql);
        self.start_kept(&statement, Cow::Borrowed(self), || Kept::copy(&statement))
    }

    /// A prepared statement is about to run (nothing is copied: the span borrows it).
    pub fn start_statement<'t>(&'t self, statement: &'t SqlStatement) -> SqlSpan<'t> {
        self.start_kept(statement, Cow::Borrowed(self), || Kept::Borrowed(statement))
    }

    /// [`start_statement`](Self::start_statement), `keep` giving the statement to keep for the
    /// slow-statement report (called only when slow statements are watched).
    /// `held` is how the span holds this tracer (borrowed, or a handle of its own).
    fn start_kept<'h>(
        &self,
        statement: &SqlStatement,
        held: Cow<'h, SqlTracer>,
        keep: impl FnOnce() -> Kept<'h>,
    ) -> SqlSpan<'h> {
        if !self.would_trace() {
            return self.timed(held, keep);
        }
        self.begin_with(statement, None, held, keep)
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
    pub fn start_child_of(&self, sql: &str, parent: TraceToken) -> SqlSpan<'_> {
        let statement = self.statement(sql);
        self.child_of_kept(&statement, parent, Cow::Borrowed(self), || {
            Kept::copy(&statement)
        })
    }

    fn child_of_kept<'h>(
        &self,
        statement: &SqlStatement,
        parent: TraceToken,
        held: Cow<'h, SqlTracer>,
        keep: impl FnOnce() -> Kept<'h>,
    ) -> SqlSpan<'h> {
        if self.inner.mode == SqlMode::Annotations {
            return self.start_kept(statement, held, keep);
        }
        if !self.switched_on() || !parent.sampled() {
            return self.timed(held, keep);
        }
        self.begin_with(statement, Some(parent), held, keep)
    }

    /// A statement is about to run in the context `captured` — the context current when the
    /// application issued it (an async adapter captures it in the call, then starts the
    /// statement when its future is first polled, perhaps elsewhere), or the span of the
    /// adapter's open transaction. Its span is:
    ///
    /// - a child of the current span when that is `captured` (the common case: polled where
    ///   it was issued; the span also inherits the current local endpoint);
    /// - a child of `captured` otherwise;
    /// - with nothing captured: the root of a new trace when nothing is current either and
    ///   the tracer has `trace_roots`; else not recorded (issued outside a trace, polled
    ///   inside someone else's).
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Sqlite).build();
    /// let request = tomograph::span("request").start_detached();
    /// let issued_in = request.token();
    /// // … later, in another task or thread:
    /// db.start_under("SELECT * FROM carts", issued_in).finish();
    /// ```
    pub fn start_under(&self, sql: &str, captured: Option<TraceToken>) -> SqlSpan<'_> {
        let statement = self.statement(sql);
        self.under_kept(&statement, captured, Cow::Borrowed(self), || {
            Kept::copy(&statement)
        })
    }

    /// [`start_under`](Self::start_under), the span holding its own handle on the tracer (one
    /// reference count): the same span as `start_under(sql, captured).into_owned()`, built
    /// where it is returned instead of moved into a second one — for an adapter that keeps
    /// running statements beside the tracer.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlSpan, SqlTracer};
    /// struct Connection {
    ///     tracer: SqlTracer,
    ///     running: Option<SqlSpan<'static>>,
    /// }
    /// let mut conn = Connection { tracer: SqlTracer::builder(DbSystem::Sqlite).build(), running: None };
    /// let _request = tomograph::span("request").start();
    /// conn.running = Some(conn.tracer.start_under_owned("SELECT 1", tomograph::get_trace_info()));
    /// if let Some(statement) = conn.running.take() {
    ///     statement.finish();
    /// }
    /// ```
    pub fn start_under_owned(&self, sql: &str, captured: Option<TraceToken>) -> SqlSpan<'static> {
        let statement = self.statement(sql);
        self.under_kept(&statement, captured, Cow::Owned(self.clone()), || {
            Kept::copy(&statement)
        })
    }

    /// [`start_under`](Self::start_under) for a prepared statement (borrowed by the span).
    pub fn start_statement_under<'t>(
        &'t self,
        statement: &'t SqlStatement,
        captured: Option<TraceToken>,
    ) -> SqlSpan<'t> {
        self.under_kept(statement, captured, Cow::Borrowed(self), || {
            Kept::Borrowed(statement)
        })
    }

    /// [`start_statement_under`](Self::start_statement_under), the span holding its own
    /// handle on the tracer and a copy of the statement (kept only while slow statements are
    /// watched), as [`start_under_owned`](Self::start_under_owned) does.
    pub fn start_statement_under_owned(
        &self,
        statement: &SqlStatement,
        captured: Option<TraceToken>,
    ) -> SqlSpan<'static> {
        self.under_kept(statement, captured, Cow::Owned(self.clone()), || {
            Kept::copy(statement)
        })
    }

    fn under_kept<'h>(
        &self,
        statement: &SqlStatement,
        captured: Option<TraceToken>,
        held: Cow<'h, SqlTracer>,
        keep: impl FnOnce() -> Kept<'h>,
    ) -> SqlSpan<'h> {
        let current = stack::current_token();
        match captured {
            Some(parent) if current == Some(parent) => self.start_kept(statement, held, keep),
            Some(parent) => self.child_of_kept(statement, parent, held, keep),
            None if current.is_none() => self.start_kept(statement, held, keep),
            None => self.timed(held, keep),
        }
    }

    /// A statement span that records nothing, for a statement the adapter chose not to trace
    /// (a pool's health check, say); [`SqlSpan::fail`] on it still runs the `on_error` hooks.
    pub fn untraced(&self) -> SqlSpan<'_> {
        self.off()
    }

    /// A statement span that records nothing but times the statement for the slow-statement
    /// check ([`SqlTracerBuilder::slow_threshold`](super::SqlTracerBuilder::slow_threshold))
    /// when one is set, for adapters that only read the statement's text when they must
    /// (then they give it with [`SqlSpan::set_statement`] once
    /// [`SqlSpan::needs_statement`] says so).
    pub fn start_timer(&self) -> SqlSpan<'_> {
        let mut span = self.off();
        if self.watches_slow() {
            span.start = Some(Timestamp::now());
        }
        span
    }

    pub(super) fn off(&self) -> SqlSpan<'_> {
        Self::off_held(Cow::Borrowed(self))
    }

    fn off_held(held: Cow<'_, SqlTracer>) -> SqlSpan<'_> {
        SqlSpan {
            tracer: held,
            state: State::Off,
            start: None,
            statement: None,
            rows: None,
            affected: None,
        }
    }

    /// Not recorded, but timed when slow statements are watched.
    fn timed<'h>(&self, held: Cow<'h, SqlTracer>, keep: impl FnOnce() -> Kept<'h>) -> SqlSpan<'h> {
        let mut span = Self::off_held(held);
        if self.watches_slow() {
            span.statement = Some(keep());
            span.start = Some(Timestamp::now());
        }
        span
    }

    /// The recorded span of `statement` (borrowed: a statement is copied only when the
    /// slow-statement check keeps it for its report).
    fn begin_with<'h>(
        &self,
        statement: &SqlStatement,
        parent: Option<TraceToken>,
        held: Cow<'h, SqlTracer>,
        keep: impl FnOnce() -> Kept<'h>,
    ) -> SqlSpan<'h> {
        let inner = &*self.inner;
        let start = self.watches_slow().then(Timestamp::now);
        match inner.mode {
            SqlMode::Spans => {
                let mut builder = api::span(statement.summary.clone()).kind(Kind::Client);
                // Without an explicit parent: the current span's child, or a new trace when
                // none is current (only under `trace_roots`).
                if let Some(parent) = parent {
                    builder = builder.child_of(parent);
                }
                if let Some(template) = statement.template {
                    builder = builder.template(template);
                }
                let mut span = builder.start_detached();
                span.with_span(|span| {
                    // Without a template (past the interning cap), the span carries copies.
                    if statement.template.is_none() {
                        span.peer = Some(Peer::Endpoint(inner.remote.clone()));
                        let own = statement.own_tags.as_deref().unwrap_or_default();
                        crate::recycle::reserve(&mut span.tags, inner.fixed_tags.len() + own.len());
                        span.tags
                            .extend(own.iter().map(|(k, v)| Tag::new(*k, v.clone())));
                        span.tags.extend(inner.fixed_tags.iter().cloned());
                    }
                    // A wait a pool left on this thread (r2d2's checkout): one thread-local
                    // read, nothing allocated unless there is one.
                    if let Some(us) = wait::take_pending_wait(inner.system) {
                        crate::recycle::reserve(&mut span.tags, 1);
                        span.tags
                            .push(Tag::new(keys::db::CONNECTION_WAIT_TIME_US, us));
                    }
                });
                SqlSpan {
                    tracer: held,
                    state: State::Span(span),
                    start,
                    statement: start.map(|_| keep()),
                    rows: None,
                    affected: None,
                }
            }
            SqlMode::Annotations => {
                let id = stack::with_current_span(|span| {
                    span.annotate(format!("sql {}", statement.operation));
                    if let Some(text) = &statement.recorded {
                        span.tag(keys::SQL_QUERY, text.clone());
                    }
                    span.id
                });
                match id {
                    Some(id) => SqlSpan {
                        tracer: held,
                        state: State::Note {
                            span: id,
                            operation: statement.operation,
                        },
                        start: Some(start.unwrap_or_else(Timestamp::now)),
                        statement: start.map(|_| keep()),
                        rows: None,
                        affected: None,
                    },
                    None => self.timed(held, keep),
                }
            }
        }
    }
}

/// The statement a span keeps for the slow-statement report (only while slow statements are
/// watched): borrowed when the adapter prepared it, else a copy.
#[derive(Debug)]
pub(super) enum Kept<'t> {
    Borrowed(&'t SqlStatement),
    Owned(Box<SqlStatement>),
}

impl Kept<'_> {
    fn copy(statement: &SqlStatement) -> Kept<'static> {
        Kept::Owned(Box::new(statement.clone()))
    }

    fn into_owned(self) -> Kept<'static> {
        match self {
            Kept::Borrowed(statement) => Kept::copy(statement),
            Kept::Owned(statement) => Kept::Owned(statement),
        }
    }

    pub(super) fn get(&self) -> &SqlStatement {
        match self {
            Kept::Borrowed(statement) => statement,
            Kept::Owned(statement) => statement,
        }
    }
}

#[derive(Debug)]
pub(super) enum State {
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
/// early), it ends as it stands, with the rows counted so far.
///
/// It borrows its tracer (no reference count per statement); an adapter that keeps the span
/// where it cannot borrow (beside the tracer in one struct) starts it owned
/// ([`SqlTracer::start_under_owned`]) or makes it [`into_owned`](SqlSpan::into_owned).
#[must_use = "finish() or fail() the statement's span"]
#[derive(Debug)]
pub struct SqlSpan<'t> {
    pub(super) tracer: Cow<'t, SqlTracer>,
    pub(super) state: State,
    /// When the statement started, when timed (annotation mode, slow-statement check).
    pub(super) start: Option<Timestamp>,
    /// The statement, kept for the slow-statement report.
    pub(super) statement: Option<Kept<'t>>,
    /// Rows counted with [`count_rows`](SqlSpan::count_rows).
    pub(super) rows: Option<u64>,
    /// Rows changed, counted with [`count_affected`](SqlSpan::count_affected).
    pub(super) affected: Option<u64>,
}

impl SqlSpan<'_> {
    /// The same span, holding its own handle on the tracer (one reference count) instead of
    /// borrowing it: for an adapter that keeps running statements in a struct that also owns
    /// the tracer.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlSpan, SqlTracer};
    /// struct Running {
    ///     tracer: SqlTracer,
    ///     statement: Option<SqlSpan<'static>>,
    /// }
    /// let mut running = Running { tracer: SqlTracer::builder(DbSystem::Sqlite).build(), statement: None };
    /// running.statement = Some(running.tracer.start("SELECT 1").into_owned());
    /// ```
    pub fn into_owned(mut self) -> SqlSpan<'static> {
        let tracer = Cow::Owned(self.tracer.clone().into_owned());
        let state = std::mem::replace(&mut self.state, State::Off);
        let span = SqlSpan {
            tracer,
            state,
            start: self.start.take(),
            statement: self.statement.take().map(Kept::into_owned),
            rows: self.rows.take(),
            affected: self.affected.take(),
        };
        // `self` is now empty: its drop does nothing.
        drop(self);
        span
    }

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
                span.tag(key, value);
            });
        }
    }

    /// Adds a note to the statement's span (e.g. `connection acquired`).
    pub fn annotate(&mut self, value: impl Into<Text>) {
        if let State::Span(span) = &mut self.state {
            span.annotate(value);
        }
    }

    /// Rows returned so far (`db.response.returned_rows`), tagged now.
    pub fn returned_rows(&mut self, rows: u64) {
        self.tag(keys::db::RESPONSE_RETURNED_ROWS, rows);
    }

    /// Rows changed (`db.response.affected_rows`), tagged now.
    pub fn affected_rows(&mut self, rows: u64) {
        self.tag(keys::db::RESPONSE_AFFECTED_ROWS, rows);
    }

    /// Counts `rows` more returned rows (a streamed result, row by row). The total is tagged
    /// `db.response.returned_rows` when the span ends: on success or drop always (0 included),
    /// on failure when some rows came before it.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Sqlite).build();
    /// let _request = tomograph::span("request").start();
    /// let mut statement = db.start("SELECT x FROM t");
    /// for _row in 0..3 {
    ///     statement.count_rows(1);
    /// }
    /// assert_eq!(statement.rows_so_far(), 3);
    /// statement.finish(); // db.response.returned_rows = 3
    /// ```
    pub fn count_rows(&mut self, rows: u64) {
        self.rows = Some(self.rows.unwrap_or(0) + rows);
    }

    /// Counts `rows` more changed rows (a statement's result summary). The total is tagged
    /// `db.response.affected_rows` when the span ends, if any were changed or no rows were
    /// returned (a `SELECT` reports 0 changed rows, which says nothing).
    pub fn count_affected(&mut self, rows: u64) {
        self.affected = Some(self.affected.unwrap_or(0) + rows);
    }

    /// The statement waited `wait` for a connection from its pool: the tag
    /// `db.client.connection.wait_time_us` (microseconds; OpenTelemetry's
    /// `db.client.connection.wait_time`, per statement). A tag rather than an acquire span:
    /// it costs nothing more per statement and sits where a slow statement is looked at.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let db = SqlTracer::builder(DbSystem::Postgres).build();
    /// let _request = tomograph::span("request").start();
    /// let mut statement = db.start("SELECT 1");
    /// statement.connection_wait(Duration::from_micros(1500));
    /// statement.finish();
    /// ```
    pub fn connection_wait(&mut self, wait: Duration) {
        let micros = i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
        self.tag(keys::db::CONNECTION_WAIT_TIME_US, micros);
    }

    /// Rows counted so far with [`count_rows`](Self::count_rows).
    pub fn rows_so_far(&self) -> u64 {
        self.rows.unwrap_or(0)
    }

    /// The statement succeeded.
    pub fn finish(self) {
        // Ends here, where `self` goes out of scope: dropped in place (`drop(self)` would
        // move the span, a copy of ≈ 200 bytes, into `drop`'s argument first).
    }

    /// The statement succeeded and returned (or changed) `rows` rows.
    pub fn finish_with_rows(mut self, rows: u64) {
        self.rows = Some(rows);
        // Dropped in place at the end of the scope (see `finish`).
    }

    /// The statement failed: the span gets an `error` tag with the message, a
    /// `db.response.status_code` tag with `code`, `error.type` (`code`, else `_OTHER`), an
    /// `error` note; then every `on_error` hook runs once, and the span ends. `sql` is the
    /// statement as written (for the hooks). The message is recorded as
    /// [`SqlTracer::error_message`] says (values masked unless opted in); the hooks get
    /// `error` itself.
    pub fn fail(self, sql: &str, error: &(dyn Error + 'static), code: Option<&str>) {
        self.fail_as(sql, error, code, None);
    }

    /// Like [`fail`](Self::fail), with the driver's class of the error as `error.type` (a
    /// precise kind such as `UniqueViolation`, or the variant of a driver error that is not
    /// the database's: `PoolTimedOut`); without one, `error.type` is `code`, else `_OTHER`.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let hook = seen.clone();
    /// let db = SqlTracer::builder(DbSystem::Postgres)
    ///     .on_error(move |event| {
    ///         let code = event.code().map(str::to_owned);
    ///         hook.lock().unwrap().push((code, event.error_type().to_owned()))
    ///     })
    ///     .build();
    /// let error = std::io::Error::other("duplicate key value violates unique constraint");
    /// db.start("INSERT INTO users VALUES ($1)").fail_as("INSERT INTO users VALUES ($1)", &error, Some("23505"), Some("UniqueViolation"));
    /// assert_eq!(*seen.lock().unwrap(), [(Some("23505".to_owned()), "UniqueViolation".to_owned())]);
    /// ```
    pub fn fail_as(
        mut self,
        sql: &str,
        error: &(dyn Error + 'static),
        code: Option<&str>,
        error_type: Option<&str>,
    ) {
        let message = self.tracer.error_message(error);
        let error_type = error_type.or(code).unwrap_or(keys::ERROR_TYPE_OTHER);
        let tracer = self.tracer.clone();
        if self.rows == Some(0) {
            self.rows = None;
        }
        self.tag_counts();
        let failure = Failure {
            sql,
            error,
            code,
            error_type,
        };
        match &mut self.state {
            State::Span(span) => {
                span.record_error(&message);
                if let Some(code) = code {
                    span.tag(keys::db::RESPONSE_STATUS_CODE, code.to_owned());
                }
                span.tag(keys::ERROR_TYPE, error_type.to_owned());
                let mut hooked = false;
                span.with_span(|s| {
                    tracer.run_hooks(&failure, Some(s));
                    hooked = true;
                });
                if !hooked {
                    tracer.run_hooks(&failure, None);
                }
            }
            State::Note { span, operation } => {
                let (id, op) = (*span, *operation);
                let ran = stack::with_span(id, |s| {
                    s.annotate(format!("sql {op} error"));
                    s.record_error_message(message);
                    if let Some(code) = code {
                        s.tag(keys::db::RESPONSE_STATUS_CODE, code.to_owned());
                    }
                });
                tracer.run_hooks_on_stack(&failure, ran.map(|()| id));
                self.state = State::Off;
            }
            State::Off => tracer.run_hooks(&failure, None),
        }
    }

    /// Whether the statement is past the slow-statement threshold and its text is not
    /// known yet (a span from [`SqlTracer::start_timer`]): give it with
    /// [`set_statement`](Self::set_statement) before ending the span, so the report names it.
    pub fn needs_statement(&self) -> bool {
        self.statement.is_none() && self.slow_for().is_some()
    }

    /// The statement's text, for the slow-statement report of a span started without it.
    pub fn set_statement(&mut self, sql: &str) {
        self.statement = Some(Kept::Owned(Box::new(self.tracer.statement(sql))));
    }

    /// Tags the counted rows (once): as interned tags when the counts are small (a span made
    /// from a statement template then needs no tag vector at all); else as its own tags.
    fn tag_counts(&mut self) {
        let (rows, affected) = (self.rows.take(), self.affected.take());
        if rows.is_none() && affected.is_none() {
            return;
        }
        if let State::Span(span) = &mut self.state {
            let mut interned = false;
            span.with_span(|span| {
                if span.row_counts == RowCounts::NONE
                    && let Some(small) = RowCounts::new(rows, affected)
                {
                    span.row_counts = small;
                    interned = true;
                }
            });
            if interned {
                return;
            }
        }
        if let Some(rows) = rows {
            self.returned_rows(rows);
        }
        if let Some(affected) = affected
            && (affected > 0 || rows.unwrap_or(0) == 0)
        {
            self.affected_rows(affected);
        }
    }

    /// How long the statement ran, when it ran longer than the slow-statement threshold.
    fn slow_for(&self) -> Option<Duration> {
        // `start` first: an untimed span (no threshold) never reads the tracer.
        let start = self.start?;
        let threshold = self.tracer.inner.slow_threshold?;
        let elapsed = Timestamp::now().saturating_duration_since(start);
        (elapsed >= threshold).then_some(elapsed)
    }
}

/// A failed statement, as the span and the hooks see it.
pub(super) struct Failure<'a> {
    pub(super) sql: &'a str,
    pub(super) error: &'a (dyn Error + 'static),
    pub(super) code: Option<&'a str>,
    pub(super) error_type: &'a str,
}

impl Drop for SqlSpan<'_> {
    fn drop(&mut self) {
        self.tag_counts();
        if let Some(elapsed) = self.slow_for() {
            slow::report(self, elapsed);
        }
        if let State::Note { span, operation } = self.state {
            let elapsed = self.start.map_or(Duration::ZERO, |s| {
                Timestamp::now().saturating_duration_since(s)
            });
            stack::with_span(span, |s| {
                s.annotate_interval(format!("sql {operation} done"), elapsed);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sql::DbSystem;
    use crate::testing::{memory_tracer, wait_for_trace};

    /// What a statement span says, its ids aside.
    fn described(span: &crate::model::Span, root: SpanId) -> (String, bool, Vec<String>) {
        let mut tags: Vec<String> = span
            .tags()
            .into_iter()
            .map(|t| format!("{}={:?}", t.key, t.value))
            .collect();
        tags.sort();
        (span.name().to_owned(), span.parent_id() == Some(root), tags)
    }

    #[test]
    fn owned_starts_record_what_borrowed_starts_do() {
        let memory = memory_tracer();
        for slow in [None, Some(Duration::from_secs(60))] {
            let mut builder = SqlTracer::builder(DbSystem::Postgres).server("db", Some(5432));
            if let Some(threshold) = slow {
                builder = builder.slow_threshold(threshold);
            }
            let db = builder.build();
            let root = crate::span("owned vs borrowed").root().start();
            let token = root.token().expect("a sampled root");
            let (trace, root_id) = (token.trace_id(), token.span_id());
            let captured = crate::get_trace_info();
            let statement = db.statement("SELECT * FROM carts WHERE id = $1");
            db.start_under("SELECT * FROM carts WHERE id = $1", captured)
                .finish_with_rows(1);
            db.start_under_owned("SELECT * FROM carts WHERE id = $1", captured)
                .finish_with_rows(1);
            db.start_statement_under(&statement, captured)
                .finish_with_rows(1);
            db.start_statement_under_owned(&statement, captured)
                .finish_with_rows(1);
            // Issued outside any trace, run inside this one: recorded by neither.
            db.start_under_owned("SELECT 2", None).finish();
            drop(root);

            let spans = wait_for_trace(&memory, trace, 5, Duration::from_secs(5));
            let statements: Vec<_> = spans
                .iter()
                .filter(|s| s.id() != root_id)
                .map(|s| described(s, root_id))
                .collect();
            assert_eq!(statements.len(), 4, "slow {slow:?}: {statements:#?}");
            assert!(statements[0].1, "a child of the current span");
            assert!(
                statements.iter().all(|s| *s == statements[0]),
                "{statements:#?}"
            );
        }
    }
}
