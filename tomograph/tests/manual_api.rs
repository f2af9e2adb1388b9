//! The seed's manual API and the guard API on threads, through the real global tracer.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tomograph::testing::{memory_tracer, wait_for_trace};
use tomograph::{Kind, Span, SpanId, StopError, TagValue, TraceId};

const WAIT: Duration = Duration::from_secs(10);

fn trace_of_current() -> TraceId {
    tomograph::get_trace_info()
        .expect("a trace is in progress")
        .trace_id()
}

fn by_name<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

#[test]
fn start_stop_nest_and_record_notes_and_tags() {
    let memory = memory_tracer();
    tomograph::start_from(None, "my service", "a query", "127.0.0.1", 80);
    let trace = trace_of_current();
    tomograph::annotate("something happened");
    tomograph::tag("key", "value");
    tomograph::tag("count", 3);
    tomograph::start("my service", "inner", "10.0.0.1", 5432);
    tomograph::tag_with(|| ("lazy", true));
    tomograph::stop("inner").unwrap();
    tomograph::stop("a query").unwrap();
    assert_eq!(tomograph::stack_depth(), 0);

    let spans = wait_for_trace(&memory, trace, 2, WAIT);
    assert_eq!(spans.len(), 2);
    let outer = by_name(&spans, "a query");
    let inner = by_name(&spans, "inner");
    assert_eq!(outer.parent_id(), None);
    assert_eq!(inner.parent_id(), Some(outer.id()));
    assert_eq!(outer.local_endpoint().service_name(), "my service");
    assert_eq!(
        outer.local_endpoint().ip(),
        Some("127.0.0.1".parse().unwrap())
    );
    assert_eq!(outer.local_endpoint().port(), Some(80));
    assert_eq!(inner.local_endpoint().port(), Some(5432));
    assert_eq!(outer.annotations().len(), 1);
    assert_eq!(&*outer.annotations()[0].value, "something happened");
    assert_eq!(outer.tag_value("key"), Some(&TagValue::from("value")));
    assert_eq!(outer.tag_value("count"), Some(&TagValue::I64(3)));
    assert_eq!(inner.tag_value("lazy"), Some(&TagValue::Bool(true)));
    let notes: Vec<&str> = outer.notes().map(|(_, v)| v).collect();
    assert_eq!(notes, ["start", "something happened", "stop"]);
    assert!(inner.start() >= outer.start() && inner.end() <= outer.end());
}

#[test]
fn mismatched_stop_is_an_error_and_leaves_the_stack_alone() {
    let _memory = memory_tracer();
    assert_eq!(
        tomograph::stop("nothing open"),
        Err(StopError::NoSpanOpen {
            name: "nothing open".into()
        })
    );
    tomograph::start_from(None, "svc", "outer", "", 0);
    tomograph::start("svc", "inner", "", 0);
    let err = tomograph::stop("outer").unwrap_err();
    assert_eq!(
        err,
        StopError::NameMismatch {
            name: "outer".into(),
            current: "inner".into()
        }
    );
    assert!(err.to_string().contains("inner"));
    assert_eq!(
        tomograph::stack_depth(),
        2,
        "a refused stop changes nothing"
    );
    tomograph::stop("inner").unwrap();
    tomograph::stop("outer").unwrap();
    assert_eq!(tomograph::stack_depth(), 0);
}

#[test]
fn annotate_and_tag_without_a_span_do_nothing() {
    let _memory = memory_tracer();
    tomograph::annotate("orphan");
    tomograph::tag("orphan", 1);
    tomograph::record_error("orphan");
    assert!(!tomograph::tracing_started());
    assert_eq!(tomograph::stack_depth(), 0);
}

#[test]
fn tokens_continue_a_trace_on_other_threads() {
    let memory = memory_tracer();
    let root = tomograph::span("fan out").root().start();
    let token = root.token().unwrap();
    assert!(token.sampled());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                tomograph::start_from(Some(token), "worker", format!("job {i}"), "127.0.0.1", 0);
                {
                    let _step = tomograph::span("step").start();
                }
                tomograph::stop(&format!("job {i}")).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    drop(root);
    let spans = wait_for_trace(&memory, token.trace_id(), 9, WAIT);
    assert_eq!(spans.len(), 9);
    let root_id = token.span_id();
    let jobs: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name().starts_with("job "))
        .collect();
    assert_eq!(jobs.len(), 4);
    for job in &jobs {
        assert_eq!(job.parent_id(), Some(root_id));
        assert!(
            !job.has_remote_parent(),
            "an in-process token is not a remote parent"
        );
        let steps: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent_id() == Some(job.id()))
            .collect();
        assert_eq!(steps.len(), 1, "one step under {}", job.name());
        assert_eq!(
            steps[0].local_endpoint().service_name(),
            "worker",
            "children inherit the endpoint"
        );
    }
}

#[test]
fn token_strings_round_trip_into_remote_parents() {
    let memory = memory_tracer();
    let root = tomograph::span("producer").root().start();
    let wire = root.token().unwrap().to_string();
    drop(root);
    let parsed: tomograph::TraceToken = wire.parse().unwrap();
    {
        let _consumer = tomograph::span("consumer")
            .kind(Kind::Consumer)
            .child_of(parsed)
            .start();
    }
    let spans = wait_for_trace(&memory, parsed.trace_id(), 2, WAIT);
    let consumer = by_name(&spans, "consumer");
    assert_eq!(consumer.parent_id(), Some(parsed.span_id()));
    assert!(consumer.has_remote_parent());
    assert_eq!(consumer.kind(), Some(Kind::Consumer));
    assert!("garbage".parse::<tomograph::TraceToken>().is_err());
}

#[test]
fn a_panic_inside_a_span_closes_it_and_leaks_nothing_into_the_next_request() {
    let memory = memory_tracer();
    let worker = std::thread::spawn(move || {
        let first = std::panic::catch_unwind(|| {
            let request = tomograph::span("request 1").root().start();
            let trace = request.token().unwrap().trace_id();
            let _inner = tomograph::span("handler").start();
            tomograph::start("svc", "left open by start()", "", 0);
            if trace.get() != 0 {
                panic!("boom");
            }
            trace
        });
        assert!(first.is_err());
        let depth_after_panic = tomograph::stack_depth();
        let second = tomograph::span("request 2").root().start();
        let second_trace = second.token().unwrap().trace_id();
        drop(second);
        (depth_after_panic, second_trace)
    });
    let (depth, second_trace) = worker.join().unwrap();
    assert_eq!(
        depth, 0,
        "unwinding closed every span of the failed request"
    );
    let second = wait_for_trace(&memory, second_trace, 1, WAIT);
    assert_eq!(second.len(), 1);
    assert_eq!(
        second[0].parent_id(),
        None,
        "request 2 is a fresh root, not a child of request 1"
    );
    let spans = memory.wait_for(WAIT, |s| s.iter().any(|s| s.name() == "request 1"));
    let first_root = by_name(&spans, "request 1");
    let first: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id() == first_root.trace_id())
        .collect();
    assert_eq!(
        first.len(),
        3,
        "request 1, handler and the span left open were all reported"
    );
    for span in &first {
        assert_eq!(
            span.tag_value("error").map(ToString::to_string).as_deref(),
            Some("panicked"),
            "{} ended by the panic is marked as an error",
            span.name()
        );
    }
    assert_eq!(
        second[0].tag_value("error"),
        None,
        "request 2 did not panic"
    );
}

#[test]
fn a_detached_span_dropped_by_a_panic_is_marked_as_an_error() {
    let memory = memory_tracer();
    let trace = std::thread::spawn(|| {
        let mut trace = None;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let query = tomograph::span("query").root().start_detached();
            trace = query.token().map(|t| t.trace_id());
            panic!("driver crashed");
        }));
        assert!(result.is_err());
        trace.unwrap()
    })
    .join()
    .unwrap();
    let spans = wait_for_trace(&memory, trace, 1, WAIT);
    assert_eq!(
        spans[0]
            .tag_value("error")
            .map(ToString::to_string)
            .as_deref(),
        Some("panicked")
    );
}

#[test]
fn guards_stop_on_early_return_and_out_of_order_drops_close_children() {
    let memory = memory_tracer();
    fn early(flag: bool) -> Option<u32> {
        let _g = tomograph::span("early").start();
        if flag {
            return None;
        }
        Some(1)
    }
    let root = tomograph::span("root").root().start();
    let trace = root.token().unwrap().trace_id();
    early(true);
    let a = tomograph::span("a").start();
    let b = tomograph::span("b").start();
    drop(a); // closes b too: a guard closes what was opened above it
    assert_eq!(tomograph::stack_depth(), 1);
    drop(b); // already closed: nothing happens
    drop(root);
    assert_eq!(tomograph::stack_depth(), 0);
    let spans = wait_for_trace(&memory, trace, 4, WAIT);
    assert_eq!(spans.len(), 4);
    assert_eq!(
        by_name(&spans, "b").parent_id(),
        Some(by_name(&spans, "a").id())
    );
}

#[test]
fn detached_spans_and_guard_methods() {
    let memory = memory_tracer();
    let root = tomograph::span("root").root().start();
    let trace = root.token().unwrap().trace_id();
    root.annotate("note on root");
    root.tag_with(|| ("computed", 2.5));
    root.record_error("bad thing");
    let mut detached = tomograph::span("detached").start_detached();
    assert!(detached.is_recording());
    std::thread::spawn(move || {
        detached.tag("where", "other thread");
        detached.annotate("moved");
    })
    .join()
    .unwrap();
    drop(root);
    let spans = wait_for_trace(&memory, trace, 2, WAIT);
    let root = by_name(&spans, "root");
    let detached = by_name(&spans, "detached");
    assert_eq!(detached.parent_id(), Some(root.id()));
    assert_eq!(
        detached.tag_value("where"),
        Some(&TagValue::from("other thread"))
    );
    assert!(root.is_error());
    assert_eq!(root.tag_value("computed"), Some(&TagValue::F64(2.5)));
    assert!(root.annotations().iter().any(|n| n.value == "error"));
}

#[test]
fn many_threads_never_mix_their_stacks() {
    let memory = memory_tracer();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut traces = Vec::new();
                for i in 0..200 {
                    let root = tomograph::span(format!("t{t} r{i}")).root().start();
                    traces.push(root.token().unwrap());
                    for _ in 0..3 {
                        let _child = tomograph::span("child").start();
                        let _grandchild = tomograph::span("grandchild").start();
                    }
                }
                traces
            })
        })
        .collect();
    let tokens: Vec<_> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    tomograph::flush(WAIT).unwrap();
    let spans = memory.spans();
    for token in &tokens {
        let trace: Vec<&Span> = spans
            .iter()
            .filter(|s| s.trace_id() == token.trace_id())
            .collect();
        assert_eq!(trace.len(), 7, "root + 3 × (child, grandchild)");
        let children: Vec<SpanId> = trace
            .iter()
            .filter(|s| s.name() == "child")
            .map(|s| s.id())
            .collect();
        for s in &trace {
            match s.name() {
                "child" => assert_eq!(s.parent_id(), Some(token.span_id())),
                "grandchild" => assert!(children.contains(&s.parent_id().unwrap())),
                _ => assert_eq!(s.parent_id(), None),
            }
        }
    }
}

/// A lazy tag's closure may itself trace (a `#[traced]` function computing the value, a
/// statement): its spans and notes are recorded where they belong, and the tag is set.
#[test]
fn spans_and_notes_inside_a_lazy_tag_are_recorded() {
    let memory = memory_tracer();
    let root = tomograph::span("tagged").root().start();
    let trace = root.token().unwrap().trace_id();
    root.tag_with(|| {
        let _lookup = tomograph::span("lookup").start();
        tomograph::annotate("looked up");
        ("user", "ada")
    });
    tomograph::start("my service", "seed tagged", "", 0);
    tomograph::tag_with(|| {
        let _inner = tomograph::span("inner lookup").start();
        ("count", 1)
    });
    tomograph::stop("seed tagged").unwrap();
    drop(root);
    assert_eq!(tomograph::stack_depth(), 0);

    let spans = wait_for_trace(&memory, trace, 4, WAIT);
    let (tagged, lookup) = (by_name(&spans, "tagged"), by_name(&spans, "lookup"));
    let (seed, inner) = (
        by_name(&spans, "seed tagged"),
        by_name(&spans, "inner lookup"),
    );
    assert_eq!(tagged.tag_value("user"), Some(&TagValue::from("ada")));
    assert_eq!(lookup.parent_id(), Some(tagged.id()));
    assert!(
        lookup.annotations().iter().any(|n| n.value == "looked up"),
        "{lookup:#?}"
    );
    assert_eq!(seed.tag_value("count"), Some(&TagValue::from(1)));
    assert_eq!(inner.parent_id(), Some(seed.id()));
}

/// An error message's `Display` may itself trace (it looks something up, logs through a
/// bridge): what it records lands where it belongs, and the error on the span that was
/// current when it was recorded.
#[test]
fn spans_and_notes_inside_an_error_message_are_recorded() {
    struct Explained(&'static str);
    impl std::fmt::Display for Explained {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let _explain = tomograph::span("explain").start();
            tomograph::annotate("explained");
            f.write_str(self.0)
        }
    }
    let memory = memory_tracer();
    let root = tomograph::span("failing").root().start();
    let trace = root.token().unwrap().trace_id();
    root.record_error(Explained("disk full"));
    tomograph::start("my service", "seed failing", "", 0);
    tomograph::record_error(Explained("quota exceeded"));
    tomograph::stop("seed failing").unwrap();
    drop(root);
    assert_eq!(tomograph::stack_depth(), 0);

    let spans = wait_for_trace(&memory, trace, 4, WAIT);
    let (failing, seed) = (by_name(&spans, "failing"), by_name(&spans, "seed failing"));
    assert_eq!(
        failing.tag_value("error"),
        Some(&TagValue::from("disk full"))
    );
    assert_eq!(
        seed.tag_value("error"),
        Some(&TagValue::from("quota exceeded"))
    );
    let explains: Vec<&Span> = spans.iter().filter(|s| s.name() == "explain").collect();
    assert_eq!(explains.len(), 2, "{spans:#?}");
    let parents: Vec<Option<SpanId>> = explains.iter().map(|s| s.parent_id()).collect();
    assert!(parents.contains(&Some(failing.id())), "{parents:?}");
    assert!(parents.contains(&Some(seed.id())), "{parents:?}");
    assert!(
        explains
            .iter()
            .all(|s| s.annotations().iter().any(|n| n.value == "explained"))
    );
}
