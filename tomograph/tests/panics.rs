//! A panic cannot poison a thread under the seed API: the frames `start`, `start_from` and
//! `start_http` leave when a pooled job panics are closed (`error=panicked`) and reported by
//! the thread's next request, or by `reset_thread`; live spans are never closed under their
//! owners. Threads of a pool are modelled by one long-lived thread running jobs inside
//! `catch_unwind`, as thread pools and runtimes do.
#![allow(clippy::unwrap_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tomograph::testing::{memory_tracer, wait_for_trace};
use tomograph::{MemoryBackend, Span, SpanId, TraceId, TraceToken};

const WAIT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

/// One worker thread of a pool: runs each job inside `catch_unwind`, and survives panics.
struct Worker {
    jobs: Option<mpsc::Sender<(Job, mpsc::Sender<bool>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn new() -> Self {
        let (jobs, queue) = mpsc::channel::<(Job, mpsc::Sender<bool>)>();
        let thread = std::thread::spawn(move || {
            for (job, done) in queue {
                let panicked = catch_unwind(AssertUnwindSafe(job)).is_err();
                done.send(panicked).unwrap();
            }
        });
        Self {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Runs `job` on the worker; true when it panicked.
    fn run(&self, job: impl FnOnce() + Send + 'static) -> bool {
        let (done, finished) = mpsc::channel();
        self.jobs
            .as_ref()
            .unwrap()
            .send((Box::new(job), done))
            .unwrap();
        finished.recv().unwrap()
    }

    /// Runs `job` on the worker and returns what it computed (it must not panic).
    fn call<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> R {
        let out = Arc::new(Mutex::new(None));
        let slot = out.clone();
        assert!(!self.run(move || *slot.lock().unwrap() = Some(job())));
        let value = out.lock().unwrap().take();
        value.unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// What a job saw of its thread's stack.
#[derive(Clone, Copy, Debug)]
struct Seen {
    depth_before: usize,
    depth_after_start: usize,
    token: TraceToken,
}

fn error_tag(span: &Span) -> Option<String> {
    span.tag_value("error").map(ToString::to_string)
}

fn only_span(memory: &MemoryBackend, trace: TraceId) -> Span {
    let spans = wait_for_trace(memory, trace, 1, WAIT);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    spans.into_iter().next().unwrap()
}

fn by_name<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

fn remote(sampled: bool) -> TraceToken {
    TraceToken::new(TraceId::random(false), SpanId::random(), sampled)
}

// ---- start ----------------------------------------------------------------------------------

#[test]
fn a_job_that_panics_under_start_is_closed_by_the_next_jobs_start() {
    let memory = memory_tracer();
    let worker = Worker::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    const PANICS: usize = 25;
    for i in 0..PANICS {
        let seen = seen.clone();
        let panicked = worker.run(move || {
            let depth_before = tomograph::stack_depth();
            tomograph::start("worker", format!("job {i}"), "127.0.0.1", 0);
            seen.lock().unwrap().push(Seen {
                depth_before,
                depth_after_start: tomograph::stack_depth(),
                token: tomograph::get_trace_info().unwrap(),
            });
            panic!("job {i} failed");
        });
        assert!(panicked);
    }
    let clean = worker.call(|| {
        let depth_before = tomograph::stack_depth();
        tomograph::start("worker", "clean job", "127.0.0.1", 0);
        let seen = Seen {
            depth_before,
            depth_after_start: tomograph::stack_depth(),
            token: tomograph::get_trace_info().unwrap(),
        };
        tomograph::stop("clean job").unwrap();
        (seen, tomograph::stack_depth())
    });
    let (clean, depth_at_end) = clean;
    assert_eq!(depth_at_end, 0, "nothing is left on the worker");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), PANICS);
    for (i, job) in seen.iter().chain([&clean]).enumerate() {
        let left = usize::from(i > 0);
        assert_eq!(
            job.depth_before, left,
            "job {i}: only the previous job's dead span waits for the next request"
        );
        assert_eq!(
            job.depth_after_start, 1,
            "job {i}: the job's own span is all there is: the stack does not grow"
        );
    }
    for (i, job) in seen.iter().enumerate() {
        let span = only_span(&memory, job.token.trace_id());
        assert_eq!(span.name(), format!("job {i}"));
        assert_eq!(span.id(), job.token.span_id());
        assert_eq!(
            span.parent_id(),
            None,
            "job {i} is a root of its own trace, not a child of job {}",
            i.wrapping_sub(1)
        );
        assert_eq!(error_tag(&span).as_deref(), Some("panicked"), "job {i}");
        assert!(span.annotations().iter().any(|n| n.value == "error"));
    }
    let span = only_span(&memory, clean.token.trace_id());
    assert_eq!(span.parent_id(), None);
    assert_eq!(error_tag(&span), None, "the clean job did not fail");
}

#[test]
fn nested_starts_left_by_a_panic_are_closed_innermost_first() {
    let memory = memory_tracer();
    let worker = Worker::new();
    let trace = Arc::new(Mutex::new(None));
    let slot = trace.clone();
    assert!(worker.run(move || {
        tomograph::start("worker", "request", "", 0);
        *slot.lock().unwrap() = tomograph::get_trace_info();
        tomograph::start("worker", "query", "", 0);
        tomograph::start("worker", "decode", "", 0);
        panic!("bad row");
    }));
    let trace = trace.lock().unwrap().unwrap().trace_id();
    // The next request comes later: the dead spans end when the panic began, not then.
    std::thread::sleep(Duration::from_millis(20));
    let (depths, next_request) = worker.call(|| {
        let next_request = tomograph::Timestamp::now();
        let before = tomograph::stack_depth();
        tomograph::start("worker", "next", "", 0);
        let after = tomograph::stack_depth();
        tomograph::stop("next").unwrap();
        ((before, after), next_request)
    });
    assert_eq!(depths, (3, 1));
    let spans = wait_for_trace(&memory, trace, 3, WAIT);
    assert_eq!(spans.len(), 3);
    let request = by_name(&spans, "request");
    let query = by_name(&spans, "query");
    let decode = by_name(&spans, "decode");
    assert_eq!(query.parent_id(), Some(request.id()));
    assert_eq!(decode.parent_id(), Some(query.id()));
    for span in [request, query, decode] {
        assert_eq!(
            error_tag(span).as_deref(),
            Some("panicked"),
            "{}",
            span.name()
        );
    }
    assert!(decode.end() <= query.end() && query.end() <= request.end());
    assert!(
        request.end() < next_request,
        "{:?} ends at the panic, before {next_request:?}",
        request.end()
    );
}

#[test]
fn a_panic_while_the_stack_is_busy_is_settled_too() {
    // The panic begins while the stack is busy (a user's conversion into a tag value, the one
    // kind of user code that runs on the span): the hook sees only the innermost frame, which
    // is enough to find the frames the panic left. And it begins outside the borrow, in a
    // lazy tag's closure or an error message's `Display`.
    struct Broken;
    impl From<Broken> for tomograph::TagValue {
        fn from(_: Broken) -> Self {
            panic!("the tag value failed")
        }
    }
    impl std::fmt::Display for Broken {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("the error message failed")
        }
    }
    for case in ["busy", "lazy tag", "error message"] {
        let memory = memory_tracer();
        let worker = Worker::new();
        let trace = Arc::new(Mutex::new(None));
        let slot = trace.clone();
        assert!(worker.run(move || {
            tomograph::start("worker", "outer", "", 0);
            *slot.lock().unwrap() = tomograph::get_trace_info();
            tomograph::start("worker", "tagged", "", 0);
            match case {
                "busy" => tomograph::tag("broken", Broken),
                "lazy tag" => {
                    tomograph::tag_with(|| -> (&str, i64) { panic!("tag computation failed") });
                }
                _ => tomograph::record_error(Broken),
            }
        }));
        settled_after_the_panic(&memory, &worker, &trace);
    }
}

/// The next job on `worker` closes the two frames the panic left, reported `panicked`.
fn settled_after_the_panic(
    memory: &MemoryBackend,
    worker: &Worker,
    trace: &Mutex<Option<TraceToken>>,
) {
    let trace = trace.lock().unwrap().unwrap().trace_id();
    let depths = worker.call(|| {
        let before = tomograph::stack_depth();
        tomograph::start("worker", "next", "", 0);
        let after = tomograph::stack_depth();
        tomograph::stop("next").unwrap();
        (before, after)
    });
    assert_eq!(depths, (2, 1));
    let spans = wait_for_trace(memory, trace, 2, WAIT);
    for name in ["outer", "tagged"] {
        assert_eq!(
            error_tag(by_name(&spans, name)).as_deref(),
            Some("panicked")
        );
    }
}

#[test]
fn start_from_a_token_of_another_trace_starts_clean_after_a_panic() {
    let memory = memory_tracer();
    let worker = Worker::new();
    // Messages from other services: sampled and unsampled ones (an unsampled frame records
    // nothing but must not stay on the stack either).
    let messages: Vec<TraceToken> = (0..12).map(|i| remote(i % 3 != 2)).collect();
    let mut depths = Vec::new();
    for (i, &message) in messages.iter().enumerate() {
        let out = Arc::new(Mutex::new(None));
        let slot = out.clone();
        assert!(worker.run(move || {
            let before = tomograph::stack_depth();
            tomograph::start_from(Some(message), "consumer", format!("message {i}"), "", 0);
            *slot.lock().unwrap() = Some((before, tomograph::stack_depth()));
            panic!("cannot handle message {i}");
        }));
        depths.push(out.lock().unwrap().unwrap());
    }
    assert_eq!(worker.call(tomograph::reset_thread), 1, "the last one");
    for (i, (before, after)) in depths.into_iter().enumerate() {
        assert_eq!((before, after), (usize::from(i > 0), 1), "message {i}");
    }
    for (i, message) in messages.iter().enumerate() {
        if !message.sampled() {
            tomograph::flush(WAIT).unwrap();
            assert!(memory.trace(message.trace_id()).is_empty());
            continue;
        }
        let span = only_span(&memory, message.trace_id());
        assert_eq!(span.name(), format!("message {i}"));
        assert_eq!(span.parent_id(), Some(message.span_id()));
        assert!(span.has_remote_parent());
        assert_eq!(error_tag(&span).as_deref(), Some("panicked"));
    }
}

#[test]
fn a_guard_around_the_jobs_outlives_their_panics() {
    let memory = memory_tracer();
    let (trace, depths) = std::thread::spawn(|| {
        let pool = tomograph::span("worker loop").root().start();
        let mut depths = Vec::new();
        for i in 0..5 {
            let job = catch_unwind(|| {
                tomograph::start("worker", format!("job {i}"), "", 0);
                panic!("job {i}");
            });
            assert!(job.is_err());
            depths.push(tomograph::stack_depth());
        }
        tomograph::start("worker", "after", "", 0);
        depths.push(tomograph::stack_depth());
        tomograph::stop("after").unwrap();
        let trace = pool.token().unwrap().trace_id();
        drop(pool);
        depths.push(tomograph::stack_depth());
        (trace, depths)
    })
    .join()
    .unwrap();
    assert_eq!(depths, [2, 2, 2, 2, 2, 2, 0]);
    let spans = wait_for_trace(&memory, trace, 7, WAIT);
    assert_eq!(spans.len(), 7);
    let pool = by_name(&spans, "worker loop");
    assert_eq!(
        error_tag(pool),
        None,
        "the pool's own span is alive and well"
    );
    for i in 0..5 {
        let job = by_name(&spans, &format!("job {i}"));
        assert_eq!(job.parent_id(), Some(pool.id()));
        assert_eq!(error_tag(job).as_deref(), Some("panicked"));
    }
    let after = by_name(&spans, "after");
    assert_eq!(after.parent_id(), Some(pool.id()));
    assert_eq!(error_tag(after), None);
}

#[test]
fn a_request_opened_by_a_guard_keeps_its_span_when_it_catches_a_panic_itself() {
    let memory = memory_tracer();
    let trace = std::thread::spawn(|| {
        let request = tomograph::span("request").root().start();
        let risky = catch_unwind(|| {
            tomograph::start("svc", "risky step", "", 0);
            panic!("risky step failed");
        });
        assert!(risky.is_err());
        tomograph::start("svc", "next step", "", 0);
        assert_eq!(tomograph::stack_depth(), 2, "request, next step");
        tomograph::stop("next step").unwrap();
        request.token().unwrap().trace_id()
    })
    .join()
    .unwrap();
    let spans = wait_for_trace(&memory, trace, 3, WAIT);
    let request = by_name(&spans, "request");
    let risky = by_name(&spans, "risky step");
    let next = by_name(&spans, "next step");
    assert_eq!(error_tag(request), None);
    assert_eq!(error_tag(risky).as_deref(), Some("panicked"));
    assert_eq!(risky.parent_id(), Some(request.id()));
    assert_eq!(next.parent_id(), Some(request.id()), "still in the request");
    assert_eq!(error_tag(next), None);
}

#[test]
fn spans_opened_after_a_panic_are_never_closed_under_their_owners() {
    let memory = memory_tracer();
    let worker = Worker::new();
    let dead = Arc::new(Mutex::new(None));
    let slot = dead.clone();
    assert!(worker.run(move || {
        tomograph::start("worker", "job 1", "", 0);
        *slot.lock().unwrap() = tomograph::get_trace_info();
        panic!("job 1");
    }));
    let dead = dead.lock().unwrap().unwrap();
    // Job 2 is opened by a guard: its spans sit above job 1's dead frame, which waits.
    let (job2, depth) = worker.call(|| {
        let job = tomograph::span("job 2").root().start();
        tomograph::start("worker", "query", "", 0);
        let depth = tomograph::stack_depth();
        tomograph::stop("query").unwrap();
        (job.token().unwrap(), depth)
    });
    assert_eq!(depth, 3, "job 1 (dead), job 2, query");
    let job3 = worker.call(|| {
        tomograph::start("worker", "job 3", "", 0);
        let depth = tomograph::stack_depth();
        tomograph::stop("job 3").unwrap();
        (tomograph::stack_depth(), depth)
    });
    assert_eq!(job3, (0, 1), "job 3 closed job 1");

    let job1 = only_span(&memory, dead.trace_id());
    assert_eq!(error_tag(&job1).as_deref(), Some("panicked"));
    let spans = wait_for_trace(&memory, job2.trace_id(), 2, WAIT);
    let job2_span = by_name(&spans, "job 2");
    let query = by_name(&spans, "query");
    assert_eq!(query.parent_id(), Some(job2_span.id()));
    assert_eq!(job2_span.parent_id(), None);
    assert_eq!(error_tag(job2_span), None);
    assert_eq!(error_tag(query), None);
}

#[test]
fn reset_thread_closes_everything_and_says_how_much() {
    let memory = memory_tracer();
    let worker = Worker::new();
    // No panic: a job that returned without its stops.
    let (closed, trace) = worker.call(|| {
        tomograph::start("worker", "outer", "", 0);
        tomograph::start("worker", "inner", "", 0);
        let trace = tomograph::get_trace_info().unwrap().trace_id();
        (tomograph::reset_thread(), trace)
    });
    assert_eq!(closed, 2);
    let spans = wait_for_trace(&memory, trace, 2, WAIT);
    let outer = by_name(&spans, "outer");
    let inner = by_name(&spans, "inner");
    assert_eq!(inner.parent_id(), Some(outer.id()));
    for span in [outer, inner] {
        assert_eq!(error_tag(span).as_deref(), Some("abandoned"));
    }

    // After a panic: what the panic left is "panicked", what came after it "abandoned".
    let dead = Arc::new(Mutex::new(None));
    let slot = dead.clone();
    assert!(worker.run(move || {
        tomograph::start("worker", "crashed", "", 0);
        *slot.lock().unwrap() = tomograph::get_trace_info();
        panic!("crash");
    }));
    let crashed = dead.lock().unwrap().unwrap();
    let (closed, leaked, depth) = worker.call(|| {
        let leaked = tomograph::span("leaked guard").root().start();
        let token = leaked.token().unwrap();
        std::mem::forget(leaked);
        (tomograph::reset_thread(), token, tomograph::stack_depth())
    });
    assert_eq!((closed, depth), (2, 0));
    let crashed = only_span(&memory, crashed.trace_id());
    assert_eq!(error_tag(&crashed).as_deref(), Some("panicked"));
    let leaked = only_span(&memory, leaked.trace_id());
    assert_eq!(error_tag(&leaked).as_deref(), Some("abandoned"));

    assert_eq!(worker.call(tomograph::reset_thread), 0);
    // The pending panic was settled by the reset: the next start is a plain root.
    let (closed, depth) = worker.call(|| {
        tomograph::start("worker", "fresh", "", 0);
        let depth = tomograph::stack_depth();
        tomograph::stop("fresh").unwrap();
        (tomograph::reset_thread(), depth)
    });
    assert_eq!((closed, depth), (0, 1));
}

// ---- start_http and the tower layer ---------------------------------------------------------

#[cfg(all(feature = "tower", feature = "reqwest"))]
mod over_http {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use ::http::{HeaderMap, Request, Response};
    use axum::body::Bytes;
    use http_body_util::{BodyExt, Full};
    use tomograph::Kind;
    use tomograph::http::{TraceLayer, start_http};
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;

    fn request_from(parent: Option<TraceToken>, path: &str) -> Request<()> {
        let mut headers = HeaderMap::new();
        if let Some(parent) = parent {
            tomograph::propagation::inject(parent, &mut headers);
        }
        let mut request = Request::get(path).body(()).unwrap();
        *request.headers_mut() = headers;
        request
    }

    /// The parent of a request's server span, and the thread's stack depth inside its
    /// handler, as the handler saw them.
    fn observed() -> String {
        let token = tomograph::get_trace_info().unwrap();
        format!("{} {}", tomograph::stack_depth(), token.trace_id())
    }

    #[test]
    fn a_request_that_panics_under_start_http_is_closed_by_the_next_request() {
        let memory = memory_tracer();
        let worker = Worker::new();
        let mut parents = Vec::new();
        for i in 0..10 {
            // Every third request comes with no trace: a root of its own.
            let parent = (i % 3 != 1).then(|| remote(true));
            let out = Arc::new(Mutex::new(None));
            let slot = out.clone();
            assert!(worker.run(move || {
                let before = tomograph::stack_depth();
                start_http("api", "http response", &request_from(parent, "/crash"));
                let token = tomograph::get_trace_info().unwrap();
                *slot.lock().unwrap() = Some((before, tomograph::stack_depth(), token));
                panic!("handler {i}");
            }));
            let (before, after, token) = out.lock().unwrap().unwrap();
            assert_eq!((before, after), (usize::from(i > 0), 1), "request {i}");
            if let Some(parent) = parent {
                assert_eq!(token.trace_id(), parent.trace_id());
            }
            parents.push((parent, token));
        }
        let clean = worker.call(|| {
            let parent = remote(true);
            start_http("api", "http response", &request_from(Some(parent), "/ok"));
            let depth = tomograph::stack_depth();
            tomograph::stop("http response").unwrap();
            (parent, depth, tomograph::stack_depth())
        });
        assert_eq!((clean.1, clean.2), (1, 0));
        for (i, (parent, token)) in parents.iter().enumerate() {
            let span = only_span(&memory, token.trace_id());
            assert_eq!(span.kind(), Some(Kind::Server));
            assert_eq!(span.parent_id(), parent.map(|p| p.span_id()), "request {i}");
            assert_eq!(error_tag(&span).as_deref(), Some("panicked"), "request {i}");
        }
        let span = only_span(&memory, clean.0.trace_id());
        assert_eq!(span.parent_id(), Some(clean.0.span_id()));
        assert_eq!(error_tag(&span), None);
    }

    #[test]
    fn the_tower_layer_starts_each_request_clean_after_panics() {
        let memory = memory_tracer();
        let worker = Worker::new();
        let service = || {
            TraceLayer::new().layer(service_fn(|request: Request<()>| async move {
                if request.uri().path() == "/panic" {
                    // A seed span inside the handler: the layer's future owns it too.
                    tomograph::start("api", "inside the handler", "", 0);
                    if std::hint::black_box(true) {
                        panic!("handler bug");
                    }
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(observed()))))
            }))
        };
        let oneshot = move |request: Request<()>| -> String {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async move {
                let response = service().oneshot(request).await.unwrap();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                String::from_utf8(body.to_vec()).unwrap()
            })
        };

        // A legacy handler on the same worker thread poisons it through start_http.
        let legacy = remote(true);
        assert!(worker.run(move || {
            start_http("legacy", "http response", &request_from(Some(legacy), "/"));
            panic!("legacy handler");
        }));
        for round in 0..4 {
            let parent = remote(true);
            let seen = worker.call(move || {
                (
                    oneshot(request_from(Some(parent), "/ok")),
                    tomograph::stack_depth(),
                )
            });
            assert_eq!(
                seen,
                (format!("1 {}", parent.trace_id()), 0),
                "round {round}: the server span is all there is"
            );
            let span = only_span(&memory, parent.trace_id());
            assert_eq!(span.parent_id(), Some(parent.span_id()));
            assert_eq!(error_tag(&span), None);

            // A handler behind the layer panics: nothing of it is left behind.
            let failing = remote(true);
            assert!(worker.run(move || {
                oneshot(request_from(Some(failing), "/panic"));
            }));
            assert_eq!(worker.call(tomograph::stack_depth), 0);
            let spans = wait_for_trace(&memory, failing.trace_id(), 2, WAIT);
            let server = by_name(&spans, "GET /panic");
            let inside = by_name(&spans, "inside the handler");
            assert_eq!(inside.parent_id(), Some(server.id()));
            for span in [server, inside] {
                assert_eq!(error_tag(span).as_deref(), Some("panicked"));
            }
        }
        let legacy = only_span(&memory, legacy.trace_id());
        assert_eq!(error_tag(&legacy).as_deref(), Some("panicked"));
        assert_eq!(legacy.local_endpoint().service_name(), "legacy");
    }

    /// A one-thread server: a current-thread runtime runs every connection on it, and a
    /// connection whose handler panics dies alone (the runtime catches the panic).
    fn serve() -> SocketAddr {
        use hyper::server::conn::http1;
        use hyper_util::rt::TokioIo;

        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let layered = TraceLayer::new().layer(service_fn(
                    |request: Request<hyper::body::Incoming>| async move {
                        if request.uri().path() == "/layer/panic" {
                            panic!("layered handler bug");
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(observed()))))
                    },
                ));
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let layered = layered.clone();
                    let service = hyper::service::service_fn(
                        move |request: Request<hyper::body::Incoming>| {
                            let layered = layered.clone();
                            async move {
                                let path = request.uri().path().to_owned();
                                if path.starts_with("/layer/") {
                                    let response = layered.oneshot(request).await?;
                                    let body = response.into_body().collect().await?.to_bytes();
                                    return Ok::<_, Infallible>(Response::new(Full::new(body)));
                                }
                                // The seed's way: start_http, stop.
                                start_http("legacy", "http response", &request);
                                if path == "/legacy/panic" {
                                    panic!("legacy handler bug");
                                }
                                let body = observed();
                                tomograph::stop("http response").unwrap();
                                Ok(Response::new(Full::new(Bytes::from(body))))
                            }
                        },
                    );
                    tokio::spawn(
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                    );
                }
            });
        });
        rx.recv().unwrap()
    }

    #[test]
    fn a_server_thread_serves_clean_requests_after_panicking_ones_over_loopback() {
        let memory = memory_tracer();
        let addr = serve();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let get = |path: &'static str, parent: TraceToken| {
            let client = client.clone();
            async move {
                let mut headers = HeaderMap::new();
                tomograph::propagation::inject(parent, &mut headers);
                let response = client
                    .get(format!("http://{addr}{path}"))
                    .headers(headers)
                    .send()
                    .await;
                match response {
                    Ok(response) => Some(response.text().await.unwrap()),
                    Err(_) => None, // the connection died with its handler
                }
            }
        };
        let mut failed = Vec::new();
        let mut served = Vec::new();
        rt.block_on(async {
            for path in ["/legacy/ok", "/layer/ok"] {
                for crash in ["/legacy/panic", "/layer/panic"] {
                    let parent = remote(true);
                    assert_eq!(get(crash, parent).await, None, "{crash} answered");
                    failed.push((crash, parent));
                    let parent = remote(true);
                    let seen = get(path, parent).await;
                    assert_eq!(
                        seen,
                        Some(format!("1 {}", parent.trace_id())),
                        "{path} after {crash}: the server span is the only frame"
                    );
                    served.push(parent);
                }
            }
        });
        for parent in served {
            let span = only_span(&memory, parent.trace_id());
            assert_eq!(span.kind(), Some(Kind::Server));
            assert_eq!(span.parent_id(), Some(parent.span_id()));
            assert_eq!(error_tag(&span), None);
        }
        for (path, parent) in failed {
            let span = only_span(&memory, parent.trace_id());
            assert_eq!(span.parent_id(), Some(parent.span_id()), "{path}");
            assert_eq!(error_tag(&span).as_deref(), Some("panicked"), "{path}");
        }
    }
}

// ---- a thread that ends with seed spans open ------------------------------------------------

#[test]
fn a_thread_killed_by_a_panic_reports_the_seed_spans_it_left_open() {
    let memory = memory_tracer();
    let (tokens, received) = mpsc::channel();
    let before = tomograph::Timestamp::now();
    let died = std::thread::spawn(move || {
        tomograph::start("worker", "job", "127.0.0.1", 0);
        let job = tomograph::get_trace_info().unwrap();
        tomograph::start("worker", "step", "127.0.0.1", 0);
        tokens
            .send((job, tomograph::get_trace_info().unwrap()))
            .unwrap();
        panic!("the job kills its thread");
    })
    .join();
    let after = tomograph::Timestamp::now();
    assert!(died.is_err(), "the thread died of its panic");
    let (job, step) = received.recv().unwrap();
    let spans = wait_for_trace(&memory, job.trace_id(), 2, WAIT);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let (job_span, step_span) = (by_name(&spans, "job"), by_name(&spans, "step"));
    assert_eq!(job_span.id(), job.span_id());
    assert_eq!(step_span.parent_id(), Some(job.span_id()));
    assert_eq!(step_span.id(), step.span_id());
    for span in [job_span, step_span] {
        assert_eq!(error_tag(span).as_deref(), Some("panicked"), "{span:#?}");
        let end = span.end();
        assert!(before <= end && end <= after, "{span:#?}");
    }
    assert!(step_span.end() <= job_span.end());
}

#[test]
fn a_thread_that_returns_with_a_start_open_reports_it_abandoned() {
    let memory = memory_tracer();
    let token = std::thread::spawn(|| {
        tomograph::start("worker", "forgotten", "127.0.0.1", 0);
        tomograph::get_trace_info().unwrap()
        // returns without stop("forgotten")
    })
    .join()
    .unwrap();
    let span = only_span(&memory, token.trace_id());
    assert_eq!(span.name(), "forgotten");
    assert_eq!(error_tag(&span).as_deref(), Some("abandoned"));
}
