//! The head sampler is asked once per local root, whichever way the span starts — a sampler
//! that counts (a rate limit) or draws (a rate) must not be asked twice for one trace — and
//! never for a span that follows its parent's decision.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tomograph::sample::{Sampler, SamplingContext, SamplingDecision};
use tomograph::{Config, Endpoint, MemoryBackend, ReporterOptions};
use tomograph_test_support::tracer::{install_once, turn};

static ASKED: AtomicUsize = AtomicUsize::new(0);

/// Keeps every trace but those whose root is named `drop …`, and counts the questions.
#[derive(Debug)]
struct Counting;

impl Sampler for Counting {
    fn sample(&self, context: &SamplingContext<'_>) -> SamplingDecision {
        ASKED.fetch_add(1, Ordering::SeqCst);
        SamplingDecision::keep_if(!context.name().starts_with("drop"))
    }
}

fn install() -> MemoryBackend {
    install_once(|memory| {
        Config::builder()
            .service_name("sampler-calls")
            .sampler(Counting)
            .reporter(ReporterOptions::default().batch_interval(Duration::from_millis(5)))
            .backend(memory)
            .build()
    })
}

/// How many times the sampler was asked while `f` ran.
fn asked_during(f: impl FnOnce()) -> usize {
    let before = ASKED.load(Ordering::SeqCst);
    f();
    ASKED.load(Ordering::SeqCst) - before
}

#[test]
fn a_guard_root_is_decided_once_kept_or_not() {
    let _turn = turn();
    install();
    assert_eq!(
        asked_during(|| {
            let root = tomograph::span("kept").root().start();
            assert!(root.is_recording());
        }),
        1
    );
    assert_eq!(
        asked_during(|| {
            let root = tomograph::span("drop me").root().start();
            assert!(!root.is_recording());
            assert!(!root.token().unwrap().sampled());
        }),
        1,
        "a root the sampler discards is not asked about again"
    );
    assert_eq!(
        asked_during(|| {
            let root = tomograph::span("drop, with an endpoint")
                .root()
                .endpoint(Endpoint::new("elsewhere"))
                .start();
            assert!(!root.token().unwrap().sampled());
        }),
        1
    );
}

#[test]
fn children_follow_their_parent_without_asking() {
    let _turn = turn();
    install();
    let asked = asked_during(|| {
        let root = tomograph::span("kept root").root().start();
        let token = root.token().unwrap();
        let child = tomograph::span("child").start();
        assert_eq!(child.token().unwrap().trace_id(), token.trace_id());
        let _grandchild = tomograph::span("grandchild")
            .endpoint(Endpoint::new("own"))
            .start();
        drop(child);
        let _of_token = tomograph::span("child of a token").child_of(token).start();
        let _detached = tomograph::span("detached child").start_detached();
    });
    assert_eq!(asked, 1, "the root alone");
    let asked = asked_during(|| {
        let _root = tomograph::span("drop this trace").root().start();
        let child = tomograph::span("child").start();
        assert!(!child.token().unwrap().sampled());
    });
    assert_eq!(asked, 1);
}

#[test]
fn detached_and_seed_roots_are_decided_once() {
    let _turn = turn();
    install();
    assert_eq!(
        asked_during(|| {
            let _root = tomograph::span("drop detached").root().start_detached();
        }),
        1
    );
    assert_eq!(
        asked_during(|| {
            tomograph::start("svc", "drop seeded", "", 0);
            tomograph::stop("drop seeded").unwrap();
        }),
        1
    );
}
