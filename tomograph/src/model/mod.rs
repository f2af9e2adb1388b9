//! The data model: traces, spans, notes, tags and endpoints (the Dapper/Zipkin model).
//!
//! A trace is a set of [`Span`]s sharing a [`TraceId`]; a span is a set of notes (timestamped
//! annotations) plus [`Tag`]s. A span's extent is its first note (`start`) to its last
//! (`stop`); the notes in between are its [`annotations`](Span::annotations). A
//! [`TraceToken`] is what it takes to continue a trace elsewhere; the interner makes what
//! many spans share `'static`.

mod endpoint;
mod id;
pub(crate) mod intern;
mod kind;
mod note;
mod rows;
mod span;
mod tag;
pub(crate) mod token;

pub use crate::text::Text;
pub use endpoint::Endpoint;
pub(crate) use endpoint::EndpointRef;
pub use id::{SpanId, TraceId};
pub use kind::Kind;
pub use note::{Note, START_NOTE, STOP_NOTE};
pub(crate) use rows::RowCounts;
pub use span::Span;
pub(crate) use span::{Peer, SpanTemplate};
pub use tag::{Tag, TagValue, Tags, TagsIter};
pub use token::TraceToken;
