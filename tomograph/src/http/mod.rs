//! HTTP helpers: the seed's [`start_http`] and [`add_trace_info_header`], a tower layer
//! (feature `tower`) and a reqwest helper (feature `reqwest`).
//!
//! The headers written and read are the configured [`Propagation`](crate::propagation::Propagation)'s
//! (by default `X-Trace-Info`, B3 and W3C `traceparent`). A request whose headers carry no
//! valid context starts a new trace; nothing here fails on a malformed header.
//!
//! ```
//! use tomograph::http::{add_trace_info_header, start_http};
//! # tomograph::init(tomograph::Config::builder().build()).unwrap();
//!
//! // client side
//! let mut headers = http::HeaderMap::new();
//! tomograph::start("client", "http request", "127.0.0.1", 0);
//! add_trace_info_header(&mut headers);
//! let client_token = tomograph::get_trace_info().unwrap();
//! tomograph::stop("http request").unwrap();
//!
//! // server side
//! let mut request = http::Request::get("/images").header("host", "api.example:8080").body(()).unwrap();
//! *request.headers_mut() = headers;
//! start_http("server", "http response", &request);
//! assert_eq!(tomograph::get_trace_info().unwrap().trace_id(), client_token.trace_id());
//! tomograph::stop("http response").unwrap();
//! ```

#[cfg(feature = "reqwest")]
pub mod client;
#[cfg(feature = "tower")]
mod layer;

#[cfg(feature = "tower")]
pub use self::layer::{ResponseFuture, TraceLayer, TraceService, TracedBody};

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use http::{HeaderMap, Method, Request};

use crate::context::abandoned;
use crate::context::stack::{self, Frame};
use crate::handle::{SpanBuilder, span};
use crate::keys;
use crate::model::TraceToken;
use crate::model::{Endpoint, Kind, SpanId, Text, TraceId};
use crate::propagation::{self, Extracted};

/// Starts a SERVER span `name` for `request` at service `service`, continuing the caller's
/// trace from the request's headers, and makes it current; stop it with
/// [`stop(name)`](crate::stop). The seed's `tomograph.start_http`.
///
/// The span's endpoint is `service` at the request's `Host` (IP address and port when the
/// host is an IP literal; `Host` with or without a port, IPv6 in brackets). It is tagged
/// `http.method` and `http.path`.
///
/// A request starts here: when the thread's previous request panicked and the panic was
/// caught (by the server's thread pool or runtime), the spans that panic left open are
/// closed with `error=panicked` and reported first (see [`start`](crate::start)). A guard
/// (the tower layer, or [`span`]`(name).kind(Kind::Server).start()`) leaves
/// nothing behind in the first place.
///
/// ```
/// # tomograph::init(tomograph::Config::builder().build()).unwrap();
/// let request = http::Request::get("/")
///     .header("host", "[::1]")
///     .header("x-trace-info", "KEkxCkkyCnRwMAou")
///     .body(())
///     .unwrap();
/// tomograph::http::start_http("server", "http response", &request);
/// assert_eq!(tomograph::get_trace_info().unwrap().trace_id().get(), 1);
/// tomograph::stop("http response").unwrap();
/// ```
pub fn start_http<B>(service: impl Into<Text>, name: impl Into<Text>, request: &Request<B>) {
    let host = Host::of_request(request);
    let endpoint = Endpoint::new(service)
        .with_optional_ip(host.as_ref().and_then(Host::ip))
        .with_port(host.as_ref().and_then(Host::port).unwrap_or(0));
    let builder = span(name)
        .kind(Kind::Server)
        .endpoint(endpoint)
        .tag(keys::http::METHOD, method_text(request.method()))
        .tag(keys::http::PATH, request.uri().path().to_owned());
    let parent = propagation::extract(request.headers());
    abandoned::start_request(|| server_frame(parent.as_ref(), builder, true));
}

/// Writes the current trace context into `headers`, in the configured formats (by default
/// `X-Trace-Info`, `X-B3-*` and `traceparent`). Does nothing when no trace is in progress.
/// The seed's `tomograph.add_trace_info_header`.
///
/// ```
/// # tomograph::init(tomograph::Config::builder().build()).unwrap();
/// let mut headers = http::HeaderMap::new();
/// tomograph::http::add_trace_info_header(&mut headers);
/// assert!(headers.is_empty(), "no trace in progress");
///
/// let span = tomograph::span("http request").start();
/// tomograph::http::add_trace_info_header(&mut headers);
/// let token = span.token().unwrap();
/// assert_eq!(headers["x-b3-spanid"], token.span_id().to_string());
/// assert!(headers.contains_key("x-trace-info"));
/// assert!(headers.contains_key("traceparent"));
/// ```
pub fn add_trace_info_header(headers: &mut HeaderMap) {
    if let Some(token) = stack::current_token() {
        propagation::inject(token, headers);
    }
}

/// The frame of a server span for a request whose headers said `parent`; `named` when the
/// seed's `stop(name)` must find it even if it is not sampled.
pub(crate) fn server_frame(
    parent: Option<&Extracted>,
    builder: SpanBuilder,
    named: bool,
) -> Option<Frame> {
    let Some(parent) = parent else {
        return builder.root().into_frame(named);
    };
    if let Some(token) = parent.token() {
        return builder.child_of(token).into_frame(named);
    }
    // Only a sampling decision (B3 `b3: 0`, `X-B3-Sampled: 1` without ids): a new trace,
    // recorded or not as the caller decided. The placeholder parent is never reported.
    let wide = crate::tracer::get().is_some_and(|t| t.wide_trace_ids());
    let placeholder = TraceToken {
        trace_id: TraceId::random(wide),
        span_id: SpanId::random(),
        sampled: parent.sampled().unwrap_or(true),
        debug: parent.debug(),
        remote: true,
        deferred: false,
    };
    let mut frame = builder.child_of(placeholder).into_frame(named)?;
    if let Frame::Recording(span) = &mut frame {
        span.parent_id = None;
        span.remote_parent = false;
    }
    Some(frame)
}

/// The method as a tag value, without allocating for the standard ones.
pub(crate) fn method_text(method: &Method) -> Text {
    let known = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    const NAMES: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match known.iter().position(|m| m == method) {
        Some(i) => Text::from_static(NAMES[i]),
        None => Text::from(method.as_str().to_owned()),
    }
}

/// The host a request was sent to: its `Host` header (or, for HTTP/2, the URI's authority),
/// with or without a port; IPv6 literals in brackets.
///
/// The original library split the header on `:` and crashed when there was no port; this
/// never fails on input: an unparsable value is `None`.
///
/// ```
/// use tomograph::http::Host;
/// let h = Host::parse("[2001:db8::1]:8443").unwrap();
/// assert_eq!(h.ip(), Some("2001:db8::1".parse().unwrap()));
/// assert_eq!(h.port(), Some(8443));
///
/// let h = Host::parse("api.example.com").unwrap();
/// assert_eq!((h.name(), h.ip(), h.port()), ("api.example.com", None, None));
///
/// assert_eq!(Host::parse("10.0.0.7:80").unwrap().ip(), Some("10.0.0.7".parse().unwrap()));
/// assert!(Host::parse("example.com:http").is_none());
/// assert!(Host::parse("[::1").is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    name: String,
    ip: Option<IpAddr>,
    port: Option<u16>,
}

/// Longest host accepted (DNS names are at most 253 characters).
const MAX_HOST_LEN: usize = 255;

impl Host {
    /// Parses `host`, `host:port`, `[ipv6]`, `[ipv6]:port` (and a bare IPv6 address).
    pub fn parse(value: &str) -> Option<Host> {
        let value = value.trim();
        if value.is_empty() || value.len() > MAX_HOST_LEN + 8 {
            return None;
        }
        let (name, port) = if let Some(rest) = value.strip_prefix('[') {
            let (inside, after) = rest.split_once(']')?;
            let ip: Ipv6Addr = inside.parse().ok()?;
            let port = match after {
                "" => None,
                _ => Some(parse_port(after.strip_prefix(':')?)?),
            };
            return Some(Host {
                name: inside.to_owned(),
                ip: Some(IpAddr::V6(ip)),
                port,
            });
        } else if let Ok(ip) = value.parse::<Ipv6Addr>() {
            // Not valid in a Host header, but unambiguous.
            return Some(Host {
                name: value.to_owned(),
                ip: Some(IpAddr::V6(ip)),
                port: None,
            });
        } else {
            match value.split_once(':') {
                Some((name, port)) => (name, Some(parse_port(port)?)),
                None => (value, None),
            }
        };
        let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        if name.is_empty() || name.len() > MAX_HOST_LEN || !name.bytes().all(valid) {
            return None;
        }
        Some(Host {
            name: name.to_owned(),
            ip: name.parse().ok(),
            port,
        })
    }

    /// The host of `request`: its `Host` header, else its URI's authority.
    pub fn of_request<B>(request: &Request<B>) -> Option<Host> {
        match request.headers().get(http::header::HOST) {
            Some(value) => Host::parse(value.to_str().ok()?),
            None => Host::parse(request.uri().authority()?.as_str()),
        }
    }

    /// The host name or address as written (without brackets or port).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address, when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The port, when one was given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            Some(IpAddr::V6(_)) => write!(f, "[{}]", self.name)?,
            _ => f.write_str(&self.name)?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        type Expected = Option<(&'static str, Option<&'static str>, Option<u16>)>;
        let cases: &[(&str, Expected)] = &[
            ("example.com", Some(("example.com", None, None))),
            ("example.com:8080", Some(("example.com", None, Some(8080)))),
            ("127.0.0.1", Some(("127.0.0.1", Some("127.0.0.1"), None))),
            (
                "127.0.0.1:0",
                Some(("127.0.0.1", Some("127.0.0.1"), Some(0))),
            ),
            ("[::1]", Some(("::1", Some("::1"), None))),
            ("[::1]:443", Some(("::1", Some("::1"), Some(443)))),
            ("::1", Some(("::1", Some("::1"), None))),
            ("[fe80::1%25eth0]:80", None),
            ("example.com:", None),
            ("example.com:65536", None),
            ("example.com:-1", None),
            ("example.com:+80", None),
            ("[::1]80", None),
            ("[example.com]:80", None),
            ("a:b:c", None),
            ("user@example.com", None),
            ("exa mple.com", None),
            ("", None),
            (":80", None),
        ];
        for (input, expected) in cases {
            let got = Host::parse(input);
            let expected = expected.map(|(name, ip, port)| Host {
                name: name.to_owned(),
                ip: ip.map(|ip| ip.parse().unwrap()),
                port,
            });
            assert_eq!(got, expected, "{input:?}");
        }
        assert!(Host::parse(&"a".repeat(400)).is_none());
    }

    #[test]
    fn host_displays_as_parsed() {
        for s in ["example.com", "example.com:80", "[::1]:8080", "10.1.2.3:9"] {
            assert_eq!(Host::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn request_without_host_header_uses_the_authority() {
        let req = Request::get("http://10.0.0.1:81/x").body(()).unwrap();
        let host = Host::of_request(&req).unwrap();
        assert_eq!(host.port(), Some(81));
        let req = Request::get("/x").body(()).unwrap();
        assert_eq!(Host::of_request(&req), None);
    }

    #[test]
    fn method_names() {
        assert_eq!(method_text(&Method::PATCH), "PATCH");
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_text(&custom), "PURGE");
    }
}
