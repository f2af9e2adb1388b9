//! Added cost per statement, measured like `tomograph::testing::interleaved_ratios` (batches in
//! ABBA order against a fresh baseline batch, an A/A control on the same schedule), but
//! reporting for each arm both its ratio to the baseline and the time it adds per statement
//! (`(arm − baseline) / batch`), so that tracers can be compared by what they add rather than
//! by the statement's own time. Included by the peer benches with `#[path]`.

use std::fmt::Write as _;
use std::time::Duration;

use tomograph::testing::MedianCi;

/// One timed batch of an arm: runs `batch` statements, returns how long they took.
pub type Batch<'a> = Box<dyn FnMut() -> Duration + 'a>;

/// One arm's result.
#[derive(Debug)]
pub struct ArmCost {
    /// The arm's label.
    pub name: String,
    /// arm / baseline per pair.
    pub ratio: MedianCi,
    /// (arm − baseline) per statement, in nanoseconds.
    pub added_ns: MedianCi,
}

/// The report of [`added_costs`].
#[derive(Debug)]
pub struct CostReport {
    /// What was measured (printed as the heading).
    pub title: String,
    /// Pairs of batches.
    pub pairs: usize,
    /// Statements per batch.
    pub batch: u32,
    /// The baseline's own time per statement, in nanoseconds.
    pub baseline_ns: MedianCi,
    /// One entry per arm.
    pub arms: Vec<ArmCost>,
    /// The baseline against itself: ratio and "added" time (both should be ≈ 1 and ≈ 0).
    pub control: ArmCost,
}

impl CostReport {
    /// The arm called `name`.
    pub fn arm(&self, name: &str) -> Option<&ArmCost> {
        self.arms.iter().find(|a| a.name == name)
    }

    /// Prints the report, then for `ours` the ratio of its added cost to each other arm's
    /// (ratio of the medians; `< 0.333` meets "at most a third of each peer's").
    pub fn print(&self, ours: &str) {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} pairs, batches of {}; baseline {:.0} ns per statement (95% CI {:.0}–{:.0})",
            self.title,
            self.pairs,
            self.batch,
            self.baseline_ns.median,
            self.baseline_ns.low,
            self.baseline_ns.high
        );
        for arm in self.arms.iter().chain(std::iter::once(&self.control)) {
            let _ = writeln!(
                out,
                "  {:<44} ratio {}  added {:>8.0} ns (95% CI {:.0}–{:.0})",
                arm.name, arm.ratio, arm.added_ns.median, arm.added_ns.low, arm.added_ns.high
            );
        }
        if let Some(us) = self.arm(ours) {
            for peer in self.arms.iter().filter(|a| a.name != ours) {
                let _ = writeln!(
                    out,
                    "  added cost {ours} / {}: {:.3}",
                    peer.name,
                    us.added_ns.median / peer.added_ns.median
                );
            }
        }
        eprint!("{out}");
    }
}

/// Runs every arm against the baseline in ABBA order, `pairs` times, plus the A/A control.
pub fn added_costs(
    title: &str,
    pairs: usize,
    batch: u32,
    mut baseline: Batch<'_>,
    mut arms: Vec<(&str, Batch<'_>)>,
) -> CostReport {
    let per = |d: Duration| d.as_secs_f64() * 1e9 / f64::from(batch);
    let mut ratios = vec![Vec::with_capacity(pairs); arms.len()];
    let mut added = vec![Vec::with_capacity(pairs); arms.len()];
    let mut base_ns = Vec::new();
    let (mut control_ratio, mut control_added) = (Vec::new(), Vec::new());
    for pair in 0..pairs {
        for (i, (_, arm)) in arms.iter_mut().enumerate() {
            let (base, with) = if pair % 2 == 0 {
                let base = baseline();
                (base, arm())
            } else {
                let with = arm();
                (baseline(), with)
            };
            ratios[i].push(with.as_secs_f64() / base.as_secs_f64());
            added[i].push(per(with) - per(base));
            base_ns.push(per(base));
        }
        let (first, second) = (baseline(), baseline());
        control_ratio.push(second.as_secs_f64() / first.as_secs_f64());
        control_added.push(per(second) - per(first));
    }
    let ci = |v: &mut Vec<f64>| {
        MedianCi::of(v).unwrap_or(MedianCi {
            median: f64::NAN,
            low: f64::NAN,
            high: f64::NAN,
        })
    };
    let arms = arms
        .iter()
        .zip(ratios.iter_mut().zip(added.iter_mut()))
        .map(|((name, _), (r, a))| ArmCost {
            name: (*name).to_owned(),
            ratio: ci(r),
            added_ns: ci(a),
        })
        .collect();
    CostReport {
        title: title.to_owned(),
        pairs,
        batch,
        baseline_ns: ci(&mut base_ns),
        arms,
        control: ArmCost {
            name: "A/A control".to_owned(),
            ratio: ci(&mut control_ratio),
            added_ns: ci(&mut control_added),
        },
    }
}
