//! Connection waits handed from a pool to the statement that uses the connection, and pool
//! timeouts as spans.
//!
//! A synchronous pool (r2d2) tells how long `get()` waited on the thread that called it, but
//! the statement that uses the connection starts later, somewhere in the caller's code. The
//! pool's event handler leaves the wait in a per-thread slot
//! ([`set_pending_connection_wait`]); the next statement span recorded on that thread for the
//! same database takes it as its `db.client.connection.wait_time_us` tag. Returning the
//! connection to the pool clears the slot ([`clear_pending_connection_wait`]), so a wait never
//! outlives its connection. A statement span reads the slot with one thread-local access and
//! allocates nothing for it.
//!
//! A pool that gives up ([`SqlTracer::pool_timed_out`]) becomes a failed CLIENT span
//! `acquire connection`, child of the current context.

use std::cell::Cell;
use std::error::Error;
use std::time::Duration;

use super::span::Failure;
use super::{DbSystem, SqlMode, SqlTracer};
use crate::context::stack;
use crate::handle as api;
use crate::keys;
use crate::model::{Kind, Peer, Span, Tag};

/// The name of the span of a pool timeout: OpenTelemetry has no span for a connection
/// acquisition (only the `db.client.connection.timeouts` metric); this names what failed.
pub const ACQUIRE_SPAN_NAME: &str = "acquire connection";

/// The `error.type` of a pool timeout (sqlx's name for it, `sqlx::Error::PoolTimedOut`).
pub const POOL_TIMED_OUT: &str = "PoolTimedOut";

/// A wait a pool left for the next statement on this thread.
#[derive(Debug, Clone, Copy)]
struct Pending {
    system: DbSystem,
    connection: u64,
    wait_us: i64,
}

thread_local! {
    static PENDING: Cell<Option<Pending>> = const { Cell::new(None) };
}

/// A pool lent connection `connection` (an id the pool gives it; any number, as long as
/// [`clear_pending_connection_wait`] gets the same) to this thread after a wait of `wait`: the
/// next statement span of database `system` recorded on this thread takes it as its
/// `db.client.connection.wait_time_us` tag. For synchronous pools, called on the thread that
/// asked for the connection (r2d2's event handler does: [`PoolEvents`](super::PoolEvents)).
///
/// ```
/// use std::time::Duration;
/// use tomograph::sql::{DbSystem, SqlTracer, set_pending_connection_wait};
/// let memory = tomograph::testing::memory_tracer();
/// let db = SqlTracer::builder(DbSystem::Sqlite).build();
/// let trace = {
///     let request = tomograph::span("request").root().start();
///     set_pending_connection_wait(DbSystem::Sqlite, 7, Duration::from_micros(250));
///     db.start("SELECT 1").finish(); // tagged db.client.connection.wait_time_us = 250
///     db.start("SELECT 2").finish(); // not tagged: the wait was taken
///     request.token().unwrap().trace_id()
/// };
/// let spans = tomograph::testing::wait_for_trace(&memory, trace, 3, Duration::from_secs(5));
/// let wait = |sql: &str| {
///     let span = spans.iter().find(|s| s.tag_value("sql.query").is_some_and(|q| q.to_string() == sql)).unwrap();
///     span.tag_value("db.client.connection.wait_time_us").map(|v| v.to_string())
/// };
/// assert_eq!(wait("SELECT 1").as_deref(), Some("250"));
/// assert_eq!(wait("SELECT 2"), None);
/// ```
pub fn set_pending_connection_wait(system: DbSystem, connection: u64, wait: Duration) {
    let wait_us = i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
    PENDING.with(|p| {
        p.set(Some(Pending {
            system,
            connection,
            wait_us,
        }));
    });
}

/// Connection `connection` went back to its pool: a wait it left on this thread and no
/// statement took is dropped (a wait left by another connection stays).
pub fn clear_pending_connection_wait(connection: u64) {
    PENDING.with(|p| {
        if p.get().is_some_and(|w| w.connection == connection) {
            p.set(None);
        }
    });
}

/// The wait pending on this thread for a statement of `system`, taken (microseconds).
#[inline]
pub(super) fn take_pending_wait(system: DbSystem) -> Option<i64> {
    PENDING.with(|p| match p.get() {
        Some(w) if w.system == system => {
            p.set(None);
            Some(w.wait_us)
        }
        _ => None,
    })
}

impl SqlTracer {
    /// A pool gave up after `waited` without a connection for the code running now: a failed
    /// CLIENT span `acquire connection` ([`ACQUIRE_SPAN_NAME`]), child of the current span,
    /// started when the wait started (`waited` ago), with the tracer's database tags
    /// (`db.system.name`, `db.namespace`, `server.address`, …), the database as remote
    /// endpoint, `db.client.connection.wait_time_us` = `waited`, the `error` tag and note
    /// (`error`'s message) and `error.type` = `PoolTimedOut`. Then the `on_error` hooks run
    /// once, traced or not, with [`error_type`](super::SqlErrorEvent::error_type)
    /// `PoolTimedOut` and an empty [`sql`](super::SqlErrorEvent::sql) (no statement ran:
    /// the pool cannot know which one would have). Recorded like a statement: under a sampled
    /// trace (or none, with `trace_roots`); in [`SqlMode::Annotations`], as a note
    /// `sql acquire connection error` and the error on the current span.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use tomograph::sql::{DbSystem, SqlTracer};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let hook = seen.clone();
    /// let db = SqlTracer::builder(DbSystem::Postgres)
    ///     .on_error(move |event| {
    ///         hook.lock().unwrap().push((event.sql().to_owned(), event.error_type().to_owned()))
    ///     })
    ///     .build();
    /// let _request = tomograph::span("request").start();
    /// let error = std::io::Error::other("timed out waiting for a connection");
    /// db.pool_timed_out(Duration::from_millis(300), &error);
    /// assert_eq!(*seen.lock().unwrap(), [(String::new(), "PoolTimedOut".to_owned())]);
    /// ```
    pub fn pool_timed_out(&self, waited: Duration, error: &(dyn Error + 'static)) {
        let failure = Failure {
            sql: "",
            error,
            code: None,
            error_type: POOL_TIMED_OUT,
        };
        let wait_us = i64::try_from(waited.as_micros()).unwrap_or(i64::MAX);
        let inner = &*self.inner;
        if !self.would_trace() {
            return self.run_hooks(&failure, None);
        }
        let message = self.error_message(error);
        let record = |span: &mut Span| {
            span.record_error(&message);
            span.tag(keys::ERROR_TYPE, POOL_TIMED_OUT);
        };
        match inner.mode {
            SqlMode::Spans => {
                let mut span = api::span(ACQUIRE_SPAN_NAME)
                    .kind(Kind::Client)
                    .start_detached();
                let mut hooked = false;
                span.with_span(|span| {
                    span.start = span.start - waited;
                    span.peer = Some(Peer::Endpoint(inner.remote.clone()));
                    span.tags.extend(inner.fixed_tags.iter().cloned());
                    span.tags
                        .push(Tag::new(keys::db::CONNECTION_WAIT_TIME_US, wait_us));
                    record(span);
                    self.run_hooks(&failure, Some(span));
                    hooked = true;
                });
                if !hooked {
                    self.run_hooks(&failure, None);
                }
            }
            SqlMode::Annotations => {
                let on = stack::with_current_span(|span| {
                    span.annotate(format!("sql {ACQUIRE_SPAN_NAME} error"));
                    record(span);
                    span.id
                });
                self.run_hooks_on_stack(&failure, on);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_goes_to_its_own_database_once_and_checkin_clears_only_its_own() {
        set_pending_connection_wait(DbSystem::Postgres, 1, Duration::from_micros(5));
        assert_eq!(take_pending_wait(DbSystem::Sqlite), None);
        assert_eq!(take_pending_wait(DbSystem::Postgres), Some(5));
        assert_eq!(take_pending_wait(DbSystem::Postgres), None);

        set_pending_connection_wait(DbSystem::Sqlite, 2, Duration::from_micros(9));
        clear_pending_connection_wait(1);
        assert_eq!(
            take_pending_wait(DbSystem::Sqlite),
            Some(9),
            "another connection's checkin"
        );
        set_pending_connection_wait(DbSystem::Sqlite, 2, Duration::from_micros(9));
        clear_pending_connection_wait(2);
        assert_eq!(take_pending_wait(DbSystem::Sqlite), None);
    }
}
