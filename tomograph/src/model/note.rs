//! Notes: timestamped annotations on a span.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::text::Text;

use super::Endpoint;

/// A timestamped annotation on a span (the seed's "note").
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// When it happened.
    pub timestamp: Timestamp,
    /// What happened.
    pub value: Text,
    /// Where it happened, when not at the span's local endpoint.
    pub endpoint: Option<Arc<Endpoint>>,
    /// How long it lasted, for notes that stand for an interval.
    pub duration: Option<Duration>,
}

impl Note {
    /// A note `value` at `timestamp`.
    pub fn new(timestamp: Timestamp, value: impl Into<Text>) -> Self {
        Self {
            timestamp,
            value: value.into(),
            endpoint: None,
            duration: None,
        }
    }
}

/// The value of the first note of every span.
pub const START_NOTE: &str = "start";
/// The value of the last note of every span.
pub const STOP_NOTE: &str = "stop";
