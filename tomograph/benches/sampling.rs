//! Sampling's costs, side by side in one run, one tracer with tail sampling on: a span of a
//! trace held for the tail decision vs a span of a sampled (head-kept) trace vs a span of an
//! unsampled trace; the root's decision for each; and the dispatcher's throughput with tail
//! decisions on (traces passed through, held and dropped, held and kept).
//!
//! Roots named `held …` are discarded by the head sampler (so held, tail sampling being on),
//! the others kept; unsampled roots continue a caller that explicitly did not sample.
//! Iterations are timed in chunks of 256 under a fresh root, as in `span.rs`. After criterion,
//! interleaved same-run ratios against the sampled span (`TOMOGRAPH_BENCH_PAIRS`, default 40).
//!
//! Run: `cargo bench -p tomograph --bench sampling -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tomograph::sample::{Always, Never, Rules, TailSampling};
use tomograph::testing::DiscardBackend;
use tomograph::{Config, ReporterOptions, SpanId, TraceId, TraceToken};
use tomograph_test_support::bench::{Batch, bench_pairs, interleaved_ratios};

const CHUNK: u64 = 256;
/// Traces per flush in the throughput benches: the queue never fills.
const TRACES_PER_FLUSH: u64 = 4_096;
/// Spans per trace in the throughput benches.
const SPANS_PER_TRACE: u64 = 8;

#[derive(Clone, Copy, Debug)]
enum Fate {
    Sampled,
    Held,
    Unsampled,
}

fn root(fate: Fate) -> tomograph::SpanGuard {
    match fate {
        Fate::Sampled => tomograph::span("kept root").root().start(),
        Fate::Held => tomograph::span("held root").root().start(),
        Fate::Unsampled => {
            let caller = TraceToken::new(TraceId::random(false), SpanId::random(), false);
            tomograph::span("unsampled root").child_of(caller).start()
        }
    }
}

/// Times `iters` child spans (start + stop) under fresh roots of `fate`.
fn child_spans(iters: u64, fate: Fate) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = CHUNK.min(iters - done);
        let _root = root(fate);
        let start = Instant::now();
        for _ in 0..n {
            drop(black_box(tomograph::span("child").start()));
        }
        total += start.elapsed();
        done += n;
    }
    total
}

/// Times `iters` roots (start + stop) of `fate`.
fn roots(iters: u64, fate: Fate) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        drop(black_box(root(fate)));
    }
    start.elapsed()
}

/// Reports `iters` traces of `SPANS_PER_TRACE` spans and waits until the dispatcher has
/// decided and delivered them all: the reporter's throughput.
fn traces(iters: u64, fate: Fate, error: bool) -> Duration {
    let start = Instant::now();
    let mut done = 0;
    while done < iters {
        let n = TRACES_PER_FLUSH.min(iters - done);
        for _ in 0..n {
            let _root = root(fate);
            for i in 1..SPANS_PER_TRACE {
                let child = tomograph::span("child").start();
                if error && i == SPANS_PER_TRACE - 1 {
                    child.record_error("failed");
                }
            }
        }
        if let Err(e) = tomograph::flush(Duration::from_secs(60)) {
            panic!("the bench lost spans, its numbers would be wrong: {e}");
        }
        done += n;
    }
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    tomograph::init(
        Config::builder()
            .service_name("bench")
            .sampler(Rules::new().prefix("held", Never).otherwise(Always))
            .tail_sampling(TailSampling::default())
            .reporter(ReporterOptions::default().queue_capacity(1 << 16))
            .backend(DiscardBackend::default())
            .build(),
    )
    .expect("tracer installs once");

    let mut g = c.benchmark_group("sampling_child_span");
    for fate in [Fate::Sampled, Fate::Held, Fate::Unsampled] {
        g.bench_function(format!("{fate:?}").to_lowercase(), |b| {
            b.iter_custom(|n| child_spans(n, fate))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("sampling_root_span");
    for fate in [Fate::Sampled, Fate::Held, Fate::Unsampled] {
        g.bench_function(format!("{fate:?}").to_lowercase(), |b| {
            b.iter_custom(|n| roots(n, fate))
        });
    }
    g.finish();

    // The span benches may have filled the queue (counted, not an error there): start the
    // throughput benches from an empty account, where any loss is an error.
    let _ = tomograph::flush(Duration::from_secs(60));
    let mut g = c.benchmark_group("sampling_dispatcher");
    g.throughput(Throughput::Elements(SPANS_PER_TRACE));
    for (name, fate, error) in [
        ("head_kept_passed_through", Fate::Sampled, false),
        ("held_dropped", Fate::Held, false),
        ("held_kept_error", Fate::Held, true),
    ] {
        g.bench_function(name, |b| b.iter_custom(|n| traces(n, fate, error)));
    }
    g.finish();

    let batch = |fate| -> Batch<'static> { Box::new(move || child_spans(100_000, fate)) };
    let report = interleaved_ratios(
        bench_pairs(40),
        batch(Fate::Sampled),
        vec![
            ("held", batch(Fate::Held)),
            ("unsampled", batch(Fate::Unsampled)),
        ],
    );
    println!("\nchild span, interleaved, per sampled child span:\n{report}");
    let stats = tomograph::stats().sampling;
    println!("tail decisions: {stats:?}");
}

criterion_group!(sampling, benches);
criterion_main!(sampling);
