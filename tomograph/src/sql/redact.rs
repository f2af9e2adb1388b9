//! A database's error message with the data it quotes masked: what a failed statement's span
//! records unless the user opted in to bound values.
//!
//! Databases quote the offending value in their messages — MySQL and MariaDB `Duplicate entry
//! 'alice@example.com' for key 'users.email'`, `Incorrect integer value: 'x' for column …`,
//! `… near 'secret' at line 1`; PostgreSQL `invalid input syntax for type integer: "x"`,
//! `Key (email)=(alice@example.com) already exists.`, `Failing row contains (…)` — and they
//! print it as it is, without escaping its quotes. So the masking reads a message as text,
//! not as SQL:
//!
//! - a quoted run (`'…'` or `"…"`) right after a word that names a schema object (`key`,
//!   `column`, `constraint`, `relation`, `table`, `index`, `type`, …) is that object's name
//!   and stays, as do names in backticks (MySQL's `` `db`.`table` ``);
//! - any other quoted run is data and becomes `?`. It ends at the last matching quote that
//!   could close it (followed by white space, punctuation or the end), unless a message
//!   template says where it ends: `Duplicate entry '…' for key`, `value: '…' for column`,
//!   `near '…' at line`. A value that contains its own quotes cannot end the mask early;
//!   two values may merge into one `?`;
//! - a parenthesized list after `=` or `contains` (PostgreSQL's `Key (id)=(…)`,
//!   `Failing row contains (…)`) becomes `(?)`;
//! - everything else — the message's words, numbers, error codes — stays.

/// Words after which a quoted run is the name of a schema object, not data.
const NAME_WORDS: &[&str] = &[
    "key",
    "column",
    "columns",
    "constraint",
    "table",
    "relation",
    "index",
    "schema",
    "database",
    "function",
    "procedure",
    "trigger",
    "view",
    "sequence",
    "type",
    "field",
    "savepoint",
    "role",
    "collation",
    "extension",
    "operator",
    "domain",
    "cursor",
    "tablespace",
    "partition",
    "variable",
];

/// Message templates whose value ends at a known phrase (MySQL prints values unescaped).
const TEMPLATES: &[(&str, &str)] = &[
    ("Duplicate entry ", " for key"),
    ("value: ", " for column"),
    ("near ", " at line"),
];

/// `message` with every quoted value and literal masked (see the [module docs of `tomograph::sql`](crate::sql)).
///
/// ```
/// use tomograph::sql::redact_message;
/// assert_eq!(
///     redact_message("Duplicate entry 'O'Brien' for key 'PRIMARY'"),
///     "Duplicate entry ? for key 'PRIMARY'"
/// );
/// assert_eq!(
///     redact_message("invalid input syntax for type integer: \"s3cr3t\""),
///     "invalid input syntax for type integer: ?"
/// );
/// assert_eq!(
///     redact_message("Key (email)=(a@b.c) already exists."),
///     "Key (email)=(?) already exists."
/// );
/// assert_eq!(
///     redact_message("duplicate key value violates unique constraint \"users_pkey\""),
///     "duplicate key value violates unique constraint \"users_pkey\""
/// );
/// ```
pub fn redact_message(message: &str) -> String {
    let b = message.as_bytes();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                if follows_name_word(&message[..i])
                    && let Some(end) = name_end(b, i, q)
                {
                    out.push_str(&message[i..end]);
                    i = end;
                } else {
                    out.push('?');
                    i = value_end(message, i, q);
                }
            }
            b'`' => {
                let end = message[i + 1..]
                    .find('`')
                    .map_or(message.len(), |n| i + 1 + n + 1);
                out.push_str(&message[i..end]);
                i = end;
            }
            b'(' if list_follows(&message[..i]) => {
                out.push_str("(?)");
                i = list_end(b, i);
            }
            _ => {
                let len = message[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&message[i..i + len]);
                i += len;
            }
        }
    }
    out
}

/// Whether the text before a quote ends with a word naming a schema object (`… for key `).
fn follows_name_word(before: &str) -> bool {
    let trimmed = before.trim_end_matches(' ');
    if trimmed.len() == before.len() {
        // `…key'x'`: no space, not a name.
        return false;
    }
    let word_start = trimmed
        .rfind(|c: char| !c.is_ascii_alphabetic())
        .map_or(0, |n| n + 1);
    let word = &trimmed[word_start..];
    NAME_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word))
}

/// The end of a name quoted from `i`: the first closing quote followed by a boundary
/// (doubled quotes stay inside); `None` when it does not close.
fn name_end(b: &[u8], i: usize, q: u8) -> Option<usize> {
    let mut k = i + 1;
    while k < b.len() {
        if b[k] == q {
            if b.get(k + 1) == Some(&q) {
                k += 2;
                continue;
            }
            if closes(b, k) {
                return Some(k + 1);
            }
        }
        k += 1;
    }
    None
}

/// Whether the quote at `k` may close a run: followed by the end, white space or punctuation.
fn closes(b: &[u8], k: usize) -> bool {
    b.get(k + 1).is_none_or(|&c| {
        c.is_ascii_whitespace() || matches!(c, b',' | b'.' | b';' | b':' | b')' | b']')
    })
}

/// The end of a value quoted from `i`: where its template says, else after the last quote
/// that could close it, else the end of the message.
fn value_end(message: &str, i: usize, q: u8) -> usize {
    let b = message.as_bytes();
    let rest = &message[i + 1..];
    for (lead, tail) in TEMPLATES {
        if message[..i].ends_with(lead) {
            let anchor = format!("{}{tail}", char::from(q));
            if let Some(n) = rest.rfind(&anchor) {
                return i + 1 + n + 1;
            }
        }
    }
    (i + 1..b.len())
        .rev()
        .find(|&k| b[k] == q && closes(b, k))
        .map_or(b.len(), |k| k + 1)
}

/// Whether a parenthesized list starting here is data: after `=` (`Key (id)=(…)`) or after
/// `contains ` (`Failing row contains (…)`).
fn list_follows(before: &str) -> bool {
    before.ends_with('=') || before.trim_end_matches(' ').ends_with("contains")
}

/// After the last `)` that could close the list starting at `i` (followed by a boundary), or
/// the end.
fn list_end(b: &[u8], i: usize) -> usize {
    (i + 1..b.len())
        .rev()
        .find(|&k| b[k] == b')' && closes(b, k))
        .map_or(b.len(), |k| k + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_what_databases_quote() {
        for (message, want) in [
            (
                "error returned from database: 1062 (23000): Duplicate entry 's3cr3t' for key 'PRIMARY'",
                "error returned from database: 1062 (23000): Duplicate entry ? for key 'PRIMARY'",
            ),
            (
                "Duplicate entry 'a' for key 'b' for key 'users.PRIMARY'",
                "Duplicate entry ? for key 'users.PRIMARY'",
            ),
            (
                "Incorrect integer value: 'it's \"x\"' for column `test`.`t`.`n` at row 1",
                "Incorrect integer value: ? for column `test`.`t`.`n` at row 1",
            ),
            (
                "Incorrect integer value: 'x' for column 'n' at row 1",
                "Incorrect integer value: ? for column 'n' at row 1",
            ),
            (
                "You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near ''secret' at line 1' at line 1",
                "You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near ? at line 1",
            ),
            (
                "Unknown column 'nmae' in 'field list'",
                "Unknown column 'nmae' in ?",
            ),
            (
                "invalid input syntax for type integer: \"a\" b\"",
                "invalid input syntax for type integer: ?",
            ),
            (
                "value \"99999999999\" is out of range for type integer",
                "value ? is out of range for type integer",
            ),
            (
                "null value in column \"n\" of relation \"t\" violates not-null constraint",
                "null value in column \"n\" of relation \"t\" violates not-null constraint",
            ),
            (
                "Key (lower(email))=(A@B.C) already exists.",
                "Key (lower(email))=(?) already exists.",
            ),
            (
                "Failing row contains (1, secret (x), null).",
                "Failing row contains (?).",
            ),
            ("near \"secret\": syntax error", "near ?: syntax error"),
            (
                "CHECK constraint failed: name <> 'forbidden'",
                "CHECK constraint failed: name <> ?",
            ),
            ("unterminated 'secret", "unterminated ?"),
            ("for key 'unterminated", "for key ?"),
            (
                "(code: 2067) UNIQUE constraint failed: t.id",
                "(code: 2067) UNIQUE constraint failed: t.id",
            ),
        ] {
            assert_eq!(redact_message(message), want, "{message:?}");
        }
    }
}
