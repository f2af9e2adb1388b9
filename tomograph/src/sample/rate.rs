//! The rate sampler: a fixed fraction of traces.

use super::{Sampler, SamplingContext, SamplingDecision};
use crate::model::TraceId;

/// Keeps a fraction of traces (`TOMOGRAPH_SAMPLE_RATE`), decided from the trace id: every
/// process using the same rate takes the same decision for a trace, so a trace whose caller
/// deferred the decision is kept or discarded whole along services that agree on the rate.
///
/// ```
/// use tomograph::sample::{Rate, Sampler, SamplingContext};
/// use tomograph::TraceId;
/// let tenth = Rate::new(0.1);
/// let kept = (1..=10_000u64)
///     .filter(|_| tenth.sample(&SamplingContext::new("r", TraceId::random(false))).is_keep())
///     .count();
/// assert!((700..1300).contains(&kept), "{kept}");
/// let trace = TraceId::from_u64(99).unwrap();
/// let first = tenth.sample(&SamplingContext::new("a", trace));
/// assert_eq!(tenth.sample(&SamplingContext::new("b", trace)), first, "one trace, one decision");
/// assert!(Rate::new(1.0).sample(&SamplingContext::new("r", trace)).is_keep());
/// assert!(!Rate::new(0.0).sample(&SamplingContext::new("r", trace)).is_keep());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Kept when the trace id's hash is below this.
    threshold: u64,
    always: bool,
}

impl Rate {
    /// Keeps `rate` of the traces (clamped to 0.0–1.0; NaN keeps everything).
    pub fn new(rate: f64) -> Self {
        let rate = if rate.is_nan() {
            1.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        Self {
            threshold: (rate * u64::MAX as f64) as u64,
            always: rate >= 1.0,
        }
    }

    /// The fraction kept.
    pub fn rate(&self) -> f64 {
        if self.always {
            1.0
        } else {
            self.threshold as f64 / u64::MAX as f64
        }
    }

    #[inline]
    pub(crate) fn keeps(&self, trace_id: TraceId) -> bool {
        self.always
            || (self.threshold != 0 && mix(trace_id.high() ^ trace_id.low()) < self.threshold)
    }
}

impl Sampler for Rate {
    fn sample(&self, context: &SamplingContext<'_>) -> SamplingDecision {
        SamplingDecision::keep_if(self.keeps(context.trace_id()))
    }
}

/// SplitMix64's finalizer: spreads any id (sequential ones too) over the whole range.
#[inline]
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_are_spread() {
        let half = Rate::new(0.5);
        let kept = (1..=10_000u64)
            .filter(|n| half.keeps(TraceId::from_u64(*n).unwrap_or_else(|| unreachable!())))
            .count();
        assert!((4_500..5_500).contains(&kept), "{kept}");
    }

    #[test]
    fn reports_its_rate() {
        assert_eq!(Rate::new(1.0).rate(), 1.0);
        assert_eq!(Rate::new(-1.0).rate(), 0.0);
        assert!((Rate::new(0.25).rate() - 0.25).abs() < 1e-9);
    }
}
