//! The panic hook tomograph installs with the first seed span chains to the hook that was in
//! place: the application's hook still sees every panic. (A binary of its own: panic hooks are
//! process-wide.)
#![allow(clippy::unwrap_used)]

use std::panic::catch_unwind;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tomograph::testing::{memory_tracer, wait_for_trace};

#[test]
fn the_applications_hook_still_runs_and_panics_are_still_settled() {
    let memory = memory_tracer();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::panic::set_hook(Box::new(move |_| {
        count.fetch_add(1, Ordering::SeqCst);
    }));
    let (trace, depth) = std::thread::spawn(|| {
        let mut trace = None;
        for i in 0..3 {
            let job = catch_unwind(|| {
                tomograph::start("worker", format!("job {i}"), "", 0);
                panic!("job {i}");
            });
            assert!(job.is_err());
            if i == 0 {
                trace = Some(tomograph::get_trace_info().unwrap().trace_id());
            }
        }
        let depth = tomograph::stack_depth();
        assert_eq!(tomograph::reset_thread(), 1);
        (trace.unwrap(), depth)
    })
    .join()
    .unwrap();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "every panic reached the application's hook"
    );
    assert_eq!(depth, 1, "each job closed the one before");
    let spans = wait_for_trace(&memory, trace, 1, Duration::from_secs(10));
    assert_eq!(
        spans[0]
            .tag_value("error")
            .map(ToString::to_string)
            .as_deref(),
        Some("panicked")
    );
    let _ = std::panic::take_hook();
}
