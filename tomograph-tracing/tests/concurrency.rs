//! 10,000 concurrent tasks on a multi-thread runtime, each a trace mixing bridged and native
//! spans nested across `.await`: every span's parent is checked, and no span is lost (the
//! reporter's counters say so).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use tomograph::{Config, FutureExt, MemoryBackend, ReporterOptions, TagValue, TraceToken};
use tomograph_tracing::TomographLayer;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const TASKS: i64 = 10_000;
/// task root (native) → bridged → native → bridged leaf → native statement
const SPANS_PER_TASK: usize = 5;

/// What a task saw as current at each level, to compare with the spans' ids.
#[derive(Debug, Default)]
struct Seen {
    bridged: Option<TraceToken>,
    native: Option<TraceToken>,
    leaf: Option<TraceToken>,
}

#[tracing::instrument(skip(seen))]
async fn bridged_level(task: i64, seen: &mut Seen) {
    tokio::task::yield_now().await;
    seen.bridged = tomograph::get_trace_info();
    native_level(task, seen).await;
    tokio::task::yield_now().await;
    assert_eq!(tomograph::get_trace_info(), seen.bridged);
}

#[tomograph::traced]
async fn native_level(task: i64, seen: &mut Seen) {
    tomograph::tag("task", task);
    tokio::task::yield_now().await;
    seen.native = tomograph::get_trace_info();
    async {
        tokio::task::yield_now().await;
        seen.leaf = tomograph::get_trace_info();
        // A span across `.await` in a spawned task: the future's own (a guard is not `Send`).
        async {
            tomograph::tag("task", task);
            tokio::task::yield_now().await;
        }
        .traced("statement")
        .await;
    }
    .instrument(tracing::info_span!("leaf", task = task))
    .await;
    assert_eq!(tomograph::get_trace_info(), seen.native);
}

#[test]
fn ten_thousand_tasks_mixing_bridged_and_native_spans_keep_their_parents() {
    let memory = MemoryBackend::new();
    tomograph::init(
        Config::builder()
            .service_name("concurrency")
            .reporter(
                ReporterOptions::default()
                    .queue_capacity(1 << 17)
                    .batch_interval(Duration::from_millis(5)),
            )
            .backend(memory.clone())
            .build(),
    )
    .unwrap();
    tracing_subscriber::registry()
        .with(TomographLayer::new())
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                tokio::spawn(
                    async move {
                        let root = tomograph::get_trace_info().unwrap();
                        tomograph::tag("task", task);
                        let mut seen = Seen::default();
                        bridged_level(task, &mut seen).await;
                        assert_eq!(tomograph::get_trace_info(), Some(root));
                        (task, root, seen)
                    }
                    .traced_with(tomograph::span("task root").root()),
                )
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        results
    });
    tomograph::flush(Duration::from_secs(30)).unwrap();
    let stats = tomograph::stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(
        stats.accepted,
        TASKS as u64 * SPANS_PER_TASK as u64,
        "{stats:?}"
    );

    let spans = memory.spans();
    assert_eq!(spans.len(), TASKS as usize * SPANS_PER_TASK);
    let mut by_trace: HashMap<_, Vec<_>> = HashMap::new();
    for span in &spans {
        by_trace.entry(span.trace_id()).or_default().push(span);
    }
    assert_eq!(by_trace.len(), TASKS as usize, "one trace per task");
    for (task, root, seen) in results {
        let trace = &by_trace[&root.trace_id()];
        assert_eq!(trace.len(), SPANS_PER_TASK);
        let named = |name: &str| *trace.iter().find(|s| s.name() == name).unwrap();
        let task_root = named("task root");
        let bridged = named("bridged_level");
        let native = named("native_level");
        let leaf = named("leaf");
        let statement = named("statement");
        assert_eq!(task_root.id(), root.span_id());
        assert_eq!(task_root.parent_id(), None);
        assert_eq!(bridged.parent_id(), Some(task_root.id()));
        assert_eq!(native.parent_id(), Some(bridged.id()));
        assert_eq!(leaf.parent_id(), Some(native.id()));
        assert_eq!(statement.parent_id(), Some(leaf.id()));
        assert_eq!(seen.bridged.unwrap().span_id(), bridged.id());
        assert_eq!(seen.native.unwrap().span_id(), native.id());
        assert_eq!(seen.leaf.unwrap().span_id(), leaf.id());
        for span in [task_root, bridged, native, leaf, statement] {
            assert_eq!(
                span.tag_value("task"),
                Some(&TagValue::I64(task)),
                "{}",
                span.name()
            );
        }
    }
}
