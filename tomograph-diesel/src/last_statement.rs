//! [`LastStatement`]: the statement a connection ran last, recognised by its text without a
//! lookup.

use std::borrow::Cow;

use tomograph::sql::{SqlStatement, SqlTracer, summary_override};

/// Longer statements are not kept (a bulk insert should not pin its text for the connection's
/// life); they go through the thread's cache of [`SqlTracer::statement`] each time.
const MAX_KEPT_LEN: usize = 1024;

/// The statement a connection started last, processed ([`SqlStatement`]) and kept with its
/// text: a connection most often runs the same statement again (a loop, a request handler), and
/// then its text is recognised with one comparison instead of a visit of the thread's cache.
#[derive(Debug, Default)]
pub(crate) struct LastStatement {
    text: String,
    statement: Option<SqlStatement>,
}

impl LastStatement {
    /// The statement `text`, as `tracer` processes it ([`SqlTracer::statement`], which a
    /// [`with_summary`](tomograph::sql::with_summary) scope names: such statements are
    /// neither taken from nor kept here).
    pub(crate) fn statement(&mut self, tracer: &SqlTracer, text: &str) -> Cow<'_, SqlStatement> {
        if summary_override().is_some() || text.len() > MAX_KEPT_LEN {
            return Cow::Owned(tracer.statement(text));
        }
        if self.text != text {
            self.text.clear();
            self.text.push_str(text);
            self.statement = None;
        }
        Cow::Borrowed(&*self.statement.get_or_insert_with(|| tracer.statement(text)))
    }
}

#[cfg(test)]
mod tests {
    use tomograph::sql::{DbSystem, with_summary};

    use super::*;

    #[test]
    fn recognises_the_last_statement_and_respects_summaries() {
        let tracer = SqlTracer::builder(DbSystem::Sqlite).build();
        let mut last = LastStatement::default();
        let select = "SELECT name FROM users WHERE id = ?";
        assert_eq!(last.statement(&tracer, select).summary(), "SELECT users");
        assert!(matches!(last.statement(&tracer, select), Cow::Borrowed(_)));
        let named = with_summary("load user", || {
            last.statement(&tracer, select).summary().to_owned()
        });
        assert_eq!(named, "load user");
        assert_eq!(last.statement(&tracer, select).summary(), "SELECT users");
        assert_eq!(
            last.statement(&tracer, "DELETE FROM carts").summary(),
            "DELETE carts"
        );
        assert_eq!(last.statement(&tracer, select).summary(), "SELECT users");
        let bulk = format!("INSERT INTO t VALUES {}", "(1),".repeat(MAX_KEPT_LEN));
        assert!(matches!(last.statement(&tracer, &bulk), Cow::Owned(_)));
        assert_eq!(last.statement(&tracer, select).summary(), "SELECT users");
    }
}
