//! [`PoolEvents`]: an r2d2 event handler that tags each statement with the wait for its
//! connection and turns pool timeouts into spans (feature `r2d2`).

use std::time::Duration;

use r2d2::event::{CheckinEvent, CheckoutEvent, TimeoutEvent};

use super::{SqlTracer, clear_pending_connection_wait, set_pending_connection_wait};

/// An [`r2d2::HandleEvent`] for a pool of connections traced by `tracer`. r2d2 calls it on the
/// thread that called `pool.get()`:
///
/// - a checkout leaves the time `get()` waited on that thread: the next statement span of
///   this database recorded there is tagged `db.client.connection.wait_time_us` with it
///   ([`set_pending_connection_wait`]); the pool's own health check (`test_on_check_out`)
///   runs before the checkout is reported, so it never takes it. A statement outside a sampled
///   trace leaves it for the next one; giving the connection back drops it.
/// - a timeout (`get()` gave up after the pool's `connection_timeout`) becomes a failed span
///   `acquire connection`, child of the current span, with `error.type` = `PoolTimedOut`, and
///   the `on_error` hooks run once, their `sql` empty ([`SqlTracer::pool_timed_out`]; the
///   error they get is a [`PoolTimeout`]).
///
/// The adapters' pool builders set it (`tomograph_diesel::r2d2::pool_builder`,
/// `tomograph_rusqlite::pool_builder`); on a builder made otherwise, add it with
/// `event_handler(Box::new(PoolEvents::new(tracer)))`. r2d2 takes one event handler per pool.
///
/// ```
/// use tomograph::sql::{DbSystem, PoolEvents, SqlTracer};
/// # #[derive(Debug)] struct Manager;
/// # impl r2d2::ManageConnection for Manager {
/// #     type Connection = (); type Error = std::io::Error;
/// #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn is_valid(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn has_broken(&self, _: &mut ()) -> bool { false }
/// # }
/// let tracer = SqlTracer::builder(DbSystem::Sqlite).build();
/// let pool = r2d2::Pool::builder()
///     .max_size(2)
///     .event_handler(Box::new(PoolEvents::new(tracer)))
///     .build(Manager)?;
/// let _conn = pool.get()?; // the next statement on this thread gets the wait
/// # Ok::<(), r2d2::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PoolEvents {
    tracer: SqlTracer,
}

impl PoolEvents {
    /// The handler for a pool whose connections `tracer` traces.
    pub fn new(tracer: SqlTracer) -> Self {
        Self { tracer }
    }

    /// The tracer.
    pub fn tracer(&self) -> &SqlTracer {
        &self.tracer
    }
}

impl r2d2::HandleEvent for PoolEvents {
    fn handle_checkout(&self, event: CheckoutEvent) {
        set_pending_connection_wait(
            self.tracer.system(),
            event.connection_id(),
            event.duration(),
        );
    }

    fn handle_timeout(&self, event: TimeoutEvent) {
        let error = PoolTimeout {
            waited: event.timeout(),
        };
        self.tracer.pool_timed_out(event.timeout(), &error);
    }

    fn handle_checkin(&self, event: CheckinEvent) {
        clear_pending_connection_wait(event.connection_id());
    }
}

/// The error the `on_error` hooks get for an r2d2 pool timeout ([`PoolEvents`]): r2d2 reports
/// the timeout to its event handler before `get()` returns its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out waiting for a connection from the pool after {waited:?}")]
pub struct PoolTimeout {
    waited: Duration,
}

impl PoolTimeout {
    /// How long `get()` waited (the pool's connection timeout).
    pub fn waited(&self) -> Duration {
        self.waited
    }
}
