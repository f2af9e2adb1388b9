//! Tail sampling stays bounded: a root that never ends cannot make the reporter hold more
//! than its caps, and a trace held too long is decided early.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tomograph::sample::{Never, TailSampling};
use tomograph::{Config, MemoryBackend, ReporterOptions};
use tomograph_test_support::tracer::{install_once, turn};

const MAX_SPANS: usize = 500;
const MAX_TRACES: usize = 20;

fn install() -> MemoryBackend {
    install_once(|memory| {
        Config::builder()
            .service_name("tail-bounds")
            .sampler(Never)
            .tail_sampling(
                TailSampling::default()
                    .max_held_spans(MAX_SPANS)
                    .max_held_traces(MAX_TRACES)
                    .max_hold(Duration::from_millis(300)),
            )
            .reporter(
                ReporterOptions::default()
                    .batch_size(64)
                    .batch_interval(Duration::from_millis(5)),
            )
            .backend(memory)
            .build()
    })
}

#[test]
fn a_root_that_never_ends_holds_at_most_the_caps() {
    let _turn = turn();
    let memory = install();
    // Never ends: leaked on purpose.
    let forever = tomograph::span("consume queue forever")
        .root()
        .start_detached();
    let token = forever.token().unwrap();
    assert!(token.is_deferred());
    std::mem::forget(forever);
    let before = tomograph::stats().sampling;
    for n in 0..20_000u32 {
        drop(tomograph::span("job").child_of(token).start_detached());
        // Other traces come and go meanwhile, and some never end either.
        if n % 100 == 0 {
            let other = tomograph::span("other").root().start_detached();
            let _child = tomograph::span("other child")
                .child_of(other.token().unwrap())
                .start_detached();
            if n % 1_000 == 0 {
                std::mem::forget(other);
            }
        }
        if n % 1_000 == 0 {
            let stats = tomograph::stats().sampling;
            assert!(stats.held_spans <= MAX_SPANS as u64, "{stats:?}");
            assert!(stats.held_traces <= MAX_TRACES as u64, "{stats:?}");
        }
    }
    tomograph::flush(Duration::from_secs(10)).unwrap();
    let stats = tomograph::stats();
    let sampling = &stats.sampling;
    assert!(sampling.peak_held_spans <= MAX_SPANS as u64, "{sampling:?}");
    assert!(
        sampling.peak_held_traces <= MAX_TRACES as u64,
        "{sampling:?}"
    );
    assert!(
        sampling.peak_held_spans > 0,
        "the spans were held: {sampling:?}"
    );
    assert!(sampling.decided_early > 0, "{sampling:?}");
    assert_eq!((sampling.held_spans, sampling.held_traces), (0, 0));
    // The never-ending trace was decided early (again when its decision was forgotten and
    // it came back), and dropped: nothing in it mattered.
    assert!(memory.trace(token.trace_id()).is_empty());
    assert!(
        sampling.dropped_spans >= before.dropped_spans + 20_000,
        "{sampling:?}"
    );
    // Every span accepted is sent, dropped by the tail decision, or lost: none vanished.
    let backend = &stats.backends[0];
    assert_eq!(backend.queued, 0);
    assert_eq!(
        stats.accepted,
        sampling.dropped_spans + backend.sent + backend.lost(),
        "{stats:?}"
    );
}

#[test]
fn a_trace_held_past_the_time_limit_is_decided_early() {
    let _turn = turn();
    let memory = install();
    let before = tomograph::stats().sampling;
    let root = tomograph::span("stuck request").root().start_detached();
    let trace = root.token().unwrap().trace_id();
    {
        let mut step = tomograph::span("slow step")
            .child_of(root.token().unwrap())
            .start_detached();
        step.record_error("upstream timed out");
    }
    // No flush: the dispatcher's own clock decides the trace once it has been held too long.
    let spans = memory.wait_for(Duration::from_secs(30), |spans| {
        spans.iter().any(|s| s.trace_id() == trace)
    });
    assert_eq!(spans.iter().filter(|s| s.trace_id() == trace).count(), 1);
    let after = tomograph::stats().sampling;
    assert!(after.decided_early > before.decided_early, "{after:?}");
    assert!(after.kept_error > before.kept_error, "{after:?}");
    drop(root);
    tomograph::flush(Duration::from_secs(10)).unwrap();
    assert_eq!(
        memory.trace(trace).len(),
        2,
        "the root follows the early decision"
    );
}
