//! [`TracedTransaction`]: a `sqlx::Transaction` whose statements are traced, grouped under a
//! span `TRANSACTION`.

use std::fmt;
use std::future::Future;

use sqlx::{AssertSqlSafe, Error, Executor, SqlSafeStr, SqlStr, Transaction};
use tomograph::keys;
use tomograph::sql::SqlTracer;
use tomograph::{DetachedSpan, TraceToken};

use crate::database::TracedDatabase;
use crate::executor::{self, Call, Target, delegate_executor};

/// A transaction (or savepoint) whose statements are traced.
///
/// It is a span `TRANSACTION` (tagged with the database, and `db.transaction.outcome`
/// `commit` or `rollback` at the end) whose children are `BEGIN`, every statement run through
/// `&mut transaction`, and `COMMIT` or `ROLLBACK`. Dropped without either, sqlx rolls it back:
/// a `ROLLBACK` span with a note `queued on drop` records that. Made by
/// [`TracedPool::begin`](crate::TracedPool::begin),
/// [`TracedConnection::begin`](crate::TracedConnection::begin), or
/// [`begin`](TracedTransaction::begin) on a transaction (a savepoint).
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let pool = tomograph_sqlx::TracedPool::<sqlx::Sqlite>::connect("sqlite::memory:").await.unwrap();
/// let mut tx = pool.begin().await.unwrap();
/// sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut tx).await.unwrap();
/// sqlx::query("INSERT INTO t VALUES (1)").execute(&mut tx).await.unwrap();
/// tx.commit().await.unwrap();
/// # });
/// # }
/// ```
pub struct TracedTransaction<'c, DB: TracedDatabase> {
    // Dropped first: sqlx queues its rollback before `state` records it.
    tx: Transaction<'c, DB>,
    state: State,
}

/// The tracing side of a transaction, apart from the sqlx one so that `commit(self)` can take
/// the transaction while the drop-time record stays with this part.
struct State {
    tracer: SqlTracer,
    span: DetachedSpan,
    /// The context the transaction was started in.
    parent: Option<TraceToken>,
    /// 1 for a transaction, 2 and up for savepoints inside it.
    depth: usize,
    open: bool,
}

impl State {
    /// The parent of the transaction's statements: its span, or where it was started when
    /// the span is not recorded (annotation mode).
    fn statement_parent(&self) -> Option<TraceToken> {
        self.span.token().or(self.parent)
    }

    fn end(&mut self, outcome: &'static str) {
        self.open = false;
        self.span.tag(keys::db::TRANSACTION_OUTCOME, outcome);
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if self.open {
            let sql = rollback_sql(self.depth);
            let mut rollback = executor::start(&self.tracer, self.statement_parent(), sql.as_str());
            rollback.annotate("queued on drop");
            rollback.finish();
            self.end("rollback");
        }
    }
}

fn begin_sql(depth: usize) -> SqlStr {
    if depth == 0 {
        SqlStr::from_static("BEGIN")
    } else {
        AssertSqlSafe(format!("SAVEPOINT _sqlx_savepoint_{depth}")).into_sql_str()
    }
}

fn commit_sql(depth: usize) -> SqlStr {
    if depth <= 1 {
        SqlStr::from_static("COMMIT")
    } else {
        AssertSqlSafe(format!("RELEASE SAVEPOINT _sqlx_savepoint_{}", depth - 1)).into_sql_str()
    }
}

fn rollback_sql(depth: usize) -> SqlStr {
    if depth <= 1 {
        SqlStr::from_static("ROLLBACK")
    } else {
        AssertSqlSafe(format!(
            "ROLLBACK TO SAVEPOINT _sqlx_savepoint_{}",
            depth - 1
        ))
        .into_sql_str()
    }
}

/// Starts a traced transaction: the `TRANSACTION` span (child of `parent`), then `open`
/// (which runs sqlx's `BEGIN`, or `statement`) under a `BEGIN` span. `depth` is the
/// connection's transaction depth before this one.
pub(crate) async fn begin<'c, DB, F, Fut>(
    tracer: SqlTracer,
    parent: Option<TraceToken>,
    depth: usize,
    statement: Option<SqlStr>,
    open: F,
) -> Result<TracedTransaction<'c, DB>, Error>
where
    DB: TracedDatabase,
    F: FnOnce(Option<SqlStr>) -> Fut,
    Fut: Future<Output = Result<Transaction<'c, DB>, Error>>,
{
    let mut state = State {
        span: tracer.start_transaction_detached(parent),
        tracer,
        parent,
        depth: depth + 1,
        open: true,
    };
    let sql = statement.clone().unwrap_or_else(|| begin_sql(depth));
    let mut call = Call::<DB>::start(&state.tracer, state.statement_parent(), sql, None);
    match open(statement).await {
        Ok(tx) => {
            call.finish();
            Ok(TracedTransaction { tx, state })
        }
        Err(error) => {
            call.fail(&error);
            state.span.record_error(state.tracer.error_message(&error));
            // Nothing to roll back: the transaction never started.
            state.end("failed");
            Err(error)
        }
    }
}

impl<'c, DB: TracedDatabase> TracedTransaction<'c, DB> {
    /// Commits the transaction (releases the savepoint), under a `COMMIT` span.
    pub async fn commit(self) -> Result<(), Error> {
        let Self { tx, mut state } = self;
        let sql = commit_sql(state.depth);
        let mut call = Call::<DB>::start(&state.tracer, state.statement_parent(), sql, None);
        let result = tx.commit().await;
        match &result {
            Ok(()) => {
                call.finish();
                state.end("commit");
            }
            Err(error) => {
                call.fail(error);
                state.span.record_error(state.tracer.error_message(error));
                // sqlx rolls back a transaction whose commit failed; `state`'s drop records it.
            }
        }
        result
    }

    /// Rolls the transaction back (to the savepoint), under a `ROLLBACK` span.
    pub async fn rollback(self) -> Result<(), Error> {
        let Self { tx, mut state } = self;
        let sql = rollback_sql(state.depth);
        let mut call = Call::<DB>::start(&state.tracer, state.statement_parent(), sql, None);
        let result = tx.rollback().await;
        match &result {
            Ok(()) => call.finish(),
            Err(error) => {
                call.fail(error);
                state.span.record_error(state.tracer.error_message(error));
            }
        }
        state.end("rollback");
        result
    }

    /// Starts a savepoint inside this transaction: a nested `TRANSACTION` span, child of this
    /// one.
    pub fn begin(
        &mut self,
    ) -> impl Future<Output = Result<TracedTransaction<'_, DB>, Error>> + Send + '_ {
        let tracer = self.state.tracer.clone();
        let parent = self.state.statement_parent();
        let depth = self.state.depth;
        let conn = &mut *self.tx;
        begin(tracer, parent, depth, None, move |statement| {
            Transaction::begin(conn, statement)
        })
    }

    /// The sqlx transaction, for anything sqlx-specific. Statements run through it directly
    /// are not traced.
    pub fn inner(&self) -> &Transaction<'c, DB> {
        &self.tx
    }

    /// The sqlx transaction, mutably (statements run through it are not traced).
    pub fn inner_mut(&mut self) -> &mut Transaction<'c, DB> {
        &mut self.tx
    }

    /// The tracer.
    pub fn tracer(&self) -> &SqlTracer {
        &self.state.tracer
    }

    pub(crate) fn target(&mut self) -> Target<'_, impl Executor<'_, Database = DB>> {
        Target {
            parent: self.state.statement_parent(),
            executor: DB::connection_executor(&mut self.tx),
            tracer: &self.state.tracer,
        }
    }
}

delegate_executor!(impl<'t, 'c> for &'t mut TracedTransaction<'c, DB>);

impl<DB: TracedDatabase> fmt::Debug for TracedTransaction<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedTransaction")
            .field("transaction", &self.tx)
            .field("depth", &self.state.depth)
            .field("span", &self.state.span.token())
            .finish()
    }
}
