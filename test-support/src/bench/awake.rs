//! Keeping a virtual machine's idle CPUs awake while a benchmark measures work that hops
//! between threads.
//!
//! A statement through sqlx's SQLite driver crosses to the connection's worker thread and
//! back; on an idle VM each hop wakes a halted vCPU (a VM exit and an interrupt), and the
//! statement measured 170–260 µs where a busy machine takes 14–20 µs — with run-to-run noise
//! wider than any tracer's cost. One busy loop per CPU at the lowest priority keeps the vCPUs
//! out of their idle state and yields to the benchmark's threads whenever they run.

use std::process::{Child, Command, Stdio};

/// Busy loops running while this lives: one per CPU, `nice -n 19`, each ending by itself
/// when the benchmark's process is gone. `TOMOGRAPH_BENCH_AWAKE=0` starts none.
///
/// ```no_run
/// let _awake = tomograph_test_support::bench::awake::CpusAwake::start();
/// // … measure …
/// ```
#[derive(Debug)]
pub struct CpusAwake {
    spinners: Vec<Child>,
}

impl CpusAwake {
    /// Starts the busy loops (none when `nice` or `sh` is missing: said on stderr).
    pub fn start() -> CpusAwake {
        if std::env::var("TOMOGRAPH_BENCH_AWAKE").is_ok_and(|v| v == "0") {
            eprintln!("CPUs left to idle (TOMOGRAPH_BENCH_AWAKE=0)");
            return CpusAwake {
                spinners: Vec::new(),
            };
        }
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let parent = std::process::id();
        let mut spinners = Vec::with_capacity(cpus);
        for _ in 0..cpus {
            // Counting in the shell, no system call; every 100 000 rounds (tens of
            // milliseconds) `kill -0`, a builtin, looks whether the benchmark is still there,
            // so that the loop ends even if the benchmark is killed before it can stop it.
            let spinner = Command::new("nice")
                .args(["-n", "19", "sh", "-c"])
                .arg(format!(
                    "while kill -0 {parent}; do i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; done"
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            match spinner {
                Ok(child) => spinners.push(child),
                Err(e) => {
                    eprintln!("CPUs left to idle: cannot start `nice -n 19 sh`: {e}");
                    break;
                }
            }
        }
        if !spinners.is_empty() {
            eprintln!(
                "{} lowest-priority busy loop(s) keep the CPUs awake (TOMOGRAPH_BENCH_AWAKE=0: none)",
                spinners.len()
            );
        }
        CpusAwake { spinners }
    }
}

impl Drop for CpusAwake {
    fn drop(&mut self) {
        for spinner in &mut self.spinners {
            let _ = spinner.kill();
            let _ = spinner.wait();
        }
    }
}
