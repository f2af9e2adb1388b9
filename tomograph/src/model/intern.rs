//! Interning: text and endpoints used by span after span (a database's name and address, a
//! statement's text) become `&'static`, so that spans carry them without allocating and
//! without reference counts bouncing between the application's threads and the reporter's.
//!
//! What is interned lives as long as the process; the total is capped at
//! [`INTERN_CAPACITY_BYTES`], after which callers fall back to shared (`Arc`) text.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::{Endpoint, SpanTemplate, Tag};

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
        let size =
            std::mem::size_of::<SpanTemplate>() + template.tags.len() * std::mem::size_of::<Tag>();
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
