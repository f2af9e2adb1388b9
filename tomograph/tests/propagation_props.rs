//! Property tests of every header parser: no input makes them panic, and whatever we write
//! reads back the same.
#![allow(clippy::unwrap_used)]

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use tomograph::http::Host;
use tomograph::propagation::{Format, Propagation, b3, w3c, x_trace_info};
use tomograph::{SpanId, TraceId, TraceToken};

fn trace_id() -> impl Strategy<Value = TraceId> {
    prop_oneof![
        (1..=u64::MAX).prop_map(|v| TraceId::from_u64(v).unwrap()),
        (1..=u128::MAX).prop_map(|v| TraceId::from_u128(v).unwrap()),
    ]
}

fn span_id() -> impl Strategy<Value = SpanId> {
    (1..=u64::MAX).prop_map(|v| SpanId::from_u64(v).unwrap())
}

fn token() -> impl Strategy<Value = TraceToken> {
    (trace_id(), span_id(), any::<bool>(), any::<bool>())
        .prop_map(|(t, s, sampled, debug)| TraceToken::new(t, s, sampled).with_debug(debug))
}

/// Header maps made of the names we read, with arbitrary (valid) values.
fn header_map() -> impl Strategy<Value = HeaderMap> {
    let names = prop::sample::select(vec![
        "x-trace-info",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "x-b3-flags",
        "traceparent",
        "tracestate",
        "host",
    ]);
    let value = prop_oneof![
        "[ -~]{0,80}",
        "[0-9a-f]{16}",
        "[0-9a-f]{32}-[0-9a-f]{16}(-[01d])?",
        "00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}",
        "[A-Za-z0-9+/=]{0,120}",
    ];
    prop::collection::vec((names, value), 0..8).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            if let Ok(v) = HeaderValue::from_str(&v) {
                map.append(HeaderName::from_static(k), v);
            }
        }
        map
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn x_trace_info_round_trips(t in trace_id(), s in span_id()) {
        prop_assert_eq!(x_trace_info::decode(x_trace_info::encode(t, s).as_bytes()), Some((t, s)));
    }

    #[test]
    fn x_trace_info_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = x_trace_info::decode(&bytes);
        let _ = x_trace_info::unpickle(&bytes);
    }

    #[test]
    fn x_trace_info_accepts_only_what_reads_back(
        t in trace_id(),
        s in span_id(),
        at in 0usize..60,
        byte in any::<u8>(),
    ) {
        // Mutate one byte of a valid pickle: whatever is still accepted must re-encode to
        // something that decodes to the same ids (no half-parsed values).
        let mut pickle = x_trace_info::pickle(t, s);
        let i = at % pickle.len();
        pickle[i] = byte;
        if let Some((t2, s2)) = x_trace_info::unpickle(&pickle) {
            prop_assert_eq!(x_trace_info::decode(x_trace_info::encode(t2, s2).as_bytes()), Some((t2, s2)));
        }
    }

    #[test]
    fn b3_single_round_trips(token in token()) {
        let parsed = b3::parse_single(&b3::format_single(&token)).and_then(|e| e.token());
        prop_assert_eq!(parsed, Some(token));
    }

    #[test]
    fn b3_single_never_panics(s in "\\PC{0,100}") {
        let _ = b3::parse_single(&s);
    }

    #[test]
    fn b3_single_grammar(s in "[0-9a-f]{16}(([0-9a-f]{16})?)-[0-9a-f]{16}(-[01d](-[0-9a-f]{16})?)?") {
        let parsed = b3::parse_single(&s);
        let zero_ids = s.split('-').take(2).any(|id| id.bytes().all(|b| b == b'0'));
        prop_assert_eq!(parsed.is_some(), !zero_ids, "{}", s);
    }

    #[test]
    fn w3c_round_trips(token in token()) {
        let (t, s, sampled) = w3c::parse_traceparent(&w3c::format_traceparent(&token)).unwrap();
        prop_assert_eq!((t, s, sampled), (token.trace_id(), token.span_id(), token.sampled()));
    }

    #[test]
    fn w3c_never_panics(s in "\\PC{0,80}") {
        let _ = w3c::parse_traceparent(&s);
    }

    #[test]
    fn w3c_grammar(s in "[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}") {
        let fields: Vec<&str> = s.split('-').collect();
        let valid = fields[0] != "ff"
            && fields[1].bytes().any(|b| b != b'0')
            && fields[2].bytes().any(|b| b != b'0');
        prop_assert_eq!(w3c::parse_traceparent(&s).is_some(), valid, "{}", s);
    }

    #[test]
    fn every_format_round_trips_through_headers(token in token(), format in prop::sample::select(Format::ALL.to_vec())) {
        let p = Propagation::only([format]);
        let mut headers = HeaderMap::new();
        p.inject(token, &mut headers);
        let got = p.extract(&headers);
        match format {
            Format::XTraceInfo if !token.sampled() => prop_assert!(got.is_none()),
            // X-Trace-Info carries no debug flag, W3C neither.
            Format::XTraceInfo | Format::W3c => {
                let got = got.and_then(|e| e.token()).unwrap();
                prop_assert_eq!((got.trace_id(), got.span_id(), got.sampled()),
                    (token.trace_id(), token.span_id(), token.sampled()));
            }
            _ => prop_assert_eq!(got.and_then(|e| e.token()), Some(token)),
        }
    }

    #[test]
    fn extraction_never_panics_and_yields_valid_tokens(headers in header_map()) {
        let extracted = Propagation::default().extract_formats(Format::ALL).extract(&headers);
        if let Some(token) = extracted.as_ref().and_then(|e| e.token()) {
            let e = extracted.as_ref().unwrap();
            prop_assert_eq!(Some(token.trace_id()), e.trace_id());
            prop_assert_eq!(Some(token.span_id()), e.span_id());
        }
    }

    #[test]
    fn host_never_panics(s in "\\PC{0,300}") {
        let _ = Host::parse(&s);
    }

    #[test]
    fn hosts_round_trip(
        name in "[a-z][a-z0-9-]{0,20}(\\.[a-z0-9-]{1,10}){0,3}",
        v6 in any::<[u16; 8]>(),
        v4 in any::<[u8; 4]>(),
        port in prop::option::of(any::<u16>()),
        which in 0..3,
    ) {
        let host = match which {
            0 => name,
            1 => format!("[{}]", std::net::Ipv6Addr::from(v6)),
            _ => std::net::Ipv4Addr::from(v4).to_string(),
        };
        let text = match port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let parsed = Host::parse(&text).unwrap();
        prop_assert_eq!(parsed.port(), port);
        prop_assert_eq!(parsed.to_string(), text);
        prop_assert_eq!(which != 0, parsed.ip().is_some());
    }
}
