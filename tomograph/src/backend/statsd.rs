//! Statsd backend — being written (issue 3). Placeholder so the crate compiles.
use crate::{Backend, BackendError, ConfigError, EnvLookup, Span};
/// Placeholder.
#[derive(Debug)]
pub struct StatsdBackend;
impl StatsdBackend {
    /// Placeholder.
    pub fn from_lookup(_env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        Ok(Self)
    }
}
impl Backend for StatsdBackend {
    fn name(&self) -> &str {
        "statsd"
    }
    fn send(&mut self, _spans: &[Span]) -> Result<(), BackendError> {
        Err(BackendError::permanent("not written yet"))
    }
}
