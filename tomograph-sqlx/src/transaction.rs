//! [`TracedTransaction`]: a `sqlx::Transaction` whose statements are traced, grouped under a
//! span `TRANSACTION`.

use std::fmt;
use std::future::Future;

use sqlx::{AssertSqlSafe, Error, Executor, SqlSafeStr, SqlStr, Transaction};
use tomograph::TraceToken;
use tomograph::sql::{SqlTracer, SqlTransaction, TransactionOutcome};

use crate::database::TracedDatabase;
use crate::executor::{self, Call, Target, delegate_executor};

/// A transaction (or savepoint) whose statements are traced.
///
/// It is a span `TRANSACTION` (the schema of [`tomograph::sql::SqlTransaction`]: the
/// database's tags, `db.transaction.depth`, `db.transaction.outcome` `commit`, `rollback` or
/// `failed` at the end) whose children are `BEGIN`, every statement run through
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
    /// The `TRANSACTION` span ([`tomograph::sql::SqlTransaction`]: one schema for every
    /// adapter); its depth is 1 for a transaction, 2 and up for savepoints inside it.
    transaction: SqlTransaction,
    open: bool,
}

impl State {
    /// The parent of the transaction's statements: its span, or where it was started when
    /// the span is not recorded (annotation mode).
    fn statement_parent(&self) -> Option<TraceToken> {
        self.transaction.statement_parent()
    }

    fn depth(&self) -> usize {
        self.transaction.depth() as usize
    }

    fn end(&mut self, outcome: TransactionOutcome) {
        self.open = false;
        self.transaction.end(outcome);
    }

    /// `BEGIN`, `COMMIT` or `ROLLBACK` failed.
    fn fail<DB: TracedDatabase>(&mut self, error: &Error) {
        let code = executor::status_code::<DB>(error);
        self.transaction
            .fail(error, code.as_deref(), executor::error_type(error));
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if self.open {
            let sql = rollback_sql(self.depth());
            let mut rollback = executor::start(
                &self.tracer,
                executor::Origin::under(self.statement_parent()),
                sql.as_str(),
            );
            rollback.annotate("queued on drop");
            rollback.finish();
            self.end(TransactionOutcome::Rollback);
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
    let depth = u32::try_from(depth).unwrap_or(u32::MAX).saturating_add(1);
    let mut state = State {
        transaction: tracer.begin_transaction_under(parent, depth),
        tracer,
        open: true,
    };
    let sql = statement
        .clone()
        .unwrap_or_else(|| begin_sql(state.depth() - 1));
    let mut call = Call::<DB>::start(
        &state.tracer,
        executor::Origin::under(state.statement_parent()),
        sql,
        None,
    );
    match open(statement).await {
        Ok(tx) => {
            call.finish();
            Ok(TracedTransaction { tx, state })
        }
        Err(error) => {
            call.fail(&error);
            state.fail::<DB>(&error);
            // Nothing to roll back: the transaction never started.
            state.end(TransactionOutcome::Failed);
            Err(error)
        }
    }
}

impl<'c, DB: TracedDatabase> TracedTransaction<'c, DB> {
    /// Commits the transaction (releases the savepoint), under a `COMMIT` span.
    pub async fn commit(self) -> Result<(), Error> {
        let Self { tx, mut state } = self;
        let sql = commit_sql(state.depth());
        let mut call = Call::<DB>::start(
            &state.tracer,
            executor::Origin::under(state.statement_parent()),
            sql,
            None,
        );
        let result = tx.commit().await;
        match &result {
            Ok(()) => {
                call.finish();
                state.end(TransactionOutcome::Commit);
            }
            Err(error) => {
                call.fail(error);
                state.fail::<DB>(error);
                // sqlx rolls back a transaction whose commit failed; `state`'s drop records it.
            }
        }
        result
    }

    /// Rolls the transaction back (to the savepoint), under a `ROLLBACK` span.
    pub async fn rollback(self) -> Result<(), Error> {
        let Self { tx, mut state } = self;
        let sql = rollback_sql(state.depth());
        let mut call = Call::<DB>::start(
            &state.tracer,
            executor::Origin::under(state.statement_parent()),
            sql,
            None,
        );
        let result = tx.rollback().await;
        match &result {
            Ok(()) => call.finish(),
            Err(error) => {
                call.fail(error);
                state.fail::<DB>(error);
            }
        }
        state.end(TransactionOutcome::Rollback);
        result
    }

    /// Starts a savepoint inside this transaction: a nested `TRANSACTION` span, child of this
    /// one.
    pub fn begin(
        &mut self,
    ) -> impl Future<Output = Result<TracedTransaction<'_, DB>, Error>> + Send + '_ {
        let tracer = self.state.tracer.clone();
        let parent = self.state.statement_parent();
        let depth = self.state.depth();
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
            origin: executor::Origin::under(self.state.statement_parent()),
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
            .field("depth", &self.state.depth())
            .field("span", &self.state.transaction.token())
            .finish()
    }
}
