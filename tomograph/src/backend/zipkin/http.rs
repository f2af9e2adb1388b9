//! Posting encoded batches to a collector over HTTP/1.1 (`ureq`, blocking, on the backend's
//! own thread), one kept-alive connection reused between batches.

use std::io::Write as _;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::ZipkinError;
use crate::error::BackendError;

/// Answers longer than this are not read (a collector answers 202 with an empty body).
const MAX_ANSWER: u64 = 64 * 1024;

#[derive(Debug)]
pub(crate) struct HttpPoster {
    agent: ureq::Agent,
    endpoint: String,
    content_type: &'static str,
    gzip: bool,
    compressed: Vec<u8>,
}

impl HttpPoster {
    pub(crate) fn new(
        endpoint: String,
        content_type: &'static str,
        gzip: bool,
        timeout: Duration,
    ) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout))
            .max_idle_connections(2)
            .max_idle_connections_per_host(1)
            .user_agent(concat!("tomograph/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            agent,
            endpoint,
            content_type,
            gzip,
            compressed: Vec::new(),
        }
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Posts `body`. Transport errors, timeouts, 408, 429 and 5xx are retryable; other
    /// non-2xx answers mean the collector refused the data.
    pub(crate) fn post(&mut self, body: &[u8]) -> Result<(), BackendError> {
        let request = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", self.content_type);
        let result = if self.gzip {
            self.compressed.clear();
            let mut encoder = GzEncoder::new(&mut self.compressed, Compression::fast());
            encoder
                .write_all(body)
                .and_then(|()| encoder.finish().map(drop))
                .map_err(|e| BackendError::permanent(ZipkinError::Io(e)))?;
            request
                .header("Content-Encoding", "gzip")
                .send(&self.compressed[..])
        } else {
            request.send(body)
        };
        let mut response = result.map_err(|e| BackendError::retryable(ZipkinError::Http(e)))?;
        let status = response.status().as_u16();
        // Reading the answer to its end lets the connection be reused.
        let answer = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let error = ZipkinError::Status {
            status,
            answer: String::from_utf8_lossy(&answer).chars().take(500).collect(),
        };
        if status >= 500 || status == 408 || status == 429 {
            Err(BackendError::retryable(error))
        } else {
            Err(BackendError::permanent(error))
        }
    }
}
