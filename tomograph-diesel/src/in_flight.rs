//! [`InFlight`]: the statements a connection has started and not yet finished, in the order
//! they started, the oldest ended where it sits.

use std::collections::VecDeque;

use tomograph::sql::SqlSpan;

/// Statements in flight on one connection, at most (diesel-async's PostgreSQL connection
/// pipelines; a synchronous connection has one).
const MAX_IN_FLIGHT: usize = 64;

/// One started statement: its span, or `None` when it is not traced.
pub(crate) type Statement = Option<SqlSpan<'static>>;

/// The statements started on a connection and not yet finished, oldest first. Finishes are
/// matched to starts first-in, first-out (diesel-async's pipelined queries finish in the order
/// they started).
///
/// The oldest has a slot of its own, where it is ended in place: a statement's span is a few
/// hundred bytes, and a synchronous connection (one statement at a time) never moves it out
/// to end it. Later ones wait behind it.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    oldest: Option<Statement>,
    later: VecDeque<Statement>,
}

impl InFlight {
    /// A statement started. Past [`MAX_IN_FLIGHT`], the oldest is ended as it stands (a start
    /// whose finish never came: diesel gave up before running it).
    pub(crate) fn push(&mut self, statement: Statement) {
        if self.oldest.is_none() {
            self.oldest = Some(statement);
            return;
        }
        if self.later.len() + 1 >= MAX_IN_FLIGHT {
            // The next one (there are many) takes the slot.
            self.end_oldest();
        }
        self.later.push_back(statement);
    }

    /// The oldest statement, the one the next finish belongs to.
    pub(crate) fn oldest_mut(&mut self) -> Option<&mut SqlSpan<'static>> {
        self.oldest.as_mut().and_then(Option::as_mut)
    }

    /// The statement started last.
    pub(crate) fn newest_mut(&mut self) -> Option<&mut SqlSpan<'static>> {
        let newest = match self.later.back_mut() {
            Some(newest) => newest,
            None => self.oldest.as_mut()?,
        };
        newest.as_mut()
    }

    /// Ends the oldest statement where it sits (dropped in place: its span ends as it stands,
    /// a success unless failed before), the next one taking its slot.
    pub(crate) fn end_oldest(&mut self) {
        self.oldest = self.later.pop_front();
    }

    /// Takes the oldest statement out (to fail it), the next one taking its slot.
    pub(crate) fn take_oldest(&mut self) -> Statement {
        let oldest = self.oldest.take().flatten();
        self.oldest = self.later.pop_front();
        oldest
    }
}

#[cfg(test)]
mod tests {
    use tomograph::sql::{DbSystem, SqlTracer};

    use super::*;

    fn timer(tracer: &SqlTracer, rows: u64) -> Statement {
        let mut span = tracer.start_timer().into_owned();
        span.count_rows(rows);
        Some(span)
    }

    #[test]
    fn finishes_match_starts_first_in_first_out() {
        let tracer = SqlTracer::builder(DbSystem::Postgres).build();
        let mut in_flight = InFlight::default();
        assert!(in_flight.oldest_mut().is_none());
        assert!(in_flight.take_oldest().is_none());
        for rows in 1..=3 {
            in_flight.push(timer(&tracer, rows));
        }
        in_flight.push(None);
        assert!(
            in_flight.newest_mut().is_none(),
            "the last one is not traced"
        );
        assert_eq!(in_flight.oldest_mut().map(|s| s.rows_so_far()), Some(1));
        in_flight.end_oldest();
        assert_eq!(in_flight.oldest_mut().map(|s| s.rows_so_far()), Some(2));
        let taken = in_flight.take_oldest();
        assert_eq!(taken.as_ref().map(SqlSpan::rows_so_far), Some(2));
        assert_eq!(in_flight.oldest_mut().map(|s| s.rows_so_far()), Some(3));
        in_flight.end_oldest();
        assert!(in_flight.take_oldest().is_none(), "the untraced one");
        assert!(in_flight.oldest.is_none() && in_flight.later.is_empty());
    }

    #[test]
    fn keeps_at_most_max_in_flight() {
        let tracer = SqlTracer::builder(DbSystem::Postgres).build();
        let mut in_flight = InFlight::default();
        for rows in 0..(MAX_IN_FLIGHT as u64 + 10) {
            in_flight.push(timer(&tracer, rows));
        }
        assert_eq!(in_flight.later.len() + 1, MAX_IN_FLIGHT);
        assert_eq!(in_flight.oldest_mut().map(|s| s.rows_so_far()), Some(10));
        assert_eq!(
            in_flight.newest_mut().map(|s| s.rows_so_far()),
            Some(MAX_IN_FLIGHT as u64 + 9)
        );
    }
}
