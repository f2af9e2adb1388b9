//! Scribe: the original library's transport. A thrift RPC `scribe.Log(list<LogEntry>)` over a
//! framed TBinaryProtocol connection; each `LogEntry` is `{category: "zipkin", message:
//! base64(thrift Span)}`. The collector answers `OK` or `TRY_LATER` (retried).
//!
//! ```thrift
//! enum ResultCode { OK, TRY_LATER }
//! struct LogEntry { 1: string category, 2: string message }
//! service scribe { ResultCode Log(1: list<LogEntry> messages) }
//! ```

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use ::thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol, TListIdentifier,
    TMessageIdentifier, TMessageType, TOutputProtocol, TStructIdentifier, TType,
    verify_expected_message_type, verify_expected_sequence_number, verify_expected_service_call,
};
use ::thrift::transport::{TFramedReadTransport, TFramedWriteTransport};
use base64::Engine as _;

use super::ZipkinError;
use super::thrift::{TagEncoding, encode_span};
use crate::error::BackendError;
use crate::model::Span;

/// The Scribe category Zipkin's Scribe collector reads.
pub(crate) const CATEGORY: &str = "zipkin";

const RESULT_OK: i32 = 0;
const RESULT_TRY_LATER: i32 = 1;

struct Connection {
    input: TBinaryInputProtocol<TFramedReadTransport<TcpStream>>,
    output: TBinaryOutputProtocol<TFramedWriteTransport<TcpStream>>,
}

/// A Scribe client that connects on first use and reconnects after any failure.
pub(crate) struct ScribeClient {
    addr: String,
    timeout: Duration,
    connection: Option<Connection>,
    sequence: i32,
    span_bytes: Vec<u8>,
    messages: Vec<String>,
}

impl std::fmt::Debug for ScribeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScribeClient")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl ScribeClient {
    pub(crate) fn new(addr: String, timeout: Duration) -> Self {
        Self {
            addr,
            timeout,
            connection: None,
            sequence: 0,
            span_bytes: Vec::new(),
            messages: Vec::new(),
        }
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Logs every span of `spans` as one `Log` call.
    pub(crate) fn send(&mut self, spans: &[Span], tags: TagEncoding) -> Result<(), BackendError> {
        self.messages.clear();
        for span in spans {
            self.span_bytes.clear();
            encode_span(span, tags, &mut self.span_bytes);
            self.messages
                .push(base64::engine::general_purpose::STANDARD.encode(&self.span_bytes));
        }
        let result = self.log();
        if result.is_err() {
            // The connection may hold half a message: start afresh next time.
            self.connection = None;
        }
        result
    }

    fn log(&mut self) -> Result<(), BackendError> {
        if self.connection.is_none() {
            self.connection = Some(self.connect().map_err(BackendError::retryable)?);
        }
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let Some(connection) = self.connection.as_mut() else {
            return Err(BackendError::retryable(ZipkinError::NotConnected));
        };
        let code = call_log(connection, sequence, &self.messages)
            .map_err(|e| BackendError::retryable(ZipkinError::Thrift(e)))?;
        match code {
            RESULT_OK => Ok(()),
            RESULT_TRY_LATER => Err(BackendError::retryable(ZipkinError::TryLater)),
            other => Err(BackendError::permanent(ZipkinError::ScribeResult(other))),
        }
    }

    fn connect(&self) -> Result<Connection, ZipkinError> {
        let addrs: Vec<SocketAddr> = self
            .addr
            .to_socket_addrs()
            .map_err(ZipkinError::Io)?
            .collect();
        let mut last = ZipkinError::Io(std::io::Error::other(format!(
            "{} resolves to no address",
            self.addr
        )));
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(self.timeout))?;
                    stream.set_write_timeout(Some(self.timeout))?;
                    stream.set_nodelay(true)?;
                    let reader = stream.try_clone()?;
                    return Ok(Connection {
                        input: TBinaryInputProtocol::new(TFramedReadTransport::new(reader), true),
                        output: TBinaryOutputProtocol::new(
                            TFramedWriteTransport::new(stream),
                            true,
                        ),
                    });
                }
                Err(e) => last = ZipkinError::Io(e),
            }
        }
        Err(last)
    }
}

/// One `Log` round trip; returns the `ResultCode`.
fn call_log(c: &mut Connection, sequence: i32, messages: &[String]) -> ::thrift::Result<i32> {
    let o = &mut c.output;
    o.write_message_begin(&TMessageIdentifier::new(
        "Log",
        TMessageType::Call,
        sequence,
    ))?;
    o.write_struct_begin(&TStructIdentifier::new("Log_args"))?;
    o.write_field_begin(&TFieldIdentifier::new("messages", TType::List, 1))?;
    o.write_list_begin(&TListIdentifier::new(
        TType::Struct,
        i32::try_from(messages.len()).unwrap_or(i32::MAX),
    ))?;
    for message in messages {
        o.write_struct_begin(&TStructIdentifier::new("LogEntry"))?;
        o.write_field_begin(&TFieldIdentifier::new("category", TType::String, 1))?;
        o.write_string(CATEGORY)?;
        o.write_field_end()?;
        o.write_field_begin(&TFieldIdentifier::new("message", TType::String, 2))?;
        o.write_string(message)?;
        o.write_field_end()?;
        o.write_field_stop()?;
        o.write_struct_end()?;
    }
    o.write_list_end()?;
    o.write_field_end()?;
    o.write_field_stop()?;
    o.write_struct_end()?;
    o.write_message_end()?;
    o.flush()?;

    let i = &mut c.input;
    let header = i.read_message_begin()?;
    verify_expected_sequence_number(sequence, header.sequence_number)?;
    verify_expected_service_call("Log", &header.name)?;
    if header.message_type == TMessageType::Exception {
        let error = ::thrift::Error::read_application_error_from_in_protocol(i)?;
        i.read_message_end()?;
        return Err(::thrift::Error::Application(error));
    }
    verify_expected_message_type(TMessageType::Reply, header.message_type)?;
    i.read_struct_begin()?;
    let mut success = None;
    loop {
        let field = i.read_field_begin()?;
        if field.field_type == TType::Stop {
            break;
        }
        match (field.id, field.field_type) {
            (Some(0), TType::I32) => success = Some(i.read_i32()?),
            (_, other) => i.skip(other)?,
        }
        i.read_field_end()?;
    }
    i.read_struct_end()?;
    i.read_message_end()?;
    success.ok_or_else(|| {
        ::thrift::Error::Application(::thrift::ApplicationError::new(
            ::thrift::ApplicationErrorKind::MissingResult,
            "Log returned no result",
        ))
    })
}
