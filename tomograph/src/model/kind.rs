//! A span's role in an exchange.

/// What role a span plays in an RPC or a message exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// The caller's side of an RPC (and every SQL statement).
    Client,
    /// The callee's side of an RPC.
    Server,
    /// Sending a message to a broker.
    Producer,
    /// Receiving a message from a broker.
    Consumer,
}

impl Kind {
    /// The upper-case name Zipkin v2 uses (`CLIENT`, `SERVER`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Client => "CLIENT",
            Kind::Server => "SERVER",
            Kind::Producer => "PRODUCER",
            Kind::Consumer => "CONSUMER",
        }
    }
}
