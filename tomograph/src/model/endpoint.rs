//! Endpoints: where a span happens, and whom it talks to.

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use crate::text::Text;

/// Where a span happens: a service name, an IP address and a port.
///
/// ```
/// use tomograph::Endpoint;
/// let db = Endpoint::new("postgresql").with_ip("127.0.0.1".parse().unwrap()).with_port(5432);
/// assert_eq!(db.service_name(), "postgresql");
/// assert_eq!(db.port(), Some(5432));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    service_name: Text,
    ip: Option<IpAddr>,
    port: Option<u16>,
}

impl Endpoint {
    /// An endpoint with only a service name.
    pub fn new(service_name: impl Into<Text>) -> Self {
        Self {
            service_name: service_name.into(),
            ip: None,
            port: None,
        }
    }

    /// The same endpoint at `ip`.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// The same endpoint at `ip`, if any.
    pub fn with_optional_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.ip = ip;
        self
    }

    /// The same endpoint on `port` (0 means "unknown").
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = (port != 0).then_some(port);
        self
    }

    /// The service name (Zipkin's `serviceName`).
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The IP address, when known.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The port, when known.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

/// A cheap handle on an [`Endpoint`]: a `'static` one (the tracer's own, free to copy) or a
/// shared one.
#[derive(Clone, Debug)]
pub(crate) enum EndpointRef {
    Static(&'static Endpoint),
    Shared(Arc<Endpoint>),
}

impl Deref for EndpointRef {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        match self {
            EndpointRef::Static(e) => e,
            EndpointRef::Shared(e) => e,
        }
    }
}
