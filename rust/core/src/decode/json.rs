//! Decode: OTLP/JSON export requests (the OTLP/HTTP `application/json` encoding)
//! into the same `spans` and `logs` batches as the protobuf decoder. Only the
//! reading differs: every row goes through the same builders, id checks and
//! `AnyValue` rendering ([`super::anyvalue`]) as a protobuf request.
//!
//! OTLP/JSON, per the OTLP specification: trace and span ids are hex (either case,
//! `""` = absent), other bytes base64; keys are lowerCamelCase, and the proto field
//! names (snake_case) are accepted too; enums are numbers or their names; 64-bit
//! integers are decimal strings or numbers; unknown fields are skipped and `null`
//! is the same as absent.
//!
//! How the input is read, and why:
//! - The envelope (resources and scopes) is read with serde, each record kept as a
//!   `RawValue` slice of the input, then each record is read by itself. That costs a
//!   second scan of the record's bytes but gives every span its byte offset, which
//!   rejections and error messages name, as the protobuf decoder's do.
//! - `AnyValue` nesting is capped while reading, at the `max_depth` the renderer
//!   caps it at: anything deeper is skipped with serde_json's `IgnoredAny`, which
//!   walks nested arrays and objects with a loop and a heap stack, not recursion.
//!   So the recursion depth is bounded by `max_depth` (as when rendering protobuf)
//!   whatever the input nests, and no tree deeper than that is ever built (or
//!   dropped). serde_json's own recursion limit (128 levels) is switched off
//!   (`unbounded_depth`): a value at depth 64 is about 200 JSON levels deep, and the
//!   cap above already bounds the stack; `serde_stacker` would add a dependency for
//!   depth we never descend into.
//! - serde_json refuses invalid UTF-8, so a body that is not UTF-8 is repaired
//!   (U+FFFD) before parsing, counting one repair per JSON string as the protobuf
//!   decoder counts one per field.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::anyvalue::{render_value, AnyValue, Kind};
use super::columns::{ContextColumns, LogsBuilder, MapColumn, ResourceCtx, ScopeCtx, SpansBuilder};
use super::logs::{self, LogFields};
use super::traces::{self, reject, valid_id, SpanFields};
use super::{
    nanos, non_empty, opt, row_estimate, AttrWriter, DecodeOptions, DecodeStats, Decoded, Envelope,
    RecordSink,
};
use crate::error::{DecodeError, Error};

/// Decodes an OTLP/JSON `ExportTraceServiceRequest` into one `spans` batch, with
/// the same rows, rules and counters as [`super::decode_traces`] gives for the
/// protobuf encoding of the same request.
pub fn decode_traces_json(buf: &[u8], opts: &DecodeOptions) -> Result<Decoded, Error> {
    let mut sink = JsonSpans {
        out: SpansBuilder::with_capacity(row_estimate(buf.len() / 2), opts.max_value_bytes),
        opts,
    };
    let mut stats = read::<Traces, _>(buf, opts, &traces::ENVELOPE, &mut sink)?;
    stats.accepted = sink.out.rows() as u64;
    let (batch, contexts) = sink.out.finish(&mut stats, opts.resource_attributes_once)?;
    Ok(Decoded {
        batch,
        contexts,
        stats,
    })
}

/// Decodes an OTLP/JSON `ExportLogsServiceRequest` into one `logs` batch; see
/// [`decode_traces_json`].
pub fn decode_logs_json(buf: &[u8], opts: &DecodeOptions) -> Result<Decoded, Error> {
    let mut sink = JsonLogs {
        out: LogsBuilder::with_capacity(row_estimate(buf.len() / 2), opts.max_value_bytes),
        body: String::new(),
        opts,
    };
    let mut stats = read::<Logs, _>(buf, opts, &logs::ENVELOPE, &mut sink)?;
    stats.accepted = sink.out.rows() as u64;
    let (batch, contexts) = sink.out.finish(&mut stats, opts.resource_attributes_once)?;
    Ok(Decoded {
        batch,
        contexts,
        stats,
    })
}

/// A signal's request envelope, as serde reads it, and its resources and scopes.
trait Signal {
    type Request<'a>: Deserialize<'a>;
    fn groups<'a>(request: Self::Request<'a>) -> Groups<'a>;
}

/// Reads a request body of signal `G` into `sink`.
fn read<G: Signal, S: for<'a> RecordSink<'a>>(
    buf: &[u8],
    opts: &DecodeOptions,
    env: &Envelope,
    sink: &mut S,
) -> Result<DecodeStats, DecodeError> {
    let mut stats = DecodeStats::default();
    let text = repair_utf8(buf, &mut stats);
    let _depth = DepthLimit::set(opts.max_depth);
    let request: G::Request<'_> = parse(text.as_bytes(), 0)?;
    walk(
        text.as_bytes(),
        G::groups(request),
        env,
        sink,
        opts,
        &mut stats,
    )?;
    Ok(stats)
}

/// A body as UTF-8: borrowed when it is, else repaired with U+FFFD. Invalid bytes
/// can only sit inside JSON strings (anywhere else the parse fails anyway); the
/// repairs are counted once per string, like the protobuf decoder counts them.
fn repair_utf8<'b>(buf: &'b [u8], stats: &mut DecodeStats) -> Cow<'b, str> {
    if let Ok(s) = simdutf8::basic::from_utf8(buf) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(buf.len() + 16);
    let mut in_repaired_string = false;
    for chunk in buf.utf8_chunks() {
        out.push_str(chunk.valid());
        if in_repaired_string && closes_string(chunk.valid()) {
            in_repaired_string = false;
        }
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
            if !in_repaired_string {
                stats.invalid_utf8 += 1;
                in_repaired_string = true;
            }
        }
    }
    Cow::Owned(out)
}

/// Whether `s`, read from inside a JSON string, contains the string's closing quote.
fn closes_string(s: &str) -> bool {
    let mut escaped = false;
    for b in s.bytes() {
        match b {
            b'\\' => escaped = !escaped,
            b'"' if !escaped => return true,
            _ => escaped = false,
        }
    }
    false
}

/// Parses one JSON value filling all of `text`, which starts at byte `base` of the request.
/// The text is UTF-8 (repaired up front), so serde_json's `StrRead` need not check
/// each string again; a record's slice is re-checked with simdutf8, which is far cheaper.
fn parse<'a, T: Deserialize<'a>>(text: &'a [u8], base: usize) -> Result<T, DecodeError> {
    let Ok(str) = simdutf8::basic::from_utf8(text) else {
        return Err(DecodeError::new(base, "invalid JSON: not UTF-8"));
    };
    // serde reads a struct from an array too (by position); OTLP/JSON messages are objects.
    if let Some(at) = text.iter().position(|b| !b.is_ascii_whitespace()) {
        if text[at] != b'{' {
            return Err(DecodeError::new(
                base + at,
                "invalid JSON: expected an object",
            ));
        }
    }
    let mut de = serde_json::Deserializer::from_str(str);
    // Nesting is bounded by the AnyValue depth cap instead; see the module docs.
    de.disable_recursion_limit();
    T::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| json_error(&e, text, base))
}

/// A serde_json error as a `DecodeError`, its line and column turned into a byte offset.
#[cold]
fn json_error(e: &serde_json::Error, text: &[u8], base: usize) -> DecodeError {
    let line_start = match e.line() {
        0 | 1 => 0,
        n => text
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(n - 2)
            .map_or(text.len(), |(i, _)| i + 1),
    };
    let offset = (line_start + e.column().saturating_sub(1)).min(text.len());
    let mut message = e.to_string();
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    DecodeError::new(base + offset, format!("invalid JSON: {message}"))
}

/// Resources, each with its scopes, each with its records still as raw JSON.
type Groups<'a> = Vec<(Option<JsonResource<'a>>, Vec<ScopeRecords<'a>>)>;
type ScopeRecords<'a> = (Option<JsonScope<'a>>, Option<Vec<&'a RawValue>>);

/// Registers each resource and scope once and hands every record, with its byte
/// offset, to `sink`; errors get the same paths as in the protobuf walk.
fn walk<'a, S: RecordSink<'a>>(
    text: &'a [u8],
    groups: Groups<'a>,
    env: &Envelope,
    sink: &mut S,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    for (i, (resource, scopes)) in groups.iter().enumerate() {
        let within_resource = |e: DecodeError| e.within(env.resources, Some(i));
        let mut res = ResourceCtx::default();
        let mut attrs = AttrWriter::default();
        for kv in resource.iter().flat_map(|r| r.attributes.iter().flatten()) {
            attrs.push_kv(kv.key.bytes(), &kv.value.0);
        }
        attrs
            .render(&mut res.attributes, opts, stats)
            .map_err(|e| within_resource(e.within("resource", None)))?;
        res.seal();
        let resource = sink.contexts().add_resource(res);
        for (j, (scope, records)) in scopes.iter().enumerate() {
            let mut ctx = ScopeCtx::default();
            if let Some(scope) = scope {
                ctx.name = non_empty(scope.name.bytes(), stats);
                ctx.version = non_empty(scope.version.bytes(), stats);
            }
            let context = sink.contexts().add_scope(resource, ctx);
            for (k, record) in records.iter().flatten().enumerate() {
                let raw = record.get().as_bytes();
                let at = (raw.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
                sink.record(raw, at, context, stats).map_err(|e| {
                    within_resource(e.within(env.records, Some(k)).within(env.scopes, Some(j)))
                })?;
            }
        }
    }
    Ok(())
}

/// Writes `kvs` as the current row's attributes in `map`.
fn write_attrs(
    kvs: Option<&[JsonKv<'_>]>,
    map: &mut MapColumn,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    let mut attrs = AttrWriter::default();
    for kv in kvs.unwrap_or_default() {
        attrs.push_kv(kv.key.bytes(), &kv.value.0);
    }
    attrs.write(map, opts, stats)
}

struct JsonSpans<'o> {
    out: SpansBuilder,
    opts: &'o DecodeOptions,
}

impl<'a> RecordSink<'a> for JsonSpans<'_> {
    fn contexts(&mut self) -> &mut ContextColumns {
        &mut self.out.contexts
    }

    fn record(
        &mut self,
        buf: &'a [u8],
        base: usize,
        context: u32,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        let span: JsonSpan<'_> = parse(buf, base)?;
        let mut ids = [[0u8; 16]; 3];
        let [t, s, p] = &mut ids;
        let decoded = [
            ("trace_id", 16, id_bytes(&span.trace_id, t)),
            ("span_id", 8, id_bytes(&span.span_id, s)),
            ("parent_span_id", 8, id_bytes(&span.parent_span_id, p)),
        ];
        // Ids that are not hex at all are rejected here; ids of the wrong length
        // by `SpanFields::accept`, in the same field order as for protobuf.
        for (field, want, id) in &decoded {
            match id {
                Err(got) => {
                    reject(stats, base, field, *want, got);
                    return Ok(());
                }
                Ok(b) if *field != "parent_span_id" && !valid_id(b, *want) => break,
                Ok(_) => {}
            }
        }
        // Past a break, a later id may not be hex; the earlier field is what rejects.
        let id = |i: usize| decoded[i].2.as_deref().unwrap_or_default();
        let (trace_id, span_id, parent) = (id(0), id(1), id(2));
        let status = span.status.as_ref();
        let fields = SpanFields {
            trace_id,
            span_id,
            parent,
            trace_state: span.trace_state.bytes(),
            name: span.name.bytes(),
            kind: span.kind.unwrap_or_default().0,
            start: span.start_time_unix_nano.unwrap_or_default().0,
            end: span.end_time_unix_nano.unwrap_or_default().0,
            status_code: status.and_then(|s| s.code).unwrap_or_default().0,
            status_message: status.map_or(&b""[..], |s| s.message.bytes()),
        };
        if !fields.accept(base, stats) {
            return Ok(());
        }
        write_attrs(
            span.attributes.as_deref(),
            self.out.attributes(),
            self.opts,
            stats,
        )?;
        for (i, event) in span.events.iter().flatten().enumerate() {
            let events = self.out.events();
            write_attrs(
                event.attributes.as_deref(),
                events.attributes(),
                self.opts,
                stats,
            )
            .map_err(|e| e.within("events", Some(i)))?;
            let time = event.time_unix_nano.unwrap_or_default().0;
            events.push(nanos(time), event.name.bytes());
        }
        for (i, link) in span.links.iter().flatten().enumerate() {
            let links = self.out.links();
            write_attrs(
                link.attributes.as_deref(),
                links.attributes(),
                self.opts,
                stats,
            )
            .map_err(|e| e.within("links", Some(i)))?;
            links.push(
                &link_id(&link.trace_id),
                &link_id(&link.span_id),
                opt(link.trace_state.bytes()),
            );
        }
        fields.append_to(&mut self.out, context, stats);
        Ok(())
    }
}

struct JsonLogs<'o> {
    out: LogsBuilder,
    body: String,
    opts: &'o DecodeOptions,
}

impl<'a> RecordSink<'a> for JsonLogs<'_> {
    fn contexts(&mut self) -> &mut ContextColumns {
        &mut self.out.contexts
    }

    fn record(
        &mut self,
        buf: &'a [u8],
        base: usize,
        context: u32,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        let log: JsonLog<'_> = parse(buf, base)?;
        write_attrs(
            log.attributes.as_deref(),
            self.out.attributes(),
            self.opts,
            stats,
        )?;
        self.body.clear();
        let has_body = match &log.body {
            Some(body) => render_value(&&body.0, &mut self.body, self.opts, stats)
                .map_err(|e| e.within("body", None))?,
            None => false,
        };
        // Log records are never rejected: an id that is not hex is just absent.
        let (mut t, mut s) = ([0u8; 16], [0u8; 16]);
        let fields = LogFields {
            time: log.time_unix_nano.unwrap_or_default().0,
            observed: log.observed_time_unix_nano.unwrap_or_default().0,
            severity: log.severity_number.unwrap_or_default().0,
            severity_text: log.severity_text.bytes(),
            trace_id: id_bytes(&log.trace_id, &mut t).unwrap_or_default(),
            span_id: id_bytes(&log.span_id, &mut s).unwrap_or_default(),
            event_name: log.event_name.bytes(),
        };
        fields.append_to(
            &mut self.out,
            has_body.then_some(self.body.as_bytes()),
            context,
        );
        Ok(())
    }
}

/// A hex id (either case) decoded into `buf`. `Err` completes the rejection's
/// "(got ...)" for ids that are not hex or longer than any id.
fn id_bytes<'b>(id: &Option<Str<'_>>, buf: &'b mut [u8; 16]) -> Result<&'b [u8], String> {
    let hex = id.bytes();
    let n = hex.len() / 2;
    if !is_hex(hex) {
        return Err(format!("{} characters that are not hex", hex.len()));
    }
    if n > buf.len() {
        return Err(format!("{n} bytes"));
    }
    for (b, pair) in buf.iter_mut().zip(hex.chunks_exact(2)) {
        *b = (nibble(pair[0]) << 4) | nibble(pair[1]);
    }
    Ok(&buf[..n])
}

fn is_hex(s: &[u8]) -> bool {
    s.len().is_multiple_of(2) && s.iter().all(u8::is_ascii_hexdigit)
}

fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c.wrapping_sub(b'A').wrapping_add(10) & 0xf,
    }
}

/// A link's id as the protobuf decoder writes any-length ids: lowercase hex; an id
/// that is not hex is written as absent (links are never rejected).
fn link_id(id: &Option<Str<'_>>) -> Vec<u8> {
    let hex = id.bytes();
    if is_hex(hex) {
        hex.to_ascii_lowercase()
    } else {
        Vec::new()
    }
}

// --- The OTLP/JSON envelope and records, as serde reads them. -------------------

/// A signal's envelope, request -> resources -> scopes -> records (kept raw), under
/// its OTLP/JSON names (lowerCamelCase; the snake_case proto names are accepted too).
macro_rules! envelope {
    (
        $signal:ident: $request:ident { $resources:literal | $resources_snake:literal }
        -> $resource:ident { $scopes:literal | $scopes_snake:literal }
        -> $scope:ident { $records:literal $(| $records_snake:literal)? }
    ) => {
        struct $signal;

        #[derive(Deserialize)]
        struct $request<'a> {
            #[serde(default, borrow, rename = $resources, alias = $resources_snake)]
            resources: Option<Vec<$resource<'a>>>,
        }

        #[derive(Deserialize)]
        struct $resource<'a> {
            #[serde(default, borrow)]
            resource: Option<JsonResource<'a>>,
            #[serde(default, borrow, rename = $scopes, alias = $scopes_snake)]
            scopes: Option<Vec<$scope<'a>>>,
        }

        #[derive(Deserialize)]
        struct $scope<'a> {
            #[serde(default, borrow)]
            scope: Option<JsonScope<'a>>,
            #[serde(default, borrow, rename = $records $(, alias = $records_snake)?)]
            records: Option<Vec<&'a RawValue>>,
        }

        impl Signal for $signal {
            type Request<'a> = $request<'a>;

            fn groups<'a>(request: Self::Request<'a>) -> Groups<'a> {
                let resources = request.resources.unwrap_or_default().into_iter();
                resources
                    .map(|r| {
                        let scopes = r.scopes.unwrap_or_default().into_iter();
                        (r.resource, scopes.map(|s| (s.scope, s.records)).collect())
                    })
                    .collect()
            }
        }
    };
}

envelope!(
    Traces: TracesRequest { "resourceSpans" | "resource_spans" }
    -> ResourceSpans { "scopeSpans" | "scope_spans" }
    -> ScopeSpans { "spans" }
);
envelope!(
    Logs: LogsRequest { "resourceLogs" | "resource_logs" }
    -> ResourceLogs { "scopeLogs" | "scope_logs" }
    -> ScopeLogs { "logRecords" | "log_records" }
);

#[derive(Deserialize)]
struct JsonResource<'a> {
    #[serde(default, borrow)]
    attributes: Option<Vec<JsonKv<'a>>>,
}

#[derive(Deserialize)]
struct JsonScope<'a> {
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
    #[serde(default, borrow)]
    version: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct JsonKv<'a> {
    #[serde(default, borrow)]
    key: Str<'a>,
    /// `Absent` when missing or null.
    #[serde(default, borrow)]
    value: TopAny<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan<'a> {
    #[serde(default, borrow, alias = "trace_id")]
    trace_id: Option<Str<'a>>,
    #[serde(default, borrow, alias = "span_id")]
    span_id: Option<Str<'a>>,
    #[serde(default, borrow, alias = "trace_state")]
    trace_state: Option<Str<'a>>,
    #[serde(default, borrow, alias = "parent_span_id")]
    parent_span_id: Option<Str<'a>>,
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
    #[serde(default)]
    kind: Option<SpanKind>,
    #[serde(default, alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<U64>,
    #[serde(default, alias = "end_time_unix_nano")]
    end_time_unix_nano: Option<U64>,
    #[serde(default, borrow)]
    attributes: Option<Vec<JsonKv<'a>>>,
    #[serde(default, borrow)]
    events: Option<Vec<JsonEvent<'a>>>,
    #[serde(default, borrow)]
    links: Option<Vec<JsonLink<'a>>>,
    #[serde(default, borrow)]
    status: Option<JsonStatus<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEvent<'a> {
    #[serde(default, alias = "time_unix_nano")]
    time_unix_nano: Option<U64>,
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
    #[serde(default, borrow)]
    attributes: Option<Vec<JsonKv<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonLink<'a> {
    #[serde(default, borrow, alias = "trace_id")]
    trace_id: Option<Str<'a>>,
    #[serde(default, borrow, alias = "span_id")]
    span_id: Option<Str<'a>>,
    #[serde(default, borrow, alias = "trace_state")]
    trace_state: Option<Str<'a>>,
    #[serde(default, borrow)]
    attributes: Option<Vec<JsonKv<'a>>>,
}

#[derive(Deserialize)]
struct JsonStatus<'a> {
    #[serde(default, borrow)]
    message: Option<Str<'a>>,
    #[serde(default)]
    code: Option<StatusCode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonLog<'a> {
    #[serde(default, alias = "time_unix_nano")]
    time_unix_nano: Option<U64>,
    #[serde(default, alias = "observed_time_unix_nano")]
    observed_time_unix_nano: Option<U64>,
    #[serde(default, alias = "severity_number")]
    severity_number: Option<Severity>,
    #[serde(default, borrow, alias = "severity_text")]
    severity_text: Option<Str<'a>>,
    #[serde(default, borrow)]
    body: Option<TopAny<'a>>,
    #[serde(default, borrow)]
    attributes: Option<Vec<JsonKv<'a>>>,
    #[serde(default, borrow, alias = "trace_id")]
    trace_id: Option<Str<'a>>,
    #[serde(default, borrow, alias = "span_id")]
    span_id: Option<Str<'a>>,
    #[serde(default, borrow, alias = "event_name")]
    event_name: Option<Str<'a>>,
}

// --- Scalars. -------------------------------------------------------------------

/// A JSON string, borrowed from the input unless it had escapes.
#[derive(Default)]
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
        }
        d.deserialize_str(V).map(Str)
    }
}

/// The bytes of a string field; absent is empty, as in protobuf.
trait Bytes {
    fn bytes(&self) -> &[u8];
}

impl Bytes for Str<'_> {
    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Bytes for Option<Str<'_>> {
    fn bytes(&self) -> &[u8] {
        self.as_ref().map_or(b"", |s| s.0.as_bytes())
    }
}

/// Integers: OTLP/JSON writes 64-bit ones as decimal strings; numbers are fine too.
struct IntVisitor;

impl Visitor<'_> for IntVisitor {
    type Value = i128;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string of decimal digits")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i128, E> {
        Ok(v.into())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i128, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i128, E> {
        // `1e18` is a JSON number too; only whole numbers in range are integers.
        if v.fract() == 0.0 && v.abs() < 1.8e19 {
            Ok(v as i128)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i128, E> {
        v.trim()
            .parse()
            .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
    }
}

fn integer<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
    let v = d.deserialize_any(IntVisitor)?;
    T::try_from(v).map_err(|_| de::Error::custom(format!("integer {v} out of range")))
}

#[derive(Clone, Copy, Default)]
struct U64(u64);

impl<'de> Deserialize<'de> for U64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        integer(d).map(U64)
    }
}

#[derive(Clone, Copy, Default)]
struct I64(i64);

impl<'de> Deserialize<'de> for I64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        integer(d).map(I64)
    }
}

/// A double: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"` (or digits) as a string.
struct F64(f64);

impl<'de> Deserialize<'de> for F64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = f64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
                match v {
                    "NaN" => Ok(f64::NAN),
                    "Infinity" => Ok(f64::INFINITY),
                    "-Infinity" => Ok(f64::NEG_INFINITY),
                    _ => v
                        .trim()
                        .parse()
                        .map_err(|_| E::invalid_value(Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V).map(F64)
    }
}

/// Enums: their number (low 32 bits kept, as protobuf keeps them) or their name.
/// Names that are not in the enum are 0, as unknown numbers render as 0's name.
struct EnumVisitor(&'static [&'static str]);

impl Visitor<'_> for EnumVisitor {
    type Value = i32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an enum number or name")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
        Ok(v as i32)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
        Ok(v as i32)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
        let by_name = self.0.iter().position(|n| n.eq_ignore_ascii_case(v));
        Ok(match by_name {
            Some(i) => i as i32,
            None => v.trim().parse::<i64>().map_or(0, |x| x as i32),
        })
    }
}

macro_rules! json_enum {
    ($name:ident, $names:expr) => {
        #[derive(Clone, Copy, Default)]
        struct $name(i32);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(EnumVisitor($names)).map($name)
            }
        }
    };
}

json_enum!(
    SpanKind,
    &[
        "SPAN_KIND_UNSPECIFIED",
        "SPAN_KIND_INTERNAL",
        "SPAN_KIND_SERVER",
        "SPAN_KIND_CLIENT",
        "SPAN_KIND_PRODUCER",
        "SPAN_KIND_CONSUMER",
    ]
);
json_enum!(
    StatusCode,
    &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"]
);
json_enum!(Severity, &SEVERITY_NAMES);

const SEVERITY_NAMES: [&str; 25] = [
    "SEVERITY_NUMBER_UNSPECIFIED",
    "SEVERITY_NUMBER_TRACE",
    "SEVERITY_NUMBER_TRACE2",
    "SEVERITY_NUMBER_TRACE3",
    "SEVERITY_NUMBER_TRACE4",
    "SEVERITY_NUMBER_DEBUG",
    "SEVERITY_NUMBER_DEBUG2",
    "SEVERITY_NUMBER_DEBUG3",
    "SEVERITY_NUMBER_DEBUG4",
    "SEVERITY_NUMBER_INFO",
    "SEVERITY_NUMBER_INFO2",
    "SEVERITY_NUMBER_INFO3",
    "SEVERITY_NUMBER_INFO4",
    "SEVERITY_NUMBER_WARN",
    "SEVERITY_NUMBER_WARN2",
    "SEVERITY_NUMBER_WARN3",
    "SEVERITY_NUMBER_WARN4",
    "SEVERITY_NUMBER_ERROR",
    "SEVERITY_NUMBER_ERROR2",
    "SEVERITY_NUMBER_ERROR3",
    "SEVERITY_NUMBER_ERROR4",
    "SEVERITY_NUMBER_FATAL",
    "SEVERITY_NUMBER_FATAL2",
    "SEVERITY_NUMBER_FATAL3",
    "SEVERITY_NUMBER_FATAL4",
];

/// `bytesValue`: base64, standard or URL-safe, padded or not (as proto3 JSON allows).
fn base64_bytes(s: &str) -> Result<Vec<u8>, String> {
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
    let engine = if s.contains(['-', '_']) {
        &URL_SAFE
    } else {
        &STANDARD
    };
    engine
        .decode(s)
        .map_err(|e| format!("bytesValue is not base64: {e}"))
}

// --- AnyValue. ------------------------------------------------------------------

/// An `AnyValue` read from JSON, down to the depth the renderer shows; what lies
/// deeper is skipped unread (`Capped`).
enum JsonAny<'a> {
    /// A `KeyValue` without `value` (or `"value": null`).
    Absent,
    /// `{}`: no variant set.
    Empty,
    Capped,
    Str(Cow<'a, str>),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<JsonAny<'a>>),
    KvList(Vec<(Cow<'a, str>, JsonAny<'a>)>),
}

impl<'a> AnyValue<'a> for &'a JsonAny<'a> {
    type List = &'a JsonAny<'a>;

    fn is_absent(&self) -> bool {
        matches!(self, JsonAny::Absent)
    }

    fn kind(&self) -> Result<Option<Kind<'a, Self::List>>, DecodeError> {
        let v: &'a JsonAny<'a> = self;
        Ok(match v {
            JsonAny::Str(s) => Some(Kind::Str(s.as_bytes())),
            JsonAny::Bool(b) => Some(Kind::Bool(*b)),
            JsonAny::Int(i) => Some(Kind::Int(*i)),
            JsonAny::Double(x) => Some(Kind::Double(*x)),
            JsonAny::Bytes(b) => Some(Kind::Bytes(b)),
            JsonAny::Array(_) => Some(Kind::Array(v)),
            JsonAny::KvList(_) => Some(Kind::KvList(v)),
            // `Capped` sits deeper than the renderer goes, which stops before asking.
            JsonAny::Absent | JsonAny::Empty | JsonAny::Capped => None,
        })
    }

    fn each_element(
        list: &Self::List,
        mut f: impl FnMut(&Self) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        if let JsonAny::Array(items) = *list {
            items.iter().try_for_each(|item| f(&item))?;
        }
        Ok(())
    }

    fn each_entry(
        list: &Self::List,
        mut f: impl FnMut(&'a [u8], &Self) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        if let JsonAny::KvList(entries) = *list {
            entries
                .iter()
                .try_for_each(|(key, value)| f(key.as_bytes(), &value))?;
        }
        Ok(())
    }
}

thread_local! {
    /// `max_depth` of the decode running on this thread. serde's derived readers
    /// cannot hand a parameter down to the `AnyValue`s inside records, so the
    /// decode sets it here for its duration ([`DepthLimit`]).
    static MAX_DEPTH: Cell<usize> = const { Cell::new(64) };
}

/// Sets [`MAX_DEPTH`] for one decode and restores the previous value after it.
struct DepthLimit(usize);

impl DepthLimit {
    fn set(max_depth: usize) -> Self {
        DepthLimit(MAX_DEPTH.replace(max_depth))
    }
}

impl Drop for DepthLimit {
    fn drop(&mut self) {
        MAX_DEPTH.set(self.0);
    }
}

/// A top-level `AnyValue` (an attribute's value, a log body): depth 1.
struct TopAny<'a>(JsonAny<'a>);

impl Default for TopAny<'_> {
    fn default() -> Self {
        TopAny(JsonAny::Absent)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for TopAny<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let seed = AnySeed {
            depth: 1,
            max: MAX_DEPTH.with(Cell::get),
        };
        d.deserialize_option(MaybeAny(seed)).map(TopAny)
    }
}

/// Reads an `AnyValue` at `depth` (top level = 1); see the module docs for the cap.
#[derive(Clone, Copy)]
struct AnySeed {
    depth: usize,
    max: usize,
}

impl AnySeed {
    fn child(self) -> Self {
        AnySeed {
            depth: self.depth + 1,
            max: self.max,
        }
    }
}

impl<'de> DeserializeSeed<'de> for AnySeed {
    type Value = JsonAny<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<JsonAny<'de>, D::Error> {
        // The renderer never shows the top level as capped, whatever `max_depth` is.
        if self.depth > 1 && self.depth > self.max {
            // serde_json skips a value with a loop, however deep it nests.
            IgnoredAny::deserialize(d)?;
            return Ok(JsonAny::Capped);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnySeed {
    type Value = JsonAny<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AnyValue object")
    }

    /// A `null` array element: an empty `AnyValue`.
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(JsonAny::Empty)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Several variants in one object break the oneof; the last one wins, as on the wire.
        let mut value = JsonAny::Empty;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let v = match key.0.as_ref() {
                "stringValue" | "string_value" => map
                    .next_value::<Option<Str<'de>>>()?
                    .map(|s| JsonAny::Str(s.0)),
                "boolValue" | "bool_value" => map.next_value::<Option<bool>>()?.map(JsonAny::Bool),
                "intValue" | "int_value" => {
                    map.next_value::<Option<I64>>()?.map(|i| JsonAny::Int(i.0))
                }
                "doubleValue" | "double_value" => map
                    .next_value::<Option<F64>>()?
                    .map(|x| JsonAny::Double(x.0)),
                "bytesValue" | "bytes_value" => match map.next_value::<Option<Str<'de>>>()? {
                    Some(s) => Some(JsonAny::Bytes(
                        base64_bytes(&s.0).map_err(de::Error::custom)?,
                    )),
                    None => None,
                },
                "arrayValue" | "array_value" => map.next_value_seed(ListSeed {
                    child: self.child(),
                    kvlist: false,
                })?,
                "kvlistValue" | "kvlist_value" => map.next_value_seed(ListSeed {
                    child: self.child(),
                    kvlist: true,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    None
                }
            };
            if let Some(v) = v {
                value = v;
            }
        }
        Ok(value)
    }
}

/// A value that may be `null` (absent) or an `AnyValue`.
struct MaybeAny(AnySeed);

impl<'de> Visitor<'de> for MaybeAny {
    type Value = JsonAny<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AnyValue object or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(JsonAny::Absent)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d)
    }
}

/// `arrayValue` / `kvlistValue`: `{"values": [...]}`, or `null` for not set.
struct ListSeed {
    /// The seed of the elements (or of the entries' values).
    child: AnySeed,
    kvlist: bool,
}

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Option<JsonAny<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Option<JsonAny<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with \"values\"")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut elements = Vec::new();
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match (key.0.as_ref(), self.kvlist) {
                ("values", false) => elements = map.next_value_seed(Items(self.child))?,
                ("values", true) => entries = map.next_value_seed(Items(EntrySeed(self.child)))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(if self.kvlist {
            JsonAny::KvList(entries)
        } else {
            JsonAny::Array(elements)
        }))
    }
}

/// A JSON array of what `S` reads; `null` is empty.
struct Items<S>(S);

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for Items<S> {
    type Value = Vec<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for Items<S> {
    type Value = Vec<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.0)? {
            out.push(v);
        }
        Ok(out)
    }
}

/// A kvlist entry, `{"key": ..., "value": ...}`, its value one level deeper than the list.
#[derive(Clone, Copy)]
struct EntrySeed(AnySeed);

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = (Cow<'de, str>, JsonAny<'de>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = (Cow<'de, str>, JsonAny<'de>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a KeyValue object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut key = Cow::Borrowed("");
        let mut value = JsonAny::Absent;
        while let Some(k) = map.next_key::<Str<'de>>()? {
            match k.0.as_ref() {
                "key" => key = map.next_value::<Option<Str<'de>>>()?.unwrap_or_default().0,
                "value" => value = map.next_value_seed(OptionSeed(MaybeAny(self.0)))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((key, value))
    }
}

/// Runs a `null`-aware visitor through `deserialize_option`.
struct OptionSeed(MaybeAny);

impl<'de> DeserializeSeed<'de> for OptionSeed {
    type Value = JsonAny<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self.0)
    }
}
