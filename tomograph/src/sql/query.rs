//! What a SQL statement's text says: its operation, its normalized form, a capped copy.
//! Pure functions on `&str`, shared by every adapter.

use super::dialect::{Dialect, Kind};

/// The statement's operation, upper case (`SELECT`, `INSERT`, …): the first keyword after
/// leading comments, parentheses and white space; for `WITH`, the statement the common table
/// expressions lead to. Unknown or odd statements give `SQL`. Always a short static name, so
/// it is safe as a span name and in metric names.
///
/// ```
/// use tomograph::sql::operation;
/// assert_eq!(operation("select 1"), "SELECT");
/// assert_eq!(operation("  /* hint */ -- note\n insert into t values (1)"), "INSERT");
/// assert_eq!(operation("WITH x AS (SELECT 1) UPDATE t SET a = (SELECT * FROM x)"), "UPDATE");
/// assert_eq!(operation("(SELECT 1) UNION (SELECT 2)"), "SELECT");
/// assert_eq!(operation("DROP TABLE users; --"), "DROP");
/// assert_eq!(operation("🙂"), "SQL");
/// ```
pub fn operation(sql: &str) -> &'static str {
    let mut words = Words::new(sql);
    let Some(first) = words.next_keyword() else {
        return "SQL";
    };
    if first.eq_ignore_ascii_case("WITH") {
        while let Some(word) = words.next_top_level_keyword() {
            if let Some(op) = known(word)
                .filter(|op| matches!(*op, "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE"))
            {
                return op;
            }
        }
        return "WITH";
    }
    known(first).unwrap_or("SQL")
}

const OPERATIONS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "MERGE",
    "UPSERT",
    "VALUES",
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "RENAME",
    "PRAGMA",
    "SET",
    "SHOW",
    "EXPLAIN",
    "ANALYZE",
    "VACUUM",
    "REINDEX",
    "CALL",
    "EXEC",
    "EXECUTE",
    "GRANT",
    "REVOKE",
    "LOCK",
    "UNLOCK",
    "USE",
    "COPY",
    "DECLARE",
    "FETCH",
    "CLOSE",
    "PREPARE",
    "DEALLOCATE",
    "LISTEN",
    "NOTIFY",
    "DESCRIBE",
    "DESC",
    "ATTACH",
    "DETACH",
    "COMMENT",
    "WITH",
    "TABLE",
    "DO",
    "LOAD",
    "HANDLER",
    "OPTIMIZE",
    "CHECK",
    "REFRESH",
    "CLUSTER",
    "DISCARD",
    "RESET",
    "CHECKPOINT",
    "ABORT",
];

pub(super) fn known(word: &str) -> Option<&'static str> {
    OPERATIONS
        .iter()
        .copied()
        .find(|op| op.eq_ignore_ascii_case(word))
}

/// A tiny scanner over SQL: skips white space, comments, string literals and quoted names.
struct Words<'a> {
    s: &'a str,
    pos: usize,
    depth: i32,
}

impl<'a> Words<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            s,
            pos: 0,
            depth: 0,
        }
    }

    /// The next bare word at any depth, skipping opening parentheses (used for the first one).
    fn next_keyword(&mut self) -> Option<&'a str> {
        loop {
            match self.next_token()? {
                Token::Word(w) => return Some(w),
                Token::Open | Token::Close | Token::Other => {
                    if self.pos > 0
                        && self.depth <= 0
                        && !self.s[..self.pos]
                            .trim_start_matches(['(', ' ', '\t', '\n', '\r'])
                            .is_empty()
                    {
                        // Something that is not a parenthesis came first.
                        return None;
                    }
                }
            }
        }
    }

    /// The next bare word outside parentheses.
    fn next_top_level_keyword(&mut self) -> Option<&'a str> {
        loop {
            if let Token::Word(w) = self.next_token()?
                && self.depth == 0
            {
                return Some(w);
            }
        }
    }

    fn next_token(&mut self) -> Option<Token<'a>> {
        let bytes = self.s.as_bytes();
        loop {
            let b = *bytes.get(self.pos)?;
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b';' | b',' => self.pos += 1,
                b'-' if bytes.get(self.pos + 1) == Some(&b'-') => {
                    self.pos = self.s[self.pos..]
                        .find('\n')
                        .map_or(self.s.len(), |i| self.pos + i + 1);
                }
                b'#' => {
                    self.pos = self.s[self.pos..]
                        .find('\n')
                        .map_or(self.s.len(), |i| self.pos + i + 1);
                }
                b'/' if bytes.get(self.pos + 1) == Some(&b'*') => {
                    self.pos = self.s[self.pos + 2..]
                        .find("*/")
                        .map_or(self.s.len(), |i| self.pos + 2 + i + 2);
                }
                b'\'' | b'"' | b'`' => {
                    self.pos = skip_quoted(bytes, self.pos);
                    return Some(Token::Other);
                }
                b'(' => {
                    self.pos += 1;
                    self.depth += 1;
                    return Some(Token::Open);
                }
                b')' => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Some(Token::Close);
                }
                b if b.is_ascii_alphabetic() || b == b'_' => {
                    let start = self.pos;
                    while bytes
                        .get(self.pos)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$')
                    {
                        self.pos += 1;
                    }
                    return Some(Token::Word(&self.s[start..self.pos]));
                }
                _ => {
                    self.pos += self.s[self.pos..].chars().next().map_or(1, char::len_utf8);
                    return Some(Token::Other);
                }
            }
        }
    }
}

enum Token<'a> {
    Word(&'a str),
    Open,
    Close,
    Other,
}

/// The index just past the quoted literal or name starting at `start` (doubled quotes and
/// backslash escapes stay inside).
fn skip_quoted(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' && quote == b'\'' {
            i += 2;
            continue;
        }
        if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// The statement with its literal values replaced by `?` and its white space folded, so that
/// no user data reaches a trace. What is a literal depends on the `dialect` ([`Dialect`]):
/// strings in every form the database knows (`'…'`, `E'…'`, `$tag$…$tag$`, MySQL's `"…"`,
/// `X'…'`, …), numbers and `TRUE`/`FALSE` become `?`; comments are dropped; names,
/// keywords and placeholders (`?`, `$1`, `:name`) stay.
///
/// ```
/// use tomograph::sql::{normalize, Dialect};
/// assert_eq!(
///     normalize("SELECT * FROM users WHERE name = 'O''Brien' AND id IN (1, 2.5, -3)  -- who", Dialect::Postgres),
///     "SELECT * FROM users WHERE name = ? AND id IN (?, ?, -?)"
/// );
/// assert_eq!(normalize("select t1.c2 from t1 where c3 = $1", Dialect::Postgres), "select t1.c2 from t1 where c3 = $1");
/// assert_eq!(normalize("INSERT INTO \"odd name\" VALUES (x'ff', 1e10)", Dialect::Sqlite), "INSERT INTO \"odd name\" VALUES (?, ?)");
/// // A backslash escapes nothing in a PostgreSQL or SQLite string…
/// assert_eq!(normalize(r"WHERE name IN ('C:\', 'secret')", Dialect::Sqlite), "WHERE name IN (?, ?)");
/// // …but does in MySQL, where "…" is a string too.
/// assert_eq!(normalize(r#"WHERE name IN ('it\'s', "secret")"#, Dialect::MYSQL), "WHERE name IN (?, ?)");
/// ```
pub fn normalize(sql: &str, dialect: Dialect) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut pending_space = false;
    let push = |out: &mut String, pending: &mut bool, s: &str| {
        if *pending && !out.is_empty() {
            out.push(' ');
        }
        *pending = false;
        out.push_str(s);
    };
    while i < sql.len() {
        let (kind, end) = dialect.token(sql, i);
        let piece = &sql[i..end];
        i = end;
        match kind {
            Kind::Space | Kind::Comment => pending_space = true,
            Kind::Literal => push(&mut out, &mut pending_space, "?"),
            Kind::Name | Kind::Word | Kind::Placeholder => {
                push(&mut out, &mut pending_space, piece);
            }
            Kind::Other => match piece {
                "(" => {
                    push(&mut out, &mut pending_space, piece);
                    pending_space = false;
                }
                ")" | "," | ";" => {
                    pending_space = false;
                    out.push_str(piece);
                }
                _ => push(&mut out, &mut pending_space, piece),
            },
        }
    }
    out
}

/// `sql` cut to at most `max_bytes` bytes on a character boundary, with `…` appended when
/// cut.
///
/// ```
/// use tomograph::sql::truncate;
/// assert_eq!(truncate("SELECT 1", 100), "SELECT 1");
/// assert_eq!(truncate("SELECT 'été'", 10), "SELECT 'é…");
/// ```
pub fn truncate(sql: &str, max_bytes: usize) -> std::borrow::Cow<'_, str> {
    if sql.len() <= max_bytes {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut end = max_bytes;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &sql[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations() {
        for (sql, op) in [
            ("SELECT 1", "SELECT"),
            ("\n\tselect * from t", "SELECT"),
            ("Insert INTO t VALUES (1)", "INSERT"),
            ("update t set a = 1", "UPDATE"),
            ("DELETE FROM t", "DELETE"),
            ("BEGIN", "BEGIN"),
            ("begin deferred transaction", "BEGIN"),
            ("COMMIT", "COMMIT"),
            ("ROLLBACK TO SAVEPOINT a", "ROLLBACK"),
            ("-- comment\nSELECT 1", "SELECT"),
            ("/* a */ /* b */ DELETE FROM t", "DELETE"),
            ("# mysql comment\nSHOW TABLES", "SHOW"),
            (
                "WITH a AS (SELECT 1), b AS (SELECT 2) SELECT * FROM a, b",
                "SELECT",
            ),
            (
                "with recursive r(n) as (select 1 union all select n+1 from r) insert into t select n from r",
                "INSERT",
            ),
            (
                "WITH a AS (DELETE FROM t RETURNING *) SELECT * FROM a",
                "SELECT",
            ),
            ("((SELECT 1))", "SELECT"),
            ("", "SQL"),
            ("   ", "SQL"),
            ("42", "SQL"),
            ("'SELECT'", "SQL"),
            ("frobnicate the database", "SQL"),
            ("PRAGMA foreign_keys = ON", "PRAGMA"),
        ] {
            assert_eq!(operation(sql), op, "{sql:?}");
        }
    }

    #[test]
    fn normalize_removes_every_literal() {
        for (sql, want) in [
            ("SELECT 'a' || 'b'", "SELECT ? || ?"),
            ("SELECT E'\\'x', X'FF', N'y'", "SELECT ?, ?, ?"),
            ("SELECT $$ secret $$, $t$ more $t$", "SELECT ?, ?"),
            ("SELECT 1.5e-3, .5, 0x1F", "SELECT ?, ?, ?"),
            (
                "SELECT a1, b_2 FROM t3 WHERE x = ?",
                "SELECT a1, b_2 FROM t3 WHERE x = ?",
            ),
            ("SELECT 'unterminated", "SELECT ?"),
            ("SELECT  \n  1", "SELECT ?"),
            ("SELECT :name, @v, ?1", "SELECT :name, @v, ?1"),
        ] {
            assert_eq!(normalize(sql, Dialect::Postgres), want, "{sql:?}");
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "ééééé";
        for n in 0..=s.len() {
            let t = truncate(s, n);
            assert!(t.len() <= n + '…'.len_utf8());
        }
    }
}
