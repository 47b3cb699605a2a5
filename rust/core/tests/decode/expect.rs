//! The rendering rules, written a second time from the prost structs, independently
//! of the decoder: what every column of every row should hold.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// An attribute map as the tables hold it: entries in order, NULL values as `None`.
pub type Map = Vec<(String, Option<String>)>;

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceCols {
    pub service_name: Option<String>,
    pub service_version: Option<String>,
    pub service_instance_id: Option<String>,
    pub deployment_environment: Option<String>,
    pub resource_attributes: Map,
    pub scope_name: Option<String>,
    pub scope_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub time: i64,
    pub name: String,
    pub attributes: Map,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinkRow {
    pub trace_id: String,
    pub span_id: String,
    pub trace_state: Option<String>,
    pub attributes: Map,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub trace_state: Option<String>,
    pub span_name: String,
    pub span_kind: String,
    pub start_time: i64,
    pub end_time: i64,
    pub duration_ns: i64,
    pub status_code: String,
    pub status_message: Option<String>,
    pub resource: ResourceCols,
    pub span_attributes: Map,
    pub events: Vec<EventRow>,
    pub links: Vec<LinkRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub time: Option<i64>,
    pub observed_time: Option<i64>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub severity_number: i32,
    pub severity_text: Option<String>,
    pub body: Option<String>,
    pub event_name: Option<String>,
    pub resource: ResourceCols,
    pub log_attributes: Map,
}

const KINDS: [&str; 6] = [
    "UNSPECIFIED",
    "INTERNAL",
    "SERVER",
    "CLIENT",
    "PRODUCER",
    "CONSUMER",
];
const CODES: [&str; 3] = ["UNSET", "OK", "ERROR"];

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Standard alphabet, padded: written here rather than borrowed from the decoder's crate.
pub fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | u32::from(x) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Python's `repr(float)` (which `json.dumps` uses): the shortest digits that read back
/// as `x`, and of those the nearest to `x`, ties to even (David Gay's `dtoa` mode 0);
/// positional for decimal exponents -4..=15, otherwise `d.ddde+XX`.
///
/// Rust's `{:?}` finds the same number of digits but may break a tie the other way
/// (`182438742198785.125` prints as `...785.13`, Python says `...785.12`), so only the
/// digit count is taken from it and the rounding is redone on the exact expansion.
pub fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0.0");
    }
    let shortest = format!("{:e}", x.abs());
    let n = shortest
        .split('e')
        .next()
        .unwrap()
        .bytes()
        .filter(u8::is_ascii_digit)
        .count();
    // No double has more than 767 significant digits: 800 is the exact value.
    let exact = format!("{:.800e}", x.abs());
    let (mantissa, exp) = exact.split_once('e').unwrap();
    let mut exp: i32 = exp.parse().unwrap();
    let all: Vec<u8> = mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    let (mut digits, rest) = (all[..n].to_vec(), &all[n..]);
    let up = match rest.first() {
        Some(&d) if d > 5 => true,
        Some(5) => rest[1..].iter().any(|&d| d != 0) || digits[n - 1] % 2 == 1,
        _ => false,
    };
    if up {
        let mut i = n;
        loop {
            if i == 0 {
                digits.insert(0, 1);
                digits.pop();
                exp += 1;
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    let d: String = digits.iter().map(|&d| char::from(b'0' + d)).collect();
    let body = if (-4..=15).contains(&exp) {
        if exp < 0 {
            format!("0.{}{d}", "0".repeat((-exp - 1) as usize))
        } else if d.len() as i32 <= exp + 1 {
            format!("{d}{}.0", "0".repeat((exp + 1) as usize - d.len()))
        } else {
            let (int, frac) = d.split_at(exp as usize + 1);
            format!("{int}.{frac}")
        }
    } else {
        let (first, more) = d.split_at(1);
        let dot = if more.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{first}{dot}{more}e{esign}{:02}", exp.unsigned_abs())
    };
    format!("{sign}{body}")
}

/// `json.dumps(s, ensure_ascii=False)`.
pub fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A nested value as JSON; an absent or empty one is `null`.
pub fn json(v: Option<&AnyValue>, out: &mut String) {
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(Value::StringValueStrindex(_)) => out.push_str("null"),
        Some(Value::StringValue(s)) => json_string(s, out),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => out.push_str(&i.to_string()),
        Some(Value::DoubleValue(d)) => out.push_str(&py_float(*d)),
        Some(Value::BytesValue(b)) => json_string(&base64(b), out),
        Some(Value::ArrayValue(a)) => {
            out.push('[');
            for (i, x) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json(Some(x), out);
            }
            out.push(']');
        }
        Some(Value::KvlistValue(kvs)) => {
            out.push('{');
            for (i, kv) in kvs.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(&kv.key, out);
                out.push(':');
                json(kv.value.as_ref(), out);
            }
            out.push('}');
        }
    }
}

/// A top-level value (attribute value or log body), not yet cut. `string_value_strindex`
/// belongs to profiles; OTLP says other signals treat it as an absent value.
pub fn render(v: Option<&AnyValue>) -> Option<String> {
    match v?.value.as_ref()? {
        Value::StringValueStrindex(_) => None,
        Value::StringValue(s) => Some(s.clone()),
        Value::BytesValue(b) => Some(base64(b)),
        _ => {
            let mut s = String::new();
            json(v, &mut s);
            Some(s)
        }
    }
}

/// The longest prefix of at most `limit` bytes that ends on a character boundary.
pub fn cut(mut s: String, limit: usize) -> String {
    if s.len() > limit {
        let mut at = limit;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}

/// Rendered, cut, and with duplicate keys resolved: the last value wins, at the
/// position of its last occurrence.
pub fn map(kvs: &[KeyValue], limit: usize) -> Map {
    let all: Vec<(String, Option<String>)> = kvs
        .iter()
        .map(|kv| {
            let v = render(kv.value.as_ref()).map(|s| cut(s, limit));
            (kv.key.clone(), v)
        })
        .collect();
    all.iter()
        .enumerate()
        .filter(|(i, (k, _))| !all[i + 1..].iter().any(|(k2, _)| k2 == k))
        .map(|(_, e)| e.clone())
        .collect()
}

fn lookup(m: &Map, key: &str) -> Option<String> {
    m.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.clone())
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Nanoseconds past `i64::MAX` (year 2262) saturate.
pub fn sat(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|&b| b != 0)
}

pub fn resource_cols(
    res: Option<&Resource>,
    scope: Option<&InstrumentationScope>,
    limit: usize,
) -> ResourceCols {
    let attrs = map(res.map(|r| &r.attributes[..]).unwrap_or(&[]), limit);
    ResourceCols {
        service_name: lookup(&attrs, "service.name"),
        service_version: lookup(&attrs, "service.version"),
        service_instance_id: lookup(&attrs, "service.instance.id"),
        // A NULL `deployment.environment.name` counts as absent.
        deployment_environment: lookup(&attrs, "deployment.environment.name")
            .or_else(|| lookup(&attrs, "deployment.environment")),
        resource_attributes: attrs,
        scope_name: scope.and_then(|s| non_empty(&s.name)),
        scope_version: scope.and_then(|s| non_empty(&s.version)),
    }
}

/// The rows a request should produce, and how many spans it should reject.
pub fn spans(req: &ExportTraceServiceRequest, limit: usize) -> (Vec<SpanRow>, u64) {
    let mut rows = Vec::new();
    let mut rejected = 0;
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            let resource = resource_cols(rs.resource.as_ref(), ss.scope.as_ref(), limit);
            for s in &ss.spans {
                let parent = &s.parent_span_id;
                if !valid_id(&s.trace_id, 16)
                    || !valid_id(&s.span_id, 8)
                    || !(parent.is_empty() || parent.len() == 8)
                {
                    rejected += 1;
                    continue;
                }
                let (start, end) = (sat(s.start_time_unix_nano), sat(s.end_time_unix_nano));
                let code = s.status.as_ref().map_or(0, |st| st.code);
                rows.push(SpanRow {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: valid_id(parent, 8).then(|| hex(parent)),
                    trace_state: non_empty(&s.trace_state),
                    span_name: s.name.clone(),
                    span_kind: usize::try_from(s.kind)
                        .ok()
                        .and_then(|k| KINDS.get(k))
                        .unwrap_or(&KINDS[0])
                        .to_string(),
                    start_time: start,
                    end_time: end,
                    // From the stored (saturated) times, so the three columns agree.
                    duration_ns: if end >= start { end - start } else { 0 },
                    status_code: usize::try_from(code)
                        .ok()
                        .and_then(|k| CODES.get(k))
                        .unwrap_or(&CODES[0])
                        .to_string(),
                    status_message: s.status.as_ref().and_then(|st| non_empty(&st.message)),
                    resource: resource.clone(),
                    span_attributes: map(&s.attributes, limit),
                    events: s
                        .events
                        .iter()
                        .map(|e| EventRow {
                            time: sat(e.time_unix_nano),
                            name: e.name.clone(),
                            attributes: map(&e.attributes, limit),
                        })
                        .collect(),
                    links: s
                        .links
                        .iter()
                        .map(|l| LinkRow {
                            trace_id: hex(&l.trace_id),
                            span_id: hex(&l.span_id),
                            trace_state: non_empty(&l.trace_state),
                            attributes: map(&l.attributes, limit),
                        })
                        .collect(),
                });
            }
        }
    }
    (rows, rejected)
}

pub fn logs(req: &ExportLogsServiceRequest, limit: usize) -> Vec<LogRow> {
    let mut rows = Vec::new();
    for rl in &req.resource_logs {
        for sl in &rl.scope_logs {
            let resource = resource_cols(rl.resource.as_ref(), sl.scope.as_ref(), limit);
            for r in &sl.log_records {
                let observed =
                    (r.observed_time_unix_nano != 0).then(|| sat(r.observed_time_unix_nano));
                rows.push(LogRow {
                    time: if r.time_unix_nano != 0 {
                        Some(sat(r.time_unix_nano))
                    } else {
                        observed
                    },
                    observed_time: observed,
                    trace_id: valid_id(&r.trace_id, 16).then(|| hex(&r.trace_id)),
                    span_id: valid_id(&r.span_id, 8).then(|| hex(&r.span_id)),
                    severity_number: r.severity_number,
                    severity_text: non_empty(&r.severity_text),
                    // Bodies are rendered like values but never cut.
                    body: render(r.body.as_ref()),
                    event_name: non_empty(&r.event_name),
                    resource: resource.clone(),
                    log_attributes: map(&r.attributes, limit),
                });
            }
        }
    }
    rows
}
