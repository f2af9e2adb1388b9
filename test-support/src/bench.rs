//! Benchmark statistics: a median with its confidence interval, arms timed in alternating
//! (ABBA) batches against a baseline with an A/A control — as ratios
//! ([`interleaved_ratios`]) or as the time each arm adds per operation ([`added_costs`]) —
//! and, with the `peers` feature, the span benchmarks' shared harness ([`peers`]); busy
//! loops that keep an idle VM's CPUs awake for benchmarks that hop between threads
//! ([`awake`]).

use std::fmt::Write as _;
use std::time::Duration;

pub mod awake;
#[cfg(feature = "peers")]
pub mod peers;

use tomograph::testing::DiscardBackend;
use tomograph::{Config, ReporterOptions};

/// Installs the tracer every benchmark measures against: service `bench`, its reporter
/// running (a queue of 65 536) into a [`DiscardBackend`].
///
/// # Panics
/// When a tracer was installed already.
pub fn install_tomograph() {
    tomograph::init(
        Config::builder()
            .service_name("bench")
            .reporter(ReporterOptions::default().queue_capacity(65_536))
            .backend(DiscardBackend::default())
            .build(),
    )
    .expect("the benchmark's tracer installs once");
}

/// A median and its 95 % confidence interval (order statistics: no assumption about the
/// distribution), from [`interleaved_ratios`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianCi {
    /// The median.
    pub median: f64,
    /// Lower bound of the 95 % interval.
    pub low: f64,
    /// Upper bound of the 95 % interval.
    pub high: f64,
}

impl MedianCi {
    /// The median of `values` and its 95 % confidence interval; `None` when empty.
    ///
    /// ```
    /// let mut v: Vec<f64> = (1..=101).map(f64::from).collect();
    /// let m = tomograph_test_support::bench::MedianCi::of(&mut v).unwrap();
    /// assert_eq!(m.median, 51.0);
    /// assert!(m.low < 51.0 && m.high > 51.0);
    /// ```
    pub fn of(values: &mut [f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let half_width = (1.96 * (n as f64).sqrt() / 2.0).ceil() as usize;
        let mid = n / 2;
        Some(Self {
            median: values[mid],
            low: values[mid.saturating_sub(half_width)],
            high: values[(mid + half_width).min(n - 1)],
        })
    }
}

impl std::fmt::Display for MedianCi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} (95% CI {:.3}–{:.3})",
            self.median, self.low, self.high
        )
    }
}

/// Pairs of batches for [`interleaved_ratios`]: `TOMOGRAPH_BENCH_PAIRS`, or `default`.
///
/// ```
/// let pairs = tomograph_test_support::bench::bench_pairs(60);
/// assert!(pairs > 0 || std::env::var("TOMOGRAPH_BENCH_PAIRS").is_ok());
/// ```
/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`): what an operation costs
/// the thread that runs it, whatever other threads do meanwhile.
///
/// ```
/// let before = tomograph_test_support::bench::thread_cpu_time();
/// std::hint::black_box((0..100_000u64).sum::<u64>());
/// assert!(tomograph_test_support::bench::thread_cpu_time() >= before);
/// ```
pub fn thread_cpu_time() -> Duration {
    cpu_time::ThreadTime::now().as_duration()
}

/// CPU time the whole process has used, every thread (`CLOCK_PROCESS_CPUTIME_ID`): an
/// operation's cost including the work it leaves to background threads.
pub fn process_cpu_time() -> Duration {
    cpu_time::ProcessTime::now().as_duration()
}

/// Pairs of batches for the interleaved measurements (`TOMOGRAPH_BENCH_PAIRS`, else `default`).
pub fn bench_pairs(default: usize) -> usize {
    std::env::var("TOMOGRAPH_BENCH_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One timed batch of a benchmark arm: runs the batch, returns how long it took.
pub type Batch<'a> = Box<dyn FnMut() -> Duration + 'a>;

/// Ratios of benchmark arms against a baseline, measured in alternating batches so that a
/// machine whose load drifts affects both sides alike: for each pair, the baseline and each
/// candidate run in ABBA order (the order flips every pair), and an A/A control (the
/// baseline against itself, on the same schedule) shows the harness's own bias and noise.
/// Returns one line per candidate plus the control, each the median per-pair ratio with its
/// 95 % confidence interval.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tomograph_test_support::bench::interleaved_ratios;
/// let spin = |n: u32| move || {
///     let t = Instant::now();
///     std::hint::black_box((0..n).sum::<u32>());
///     t.elapsed()
/// };
/// let report = interleaved_ratios(5, Box::new(spin(1000)), vec![("same", Box::new(spin(1000)))]);
/// assert!(report.contains("same/baseline"));
/// ```
pub fn interleaved_ratios(
    pairs: usize,
    baseline: Batch<'_>,
    mut candidates: Vec<(&str, Batch<'_>)>,
) -> String {
    let mut ratios: Vec<Vec<f64>> = vec![Vec::with_capacity(pairs); candidates.len()];
    let mut control = Vec::with_capacity(pairs);
    abba(
        pairs,
        baseline,
        &mut candidates,
        |i, base, with| ratios[i].push(with.as_secs_f64() / base.as_secs_f64()),
        |first, second| control.push(second.as_secs_f64() / first.as_secs_f64()),
    );
    let mut lines = Vec::new();
    for ((name, _), mut ratios) in candidates.iter().zip(ratios) {
        if let Some(m) = MedianCi::of(&mut ratios) {
            lines.push(format!("{name}/baseline {m}"));
        }
    }
    if let Some(m) = MedianCi::of(&mut control) {
        lines.push(format!("A/A control {m}"));
    }
    format!("{pairs} pairs: {}", lines.join("; "))
}

/// The schedule [`interleaved_ratios`] and [`added_costs`] share: `pairs` times, each arm
/// against the baseline (baseline first on even pairs, the arm first on odd ones: ABBA), then
/// the baseline against itself (the A/A control). `each(arm, baseline, arm's time)` and
/// `control(first, second)` receive the times.
fn abba(
    pairs: usize,
    mut baseline: Batch<'_>,
    arms: &mut [(&str, Batch<'_>)],
    mut each: impl FnMut(usize, Duration, Duration),
    mut control: impl FnMut(Duration, Duration),
) {
    for pair in 0..pairs {
        for (i, (_, arm)) in arms.iter_mut().enumerate() {
            let (base, with) = if pair % 2 == 0 {
                let base = baseline();
                (base, arm())
            } else {
                let with = arm();
                (baseline(), with)
            };
            each(i, base, with);
        }
        let (first, second) = (baseline(), baseline());
        control(first, second);
    }
}

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
    baseline: Batch<'_>,
    mut arms: Vec<(&str, Batch<'_>)>,
) -> CostReport {
    let per = |d: Duration| d.as_secs_f64() * 1e9 / f64::from(batch);
    let mut ratios = vec![Vec::with_capacity(pairs); arms.len()];
    let mut added = vec![Vec::with_capacity(pairs); arms.len()];
    let mut base_ns = Vec::new();
    let (mut control_ratio, mut control_added) = (Vec::new(), Vec::new());
    abba(
        pairs,
        baseline,
        &mut arms,
        |i, base, with| {
            ratios[i].push(with.as_secs_f64() / base.as_secs_f64());
            added[i].push(per(with) - per(base));
            base_ns.push(per(base));
        },
        |first, second| {
            control_ratio.push(second.as_secs_f64() / first.as_secs_f64());
            control_added.push(per(second) - per(first));
        },
    );
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
