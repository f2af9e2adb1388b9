//! Metrics that do not come from a span: the statsd backend's socket, shared with the parts of
//! tomograph that count things no span carries — slow statements of unsampled traces,
//! connection pool gauges (`tomograph::sql`). Set when a statsd backend is built (the last one
//! built wins); nothing is sent while none is.

use std::net::{SocketAddr, UdpSocket};
use std::sync::RwLock;

#[derive(Debug)]
struct Sink {
    socket: UdpSocket,
    target: SocketAddr,
    prefix: String,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Shares `socket` (non-blocking, as the backend's) for lines to `target`, each name after
/// `prefix` (sanitized, possibly empty).
pub(crate) fn install(socket: &UdpSocket, target: SocketAddr, prefix: &str) {
    let Ok(socket) = socket.try_clone() else {
        return;
    };
    let mut sink = SINK.write().unwrap_or_else(|e| e.into_inner());
    *sink = Some(Sink {
        socket,
        target,
        prefix: prefix.to_owned(),
    });
}

/// Whether a statsd backend was built (lines would go somewhere).
pub(crate) fn is_on() -> bool {
    SINK.read().map(|s| s.is_some()).unwrap_or(false)
}

/// Sends the lines `{prefix}.{name}:{value}` (`name` already sanitized, `value` with its
/// type, `1|c`, `12|g`) in one datagram. A send error is dropped: statsd is best effort.
pub(crate) fn send(lines: &[(&str, &str)]) {
    let sink = SINK.read().unwrap_or_else(|e| e.into_inner());
    let Some(sink) = sink.as_ref() else {
        return;
    };
    let mut datagram = String::with_capacity(64 * lines.len());
    for (name, value) in lines {
        if !datagram.is_empty() {
            datagram.push('\n');
        }
        if !sink.prefix.is_empty() {
            datagram.push_str(&sink.prefix);
            datagram.push('.');
        }
        datagram.push_str(name);
        datagram.push(':');
        datagram.push_str(value);
    }
    let _ = sink.socket.send_to(datagram.as_bytes(), sink.target);
}
