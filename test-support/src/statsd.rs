//! Etsy's statsd as the tests see it: `peers/statsd-peer query` reads the daemon's admin
//! interface (`scripts/test` starts the daemon and sets `TOMOGRAPH_TEST_STATSD_ADMIN`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The repository's test peers (`statsd-peer query` needs only python3).
pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../peers")
}

/// What the daemon at `admin` (`host:port` of its admin interface) holds under `what`
/// (`counters`, `timers`, `gauges`, or `bad_lines_seen` under `counters`), by metric name.
///
/// Panics with the peer's own message when it cannot answer: a test that reads statsd has
/// nothing to assert without it.
pub fn query(what: &str, admin: &str) -> BTreeMap<String, Value> {
    let port = admin.rsplit(':').next().unwrap_or(admin);
    let out = Command::new(peers_dir().join("statsd-peer"))
        .args(["query", what, port])
        .output()
        .expect("statsd-peer runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("statsd-peer prints JSON")
}
