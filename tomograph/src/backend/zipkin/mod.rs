//! Zipkin backend — being written (issue 3). Placeholder so the crate compiles.
use crate::{Backend, BackendError, ConfigError, EnvLookup, Span};
/// Placeholder.
#[derive(Debug)]
pub struct ZipkinBackend;
impl ZipkinBackend {
    /// Placeholder.
    pub fn from_lookup(_env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        Ok(Self)
    }
}
impl Backend for ZipkinBackend {
    fn name(&self) -> &str {
        "zipkin"
    }
    fn send(&mut self, _spans: &[Span]) -> Result<(), BackendError> {
        Err(BackendError::permanent("not written yet"))
    }
}
