//! [`SqlSpan`]: one running statement — started by the tracer under the current span or a
//! captured parent, tagged with its outcome, ended by `finish` or `fail`.

use std::error::Error;
use std::fmt::Display;
use std::time::Duration;

use super::{MAX_PARAMETER_LEN, MAX_PARAMETERS, SqlMode, SqlStatement, SqlTracer, truncate};
use crate::api::{self, DetachedSpan};
use crate::clock::Timestamp;
use crate::context::stack;
use crate::context::token::TraceToken;
use crate::keys;
use crate::model::{Kind, Note, Peer, SpanId, Tag, TagValue, Text};

impl SqlTracer {
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

    pub(super) fn off(&self) -> SqlSpan {
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
/// early), it ends as it stands.
#[must_use = "finish() or fail() the statement's span"]
#[derive(Debug)]
pub struct SqlSpan {
    pub(super) tracer: SqlTracer,
    pub(super) state: State,
    pub(super) start: Option<Timestamp>,
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
