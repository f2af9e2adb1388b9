//! [`RowCounts`]: the row counts of an SQL statement's span (`db.response.returned_rows`,
//! `db.response.affected_rows`) as interned tags.
//!
//! Nearly every statement span carries a row count, and statements return or change few rows.
//! A statement span made from an interned template has no tags of its own; giving it a count
//! the ordinary way would allocate a tag vector for that one tag (and free it on a backend's
//! thread). Instead, counts below [`INTERNED`] are slices of one static table, and the span
//! holds two bytes that name its slice.

use crate::keys;
use crate::text::Text;

use super::{Tag, TagValue};

/// Counts below this are interned.
pub(crate) const INTERNED: u64 = 256;

const N: usize = INTERNED as usize;

/// `[0, N)`: `returned_rows = n`. `[N, 3N)`: for each `n`, the pair `returned_rows = 0`,
/// `affected_rows = n` (a statement that returned nothing and changed `n` rows), whose second
/// half alone is `affected_rows = n`.
static TABLE: [Tag; 3 * N] = table();

const fn count(key: &'static str, n: usize) -> Tag {
    Tag {
        key: Text::from_static(key),
        value: TagValue::I64(n as i64),
    }
}

const fn table() -> [Tag; 3 * N] {
    let mut table = [const { count(keys::db::RESPONSE_RETURNED_ROWS, 0) }; 3 * N];
    let mut n = 0;
    while n < N {
        // The slots hold `'static` texts and integers: nothing to drop.
        std::mem::forget(std::mem::replace(
            &mut table[n],
            count(keys::db::RESPONSE_RETURNED_ROWS, n),
        ));
        std::mem::forget(std::mem::replace(
            &mut table[N + 2 * n + 1],
            count(keys::db::RESPONSE_AFFECTED_ROWS, n),
        ));
        n += 1;
    }
    table
}

/// A slice of the table: `0` for none, else `start + 1` in the low 12 bits and the length
/// above them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RowCounts(u16);

impl RowCounts {
    /// No counts.
    pub(crate) const NONE: Self = Self(0);

    const fn slice(start: usize, len: usize) -> Self {
        Self(((start + 1) | (len << 12)) as u16)
    }

    /// The tags for `returned` rows returned and `affected` rows changed, as a statement span
    /// records them (affected rows only when some were changed or none returned), when they
    /// are interned; `None` when they need ordinary tags (a count of [`INTERNED`] or more,
    /// or rows both returned and changed).
    pub(crate) fn new(returned: Option<u64>, affected: Option<u64>) -> Option<Self> {
        let small = |n: u64| (n < INTERNED).then_some(n as usize);
        let affected = affected.filter(|&a| a > 0 || returned.unwrap_or(0) == 0);
        Some(match (returned, affected) {
            (None, None) => Self::NONE,
            (Some(r), None) => Self::slice(small(r)?, 1),
            (Some(0), Some(a)) => Self::slice(N + 2 * small(a)?, 2),
            (None, Some(a)) => Self::slice(N + 2 * small(a)? + 1, 1),
            (Some(_), Some(_)) => return None,
        })
    }

    /// The tags.
    pub(crate) fn tags(self) -> &'static [Tag] {
        if self.0 == 0 {
            return &[];
        }
        let start = usize::from(self.0 & 0xfff) - 1;
        let len = usize::from(self.0 >> 12);
        &TABLE[start..start + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(counts: RowCounts) -> Vec<(String, String)> {
        counts
            .tags()
            .iter()
            .map(|t| (t.key.to_string(), t.value.to_string()))
            .collect()
    }

    fn expected(returned: Option<u64>, affected: Option<u64>) -> Vec<(String, String)> {
        let mut tags = Vec::new();
        if let Some(r) = returned {
            tags.push((keys::db::RESPONSE_RETURNED_ROWS.to_owned(), r.to_string()));
        }
        if let Some(a) = affected
            && (a > 0 || returned.unwrap_or(0) == 0)
        {
            tags.push((keys::db::RESPONSE_AFFECTED_ROWS.to_owned(), a.to_string()));
        }
        tags
    }

    #[test]
    fn every_interned_combination_reads_back_as_the_tags_it_stands_for() {
        let counts = [None, Some(0), Some(1), Some(2), Some(254), Some(255)];
        for returned in counts {
            for affected in counts {
                let want = expected(returned, affected);
                match RowCounts::new(returned, affected) {
                    Some(interned) => {
                        assert_eq!(pairs(interned), want, "{returned:?} {affected:?}")
                    }
                    None => assert!(
                        returned.unwrap_or(0) > 0 && affected.unwrap_or(0) > 0,
                        "{returned:?} {affected:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn large_counts_are_not_interned() {
        assert_eq!(RowCounts::new(Some(INTERNED), None), None);
        assert_eq!(RowCounts::new(Some(0), Some(INTERNED)), None);
        assert_eq!(RowCounts::new(None, Some(1 << 40)), None);
        assert_eq!(RowCounts::new(None, None), Some(RowCounts::NONE));
        assert!(RowCounts::NONE.tags().is_empty());
    }
}
