//! Async context: spans follow their task across `.await` and worker threads.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use tomograph::testing::memory_tracer;
use tomograph::{FutureExt, Span, SpanId, TraceId};

const TASKS: usize = 10_000;

/// One task: a root span (owned by the future), nested spans across awaits (each the span of
/// its own future: a guard is not `Send`, so a spawned task cannot hold one across `.await`),
/// a spawned sub-task continuing the trace, and seed-style start/stop around an await.
async fn request(i: usize) -> (TraceId, SpanId) {
    let token = tomograph::get_trace_info().expect("the task's root is current");
    async move {
        tokio::task::yield_now().await;
        tomograph::annotate(format!("task {i}"));
        async {
            tokio::time::sleep(Duration::from_micros((i % 7) as u64 * 100)).await;
            tomograph::tag("task", i as i64);
        }
        .traced("inner")
        .await;
        let sub = tokio::spawn(
            async move {
                tokio::task::yield_now().await;
            }
            .traced("spawned"),
        );
        sub.await.unwrap();
        tomograph::start("svc", "seed", "", 0);
        tokio::task::yield_now().await;
        tomograph::stop("seed").unwrap();
    }
    .traced("outer")
    .await;
    (token.trace_id(), token.span_id())
}

#[test]
fn ten_thousand_concurrent_tasks_never_see_each_others_spans() {
    let memory = memory_tracer();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let roots: Vec<(TraceId, SpanId)> = rt.block_on(async {
        let handles: Vec<_> = (0..TASKS)
            .map(|i| {
                tokio::spawn(request(i).traced_with(tomograph::span(format!("task {i}")).root()))
            })
            .collect();
        let mut roots = Vec::with_capacity(TASKS);
        for h in handles {
            roots.push(h.await.unwrap());
        }
        roots
    });
    tomograph::flush(Duration::from_secs(30)).unwrap();
    let all = memory.spans();
    let stats = tomograph::stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert!(stats.backends.iter().all(|b| b.dropped == 0), "{stats:?}");
    let mut by_trace: HashMap<TraceId, Vec<&Span>> = HashMap::new();
    for span in &all {
        by_trace.entry(span.trace_id()).or_default().push(span);
    }
    for (i, (trace, root_id)) in roots.iter().enumerate() {
        let spans = by_trace
            .get(trace)
            .unwrap_or_else(|| panic!("trace of task {i} missing"));
        assert_eq!(
            spans.len(),
            5,
            "task {i}: root, outer, inner, spawned, seed — got {spans:#?}"
        );
        let find = |name: &str| *spans.iter().find(|s| s.name() == name).unwrap();
        let root = find(&format!("task {i}"));
        assert_eq!(root.id(), *root_id);
        assert_eq!(root.parent_id(), None);
        let outer = find("outer");
        assert_eq!(outer.parent_id(), Some(root.id()));
        assert_eq!(&*outer.annotations()[0].value, format!("task {i}"));
        let inner = find("inner");
        assert_eq!(inner.parent_id(), Some(outer.id()));
        assert_eq!(
            inner.tag_value("task"),
            Some(&tomograph::TagValue::I64(i as i64)),
            "tag landed on its own task's span"
        );
        assert_eq!(find("spawned").parent_id(), Some(outer.id()));
        assert_eq!(find("seed").parent_id(), Some(outer.id()));
    }
    assert_eq!(tomograph::stack_depth(), 0);
}

#[test]
fn a_dropped_future_closes_its_spans() {
    let memory = memory_tracer();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let trace = rt.block_on(async {
        let root = tomograph::span("caller").root().start();
        let trace = root.token().unwrap().trace_id();
        let slow = async {
            let _g = tomograph::span("held across await").start();
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        .traced("cancelled work");
        let timed_out = tokio::time::timeout(Duration::from_millis(20), slow).await;
        assert!(timed_out.is_err());
        assert_eq!(
            tomograph::stack_depth(),
            1,
            "only the caller's span is on the thread"
        );
        drop(root);
        trace
    });
    let spans = tomograph::testing::wait_for_trace(&memory, trace, 3, Duration::from_secs(5));
    let names: Vec<&str> = spans.iter().map(|s| s.name()).collect();
    assert!(
        names.contains(&"held across await") && names.contains(&"cancelled work"),
        "{names:?}"
    );
    let work = spans.iter().find(|s| s.name() == "cancelled work").unwrap();
    let held = spans
        .iter()
        .find(|s| s.name() == "held across await")
        .unwrap();
    assert_eq!(held.parent_id(), Some(work.id()));
}

#[test]
fn a_panicking_poll_leaves_nothing_on_the_worker_thread() {
    let _memory = memory_tracer();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let task = tokio::spawn(
            async {
                async {
                    tokio::task::yield_now().await;
                    panic!("task failed");
                }
                .traced("doomed")
                .await
            }
            .traced_with(tomograph::span("panicking task").root()),
        );
        assert!(task.await.is_err());
        assert_eq!(tomograph::stack_depth(), 0);
    });
}
