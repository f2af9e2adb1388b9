//! Describing a statement's bound parameters, for users who opt in with
//! [`record_parameters`](tomograph::sql::SqlTracerBuilder::record_parameters).
//!
//! rusqlite's `Params` is sealed and gives no access to the values, and SQLite has no API
//! that reads a binding back, but SQLite can print the statement with its bindings in place
//! (`sqlite3_expanded_sql`). Walking that text beside the statement as written recovers each
//! placeholder's value as SQLite writes it (`42`, `'O''Brien'`, `x'ff00'`, `NULL`), keyed by
//! its 0-based index (`?`, `?1`) or its name without the sigil (`:name` → `name`). Nothing
//! here runs unless the user opted in and the statement is recorded.

use rusqlite::Statement;

/// The bound values of `stmt` (prepared from `sql`), as `(key, value)`: `("0", "42")`,
/// `("who", "'x'")`; the expanded statement itself (key `expanded_sql`) when the two texts
/// cannot be lined up.
pub(crate) fn describe(stmt: &Statement<'_>, sql: &str) -> Vec<(String, String)> {
    match stmt.expanded_sql() {
        Some(expanded) => {
            pair_up(sql, &expanded).unwrap_or_else(|| vec![("expanded_sql".to_owned(), expanded)])
        }
        None => Vec::new(),
    }
}

/// Lines up `sql` (with placeholders) and `expanded` (with values) and lists the values.
fn pair_up(sql: &str, expanded: &str) -> Option<Vec<(String, String)>> {
    let (a, b) = (sql.as_bytes(), expanded.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    // The index of the next anonymous `?` (one past the largest index so far, as SQLite
    // numbers them).
    let mut next_index = 0usize;
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            i += 1;
            j += 1;
            continue;
        }
        let name_end = placeholder_end(a, i)?;
        let value_end = literal_end(b, j)?;
        let (name, value) = (&sql[i..name_end], &expanded[j..value_end]);
        if name == "?" || !seen.contains(&name) {
            let key = if name == "?" {
                next_index += 1;
                (next_index - 1).to_string()
            } else if let Some(n) = name.strip_prefix('?') {
                let n: usize = n.parse().ok()?;
                next_index = next_index.max(n);
                n.saturating_sub(1).to_string()
            } else {
                next_index += 1;
                name[1..].to_owned()
            };
            if name != "?" {
                seen.push(name);
            }
            out.push((key, value.to_owned()));
        }
        i = name_end;
        j = value_end;
    }
    (j == b.len()).then_some(out)
}

/// The end of the placeholder (`?`, `?7`, `:name`, `@name`, `$name`) starting at `i`.
fn placeholder_end(a: &[u8], i: usize) -> Option<usize> {
    let mut end = i + 1;
    match a[i] {
        b'?' => {
            while a.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
        }
        b':' | b'@' | b'$' => {
            while a.get(end).is_some_and(|c| {
                c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b':') || *c >= 0x80
            }) {
                end += 1;
            }
            if end == i + 1 {
                return None;
            }
        }
        _ => return None,
    }
    Some(end)
}

/// The end of the literal SQLite printed at `j`: `NULL`, a number, `'text'`, `x'blob'`.
fn literal_end(b: &[u8], j: usize) -> Option<usize> {
    let quoted_from = |start: usize| {
        let mut k = start + 1;
        while k < b.len() {
            if b[k] == b'\'' {
                if b.get(k + 1) == Some(&b'\'') {
                    k += 2;
                    continue;
                }
                return Some(k + 1);
            }
            k += 1;
        }
        None
    };
    match b[j] {
        b'\'' => quoted_from(j),
        b'x' | b'X' if b.get(j + 1) == Some(&b'\'') => quoted_from(j + 1),
        b'N' if b[j..].starts_with(b"NULL") => Some(j + 4),
        b'-' | b'0'..=b'9' => {
            let digits = |mut k: usize| {
                while b.get(k).is_some_and(u8::is_ascii_digit) {
                    k += 1;
                }
                k
            };
            let mut k = digits(j + 1);
            if b.get(k) == Some(&b'.') {
                k = digits(k + 1);
            }
            if matches!(b.get(k), Some(b'e' | b'E')) {
                k += 1;
                if matches!(b.get(k), Some(b'+' | b'-')) {
                    k += 1;
                }
                k = digits(k);
            }
            Some(k)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(sql: &str, bind: impl rusqlite::Params) -> String {
        let db = rusqlite::Connection::open_in_memory().expect("open");
        let mut stmt = db.prepare(sql).expect("prepare");
        drop(stmt.query(bind).expect("query"));
        let listed: Vec<String> = describe(&stmt, sql)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        listed.join(", ")
    }

    #[test]
    fn positional_named_and_every_type() {
        assert_eq!(values("SELECT ?1", [42]), "0=42");
        assert_eq!(
            values("SELECT ?, ?, ?", (1.5, "O'Brien", None::<i64>)),
            "0=1.5, 1='O''Brien', 2=NULL"
        );
        assert_eq!(
            values(
                "SELECT :who, @n, :who || '?', $x",
                rusqlite::named_params! {":who": "a", "@n": -3, "$x": vec![0xffu8, 0]}
            ),
            "who='a', n=-3, x=x'ff00'"
        );
        assert_eq!(values("SELECT ?1 - 1, ?1-1", [1e300]), "0=1.0e+300");
        assert_eq!(values("SELECT ?2, ?1, ?", (1, 2, 3)), "1=2, 0=1, 2=3");
    }

    #[test]
    fn falls_back_to_the_expanded_text() {
        assert_eq!(pair_up("SELECT ?", "SELECT 'unterminated"), None);
        assert_eq!(pair_up("SELECT 1", "SELECT 1"), Some(Vec::new()));
    }
}
