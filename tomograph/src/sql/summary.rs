//! The query summary of OpenTelemetry's database conventions: what a statement does to which
//! tables, `{operation} {target} {operation} {target}…` (`SELECT users`,
//! `INSERT shipping_details SELECT orders`), at most [`MAX_SUMMARY_LEN`] bytes, never a
//! literal. It names statement spans and is the statsd name of their timers.
//!
//! A small scanner on the dialect's tokens ([`Dialect`]): comments, strings, numbers and
//! placeholders are skipped, so whatever the text holds, only keywords and names reach a
//! summary. Names come only from the places where a statement names a table (`FROM`, `JOIN`,
//! `INTO`, `UPDATE`, `USING`, `TABLE`, the object of `CREATE`/`DROP`/`ALTER`/`TRUNCATE`);
//! schema-qualified names keep their schema (`audit.events`), quoted names lose their quotes;
//! the names a `WITH` clause defines are not targets.

use super::dialect::{Dialect, Kind};

/// The longest summary, in bytes (OpenTelemetry's limit).
pub const MAX_SUMMARY_LEN: usize = 255;

/// What [`summarize`] reads out of a statement.
///
/// ```
/// use tomograph::sql::{Dialect, summarize};
/// let s = summarize("SELECT * FROM orders o JOIN customers c ON c.id = o.customer", Dialect::Postgres)
///     .expect("a statement");
/// assert_eq!(s.text(), "SELECT orders customers");
/// assert_eq!(s.collection(), None); // two tables
/// let s = summarize("UPDATE \"Users\" SET name = 'x' WHERE id = 1", Dialect::Postgres).unwrap();
/// assert_eq!((s.text(), s.collection()), ("UPDATE Users", Some("Users")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuerySummary {
    text: String,
    collection: Option<String>,
}

impl QuerySummary {
    /// The summary (`SELECT users`), at most [`MAX_SUMMARY_LEN`] bytes.
    pub fn text(&self) -> &str {
        &self.text
    }
    /// The one table of a single-table statement (`db.collection.name`).
    pub fn collection(&self) -> Option<&str> {
        self.collection.as_deref()
    }
}

/// DML operations: they name tables after them.
const DML: [&str; 7] = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE", "UPSERT",
];

/// Schema statements, summarized as `{operation} {object kind} {name}`.
const DDL: [&str; 4] = ["CREATE", "DROP", "ALTER", "TRUNCATE"];

/// Words between a schema operation and its object's name that are kept in the summary.
const OBJECT_KINDS: [&str; 9] = [
    "TABLE", "INDEX", "VIEW", "SEQUENCE", "SCHEMA", "DATABASE", "TRIGGER", "FUNCTION", "TYPE",
];

/// Words between a schema operation and its object that are skipped.
const DDL_FILLER: [&str; 12] = [
    "IF",
    "NOT",
    "EXISTS",
    "OR",
    "TEMPORARY",
    "TEMP",
    "UNIQUE",
    "MATERIALIZED",
    "UNLOGGED",
    "CONCURRENTLY",
    "ONLY",
    "VIRTUAL",
];

/// Keywords after which a table name follows.
const TARGET_BEFORE: [&str; 5] = ["FROM", "JOIN", "INTO", "USING", "TABLE"];

/// Keywords that may stand between `FROM`/`JOIN` and the name.
const TARGET_FILLER: [&str; 3] = ["ONLY", "LATERAL", "IGNORE"];

/// Keywords that end a `FROM` list (no more comma-separated tables after them).
const CLAUSE_WORDS: [&str; 22] = [
    "WHERE",
    "GROUP",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "UNION",
    "INTERSECT",
    "EXCEPT",
    "ON",
    "SET",
    "VALUES",
    "RETURNING",
    "WINDOW",
    "FETCH",
    "FOR",
    "SELECT",
    "DEFAULT",
    "OUTPUT",
    "WHEN",
    "USING",
    "JOIN",
];

fn is(word: &str, list: &[&str]) -> bool {
    list.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// One significant token: a bare word, a name (quotes removed), or punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    Word(&'a str),
    Name(&'a str),
    Punct(u8),
    /// A literal or a placeholder: skipped, but it separates what is around it.
    Value,
}

fn tokens(sql: &str, dialect: Dialect) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < sql.len() {
        let (kind, end) = dialect.token(sql, i);
        let piece = &sql[i..end];
        i = end;
        match kind {
            Kind::Space | Kind::Comment => {}
            Kind::Literal | Kind::Placeholder => out.push(Tok::Value),
            Kind::Word => out.push(Tok::Word(piece)),
            Kind::Name => out.push(Tok::Name(unquote(piece))),
            Kind::Other => out.push(match piece.as_bytes() {
                [b] => Tok::Punct(*b),
                _ => Tok::Value,
            }),
        }
    }
    out
}

/// A quoted name without its quotes (`"a""b"` stays `a""b`: still a name).
fn unquote(name: &str) -> &str {
    let inner = name.get(1..).unwrap_or("");
    let close = match name.as_bytes().first() {
        Some(b'[') => ']',
        Some(&q) => char::from(q),
        None => return "",
    };
    inner.strip_suffix(close).unwrap_or(inner)
}

struct Builder {
    text: String,
    operations: usize,
    targets: Vec<String>,
    full: bool,
}

impl Builder {
    fn push(&mut self, piece: &str) {
        if self.full || piece.is_empty() {
            return;
        }
        let extra = piece.len() + usize::from(!self.text.is_empty());
        if self.text.len() + extra > MAX_SUMMARY_LEN {
            self.full = true;
            return;
        }
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        self.text.push_str(piece);
    }
    fn operation(&mut self, op: &str) {
        self.operations += 1;
        self.push(&op.to_ascii_uppercase());
    }
    fn target(&mut self, name: String) {
        self.push(&name);
        self.targets.push(name);
    }
}

/// The summary of `sql` read in `dialect`, or `None` when it starts with no known operation
/// (then a span is named by its operation or its database, see
/// [`SqlTracer`](super::SqlTracer)). Statements that are not queries or schema changes
/// (`BEGIN`, `SET`, `PRAGMA`, …) are summarized by their first word.
///
/// ```
/// use tomograph::sql::{Dialect, summarize};
/// let text = |sql| summarize(sql, Dialect::Sqlite).map(|s| s.text().to_owned());
/// assert_eq!(text("INSERT INTO shipping_details (id) SELECT id FROM orders WHERE total > 100").as_deref(),
///            Some("INSERT shipping_details SELECT orders"));
/// assert_eq!(text("WITH recent AS (SELECT * FROM audit.events) SELECT count(*) FROM recent").as_deref(),
///            Some("SELECT audit.events SELECT"));
/// assert_eq!(text("/* app */ DELETE FROM [sessions] WHERE token = 'FROM secrets'").as_deref(),
///            Some("DELETE sessions"));
/// assert_eq!(text("CREATE TABLE IF NOT EXISTS users (id INTEGER)").as_deref(), Some("CREATE TABLE users"));
/// assert_eq!(text("begin immediate").as_deref(), Some("BEGIN"));
/// assert_eq!(text("'just a string'"), None);
/// ```
pub fn summarize(sql: &str, dialect: Dialect) -> Option<QuerySummary> {
    let toks = tokens(sql, dialect);
    let first = toks.iter().find_map(|t| match t {
        Tok::Word(w) => Some(*w),
        Tok::Punct(b'(') => None,
        _ => Some(""),
    })?;
    let mut b = Builder {
        text: String::new(),
        operations: 0,
        targets: Vec::new(),
        full: false,
    };
    let statements = toks
        .iter()
        .rposition(|t| !matches!(t, Tok::Punct(b';')))
        .map_or(0, |last| {
            1 + toks[..last]
                .iter()
                .filter(|t| matches!(t, Tok::Punct(b';')))
                .count()
        });
    if is(first, &DML) || first.eq_ignore_ascii_case("WITH") {
        dml(&toks, &mut b);
    } else if is(first, &DDL) {
        ddl(&toks, &mut b);
    } else {
        let op = super::query::known(first)?;
        b.operation(op);
    }
    if b.text.is_empty() {
        return None;
    }
    let collection = (b.operations == 1 && b.targets.len() == 1 && statements == 1)
        .then(|| b.targets.pop())
        .flatten();
    Some(QuerySummary {
        text: b.text,
        collection,
    })
}

/// A possibly qualified name starting at `toks[i]`: the name and the index past it.
fn qualified(toks: &[Tok<'_>], mut i: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    loop {
        match toks.get(i) {
            Some(Tok::Word(w) | Tok::Name(w)) => name.push_str(w),
            _ => return None,
        }
        i += 1;
        if toks.get(i) == Some(&Tok::Punct(b'.')) {
            name.push('.');
            i += 1;
        } else {
            return Some((name, i));
        }
    }
}

fn dml(toks: &[Tok<'_>], b: &mut Builder) {
    let mut depth = 0usize;
    // The depth of the `FROM` list being read, where a comma introduces another table.
    let mut from_list: Option<usize> = None;
    let mut expect_target = false;
    // Names the WITH clause defines: not targets.
    let mut ctes: Vec<&str> = Vec::new();
    let mut in_with = false;
    let mut prev: Option<Tok<'_>> = None;
    // Per open parenthesis: whether it holds a query (a DML keyword was seen in it).
    let mut queries: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let tok = toks[i];
        match tok {
            Tok::Punct(b'(') => {
                depth += 1;
                queries.push(false);
                expect_target = false;
            }
            Tok::Punct(b')') => {
                depth = depth.saturating_sub(1);
                queries.pop();
                if from_list.is_some_and(|d| d > depth) {
                    from_list = None;
                }
            }
            Tok::Punct(b',') if from_list == Some(depth) => expect_target = true,
            Tok::Punct(b';') => {
                depth = 0;
                queries.clear();
                from_list = None;
                expect_target = false;
                in_with = false;
            }
            Tok::Word(w) if is(w, &DML) && is_operation_position(w, prev) => {
                if depth == 0 {
                    in_with = false;
                }
                if let Some(top) = queries.last_mut() {
                    *top = true;
                }
                b.operation(w);
                expect_target = w.eq_ignore_ascii_case("UPDATE");
                from_list = None;
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("WITH") && prev.is_none() => {
                in_with = true;
            }
            Tok::Word(w) if expect_target && is(w, &TARGET_FILLER) => {}
            // `FROM` in `EXTRACT(YEAR FROM ts)` is no table's.
            Tok::Word(w) if is(w, &TARGET_BEFORE) && queries.last().is_none_or(|q| *q) => {
                expect_target = true;
                if w.eq_ignore_ascii_case("FROM") {
                    from_list = Some(depth);
                }
            }
            Tok::Word(_) | Tok::Name(_) if expect_target => {
                expect_target = false;
                if let Some((name, next)) = qualified(toks, i) {
                    if !ctes.iter().any(|c| c.eq_ignore_ascii_case(&name)) {
                        b.target(name);
                    }
                    prev = Some(toks[next - 1]);
                    i = next;
                    continue;
                }
            }
            Tok::Word(w) if from_list == Some(depth) && is(w, &CLAUSE_WORDS) => {
                from_list = None;
            }
            _ => {}
        }
        // CTE names: a name right after WITH [RECURSIVE] or after a top-level comma of the
        // WITH list, followed by AS or a column list.
        if in_with
            && depth == 0
            && let Tok::Word(w) | Tok::Name(w) = tok
            && (is_with_word(prev) || prev == Some(Tok::Punct(b',')))
            && !w.eq_ignore_ascii_case("RECURSIVE")
        {
            ctes.push(w);
        }
        prev = Some(tok);
        i += 1;
    }
}

/// `WITH` or `RECURSIVE`: a CTE name follows.
fn is_with_word(prev: Option<Tok<'_>>) -> bool {
    matches!(prev, Some(Tok::Word(w)) if w.eq_ignore_ascii_case("WITH") || w.eq_ignore_ascii_case("RECURSIVE"))
}

/// Whether DML keyword `word` after `prev` starts a (sub)statement: `SELECT` anywhere; the
/// others at the start, after a parenthesis or `;` — not in `FOR UPDATE`, `ON DELETE`,
/// `DO UPDATE`, `ON DUPLICATE KEY UPDATE`, `INSERT OR REPLACE`.
fn is_operation_position(word: &str, prev: Option<Tok<'_>>) -> bool {
    word.eq_ignore_ascii_case("SELECT")
        || matches!(prev, None | Some(Tok::Punct(b'(' | b')' | b';')))
}

fn ddl(toks: &[Tok<'_>], b: &mut Builder) {
    let mut words = toks.iter().enumerate();
    let Some((_, Tok::Word(op))) = words.next() else {
        return;
    };
    b.operation(op);
    // Only a table is a collection (`db.collection.name`); other objects are only named.
    let mut table = true;
    for (i, tok) in words {
        match tok {
            Tok::Word(w) if is(w, &OBJECT_KINDS) => {
                table = w.eq_ignore_ascii_case("TABLE");
                b.push(&w.to_ascii_uppercase());
            }
            Tok::Word(w) if is(w, &DDL_FILLER) => {}
            Tok::Word(_) | Tok::Name(_) => {
                if let Some((name, _)) = qualified(toks, i) {
                    if table {
                        b.target(name);
                    } else {
                        b.push(&name);
                    }
                }
                return;
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(sql: &str, dialect: Dialect) -> Option<String> {
        summarize(sql, dialect).map(|s| s.text)
    }

    #[test]
    fn summaries() {
        let pg = Dialect::Postgres;
        for (sql, expected, collection) in [
            (
                "SELECT * FROM wuser_table",
                "SELECT wuser_table",
                Some("wuser_table"),
            ),
            (
                "select a from t1, t2 as x, \"T 3\" where a = 1",
                "SELECT t1 t2 T 3",
                None,
            ),
            (
                "INSERT INTO shipping_details (order_id, address) SELECT id, addr FROM orders",
                "INSERT shipping_details SELECT orders",
                None,
            ),
            (
                "UPDATE public.users SET name = $1 WHERE id = $2",
                "UPDATE public.users",
                Some("public.users"),
            ),
            (
                "DELETE FROM ONLY sessions WHERE expires < now()",
                "DELETE sessions",
                Some("sessions"),
            ),
            (
                "SELECT * FROM a LEFT JOIN b ON a.id = b.a JOIN c USING (id)",
                "SELECT a b c",
                None,
            ),
            (
                "SELECT * FROM (SELECT id FROM inner_t) AS sub WHERE id IN (SELECT id FROM other)",
                "SELECT SELECT inner_t SELECT other",
                None,
            ),
            (
                "WITH RECURSIVE tree(id) AS (SELECT id FROM nodes UNION ALL SELECT n.id FROM nodes n JOIN tree ON n.parent = tree.id) SELECT * FROM tree",
                "SELECT nodes SELECT nodes SELECT",
                None,
            ),
            (
                "WITH moved AS (DELETE FROM queue RETURNING *) INSERT INTO done SELECT * FROM moved",
                "DELETE queue INSERT done SELECT",
                None,
            ),
            (
                "INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET n = t.n + 1",
                "INSERT t",
                Some("t"),
            ),
            (
                "SELECT * FROM jobs FOR UPDATE SKIP LOCKED",
                "SELECT jobs",
                Some("jobs"),
            ),
            ("SELECT 1", "SELECT", None),
            (
                "DROP TABLE IF EXISTS audit.log",
                "DROP TABLE audit.log",
                Some("audit.log"),
            ),
            (
                "CREATE UNIQUE INDEX users_email ON users (email)",
                "CREATE INDEX users_email",
                None,
            ),
            (
                "SELECT EXTRACT(YEAR FROM created) FROM events",
                "SELECT events",
                Some("events"),
            ),
            ("TRUNCATE logs", "TRUNCATE logs", Some("logs")),
            ("SAVEPOINT _sqlx_savepoint_1", "SAVEPOINT", None),
            (
                "-- hello\n/* a /* nested */ comment */ SELECT x FROM y",
                "SELECT y",
                Some("y"),
            ),
            (
                "SELECT * FROM a; SELECT * FROM b",
                "SELECT a SELECT b",
                None,
            ),
        ] {
            let s = summarize(sql, pg).unwrap_or_else(|| panic!("{sql}"));
            assert_eq!(s.text(), expected, "{sql}");
            assert_eq!(s.collection(), collection, "{sql}");
        }
    }

    #[test]
    fn dialects_decide_what_is_a_name() {
        // MySQL: "…" is a string, `…` a name.
        assert_eq!(
            text(
                "SELECT * FROM `order items` WHERE note = \"FROM secret\"",
                Dialect::MYSQL
            )
            .as_deref(),
            Some("SELECT order items")
        );
        assert_eq!(
            text(
                "INSERT IGNORE INTO t VALUES ('it\\'s FROM x')",
                Dialect::MYSQL
            )
            .as_deref(),
            Some("INSERT t")
        );
        assert_eq!(
            text(
                "REPLACE INTO kv (k) VALUES ('a') ON DUPLICATE KEY UPDATE k = 'b'",
                Dialect::MYSQL
            )
            .as_deref(),
            Some("REPLACE kv")
        );
        // SQLite: [name], INSERT OR REPLACE.
        assert_eq!(
            text(
                "INSERT OR REPLACE INTO [my table] VALUES (x'00')",
                Dialect::Sqlite
            )
            .as_deref(),
            Some("INSERT my table")
        );
        // PostgreSQL: dollar quotes and E-strings are literals.
        assert_eq!(
            text(
                "SELECT $tag$ FROM secret $tag$, E'\\' FROM x' FROM t",
                Dialect::Postgres
            )
            .as_deref(),
            Some("SELECT t")
        );
    }

    #[test]
    fn summaries_are_capped_on_whole_pieces() {
        let tables: Vec<String> = (0..100).map(|n| format!("table_number_{n}")).collect();
        let sql = format!("SELECT * FROM {}", tables.join(", "));
        let s = text(&sql, Dialect::Sqlite).unwrap();
        assert!(s.len() <= MAX_SUMMARY_LEN);
        assert!(s.ends_with(|c: char| c.is_ascii_digit()), "{s}");
        assert!(tables.iter().any(|t| s.ends_with(t.as_str())));
    }

    #[test]
    fn no_operation_no_summary() {
        for sql in ["", "   ", "'x'", "42", "🙂", "(1)"] {
            assert_eq!(text(sql, Dialect::Sqlite), None, "{sql:?}");
        }
    }
}
