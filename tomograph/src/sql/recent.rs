//! The statements a thread ran recently, per tracer: a statement run again (the common case:
//! an application runs the same few statements over and over) is not processed again, and
//! taking it costs no lock.

use std::cell::RefCell;

use super::SqlStatement;

/// Statements remembered per thread.
const ENTRIES: usize = 64;
/// Longer statements are not remembered (a bulk insert should not pin its text): at most
/// 64 KiB per thread.
const MAX_LEN: usize = 1024;

struct Entry {
    tracer: u64,
    sql: Box<str>,
    statement: SqlStatement,
}

thread_local! {
    /// Most recently used last.
    static RECENT: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// The statement `sql` as tracer `tracer` processed it on this thread, if remembered.
pub(super) fn get(tracer: u64, sql: &str) -> Option<SqlStatement> {
    RECENT
        .try_with(|recent| {
            let mut recent = recent.try_borrow_mut().ok()?;
            let at = recent
                .iter()
                .rposition(|e| e.tracer == tracer && *e.sql == *sql)?;
            let last = recent.len() - 1;
            if at != last {
                recent.swap(at, last);
            }
            Some(recent[last].statement.clone())
        })
        .ok()
        .flatten()
}

/// Remembers `statement`, evicting the least recently used one when full.
pub(super) fn put(tracer: u64, sql: &str, statement: &SqlStatement) {
    if sql.len() > MAX_LEN {
        return;
    }
    let _ = RECENT.try_with(|recent| {
        let Ok(mut recent) = recent.try_borrow_mut() else {
            return;
        };
        if recent.len() >= ENTRIES {
            recent.remove(0);
        }
        recent.push(Entry {
            tracer,
            sql: sql.into(),
            statement: statement.clone(),
        });
    });
}
