//! Decode throughput of the Rust core alone: no Python call, no copy of the input, no
//! Arrow hand-over. The payload has the shape of `benches/bench_decode.py`'s (8192
//! spans or log records, four services, ten-odd HTTP attributes per span, some events).
//!
//! `taskset -c 0 cargo bench -p aftershock-core --bench decode` (`-- --quick` for a
//! short run; `-- traces` (or `logs`, `json`) for only those rows, e.g. under a
//! profiler). Timed with `Instant` rather than criterion: criterion's dependency tree
//! takes minutes to build on a 2-core machine, and dev-dependencies are built for every
//! `cargo test`.

use std::hint::black_box;
use std::time::Instant;

use aftershock_core::{decode_logs, decode_traces, decode_traces_json, DecodeOptions};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

// The allocator the extension ships with, so that both measure the same thing.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RECORDS: usize = 8192;
const SERVICES: [(&str, &str); 4] = [
    ("frontend", "1.14.2"),
    ("checkout", "2.4.0"),
    ("payment", "0.9.7"),
    ("inventory", "3.1.0"),
];
const ROUTES: [(&str, &str); 6] = [
    ("GET", "/api/products/{id}"),
    ("GET", "/api/cart"),
    ("POST", "/api/cart/items"),
    ("POST", "/api/checkout"),
    ("GET", "/api/recommendations"),
    ("DELETE", "/api/cart/items/{id}"),
];
const BASE_NS: u64 = 1_764_000_000_000_000_000;

/// xorshift64*: a fixed payload from a fixed seed, without a `rand` dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn id(&mut self, len: usize) -> Vec<u8> {
        // Never all zero: the high bit of the first byte is set.
        let mut b: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
        b[0] |= 0x80;
        b
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

fn resource(rng: &mut Rng, service: &str, version: &str, i: usize) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", s(service)),
            kv("service.version", s(version)),
            kv(
                "service.instance.id",
                s(&format!("{service}-{:08x}", rng.next() as u32)),
            ),
            kv("service.namespace", s("shop")),
            kv("deployment.environment.name", s("prod")),
            kv("host.name", s(&format!("node-{i:02}.prod.internal"))),
            kv("telemetry.sdk.language", s("python")),
            kv("telemetry.sdk.name", s("opentelemetry")),
            kv("telemetry.sdk.version", s("1.27.0")),
        ],
        ..Default::default()
    }
}

fn span(rng: &mut Rng, service: &str, r: usize, k: usize, trace_id: &[u8], parent: &[u8]) -> Span {
    let (method, route) = ROUTES[rng.below(ROUTES.len() as u64) as usize];
    let status = [200, 200, 200, 200, 200, 201, 404, 500][rng.below(8) as usize];
    let start = BASE_NS + rng.below(3_600_000_000_000);
    let duration = 1_000_000 + rng.below(50_000_000);
    let mut attributes = vec![
        kv("http.request.method", s(method)),
        kv("http.route", s(route)),
        kv(
            "url.path",
            s(&route.replace("{id}", &rng.below(100_000).to_string())),
        ),
        kv("http.response.status_code", Value::IntValue(status)),
        kv(
            "server.address",
            s(&format!("{service}.shop.svc.cluster.local")),
        ),
        kv("server.port", Value::IntValue(8080)),
        kv("network.protocol.version", s("1.1")),
        kv(
            "client.address",
            s(&format!("10.{r}.{}.{}", rng.below(256), rng.below(256))),
        ),
        kv("app.cache_hit", Value::BoolValue(rng.below(10) < 7)),
        kv(
            "app.queue_time_ms",
            Value::DoubleValue(rng.below(20_000) as f64 / 1000.0),
        ),
    ];
    if k.is_multiple_of(4) {
        let flags = ["new-cart", "fast-pay"]
            .iter()
            .map(|f| AnyValue { value: Some(s(f)) })
            .collect();
        attributes.push(kv(
            "app.feature_flags",
            Value::ArrayValue(ArrayValue { values: flags }),
        ));
    }
    let mut events = Vec::new();
    if status >= 500 {
        events.push(Event {
            time_unix_nano: start + duration / 2,
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", s("TimeoutError")),
                kv(
                    "exception.message",
                    s(&format!("upstream timed out after {k} ms")),
                ),
                kv("exception.escaped", Value::BoolValue(true)),
            ],
            dropped_attributes_count: 0,
        });
    }
    Span {
        trace_id: trace_id.to_vec(),
        span_id: rng.id(8),
        parent_span_id: parent.to_vec(),
        name: format!("{method} {route}"),
        kind: if parent.is_empty() {
            SpanKind::Server
        } else {
            SpanKind::Client
        } as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        attributes,
        events,
        status: Some(Status {
            code: if status >= 500 {
                StatusCode::Error
            } else {
                StatusCode::Unset
            } as i32,
            message: if status >= 500 {
                "Internal Server Error".into()
            } else {
                String::new()
            },
        }),
        ..Default::default()
    }
}

fn traces(n: usize) -> Vec<u8> {
    let mut rng = Rng(0x5eed_0001);
    let per = n / SERVICES.len();
    let resource_spans = SERVICES
        .iter()
        .enumerate()
        .map(|(r, (service, version))| {
            let count = if r + 1 < SERVICES.len() {
                per
            } else {
                n - per * r
            };
            let mut spans = Vec::with_capacity(count);
            let (mut trace_id, mut parent) = (Vec::new(), Vec::new());
            for k in 0..count {
                if k.is_multiple_of(8) {
                    trace_id = rng.id(16);
                    parent.clear();
                }
                let sp = span(&mut rng, service, r, k, &trace_id, &parent);
                parent = sp.span_id.clone();
                spans.push(sp);
            }
            ResourceSpans {
                resource: Some(resource(&mut rng, service, version, r)),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "opentelemetry.instrumentation.flask".into(),
                        version: "0.48b0".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

fn logs(n: usize) -> Vec<u8> {
    let mut rng = Rng(0x5eed_0002);
    let per = n / SERVICES.len();
    let resource_logs = SERVICES
        .iter()
        .enumerate()
        .map(|(r, (service, version))| {
            let count = if r + 1 < SERVICES.len() {
                per
            } else {
                n - per * r
            };
            let log_records = (0..count)
                .map(|k| {
                    let t = BASE_NS + rng.below(3_600_000_000_000);
                    let body = if k.is_multiple_of(10) {
                        Value::KvlistValue(KeyValueList {
                            values: vec![
                                kv("event", s("order.placed")),
                                kv("order_id", Value::IntValue(rng.below(1 << 30) as i64)),
                                kv(
                                    "amount",
                                    Value::DoubleValue(rng.below(50_000) as f64 / 100.0),
                                ),
                            ],
                        })
                    } else {
                        s(&format!(
                            "handled request {:x} for user {} in {} ms",
                            rng.next() >> 24,
                            rng.below(1_000_000),
                            1 + rng.below(900)
                        ))
                    };
                    let correlated = rng.below(10) < 8;
                    LogRecord {
                        time_unix_nano: t,
                        observed_time_unix_nano: t + rng.below(1_000_000),
                        severity_number: [9, 9, 9, 9, 9, 9, 9, 13, 17, 5][rng.below(10) as usize],
                        severity_text: "INFO".into(),
                        body: Some(AnyValue { value: Some(body) }),
                        attributes: vec![
                            kv("code.function", s("handle_request")),
                            kv("code.filepath", s(&format!("/app/{service}/handlers.py"))),
                            kv("code.lineno", Value::IntValue(1 + rng.below(800) as i64)),
                            kv("thread.name", s(&format!("worker-{}", rng.below(8)))),
                            kv("http.route", s(ROUTES[rng.below(6) as usize].1)),
                            kv("app.retry", Value::BoolValue(rng.below(20) == 0)),
                        ],
                        trace_id: if correlated { rng.id(16) } else { Vec::new() },
                        span_id: if correlated { rng.id(8) } else { Vec::new() },
                        ..Default::default()
                    }
                })
                .collect();
            ResourceLogs {
                resource: Some(resource(&mut rng, service, version, r)),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "opentelemetry.sdk._logs".into(),
                        ..Default::default()
                    }),
                    log_records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }.encode_to_vec()
}

/// Seconds per call, after untimed warm-up calls.
fn time(reps: usize, warmup: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    let mut out: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

fn row(name: &str, n: usize, bytes: usize, times: &[f64]) {
    let (best, median) = (times[0], times[times.len() / 2]);
    println!(
        "{name:<28} {:>5} {:>14.0} {:>16.0} {:>10.1} {:>12.1}",
        times.len(),
        n as f64 / best,
        n as f64 / median,
        bytes as f64 / best / 1e6,
        bytes as f64 / median / 1e6
    );
}

fn main() -> Result<(), aftershock_core::Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (reps, warmup) = if quick { (5, 1) } else { (50, 3) };
    // Naming rows (`traces`, `logs`, `json`) runs only those, e.g. for a profiler.
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| names.is_empty() || names.iter().any(|n| n == name);
    let opts = DecodeOptions::default();
    let (t, l) = (traces(RECORDS), logs(RECORDS));
    // Decode once outside the timing, so that an error ends the run instead of being timed.
    let spans = decode_traces(&t, &opts)?.batch.num_rows();
    let records = decode_logs(&l, &opts)?.batch.num_rows();
    println!(
        "{RECORDS} spans ({} B/span), {RECORDS} log records ({} B/record); {reps} reps, {warmup} warm-up",
        t.len() / RECORDS,
        l.len() / RECORDS
    );
    println!(
        "{:<28} {:>5} {:>14} {:>16} {:>10} {:>12}",
        "path", "reps", "rows/s best", "rows/s median", "MB/s best", "MB/s median"
    );
    if wanted("traces") {
        let times = time(reps, warmup, || {
            black_box(
                decode_traces(black_box(&t), &opts)
                    .map(|d| d.batch.num_rows())
                    .ok(),
            );
        });
        row("decode_traces (Rust only)", spans, t.len(), &times);
    }
    if wanted("logs") {
        let times = time(reps, warmup, || {
            black_box(
                decode_logs(black_box(&l), &opts)
                    .map(|d| d.batch.num_rows())
                    .ok(),
            );
        });
        row("decode_logs (Rust only)", records, l.len(), &times);
    }
    if !wanted("json") {
        return Ok(());
    }
    // The traces payload as OTLP/JSON (opentelemetry-proto's serde encoding: hex ids,
    // 64-bit integers as strings), decoded into the same batch.
    let request = ExportTraceServiceRequest::decode(t.as_slice())
        .map_err(|e| aftershock_core::Error::Internal(e.to_string()))?;
    let tj = serde_json::to_vec(&request)
        .map_err(|e| aftershock_core::Error::Internal(e.to_string()))?;
    let times = time(reps, warmup, || {
        black_box(
            decode_traces_json(black_box(&tj), &opts)
                .map(|d| d.batch.num_rows())
                .ok(),
        );
    });
    row("decode_traces_json (Rust)", spans, tj.len(), &times);
    Ok(())
}
