//! [`Text`]: the string type of names, notes and tags — free to clone.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// A string that is `&'static` (free to copy), shared (`Arc<str>`: clones bump a counter), or
/// owned. Span names, notes and tag values are `Text`, so a name or a SQL statement used again
/// and again is never copied.
///
/// ```
/// use tomograph::Text;
/// use std::sync::Arc;
/// let a = Text::from("static");
/// let b = Text::from(String::from("owned"));
/// let c = Text::from(Arc::<str>::from("shared"));
/// assert_eq!(&*a, "static");
/// assert_eq!(b, "owned");
/// assert_eq!(c.clone().to_string(), "shared");
/// ```
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
    Owned(Box<str>),
}

impl Text {
    /// A `'static` text, usable in `const`s.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Repr::Static(s))
    }

    /// Whether the text is a `'static` string (owns nothing, needs no drop).
    #[inline]
    pub(crate) fn is_static(&self) -> bool {
        matches!(self.0, Repr::Static(_))
    }

    /// The text as a `&'static str`, when it is one.
    #[inline]
    pub(crate) fn as_static(&self) -> Option<&'static str> {
        match self.0 {
            Repr::Static(s) => Some(s),
            _ => None,
        }
    }

    /// The text as `&str`.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
            Repr::Owned(s) => s,
        }
    }

    /// A text that can be cloned cheaply forever after (moves an owned string into an `Arc`).
    pub fn into_shared(self) -> Self {
        match self.0 {
            Repr::Owned(s) => Self(Repr::Shared(Arc::from(s))),
            other => Self(other),
        }
    }
}

impl Default for Text {
    fn default() -> Self {
        Self::from_static("")
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Text {}
impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}
impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}
impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}
impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Text {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}
impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Self(Repr::Static(s))
    }
}
impl From<String> for Text {
    fn from(s: String) -> Self {
        Self(Repr::Owned(s.into_boxed_str()))
    }
}
impl From<Box<str>> for Text {
    fn from(s: Box<str>) -> Self {
        Self(Repr::Owned(s))
    }
}
impl From<Arc<str>> for Text {
    fn from(s: Arc<str>) -> Self {
        Self(Repr::Shared(s))
    }
}
impl From<std::borrow::Cow<'static, str>> for Text {
    fn from(s: std::borrow::Cow<'static, str>) -> Self {
        match s {
            std::borrow::Cow::Borrowed(s) => Self(Repr::Static(s)),
            std::borrow::Cow::Owned(s) => s.into(),
        }
    }
}
impl From<&String> for Text {
    fn from(s: &String) -> Self {
        s.clone().into()
    }
}
impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_owned()
    }
}
