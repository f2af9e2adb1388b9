//! Pluggable samplers and tail sampling in a live tracer: rules by root name, decisions a
//! caller deferred, headers of held traces, the tail decision's reasons; and the rate limit
//! held to its rate over five seconds.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::HeaderMap;
use tomograph::propagation::{self, Format, Propagation};
use tomograph::sample::{
    Rate, RateLimit, Rules, Sampler, SamplingContext, SamplingDecision, TailSampling,
};
use tomograph::{
    Config, ConfigBuilder, MemoryBackend, ReporterOptions, SpanId, TraceId, TraceToken,
};
use tomograph_test_support::tracer::{install_once, turn};

fn install() -> MemoryBackend {
    install_once(|memory| {
        let env = |k: &str| match k {
            "TOMOGRAPH_SAMPLE_RULES" => {
                Some("GET /health=0, POST /checkout=1, GET /static/*=0, *=0".to_owned())
            }
            "TOMOGRAPH_TAIL_SAMPLING" => Some("1".to_owned()),
            "TOMOGRAPH_TAIL_SLOW_MS" => Some("60000".to_owned()),
            _ => None,
        };
        let config = ConfigBuilder::from_lookup(&env, "")
            .unwrap()
            .service_name("samplers")
            .reporter(ReporterOptions::default().batch_interval(Duration::from_millis(5)))
            .propagation(Propagation::only([
                Format::B3,
                Format::W3c,
                Format::XTraceInfo,
            ]))
            .backend(memory)
            .build();
        assert!(config.sampler().is_some() && config.tail_sampling().is_some());
        config
    })
}

fn flush() {
    tomograph::flush(Duration::from_secs(10)).unwrap();
}

#[test]
fn rules_decide_by_root_name_and_children_follow() {
    let _turn = turn();
    let memory = install();
    flush();
    let before = tomograph::stats().sampling;
    let checkout = tomograph::span("POST /checkout").root().start();
    let kept = checkout.token().unwrap();
    assert!(kept.sampled() && !kept.is_deferred());
    let child = tomograph::span("charge card").start();
    assert!(!child.token().unwrap().is_deferred());
    drop(child);
    drop(checkout);

    let health = tomograph::span("GET /health").root().start();
    let held = health.token().unwrap();
    assert!(held.sampled() && held.is_deferred(), "recorded and held");
    {
        let child = tomograph::span("ping database").start();
        assert!(child.is_recording());
        assert!(child.token().unwrap().is_deferred(), "held like its root");
    }
    drop(health);

    flush();
    assert_eq!(memory.trace(kept.trace_id()).len(), 2);
    assert!(
        memory.trace(held.trace_id()).is_empty(),
        "nothing happened: dropped"
    );
    let after = tomograph::stats().sampling;
    assert_eq!(after.kept_head, before.kept_head + 1, "{after:?}");
    assert_eq!(after.dropped, before.dropped + 1, "{after:?}");
    assert_eq!(after.dropped_spans, before.dropped_spans + 2, "{after:?}");
}

#[test]
fn a_held_trace_with_an_error_is_kept_whole() {
    let _turn = turn();
    let memory = install();
    let before = tomograph::stats().sampling;
    let (trace, root_id) = {
        let root = tomograph::span("GET /static/app.js").root().start();
        let token = root.token().unwrap();
        {
            let _load = tomograph::span("load").start();
            let read = tomograph::span("read file").start();
            read.record_error("permission denied");
        }
        let detached = tomograph::span("log access").start_detached();
        drop(detached);
        (token.trace_id(), token.span_id())
    };
    let spans = tomograph::testing::wait_for_trace(&memory, trace, 4, Duration::from_secs(10));
    assert_eq!(spans.len(), 4);
    let ids: Vec<SpanId> = spans.iter().map(|s| s.id()).collect();
    for span in &spans {
        match span.parent_id() {
            None => assert_eq!(span.id(), root_id),
            Some(parent) => assert!(ids.contains(&parent), "{} lost its parent", span.name()),
        }
    }
    let after = tomograph::stats().sampling;
    assert_eq!(after.kept_error, before.kept_error + 1);
}

#[test]
fn outgoing_headers_carry_the_head_decision_or_none() {
    let _turn = turn();
    install();
    let headers_of = |name: &str| {
        let _root = tomograph::span(name.to_owned()).root().start();
        let mut headers = HeaderMap::new();
        tomograph::http::add_trace_info_header(&mut headers);
        headers
    };
    let kept = headers_of("POST /checkout");
    assert_eq!(kept["x-b3-sampled"], "1");
    assert!(kept["traceparent"].to_str().unwrap().ends_with("-01"));
    assert!(kept.contains_key("x-trace-info"));

    let held = headers_of("GET /health");
    assert!(held.contains_key("x-b3-traceid") && held.contains_key("x-b3-spanid"));
    assert!(
        !held.contains_key("x-b3-sampled") && !held.contains_key("x-b3-flags"),
        "B3: the decision is left to the receiver"
    );
    assert!(
        held["traceparent"].to_str().unwrap().ends_with("-00"),
        "W3C has no deferred state"
    );
    assert!(
        !held.contains_key("x-trace-info"),
        "X-Trace-Info has no flag"
    );
    let single = {
        let _root = tomograph::span("GET /health").root().start();
        let mut headers = HeaderMap::new();
        Propagation::only([Format::B3Single])
            .inject(tomograph::get_trace_info().unwrap(), &mut headers);
        headers
    };
    assert_eq!(
        single["b3"].to_str().unwrap().matches('-').count(),
        1,
        "b3 without its flag: {:?}",
        single["b3"]
    );
    flush();
}

#[test]
fn a_deferred_caller_is_decided_here_and_an_explicit_one_followed() {
    let _turn = turn();
    let memory = install();
    let caller = |sampled: Option<&'static str>| {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-b3-traceid",
            TraceId::random(false).to_string().parse().unwrap(),
        );
        headers.insert("x-b3-spanid", SpanId::random().to_string().parse().unwrap());
        if let Some(flag) = sampled {
            headers.insert("x-b3-sampled", flag.parse().unwrap());
        }
        propagation::extract(&headers).unwrap().token().unwrap()
    };
    let start = |name: &'static str, parent: TraceToken| {
        let span = tomograph::span(name).child_of(parent).start();
        span.token().unwrap()
    };
    // Deferred: the rules decide, knowing the name.
    let deferred = caller(None);
    assert!(deferred.is_deferred());
    let checkout = start("POST /checkout", deferred);
    assert!(checkout.sampled() && !checkout.is_deferred());
    let health = start("GET /health", caller(None));
    assert!(health.is_deferred(), "held for the tail decision");
    // Explicit: followed, whatever the rules say.
    let refused = start("POST /checkout", caller(Some("0")));
    assert!(!refused.sampled());
    let accepted = start("GET /health", caller(Some("1")));
    assert!(accepted.sampled() && !accepted.is_deferred());
    flush();
    let server = memory.trace(checkout.trace_id());
    assert_eq!(server.len(), 1);
    assert!(server[0].has_remote_parent());
    assert!(memory.trace(health.trace_id()).is_empty());
    assert!(memory.trace(refused.trace_id()).is_empty());
    assert_eq!(memory.trace(accepted.trace_id()).len(), 1);
}

#[test]
fn tokens_of_held_traces_travel_without_a_decision() {
    let _turn = turn();
    install();
    let root = tomograph::span("GET /health").root().start();
    let token = root.token().unwrap();
    let text = token.to_string();
    let parsed: TraceToken = text.parse().unwrap();
    assert!(parsed.is_deferred() && parsed.is_remote());
    assert_eq!(parsed.trace_id(), token.trace_id());
    // On another thread of this process the token continues the held trace as it is.
    std::thread::spawn(move || {
        let child = tomograph::span("on another thread").child_of(token).start();
        assert!(child.token().unwrap().is_deferred());
    })
    .join()
    .unwrap();
    drop(root);
    flush();
}

#[test]
fn flush_decides_what_is_held() {
    let _turn = turn();
    let memory = install();
    let root = tomograph::span("GET /health").root().start();
    let trace = root.token().unwrap().trace_id();
    {
        let child = tomograph::span("child").start();
        child.record_error("timeout");
    }
    let before = tomograph::stats().sampling;
    flush();
    let after = tomograph::stats().sampling;
    assert_eq!(after.decided_early, before.decided_early + 1);
    assert_eq!(after.kept_error, before.kept_error + 1);
    assert_eq!(after.held_traces, 0);
    assert_eq!(memory.trace(trace).len(), 1, "the error, sent");
    drop(root);
    flush();
    assert_eq!(
        memory.trace(trace).len(),
        2,
        "the root follows its trace's decision"
    );
}

#[test]
fn every_accepted_span_is_sent_dropped_by_the_tail_or_still_queued() {
    let _turn = turn();
    install();
    for n in 0..50 {
        let name = if n % 2 == 0 {
            "GET /health"
        } else {
            "POST /checkout"
        };
        let _root = tomograph::span(name).root().start();
        let _child = tomograph::span("child").start();
    }
    flush();
    let stats = tomograph::stats();
    let memory = &stats.backends[0];
    assert_eq!(memory.queued, 0);
    assert_eq!(
        stats.accepted,
        stats.sampling.dropped_spans + memory.sent + memory.lost(),
        "{stats:?}"
    );
}

#[test]
fn the_rate_limit_holds_its_rate_over_five_seconds() {
    // No tracer involved: the sampler alone, asked by two threads as fast as they can (with
    // a pause now and then, to share the machine), for five seconds of wall time. The limit
    // is a rate, so the count is checked against the time that passed, not the time taken.
    const PER_SECOND: f64 = 200.0;
    let limit = RateLimit::per_second(PER_SECOND).of(Rate::new(1.0));
    let kept = AtomicUsize::new(0);
    let asked = AtomicUsize::new(0);
    let context = SamplingContext::new("GET /", TraceId::from_u64(1).unwrap());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while start.elapsed() < Duration::from_secs(5) {
                    for _ in 0..100 {
                        asked.fetch_add(1, Ordering::Relaxed);
                        if limit.sample(&context) == SamplingDecision::Keep {
                            kept.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            });
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let kept = kept.into_inner() as f64;
    let expected = PER_SECOND * elapsed;
    let asked = asked.into_inner();
    assert!(
        asked as f64 > 5.0 * expected,
        "the limit was tested: asked {asked} times"
    );
    assert!(
        (kept - expected).abs() <= 0.1 * expected,
        "kept {kept} in {elapsed:.2} s, expected {expected:.0} ± 10 %"
    );
}

#[test]
fn a_bad_rule_in_the_environment_is_a_clear_error() {
    let env = |k: &str| {
        (k == "TOMOGRAPH_SAMPLE_RULES").then(|| "GET /health=0, POST /checkout=always".to_owned())
    };
    let err = ConfigBuilder::from_lookup(&env, "")
        .unwrap_err()
        .to_string();
    assert!(err.contains("TOMOGRAPH_SAMPLE_RULES"), "{err}");
    assert!(err.contains("POST /checkout=always"), "{err}");
    let rules: Rules = "GET /health=0".parse().unwrap();
    let trace = TraceId::from_u64(2).unwrap();
    assert!(
        !rules
            .sample(&SamplingContext::new("GET /health", trace))
            .is_keep()
    );
    let _ = Config::builder()
        .sampler(rules)
        .tail_sampling(TailSampling::default());
}
