//! This crate's errors.

/// diesel refused to change its default instrumentation.
#[derive(Debug, thiserror::Error)]
#[error("cannot set diesel's default instrumentation: {reason}")]
pub struct InstallError {
    reason: String,
}

impl InstallError {
    pub(crate) fn from_diesel(error: diesel::result::Error) -> Self {
        Self {
            reason: error.to_string(),
        }
    }
}
