//! Random OTLP requests as prost structs. Skewed towards the corners the rendering
//! rules talk about: invalid and all-zero ids, duplicate keys, empty AnyValues, odd
//! doubles, JSON-hostile strings, values around the length cap, out-of-range enums
//! and timestamps past `i64::MAX`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::rng::Rng;

/// A small key pool, so that duplicates and the lifted resource keys come up often.
const KEYS: &[&str] = &[
    "service.name",
    "service.version",
    "service.instance.id",
    "deployment.environment.name",
    "deployment.environment",
    "http.route",
    "http.response.status_code",
    "k",
    "",
    "ключ",
    "a\"b\\c",
];

/// Pieces of strings: plain text, everything JSON must escape, and multi-byte UTF-8.
const PIECES: &[&str] = &[
    "a", "Z", "0", " ", "word", "\"", "\\", "/", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{0}",
    "\u{1}", "\u{1f}", "\u{7f}", "é", "中", "😀", "\u{2028}", "\u{fffd}",
];

const DOUBLES: &[f64] = &[
    0.0,
    -0.0,
    1.0,
    -1.5,
    0.1,
    100.0,
    1e15,
    1e16,
    1e-4,
    1e-5,
    123456789.125,
    1.2345678901234568e17,
    5e-324,
    f64::MIN_POSITIVE,
    f64::MAX,
    f64::MIN,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

/// Timestamps: ordinary ones, zero, and values that do not fit in i64.
fn timestamp(rng: &mut Rng) -> u64 {
    match rng.below(12) {
        0 => 0,
        1 => u64::MAX,
        2 => i64::MAX as u64,
        3 => i64::MAX as u64 + 1 + rng.next_u64() % 1000,
        4 => rng.next_u64(),
        _ => 1_764_000_000_000_000_000 + rng.next_u64() % 10_000_000_000_000,
    }
}

pub fn string(rng: &mut Rng) -> String {
    match rng.below(40) {
        0..=3 => String::new(),
        4 => long_string(rng),
        5..=14 => {
            let n = rng.below(12);
            (0..n).map(|_| rng.pick(PIECES)).collect()
        }
        _ => {
            let n = 1 + rng.below(10);
            (0..n)
                .map(|_| char::from(b'a' + rng.below(26) as u8))
                .collect()
        }
    }
}

/// Around the 8192-byte cap, with multi-byte characters so that the cut often falls
/// inside one.
fn long_string(rng: &mut Rng) -> String {
    let target = 8180 + rng.below(40);
    let mut s = String::with_capacity(target + 4);
    while s.len() < target {
        s.push_str(rng.pick(&["x", "é", "中", "😀", "\"", "\n"]));
    }
    s
}

fn id(rng: &mut Rng, len: usize) -> Vec<u8> {
    loop {
        let b = rng.bytes(len);
        if b.iter().any(|&x| x != 0) {
            return b;
        }
    }
}

/// An id that is usually valid, sometimes of the wrong length or all zero.
fn maybe_id(rng: &mut Rng, len: usize, valid_pct: u32) -> Vec<u8> {
    if rng.chance(valid_pct) {
        return id(rng, len);
    }
    match rng.below(4) {
        0 => Vec::new(),
        1 => vec![0; len],
        2 => id(rng, len - 1),
        _ => {
            let n = len + 1 + rng.below(20);
            id(rng, n)
        }
    }
}

fn int(rng: &mut Rng) -> i64 {
    match rng.below(6) {
        0 => 0,
        1 => -1,
        2 => i64::MIN,
        3 => i64::MAX,
        4 => rng.next_u64() as i64,
        _ => rng.below(100_000) as i64,
    }
}

fn double(rng: &mut Rng) -> f64 {
    match rng.below(5) {
        0 => rng.pick(DOUBLES),
        1 => f64::from_bits(rng.next_u64()),
        2 => rng.below(1_000_000) as f64 / 1000.0,
        // Few binary fraction digits make exact decimal ties at the 17th digit, where
        // shortest-digit algorithms differ in how they round.
        3 => (rng.next_u64() >> 11) as f64 / f64::from(1u32 << rng.below(8)),
        _ => (rng.next_u64() as i64) as f64 / 7.0,
    }
}

pub fn any_value(rng: &mut Rng, depth: usize) -> AnyValue {
    let choices = if depth < 3 { 20 } else { 16 };
    let value = match rng.below(choices) {
        0 => None,
        1..=5 => Some(Value::StringValue(string(rng))),
        6..=7 => Some(Value::BoolValue(rng.chance(50))),
        8..=9 => Some(Value::IntValue(int(rng))),
        10..=12 => Some(Value::DoubleValue(double(rng))),
        13 => {
            // 6150 bytes become 8200 characters of base64: just over the cap.
            let n = if rng.chance(5) { 6150 } else { rng.below(12) };
            Some(Value::BytesValue(rng.bytes(n)))
        }
        14 => Some(Value::StringValueStrindex(rng.next_u64() as i32)),
        15 => Some(Value::StringValue(string(rng))),
        16..=17 => {
            let n = rng.below(5);
            Some(Value::ArrayValue(ArrayValue {
                values: (0..n).map(|_| any_value(rng, depth + 1)).collect(),
            }))
        }
        _ => {
            // Unique keys: how JSON objects with duplicate keys should look is not specified.
            let n = rng.below(5);
            let mut values: Vec<KeyValue> = Vec::new();
            for _ in 0..n {
                let key = string(rng);
                if values.iter().any(|kv| kv.key == key) {
                    continue;
                }
                values.push(KeyValue {
                    key,
                    value: (!rng.chance(15)).then(|| any_value(rng, depth + 1)),
                    key_strindex: 0,
                });
            }
            Some(Value::KvlistValue(KeyValueList { values }))
        }
    };
    AnyValue { value }
}

fn key(rng: &mut Rng) -> String {
    if rng.chance(60) {
        rng.pick(KEYS).to_string()
    } else {
        string(rng)
    }
}

fn key_value(rng: &mut Rng) -> KeyValue {
    KeyValue {
        key: key(rng),
        value: (!rng.chance(5)).then(|| any_value(rng, 0)),
        // Profiling-only field; other signals must ignore it.
        key_strindex: if rng.chance(5) {
            rng.next_u64() as i32
        } else {
            0
        },
    }
}

pub fn attributes(rng: &mut Rng) -> Vec<KeyValue> {
    // Now and then more than 16 entries, with many duplicates among them.
    let n = if rng.chance(5) {
        17 + rng.below(20)
    } else {
        rng.below(7)
    };
    (0..n).map(|_| key_value(rng)).collect()
}

fn resource(rng: &mut Rng) -> Option<Resource> {
    if rng.chance(10) {
        return None;
    }
    let mut attributes = attributes(rng);
    if rng.chance(70) {
        // The lifted keys with string values, as real SDKs send them.
        for k in &KEYS[..5] {
            if rng.chance(50) {
                let at = rng.below(attributes.len() + 1);
                let kv = KeyValue {
                    key: (*k).to_string(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(string(rng))),
                    }),
                    key_strindex: 0,
                };
                attributes.insert(at, kv);
            }
        }
    }
    Some(Resource {
        attributes,
        dropped_attributes_count: rng.below(3) as u32,
        ..Default::default()
    })
}

fn scope(rng: &mut Rng) -> Option<InstrumentationScope> {
    if rng.chance(15) {
        return None;
    }
    Some(InstrumentationScope {
        name: string(rng),
        version: string(rng),
        // Not stored in the tables, but must be skipped correctly.
        attributes: if rng.chance(30) {
            attributes(rng)
        } else {
            Vec::new()
        },
        dropped_attributes_count: rng.below(3) as u32,
    })
}

fn enum_value(rng: &mut Rng, valid: usize) -> i32 {
    if rng.chance(85) {
        rng.below(valid) as i32
    } else {
        rng.pick(&[valid as i32, -1, 1000, i32::MIN, i32::MAX])
    }
}

fn span(rng: &mut Rng) -> Span {
    let parent = match rng.below(20) {
        0..=7 => Vec::new(),
        8 => vec![0; 8],
        9 => {
            let n = 1 + rng.below(20);
            id(rng, n)
        }
        _ => id(rng, 8),
    };
    let start = timestamp(rng);
    let end = match rng.below(5) {
        0 => timestamp(rng),
        1 => start.saturating_sub(rng.next_u64() % 1000),
        _ => start.saturating_add(rng.next_u64() % 10_000_000_000),
    };
    let n_events = if rng.chance(30) { 1 + rng.below(3) } else { 0 };
    let n_links = if rng.chance(15) { 1 + rng.below(2) } else { 0 };
    Span {
        trace_id: maybe_id(rng, 16, 85),
        span_id: maybe_id(rng, 8, 90),
        trace_state: if rng.chance(30) {
            string(rng)
        } else {
            String::new()
        },
        parent_span_id: parent,
        flags: rng.next_u64() as u32,
        name: string(rng),
        kind: enum_value(rng, 6),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attributes(rng),
        dropped_attributes_count: rng.below(3) as u32,
        events: (0..n_events)
            .map(|_| Event {
                time_unix_nano: timestamp(rng),
                name: string(rng),
                attributes: attributes(rng),
                dropped_attributes_count: rng.below(2) as u32,
            })
            .collect(),
        dropped_events_count: rng.below(2) as u32,
        links: (0..n_links)
            .map(|_| {
                let odd = rng.chance(20);
                Link {
                    trace_id: if odd {
                        {
                            let n = rng.below(40);
                            rng.bytes(n)
                        }
                    } else {
                        id(rng, 16)
                    },
                    span_id: if odd {
                        {
                            let n = rng.below(12);
                            rng.bytes(n)
                        }
                    } else {
                        id(rng, 8)
                    },
                    trace_state: if rng.chance(30) {
                        string(rng)
                    } else {
                        String::new()
                    },
                    attributes: attributes(rng),
                    dropped_attributes_count: 0,
                    flags: rng.next_u64() as u32,
                }
            })
            .collect(),
        dropped_links_count: 0,
        status: (!rng.chance(30)).then(|| Status {
            message: string(rng),
            code: enum_value(rng, 3),
        }),
    }
}

fn count(rng: &mut Rng, max: usize) -> usize {
    if rng.chance(5) {
        0
    } else {
        1 + rng.below(max)
    }
}

pub fn traces(rng: &mut Rng) -> ExportTraceServiceRequest {
    let resource_spans = (0..count(rng, 3))
        .map(|_| ResourceSpans {
            resource: resource(rng),
            scope_spans: (0..count(rng, 3))
                .map(|_| ScopeSpans {
                    scope: scope(rng),
                    spans: (0..count(rng, 6)).map(|_| span(rng)).collect(),
                    schema_url: string(rng),
                })
                .collect(),
            schema_url: string(rng),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

fn log_record(rng: &mut Rng) -> LogRecord {
    LogRecord {
        time_unix_nano: timestamp(rng),
        observed_time_unix_nano: timestamp(rng),
        severity_number: if rng.chance(85) {
            rng.below(25) as i32
        } else {
            rng.pick(&[-5, 25, 1000, i32::MIN, i32::MAX])
        },
        severity_text: string(rng),
        body: (!rng.chance(15)).then(|| {
            // Bodies are never cut: give long ones a fair chance.
            if rng.chance(5) {
                AnyValue {
                    value: Some(Value::StringValue(long_string(rng))),
                }
            } else {
                any_value(rng, 0)
            }
        }),
        attributes: attributes(rng),
        dropped_attributes_count: rng.below(2) as u32,
        flags: rng.next_u64() as u32,
        trace_id: maybe_id(rng, 16, 60),
        span_id: maybe_id(rng, 8, 60),
        event_name: if rng.chance(30) {
            string(rng)
        } else {
            String::new()
        },
    }
}

pub fn logs(rng: &mut Rng) -> ExportLogsServiceRequest {
    let resource_logs = (0..count(rng, 3))
        .map(|_| ResourceLogs {
            resource: resource(rng),
            scope_logs: (0..count(rng, 3))
                .map(|_| ScopeLogs {
                    scope: scope(rng),
                    log_records: (0..count(rng, 6)).map(|_| log_record(rng)).collect(),
                    schema_url: string(rng),
                })
                .collect(),
            schema_url: string(rng),
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}
