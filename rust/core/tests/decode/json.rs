//! The OTLP/JSON decoder against the protobuf one: the same request, built as prost
//! structs, encoded as protobuf (prost) and as OTLP/JSON (the `with-serde` encoding
//! of `opentelemetry-proto`, hex ids and decimal-string integers), must decode to
//! the same batch with the same counters. Variants that encoder never writes
//! (snake_case keys, enum names, numbers for 64-bit integers) and hostile JSON are
//! checked by hand.

use aftershock_core::{
    decode_logs, decode_logs_json, decode_traces, decode_traces_json, DecodeOptions, Decoded, Error,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use prost::Message;

use super::rng::Rng;
use super::{cases, gen};

/// JSON has no NaN or infinities as numbers (serde writes `null`); OTLP/JSON spells
/// them as strings, which the hand-written cases below cover.
fn finite(v: &mut AnyValue) {
    match &mut v.value {
        Some(Value::DoubleValue(x)) if !x.is_finite() => *x = 0.25,
        Some(Value::ArrayValue(a)) => a.values.iter_mut().for_each(finite),
        Some(Value::KvlistValue(l)) => finite_kvs(&mut l.values),
        _ => {}
    }
}

fn finite_kvs(kvs: &mut [KeyValue]) {
    kvs.iter_mut()
        .filter_map(|kv| kv.value.as_mut())
        .for_each(finite);
}

fn finite_traces(req: &mut ExportTraceServiceRequest) {
    for rs in &mut req.resource_spans {
        if let Some(r) = &mut rs.resource {
            finite_kvs(&mut r.attributes);
        }
        for span in rs.scope_spans.iter_mut().flat_map(|s| s.spans.iter_mut()) {
            finite_kvs(&mut span.attributes);
            span.events
                .iter_mut()
                .for_each(|e| finite_kvs(&mut e.attributes));
            span.links
                .iter_mut()
                .for_each(|l| finite_kvs(&mut l.attributes));
        }
    }
}

fn finite_logs(req: &mut ExportLogsServiceRequest) {
    for rl in &mut req.resource_logs {
        if let Some(r) = &mut rl.resource {
            finite_kvs(&mut r.attributes);
        }
        for log in rl
            .scope_logs
            .iter_mut()
            .flat_map(|s| s.log_records.iter_mut())
        {
            finite_kvs(&mut log.attributes);
            if let Some(b) = &mut log.body {
                finite(b);
            }
        }
    }
}

/// The rejection names a byte offset, which differs between encodings.
fn without_offset(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|m| {
        m.split_once(": ")
            .map_or(m.clone(), |(_, rest)| rest.to_string())
    })
}

/// `Err` says how the JSON decode differs from the protobuf one.
fn same(proto: &Decoded, json: &Decoded) -> Result<(), String> {
    if proto.batch != json.batch {
        for (i, (p, j)) in proto
            .batch
            .columns()
            .iter()
            .zip(json.batch.columns())
            .enumerate()
        {
            if p != j {
                let name = proto.batch.schema().field(i).name().clone();
                let row = (0..p.len()).find(|&r| p.slice(r, 1) != j.slice(r, 1));
                let (p, j) = row.map_or((p.clone(), j.clone()), |r| (p.slice(r, 1), j.slice(r, 1)));
                return Err(format!(
                    "column {name} differs at row {row:?}:\n{p:?}\nvs\n{j:?}"
                ));
            }
        }
        return Err("batches differ".into());
    }
    let (pc, jc) = (&proto.contexts, &json.contexts);
    if pc.row_context != jc.row_context || pc.context_resource != jc.context_resource {
        return Err(format!("contexts differ: {pc:?} vs {jc:?}"));
    }
    let (mut p, mut j) = (proto.stats.clone(), json.stats.clone());
    p.rejection = without_offset(&p.rejection);
    j.rejection = without_offset(&j.rejection);
    if p != j {
        return Err(format!("stats differ: {p:?} vs {j:?}"));
    }
    Ok(())
}

fn traces_both(req: &ExportTraceServiceRequest, json: &[u8], opts: &DecodeOptions) {
    let proto = decode_traces(&req.encode_to_vec(), opts).unwrap();
    let from_json = decode_traces_json(json, opts).unwrap();
    if let Err(e) = same(&proto, &from_json) {
        panic!("{e}\n  json: {}", String::from_utf8_lossy(json));
    }
}

fn logs_both(req: &ExportLogsServiceRequest, json: &[u8], opts: &DecodeOptions) {
    let proto = decode_logs(&req.encode_to_vec(), opts).unwrap();
    let from_json = decode_logs_json(json, opts).unwrap();
    if let Err(e) = same(&proto, &from_json) {
        panic!("{e}\n  json: {}", String::from_utf8_lossy(json));
    }
}

#[test]
fn random_traces_decode_the_same_from_json() {
    for seed in 0..cases(200) {
        let mut rng = Rng::new(seed ^ 0x15_0a);
        let mut req = gen::traces(&mut rng);
        finite_traces(&mut req);
        let opts = DecodeOptions {
            max_depth: 1 + rng.below(4),
            max_value_bytes: if rng.chance(30) { rng.below(24) } else { 8192 },
            ..DecodeOptions::default()
        };
        let json = serde_json::to_vec(&req).unwrap();
        traces_both(&req, &json, &opts);
    }
}

#[test]
fn random_logs_decode_the_same_from_json() {
    for seed in 0..cases(200) {
        let mut rng = Rng::new(seed ^ 0x10_95);
        let mut req = gen::logs(&mut rng);
        finite_logs(&mut req);
        let opts = DecodeOptions {
            max_depth: 1 + rng.below(4),
            max_value_bytes: if rng.chance(30) { rng.below(24) } else { 8192 },
            ..DecodeOptions::default()
        };
        let json = serde_json::to_vec(&req).unwrap();
        logs_both(&req, &json, &opts);
    }
}

fn spans_json(span: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},
            "scopeSpans":[{{"scope":{{"name":"lib"}},"spans":[{span}]}}]}}]}}"#
    )
}

fn traces(json: &str) -> Decoded {
    decode_traces_json(json.as_bytes(), &DecodeOptions::default()).unwrap()
}

fn column(d: &Decoded, name: &str) -> String {
    let col = d.batch.column_by_name(name).unwrap();
    arrow_cast_display(col.as_ref())
}

/// The one row's value of a column, as text.
fn arrow_cast_display(a: &dyn arrow_array::Array) -> String {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type, TimestampNanosecondType};
    match a.data_type() {
        arrow_schema::DataType::Utf8 => a.as_string::<i32>().value(0).to_string(),
        arrow_schema::DataType::Int64 => a.as_primitive::<Int64Type>().value(0).to_string(),
        arrow_schema::DataType::Int32 => a.as_primitive::<Int32Type>().value(0).to_string(),
        arrow_schema::DataType::Timestamp(..) => a
            .as_primitive::<TimestampNanosecondType>()
            .value(0)
            .to_string(),
        other => format!("{other:?}"),
    }
}

const IDS: &str = r#""traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174""#;

#[test]
fn snake_case_keys_enum_names_and_numbers_are_accepted() {
    let camel = traces(&spans_json(&format!(
        r#"{{{IDS},"parentSpanId":"EEE19B7EC3C1B173","name":"x","kind":2,
            "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
            "status":{{"code":2,"message":"bad"}},
            "attributes":[{{"key":"n","value":{{"intValue":"-5"}}}},{{"key":"d","value":{{"doubleValue":"NaN"}}}}]}}"#
    )));
    let snake = traces(&spans_json(
        r#"{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"EEE19B7EC3C1B174",
            "parent_span_id":"eee19b7ec3c1b173","name":"x","kind":"SPAN_KIND_SERVER",
            "start_time_unix_nano":1544712660000000000,"end_time_unix_nano":1544712661000000000,
            "status":{"code":"STATUS_CODE_ERROR","message":"bad"},"unknown":{"a":[1,2]},
            "attributes":[{"key":"n","value":{"int_value":-5}},{"key":"d","value":{"double_value":"NaN"}}]}"#,
    ));
    assert_eq!(camel.batch, snake.batch);
    assert_eq!(
        column(&camel, "trace_id"),
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(column(&camel, "parent_span_id"), "eee19b7ec3c1b173");
    assert_eq!(column(&camel, "span_kind"), "SERVER");
    assert_eq!(column(&camel, "status_code"), "ERROR");
    assert_eq!(column(&camel, "duration_ns"), "1000000000");
    assert_eq!(column(&camel, "service_name"), "svc");
}

#[test]
fn bad_ids_reject_the_span_not_the_request() {
    let d = traces(&spans_json(&format!(
        r#"{{"traceId":"zz8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174"}},
           {{"traceId":"5B8EFFF798038103D269B633813FC6","spanId":"eee19b7ec3c1b174"}},
           {{{IDS},"parentSpanId":"abc"}},
           {{"traceId":"","spanId":"eee19b7ec3c1b174"}},
           {{{IDS},"parentSpanId":"","name":"kept"}}"#
    )));
    assert_eq!((d.stats.accepted, d.stats.rejected), (1, 4));
    let why = d.stats.rejection.clone().unwrap();
    assert!(
        why.starts_with("span at byte ") && why.contains("trace_id must be 16 bytes"),
        "{why}"
    );
    assert_eq!(column(&d, "span_name"), "kept");
    assert_eq!(
        d.batch
            .column_by_name("parent_span_id")
            .unwrap()
            .null_count(),
        1
    );
}

#[test]
fn malformed_json_is_a_decode_error_with_an_offset() {
    for bad in [
        "",
        "not json",
        "[]",
        r#"{"resourceSpans":{}}"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":{"bytesValue":"!!"}}]}]}]}]}"#,
        r#"{"resourceSpans":[]} trailing"#,
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"#,
    ] {
        match decode_traces_json(bad.as_bytes(), &DecodeOptions::default()) {
            Err(Error::Decode(e)) => assert!(e.offset() <= bad.len(), "{bad}: {e}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let e = match decode_traces_json(
        br#"{"resourceSpans":[{"scopeSpans":[{},{"spans":[{},{"kind":[]}]}]}]}"#,
        &DecodeOptions::default(),
    ) {
        Err(Error::Decode(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(e.path(), "resource_spans[0].scope_spans[1].spans[1]");
    assert!(e.offset() > 40, "{e}");
}

#[test]
fn metrics_fed_to_the_traces_decoder_give_no_rows() {
    let metrics = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m"}]}]}]}"#;
    let d = decode_traces_json(metrics, &DecodeOptions::default()).unwrap();
    assert_eq!(d.batch.num_rows(), 0);
}

/// `depth` nested arrays around a string, as OTLP/JSON writes them.
fn nested(depth: usize) -> String {
    let mut s = String::with_capacity(depth * 40);
    for _ in 0..depth {
        s.push_str(r#"{"arrayValue":{"values":["#);
    }
    s.push_str(r#"{"stringValue":"deep"}"#);
    for _ in 0..depth {
        s.push_str("]}}");
    }
    s
}

#[test]
fn deep_nesting_is_capped_like_protobuf_without_overflowing_the_stack() {
    let json = spans_json(&format!(
        r#"{{{IDS},"attributes":[{{"key":"deep","value":{}}}]}}"#,
        nested(100_000)
    ));
    // A small stack: the cap, not luck, keeps the recursion shallow.
    let handle = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            let d = traces(&json);
            (column_map(&d), d.stats.depth_capped)
        })
        .unwrap();
    let (attrs, capped) = handle.join().unwrap();
    assert_eq!(capped, 1);
    let expect = format!(
        "{}\"...(nested too deep)\"{}",
        "[".repeat(64),
        "]".repeat(64)
    );
    assert_eq!(attrs, expect);
}

/// The first row's first span attribute value.
fn column_map(d: &Decoded) -> String {
    use arrow_array::cast::AsArray;
    let map = d.batch.column_by_name("span_attributes").unwrap().as_map();
    map.value(0)
        .column(1)
        .as_string::<i32>()
        .value(0)
        .to_string()
}

#[test]
fn invalid_utf8_is_repaired_and_counted_per_string() {
    let mut body = spans_json(&format!(
        r#"{{{IDS},"name":"a\xffb\xfe","attributes":[{{"key":"k\xff","value":{{"stringValue":"v"}}}}]}}"#
    ))
    .into_bytes();
    // `format!` kept the escapes as text; put the raw bytes in.
    let text = String::from_utf8_lossy(&body)
        .replace("\\xff", "\u{1}")
        .replace("\\xfe", "\u{2}");
    body = text.into_bytes();
    for b in &mut body {
        *b = match *b {
            1 => 0xff,
            2 => 0xfe,
            b => b,
        };
    }
    let d = decode_traces_json(&body, &DecodeOptions::default()).unwrap();
    assert_eq!(d.stats.invalid_utf8, 2);
    assert_eq!(column(&d, "span_name"), "a\u{fffd}b\u{fffd}");
}

#[test]
fn logs_accept_names_numbers_and_bad_ids() {
    let json = br#"{"resource_logs":[{"scope_logs":[{"log_records":[
        {"time_unix_nano":"0","observedTimeUnixNano":1700000000000000000,
         "severityNumber":"SEVERITY_NUMBER_WARN","severityText":"W",
         "traceId":"not hex","spanId":"EEE19B7EC3C1B174","eventName":"e",
         "body":{"kvlistValue":{"values":[{"key":"a","value":{"bytesValue":"AQI"}},{"key":"b"}]}}}
    ]}]}]}"#;
    let d = decode_logs_json(json, &DecodeOptions::default()).unwrap();
    assert_eq!(column(&d, "severity_number"), "13");
    assert_eq!(column(&d, "time"), "1700000000000000000");
    assert_eq!(column(&d, "span_id"), "eee19b7ec3c1b174");
    assert_eq!(d.batch.column_by_name("trace_id").unwrap().null_count(), 1);
    assert_eq!(column(&d, "body"), r#"{"a":"AQI=","b":null}"#);
}

#[test]
fn the_shared_fixtures_decode() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/otlp-json");
    if !dir.exists() {
        return;
    }
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let opts = DecodeOptions::default();
    let t = decode_traces_json(&read("trace.json"), &opts).unwrap();
    assert_eq!((t.stats.accepted, t.stats.rejected), (1, 0));
    for name in ["logs.json", "events.json"] {
        let l = decode_logs_json(&read(name), &opts).unwrap();
        assert!(l.stats.accepted > 0, "{name}");
    }
    let m = decode_traces_json(&read("metrics.json"), &opts).unwrap();
    assert_eq!(m.batch.num_rows(), 0);
}
