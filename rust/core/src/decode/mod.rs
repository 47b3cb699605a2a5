//! Decode: OTLP export requests (protobuf wire format) straight into Arrow
//! record batches with the `spans` and `logs` schemas. The walk borrows from the
//! input and appends to column builders; nothing is materialised per span.

mod anyvalue;
mod columns;
mod logs;
mod traces;
mod wire;

use arrow_array::RecordBatch;

pub use columns::{Entries, ResourceCtx, ScopeCtx};
pub use logs::decode_logs;
pub use traces::decode_traces;

use crate::error::DecodeError;
use anyvalue::{push_utf8, render_value};
use wire::{Reader, Value};

/// Limits that protect the process and the Parquet files from hostile input.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Nesting depth of AnyValue arrays/kvlists rendered; deeper values become a marker.
    pub max_depth: usize,
    /// Attribute values longer than this (in bytes, after rendering) are cut.
    pub max_value_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_depth: 64,
            max_value_bytes: 8 * 1024,
        }
    }
}

/// What a decode accepted, rejected and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Rows in the batch.
    pub accepted: u64,
    /// Spans dropped for invalid ids (log records are never rejected).
    pub rejected: u64,
    /// Why the first rejected record was rejected, for `partial_success.error_message`.
    pub rejection: Option<String>,
    /// Strings with invalid UTF-8, repaired with U+FFFD.
    pub invalid_utf8: u64,
    /// Attribute values cut to `max_value_bytes`.
    pub truncated_values: u64,
    /// Nested values deeper than `max_depth`, replaced by a marker.
    pub depth_capped: u64,
    /// Spans whose end precedes their start; kept with duration 0.
    pub negative_durations: u64,
}

impl DecodeStats {
    /// The `partial_success.error_message` for this request, if anything was rejected.
    pub fn error_message(&self) -> Option<String> {
        let first = self.rejection.as_deref()?;
        Some(format!(
            "{} span(s) rejected; first: {first}",
            self.rejected
        ))
    }
}

/// A decoded request: the batch and what happened while decoding it.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub batch: RecordBatch,
    pub stats: DecodeStats,
}

/// Rough rows-per-byte guess, to size builders once.
fn row_estimate(len: usize) -> usize {
    (len / 256).clamp(8, 1 << 20)
}

/// Reads one `KeyValue` and appends it to `entries`.
fn push_key_value(
    entries: &mut Entries,
    buf: &[u8],
    base: usize,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf, base);
    let mut key: &[u8] = b"";
    let mut value: Option<(&[u8], usize)> = None;
    while let Some((field, v)) = r.next()? {
        match (field, v) {
            (1, Value::Bytes(b, _)) => key = b,
            (2, Value::Bytes(b, at)) => value = Some((b, at)),
            _ => {}
        }
    }
    let key_start = entries.begin();
    push_utf8(entries.text(), key, stats);
    let value_start = entries.text().len();
    let has_value = match value {
        Some((b, at)) => {
            render_value(b, at, entries.text(), opts, stats).map_err(|e| e.within("value", None))?
        }
        None => false,
    };
    if has_value && entries.cap_last_value(value_start, opts.max_value_bytes) {
        stats.truncated_values += 1;
    }
    entries.commit(key_start, value_start, has_value);
    Ok(())
}

/// Reads every `attributes` field (number `field_no`) of a message into `entries`.
fn read_attributes(
    entries: &mut Entries,
    buf: &[u8],
    base: usize,
    field_no: u32,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf, base);
    let mut i = 0;
    while let Some((field, v)) = r.next()? {
        if let (f, Value::Bytes(b, at)) = (field, v) {
            if f == field_no {
                push_key_value(entries, b, at, opts, stats)
                    .map_err(|e| e.within("attributes", Some(i)))?;
                i += 1;
            }
        }
    }
    Ok(())
}

/// Reads a `Resource` (possibly split over several occurrences, which protobuf merges).
fn read_resource(
    ctx: &mut ResourceCtx,
    buf: &[u8],
    base: usize,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    read_attributes(&mut ctx.attributes, buf, base, 1, opts, stats)
}

/// Reads an `InstrumentationScope`; name and version, last value wins. Its
/// attributes are not part of the tables.
fn read_scope(
    ctx: &mut ScopeCtx,
    buf: &[u8],
    base: usize,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf, base);
    while let Some((field, v)) = r.next()? {
        match (field, v) {
            (1, Value::Bytes(b, _)) => ctx.name = non_empty(b, stats),
            (2, Value::Bytes(b, _)) => ctx.version = non_empty(b, stats),
            _ => {}
        }
    }
    Ok(())
}

/// An optional string field: absent and empty are both NULL.
fn non_empty(b: &[u8], stats: &mut DecodeStats) -> Option<String> {
    if b.is_empty() {
        return None;
    }
    let mut s = String::with_capacity(b.len());
    push_utf8(&mut s, b, stats);
    Some(s)
}

/// Text of a string field borrowed when valid, repaired (and counted) when not.
fn text<'a>(b: &'a [u8], stats: &mut DecodeStats) -> std::borrow::Cow<'a, str> {
    match simdutf8::basic::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => {
            stats.invalid_utf8 += 1;
            String::from_utf8_lossy(b)
        }
    }
}

/// A u64 timestamp as the i64 Arrow stores; values past year 2262 saturate.
fn nanos(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// Walks a `Resource{Spans,Logs}`: the resource first (wherever it sits on the
/// wire), then each scope container with `each_scope`.
fn walk_resource<F>(
    buf: &[u8],
    base: usize,
    scopes_field_name: &str,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
    mut each_scope: F,
) -> Result<(), DecodeError>
where
    F: FnMut(&ResourceCtx, &[u8], usize, &mut DecodeStats) -> Result<(), DecodeError>,
{
    let mut res = ResourceCtx::default();
    let mut r = Reader::new(buf, base);
    while let Some((field, v)) = r.next()? {
        if let (1, Value::Bytes(b, at)) = (field, v) {
            read_resource(&mut res, b, at, opts, stats).map_err(|e| e.within("resource", None))?;
        }
    }
    res.seal();
    let mut r = Reader::new(buf, base);
    let mut i = 0;
    while let Some((field, v)) = r.next()? {
        if let (2, Value::Bytes(b, at)) = (field, v) {
            each_scope(&res, b, at, stats).map_err(|e| e.within(scopes_field_name, Some(i)))?;
            i += 1;
        }
    }
    Ok(())
}

/// Walks a `Scope{Spans,Logs}`: the scope first, then each record (field 2).
fn walk_scope<F>(
    buf: &[u8],
    base: usize,
    records_field_name: &str,
    stats: &mut DecodeStats,
    mut each_record: F,
) -> Result<(), DecodeError>
where
    F: FnMut(&ScopeCtx, &[u8], usize, usize, &mut DecodeStats) -> Result<(), DecodeError>,
{
    let mut scope = ScopeCtx::default();
    let mut r = Reader::new(buf, base);
    while let Some((field, v)) = r.next()? {
        if let (1, Value::Bytes(b, at)) = (field, v) {
            read_scope(&mut scope, b, at, stats).map_err(|e| e.within("scope", None))?;
        }
    }
    let mut r = Reader::new(buf, base);
    let mut i = 0;
    while let Some((field, v)) = r.next()? {
        if let (2, Value::Bytes(b, at)) = (field, v) {
            each_record(&scope, b, at, i, stats)
                .map_err(|e| e.within(records_field_name, Some(i)))?;
            i += 1;
        }
    }
    Ok(())
}

/// Walks an export request's top-level repeated field 1.
fn walk_request<F>(buf: &[u8], field_name: &str, mut each: F) -> Result<(), DecodeError>
where
    F: FnMut(&[u8], usize) -> Result<(), DecodeError>,
{
    let mut r = Reader::new(buf, 0);
    let mut i = 0;
    while let Some((field, v)) = r.next()? {
        if let (1, Value::Bytes(b, at)) = (field, v) {
            each(b, at).map_err(|e| e.within(field_name, Some(i)))?;
            i += 1;
        }
    }
    Ok(())
}
