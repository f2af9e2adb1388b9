//! The seed's "glance image list", in Rust: `cargo run --example image_list`.
//!
//! An axum "image registry" traced by the tomograph middleware, its database behind a traced
//! sqlx pool, and manual spans inside the handlers; a client command ("image-list") calls it a
//! few times with traced requests, so one trace holds the client's spans, the server's request
//! spans and every SQL statement under them. The example serves its own requests, then stops
//! and flushes the reporter.
//!
//! The database is PostgreSQL when `TOMOGRAPH_EXAMPLE_POSTGRES_URL` (or `DATABASE_URL`) is set,
//! else SQLite in memory. Backends come from `TOMOGRAPH_BACKENDS` (default `console`), e.g.
//! `TOMOGRAPH_BACKENDS=console,zipkin TOMOGRAPH_ZIPKIN_URL=http://127.0.0.1:9411`.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use sqlx::{AssertSqlSafe, Database, Executor, FromRow, IntoArguments, Postgres, Sqlite};
use tomograph::http::TraceLayer;
use tomograph::http::client::RequestBuilderExt;
use tomograph::sql::QueryText;
use tomograph::{ConfigBuilder, FutureExt};
use tomograph_sqlx::{TracedDatabase, TracedPool, tracer_builder};

/// One image: id, name, size in bytes.
type Image = (i64, String, i64);

/// The statements, on a table named for this process (the database may be shared).
struct Statements {
    table: String,
    list: Arc<str>,
    get: Arc<str>,
}

impl Statements {
    fn new() -> Self {
        let table = format!("image_list_example_{}", std::process::id());
        Self {
            list: format!("SELECT id, name, size FROM {table} ORDER BY id").into(),
            get: format!("SELECT id, name, size FROM {table} WHERE id = $1").into(),
            table,
        }
    }
}

/// The registry's database: PostgreSQL or SQLite, both traced.
#[derive(Clone)]
enum Registry {
    Postgres(TracedPool<Postgres>, Arc<Statements>),
    Sqlite(TracedPool<Sqlite>, Arc<Statements>),
}

async fn list<DB>(pool: &TracedPool<DB>, sql: &Statements) -> sqlx::Result<Vec<Image>>
where
    DB: TracedDatabase,
    for<'c> &'c TracedPool<DB>: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments: IntoArguments<DB>,
    Image: for<'r> FromRow<'r, DB::Row>,
{
    sqlx::query_as(AssertSqlSafe(sql.list.clone()))
        .fetch_all(pool)
        .await
}

async fn get_one<DB>(
    pool: &TracedPool<DB>,
    sql: &Statements,
    id: i64,
) -> sqlx::Result<Option<Image>>
where
    DB: TracedDatabase,
    for<'c> &'c TracedPool<DB>: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments: IntoArguments<DB>,
    Image: for<'r> FromRow<'r, DB::Row>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query_as(AssertSqlSafe(sql.get.clone()))
        .bind(id)
        .fetch_optional(pool)
        .await
}

async fn setup<DB>(pool: &TracedPool<DB>, sql: &Statements) -> sqlx::Result<()>
where
    DB: TracedDatabase,
    for<'c> &'c sqlx::Pool<DB>: Executor<'c, Database = DB>,
{
    let table = &sql.table;
    // Set-up runs outside any trace: with the default policy it is not traced.
    pool.inner()
        .execute(AssertSqlSafe(format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, size BIGINT NOT NULL)"
        )))
        .await?;
    pool.inner()
        .execute(AssertSqlSafe(format!(
            "INSERT INTO {table} (id, name, size) VALUES \
             (1, 'cirros-0.6.2', 21430272), (2, 'ubuntu-24.04', 600834048), (3, 'debian-12', 354418688)"
        )))
        .await?;
    Ok(())
}

async fn teardown<DB>(pool: &TracedPool<DB>, sql: &Statements) -> sqlx::Result<()>
where
    DB: TracedDatabase,
    for<'c> &'c sqlx::Pool<DB>: Executor<'c, Database = DB>,
{
    pool.inner()
        .execute(AssertSqlSafe(format!("DROP TABLE {}", sql.table)))
        .await?;
    pool.close().await;
    Ok(())
}

impl Registry {
    async fn connect() -> Result<Self, Box<dyn Error>> {
        let statements = Arc::new(Statements::new());
        let url = std::env::var("TOMOGRAPH_EXAMPLE_POSTGRES_URL")
            .or_else(|_| std::env::var("DATABASE_URL"))
            .ok()
            .filter(|u| !u.is_empty());
        Ok(match url {
            Some(url) => {
                let pool = sqlx::PgPool::connect(&url).await?;
                // Literals never reach the trace; placeholders stay.
                let tracer = tracer_builder(&pool)
                    .query_text(QueryText::Normalized)
                    .build();
                let pool = TracedPool::with_tracer(pool, tracer);
                setup(&pool, &statements).await?;
                Registry::Postgres(pool, statements)
            }
            None => {
                let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
                let tracer = tracer_builder(&pool)
                    .query_text(QueryText::Normalized)
                    .build();
                let pool = TracedPool::with_tracer(pool, tracer);
                setup(&pool, &statements).await?;
                Registry::Sqlite(pool, statements)
            }
        })
    }

    fn database(&self) -> &'static str {
        match self {
            Registry::Postgres(..) => "PostgreSQL",
            Registry::Sqlite(..) => "SQLite (in memory)",
        }
    }

    async fn list(&self) -> sqlx::Result<Vec<Image>> {
        match self {
            Registry::Postgres(pool, sql) => list(pool, sql).await,
            Registry::Sqlite(pool, sql) => list(pool, sql).await,
        }
    }

    async fn get(&self, id: i64) -> sqlx::Result<Option<Image>> {
        match self {
            Registry::Postgres(pool, sql) => get_one(pool, sql, id).await,
            Registry::Sqlite(pool, sql) => get_one(pool, sql, id).await,
        }
    }

    async fn close(self) -> sqlx::Result<()> {
        match self {
            Registry::Postgres(pool, sql) => teardown(&pool, &sql).await,
            Registry::Sqlite(pool, sql) => teardown(&pool, &sql).await,
        }
    }
}

fn internal(error: sqlx::Error) -> (StatusCode, String) {
    tomograph::record_error(&error);
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

/// Checks the caller's token, as glance's auth middleware would (a manual span).
/// `#[traced]` on an `async fn` gives its future its own span (a guard held across `.await`
/// would make the handler's future not `Send`).
#[tomograph::traced(name = "authorize")]
async fn authorize() {
    tokio::time::sleep(Duration::from_millis(1)).await;
    tomograph::annotate("token valid");
}

fn render(images: &[Image]) -> String {
    let render = tomograph::span("render").start();
    render.tag("images", images.len());
    images
        .iter()
        .map(|(id, name, size)| format!("{id}\t{name}\t{size}\n"))
        .collect()
}

async fn list_images(State(registry): State<Registry>) -> Result<String, (StatusCode, String)> {
    authorize().await;
    let images = registry.list().await.map_err(internal)?;
    Ok(render(&images))
}

async fn show_image(
    State(registry): State<Registry>,
    Path(id): Path<i64>,
) -> Result<String, (StatusCode, String)> {
    authorize().await;
    match registry.get(id).await.map_err(internal)? {
        Some(image) => Ok(render(&[image])),
        None => Err((StatusCode::NOT_FOUND, format!("no image {id}\n"))),
    }
}

/// The client command: `glance image-list`, then a look at two images.
async fn image_list(base: &str) -> Result<(), Box<dyn Error>> {
    let client = reqwest::Client::new();
    let listing = client
        .get(format!("{base}/images"))
        .send_traced()
        .await?
        .text()
        .await?;
    print!("{listing}");
    for id in [2, 42] {
        let response = client
            .get(format!("{base}/images/{id}"))
            .send_traced()
            .await?;
        println!("GET /images/{id}: {}", response.status());
    }
    Ok(())
}

async fn run() -> Result<(), Box<dyn Error>> {
    let registry = Registry::connect().await?;
    println!("image registry on {}", registry.database());

    let app = Router::new()
        .route("/images", get(list_images))
        .route("/images/{id}", get(show_image))
        .with_state(registry.clone())
        .layer(TraceLayer::from_env().service_name("glance-registry"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    // The client command is the trace's root; its span follows the task across `.await`.
    let outcome = image_list(&base)
        .traced_with(tomograph::span("image-list").root())
        .await;

    let _ = stop.send(());
    server.await??;
    registry.close().await?;
    outcome
}

fn main() -> Result<(), Box<dyn Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    tomograph::init(
        ConfigBuilder::from_env("console")?
            .service_name("glance-cli")
            .build(),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())?;
    // Deliver everything before exiting.
    tomograph::shutdown(Duration::from_secs(5))?;
    Ok(())
}
