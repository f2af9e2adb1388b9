//! Sampling is decided at the root and inherited; unsampled spans still propagate ids.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tomograph::{Config, MemoryBackend, ReporterOptions, TraceId, TraceToken};
use tomograph_test_support::tracer::{install_once, turn};

fn install() -> MemoryBackend {
    install_once(|memory| {
        Config::builder()
            .service_name("sampling")
            .sample_rate(0.0)
            .reporter(ReporterOptions::default().batch_interval(Duration::from_millis(5)))
            .backend(memory)
            .build()
    })
}

#[test]
fn unsampled_roots_record_nothing_but_keep_ids_for_propagation() {
    let _turn = turn();
    let memory = install();
    let root = tomograph::span("not sampled").root().start();
    let token = root.token().unwrap();
    assert!(!token.sampled());
    assert!(!root.is_recording());
    root.tag("ignored", 1);
    let child = tomograph::span("child").start();
    let child_token = child.token().unwrap();
    assert_eq!(
        child_token.trace_id(),
        token.trace_id(),
        "children inherit the trace"
    );
    assert!(!child_token.sampled(), "and the decision");
    drop(child);
    tomograph::start("svc", "seed api", "", 0);
    tomograph::stop("seed api").unwrap();
    drop(root);
    assert_eq!(tomograph::stack_depth(), 0);
    tomograph::flush(Duration::from_secs(5)).unwrap();
    assert!(memory.trace(token.trace_id()).is_empty());
}

#[test]
fn an_unsampled_upstream_decision_is_inherited_by_every_descendant() {
    let _turn = turn();
    let _memory = install();
    let upstream = TraceToken::new(
        TraceId::from_u64(0xdead).unwrap(),
        tomograph::SpanId::from_u64(9).unwrap(),
        false,
    );
    let server = tomograph::span("server").child_of(upstream).start();
    assert_eq!(server.token().unwrap().trace_id(), upstream.trace_id());
    {
        let child = tomograph::span("child").start();
        let grandchild = tomograph::span("grandchild").start();
        for token in [
            child.token().unwrap(),
            grandchild.token().unwrap(),
            tomograph::get_trace_info().unwrap(),
        ] {
            assert_eq!(
                token.trace_id(),
                upstream.trace_id(),
                "no new trace is started below an unsampled parent"
            );
            assert!(!token.sampled());
        }
    }
    drop(server);
    assert_eq!(tomograph::stack_depth(), 0);
}

#[test]
fn a_sampled_upstream_decision_wins_over_the_local_rate() {
    let _turn = turn();
    let memory = install();
    let upstream = TraceToken::new(
        TraceId::from_u64(0xfeed).unwrap(),
        tomograph::SpanId::from_u64(7).unwrap(),
        true,
    );
    {
        let _s = tomograph::span("continued").child_of(upstream).start();
        let _c = tomograph::span("child").start();
    }
    let spans =
        tomograph::testing::wait_for_trace(&memory, upstream.trace_id(), 2, Duration::from_secs(5));
    assert_eq!(spans.len(), 2);
    let debug = TraceToken::new(
        TraceId::from_u64(0xdeb).unwrap(),
        tomograph::SpanId::from_u64(8).unwrap(),
        false,
    )
    .with_debug(true);
    {
        let _s = tomograph::span("debug").child_of(debug).start();
    }
    let spans =
        tomograph::testing::wait_for_trace(&memory, debug.trace_id(), 1, Duration::from_secs(5));
    assert!(spans[0].debug(), "debug implies sampled and is recorded");
}

#[test]
fn switching_tracing_off_makes_every_call_a_no_op() {
    let _turn = turn();
    let _memory = install();
    tomograph::set_enabled(false);
    let g = tomograph::span("off").root().start();
    assert_eq!(g.id(), None);
    assert!(g.token().is_none());
    drop(g);
    tomograph::set_enabled(true);
    let g = tomograph::span("on").root().start();
    assert!(g.id().is_some());
}
