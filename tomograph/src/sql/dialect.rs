//! How each database writes literals, quoted names and comments: what the normalizer must
//! know to find every literal in a statement.
//!
//! | | PostgreSQL | MySQL / MariaDB | SQLite | standard |
//! |---|---|---|---|---|
//! | `'…'` | string, `''` only | string, `''` and `\'` (unless `NO_BACKSLASH_ESCAPES`) | string, `''` only | string, `''` only |
//! | `"…"` | name | string (name under `ANSI_QUOTES`) | name | name |
//! | other strings | `E'…'` (backslash escapes), `$tag$…$tag$`, `U&'…'`, `B'…'`, `X'…'` | `X'…'`, `b'…'`, `_charset'…'`, `0x…`, `0b…` | `X'…'` | `$tag$…$tag$` |
//! | other names | | `` `…` `` | `` `…` ``, `[…]` | `` `…` `` |
//! | comments | `--`, nested `/* */` | `--`, `#`, `/* */` | `--`, `/* */` | `--`, nested `/* */` |
//!
//! Everywhere: numbers (`42`, `1.5e-3`, `.5`, `0x1F`) and `TRUE` / `FALSE` are literals.
//! Where a reading is ambiguous the scanner takes the one that hides more (a comment that may
//! nest is read as nesting; an unterminated literal runs to the end of the text).

use super::DbSystem;

/// A database's SQL syntax for literals, quoted names and comments, for
/// [`normalize`](super::normalize). [`DbSystem::dialect`] gives each system's;
/// [`SqlTracerBuilder::dialect`](super::SqlTracerBuilder::dialect) overrides it (a MySQL
/// server running with `ANSI_QUOTES`, say).
///
/// ```
/// use tomograph::sql::{normalize, Dialect};
/// let sql = r#"SELECT * FROM "users" WHERE name IN ('C:\', "secret")"#;
/// assert_eq!(normalize(sql, Dialect::Postgres), r#"SELECT * FROM "users" WHERE name IN (?, "secret")"#);
/// assert_eq!(normalize(r"SELECT 'it\'s', 'x'", Dialect::MYSQL), "SELECT ?, ?");
/// let ansi = Dialect::MySql { ansi_quotes: true, backslash_escapes: true };
/// assert_eq!(normalize(r#"SELECT "name" FROM t"#, ansi), r#"SELECT "name" FROM t"#);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// ANSI SQL, for other databases: `'…'` with `''` as its only escape, `"…"` names; read
    /// cautiously (dollar quotes and nested comments are recognized).
    #[default]
    Standard,
    /// PostgreSQL with `standard_conforming_strings` on (the default since 9.1).
    Postgres,
    /// MySQL or MariaDB.
    MySql {
        /// The server runs with `ANSI_QUOTES`: `"…"` is a name, not a string.
        ansi_quotes: bool,
        /// Backslash escapes in strings (on unless the server runs with
        /// `NO_BACKSLASH_ESCAPES`).
        backslash_escapes: bool,
    },
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// MySQL and MariaDB as configured by default: `"…"` strings, backslash escapes.
    pub const MYSQL: Dialect = Dialect::MySql {
        ansi_quotes: false,
        backslash_escapes: true,
    };

    fn is_mysql(self) -> bool {
        matches!(self, Dialect::MySql { .. })
    }

    /// Backslash escapes in plain `'…'` strings.
    fn backslash_escapes(self) -> bool {
        matches!(
            self,
            Dialect::MySql {
                backslash_escapes: true,
                ..
            }
        )
    }

    /// `"…"` is a string.
    fn double_quoted_strings(self) -> bool {
        matches!(
            self,
            Dialect::MySql {
                ansi_quotes: false,
                ..
            }
        )
    }

    /// PostgreSQL's `E'…'` and `$tag$…$tag$` strings.
    fn postgres_strings(self) -> bool {
        matches!(self, Dialect::Postgres | Dialect::Standard)
    }

    fn nested_comments(self) -> bool {
        matches!(self, Dialect::Postgres | Dialect::Standard)
    }

    /// The token of `sql` starting at byte `i` (`i < sql.len()`, on a character boundary):
    /// its kind and the index just past it (on a character boundary).
    pub(crate) fn token(self, sql: &str, i: usize) -> (Kind, usize) {
        let b = sql.as_bytes();
        let next = b.get(i + 1).copied();
        match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => (Kind::Space, i + 1),
            b'-' if next == Some(b'-') => (Kind::Comment, line_end(sql, i)),
            b'#' if self.is_mysql() => (Kind::Comment, line_end(sql, i)),
            b'/' if next == Some(b'*') => (Kind::Comment, self.block_comment_end(b, i)),
            b'\'' => (
                Kind::Literal,
                quoted_end(b, i, b'\'', self.backslash_escapes()),
            ),
            b'"' if self.double_quoted_strings() => (
                Kind::Literal,
                quoted_end(b, i, b'"', self.backslash_escapes()),
            ),
            b'"' => (Kind::Name, quoted_end(b, i, b'"', false)),
            b'`' => (Kind::Name, quoted_end(b, i, b'`', false)),
            b'[' if self == Dialect::Sqlite => (
                Kind::Name,
                sql[i..].find(']').map_or(sql.len(), |n| i + n + 1),
            ),
            b'?' => (Kind::Placeholder, digits_end(b, i + 1)),
            b'$' => self.dollar(sql, i),
            b'0'..=b'9' => (Kind::Literal, number_end(b, i)),
            b'.' if next.is_some_and(|c| c.is_ascii_digit()) => (Kind::Literal, number_end(b, i)),
            c if is_word_start(c) => self.word(sql, i),
            _ => (
                Kind::Other,
                i + sql[i..].chars().next().map_or(1, char::len_utf8),
            ),
        }
    }

    fn block_comment_end(self, b: &[u8], i: usize) -> usize {
        let mut depth = 0usize;
        let mut k = i;
        while k + 1 < b.len() {
            if b[k] == b'/' && b[k + 1] == b'*' && (depth == 0 || self.nested_comments()) {
                depth += 1;
                k += 2;
            } else if b[k] == b'*' && b[k + 1] == b'/' {
                depth -= 1;
                k += 2;
                if depth == 0 {
                    return k;
                }
            } else {
                k += 1;
            }
        }
        b.len()
    }

    /// `$1` (a placeholder), `$tag$…$tag$` / `$$…$$` (a string, where dollar quotes exist),
    /// `$name` (SQLite's placeholder), else a lone `$`.
    fn dollar(self, sql: &str, i: usize) -> (Kind, usize) {
        let b = sql.as_bytes();
        match b.get(i + 1) {
            Some(c) if c.is_ascii_digit() => return (Kind::Placeholder, digits_end(b, i + 1)),
            _ => {}
        }
        let mut k = i + 1;
        while b
            .get(k)
            .is_some_and(|&c| is_word_start(c) || c.is_ascii_digit())
        {
            k += 1;
        }
        if self.postgres_strings() && b.get(k) == Some(&b'$') {
            let tag = &sql[i..=k];
            let end = sql[k + 1..]
                .find(tag)
                .map_or(sql.len(), |n| k + 1 + n + tag.len());
            return (Kind::Literal, end);
        }
        if k > i + 1 {
            return (Kind::Placeholder, k);
        }
        (Kind::Other, i + 1)
    }

    /// A bare word: a keyword, a name, `TRUE`/`FALSE` (literals), or the prefix of a string
    /// written against it (`E'…'`, `X'…'`, `N'…'`, `B'…'`, `U&'…'`, `_utf8mb4'…'`), which is
    /// part of the literal.
    fn word(self, sql: &str, i: usize) -> (Kind, usize) {
        let b = sql.as_bytes();
        let mut end = i + 1;
        while b
            .get(end)
            .is_some_and(|&c| is_word_start(c) || c.is_ascii_digit() || c == b'$')
        {
            end += 1;
        }
        let word = &sql[i..end];
        match b.get(end) {
            Some(b'\'') if word.eq_ignore_ascii_case("e") && self.postgres_strings() => {
                return (Kind::Literal, quoted_end(b, end, b'\'', true));
            }
            Some(b'\'') if is_string_prefix(word) => {
                return (
                    Kind::Literal,
                    quoted_end(b, end, b'\'', self.backslash_escapes()),
                );
            }
            Some(b'&')
                if word.eq_ignore_ascii_case("u")
                    && self == Dialect::Postgres
                    && b.get(end + 1) == Some(&b'\'') =>
            {
                return (Kind::Literal, quoted_end(b, end + 1, b'\'', false));
            }
            _ => {}
        }
        if word.eq_ignore_ascii_case("true") || word.eq_ignore_ascii_case("false") {
            return (Kind::Literal, end);
        }
        (Kind::Word, end)
    }
}

/// What a token is, for the normalizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Space,
    Comment,
    /// A string, number, blob, bit string or boolean: data.
    Literal,
    /// A quoted name (`"users"`, `` `users` ``, `[users]`).
    Name,
    /// A keyword or bare name.
    Word,
    /// A bound parameter's placeholder (`?`, `?1`, `$1`, `$name`).
    Placeholder,
    /// Punctuation, operators: one character.
    Other,
}

impl DbSystem {
    /// The system's SQL dialect: [`Dialect::Postgres`], [`Dialect::MYSQL`] (MySQL and
    /// MariaDB), [`Dialect::Sqlite`], [`Dialect::Standard`] for others.
    ///
    /// ```
    /// use tomograph::sql::{DbSystem, Dialect};
    /// assert_eq!(DbSystem::MySql.dialect(), Dialect::MYSQL);
    /// ```
    pub fn dialect(self) -> Dialect {
        match self {
            DbSystem::Postgres => Dialect::Postgres,
            DbSystem::MySql => Dialect::MYSQL,
            DbSystem::Sqlite => Dialect::Sqlite,
            DbSystem::Other(_) => Dialect::Standard,
        }
    }
}

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

/// `X`, `B`, `N` and MySQL's character set introducers (`_utf8mb4`).
fn is_string_prefix(word: &str) -> bool {
    matches!(word, "x" | "X" | "b" | "B" | "n" | "N") || word.starts_with('_')
}

fn line_end(sql: &str, i: usize) -> usize {
    sql[i..].find('\n').map_or(sql.len(), |n| i + n + 1)
}

fn digits_end(b: &[u8], mut k: usize) -> usize {
    while b.get(k).is_some_and(u8::is_ascii_digit) {
        k += 1;
    }
    k
}

/// The end of the number at `i`: digits, `.`, an exponent and its sign, `0x…`, `0b…`, `_`
/// separators (whatever letters and digits follow belong to it).
fn number_end(b: &[u8], i: usize) -> usize {
    let mut k = i + 1;
    while k < b.len() {
        let c = b[k];
        let exponent_sign = (c == b'+' || c == b'-') && matches!(b[k - 1], b'e' | b'E');
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || exponent_sign {
            k += 1;
        } else {
            break;
        }
    }
    k
}

/// The index just past the quoted text starting at `start` (a doubled quote stays inside;
/// with `backslash`, so does a backslash and the byte after it); the end of the text when
/// unterminated.
fn quoted_end(b: &[u8], start: usize, quote: u8, backslash: bool) -> usize {
    let mut k = start + 1;
    while k < b.len() {
        let c = b[k];
        if backslash && c == b'\\' {
            k += 2;
            continue;
        }
        if c == quote {
            if b.get(k + 1) == Some(&quote) {
                k += 2;
                continue;
            }
            return k + 1;
        }
        k += 1;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str, dialect: Dialect) -> Vec<(Kind, &str)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < sql.len() {
            let (kind, end) = dialect.token(sql, i);
            assert!(end > i && sql.is_char_boundary(end), "{sql:?} at {i}");
            if kind != Kind::Space {
                out.push((kind, &sql[i..end]));
            }
            i = end;
        }
        out
    }

    #[test]
    fn backslashes_escape_only_where_the_dialect_says() {
        let sql = r"'C:\', 'y'";
        for dialect in [Dialect::Postgres, Dialect::Sqlite, Dialect::Standard] {
            assert_eq!(
                kinds(sql, dialect),
                [
                    (Kind::Literal, r"'C:\'"),
                    (Kind::Other, ","),
                    (Kind::Literal, "'y'")
                ],
                "{dialect:?}"
            );
        }
        // In MySQL the backslash escapes the quote: the string runs on (and the rest is
        // still masked, to the end).
        assert_eq!(
            kinds(sql, Dialect::MYSQL),
            [
                (Kind::Literal, r"'C:\', '"),
                (Kind::Word, "y"),
                (Kind::Literal, "'")
            ]
        );
        assert_eq!(
            kinds(r"E'a\'b' 'c'", Dialect::Postgres),
            [(Kind::Literal, r"E'a\'b'"), (Kind::Literal, "'c'")]
        );
    }

    #[test]
    fn dollar_quotes_placeholders_and_names() {
        assert_eq!(
            kinds("$a$ $b$ x $b$ $a$ $1 $$y$$", Dialect::Postgres),
            [
                (Kind::Literal, "$a$ $b$ x $b$ $a$"),
                (Kind::Placeholder, "$1"),
                (Kind::Literal, "$$y$$")
            ]
        );
        assert_eq!(
            kinds("$name [it's] `a'b`", Dialect::Sqlite),
            [
                (Kind::Placeholder, "$name"),
                (Kind::Name, "[it's]"),
                (Kind::Name, "`a'b`")
            ]
        );
        assert_eq!(
            kinds("# it's\n\"x\" 0x1F b'01' TRUE", Dialect::MYSQL),
            [
                (Kind::Comment, "# it's\n"),
                (Kind::Literal, "\"x\""),
                (Kind::Literal, "0x1F"),
                (Kind::Literal, "b'01'"),
                (Kind::Literal, "TRUE")
            ]
        );
        assert_eq!(
            kinds("/* a /* b */ 'c' */ d", Dialect::Postgres),
            [(Kind::Comment, "/* a /* b */ 'c' */"), (Kind::Word, "d")]
        );
        assert_eq!(
            kinds("U&'d\\0061t' u", Dialect::Postgres),
            [(Kind::Literal, "U&'d\\0061t'"), (Kind::Word, "u")]
        );
    }
}
