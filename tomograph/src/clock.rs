//! Timestamps: wall-clock time read from the CPU's cycle counter when it is reliable.
//!
//! Reading `SystemTime` costs a system-call-like trip per note; [`minstant`] reads the TSC and
//! converts it with an anchor taken once, so stamping a note costs a few nanoseconds.

use std::fmt;
use std::ops::{Add, Sub};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static ANCHOR: LazyLock<minstant::Anchor> = LazyLock::new(minstant::Anchor::new);

/// A point in wall-clock time, nanoseconds since the Unix epoch.
///
/// ```
/// use tomograph::Timestamp;
/// use std::time::Duration;
/// let t = Timestamp::from_unix_micros(1_000);
/// assert_eq!((t + Duration::from_micros(5)).unix_micros(), 1_005);
/// assert!(Timestamp::now() > t);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Now.
    #[inline]
    pub fn now() -> Self {
        Self(minstant::Instant::now().as_unix_nanos(&ANCHOR))
    }

    /// The time `SystemTime` says; slower than [`Timestamp::now`], for tests and imports.
    pub fn from_system_time(t: SystemTime) -> Self {
        Self(
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        )
    }

    /// `nanos` nanoseconds after the Unix epoch.
    pub const fn from_unix_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// `micros` microseconds after the Unix epoch.
    pub const fn from_unix_micros(micros: u64) -> Self {
        Self(micros.saturating_mul(1_000))
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> u64 {
        self.0
    }

    /// Microseconds since the Unix epoch (Zipkin's unit).
    pub const fn unix_micros(self) -> u64 {
        self.0 / 1_000
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(rhs.as_nanos() as u64))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(rhs.as_nanos() as u64))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Timestamp({}.{:09})",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_agrees_with_system_time() {
        let sys = Timestamp::from_system_time(SystemTime::now());
        let fast = Timestamp::now();
        let skew = if fast > sys {
            fast.saturating_duration_since(sys)
        } else {
            sys.saturating_duration_since(fast)
        };
        assert!(skew < Duration::from_millis(50), "skew {skew:?}");
    }

    #[test]
    fn now_is_monotonic_enough() {
        let a = Timestamp::now();
        let b = Timestamp::now();
        assert!(b >= a);
    }
}
