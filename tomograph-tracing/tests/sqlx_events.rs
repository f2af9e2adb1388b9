//! Where sqlx's `sqlx::query` events land through the bridge. sqlx's SQLite driver runs each
//! statement, and logs it, on a worker thread of its own, under the `tracing` span that was
//! current where the query was issued (it sends `Span::current()` along): the event becomes a
//! note on that span's tomograph span. Under a tomograph span alone (`traced_with`, the tower
//! layer, `#[traced]`) no `tracing` span is current, the worker has no context, and the event
//! cannot be placed: the README says so (use tomograph-sqlx, whose statement spans carry what
//! the event would). Events logged on the issuing thread land either way.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tomograph::FutureExt;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn notes(span: &tomograph::Span) -> Vec<String> {
    span.notes().map(|(_, note)| note.to_owned()).collect()
}

#[test]
fn sqlite_query_events_land_on_the_tracing_span_they_were_issued_under() {
    let memory = tomograph::testing::memory_tracer();
    tracing_subscriber::registry()
        .with(tomograph_tracing::TomographLayer::new())
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();

        let trace = async {
            let trace = tomograph::get_trace_info().unwrap().trace_id();
            async {
                sqlx::query("SELECT 2").execute(&pool).await.unwrap();
            }
            .instrument(tracing::info_span!("load"))
            .await;
            trace
        }
        .traced_with(tomograph::span("request").root())
        .await;
        let spans = tomograph::testing::wait_for_trace(&memory, trace, 2, Duration::from_secs(5));
        let load = spans.iter().find(|s| s.name() == "load").unwrap();
        assert!(
            notes(load)
                .iter()
                .any(|n| n.starts_with("DEBUG sqlx::query") && n.contains("SELECT 2")),
            "{:?}",
            notes(load)
        );

        let trace = async {
            let trace = tomograph::get_trace_info().unwrap().trace_id();
            tracing::debug!(target: "app", "on the issuing thread");
            sqlx::query("SELECT 1").execute(&pool).await.unwrap();
            trace
        }
        .traced_with(tomograph::span("tomograph only").root())
        .await;
        let spans = tomograph::testing::wait_for_trace(&memory, trace, 1, Duration::from_secs(5));
        let notes = notes(&spans[0]);
        assert!(
            notes.iter().any(|n| n.contains("on the issuing thread")),
            "{notes:?}"
        );
        assert!(
            !notes.iter().any(|n| n.contains("sqlx::query")),
            "sqlx's worker now reaches a tomograph-only span: update the README ({notes:?})"
        );
    });
}
