//! The process's one tracer, for test files whose tests share it: installed once, and taken
//! in turns by tests that read its counters or switch it.

use std::sync::{Mutex, MutexGuard, OnceLock};

use tomograph::{Config, MemoryBackend};

static MEMORY: OnceLock<MemoryBackend> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());

/// Installs the tracer `configure` builds around a fresh [`MemoryBackend`] the first time it
/// is called in this process (each test file is a process of its own); returns that backend
/// every time.
///
/// Panics when another tracer was installed first: the test file is wrong, not the library.
pub fn install_once(configure: impl FnOnce(MemoryBackend) -> Config) -> MemoryBackend {
    MEMORY
        .get_or_init(|| {
            let memory = MemoryBackend::new();
            if let Err(e) = tomograph::init(configure(memory.clone())) {
                panic!("the test's tracer could not be installed: {e}");
            }
            memory
        })
        .clone()
}

/// This test's turn with the shared tracer (a panicking test does not block the others).
pub fn turn() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
