//! Tags: key → value pairs on a span.

use std::fmt;
use std::sync::Arc;

use crate::text::Text;

/// The value of a [`Tag`].
///
/// ```
/// use tomograph::TagValue;
/// assert_eq!(TagValue::from(42).to_string(), "42");
/// assert_eq!(TagValue::from("x"), TagValue::Str("x".into()));
/// assert_eq!(TagValue::from(true).to_string(), "true");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TagValue {
    /// Text.
    Str(Text),
    /// A signed integer.
    I64(i64),
    /// A floating-point number.
    F64(f64),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for TagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagValue::Str(s) => f.write_str(s),
            TagValue::I64(v) => write!(f, "{v}"),
            TagValue::F64(v) => write!(f, "{v}"),
            TagValue::Bool(v) => write!(f, "{v}"),
        }
    }
}

impl From<&'static str> for TagValue {
    fn from(v: &'static str) -> Self {
        TagValue::Str(v.into())
    }
}
impl From<String> for TagValue {
    fn from(v: String) -> Self {
        TagValue::Str(v.into())
    }
}
impl From<Arc<str>> for TagValue {
    fn from(v: Arc<str>) -> Self {
        TagValue::Str(v.into())
    }
}
impl From<Text> for TagValue {
    fn from(v: Text) -> Self {
        TagValue::Str(v)
    }
}
impl From<bool> for TagValue {
    fn from(v: bool) -> Self {
        TagValue::Bool(v)
    }
}
impl From<f64> for TagValue {
    fn from(v: f64) -> Self {
        TagValue::F64(v)
    }
}
impl From<f32> for TagValue {
    fn from(v: f32) -> Self {
        TagValue::F64(v.into())
    }
}
macro_rules! tag_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for TagValue {
            fn from(v: $t) -> Self {
                TagValue::I64(v as i64)
            }
        }
    )*};
}
tag_from_int!(i8, i16, i32, i64, u8, u16, u32);
impl From<u64> for TagValue {
    /// Values above `i64::MAX` become text, so nothing is lost.
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or_else(|_| TagValue::Str(v.to_string().into()), TagValue::I64)
    }
}
impl From<usize> for TagValue {
    fn from(v: usize) -> Self {
        TagValue::from(v as u64)
    }
}

/// A key → value pair on a span.
#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    /// The key.
    pub key: Text,
    /// The value.
    pub value: TagValue,
}

impl Tag {
    /// A tag `key` = `value`.
    pub fn new(key: impl Into<Text>, value: impl Into<TagValue>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A span's tags, in the order they were set: those it shares with other spans (a
/// database's, a statement's) first, then its own. A key set twice appears twice.
///
/// ```
/// use tomograph::{Endpoint, Span, SpanId, Timestamp, TraceId};
/// let span = Span::new(TraceId::from_u64(1).unwrap(), SpanId::from_u64(2).unwrap(), "q", Endpoint::new("svc"), Timestamp::now())
///     .with_tag("rows", 1)
///     .with_tag("rows", 2);
/// let tags = span.tags();
/// assert_eq!(tags.len(), 2);
/// assert_eq!(tags.distinct().count(), 1, "Zipkin keeps the last value of a key");
/// assert_eq!(tags.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), ["rows", "rows"]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Tags<'a> {
    pub(super) shared: &'a [Tag],
    pub(super) own: &'a [Tag],
    /// An SQL statement's interned row counts.
    pub(super) counts: &'a [Tag],
}

/// The iterator over [`Tags`]: the shared tags, then the span's own (a statement's row counts
/// last).
pub type TagsIter<'a> = std::iter::Chain<
    std::iter::Chain<std::slice::Iter<'a, Tag>, std::slice::Iter<'a, Tag>>,
    std::slice::Iter<'a, Tag>,
>;

impl<'a> Tags<'a> {
    /// How many tags (a key set twice counts twice).
    pub fn len(&self) -> usize {
        self.shared.len() + self.own.len() + self.counts.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty() && self.own.is_empty() && self.counts.is_empty()
    }
    /// Every tag, in the order set.
    pub fn iter(&self) -> TagsIter<'a> {
        self.shared
            .iter()
            .chain(self.own.iter())
            .chain(self.counts.iter())
    }
    /// The last value set for `key`.
    pub fn get(&self, key: &str) -> Option<&'a TagValue> {
        self.iter().rev().find(|t| t.key == key).map(|t| &t.value)
    }
    /// One tag per key — the last one set — in the order set (what Zipkin keeps).
    pub fn distinct(&self) -> impl Iterator<Item = &'a Tag> + Clone + 'a {
        let all = *self;
        self.iter()
            .enumerate()
            .filter(move |(i, tag)| !all.iter().skip(i + 1).any(|later| later.key == tag.key))
            .map(|(_, tag)| tag)
    }
}

impl<'a> IntoIterator for Tags<'a> {
    type Item = &'a Tag;
    type IntoIter = TagsIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
