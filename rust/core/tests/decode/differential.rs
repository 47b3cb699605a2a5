//! Random well-formed requests: the decoder's rows against the prost structs.

use aftershock_core::{decode_logs, decode_traces, DecodeOptions};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use super::rng::Rng;
use super::{actual, cases, check_logs, check_traces, expect, gen};

/// Runs `check` on `n` seeds and reports how many failed and the first few, so one
/// run shows how widespread a difference is.
fn over_seeds(what: &str, n: u64, mut check: impl FnMut(u64) -> Result<(), String>) {
    let mut failures = Vec::new();
    for seed in 0..n {
        if let Err(e) = check(seed) {
            failures.push(format!("seed {seed}: {e}"));
        }
    }
    if !failures.is_empty() {
        let shown: Vec<&str> = failures.iter().take(3).map(String::as_str).collect();
        panic!(
            "{what}: {} of {n} cases differ; first ones:\n{}",
            failures.len(),
            shown.join("\n")
        );
    }
}

/// A value cap small enough that cuts, often inside multi-byte characters, are common.
fn tiny_limit(rng: &mut Rng) -> DecodeOptions {
    DecodeOptions {
        max_value_bytes: rng.below(24),
        ..DecodeOptions::default()
    }
}

#[test]
fn traces_agree_with_prost() {
    over_seeds("traces", cases(300), |seed| {
        let req = gen::traces(&mut Rng::new(seed));
        check_traces(&req.encode_to_vec(), &req, &DecodeOptions::default())
    });
}

#[test]
fn traces_agree_with_prost_under_a_tiny_value_cap() {
    over_seeds("traces, tiny cap", cases(150), |seed| {
        let mut rng = Rng::new(seed ^ 0x7e57);
        let req = gen::traces(&mut rng);
        check_traces(&req.encode_to_vec(), &req, &tiny_limit(&mut rng))
    });
}

#[test]
fn logs_agree_with_prost() {
    over_seeds("logs", cases(300), |seed| {
        let req = gen::logs(&mut Rng::new(seed));
        check_logs(&req.encode_to_vec(), &req, &DecodeOptions::default())
    });
}

#[test]
fn logs_agree_with_prost_under_a_tiny_value_cap() {
    over_seeds("logs, tiny cap", cases(150), |seed| {
        let mut rng = Rng::new(seed ^ 0x7e57);
        let req = gen::logs(&mut rng);
        check_logs(&req.encode_to_vec(), &req, &tiny_limit(&mut rng))
    });
}

/// Many requests concatenated are one request (repeated fields append): the decoder must
/// not carry state from one resource into the next.
#[test]
fn concatenated_requests_decode_as_one() {
    over_seeds("concatenated", cases(50), |seed| {
        let mut rng = Rng::new(seed ^ 0xc0ca);
        let (a, b) = (gen::traces(&mut rng), gen::traces(&mut rng));
        let mut bytes = a.encode_to_vec();
        bytes.extend(b.encode_to_vec());
        let mut both = a;
        both.resource_spans.extend(b.resource_spans);
        check_traces(&bytes, &both, &DecodeOptions::default())
    });
}

// ------------------------------------------------------------------------------------
// Literal expectations, straight from the rules: these pin the reference model in
// `expect` as much as the decoder, so that the two cannot agree on a shared mistake.

fn av(v: Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
        key_strindex: 0,
    }
}

fn s(v: &str) -> Option<AnyValue> {
    av(Value::StringValue(v.into()))
}

fn one_span(resource: Vec<KeyValue>, span: Span) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: None,
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn valid_span() -> Span {
    Span {
        trace_id: (1..=16).collect(),
        span_id: vec![0xab; 8],
        name: "GET /".into(),
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 1_500,
        ..Default::default()
    }
}

/// Exactly halfway between two 17-digit decimals; Python rounds it to the even one.
const TIE: f64 = 182_438_742_198_785.0 + 0.125;

#[test]
fn the_reference_model_renders_like_python() {
    let cases: [(f64, &str); 16] = [
        (1.0, "1.0"),
        (100.0, "100.0"),
        (1234.5, "1234.5"),
        (0.00123, "0.00123"),
        (5e-324, "5e-324"),
        (TIE, "182438742198785.12"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-0.0, "-0.0"),
        (1.5, "1.5"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (1.5e300, "1.5e+300"),
        (0.1 + 0.2, "0.30000000000000004"),
        (f64::NAN, "NaN"),
    ];
    for (x, want) in cases {
        assert_eq!(expect::py_float(x), want);
    }
    assert_eq!(expect::py_float(f64::NEG_INFINITY), "-Infinity");
    assert_eq!(expect::base64(b""), "");
    assert_eq!(expect::base64(b"f"), "Zg==");
    assert_eq!(expect::base64(b"fo"), "Zm8=");
    assert_eq!(expect::base64(b"foo"), "Zm9v");
    assert_eq!(expect::base64(&[0xff, 0xfe, 0xfd, 0xfc]), "//79/A==");
    assert_eq!(expect::cut("aé".into(), 2), "a");
    assert_eq!(expect::cut("aé".into(), 3), "aé");
}

#[test]
fn attribute_values_render_per_the_contract() {
    let nested = av(Value::ArrayValue(ArrayValue {
        values: vec![
            AnyValue {
                value: Some(Value::IntValue(-3)),
            },
            AnyValue {
                value: Some(Value::StringValue("q\"\n\u{1}é".into())),
            },
            AnyValue { value: None },
            AnyValue {
                value: Some(Value::BytesValue(vec![0xff])),
            },
            AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![
                        kv("z", av(Value::DoubleValue(1e16))),
                        kv("a", None),
                        kv("m", av(Value::BoolValue(false))),
                    ],
                })),
            },
        ],
    }));
    let span = Span {
        attributes: vec![
            kv("str", s("plain \"text\"")),
            kv("dup", s("first")),
            kv("bool", av(Value::BoolValue(true))),
            kv("int", av(Value::IntValue(42))),
            kv("double", av(Value::DoubleValue(1.0))),
            kv("tiny", av(Value::DoubleValue(1e-5))),
            kv("tie", av(Value::DoubleValue(TIE))),
            kv("nan", av(Value::DoubleValue(f64::NAN))),
            kv("bytes", av(Value::BytesValue(b"foo!".to_vec()))),
            kv("empty", Some(AnyValue { value: None })),
            kv("absent", None),
            kv("nested", nested),
            kv("dup", s("second")),
        ],
        ..valid_span()
    };
    let resource = vec![
        kv("service.name", s("checkout")),
        kv("deployment.environment", s("staging")),
        kv("service.version", av(Value::IntValue(7))),
    ];
    let req = one_span(resource, span);
    let decoded = decode_traces(&req.encode_to_vec(), &DecodeOptions::default()).unwrap();
    let rows = actual::spans(&decoded.batch);
    assert_eq!(rows.len(), 1);
    let o = |v: &str| Some(v.to_string());
    let want: expect::Map = vec![
        ("str".into(), o("plain \"text\"")),
        ("bool".into(), o("true")),
        ("int".into(), o("42")),
        ("double".into(), o("1.0")),
        ("tiny".into(), o("1e-05")),
        ("tie".into(), o("182438742198785.12")),
        ("nan".into(), o("NaN")),
        ("bytes".into(), o("Zm9vIQ==")),
        ("empty".into(), None),
        ("absent".into(), None),
        (
            "nested".into(),
            o(r#"[-3,"q\"\n\u0001é",null,"/w==",{"z":1e+16,"a":null,"m":false}]"#),
        ),
        ("dup".into(), o("second")),
    ];
    assert_eq!(rows[0].span_attributes, want);
    let r = &rows[0];
    assert_eq!(r.trace_id, "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(r.span_id, "abababababababab");
    assert_eq!(r.parent_span_id, None);
    assert_eq!(
        (r.span_kind.as_str(), r.status_code.as_str()),
        ("UNSPECIFIED", "UNSET")
    );
    assert_eq!(
        (r.start_time, r.end_time, r.duration_ns),
        (1_000, 1_500, 500)
    );
    assert_eq!(r.resource.service_name.as_deref(), Some("checkout"));
    assert_eq!(r.resource.service_version.as_deref(), Some("7"));
    assert_eq!(r.resource.service_instance_id, None);
    assert_eq!(
        r.resource.deployment_environment.as_deref(),
        Some("staging")
    );
    assert_eq!(
        (r.resource.scope_name.as_ref(), r.span_name.as_str()),
        (None, "GET /")
    );
}

#[test]
fn top_level_values_are_cut_at_a_char_boundary_but_bodies_are_not() {
    // 8191 ASCII bytes then a 2-byte character: the cut must drop the whole character.
    let long = format!("{}é tail", "x".repeat(8191));
    let span = Span {
        attributes: vec![kv("long", s(&long))],
        ..valid_span()
    };
    let decoded = decode_traces(
        &one_span(vec![], span).encode_to_vec(),
        &DecodeOptions::default(),
    )
    .unwrap();
    let rows = actual::spans(&decoded.batch);
    assert_eq!(rows[0].span_attributes[0].1.as_deref(), Some(&long[..8191]));

    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: None,
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: vec![LogRecord {
                    observed_time_unix_nano: 77,
                    body: s(&long),
                    attributes: vec![kv("long", s(&long))],
                    trace_id: vec![0; 16],
                    span_id: vec![9; 8],
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let decoded = decode_logs(&req.encode_to_vec(), &DecodeOptions::default()).unwrap();
    let rows = actual::logs(&decoded.batch);
    assert_eq!(rows[0].body.as_deref(), Some(long.as_str()));
    assert_eq!(rows[0].log_attributes[0].1.as_deref(), Some(&long[..8191]));
    assert_eq!((rows[0].time, rows[0].observed_time), (Some(77), Some(77)));
    assert_eq!(rows[0].trace_id, None);
    assert_eq!(rows[0].span_id.as_deref(), Some("0909090909090909"));
}

#[test]
fn invalid_ids_reject_the_span_and_nothing_else() {
    let bad = [
        Span {
            trace_id: vec![0; 16],
            ..valid_span()
        },
        Span {
            trace_id: vec![1; 15],
            ..valid_span()
        },
        Span {
            span_id: vec![],
            ..valid_span()
        },
        Span {
            span_id: vec![0; 8],
            ..valid_span()
        },
        Span {
            parent_span_id: vec![1; 16],
            ..valid_span()
        },
    ];
    let mut req = one_span(vec![], valid_span());
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    spans.extend(bad);
    spans.push(Span {
        parent_span_id: vec![0; 8],
        end_time_unix_nano: 10,
        ..valid_span()
    });
    let decoded = decode_traces(&req.encode_to_vec(), &DecodeOptions::default()).unwrap();
    assert_eq!((decoded.stats.accepted, decoded.stats.rejected), (2, 5));
    let rows = actual::spans(&decoded.batch);
    // An all-zero parent is a root; an end before the start is a zero duration.
    assert_eq!(
        (rows[1].parent_span_id.as_ref(), rows[1].duration_ns),
        (None, 0)
    );
}
