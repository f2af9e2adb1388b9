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

/// Interning: text and endpoints used by span after span (a database's name and address, a
/// statement's text) become `&'static`, so that spans carry them without allocating and
/// without reference counts bouncing between the application's threads and the reporter's.
///
/// What is interned lives as long as the process; the total is capped at
/// [`INTERN_CAPACITY_BYTES`], after which callers fall back to shared (`Arc`) text.
pub(crate) mod intern {
    use std::cell::RefCell;
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;

    use crate::model::{Endpoint, SpanTemplate, Tag};

    /// The most bytes of text interned per process.
    pub(crate) const INTERN_CAPACITY_BYTES: usize = 4 << 20;
    /// Entries each thread remembers in front of the global table.
    const LOCAL_ENTRIES: usize = 256;

    #[derive(Default)]
    struct Global {
        texts: HashSet<&'static str>,
        endpoints: Vec<&'static Endpoint>,
        /// Templates by content (a database's: few).
        bases: Vec<&'static SpanTemplate>,
        /// A statement's template by its base and its own tags (all interned: compared by
        /// address).
        statements: HashMap<StatementKey, &'static SpanTemplate>,
        bytes: usize,
    }

    #[derive(PartialEq, Eq, Hash)]
    struct StatementKey {
        base: usize,
        /// Per tag: the key's address, the value's address and length.
        tags: Vec<(usize, usize, usize)>,
    }

    impl Global {
        fn with<R>(f: impl FnOnce(&mut Global) -> R) -> R {
            let mut guard = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
            f(guard.get_or_insert_with(Global::default))
        }

        /// Leaks `template` if the capacity allows.
        fn leak(&mut self, template: SpanTemplate) -> Option<&'static SpanTemplate> {
            let size = std::mem::size_of::<SpanTemplate>()
                + template.tags.len() * std::mem::size_of::<Tag>();
            if self.bytes + size > INTERN_CAPACITY_BYTES {
                return None;
            }
            self.bytes += size;
            Some(Box::leak(Box::new(template)))
        }
    }

    static GLOBAL: Mutex<Option<Global>> = Mutex::new(None);

    thread_local! {
        static LOCAL: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }

    /// `s` as a `&'static str`, or `None` once the capacity is used up.
    pub(crate) fn text(s: &str) -> Option<&'static str> {
        let local = LOCAL
            .try_with(|l| l.borrow().iter().rev().find(|t| **t == s).copied())
            .ok()
            .flatten();
        if local.is_some() {
            return local;
        }
        let interned = Global::with(|global| match global.texts.get(s) {
            Some(t) => Some(*t),
            None if global.bytes + s.len() <= INTERN_CAPACITY_BYTES => {
                let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
                global.texts.insert(leaked);
                global.bytes += s.len();
                Some(leaked)
            }
            None => None,
        })?;
        let _ = LOCAL.try_with(|l| {
            let mut l = l.borrow_mut();
            if l.len() >= LOCAL_ENTRIES {
                l.remove(0);
            }
            l.push(interned);
        });
        Some(interned)
    }

    /// `e` as a `&'static Endpoint` (endpoints are few: one per database and service).
    pub(crate) fn endpoint(e: &Endpoint) -> Option<&'static Endpoint> {
        Global::with(|global| {
            if let Some(found) = global.endpoints.iter().find(|x| **x == e) {
                return Some(*found);
            }
            let size = std::mem::size_of::<Endpoint>() + e.service_name().len();
            if global.bytes + size > INTERN_CAPACITY_BYTES {
                return None;
            }
            global.bytes += size;
            let leaked: &'static Endpoint = Box::leak(Box::new(e.clone()));
            global.endpoints.push(leaked);
            Some(leaked)
        })
    }

    /// The template with `remote` and `tags` (a database's; interned by value, so equal
    /// tracers share one).
    pub(crate) fn base_template(
        remote: Option<&'static Endpoint>,
        tags: &[Tag],
    ) -> Option<&'static SpanTemplate> {
        Global::with(|global| {
            let same_remote = |t: &SpanTemplate| match (t.remote_endpoint, remote) {
                (Some(a), Some(b)) => std::ptr::eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if let Some(found) = global
                .bases
                .iter()
                .find(|t| same_remote(t) && *t.tags == *tags)
            {
                return Some(*found);
            }
            let leaked = global.leak(SpanTemplate {
                remote_endpoint: remote,
                tags: tags.into(),
            })?;
            global.bases.push(leaked);
            Some(leaked)
        })
    }

    /// The template of a statement: its own tags (`(key, value)`, all interned or static:
    /// compared by address) ahead of `base`'s, talking to `base`'s remote endpoint.
    pub(crate) fn statement_template(
        base: &'static SpanTemplate,
        own: &[(&'static str, &'static str)],
    ) -> Option<&'static SpanTemplate> {
        let key = StatementKey {
            base: std::ptr::from_ref(base) as usize,
            tags: own
                .iter()
                .map(|(k, v)| (k.as_ptr() as usize, v.as_ptr() as usize, v.len()))
                .collect(),
        };
        Global::with(|global| {
            if let Some(found) = global.statements.get(&key) {
                return Some(*found);
            }
            let mut tags = Vec::with_capacity(base.tags.len() + own.len());
            tags.extend(own.iter().map(|(k, v)| Tag::new(*k, *v)));
            tags.extend(base.tags.iter().cloned());
            let leaked = global.leak(SpanTemplate {
                remote_endpoint: base.remote_endpoint,
                tags: tags.into(),
            })?;
            global.statements.insert(key, leaked);
            Some(leaked)
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_same_text_is_interned_once() {
            let a = text("SELECT 1 -- intern test").unwrap();
            let b = text(&String::from("SELECT 1 -- intern test")).unwrap();
            assert!(std::ptr::eq(a, b));
            let from_other_thread =
                std::thread::spawn(|| text("SELECT 1 -- intern test").map(|t| t.as_ptr() as usize))
                    .join()
                    .unwrap();
            assert_eq!(from_other_thread, Some(a.as_ptr() as usize));
        }

        #[test]
        fn endpoints_are_interned_by_value() {
            let e = Endpoint::new("postgresql").with_port(5432);
            assert!(std::ptr::eq(
                endpoint(&e).unwrap(),
                endpoint(&e.clone()).unwrap()
            ));
        }
    }
}
