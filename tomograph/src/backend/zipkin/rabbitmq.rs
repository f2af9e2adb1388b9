//! Zipkin over RabbitMQ (feature `rabbitmq`): each batch is published as one message — a
//! Zipkin list of spans, JSON v2 or thrift v1 — to the queue zipkin-server's RabbitMQ
//! collector reads, and counts as delivered only when the broker confirms it.
//!
//! Selected by an `amqp://user:pass@host:port/vhost` URL (`TOMOGRAPH_ZIPKIN_URL` or
//! [`ZipkinBuilder::url`](super::ZipkinBuilder::url)):
//!
//! ```
//! use tomograph::backend::zipkin::{Encoding, ZipkinBackend};
//! let zipkin = ZipkinBackend::builder()
//!     .url("amqp://tracer:s3cret@rabbit.internal:5672/%2f")
//!     .queue("zipkin")
//!     .encoding(Encoding::ThriftV1)
//!     .max_message_bytes(1_000_000)
//!     .build()
//!     .unwrap();
//! // The password is never shown: not here, not in errors, logs or `Debug`.
//! assert_eq!(zipkin.destination(), "amqp://tracer@rabbit.internal:5672/%2f queue zipkin");
//! assert!(!format!("{zipkin:?}").contains("s3cret"));
//! ```
//!
//! # What goes on the wire
//!
//! - The queue (default `zipkin`) is declared durable, not exclusive, not auto-deleted — as
//!   zipkin-server's collector declares it — on every (re)connection. A queue that exists
//!   with other arguments (say `x-max-length`) is used as it is.
//! - Each message goes to the default exchange with the queue's name as routing key,
//!   `mandatory` (a queue that vanished makes the broker return the message: not delivered),
//!   persistent (`delivery_mode` 2), `content_type` `application/json` or
//!   `application/x-thrift`. The collector detects the encoding from the first byte anyway.
//! - The channel is in publisher-confirm mode. A batch counts as delivered when the broker
//!   acks every message of it; a nack (a full queue with `x-overflow: reject-publish`, a
//!   broker out of resources), a returned message, a closed connection or no confirm within
//!   the timeout is a [retryable](crate::BackendError::retryable) error, retried by the
//!   reporter with its capped exponential backoff like an HTTP 5xx/429. Access refused (bad
//!   credentials, no such vhost) is permanent, like an HTTP 401/403.
//! - A batch whose body would exceed the per-message limit (default 5 MB, like Brave's
//!   `RabbitMQSender`; [`max_message_bytes`](super::ZipkinBuilder::max_message_bytes)) is split
//!   into several messages, each under it. A broker whose own `max_message_size` is lower
//!   closes the channel with `PRECONDITION_FAILED`; the limit is then lowered to the broker's
//!   and the rest of the batch re-split on the retry. A single span larger than the limit
//!   cannot be sent: it alone is refused (counted `rejected` with its size), the rest of the
//!   batch is delivered once the broker confirms it.
//! - The reporter's account is span by span: when part of a batch was confirmed and part
//!   failed, the confirmed first spans count as delivered at once, and the retry publishes
//!   only what the broker does not have (a later message already confirmed is skipped):
//!   nothing confirmed is published twice by the backend, and a batch given up on counts as
//!   failed only the spans the broker never confirmed.
//! - Confirms give at-least-once delivery, not exactly-once: a message the broker took just as
//!   the connection dropped (a broker stopping) may have lost only its confirm. Counted
//!   failed, it may still reach the collector; retried and confirmed, it may reach it twice.
//!   `failed` is then an upper bound of what was lost, never less than it.
//!
//! # Blocking and threads
//!
//! The reporter calls the backend on a thread of its own, so waiting for confirms blocks that
//! thread only, never the application; `flush` and `shutdown` return after the confirms of
//! what was sent (each batch waits for its confirms before the next goes out), within their
//! deadline. `lapin` runs its connection on an I/O thread of its own and needs a running
//! reactor between batches too (heartbeats, the broker's `connection.close`), so the backend
//! starts, on its first batch, a tokio runtime with one worker thread and waits on it with
//! `block_on`; a current-thread runtime would only drive the socket while a batch is in
//! flight. Connecting is bounded by the timeout; after any connection or channel failure the
//! next attempt reconnects (and re-declares the queue), so a broker restart costs the batches
//! in flight one retry each.
//!
//! # Kafka, on paper
//!
//! A Kafka sender would be a third [`Transport`](super) variant next to this one, taking the same
//! encoded list bodies and the same splitting (Kafka's default `max.message.bytes` is 1 MB, so
//! its limit default would be lower). zipkin-server's Kafka collector reads the topic `zipkin`
//! (`KAFKA_TOPIC`), one record per list of spans, any Zipkin encoding detected from the first
//! bytes (`[` JSON, `0x0c` thrift list, `0x0a` proto3); no key is needed. The `rdkafka` crate
//! is the maintained client: it links librdkafka, a C library, either the system's
//! (`dynamic-linking` feature, `librdkafka-dev`) or built from its bundled sources (default,
//! needs a C compiler and, with the `cmake-build` feature, cmake). Delivery would be counted
//! from the producer's delivery reports (`BaseProducer::send` + `poll`/`flush`, with
//! `acks=all` and `enable.idempotence=true`), the analogue of publisher confirms here; its
//! own retries and queue (`message.timeout.ms`, `queue.buffering.max.messages`) should be
//! bounded by the backend's timeout so that the reporter stays the one that retries and
//! counts.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use super::{ListEncoding, redact_url};
use crate::backend::Delivery;
use crate::error::{BackendError, ConfigError};
use crate::model::{Span, SpanId, TraceId};

/// The queue zipkin-server's RabbitMQ collector reads by default.
pub const DEFAULT_QUEUE: &str = "zipkin";
/// The largest message body the backend publishes by default (5 MB, as Brave's
/// `RabbitMQSender`); larger batches are split.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 5_000_000;
/// The smallest per-message limit the backend accepts.
const MIN_MESSAGE_BYTES: usize = 1024;

/// Why a batch did not reach the broker. Never holds the password.
#[derive(Debug, thiserror::Error)]
enum RabbitError {
    #[error("{destination}: {reason}")]
    Broker { destination: String, reason: String },
    #[error(
        "{destination}: broker refused {messages} message(s) (nack: queue full with \
         x-overflow reject-publish, or broker out of resources)"
    )]
    Nack {
        destination: String,
        messages: usize,
    },
    #[error("{destination}: broker returned {messages} message(s): {code} {text}")]
    Returned {
        destination: String,
        messages: usize,
        code: u16,
        text: String,
    },
    #[error("{destination}: no confirm within {timeout:?}")]
    Timeout {
        destination: String,
        timeout: Duration,
    },
    #[error(
        "{destination}: {spans} span(s) larger than the message limit of {limit} bytes \
         (largest {largest} bytes) not sent; {confirmed} span(s) of the batch confirmed"
    )]
    TooLarge {
        destination: String,
        spans: usize,
        largest: usize,
        limit: usize,
        confirmed: usize,
    },
}

/// An `amqp://` URL without its password, for display.
pub(crate) fn redact(uri: &AMQPUri) -> String {
    let user = &uri.authority.userinfo.username;
    let host = &uri.authority.host;
    let port = uri.authority.port;
    let vhost = percent_encode(&uri.vhost);
    if user.is_empty() {
        format!("amqp://{host}:{port}/{vhost}")
    } else {
        format!("amqp://{}@{host}:{port}/{vhost}", percent_encode(user))
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// Parses an `amqp://` URL; the error never repeats the password.
/// `origin` names where `url` came from (the variable or the builder call), for the error.
pub(crate) fn parse_url(url: &str, origin: &'static str) -> Result<AMQPUri, ConfigError> {
    let shown = redact_url(url);
    let invalid = |reason: &str| ConfigError::InvalidValue {
        variable: origin,
        value: shown.clone(),
        reason: reason.to_owned(),
    };
    let uri: AMQPUri = url
        .trim()
        .parse()
        .map_err(|_| invalid("expected amqp://user:password@host:port/vhost"))?;
    if uri.scheme != AMQPScheme::AMQP {
        return Err(invalid(
            "amqps is not supported (no TLS compiled in); use amqp:// or a local TLS proxy",
        ));
    }
    if uri.authority.host.is_empty() {
        return Err(invalid("expected amqp://user:password@host:port/vhost"));
    }
    Ok(uri)
}

/// A connection with a confirm-mode channel on which the queue is declared.
struct Session {
    connection: Connection,
    channel: Channel,
}

/// One message of a batch: a run of spans and where its body lies in the body buffer (no
/// body when the run is one span too large to send).
struct Chunk {
    spans: Range<usize>,
    bytes: Option<Range<usize>>,
}

/// The part of the batch last attempted that the broker confirmed, so that a retry of the
/// same batch publishes only the rest.
struct Resume {
    batch: BatchKey,
    confirmed: Vec<bool>,
}

/// Tells a retry of a batch from another batch: the reporter retries the very same slice,
/// and a new batch that happened to reuse its allocation has other span ids (random 64-bit).
#[derive(PartialEq, Eq)]
struct BatchKey {
    address: usize,
    len: usize,
    first: Option<(TraceId, SpanId)>,
    last: Option<(TraceId, SpanId)>,
}

impl BatchKey {
    fn of(spans: &[Span]) -> Self {
        let ids = |s: &Span| (s.trace_id(), s.id());
        Self {
            address: spans.as_ptr() as usize,
            len: spans.len(),
            first: spans.first().map(ids),
            last: spans.last().map(ids),
        }
    }
}

enum ChunkOutcome {
    Confirmed,
    Nacked,
    Returned(u16, String),
    NotConfirmed,
}

/// Publishes batches to a RabbitMQ queue with publisher confirms.
pub(crate) struct RabbitPublisher {
    uri: AMQPUri,
    destination: String,
    queue: String,
    list: ListEncoding,
    timeout: Duration,
    max_message_bytes: usize,
    runtime: Option<tokio::runtime::Runtime>,
    session: Option<Session>,
    body: Vec<u8>,
    one: Vec<u8>,
    chunks: Vec<Chunk>,
    resume: Option<Resume>,
}

impl fmt::Debug for RabbitPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitPublisher")
            .field("destination", &self.destination)
            .field("encoding", &self.list)
            .field("timeout", &self.timeout)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("connected", &self.session.is_some())
            .finish()
    }
}

impl RabbitPublisher {
    pub(crate) fn new(
        uri: AMQPUri,
        queue: String,
        list: ListEncoding,
        timeout: Duration,
        max_message_bytes: usize,
    ) -> Self {
        let destination = format!("{} queue {queue}", redact(&uri));
        Self {
            uri,
            destination,
            queue,
            list,
            timeout,
            max_message_bytes: max_message_bytes.max(MIN_MESSAGE_BYTES),
            runtime: None,
            session: None,
            body: Vec::new(),
            one: Vec::new(),
            chunks: Vec::new(),
            resume: None,
        }
    }

    /// `amqp://user@host:port/vhost queue NAME` (no password).
    pub(crate) fn destination(&self) -> &str {
        &self.destination
    }

    fn broker_error(&self, reason: impl fmt::Display) -> RabbitError {
        let mut reason = reason.to_string();
        let password = &self.uri.authority.userinfo.password;
        if !password.is_empty() && reason.contains(password.as_str()) {
            reason = reason.replace(password.as_str(), "***");
        }
        RabbitError::Broker {
            destination: self.destination.clone(),
            reason,
        }
    }

    /// Publishes `spans` and waits for the broker's confirms: `Ok` only when it confirmed
    /// every span.
    pub(crate) fn send(&mut self, spans: &[Span]) -> Result<(), BackendError> {
        let outcome = self.deliver(spans);
        match outcome.error {
            None if outcome.rejected.is_empty() => Ok(()),
            Some(e) => Err(e),
            None => Err(BackendError::permanent(self.broker_error("spans refused"))),
        }
    }

    /// Publishes `spans` (split to fit the message limit), waits for the broker's confirms,
    /// and says exactly which spans the broker has: the confirmed first spans of the batch
    /// are delivered even when a later message failed (a retry then publishes only the rest,
    /// skipping any later message already confirmed), and spans too large to send are
    /// refused once the rest is confirmed.
    pub(crate) fn deliver(&mut self, spans: &[Span]) -> Delivery {
        let key = BatchKey::of(spans);
        let mut confirmed = match self.resume.take() {
            Some(r) if r.batch == key => r.confirmed,
            _ => vec![false; spans.len()],
        };
        self.split(spans, &confirmed);
        let handle = match self.runtime() {
            Ok(rt) => rt.handle().clone(),
            Err(e) => return Delivery::from_result(spans.len(), Err(BackendError::retryable(e))),
        };
        let sendable = self.chunks.iter().filter(|c| c.bytes.is_some()).count();
        let mut outcomes: Vec<ChunkOutcome> = Vec::with_capacity(sendable);
        let mut failure: Option<BackendError> = None;
        if sendable > 0 {
            let timeout = self.timeout;
            let attempt = handle.block_on(async {
                tokio::time::timeout(timeout, self.publish(&mut outcomes)).await
            });
            match attempt {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = Some(e),
                Err(_) => {
                    failure = Some(BackendError::retryable(RabbitError::Timeout {
                        destination: self.destination.clone(),
                        timeout,
                    }))
                }
            }
            if failure.is_some() {
                // Confirms that may still come belong to a channel we no longer trust.
                self.drop_session();
            }
        }
        // Record what the broker confirmed, and the first reason it did not confirm the rest.
        let mut nacked = 0;
        let mut returned = (0, 0u16, String::new());
        let mut sendable_chunks = self.chunks.iter().filter(|c| c.bytes.is_some());
        for outcome in &outcomes {
            let Some(chunk) = sendable_chunks.next() else {
                break;
            };
            match outcome {
                ChunkOutcome::Confirmed => {
                    for c in &mut confirmed[chunk.spans.clone()] {
                        *c = true;
                    }
                }
                ChunkOutcome::Nacked => nacked += 1,
                ChunkOutcome::Returned(code, text) => {
                    returned.0 += 1;
                    returned.1 = *code;
                    returned.2.clone_from(text);
                }
                ChunkOutcome::NotConfirmed => {}
            }
        }
        if returned.0 > 0 {
            // The queue vanished: declare it again on the next attempt.
            self.drop_session();
        }
        let all_confirmed = self
            .chunks
            .iter()
            .filter(|c| c.bytes.is_some())
            .all(|c| confirmed[c.spans.clone()].iter().all(|&c| c));
        if !all_confirmed {
            let error = failure.unwrap_or_else(|| {
                if nacked > 0 {
                    BackendError::retryable(RabbitError::Nack {
                        destination: self.destination.clone(),
                        messages: nacked,
                    })
                } else if returned.0 > 0 {
                    BackendError::retryable(RabbitError::Returned {
                        destination: self.destination.clone(),
                        messages: returned.0,
                        code: returned.1,
                        text: returned.2,
                    })
                } else {
                    BackendError::retryable(self.broker_error("broker did not confirm"))
                }
            });
            self.adapt_limit(&error);
            self.trim();
            // The broker has the confirmed first spans: they are delivered, and the reporter
            // hands the rest back on a retry, where later confirmed messages are skipped.
            let prefix = confirmed.iter().take_while(|&&c| c).count();
            if error.is_retryable() {
                if confirmed[prefix..].iter().any(|&c| c) {
                    self.resume = Some(Resume {
                        batch: BatchKey::of(&spans[prefix..]),
                        confirmed: confirmed[prefix..].to_vec(),
                    });
                }
                return Delivery {
                    delivered: prefix,
                    rejected: Vec::new(),
                    error: Some(error),
                };
            }
            // Refused for good: every confirmed span is delivered, the rest refused.
            let delivered = confirmed.iter().filter(|&&c| c).count();
            let mut outcome = Delivery::delivered(delivered);
            if delivered < spans.len() {
                outcome.reject(error.to_string(), spans.len() - delivered);
            }
            outcome.error = Some(error);
            return outcome;
        }
        let too_large: Vec<usize> = self
            .chunks
            .iter()
            .filter(|c| c.bytes.is_none())
            .map(|c| c.spans.start)
            .collect();
        self.trim();
        if too_large.is_empty() {
            return Delivery::delivered(spans.len());
        }
        let largest = too_large
            .iter()
            .map(|&i| {
                self.one.clear();
                self.list.encode_one(&spans[i], &mut self.one);
                self.one.len()
            })
            .max()
            .unwrap_or(0);
        let error = RabbitError::TooLarge {
            destination: self.destination.clone(),
            spans: too_large.len(),
            largest,
            limit: self.max_message_bytes,
            confirmed: confirmed.iter().filter(|&&c| c).count(),
        };
        let mut outcome = Delivery::delivered(spans.len() - too_large.len());
        outcome.reject(error.to_string(), too_large.len());
        outcome.error = Some(BackendError::permanent(error));
        outcome
    }

    /// A huge batch should not pin its memory forever.
    fn trim(&mut self) {
        if self.body.capacity() > 8 << 20 {
            self.body = Vec::new();
        }
        if self.one.capacity() > 1 << 20 {
            self.one = Vec::new();
        }
    }

    fn drop_session(&mut self) {
        if let Some(session) = self.session.take() {
            // Closing is best effort, on the runtime's worker: never wait for it here.
            if let Some(rt) = &self.runtime {
                rt.spawn(async move {
                    let _ = session.connection.close(200, "reconnecting".into()).await;
                });
            }
        }
    }

    fn runtime(&mut self) -> Result<&tokio::runtime::Runtime, RabbitError> {
        if self.runtime.is_none() {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("tomograph-amqp")
                .enable_all()
                .build()
                .map_err(|e| self.broker_error(format_args!("cannot start a runtime: {e}")))?;
            self.runtime = Some(rt);
        }
        match &self.runtime {
            Some(rt) => Ok(rt),
            None => Err(self.broker_error("no runtime")),
        }
    }

    /// Cuts the spans not yet confirmed into chunks whose bodies fit the message limit,
    /// encoded back to back in `self.body`.
    fn split(&mut self, spans: &[Span], confirmed: &[bool]) {
        self.chunks.clear();
        self.body.clear();
        let limit = self.max_message_bytes;
        if !confirmed.iter().any(|&c| c) {
            // The usual case: the whole batch in one body, encoded once.
            self.list.encode(spans, &mut self.body);
            if self.body.len() <= limit {
                self.chunks.push(Chunk {
                    spans: 0..spans.len(),
                    bytes: Some(0..self.body.len()),
                });
                return;
            }
            self.body.clear();
        }
        self.pack(spans, confirmed);
    }

    /// Packs the spans not yet confirmed into chunks span by span.
    fn pack(&mut self, spans: &[Span], confirmed: &[bool]) {
        let limit = self.max_message_bytes;
        let mut open: Option<(usize, usize)> = None; // (first span, body start)
        for (i, span) in spans.iter().enumerate() {
            if confirmed[i] {
                if let Some((first, start)) = open.take() {
                    self.close_chunk(first..i, start);
                }
                continue;
            }
            self.one.clear();
            self.list.encode_one(span, &mut self.one);
            if let Some((first, start)) = open {
                let count = i - first + 1;
                let would_be =
                    self.body.len() - start + self.list.extra_per_span() + self.one.len();
                if would_be + self.list.close_len() > limit || count > i32::MAX as usize {
                    self.close_chunk(first..i, start);
                    open = None;
                }
            }
            if open.is_none() {
                if self.list.frame_len() + self.one.len() > limit {
                    self.chunks.push(Chunk {
                        spans: i..i + 1,
                        bytes: None,
                    });
                    continue;
                }
                let start = self.body.len();
                self.list.open(&mut self.body);
                open = Some((i, start));
            } else {
                self.list.separate(&mut self.body);
            }
            self.body.extend_from_slice(&self.one);
        }
        if let Some((first, start)) = open {
            self.close_chunk(first..spans.len(), start);
        }
    }

    fn close_chunk(&mut self, spans: Range<usize>, start: usize) {
        self.list.close(&mut self.body, start, spans.len());
        self.chunks.push(Chunk {
            spans,
            bytes: Some(start..self.body.len()),
        });
    }

    /// Connects if needed, publishes every sendable chunk, then waits for their confirms,
    /// pushing one outcome per chunk in order.
    async fn publish(&mut self, outcomes: &mut Vec<ChunkOutcome>) -> Result<(), BackendError> {
        let healthy = self
            .session
            .as_ref()
            .is_some_and(|s| s.connection.status().connected() && s.channel.status().connected());
        if !healthy {
            self.drop_session();
            self.session = Some(self.connect().await?);
        }
        let Some(session) = &self.session else {
            return Err(BackendError::retryable(self.broker_error("not connected")));
        };
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(self.list.content_type().into());
        let options = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        let mut confirms = Vec::with_capacity(self.chunks.len());
        for chunk in &self.chunks {
            let Some(bytes) = &chunk.bytes else { continue };
            match session
                .channel
                .basic_publish(
                    "".into(),
                    self.queue.as_str().into(),
                    options,
                    &self.body[bytes.clone()],
                    properties.clone(),
                )
                .await
            {
                Ok(confirm) => confirms.push(confirm),
                Err(e) => return Err(self.classify(&e)),
            }
        }
        let mut first_error = None;
        for confirm in confirms {
            match confirm.await {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {
                    // NotRequested cannot happen: the channel is in confirm mode.
                    outcomes.push(ChunkOutcome::Confirmed)
                }
                Ok(Confirmation::Ack(Some(returned))) => outcomes.push(ChunkOutcome::Returned(
                    returned.reply_code,
                    returned.reply_text.to_string(),
                )),
                Ok(Confirmation::Nack(_)) => outcomes.push(ChunkOutcome::Nacked),
                Err(e) => {
                    outcomes.push(ChunkOutcome::NotConfirmed);
                    first_error.get_or_insert_with(|| self.classify(&e));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Opens a connection and a confirm-mode channel, and declares the queue.
    async fn connect(&self) -> Result<Session, BackendError> {
        let handle = tokio::runtime::Handle::current();
        let properties = ConnectionProperties::default()
            .with_connection_name(concat!("tomograph/", env!("CARGO_PKG_VERSION")).into());
        let connection = Connection::connect_uri_with_runtime(
            self.uri.clone(),
            properties,
            async_rs_runtime(handle),
        )
        .await
        .map_err(|e| self.classify(&e))?;
        let channel = self.open_channel(&connection).await?;
        let declared = channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        let channel = match declared {
            Ok(_) => channel,
            Err(e) if is_soft(&e, AMQPSoftError::PRECONDITIONFAILED) => {
                // The queue exists with other arguments (x-max-length, a quorum queue…): use
                // it as it is. The broker closed that channel; open another.
                log::debug!(
                    "tomograph: zipkin {}: queue exists with other arguments ({e}); using it",
                    self.destination
                );
                self.open_channel(&connection).await?
            }
            Err(e) => return Err(self.classify(&e)),
        };
        Ok(Session {
            connection,
            channel,
        })
    }

    async fn open_channel(&self, connection: &Connection) -> Result<Channel, BackendError> {
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| self.classify(&e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.classify(&e))?;
        Ok(channel)
    }

    /// Retryable or permanent, and the message limit lowered when the broker's is lower.
    fn classify(&self, e: &lapin::Error) -> BackendError {
        let error = self.broker_error(e);
        if let lapin::ErrorKind::ProtocolError(amqp) = e.kind() {
            match amqp.kind() {
                AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
                | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => {
                    return BackendError::permanent(error);
                }
                _ => {}
            }
        }
        BackendError::retryable(error)
    }

    /// After a failed attempt: when the broker closed the channel because a message was over
    /// its `max_message_size`, take that as our limit.
    pub(crate) fn adapt_limit(&mut self, e: &BackendError) {
        let text = e.to_string();
        if let Some(pos) = text.find("larger than configured max size") {
            let digits: String = text[pos..]
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            let broker = digits
                .parse::<usize>()
                .unwrap_or(self.max_message_bytes / 2);
            // Leave room for nothing else: the limit is on the body.
            let limit = broker
                .min(self.max_message_bytes / 2)
                .max(MIN_MESSAGE_BYTES);
            if limit < self.max_message_bytes {
                log::warn!(
                    "tomograph: zipkin {}: broker's max message size is {broker} bytes; \
                     splitting batches at {limit}",
                    self.destination
                );
                self.max_message_bytes = limit;
            }
        }
    }
}

impl Drop for RabbitPublisher {
    fn drop(&mut self) {
        let Some(rt) = self.runtime.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Dropped inside some async context: blocking here would panic.
            rt.shutdown_background();
            return;
        }
        let timeout = self.timeout.min(Duration::from_secs(1));
        if let Some(session) = self.session.take() {
            rt.block_on(async move {
                let _ = tokio::time::timeout(timeout, session.connection.close(200, "bye".into()))
                    .await;
            });
        }
        rt.shutdown_timeout(timeout);
    }
}

fn is_soft(e: &lapin::Error, soft: AMQPSoftError) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if *amqp.kind() == AMQPErrorKind::Soft(soft))
}

fn async_rs_runtime(handle: tokio::runtime::Handle) -> async_rs::TokioRuntime {
    async_rs::Runtime::tokio_with_handle(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        let uri = parse_url(
            "amqp://tracer:s3cr%40t@rabbit:5673/prod",
            crate::env::ZIPKIN_URL,
        )
        .unwrap();
        assert_eq!(redact(&uri), "amqp://tracer@rabbit:5673/prod");
        assert_eq!(
            redact_url("amqp://tracer:s3cret@rabbit:5673/%2f"),
            "amqp://tracer:***@rabbit:5673/%2f"
        );
        assert_eq!(redact_url("http://zipkin:9411"), "http://zipkin:9411");
        let err = parse_url("amqps://tracer:s3cret@rabbit", crate::env::ZIPKIN_URL)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        let err = parse_url(
            "amqp://tracer:s3cret@rabbit:notaport/x",
            crate::env::ZIPKIN_URL,
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        let publisher = RabbitPublisher::new(
            uri,
            "zipkin".into(),
            ListEncoding::Json,
            Duration::from_secs(1),
            DEFAULT_MAX_MESSAGE_BYTES,
        );
        assert!(!format!("{publisher:?}").contains("s3cr"));
        let e = publisher.broker_error("login s3cr@t refused");
        assert!(!e.to_string().contains("s3cr@t"), "{e}");
    }

    fn spans(n: usize) -> Vec<Span> {
        use crate::{Endpoint, SpanId, Timestamp, TraceId};
        let trace = TraceId::from_u64(7).unwrap();
        (1..=n as u64)
            .map(|i| {
                Span::new(
                    trace,
                    SpanId::from_u64(i).unwrap(),
                    "op",
                    Endpoint::new("svc"),
                    Timestamp::from_unix_micros(1_000_000 + i),
                )
                .with_end(Timestamp::from_unix_micros(2_000_000))
                .with_tag("k", "v".repeat(i as usize * 10))
            })
            .collect()
    }

    fn publisher(list: ListEncoding, limit: usize) -> RabbitPublisher {
        let uri = parse_url(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            crate::env::ZIPKIN_URL,
        )
        .unwrap();
        RabbitPublisher::new(uri, "zipkin".into(), list, Duration::from_secs(1), limit)
    }

    #[test]
    fn packed_lists_are_the_lists_the_encoders_write() {
        use crate::backend::zipkin::TagEncoding;
        for list in [
            ListEncoding::Json,
            ListEncoding::Thrift(TagEncoding::Strings),
        ] {
            let spans = spans(30);
            let mut p = publisher(list, usize::MAX);
            p.pack(&spans, &[false; 30]);
            assert_eq!(p.chunks.len(), 1);
            let mut whole = Vec::new();
            list.encode(&spans, &mut whole);
            assert_eq!(p.body, whole, "{list:?}");

            // Split: every chunk is the encoder's list of its spans, under the limit.
            let mut p = publisher(list, 2048);
            let mut confirmed = [false; 30];
            confirmed[3] = true;
            p.split(&spans, &confirmed);
            assert!(p.chunks.len() > 3, "{list:?}");
            let mut covered = [false; 30];
            covered[3] = true;
            for chunk in &p.chunks {
                let bytes = chunk.bytes.clone().unwrap();
                assert!(bytes.len() <= 2048);
                let mut expected = Vec::new();
                list.encode(&spans[chunk.spans.clone()], &mut expected);
                assert_eq!(&p.body[bytes], &expected[..], "{list:?}");
                for c in &mut covered[chunk.spans.clone()] {
                    assert!(!*c, "a span in two chunks");
                    *c = true;
                }
            }
            assert!(covered.iter().all(|&c| c));
        }
    }

    #[test]
    fn a_span_over_the_limit_is_a_chunk_without_body() {
        let spans = spans(30); // the last tag is 300 bytes
        let mut p = publisher(ListEncoding::Json, MIN_MESSAGE_BYTES);
        let mut big = spans.clone();
        big[10] = big[10].clone().with_tag("blob", "x".repeat(2000));
        p.split(&big, &[false; 30]);
        let without: Vec<_> = p.chunks.iter().filter(|c| c.bytes.is_none()).collect();
        assert_eq!(without.len(), 1);
        assert_eq!(without[0].spans, 10..11);
    }

    #[test]
    fn the_broker_limit_is_read_from_its_error() {
        let mut p = publisher(ListEncoding::Json, DEFAULT_MAX_MESSAGE_BYTES);
        let e = BackendError::retryable(p.broker_error(
            "PRECONDITION_FAILED - message size 200000 is larger than configured max size 65536",
        ));
        p.adapt_limit(&e);
        assert_eq!(p.max_message_bytes, 65536);
        p.adapt_limit(&BackendError::retryable(
            p.broker_error("connection refused"),
        ));
        assert_eq!(p.max_message_bytes, 65536);
    }

    #[test]
    fn default_vhost_is_shown_encoded() {
        let uri = parse_url(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            crate::env::ZIPKIN_URL,
        )
        .unwrap();
        assert_eq!(uri.vhost, "/");
        assert_eq!(redact(&uri), "amqp://guest@127.0.0.1:5672/%2f");
    }
}
