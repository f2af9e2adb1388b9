//! One client/server trace — two spans, two notes each, like the seed's screenshot — sent to
//! Zipkin and statsd: `cargo run -p tomograph-examples --example zipkin_statsd`.
//!
//! Addresses come from the environment: `TOMOGRAPH_ZIPKIN_URL` (default
//! `http://127.0.0.1:9411`), `TOMOGRAPH_ZIPKIN_ENCODING` (`json`, `thrift`, `scribe`),
//! `TOMOGRAPH_SCRIBE_ADDR`, `TOMOGRAPH_STATSD_ADDR` (default `127.0.0.1:8125`),
//! `TOMOGRAPH_STATSD_PREFIX`; `TOMOGRAPH_BACKENDS` overrides the backends (default here:
//! `zipkin,statsd,console`). Nothing listening is fine: the example still finishes, and says
//! what was not delivered.
//!
//! In statsd (Graphite) the trace becomes, as in the original:
//!
//! ```text
//! test-client-127-0-0-1-0.client-request:12.3|ms          (timer)
//! test-client-127-0-0-1-0.client-request.start:1|c        (counters, one per note)
//! test-client-127-0-0-1-0.client-request.stop:1|c
//! test-server-127-0-0-1-80.server-response:10.1|ms
//! test-server-127-0-0-1-80.server-response.start:1|c
//! test-server-127-0-0-1-80.server-response.stop:1|c
//! ```

use std::error::Error;
use std::time::Duration;

use tomograph::ConfigBuilder;

fn main() -> Result<(), Box<dyn Error>> {
    env_logger::init();
    let config = ConfigBuilder::from_env("zipkin,statsd,console")?
        .service_name("test client")
        .build();
    println!("backends: {}", config.backend_names().join(", "));
    tomograph::init(config)?;

    // The client's span…
    tomograph::start("test client", "client request", "127.0.0.1", 0);
    let token = tomograph::get_trace_info();
    std::thread::sleep(Duration::from_millis(1));

    // …and the server's, continuing the trace on "another machine" (a thread here; across
    // processes the token travels in an HTTP header, see the client_server example).
    std::thread::spawn(move || -> Result<(), tomograph::StopError> {
        tomograph::start_from(token, "test server", "server response", "127.0.0.1", 80);
        std::thread::sleep(Duration::from_millis(10));
        tomograph::stop("server response")
    })
    .join()
    .map_err(|_| "server thread panicked")??;

    std::thread::sleep(Duration::from_millis(1));
    tomograph::stop("client request")?;

    if let Some(token) = token {
        let zipkin = std::env::var("TOMOGRAPH_ZIPKIN_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:9411".to_owned());
        println!(
            "trace {}: {}/zipkin/traces/{}",
            token.trace_id(),
            zipkin.trim_end_matches('/'),
            token.trace_id()
        );
    }
    match tomograph::shutdown(Duration::from_secs(10)) {
        Ok(()) => println!("delivered"),
        Err(e) => println!("not everything was delivered: {e}"),
    }
    for backend in tomograph::stats().backends {
        println!(
            "{}: sent {}, failed {}, dropped {}",
            backend.name, backend.sent, backend.failed, backend.dropped
        );
    }
    Ok(())
}
