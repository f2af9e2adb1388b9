//! Round trips of our headers with third-party code (`peers/header-peer`): Python's own
//! pickle for `X-Trace-Info`, py_zipkin for B3. Needs the installed peers
//! (`TOMOGRAPH_TEST_PEERS_DIR`, set by `scripts/test`).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tomograph::propagation::{Format, Propagation, x_trace_info};
use tomograph::{SpanId, TraceId, TraceToken};

/// `header-peer` from the installed test peers (`TOMOGRAPH_TEST_PEERS_DIR`, set by
/// `scripts/test`), or `None` when the peers are opted out.
fn peer() -> Option<PathBuf> {
    tomograph::testing::require_env("TOMOGRAPH_TEST_PEERS_DIR")
        .map(|dir| PathBuf::from(dir).join("header-peer"))
}

/// Runs the peer; `Ok(stdout)` on exit 0, `Err(stderr)` otherwise.
fn run(peer: &PathBuf, args: &[&str]) -> Result<String, String> {
    let out = Command::new(peer)
        .args(args)
        .output()
        .expect("run header-peer");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The headers as a JSON object. HTTP names are case-insensitive and `http` keeps them in
/// lower case; the peer reads a plain (case-sensitive) dict, where the web frameworks
/// py_zipkin runs under give it case-insensitive ones, so spell B3 names as py_zipkin does.
fn json_headers(headers: &HeaderMap) -> String {
    let canonical = |name: &str| match name {
        "x-b3-traceid" => "X-B3-TraceId".to_owned(),
        "x-b3-spanid" => "X-B3-SpanId".to_owned(),
        "x-b3-parentspanid" => "X-B3-ParentSpanId".to_owned(),
        "x-b3-sampled" => "X-B3-Sampled".to_owned(),
        "x-b3-flags" => "X-B3-Flags".to_owned(),
        other => other.to_owned(),
    };
    let map: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (canonical(k.as_str()), Value::from(v.to_str().unwrap())))
        .collect();
    Value::Object(map).to_string()
}

fn header_map(json: &str) -> HeaderMap {
    let value: Value = serde_json::from_str(json).unwrap();
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// Ids as the original Python services produced them, and the edges of the grammar.
const PYTHON_IDS: &[(&str, &str, u128, u64)] = &[
    (
        "5731049070570866",
        "1234567890123",
        5731049070570866,
        1234567890123,
    ),
    ("1", "2", 1, 2),
    ("2147483647", "2147483648", 2147483647, 2147483648),
    (
        "9223372036854775807",
        "18446744073709551615",
        i64::MAX as u128,
        u64::MAX,
    ),
    ("-1", "-9223372036854775808", u64::MAX as u128, 1 << 63),
    (
        "93597237993738851988259139004327006500",
        "42",
        0x466a_2c1e_3d24_6b2d_29d4_f5f3_8a2c_1124,
        42,
    ),
];

#[test]
fn x_trace_info_made_by_python_parses_here() {
    let Some(peer) = peer() else { return };
    for &(trace, span, want_trace, want_span) in PYTHON_IDS {
        let value = run(&peer, &["x-trace-info", "make", trace, span]).unwrap();
        let got = x_trace_info::decode(value.as_bytes());
        assert_eq!(
            got,
            Some((
                TraceId::from_u128(want_trace).unwrap(),
                SpanId::from_u64(want_span).unwrap()
            )),
            "python's {value} for ({trace}, {span})"
        );
    }
}

#[test]
fn x_trace_info_made_here_reads_back_in_python() {
    let Some(peer) = peer() else { return };
    let mut cases: Vec<(TraceId, SpanId)> = PYTHON_IDS
        .iter()
        .map(|&(_, _, t, s)| (TraceId::from_u128(t).unwrap(), SpanId::from_u64(s).unwrap()))
        .collect();
    for wide in [false, true, false, true] {
        cases.push((TraceId::random(wide), SpanId::random()));
    }
    for (trace, span) in cases {
        let value = x_trace_info::encode(trace, span);
        let read = run(&peer, &["x-trace-info", "read", &value]).unwrap();
        // `[trace, span]`, compared as text: the numbers may exceed what serde_json parses.
        let numbers: Vec<&str> = read
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(str::trim)
            .collect();
        // 64-bit ids travel as Python's signed i64 (what the original's thrift encoder takes).
        let want_trace = if trace.is_128bit() {
            trace.get().to_string()
        } else {
            (trace.low() as i64).to_string()
        };
        let want_span = (span.get() as i64).to_string();
        assert_eq!(numbers, [want_trace, want_span], "{value}");
    }
}

#[test]
fn python_refuses_nothing_we_write_and_we_refuse_what_python_would_execute() {
    let Some(peer) = peer() else { return };
    // A pickle calling a global: Python's restricted reader refuses it, so do we.
    let evil = "Y29zCnN5c3RlbQooUydlY2hvIHB3bmVkJwp0Ui4=";
    assert!(run(&peer, &["x-trace-info", "read", evil]).is_err());
    assert_eq!(x_trace_info::decode(evil.as_bytes()), None);
}

#[test]
fn b3_made_by_py_zipkin_parses_here() {
    let Some(peer) = peer() else { return };
    for (args, sampled, debug, wide) in [
        (&["b3", "make"][..], true, false, false),
        (&["b3", "make", "--sampled", "0"][..], false, false, false),
        (&["b3", "make", "--sampled", "d"][..], true, true, false),
        (&["b3", "make", "--128"][..], true, false, true),
    ] {
        let json = run(&peer, args).unwrap();
        let headers = header_map(&json);
        let parsed = Propagation::default()
            .extract(&headers)
            .unwrap_or_else(|| panic!("py_zipkin's {json} did not parse"));
        assert_eq!(parsed.format(), Format::B3);
        let token = parsed.token().unwrap();
        assert_eq!(
            token.trace_id().to_string(),
            headers["x-b3-traceid"],
            "{json}"
        );
        assert_eq!(
            token.span_id().to_string(),
            headers["x-b3-spanid"],
            "{json}"
        );
        assert_eq!(token.sampled(), sampled, "{json}");
        assert_eq!(token.debug(), debug, "{json}");
        assert_eq!(token.trace_id().is_128bit(), wide, "{json}");
    }
}

#[test]
fn b3_made_here_parses_in_py_zipkin() {
    let Some(peer) = peer() else { return };
    for format in [Format::B3, Format::B3Single] {
        for (sampled, debug, wide) in [
            (true, false, false),
            (false, false, false),
            (true, true, false),
            (true, false, true),
            (false, false, true),
        ] {
            let token =
                TraceToken::new(TraceId::random(wide), SpanId::random(), sampled).with_debug(debug);
            let mut headers = HeaderMap::new();
            Propagation::only([format]).inject(token, &mut headers);
            let json = json_headers(&headers);
            let read = run(&peer, &["b3", "read", &json]).unwrap();
            let attrs: Value = serde_json::from_str(&read).unwrap();
            assert_eq!(attrs["trace_id"], token.trace_id().to_string(), "{json}");
            assert_eq!(attrs["span_id"], token.span_id().to_string(), "{json}");
            assert_eq!(attrs["is_sampled"], sampled, "{json}");
            assert_eq!(attrs["flags"] == "1", debug, "{json} -> {read}");
        }
    }
}
