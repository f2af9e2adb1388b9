//! `on_error` hooks: what they receive ([`SqlErrorEvent`]) and how the tracer runs them.

use std::error::Error;
use std::sync::Arc;

use super::span::Failure;
use super::{DbSystem, SqlTracer};
use crate::context::{abandoned, stack};
use crate::error::panic_message;
use crate::model::{Span, SpanId, TagValue, Text};

pub(super) type ErrorHook = Arc<dyn Fn(&mut SqlErrorEvent<'_>) + Send + Sync>;

/// What an `on_error` hook receives: the statement, the error, and the span to tag.
pub struct SqlErrorEvent<'a> {
    pub(super) sql: &'a str,
    pub(super) error: &'a (dyn Error + 'static),
    pub(super) code: Option<&'a str>,
    pub(super) error_type: &'a str,
    pub(super) system: DbSystem,
    pub(super) span: Option<&'a mut Span>,
}

impl std::fmt::Debug for SqlErrorEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlErrorEvent")
            .field("sql", &self.sql)
            .field("error", &self.error.to_string())
            .field("code", &self.code)
            .field("error_type", &self.error_type)
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
    /// The error's class, as the span's `error.type` tag says: the driver's kind of error
    /// (`UniqueViolation`, `PoolTimedOut`) where the adapter knows one, else the
    /// [code](Self::code), else `_OTHER`.
    pub fn error_type(&self) -> &str {
        self.error_type
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
            span.tag(key, value);
        }
    }
}

pub(super) struct ErrorHookEntry(pub(super) ErrorHook);

impl std::fmt::Debug for ErrorHookEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("on_error hook")
    }
}

impl SqlTracer {
    pub(super) fn run_hooks(&self, failure: &Failure<'_>, span: Option<&mut Span>) {
        let mut event = SqlErrorEvent {
            sql: failure.sql,
            error: failure.error,
            code: failure.code,
            error_type: failure.error_type,
            system: self.inner.system,
            span,
        };
        for hook in &self.inner.on_error {
            // A hook runs inside the driver's call (diesel's instrumentation, a pool's error
            // path): its panic must not unwind through the driver's state, nor stop the
            // hooks after it. Logged, and the statement goes on to fail as it would have.
            if let Err(panic) = abandoned::catch_panic(|| (hook.0)(&mut event)) {
                log::error!(
                    "tomograph: an on_error hook panicked on a failed {} statement: {} (the \
                     statement's error is returned as usual)",
                    self.inner.system.name(),
                    panic_message(&*panic)
                );
            }
        }
    }

    /// Runs the hooks for a statement recorded as notes on span `id` of this thread's stack
    /// ([`SqlMode::Annotations`](super::SqlMode::Annotations)), outside the stack's borrow:
    /// a hook is user code, and what it traces (a span, a note, a `log` or `tracing` record
    /// through the bridges) must find the stack free to be recorded. The hooks see a copy of
    /// the span; the tags they add go on the span itself afterwards.
    pub(super) fn run_hooks_on_stack(&self, failure: &Failure<'_>, id: Option<SpanId>) {
        if self.inner.on_error.is_empty() {
            return;
        }
        let copy = id.and_then(|id| stack::with_span(id, |span| span.clone()));
        let (Some(id), Some(mut copy)) = (id, copy) else {
            return self.run_hooks(failure, None);
        };
        let before = copy.tags.len();
        self.run_hooks(failure, Some(&mut copy));
        if copy.tags.len() > before {
            let added = copy.tags.split_off(before);
            stack::with_span(id, |span| span.tags.extend(added));
        }
    }
}
