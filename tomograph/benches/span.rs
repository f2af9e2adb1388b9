//! Span hot path, side by side in one run: tomograph, fastrace (no-op reporter), `tracing`
//! with a bare `Registry`, and `tracing` + `tracing-opentelemetry` (batch processor, no-op
//! exporter). Every implementation runs the same workload; iterations are timed in chunks
//! of 256 under a fresh root so that no implementation accumulates unbounded state.
//!
//! Run: `cargo bench -p tomograph --bench span`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry_sdk::trace::Sampler;
use tomograph::TraceToken;
use tomograph_test_support::bench::peers::{
    chunked, chunked_by, install_fastrace, keep, otel_subscriber, tomograph_root,
};
use tomograph_test_support::bench::{
    Batch, added_costs, bench_pairs, install_tomograph, interleaved_ratios, process_cpu_time,
    thread_cpu_time,
};

fn fastrace_root(body: &mut dyn FnMut()) {
    let root = fastrace::Span::root("root", fastrace::collector::SpanContext::random());
    let _g = root.set_local_parent();
    body();
}

/// A root and a local span inside it: where fastrace's events and properties go.
fn fastrace_span(body: &mut dyn FnMut()) {
    let root = fastrace::Span::root("root", fastrace::collector::SpanContext::random());
    let _g = root.set_local_parent();
    let _span = fastrace::local::LocalSpan::enter_with_local_parent("span");
    body();
}

fn tracing_root(body: &mut dyn FnMut()) {
    let root = tracing::info_span!(parent: None, "root", key = tracing::field::Empty);
    let _e = root.enter();
    body();
}

/// The SQL tracer and interned statement the statement-span measurements use.
fn sql_statement() -> (tomograph::sql::SqlTracer, tomograph::sql::SqlStatement) {
    let db = tomograph::sql::SqlTracer::builder(tomograph::sql::DbSystem::Sqlite).build();
    let statement = db.statement("SELECT name FROM users WHERE id = ?1");
    (db, statement)
}

fn benches(c: &mut Criterion) {
    install_tomograph();
    install_fastrace();
    let registry = tracing_subscriber::registry();
    let otel = otel_subscriber(Sampler::AlwaysOn);
    let otel_off = otel_subscriber(Sampler::AlwaysOff);
    let registry = tracing::Dispatch::new(registry);
    let otel = tracing::Dispatch::new(otel);
    let otel_off = tracing::Dispatch::new(otel_off);

    interleaved();

    let mut g = c.benchmark_group("child_span");
    g.bench_function("tomograph", |b| {
        b.iter_custom(|n| chunked(n, tomograph_root, || keep(tomograph::span("child").start())))
    });
    g.bench_function("fastrace", |b| {
        b.iter_custom(|n| {
            chunked(n, fastrace_root, || {
                keep(fastrace::local::LocalSpan::enter_with_local_parent("child"))
            })
        })
    });
    g.bench_function("tracing_registry", |b| {
        tracing::dispatcher::with_default(&registry, || {
            b.iter_custom(|n| {
                chunked(n, tracing_root, || {
                    keep(tracing::info_span!("child").entered())
                })
            })
        })
    });
    g.bench_function("tracing_opentelemetry", |b| {
        tracing::dispatcher::with_default(&otel, || {
            b.iter_custom(|n| {
                chunked(n, tracing_root, || {
                    keep(tracing::info_span!("child").entered())
                })
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("root_span");
    g.bench_function("tomograph", |b| {
        b.iter(|| keep(tomograph::span("root").root().start()))
    });
    g.bench_function("fastrace", |b| {
        b.iter(|| {
            keep(fastrace::Span::root(
                "root",
                fastrace::collector::SpanContext::random(),
            ))
        })
    });
    g.bench_function("tracing_registry", |b| {
        tracing::dispatcher::with_default(&registry, || {
            b.iter(|| keep(tracing::info_span!(parent: None, "root").entered()))
        })
    });
    g.bench_function("tracing_opentelemetry", |b| {
        tracing::dispatcher::with_default(&otel, || {
            b.iter(|| keep(tracing::info_span!(parent: None, "root").entered()))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("annotate");
    g.bench_function("tomograph", |b| {
        b.iter_custom(|n| chunked(n, tomograph_root, || tomograph::annotate("event")))
    });
    g.bench_function("fastrace", |b| {
        b.iter_custom(|n| {
            chunked(n, fastrace_span, || {
                fastrace::local::LocalSpan::add_event(fastrace::Event::new("event"))
            })
        })
    });
    g.bench_function("tracing_opentelemetry", |b| {
        tracing::dispatcher::with_default(&otel, || {
            b.iter_custom(|n| chunked(n, tracing_root, || tracing::info!("event")))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("tag");
    g.bench_function("tomograph", |b| {
        b.iter_custom(|n| chunked(n, tomograph_root, || tomograph::tag("key", 42)))
    });
    g.bench_function("tomograph_lazy", |b| {
        b.iter_custom(|n| chunked(n, tomograph_root, || tomograph::tag_with(|| ("key", 42))))
    });
    g.bench_function("fastrace", |b| {
        b.iter_custom(|n| {
            chunked(n, fastrace_span, || {
                fastrace::local::LocalSpan::add_property(|| ("key", "42"))
            })
        })
    });
    g.bench_function("tracing_opentelemetry", |b| {
        tracing::dispatcher::with_default(&otel, || {
            b.iter_custom(|n| {
                chunked(n, tracing_root, || {
                    tracing::Span::current().record("key", 42);
                })
            })
        })
    });
    g.finish();

    let unsampled = TraceToken::new(
        tomograph::TraceId::random(false),
        tomograph::SpanId::random(),
        false,
    );
    let mut g = c.benchmark_group("unsampled_span");
    g.bench_function("tomograph", |b| {
        let _root = tomograph::span("unsampled root")
            .child_of(unsampled)
            .start();
        b.iter(|| keep(tomograph::span("child").start()))
    });
    g.bench_function("fastrace", |b| {
        let root = fastrace::Span::root(
            "root",
            fastrace::collector::SpanContext::random().sampled(false),
        );
        let _g = root.set_local_parent();
        b.iter(|| keep(fastrace::local::LocalSpan::enter_with_local_parent("child")))
    });
    g.bench_function("tracing_opentelemetry", |b| {
        tracing::dispatcher::with_default(&otel_off, || {
            b.iter_custom(|n| {
                chunked(n, tracing_root, || {
                    keep(tracing::info_span!("child").entered())
                })
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("disabled");
    g.bench_function("tomograph", |b| {
        tomograph::set_enabled(false);
        b.iter(|| keep(tomograph::span("child").start()));
        tomograph::set_enabled(true);
    });
    g.bench_function("tracing_no_subscriber", |b| {
        tracing::dispatcher::with_default(&tracing::Dispatch::none(), || {
            b.iter(|| keep(tracing::info_span!("child").entered()))
        })
    });
    g.finish();

    // A SQL statement's span (interned statement, rows counted) beside a bare detached span:
    // the rows to profile; the interleaved line above is the number to read.
    let (db, statement) = sql_statement();
    let mut g = c.benchmark_group("statement_span");
    g.bench_function("bare_detached", |b| {
        b.iter_custom(|n| {
            chunked(n, tomograph_root, || {
                keep(tomograph::span("SELECT users").start_detached())
            })
        })
    });
    g.bench_function("statement", |b| {
        b.iter_custom(|n| {
            chunked(n, tomograph_root, || {
                db.start_statement(std::hint::black_box(&statement))
                    .finish_with_rows(1)
            })
        })
    });
    g.finish();

    let stats = tomograph::stats();
    eprintln!(
        "tomograph reporter: accepted {} dropped {} (spans dropped under overload are counted, not hidden)",
        stats.accepted, stats.dropped
    );
}

/// Criterion runs its rows seconds apart, and the load of a shared 2-core machine drifts in
/// between: these lines alternate batches of the two sides (ABBA, with an A/A control) and
/// report per-pair ratios — the numbers the targets of DESIGN.md §9 are read from.
fn interleaved() {
    const BATCH: u64 = 256 * 40;
    let pairs = bench_pairs(60);
    // Each arm: the scope its batch runs in (a root, or none) and the operation measured.
    type Arm = (fn(&mut dyn FnMut()), fn());
    fn no_scope(body: &mut dyn FnMut()) {
        body()
    }
    let fastrace_child: Arm = (fastrace_root, || {
        keep(fastrace::local::LocalSpan::enter_with_local_parent("child"))
    });
    let tomograph_child: Arm = (tomograph_root, || keep(tomograph::span("child").start()));
    let tomograph_root_span: Arm = (no_scope, || keep(tomograph::span("root").root().start()));
    let fastrace_root_span: Arm = (no_scope, || {
        keep(fastrace::Span::root(
            "root",
            fastrace::collector::SpanContext::random(),
        ))
    });
    // Wall time; and the application thread's CPU clock: what the span costs the thread that
    // makes it, leaving out what background threads (either tracer's collector, working off
    // the other arm's spans on a 2-core machine) take meanwhile.
    let wall = |(scope, op): Arm| -> Batch<'static> { Box::new(move || chunked(BATCH, scope, op)) };
    let on_cpu = |(scope, op): Arm| -> Batch<'static> {
        Box::new(move || chunked_by(BATCH, scope, op, thread_cpu_time))
    };
    let line = |title: &str,
                clock: &dyn Fn(Arm) -> Batch<'static>,
                baseline: Arm,
                (name, arm): (&str, Arm)| {
        eprintln!(
            "{title}: {}",
            interleaved_ratios(pairs, clock(baseline), vec![(name, clock(arm))])
        );
    };
    line(
        "child span, tomograph / fastrace",
        &wall,
        fastrace_child,
        ("tomograph", tomograph_child),
    );
    line(
        "child span, tomograph / fastrace, application thread's CPU time",
        &on_cpu,
        fastrace_child,
        ("tomograph", tomograph_child),
    );
    // And every thread's CPU time until the spans reached the no-op sink (each tracer's
    // flush): the whole cost, background work included.
    let delivered = |(scope, op): Arm, drain: fn()| -> Batch<'static> {
        Box::new(move || {
            let start = process_cpu_time();
            chunked(BATCH, scope, op);
            drain();
            process_cpu_time().saturating_sub(start)
        })
    };
    eprintln!(
        "child span, tomograph / fastrace, every thread's CPU time to delivery: {}",
        interleaved_ratios(
            pairs,
            delivered(fastrace_child, fastrace::flush),
            vec![(
                "tomograph",
                delivered(tomograph_child, || {
                    let _ = tomograph::flush(Duration::from_secs(10));
                }),
            )],
        )
    );
    line(
        "root span, fastrace / tomograph",
        &wall,
        tomograph_root_span,
        ("fastrace", fastrace_root_span),
    );
    line(
        "root span, fastrace / tomograph, application thread's CPU time",
        &on_cpu,
        tomograph_root_span,
        ("fastrace", fastrace_root_span),
    );
    fn unsampled_root(body: &mut dyn FnMut()) {
        let unsampled = TraceToken::new(
            tomograph::TraceId::random(false),
            tomograph::SpanId::random(),
            false,
        );
        let _root = tomograph::span("unsampled root")
            .child_of(unsampled)
            .start();
        body();
    }
    fn fastrace_unsampled_root(body: &mut dyn FnMut()) {
        let root = fastrace::Span::root(
            "root",
            fastrace::collector::SpanContext::random().sampled(false),
        );
        let _g = root.set_local_parent();
        body();
    }
    line(
        "unsampled child span, tomograph / fastrace",
        &wall,
        (fastrace_unsampled_root, fastrace_child.1),
        ("tomograph", (unsampled_root, tomograph_child.1)),
    );

    // An SQL statement's span (interned statement, rows counted) against a bare span.
    let (db, statement) = sql_statement();
    let cost = added_costs(
        "SQL statement span over a bare span (target: ≤ +25 ns)",
        pairs,
        u32::try_from(BATCH).unwrap_or(u32::MAX),
        wall((tomograph_root, || {
            keep(tomograph::span("SELECT users").start_detached())
        })),
        vec![(
            "statement span",
            Box::new(|| {
                chunked(BATCH, tomograph_root, || {
                    db.start_statement(std::hint::black_box(&statement))
                        .finish_with_rows(1)
                })
            }),
        )],
    );
    cost.print("statement span");
}

criterion_group! {
    name = span;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(span);
