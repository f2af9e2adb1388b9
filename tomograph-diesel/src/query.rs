//! diesel's opaque query, as text: the SQL without the `-- binds: [...]` suffix its `Display`
//! appends, and the binds apart when the user opted in to recording them.

use std::fmt::{self, Write as _};

use diesel::connection::DebugQuery;

/// What diesel's `Display` puts between the SQL and the bound values.
const BINDS_MARKER: &str = " -- binds: ";

/// The most a connection's text buffer keeps between statements: one bulk statement does not
/// pin its size for the connection's life.
const KEPT_CAPACITY: usize = 16 * 1024;

/// The query's SQL, without bound values, written into `buf` (cleared first; a connection
/// keeps one, so that reading a statement's text allocates nothing once it has grown).
/// Formatting stops at the binds marker, so the values are never formatted.
pub(crate) fn sql_of<'b>(query: &dyn DebugQuery, buf: &'b mut String) -> &'b str {
    if buf.capacity() > KEPT_CAPACITY {
        *buf = String::new();
    } else {
        buf.clear();
    }
    let mut writer = UntilBinds { buf, done: false };
    // The writer reports an error on purpose to stop formatting at the marker; whatever
    // diesel could render is in `buf` either way.
    let _ = write!(writer, "{query}");
    buf
}

/// The query's SQL and its bound values (diesel's debug list, e.g. `[1, "x"]`), if any.
pub(crate) fn sql_and_binds(query: &dyn DebugQuery) -> (String, Option<String>) {
    let mut text = String::with_capacity(128);
    let _ = write!(text, "{query}");
    split_binds(text)
}

fn split_binds(mut text: String) -> (String, Option<String>) {
    // The first marker: a bound value that contains the marker cannot move the cut into
    // the values (a statement that contains it is only cut short).
    match text.find(BINDS_MARKER) {
        Some(at) => {
            let binds = text[at + BINDS_MARKER.len()..].to_owned();
            text.truncate(at);
            (text, Some(binds))
        }
        None => (text, None),
    }
}

/// Each bound value of diesel's debug list (`[1, "a, b", Some(2)]`), with its 0-based index;
/// the whole list as one value when it is not a list.
pub(crate) fn bind_values(binds: &str) -> Vec<(usize, String)> {
    let Some(inner) = binds
        .trim()
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
    else {
        return vec![(0, binds.to_owned())];
    };
    let mut values = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0i32, false, false, 0);
    for (i, c) in inner.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' | '(' | '{' => depth += 1,
            ']' | ')' | '}' => depth -= 1,
            ',' if depth == 0 => {
                values.push((values.len(), inner[start..i].trim().to_owned()));
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = inner[start..].trim();
    if !last.is_empty() || !values.is_empty() {
        values.push((values.len(), last.to_owned()));
    }
    values
}

/// Collects text until the binds marker appears, then refuses more.
struct UntilBinds<'b> {
    buf: &'b mut String,
    done: bool,
}

impl fmt::Write for UntilBinds<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.done {
            return Err(fmt::Error);
        }
        let mut from = self.buf.len().saturating_sub(BINDS_MARKER.len() - 1);
        while !self.buf.is_char_boundary(from) {
            from -= 1;
        }
        // diesel writes the marker as a piece of its own, right after the SQL: it ends the
        // text without a search, unless the SQL's end could hold the marker's start (a `-`).
        if s.starts_with(BINDS_MARKER) && !self.buf.as_bytes()[from..].contains(&b'-') {
            self.done = true;
            return Err(fmt::Error);
        }
        self.buf.push_str(s);
        // Most pieces hold no `-` at all: a byte scan (memchr) rules the marker out without
        // setting up a substring search per piece (≈ 2 % of a traced SQLite statement).
        if !self.buf.as_bytes()[from..].contains(&b'-') {
            return Ok(());
        }
        if let Some(at) = self.buf[from..].find(BINDS_MARKER) {
            self.buf.truncate(from + at);
            self.done = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Pieces(&'static [&'static str]);
    impl fmt::Display for Pieces {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for piece in self.0 {
                f.write_str(piece)?;
            }
            Ok(())
        }
    }
    impl DebugQuery for Pieces {}

    #[test]
    fn stops_at_the_marker_even_when_split() {
        let mut buf = String::from("left over from the last statement");
        for pieces in [
            &["SELECT 1", " -- binds: ", "[1]"][..],
            &["SELECT 1 -", "- bi", "nds: [", "\"secret\"]"][..],
            &["SELECT 1 -- binds: [\"x -- binds: y\"]"][..],
        ] {
            assert_eq!(sql_of(&Pieces(pieces), &mut buf), "SELECT 1", "{pieces:?}");
        }
        // A marker piece after SQL that ends in part of a marker: the first one counts.
        assert_eq!(
            sql_of(&Pieces(&["SELECT 1 --", " -- binds: ", "[1]"]), &mut buf),
            "SELECT 1 --"
        );
        assert_eq!(
            sql_of(
                &Pieces(&["SELECT 1 -- binds:", " -- binds: ", "[1]"]),
                &mut buf
            ),
            "SELECT 1"
        );
        assert_eq!(sql_of(&Pieces(&["BEGIN"]), &mut buf), "BEGIN");
        assert_eq!(
            sql_of(&Pieces(&["SELECT 'é", "té'"]), &mut buf),
            "SELECT 'été'"
        );
    }

    #[test]
    fn a_bulk_statement_does_not_stay_in_the_buffer() {
        let mut buf = String::new();
        let bulk = format!("INSERT INTO t VALUES {}", "(1),".repeat(10_000));
        let pieces: &'static [&'static str] = Box::leak(Box::new([bulk.leak() as &str]));
        assert!(sql_of(&Pieces(pieces), &mut buf).len() > KEPT_CAPACITY);
        assert_eq!(sql_of(&Pieces(&["SELECT 2"]), &mut buf), "SELECT 2");
        assert!(buf.capacity() <= KEPT_CAPACITY, "{}", buf.capacity());
    }

    #[test]
    fn lists_each_bound_value() {
        let values =
            |list: &str| -> Vec<String> { bind_values(list).into_iter().map(|(_, v)| v).collect() };
        assert_eq!(
            values(r#"[1, "a, \"b]\"", Some(2), [3, 4], None]"#),
            ["1", r#""a, \"b]\"""#, "Some(2)", "[3, 4]", "None"]
        );
        assert!(values("[]").is_empty());
        assert_eq!(values("odd"), ["odd"]);
    }

    #[test]
    fn splits_binds() {
        assert_eq!(
            sql_and_binds(&Pieces(&["SELECT $1 -- binds: [\"a -- binds: b\"]"])),
            (
                "SELECT $1".to_owned(),
                Some("[\"a -- binds: b\"]".to_owned())
            )
        );
        assert_eq!(
            sql_and_binds(&Pieces(&["COMMIT"])),
            ("COMMIT".to_owned(), None)
        );
    }
}
