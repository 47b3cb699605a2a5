//! Decode: OTLP export requests (protobuf wire format) straight into Arrow
//! record batches with the `spans` and `logs` schemas. The walk borrows from the
//! input and appends to column builders; nothing is materialised per span.

mod anyvalue;
mod columns;
mod json;
mod logs;
mod traces;
mod wire;

use std::collections::HashMap;

use arrow_array::{Array, MapArray, RecordBatch};
use arrow_buffer::ScalarBuffer;

use columns::{Entries, ResourceCtx, ScopeCtx};
pub use json::{decode_logs_json, decode_traces_json};
pub use logs::decode_logs;
pub use traces::decode_traces;

use crate::error::DecodeError;
use anyvalue::{append_value, push_utf8, render_value, AnyValue, Parts};
use columns::{ContextColumns, MapColumn};
use wire::{Reader, Value};

/// Limits that protect the process and the Parquet files from hostile input.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Nesting depth of AnyValue arrays/kvlists rendered; deeper values become a marker.
    pub max_depth: usize,
    /// Attribute values longer than this (in bytes, after rendering) are cut.
    pub max_value_bytes: usize,
    /// Whether each resource's attributes are given once, in
    /// [`Contexts::resource_attributes`], with the batch's `resource_attributes` column left
    /// as an empty map a row. For a writer that encodes the column from there (the lake:
    /// [`crate::parquet_files::write_data_files`]), which then holds a resource's attributes
    /// once while its rows are buffered, not once a row (a third of the decoded size of
    /// the decode benchmark's payload; real SDK resources, with process, host and
    /// container attributes, are larger still). Such a batch is only whole with its
    /// contexts. False by default: the batch alone has every column.
    pub resource_attributes_once: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_depth: 64,
            max_value_bytes: 8 * 1024,
            resource_attributes_once: false,
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

/// A decoded request: the batch, which of its rows share a resource and a scope, and
/// what happened while decoding it.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub batch: RecordBatch,
    pub contexts: Contexts,
    pub stats: DecodeStats,
}

/// Which rows of a decoded batch come from the same (resource, scope) of the request, a
/// "context": rows of one context hold the same scope columns, and rows of contexts of
/// one resource the same resource columns ([`crate::schema::RESOURCE_COLUMNS`],
/// [`crate::schema::SCOPE_COLUMNS`]). The Parquet writer then encodes those columns
/// once per context or resource rather than once per row. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Contexts {
    /// For each row, the index of its context among the request's contexts.
    pub row_context: ScalarBuffer<u32>,
    /// For each context, the index of its resource among the request's resources.
    pub context_resource: ScalarBuffer<u32>,
    /// With [`DecodeOptions::resource_attributes_once`], each resource's attributes, a row
    /// per resource (indexed as `context_resource` counts them): the rows' maps, which
    /// the batch's `resource_attributes` column leaves empty.
    pub resource_attributes: Option<MapArray>,
}

impl Contexts {
    /// Whether these can be the contexts of a batch of `rows` rows: one per row, each
    /// naming a context listed.
    pub fn fit(&self, rows: usize) -> bool {
        let contexts = self.context_resource.len();
        self.row_context.len() == rows
            && self.row_context.iter().all(|&c| (c as usize) < contexts)
            && self
                .resource_attributes
                .as_ref()
                .is_none_or(|map| map.len() >= self.resources())
    }

    /// The resource of each row (of contexts that [`Contexts::fit`] their batch).
    pub fn row_resources(&self) -> Vec<u32> {
        let resources = &self.context_resource;
        self.row_context
            .iter()
            .map(|&c| resources[c as usize])
            .collect()
    }

    /// How many resources the rows' contexts are of: more than any in `context_resource`.
    pub fn resources(&self) -> usize {
        self.context_resource
            .iter()
            .max()
            .map_or(0, |&r| r as usize + 1)
    }
}

impl Decoded {
    /// Memory the decoded rows hold while buffered: the batch's buffers and the contexts.
    pub fn memory_size(&self) -> usize {
        self.batch.get_array_memory_size()
            + self.contexts.row_context.inner().capacity()
            + self.contexts.context_resource.inner().capacity()
            + (self.contexts.resource_attributes.as_ref())
                .map_or(0, |map| map.get_array_memory_size())
    }
}

/// Rough rows-per-byte guess, to size builders once. Erring high costs address
/// space that is never touched; erring low copies every column as it grows. Spans
/// from instrumented services take about 300 bytes each on the wire.
fn row_estimate(len: usize) -> usize {
    (len / 256).clamp(8, 1 << 20)
}

/// A `KeyValue`: key bytes and the `AnyValue` in its encoding's form (for
/// protobuf the encoded message, empty when absent).
struct RawKv<'a, V = Parts<'a>> {
    key: &'a [u8],
    value: V,
}

/// A length-delimited field `tag` at the start of `buf` whose length fits one
/// varint byte: (payload, rest). The shape almost every SDK writes.
#[inline(always)]
fn short_field(buf: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match buf {
        [t, len, rest @ ..] if *t == tag && *len < 0x80 && usize::from(*len) <= rest.len() => {
            Some(rest.split_at(usize::from(*len)))
        }
        _ => None,
    }
}

/// A length-delimited field `tag` at the start of `buf` whose length takes one or
/// two varint bytes: (payload, rest). `None` leaves the field to the general reader.
#[inline(always)]
fn bytes_field(buf: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match buf {
        [t, len, rest @ ..] if *t == tag && *len < 0x80 => {
            let n = usize::from(*len);
            (n <= rest.len()).then(|| rest.split_at(n))
        }
        [t, lo, hi, rest @ ..] if *t == tag && *hi < 0x80 => {
            let n = usize::from(*lo & 0x7f) | usize::from(*hi) << 7;
            (n <= rest.len()).then(|| rest.split_at(n))
        }
        _ => None,
    }
}

/// A fixed64 field `tag` at the start of `buf`: (value, rest).
#[inline(always)]
fn fixed64_field(buf: &[u8], tag: u8) -> Option<(u64, &[u8])> {
    match buf {
        [t, rest @ ..] if *t == tag && rest.len() >= 8 => {
            let (v, rest) = rest.split_at(8);
            Some((u64::from_le_bytes(v.try_into().ok()?), rest))
        }
        _ => None,
    }
}

/// A varint field `tag` at the start of `buf` whose value fits one byte: (value, rest).
#[inline(always)]
fn small_varint_field(buf: &[u8], tag: u8) -> Option<(u64, &[u8])> {
    match buf {
        [t, v, rest @ ..] if *t == tag && *v < 0x80 => Some((u64::from(*v), rest)),
        _ => None,
    }
}

#[inline(always)]
fn raw_kv(buf: &[u8], base: usize) -> Result<RawKv<'_>, DecodeError> {
    // Fast path: `key` then `value`, each under 128 bytes, nothing else.
    if let Some((key, rest)) = short_field(buf, 0x0a) {
        if rest.is_empty() {
            return Ok(RawKv {
                key,
                value: Parts::default(),
            });
        }
        if let Some((value, [])) = short_field(rest, 0x12) {
            let at = base + (buf.len() - value.len());
            return Ok(RawKv {
                key,
                value: Parts::one(value, at),
            });
        }
    }
    raw_kv_walk(buf, base)
}

/// The general case of [`raw_kv`]: any field order, repeats, unknown fields.
#[inline(never)]
fn raw_kv_walk(buf: &[u8], base: usize) -> Result<RawKv<'_>, DecodeError> {
    let mut r = Reader::new(buf, base);
    let mut kv = RawKv {
        key: b"",
        value: Parts::default(),
    };
    while let Some((field, v)) = r.next()? {
        match (field, v) {
            (1, Value::Bytes(b, _)) => kv.key = b,
            (2, Value::Bytes(b, at)) => kv.value.push(b, at),
            _ => {}
        }
    }
    Ok(kv)
}

/// A key's length and its first and last (up to) eight bytes, mixed: equal keys
/// always agree, different keys of an attribute list almost never do.
#[inline]
fn fingerprint(key: &[u8]) -> u64 {
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(w)
    };
    let n = key.len();
    let (head, tail) = if n >= 8 {
        (word(&key[..8]), word(&key[n - 8..]))
    } else {
        (word(key), 0)
    };
    let h = (head ^ (n as u64).rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h ^ tail.rotate_left(29)).wrapping_mul(0xff51_afd7_ed55_8ccd)
}

/// Above this many entries duplicates are found with a hash map instead of pairwise.
const PAIRWISE_DEDUP_MAX: usize = 16;

/// Attributes of one record, gathered from the wire and written as one map row:
/// duplicate keys resolved (the last value wins, at its own position), values
/// rendered straight into the map's value builder.
struct AttrWriter<'a, V = Parts<'a>> {
    kvs: Vec<RawKv<'a, V>>,
    live: Vec<bool>,
    fingerprints: Vec<u64>,
    scratch: String,
    /// Direct writing: one bit per key from its fingerprint, and whether two keys
    /// set the same bit (only then can two keys be equal).
    seen: u128,
    suspect: bool,
}

impl<'a, V> Default for AttrWriter<'a, V> {
    fn default() -> Self {
        AttrWriter {
            kvs: Vec::new(),
            live: Vec::new(),
            fingerprints: Vec::new(),
            scratch: String::new(),
            seen: 0,
            suspect: false,
        }
    }
}

impl<'a> AttrWriter<'a> {
    #[inline(always)]
    fn push(&mut self, buf: &'a [u8], base: usize) -> Result<(), DecodeError> {
        // The fast path of `raw_kv`, pushing in place rather than through a `Result`.
        if let Some((key, rest)) = short_field(buf, 0x0a) {
            if let Some((value, [])) = short_field(rest, 0x12) {
                let at = base + (buf.len() - value.len());
                self.kvs.push(RawKv {
                    key,
                    value: Parts::one(value, at),
                });
                return Ok(());
            }
        }
        self.push_any(buf, base)
    }

    #[inline(never)]
    fn push_any(&mut self, buf: &'a [u8], base: usize) -> Result<(), DecodeError> {
        let i = self.kvs.len();
        let kv = raw_kv(buf, base).map_err(|e| e.within("attributes", Some(i)))?;
        self.kvs.push(kv);
        Ok(())
    }

    /// Starts writing a record's attributes with [`AttrWriter::direct`].
    #[inline]
    fn begin_direct(&mut self) {
        self.fingerprints.clear();
        self.seen = 0;
        self.suspect = false;
    }

    /// Writes a `KeyValue` straight into `map` as the open row's next entry,
    /// rather than gathering it first. That is only right if no later key of the
    /// record repeats this one, which [`AttrWriter::direct_distinct`] tells once
    /// all are written. `None` for a malformed attribute. Either way the caller
    /// then truncates `map` and takes the general path (gather, dedupe, write),
    /// which decides what the record gives: nearly every record has distinct,
    /// well-formed keys and never needs it.
    #[inline(always)]
    fn direct(
        &mut self,
        buf: &'a [u8],
        base: usize,
        map: &mut MapColumn,
        opts: &DecodeOptions,
        stats: &mut DecodeStats,
    ) -> Option<()> {
        let (key, value) = match short_field(buf, 0x0a) {
            Some((key, rest)) => match short_field(rest, 0x12) {
                Some((value, [])) => (key, Parts::one(value, base + (buf.len() - value.len()))),
                _ => Self::direct_kv(buf, base)?,
            },
            None => Self::direct_kv(buf, base)?,
        };
        let fp = fingerprint(key);
        let bit = 1u128 << (fp >> 57);
        self.suspect |= self.seen & bit != 0;
        self.seen |= bit;
        self.fingerprints.push(fp);
        let (keys, values) = map.entries();
        keys.push_bytes(key);
        if value.is_absent() {
            values.push_null();
        } else {
            append_value(&value, values, &mut self.scratch, opts, stats).ok()?;
        }
        Some(())
    }

    #[inline(never)]
    fn direct_kv(buf: &'a [u8], base: usize) -> Option<(&'a [u8], Parts<'a>)> {
        raw_kv(buf, base).ok().map(|kv| (kv.key, kv.value))
    }

    /// Whether the keys written by [`AttrWriter::direct`] since
    /// [`AttrWriter::begin_direct`] are surely distinct (equal fingerprints count
    /// as a duplicate: the general path then compares the keys themselves).
    #[inline]
    fn direct_distinct(&self) -> bool {
        if !self.suspect {
            return true;
        }
        let fps = &self.fingerprints;
        fps.len() <= PAIRWISE_DEDUP_MAX
            && !fps
                .iter()
                .enumerate()
                .any(|(i, fp)| fps[i + 1..].contains(fp))
    }

    /// Collects every field number `field_no` of a message as attributes.
    fn collect(&mut self, buf: &'a [u8], base: usize, field_no: u32) -> Result<(), DecodeError> {
        let mut r = Reader::new(buf, base);
        while let Some((field, v)) = r.next()? {
            if let (f, Value::Bytes(b, at)) = (field, v) {
                if f == field_no {
                    self.push(b, at)?;
                }
            }
        }
        Ok(())
    }
}

impl<'a, V: AnyValue<'a>> AttrWriter<'a, V> {
    fn clear(&mut self) {
        self.kvs.clear();
    }

    fn push_kv(&mut self, key: &'a [u8], value: V) {
        self.kvs.push(RawKv { key, value });
    }

    fn resolve_duplicates(&mut self) {
        let n = self.kvs.len();
        self.live.clear();
        self.live.resize(n, true);
        if n < 2 {
            return;
        }
        // Equal keys have equal fingerprints. Each fingerprint sets a bit in each of
        // two 256-bit sets (from different bits of it); unless both sets see a
        // collision there can be no duplicate, which spares the pairwise comparison
        // for typical spans.
        self.fingerprints.clear();
        self.fingerprints
            .extend(self.kvs.iter().map(|kv| fingerprint(kv.key)));
        let mut seen = [[0u64; 4]; 2];
        let mut collision = [false; 2];
        for &fp in &self.fingerprints {
            for (set, (seen, collision)) in seen.iter_mut().zip(&mut collision).enumerate() {
                let bit = ((fp >> (56 - 8 * set)) & 0xff) as usize;
                let (word, mask) = (bit >> 6, 1u64 << (bit & 63));
                *collision |= seen[word] & mask != 0;
                seen[word] |= mask;
            }
        }
        if !(collision[0] && collision[1]) {
            return;
        }
        if n <= PAIRWISE_DEDUP_MAX {
            // Keys are compared only where whole fingerprints agree.
            for (i, fp) in self.fingerprints.iter().enumerate() {
                let later = &self.fingerprints[i + 1..];
                if later.contains(fp) {
                    let key = self.kvs[i].key;
                    self.live[i] = !self.kvs[i + 1..].iter().any(|kv| kv.key == key);
                }
            }
        } else {
            let mut last: HashMap<&[u8], usize> = HashMap::with_capacity(n);
            for (i, kv) in self.kvs.iter().enumerate() {
                if let Some(prev) = last.insert(kv.key, i) {
                    self.live[prev] = false;
                }
            }
        }
    }

    /// Writes the gathered attributes as the current row's entries (the caller closes the row).
    fn write(
        &mut self,
        map: &mut MapColumn,
        opts: &DecodeOptions,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        self.resolve_duplicates();
        let (keys, values) = map.entries();
        for (i, kv) in self.kvs.iter().enumerate() {
            if !self.live[i] {
                continue;
            }
            keys.push_bytes(kv.key);
            if kv.value.is_absent() {
                values.push_null();
            } else {
                append_value(&kv.value, values, &mut self.scratch, opts, stats)
                    .map_err(|e| e.within("value", None).within("attributes", Some(i)))?;
            }
        }
        self.kvs.clear();
        Ok(())
    }

    /// Renders the gathered attributes into `entries` (resources, whose
    /// attributes are kept per resource rather than written per row).
    fn render(
        &mut self,
        entries: &mut Entries,
        opts: &DecodeOptions,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        self.resolve_duplicates();
        for (i, kv) in self.kvs.iter().enumerate() {
            if !self.live[i] {
                continue;
            }
            let key_start = entries.begin();
            push_utf8(entries.text(), kv.key, stats);
            let value_start = entries.text().len();
            let has_value = !kv.value.is_absent()
                && render_value(&kv.value, entries.text(), opts, stats)
                    .map_err(|e| e.within("value", None).within("attributes", Some(i)))?;
            if has_value && entries.cap_last_value(value_start, opts.max_value_bytes) {
                stats.truncated_values += 1;
            }
            entries.commit(key_start, value_start, has_value);
        }
        self.kvs.clear();
        Ok(())
    }
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

/// An optional string field borrowed from the input: empty is NULL.
#[inline]
fn opt(b: &[u8]) -> Option<&[u8]> {
    (!b.is_empty()).then_some(b)
}

/// A u64 timestamp as the i64 Arrow stores; values past year 2262 saturate.
#[inline]
fn nanos(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// Field names of one signal's envelope, for error paths.
struct Envelope {
    resources: &'static str,
    scopes: &'static str,
    records: &'static str,
}

/// What a signal's decoder does with each record; the envelope walk is shared.
trait RecordSink<'a> {
    fn contexts(&mut self) -> &mut ContextColumns;
    fn record(
        &mut self,
        buf: &'a [u8],
        base: usize,
        context: u32,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError>;
}

/// Walks `Export*ServiceRequest -> Resource* -> Scope* -> record`, registering
/// each (resource, scope) once and handing every record to `sink`. Resource and
/// scope are read before their records wherever they sit on the wire.
fn walk_request<'a, S: RecordSink<'a>>(
    buf: &'a [u8],
    env: &Envelope,
    sink: &mut S,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf, 0);
    let mut i = 0;
    while let Some((field, v)) = r.next()? {
        if let (1, Value::Bytes(b, at)) = (field, v) {
            walk_resource(b, at, env, sink, opts, stats)
                .map_err(|e| e.within(env.resources, Some(i)))?;
            i += 1;
        }
    }
    Ok(())
}

fn walk_resource<'a, S: RecordSink<'a>>(
    buf: &'a [u8],
    base: usize,
    env: &Envelope,
    sink: &mut S,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    let mut attrs = AttrWriter::default();
    let mut r = Reader::new(buf, base);
    while let Some((field, v)) = r.next()? {
        if let (1, Value::Bytes(b, at)) = (field, v) {
            attrs
                .collect(b, at, 1)
                .map_err(|e| e.within("resource", None))?;
        }
    }
    let mut res = ResourceCtx::default();
    attrs
        .render(&mut res.attributes, opts, stats)
        .map_err(|e| e.within("resource", None))?;
    res.seal();
    let resource = sink.contexts().add_resource(res);
    let mut r = Reader::new(buf, base);
    let mut i = 0;
    while let Some((field, v)) = r.next()? {
        if let (2, Value::Bytes(b, at)) = (field, v) {
            walk_scope(b, at, resource, env, sink, stats)
                .map_err(|e| e.within(env.scopes, Some(i)))?;
            i += 1;
        }
    }
    Ok(())
}

fn walk_scope<'a, S: RecordSink<'a>>(
    buf: &'a [u8],
    base: usize,
    resource: usize,
    env: &Envelope,
    sink: &mut S,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    walk_scope_once(buf, base, resource, env, sink, stats).map_err(|(e, records_seen)| {
        if records_seen {
            first_scope_error(buf, base).unwrap_or(e)
        } else {
            e
        }
    })
}

/// One pass over a scope's fields, records decoded as they come. A second pass to
/// find the scope first would touch every record's first byte before decoding any:
/// a chain of cache misses, one per record, about a tenth of the decode. Records
/// only name their context, which is registered at the first record; a scope field
/// that follows records (rare, but valid) is merged into that context, which is
/// what reading every scope field first gives. On error, also says whether records
/// were read (the error to report may then be an earlier-read scope's).
fn walk_scope_once<'a, S: RecordSink<'a>>(
    buf: &'a [u8],
    base: usize,
    resource: usize,
    env: &Envelope,
    sink: &mut S,
    stats: &mut DecodeStats,
) -> Result<(), (DecodeError, bool)> {
    let mut scope = ScopeCtx::default();
    let mut context: Option<u32> = None;
    let mut r = Reader::new(buf, base);
    let mut i = 0;
    while let Some((field, v)) = r.next().map_err(|e| (e, context.is_some()))? {
        match (field, v) {
            (1, Value::Bytes(b, at)) => {
                let target = match context {
                    Some(c) => sink.contexts().scope_mut(c),
                    None => Some(&mut scope),
                };
                if let Some(target) = target {
                    read_scope(target, b, at, stats)
                        .map_err(|e| (e.within("scope", None), context.is_some()))?;
                }
            }
            (2, Value::Bytes(b, at)) => {
                let context = match context {
                    Some(c) => c,
                    None => {
                        let c = sink
                            .contexts()
                            .add_scope(resource, std::mem::take(&mut scope));
                        context = Some(c);
                        c
                    }
                };
                sink.record(b, at, context, stats)
                    .map_err(|e| (e.within(env.records, Some(i)), true))?;
                i += 1;
                // The records right after it, each `0x12` and a one- or two-byte length,
                // are taken without the general reader, which resumes after them.
                let from = r.remaining();
                let mut rest = from;
                while let Some((b, tail)) = bytes_field(rest, 0x12) {
                    let at = r.offset() + (from.len() - tail.len() - b.len());
                    sink.record(b, at, context, stats)
                        .map_err(|e| (e.within(env.records, Some(i)), true))?;
                    i += 1;
                    rest = tail;
                }
                r.skip(from.len() - rest.len());
            }
            _ => {}
        }
    }
    if context.is_none() {
        sink.contexts().add_scope(resource, scope);
    }
    Ok(())
}

/// The error reading a scope's fields alone gives, if any: when decoding failed
/// after records were read, the error reported is the one a walk that reads the
/// scope fields before any record meets first, so that it does not depend on where
/// the scope sits on the wire.
#[cold]
#[inline(never)]
fn first_scope_error(buf: &[u8], base: usize) -> Option<DecodeError> {
    let mut scope = ScopeCtx::default();
    let mut stats = DecodeStats::default();
    let mut r = Reader::new(buf, base);
    loop {
        match r.next() {
            Err(e) => return Some(e),
            Ok(None) => return None,
            Ok(Some((1, Value::Bytes(b, at)))) => {
                if let Err(e) = read_scope(&mut scope, b, at, &mut stats) {
                    return Some(e.within("scope", None));
                }
            }
            Ok(Some(_)) => {}
        }
    }
}
