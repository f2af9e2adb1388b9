//! Spans kept in memory, for tests of your own instrumentation.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::error::BackendError;
use crate::model::{Span, TraceId};

/// Keeps every span it receives. Clones share the same store, so keep one clone to read
/// what the tracer reported.
///
/// ```
/// use tomograph::MemoryBackend;
/// let memory = MemoryBackend::new();
/// let reader = memory.clone();
/// // give `memory` to Config::builder().backend(..), run code, flush, then:
/// assert!(reader.spans().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    inner: Arc<(Mutex<Vec<Span>>, Condvar)>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Span>> {
        self.inner
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.lock().clone()
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: TraceId) -> Vec<Span> {
        self.lock()
            .iter()
            .filter(|s| s.trace_id() == trace_id)
            .cloned()
            .collect()
    }

    /// Removes and returns every span received so far.
    pub fn take(&self) -> Vec<Span> {
        std::mem::take(&mut *self.lock())
    }

    /// Waits until `ready` holds for the spans received (or `timeout` passes); returns them.
    pub fn wait_for(&self, timeout: Duration, ready: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + timeout;
        let mut spans = self.lock();
        while !ready(&spans) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            spans = match self.inner.1.wait_timeout(spans, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        spans.clone()
    }
}

impl Backend for MemoryBackend {
    fn name(&self) -> &str {
        "memory"
    }

    fn send(&mut self, spans: &[Span]) -> Result<(), BackendError> {
        self.lock().extend_from_slice(spans);
        self.inner.1.notify_all();
        Ok(())
    }
}
