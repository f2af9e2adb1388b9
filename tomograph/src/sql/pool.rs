//! Connection pool gauges: what a pool holds (used, idle, max, pending connections, as
//! OpenTelemetry's `db.client.connection.count`, `.max`, `.pending_requests`), sent to statsd
//! on an interval while a statsd backend is on.
//!
//! An adapter (or the application) registers a pool with [`watch_pool`], giving a closure that
//! reads its state; one background thread, started with the first registration, reads every
//! watched pool each [interval](set_pool_gauge_interval) and sends the gauges
//! `db.{system}.pool.{name}.used`, `.idle`, `.max` and `.pending` (when the pool tells) through
//! the statsd backend's socket. Dropping the returned [`PoolWatch`] stops watching.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use super::DbSystem;

/// What a pool holds at one moment.
///
/// ```
/// use tomograph::sql::PoolState;
/// let state = PoolState::new(3, 5, 10).with_pending(2);
/// assert_eq!((state.used(), state.idle(), state.max(), state.pending()), (3, 5, 10, Some(2)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolState {
    used: u32,
    idle: u32,
    max: u32,
    pending: Option<u32>,
}

impl PoolState {
    /// `used` connections lent out, `idle` ones waiting in the pool, at most `max`.
    pub fn new(used: u32, idle: u32, max: u32) -> Self {
        Self {
            used,
            idle,
            max,
            pending: None,
        }
    }
    /// Requests waiting for a connection, when the pool tells.
    #[must_use]
    pub fn with_pending(mut self, pending: u32) -> Self {
        self.pending = Some(pending);
        self
    }
    /// Connections lent out.
    pub fn used(&self) -> u32 {
        self.used
    }
    /// Connections waiting in the pool.
    pub fn idle(&self) -> u32 {
        self.idle
    }
    /// The most connections the pool opens.
    pub fn max(&self) -> u32 {
        self.max
    }
    /// Requests waiting for a connection, when known.
    pub fn pending(&self) -> Option<u32> {
        self.pending
    }
}

type ReadState = Arc<dyn Fn() -> Option<PoolState> + Send + Sync>;

#[cfg_attr(not(feature = "statsd"), allow(dead_code))]
struct Watched {
    id: u64,
    /// `db.{system}.pool.{name}`, sanitized.
    prefix: String,
    read: ReadState,
}

static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());
static INTERVAL_MS: AtomicU64 = AtomicU64::new(10_000);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static THREAD: Once = Once::new();

/// Watches a pool until the returned [`PoolWatch`] drops: every interval, while a statsd
/// backend is on, its state (read by `state`, which returns `None` for a pool that is gone)
/// becomes the gauges `db.{system}.pool.{name}.used`, `.idle`, `.max` and `.pending`.
///
/// ```
/// use tomograph::sql::{DbSystem, PoolState, watch_pool};
/// let watch = watch_pool(DbSystem::Postgres, "orders", || Some(PoolState::new(1, 3, 8)));
/// drop(watch); // no longer watched
/// ```
pub fn watch_pool(
    system: DbSystem,
    name: &str,
    state: impl Fn() -> Option<PoolState> + Send + Sync + 'static,
) -> PoolWatch {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let prefix = format!("db.{}.pool.{}", sanitize(system.name()), sanitize(name));
    WATCHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Watched {
            id,
            prefix,
            read: Arc::new(state),
        });
    THREAD.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("tomograph-pool-gauges".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(Duration::from_millis(INTERVAL_MS.load(Ordering::Relaxed)));
                    report();
                }
            });
        if let Err(error) = spawned {
            log::warn!("tomograph: no pool gauges (cannot start their thread: {error})");
        }
    });
    PoolWatch { id }
}

/// How often watched pools are read (default 10 s; at least 10 ms).
pub fn set_pool_gauge_interval(interval: Duration) {
    let ms = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(10);
    INTERVAL_MS.store(ms, Ordering::Relaxed);
}

/// Reads every watched pool now and sends its gauges (what the background thread does each
/// interval).
pub fn report_pool_gauges() {
    report();
}

fn report() {
    #[cfg(feature = "statsd")]
    {
        if !crate::backend::metrics::is_on() {
            return;
        }
        let watched: Vec<(String, ReadState)> = WATCHED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|w| (w.prefix.clone(), Arc::clone(&w.read)))
            .collect();
        for (prefix, read) in watched {
            let Some(state) = read() else { continue };
            let mut lines: Vec<(String, String)> = vec![
                (format!("{prefix}.used"), format!("{}|g", state.used)),
                (format!("{prefix}.idle"), format!("{}|g", state.idle)),
                (format!("{prefix}.max"), format!("{}|g", state.max)),
            ];
            if let Some(pending) = state.pending {
                lines.push((format!("{prefix}.pending"), format!("{pending}|g")));
            }
            let lines: Vec<(&str, &str)> = lines
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            crate::backend::metrics::send(&lines);
        }
    }
}

#[cfg(feature = "statsd")]
fn sanitize(text: &str) -> String {
    crate::backend::statsd::sanitize(&text.replace('.', "-"))
}

#[cfg(not(feature = "statsd"))]
fn sanitize(text: &str) -> String {
    text.to_owned()
}

/// A pool being watched by [`watch_pool`]; dropping it stops.
#[must_use = "the pool is watched while this lives"]
pub struct PoolWatch {
    id: u64,
}

impl fmt::Debug for PoolWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolWatch").field("id", &self.id).finish()
    }
}

impl Drop for PoolWatch {
    fn drop(&mut self) {
        WATCHED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|w| w.id != self.id);
    }
}
