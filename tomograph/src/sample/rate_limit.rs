//! The rate limit: at most N traces a second, smooth, lock-free.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Sampler, SamplingContext, SamplingDecision};

/// Keeps at most `n` traces a second (of those its inner sampler keeps, when it has one),
/// spread evenly: one every `1/n` s, with a burst of at most a tenth of a second's worth
/// after a quiet spell (at least one trace; see [`burst`](RateLimit::burst)).
///
/// A generic cell rate algorithm on one atomic word and the CPU's cycle counter: the hot path
/// is a clock read and a compare-and-swap, no lock, from any number of threads. Starts with
/// no saved burst, so from its creation on it never keeps more than `n·t + 1` traces in any
/// `t` seconds.
///
/// ```
/// use tomograph::sample::{RateLimit, Rate, Sampler, SamplingContext};
/// use tomograph::TraceId;
/// let limit = RateLimit::per_second(10.0).of(Rate::new(1.0));
/// let context = SamplingContext::new("GET /", TraceId::from_u64(1).unwrap());
/// let kept = (0..1_000).filter(|_| limit.sample(&context).is_keep()).count();
/// assert!(kept >= 1 && kept <= 3, "a tight loop gets one trace, not a thousand: {kept}");
/// ```
#[derive(Debug)]
pub struct RateLimit {
    /// Nanoseconds between two traces.
    interval: u64,
    /// How far ahead of now the theoretical arrival time may run (the burst).
    tolerance: u64,
    /// The theoretical arrival time of the next trace, in ns since `base`.
    tat: AtomicU64,
    base: minstant::Instant,
    inner: Option<Box<dyn Sampler>>,
}

impl RateLimit {
    /// At most `n` traces a second (`n` ≤ 0 or NaN: none; at most 10⁹).
    pub fn per_second(n: f64) -> Self {
        let interval = if n.is_nan() || n <= 0.0 {
            u64::MAX
        } else {
            ((1e9 / n.min(1e9)) as u64).max(1)
        };
        let mut limit = Self {
            interval,
            tolerance: 0,
            tat: AtomicU64::new(0),
            base: minstant::Instant::now(),
            inner: None,
        };
        let burst = if n.is_finite() && n > 10.0 {
            (n / 10.0).ceil() as u32
        } else {
            1
        };
        limit = limit.burst(burst);
        limit
    }

    /// At most `traces` kept at once after a quiet spell (at least 1: perfectly even).
    pub fn burst(mut self, traces: u32) -> Self {
        self.tolerance = self.interval.saturating_mul(u64::from(traces.max(1) - 1));
        // No saved burst at the start: the first trace is kept at once, the next one an
        // interval later.
        self.tat = AtomicU64::new(self.tolerance);
        self
    }

    /// Limits what `inner` keeps, rather than every trace (the traces `inner` discards take
    /// no share of the limit).
    pub fn of(mut self, inner: impl Sampler) -> Self {
        self.inner = Some(Box::new(inner));
        self
    }

    /// Takes one trace's share of the limit, if there is room now.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        if self.interval == u64::MAX {
            return false;
        }
        let now = self.base.elapsed().as_nanos() as u64;
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            if tat > now.saturating_add(self.tolerance) {
                return false;
            }
            let next = tat.max(now).saturating_add(self.interval);
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(current) => tat = current,
            }
        }
    }
}

impl Sampler for RateLimit {
    fn sample(&self, context: &SamplingContext<'_>) -> SamplingDecision {
        if let Some(inner) = &self.inner
            && !inner.sample(context).is_keep()
        {
            return SamplingDecision::Discard;
        }
        SamplingDecision::keep_if(self.try_acquire())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_keeps_nothing() {
        let none = RateLimit::per_second(0.0);
        assert!(!(0..100).any(|_| none.try_acquire()));
    }

    #[test]
    fn a_burst_is_spent_once() {
        // One trace a day, bursts of 5: the start has no saved burst.
        let daily = RateLimit::per_second(1.0 / 86_400.0).burst(5);
        assert_eq!((0..100).filter(|_| daily.try_acquire()).count(), 1);
    }

    #[test]
    fn the_inner_sampler_goes_first() {
        let limit = RateLimit::per_second(1e9).of(super::super::Never);
        let context = SamplingContext::new(
            "x",
            crate::model::TraceId::from_u64(1).unwrap_or_else(|| unreachable!()),
        );
        assert!(!limit.sample(&context).is_keep());
    }
}
