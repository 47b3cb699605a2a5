//! Arrow column builders for the `spans` and `logs` tables, shared by every
//! decoder (protobuf and JSON) so both produce the same batches.
//!
//! Strings taken from the input are appended as raw bytes and validated as
//! UTF-8 once per column when the batch is finished: one pass over a large
//! buffer instead of a check per short string (see [`valid_utf8_at`]). A column
//! that turns out to hold invalid UTF-8 is repaired value by value (U+FFFD) and
//! the repairs counted.

use std::sync::Arc;

use arrow_array::builder::{Int32Builder, StringBuilder, TimestampNanosecondBuilder};
use arrow_array::{
    Array, ArrayRef, BinaryArray, Int64Array, ListArray, MapArray, RecordBatch, StringArray,
    StructArray, TimestampNanosecondArray,
};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType};

use super::{Contexts, DecodeStats};
use crate::schema::{self, attr};

/// A UTF-8 column built from raw bytes; see the module docs.
pub(crate) struct Utf8Column {
    offsets: Vec<i32>,
    /// The text is `data[..len]`; the rest is zeroed room that strings are copied
    /// into, so that short strings are copied inline rather than by a `memcpy` call.
    data: Vec<u8>,
    len: usize,
    /// Rows that are NULL, in order: most columns have none, so a non-null push
    /// costs nothing here and the validity bitmap is built once, when finishing.
    nulls: Vec<usize>,
    /// For attribute values: the length cap, which also binds text that only grew
    /// past it when invalid UTF-8 was repaired.
    cap: Option<usize>,
}

/// The length of a [`Utf8Column`] at some point, to go back to.
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    rows: usize,
    bytes: usize,
}

/// How much room (zeroed) a column's text grows by at a time within its capacity.
/// Small enough that the zeroing is done with vector stores into memory that is
/// about to be written anyway (glibc switches to `rep stosb` from 2 KiB on, which
/// callgrind counts byte by byte) and is still in L1 when the values land in it.
const ROOM: usize = 1024;

/// Copies `src` to the start of `dst` (at least as long). Up to 32 bytes take two
/// overlapping fixed-size copies, which compile to a few moves.
#[inline(always)]
pub(crate) fn copy_prefix(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n > 32 || dst.len() < n {
        dst[..n].copy_from_slice(src);
    } else if n >= 16 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..n].copy_from_slice(&src[n - 16..]);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..n].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..n].copy_from_slice(&src[n - 4..]);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

impl Utf8Column {
    pub(crate) fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Utf8Column {
            offsets,
            data: Vec::with_capacity(bytes),
            len: 0,
            nulls: Vec::new(),
            cap: None,
        }
    }

    fn capped(mut self, cap: usize) -> Self {
        self.cap = Some(cap);
        self
    }

    /// Zeroed room for at least `need` bytes of text: a chunk at a time within the
    /// capacity, past it as `Vec` grows.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, need: usize) {
        let within = (self.data.len() + ROOM).min(self.data.capacity());
        self.data.resize(need.max(within), 0);
    }

    /// Appends bytes that should be UTF-8; checked when the column is finished.
    #[inline]
    pub(crate) fn push_bytes(&mut self, b: &[u8]) {
        let end = self.len + b.len();
        // Everything that calls out (growing, long copies) is kept off this path,
        // which then needs no registers saved and is a handful of instructions.
        if end > self.data.len() || b.len() > 32 || self.offsets.len() == self.offsets.capacity() {
            return self.push_bytes_cold(b);
        }
        // Wrap-around past 2 GiB is caught in `finish`, which checks the total length.
        // (The offset goes first: after the byte stores the compiler could no longer
        // tell that `offsets` still has room.)
        self.offsets.push(end as i32);
        if let Some(dst) = self.data.get_mut(self.len..end) {
            copy_prefix(dst, b);
        }
        self.len = end;
    }

    #[cold]
    #[inline(never)]
    fn push_bytes_cold(&mut self, b: &[u8]) {
        let end = self.len + b.len();
        if end > self.data.len() {
            self.grow(end);
        }
        copy_prefix(&mut self.data[self.len..], b);
        self.len = end;
        self.offsets.push(end as i32);
    }

    /// Appends a value of `n` bytes that `write` fills in.
    #[inline]
    pub(crate) fn push_with(&mut self, n: usize, write: impl FnOnce(&mut [u8])) {
        let end = self.len + n;
        if end > self.data.len() {
            self.grow(end);
        }
        if let Some(dst) = self.data.get_mut(self.len..end) {
            write(dst);
        }
        self.len = end;
        self.offsets.push(end as i32);
    }

    /// Appends the lowercase hex of `id`.
    #[inline]
    pub(crate) fn push_hex(&mut self, id: &[u8]) {
        let end = self.len + 2 * id.len();
        if end > self.data.len() {
            self.grow(end);
        }
        self.offsets.push(end as i32);
        if let Some(dst) = self.data.get_mut(self.len..end) {
            for (pair, &b) in dst.chunks_exact_mut(2).zip(id) {
                pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
            }
        }
        self.len = end;
    }

    #[inline]
    pub(crate) fn push_str(&mut self, s: &str) {
        self.push_bytes(s.as_bytes());
    }

    #[inline]
    pub(crate) fn push_null(&mut self) {
        // Leaf code like `push_bytes`: growing either list is the cold path.
        if self.offsets.len() == self.offsets.capacity()
            || self.nulls.len() == self.nulls.capacity()
        {
            return self.push_null_cold();
        }
        self.nulls.push(self.offsets.len() - 1);
        self.offsets.push(self.len as i32);
    }

    #[cold]
    #[inline(never)]
    fn push_null_cold(&mut self) {
        if self.nulls.len() == self.nulls.capacity() {
            // A column with one NULL tends to have many (absent optional fields):
            // room for the rows still expected, rather than doubling up from zero.
            let expected = self.offsets.capacity() - self.offsets.len();
            self.nulls.reserve(expected.max(self.nulls.len()).max(16));
        }
        self.nulls.push(self.len());
        self.offsets.push(self.len as i32);
    }

    #[inline]
    pub(crate) fn push_opt(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => self.push_bytes(b),
            None => self.push_null(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Where the column ends now, for [`Utf8Column::truncate`].
    #[inline]
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            rows: self.len(),
            bytes: self.len,
        }
    }

    /// Drops the values pushed since `mark`.
    pub(crate) fn truncate(&mut self, mark: Mark) {
        self.offsets.truncate(mark.rows + 1);
        self.len = mark.bytes;
        while self.nulls.last().is_some_and(|&r| r >= mark.rows) {
            self.nulls.pop();
        }
    }

    fn finish_nulls(&mut self) -> Option<NullBuffer> {
        if self.nulls.is_empty() {
            return None;
        }
        let mut valid = BooleanBufferBuilder::new(self.len());
        valid.append_n(self.len(), true);
        for row in self.nulls.drain(..) {
            valid.set_bit(row, false);
        }
        Some(NullBuffer::new(valid.finish()))
    }

    pub(crate) fn finish(&mut self, stats: &mut DecodeStats) -> Result<StringArray, ArrowError> {
        if i32::try_from(self.len).is_err() {
            return Err(ArrowError::InvalidArgumentError(
                "a string column of this request exceeds 2 GiB".into(),
            ));
        }
        let nulls = self.finish_nulls();
        self.data.truncate(std::mem::take(&mut self.len));
        let offsets = ScalarBuffer::from(std::mem::take(&mut self.offsets));
        let data = Buffer::from_vec(std::mem::take(&mut self.data));
        self.offsets.push(0);
        if let Some(a) = validated_string_array(&offsets, &data, &nulls) {
            return Ok(a);
        }
        let offsets = OffsetBuffer::new(offsets);
        match StringArray::try_new(offsets.clone(), data.clone(), nulls.clone()) {
            Ok(a) => Ok(a),
            Err(_) => {
                let raw = BinaryArray::try_new(offsets, data, nulls)?;
                Ok(repair(&raw, self.cap, stats))
            }
        }
    }
}

/// Whether `data` is UTF-8 with a character boundary at each of `offsets`: what
/// arrow's `StringArray::try_new` checks of the text, at a fraction of its cost.
/// Nearly every column is all ASCII, which one OR over wide chunks shows (every
/// offset is then a boundary); otherwise simdutf8 validates the text and each
/// offset is checked not to point at a continuation byte.
fn valid_utf8_at(offsets: &[i32], data: &[u8]) -> bool {
    if is_ascii(data) {
        return true;
    }
    let boundary = |o: i32| {
        usize::try_from(o).is_ok_and(|o| {
            o == data.len() || data.get(o).is_some_and(|&b| !(0x80..0xc0).contains(&b))
        })
    };
    simdutf8::basic::from_utf8(data).is_ok() && offsets.iter().all(|&o| boundary(o))
}

/// Whether all of `data` is ASCII. Written as an OR of 32-byte chunks so that it
/// compiles to a few vector instructions per chunk.
fn is_ascii(data: &[u8]) -> bool {
    let (chunks, rest) = data.as_chunks::<32>();
    let mut seen = [0u8; 32];
    for chunk in chunks {
        for (s, &b) in seen.iter_mut().zip(chunk) {
            *s |= b;
        }
    }
    seen.iter().chain(rest).fold(0, |s, &b| s | b) < 0x80
}

/// Whether `offsets` never decrease. `&` rather than `&&`: without an early exit
/// the comparisons compile to vector instructions, several offsets at a time.
fn never_decrease(offsets: &[i32]) -> bool {
    let next = offsets.get(1..).unwrap_or_default();
    offsets
        .iter()
        .zip(next)
        .fold(true, |rising, (a, b)| rising & (a <= b))
}

/// The `StringArray` of a finished [`Utf8Column`] if its parts are valid: built
/// without arrow validating them a second time. `None` (arrow's constructors
/// then say what is wrong) if the text is not UTF-8 or the parts do not fit.
#[allow(unsafe_code)]
fn validated_string_array(
    offsets: &ScalarBuffer<i32>,
    data: &Buffer,
    nulls: &Option<NullBuffer>,
) -> Option<StringArray> {
    let rows = offsets.len().checked_sub(1)?;
    let spans =
        offsets.first() == Some(&0) && offsets.last().copied() == i32::try_from(data.len()).ok();
    if !spans
        || !never_decrease(offsets)
        || nulls.as_ref().is_some_and(|n| n.len() != rows)
        || !valid_utf8_at(offsets, data)
    {
        return None;
    }
    // SAFETY: the unchecked constructors require what `OffsetBuffer::new` and
    // `StringArray::try_new` check, all checked here:
    // - offsets not empty, never decreasing (`never_decrease`), from 0 to
    //   `data.len()` (`spans`), so each value lies within `data`;
    // - a null buffer (if any) with one entry per row (checked above);
    // - every byte of `data` valid UTF-8 and every offset on a character
    //   boundary: `valid_utf8_at` read all of `data` and every offset.
    let offsets = unsafe { OffsetBuffer::new_unchecked(offsets.clone()) };
    Some(unsafe { StringArray::new_unchecked(offsets, data.clone(), nulls.clone()) })
}

/// Replaces invalid UTF-8 value by value, counting the values repaired.
#[cold]
fn repair(raw: &BinaryArray, cap: Option<usize>, stats: &mut DecodeStats) -> StringArray {
    raw.iter()
        .map(|v| {
            v.map(|b| match std::str::from_utf8(b) {
                Ok(s) => s.to_owned(),
                Err(_) => {
                    stats.invalid_utf8 += 1;
                    let mut s = String::from_utf8_lossy(b).into_owned();
                    if let Some(max) = cap.filter(|&max| s.len() > max) {
                        let mut cut = max;
                        while !s.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        s.truncate(cut);
                        stats.truncated_values += 1;
                    }
                    s
                }
            })
        })
        .collect()
}

/// The key/value pairs of one resource's attributes, rendered to text. Kept per
/// resource (not per row) so well-known attributes can be lifted into columns;
/// duplicates were already resolved by the `AttrWriter` that filled it.
#[derive(Default, Clone, Debug)]
pub(crate) struct Entries {
    text: String,
    items: Vec<Item>,
}

#[derive(Clone, Copy, Debug)]
struct Item {
    key: (usize, usize),
    value: Option<(usize, usize)>,
}

impl Entries {
    /// Starts an entry: the caller writes the key through [`Entries::text`] after this.
    pub(crate) fn begin(&mut self) -> usize {
        self.text.len()
    }

    pub(crate) fn text(&mut self) -> &mut String {
        &mut self.text
    }

    /// Closes an entry whose key was written from `key_start` to `value_start` and whose
    /// value (if `has_value`) follows up to the end of the buffer.
    pub(crate) fn commit(&mut self, key_start: usize, value_start: usize, has_value: bool) {
        let end = self.text.len();
        self.items.push(Item {
            key: (key_start, value_start),
            value: has_value.then_some((value_start, end)),
        });
    }

    /// Caps the value just written at `max` bytes (on a character boundary).
    /// Returns whether it had to cut.
    pub(crate) fn cap_last_value(&mut self, value_start: usize, max: usize) -> bool {
        let len = self.text.len() - value_start;
        if len <= max {
            return false;
        }
        let mut cut = value_start + max;
        while !self.text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.truncate(cut);
        true
    }

    fn key(&self, it: &Item) -> &str {
        &self.text[it.key.0..it.key.1]
    }

    fn value(&self, it: &Item) -> Option<&str> {
        it.value.map(|(a, b)| &self.text[a..b])
    }

    /// The value of `key`, if present and not null.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.items
            .iter()
            .rev()
            .find(|it| self.key(it) == key)
            .and_then(|it| self.value(it))
    }
}

/// A resource's attributes as repeated on every row: its keys and values as two
/// small arrays, appended whole to every row's map entries.
#[derive(Debug)]
pub(crate) struct PackedMap {
    keys: StringArray,
    values: StringArray,
}

impl Default for PackedMap {
    fn default() -> Self {
        PackedMap {
            keys: StringArray::new_null(0),
            values: StringArray::new_null(0),
        }
    }
}

impl PackedMap {
    fn len(&self) -> usize {
        self.keys.len()
    }

    /// Bytes of key and value text one row repeats.
    fn text_len(&self) -> (usize, usize) {
        (self.keys.values().len(), self.values.values().len())
    }
}

/// Rows of one resource's attributes copied per `append_array`: a run of rows is
/// appended in blocks of this many instead of entry by entry or row by row.
const REPEAT_ROWS: usize = 64;

impl PackedMap {
    /// The entries repeated `rows` times.
    fn repeated(&self, rows: usize) -> Result<PackedMap, ArrowError> {
        if rows == 1 {
            return Ok(PackedMap {
                keys: self.keys.clone(),
                values: self.values.clone(),
            });
        }
        let (k, v) = self.text_len();
        let mut keys = StringBuilder::with_capacity(self.len() * rows, k * rows);
        let mut values = StringBuilder::with_capacity(self.len() * rows, v * rows);
        for _ in 0..rows {
            keys.append_array(&self.keys)?;
            values.append_array(&self.values)?;
        }
        Ok(PackedMap {
            keys: keys.finish(),
            values: values.finish(),
        })
    }
}

/// Appends `rows` rows of `per_row` entries each from `block`, which holds whole
/// rows of the same entries.
fn append_repeated(
    out: &mut StringBuilder,
    block: &StringArray,
    per_row: usize,
    rows: usize,
) -> Result<(), ArrowError> {
    let block_rows = block.len() / per_row;
    let mut left = rows;
    while left >= block_rows {
        out.append_array(block)?;
        left -= block_rows;
    }
    if left > 0 {
        out.append_array(&block.slice(0, left * per_row))?;
    }
    Ok(())
}

/// Appends `v` `rows` times: a block of copies is built once and appended whole.
fn append_value_repeated(out: &mut StringBuilder, v: &str, rows: usize) -> Result<(), ArrowError> {
    let n = rows.min(REPEAT_ROWS);
    let mut block = StringBuilder::with_capacity(n, v.len() * n);
    block.append_value_n(v, n);
    append_repeated(out, &block.finish(), 1, rows)
}

impl Entries {
    fn pack(&self) -> PackedMap {
        let mut keys = StringBuilder::with_capacity(self.items.len(), self.text.len());
        let mut values = StringBuilder::with_capacity(self.items.len(), self.text.len());
        for it in &self.items {
            keys.append_value(self.key(it));
            values.append_option(self.value(it));
        }
        PackedMap {
            keys: keys.finish(),
            values: values.finish(),
        }
    }
}

/// A `MAP(VARCHAR, VARCHAR)` column: entries are pushed, then the row is closed.
pub(crate) struct MapColumn {
    offsets: Vec<i32>,
    keys: Utf8Column,
    values: Utf8Column,
}

impl MapColumn {
    /// A map of attributes whose values are capped at `value_cap` bytes.
    pub(crate) fn with_capacity(rows: usize, entries: usize, value_cap: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        MapColumn {
            offsets,
            keys: Utf8Column::with_capacity(entries, entries * 16),
            values: Utf8Column::with_capacity(entries, entries * 16).capped(value_cap),
        }
    }

    /// The key and value columns of the row being written.
    #[inline]
    pub(crate) fn entries(&mut self) -> (&mut Utf8Column, &mut Utf8Column) {
        (&mut self.keys, &mut self.values)
    }

    #[inline]
    pub(crate) fn close_row(&mut self) {
        self.offsets.push(self.keys.len() as i32);
    }

    /// Where the open row's entries end now, for [`MapColumn::truncate`].
    #[inline]
    pub(crate) fn mark(&self) -> (Mark, Mark) {
        (self.keys.mark(), self.values.mark())
    }

    /// Drops the entries written since `mark` (the row stays open).
    pub(crate) fn truncate(&mut self, mark: (Mark, Mark)) {
        self.keys.truncate(mark.0);
        self.values.truncate(mark.1);
    }

    pub(crate) fn finish(&mut self, stats: &mut DecodeStats) -> Result<MapArray, ArrowError> {
        let (keys, values) = (self.keys.finish(stats)?, self.values.finish(stats)?);
        let offsets = std::mem::take(&mut self.offsets);
        self.offsets.push(0);
        attribute_map(offsets, keys, values)
    }
}

/// Resource fields that every row of a resource repeats.
#[derive(Default, Debug)]
pub(crate) struct ResourceCtx {
    pub(crate) attributes: Entries,
    packed: PackedMap,
    service_name: Option<String>,
    service_version: Option<String>,
    service_instance_id: Option<String>,
    deployment_environment: Option<String>,
}

impl ResourceCtx {
    /// Lifts the well-known attributes into columns, once per resource.
    pub(crate) fn seal(&mut self) {
        let a = &self.attributes;
        self.service_name = a.get(attr::SERVICE_NAME).map(str::to_owned);
        self.service_version = a.get(attr::SERVICE_VERSION).map(str::to_owned);
        self.service_instance_id = a.get(attr::SERVICE_INSTANCE_ID).map(str::to_owned);
        self.deployment_environment = a
            .get(attr::DEPLOYMENT_ENVIRONMENT_NAME)
            .or_else(|| a.get(attr::DEPLOYMENT_ENVIRONMENT))
            .map(str::to_owned);
        self.packed = self.attributes.pack();
    }
}

#[derive(Default, Debug)]
pub(crate) struct ScopeCtx {
    pub(crate) name: Option<String>,
    pub(crate) version: Option<String>,
}

/// The columns every row repeats from its resource and scope. Rows only record
/// which (resource, scope) they belong to; the columns are materialised once per
/// context and expanded when the batch is finished, instead of copying every
/// resource attribute into every row as it is decoded.
#[derive(Default)]
pub(crate) struct ContextColumns {
    resources: Vec<ResourceCtx>,
    contexts: Vec<(usize, ScopeCtx)>,
    rows: Vec<u32>,
}

/// The six lifted columns of a (resource, scope), in column order of `finish_into`'s builders.
fn lifted<'c>(res: &'c ResourceCtx, scope: &'c ScopeCtx) -> [Option<&'c str>; 6] {
    [
        res.service_name.as_deref(),
        res.service_version.as_deref(),
        res.service_instance_id.as_deref(),
        res.deployment_environment.as_deref(),
        scope.name.as_deref(),
        scope.version.as_deref(),
    ]
}

impl ContextColumns {
    pub(crate) fn add_resource(&mut self, res: ResourceCtx) -> usize {
        self.resources.push(res);
        self.resources.len() - 1
    }

    pub(crate) fn add_scope(&mut self, resource: usize, scope: ScopeCtx) -> u32 {
        self.contexts.push((resource, scope));
        (self.contexts.len() - 1) as u32
    }

    /// The scope of a context registered already, for scope fields that follow its records.
    pub(crate) fn scope_mut(&mut self, context: u32) -> Option<&mut ScopeCtx> {
        self.contexts
            .get_mut(context as usize)
            .map(|(_, scope)| scope)
    }

    #[inline]
    pub(crate) fn push_row(&mut self, context: u32) {
        self.rows.push(context);
    }

    /// Appends the columns, and returns which context each row is of. With `once`, the
    /// `resource_attributes` column is left as an empty map a row and each resource's map
    /// is returned once instead ([`Contexts::resource_attributes`]).
    fn finish_into(
        &mut self,
        cols: &mut Vec<ArrayRef>,
        once: bool,
    ) -> Result<Contexts, ArrowError> {
        let rows = std::mem::take(&mut self.rows);
        // Sizes first, so that no builder grows (and copies) while it is filled.
        let (mut entries, mut key_bytes, mut value_bytes) = (0, 0, 0);
        let mut lifted_bytes = [0usize; 6];
        for run in rows.chunk_by(|a, b| a == b) {
            let (r, scope) = &self.contexts[run[0] as usize];
            let res = &self.resources[*r];
            let n = run.len();
            if !once {
                let (k, v) = res.packed.text_len();
                entries += res.packed.len() * n;
                key_bytes += k * n;
                value_bytes += v * n;
            }
            for (total, v) in lifted_bytes.iter_mut().zip(lifted(res, scope)) {
                *total += v.map_or(0, str::len) * n;
            }
        }
        // These strings were validated once per resource/scope: arrow's own builders
        // take them as `&str` and skip a second validation at the end.
        let mut strings: [StringBuilder; 6] =
            std::array::from_fn(|i| StringBuilder::with_capacity(rows.len(), lifted_bytes[i]));
        let mut map_offsets = Vec::with_capacity(rows.len() + 1);
        map_offsets.push(0i32);
        let mut keys = StringBuilder::with_capacity(entries, key_bytes);
        let mut values = StringBuilder::with_capacity(entries, value_bytes);
        // Rows of one scope are contiguous, so each context is handled once per run.
        for run in rows.chunk_by(|a, b| a == b) {
            let (r, scope) = &self.contexts[run[0] as usize];
            let res = &self.resources[*r];
            for (col, v) in strings.iter_mut().zip(lifted(res, scope)) {
                match v {
                    Some(v) => append_value_repeated(col, v, run.len())?,
                    None => col.append_nulls(run.len()),
                }
            }
            let per_row = if once { 0 } else { res.packed.len() };
            if per_row > 0 {
                let block = res.packed.repeated(run.len().min(REPEAT_ROWS))?;
                append_repeated(&mut keys, &block.keys, per_row, run.len())?;
                append_repeated(&mut values, &block.values, per_row, run.len())?;
            }
            let end = *map_offsets.last().unwrap_or(&0);
            map_offsets.extend((1..=run.len()).map(|i| end + (i * per_row) as i32));
        }
        let attributes = attribute_map(map_offsets, keys.finish(), values.finish())?;
        let by_resource = match once {
            true => Some(self.resource_attributes()?),
            false => None,
        };
        // Column order: lifted service columns, the map, then scope name and version.
        let [name, version, instance, environment, scope_name, scope_version] =
            strings.map(|mut b| Arc::new(b.finish()) as ArrayRef);
        cols.extend([name, version, instance, environment]);
        cols.push(Arc::new(attributes));
        cols.extend([scope_name, scope_version]);
        Ok(Contexts {
            row_context: ScalarBuffer::from(rows),
            context_resource: self.contexts.iter().map(|&(r, _)| r as u32).collect(),
            resource_attributes: by_resource,
        })
    }

    /// Each resource's attributes, a row per resource in the order they were added.
    fn resource_attributes(&self) -> Result<MapArray, ArrowError> {
        let (mut entries, mut key_bytes, mut value_bytes) = (0, 0, 0);
        for res in &self.resources {
            let (k, v) = res.packed.text_len();
            entries += res.packed.len();
            key_bytes += k;
            value_bytes += v;
        }
        let mut keys = StringBuilder::with_capacity(entries, key_bytes);
        let mut values = StringBuilder::with_capacity(entries, value_bytes);
        let mut offsets = Vec::with_capacity(self.resources.len() + 1);
        offsets.push(0i32);
        for res in &self.resources {
            keys.append_array(&res.packed.keys)?;
            values.append_array(&res.packed.values)?;
            let end = offsets.last().copied().unwrap_or(0);
            offsets.push(end + res.packed.len() as i32);
        }
        attribute_map(offsets, keys.finish(), values.finish())
    }
}

/// A `MAP(VARCHAR, VARCHAR)` array of rows cut at `offsets` from `keys` and `values`.
fn attribute_map(
    offsets: Vec<i32>,
    keys: StringArray,
    values: StringArray,
) -> Result<MapArray, ArrowError> {
    let field = schema::map_entries_field();
    let DataType::Struct(fields) = field.data_type() else {
        return Err(ArrowError::SchemaError(
            "map entries must be a struct".into(),
        ));
    };
    let entries =
        StructArray::try_new(fields.clone(), vec![Arc::new(keys), Arc::new(values)], None)?;
    MapArray::try_new(
        field,
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        entries,
        None,
        false,
    )
}

fn timestamps(rows: usize) -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::with_capacity(rows).with_timezone(schema::TIMEZONE)
}

/// A timestamp column without NULLs, from its values.
fn timestamp_array(values: Vec<i64>) -> TimestampNanosecondArray {
    TimestampNanosecondArray::new(ScalarBuffer::from(values), None).with_timezone(schema::TIMEZONE)
}

/// Lowercase hex of an id (up to 16 bytes), on the stack.
pub(crate) struct Hex {
    buf: [u8; 32],
    len: usize,
}

/// Each byte's two hex digits, so an id is one table load per byte.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    t
};

impl Hex {
    #[inline]
    pub(crate) fn new(bytes: &[u8]) -> Self {
        let mut buf = [0u8; 32];
        let n = bytes.len().min(16);
        for (pair, &b) in buf.chunks_exact_mut(2).zip(&bytes[..n]) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
        }
        Hex { buf, len: 2 * n }
    }

    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Hex for ids of any length (links may carry odd ones).
pub(crate) fn hex_bytes(bytes: &[u8]) -> Vec<u8> {
    bytes
        .chunks(16)
        .flat_map(|c| Hex::new(c).as_bytes().to_vec())
        .collect()
}

/// One span's scalar fields, borrowed from whatever the decoder reads: ids as
/// their bytes (written as hex), byte strings checked for UTF-8 when the batch
/// is finished.
pub(crate) struct SpanRow<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: Option<&'a [u8]>,
    pub trace_state: Option<&'a [u8]>,
    pub name: &'a [u8],
    pub kind: &'static str,
    pub start: i64,
    pub end: i64,
    pub duration: i64,
    pub status_code: &'static str,
    pub status_message: Option<&'a [u8]>,
}

pub(crate) struct SpansBuilder {
    trace_id: Utf8Column,
    span_id: Utf8Column,
    parent_span_id: Utf8Column,
    trace_state: Utf8Column,
    span_name: Utf8Column,
    span_kind: Utf8Column,
    start_time: Vec<i64>,
    end_time: Vec<i64>,
    duration_ns: Vec<i64>,
    status_code: Utf8Column,
    status_message: Utf8Column,
    pub(crate) contexts: ContextColumns,
    span_attributes: MapColumn,
    events: EventsColumn,
    links: LinksColumn,
    rows: usize,
}

impl SpansBuilder {
    pub(crate) fn with_capacity(rows: usize, value_cap: usize) -> Self {
        SpansBuilder {
            trace_id: Utf8Column::with_capacity(rows, rows * 32),
            span_id: Utf8Column::with_capacity(rows, rows * 16),
            parent_span_id: Utf8Column::with_capacity(rows, rows * 16),
            trace_state: Utf8Column::with_capacity(rows, 0),
            span_name: Utf8Column::with_capacity(rows, rows * 16),
            span_kind: Utf8Column::with_capacity(rows, rows * 6),
            start_time: Vec::with_capacity(rows),
            end_time: Vec::with_capacity(rows),
            duration_ns: Vec::with_capacity(rows),
            status_code: Utf8Column::with_capacity(rows, rows * 5),
            status_message: Utf8Column::with_capacity(rows, 0),
            contexts: ContextColumns::default(),
            span_attributes: MapColumn::with_capacity(rows, rows * 10, value_cap),
            events: EventsColumn::new(rows, value_cap),
            links: LinksColumn::new(rows, value_cap),
            rows: 0,
        }
    }

    /// Appends one span. Its attributes, events and links must already have been
    /// written through [`SpansBuilder::attributes`], [`SpansBuilder::events`] and
    /// [`SpansBuilder::links`]; this closes those rows.
    #[inline]
    pub(crate) fn append(&mut self, row: &SpanRow<'_>, context: u32) {
        self.trace_id.push_hex(row.trace_id);
        self.span_id.push_hex(row.span_id);
        match row.parent_span_id {
            Some(id) => self.parent_span_id.push_hex(id),
            None => self.parent_span_id.push_null(),
        }
        self.trace_state.push_opt(row.trace_state);
        self.span_name.push_bytes(row.name);
        self.span_kind.push_str(row.kind);
        self.start_time.push(row.start);
        self.end_time.push(row.end);
        self.duration_ns.push(row.duration);
        self.status_code.push_str(row.status_code);
        self.status_message.push_opt(row.status_message);
        self.contexts.push_row(context);
        self.span_attributes.close_row();
        self.events.close_row();
        self.links.close_row();
        self.rows += 1;
    }

    pub(crate) fn attributes(&mut self) -> &mut MapColumn {
        &mut self.span_attributes
    }

    pub(crate) fn events(&mut self) -> &mut EventsColumn {
        &mut self.events
    }

    pub(crate) fn links(&mut self) -> &mut LinksColumn {
        &mut self.links
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The batch, and which rows share a context; with `resource_attributes_once`, the
    /// resources' attributes once each ([`ContextColumns::finish_into`]).
    pub(crate) fn finish(
        mut self,
        stats: &mut DecodeStats,
        resource_attributes_once: bool,
    ) -> Result<(RecordBatch, Contexts), ArrowError> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish(stats)?),
            Arc::new(self.span_id.finish(stats)?),
            Arc::new(self.parent_span_id.finish(stats)?),
            Arc::new(self.trace_state.finish(stats)?),
            Arc::new(self.span_name.finish(stats)?),
            Arc::new(self.span_kind.finish(stats)?),
            Arc::new(timestamp_array(std::mem::take(&mut self.start_time))),
            Arc::new(timestamp_array(std::mem::take(&mut self.end_time))),
            Arc::new(Int64Array::new(
                ScalarBuffer::from(std::mem::take(&mut self.duration_ns)),
                None,
            )),
            Arc::new(self.status_code.finish(stats)?),
            Arc::new(self.status_message.finish(stats)?),
        ];
        let contexts = self
            .contexts
            .finish_into(&mut cols, resource_attributes_once)?;
        cols.push(Arc::new(self.span_attributes.finish(stats)?));
        cols.push(self.events.finish(stats)?);
        cols.push(self.links.finish(stats)?);
        Ok((
            RecordBatch::try_new(schema::spans_schema(), cols)?,
            contexts,
        ))
    }
}

fn list_of(
    fields: arrow_schema::Fields,
    children: Vec<ArrayRef>,
    offsets: &mut Vec<i32>,
) -> Result<ArrayRef, ArrowError> {
    let items = StructArray::try_new(fields.clone(), children, None)?;
    let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::take(offsets)));
    Ok(Arc::new(ListArray::try_new(
        schema::list_item_field(fields),
        offsets,
        Arc::new(items),
        None,
    )?))
}

/// `events`: LIST of STRUCT(time, name, attributes).
pub(crate) struct EventsColumn {
    offsets: Vec<i32>,
    time: TimestampNanosecondBuilder,
    name: Utf8Column,
    attributes: MapColumn,
}

impl EventsColumn {
    fn new(rows: usize, value_cap: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        EventsColumn {
            offsets,
            time: timestamps(0),
            name: Utf8Column::with_capacity(0, 0),
            attributes: MapColumn::with_capacity(0, 0, value_cap),
        }
    }

    /// Appends one event whose attributes were written through [`EventsColumn::attributes`].
    pub(crate) fn push(&mut self, time: i64, name: &[u8]) {
        self.time.append_value(time);
        self.name.push_bytes(name);
        self.attributes.close_row();
    }

    pub(crate) fn attributes(&mut self) -> &mut MapColumn {
        &mut self.attributes
    }

    #[inline]
    fn close_row(&mut self) {
        self.offsets.push(self.name.len() as i32);
    }

    fn finish(&mut self, stats: &mut DecodeStats) -> Result<ArrayRef, ArrowError> {
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.name.finish(stats)?),
            Arc::new(self.attributes.finish(stats)?),
        ];
        list_of(schema::event_fields(), children, &mut self.offsets)
    }
}

/// `links`: LIST of STRUCT(trace_id, span_id, trace_state, attributes).
pub(crate) struct LinksColumn {
    offsets: Vec<i32>,
    trace_id: Utf8Column,
    span_id: Utf8Column,
    trace_state: Utf8Column,
    attributes: MapColumn,
}

impl LinksColumn {
    fn new(rows: usize, value_cap: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        LinksColumn {
            offsets,
            trace_id: Utf8Column::with_capacity(0, 0),
            span_id: Utf8Column::with_capacity(0, 0),
            trace_state: Utf8Column::with_capacity(0, 0),
            attributes: MapColumn::with_capacity(0, 0, value_cap),
        }
    }

    /// Appends one link whose attributes were written through [`LinksColumn::attributes`].
    pub(crate) fn push(&mut self, trace_id: &[u8], span_id: &[u8], trace_state: Option<&[u8]>) {
        self.trace_id.push_bytes(trace_id);
        self.span_id.push_bytes(span_id);
        self.trace_state.push_opt(trace_state);
        self.attributes.close_row();
    }

    pub(crate) fn attributes(&mut self) -> &mut MapColumn {
        &mut self.attributes
    }

    #[inline]
    fn close_row(&mut self) {
        self.offsets.push(self.trace_id.len() as i32);
    }

    fn finish(&mut self, stats: &mut DecodeStats) -> Result<ArrayRef, ArrowError> {
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish(stats)?),
            Arc::new(self.span_id.finish(stats)?),
            Arc::new(self.trace_state.finish(stats)?),
            Arc::new(self.attributes.finish(stats)?),
        ];
        list_of(schema::link_fields(), children, &mut self.offsets)
    }
}

/// One log record's scalar fields.
pub(crate) struct LogRow<'a> {
    pub time: Option<i64>,
    pub observed_time: Option<i64>,
    pub trace_id: Option<&'a [u8]>,
    pub span_id: Option<&'a [u8]>,
    pub severity_number: i32,
    pub severity_text: Option<&'a [u8]>,
    pub body: Option<&'a [u8]>,
    pub event_name: Option<&'a [u8]>,
}

pub(crate) struct LogsBuilder {
    time: TimestampNanosecondBuilder,
    observed_time: TimestampNanosecondBuilder,
    trace_id: Utf8Column,
    span_id: Utf8Column,
    severity_number: Int32Builder,
    severity_text: Utf8Column,
    body: Utf8Column,
    event_name: Utf8Column,
    pub(crate) contexts: ContextColumns,
    log_attributes: MapColumn,
    rows: usize,
}

impl LogsBuilder {
    pub(crate) fn with_capacity(rows: usize, value_cap: usize) -> Self {
        LogsBuilder {
            time: timestamps(rows),
            observed_time: timestamps(rows),
            trace_id: Utf8Column::with_capacity(rows, rows * 32),
            span_id: Utf8Column::with_capacity(rows, rows * 16),
            severity_number: Int32Builder::with_capacity(rows),
            severity_text: Utf8Column::with_capacity(rows, rows * 5),
            body: Utf8Column::with_capacity(rows, rows * 64),
            event_name: Utf8Column::with_capacity(rows, 0),
            contexts: ContextColumns::default(),
            log_attributes: MapColumn::with_capacity(rows, rows * 6, value_cap),
            rows: 0,
        }
    }

    /// Appends one log record whose attributes were written through [`LogsBuilder::attributes`].
    pub(crate) fn append(&mut self, row: &LogRow<'_>, context: u32) {
        self.time.append_option(row.time);
        self.observed_time.append_option(row.observed_time);
        self.trace_id.push_opt(row.trace_id);
        self.span_id.push_opt(row.span_id);
        self.severity_number.append_value(row.severity_number);
        self.severity_text.push_opt(row.severity_text);
        self.body.push_opt(row.body);
        self.event_name.push_opt(row.event_name);
        self.contexts.push_row(context);
        self.log_attributes.close_row();
        self.rows += 1;
    }

    pub(crate) fn attributes(&mut self) -> &mut MapColumn {
        &mut self.log_attributes
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The batch, and which rows share a context; with `resource_attributes_once`, the
    /// resources' attributes once each ([`ContextColumns::finish_into`]).
    pub(crate) fn finish(
        mut self,
        stats: &mut DecodeStats,
        resource_attributes_once: bool,
    ) -> Result<(RecordBatch, Contexts), ArrowError> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.observed_time.finish()),
            Arc::new(self.trace_id.finish(stats)?),
            Arc::new(self.span_id.finish(stats)?),
            Arc::new(self.severity_number.finish()),
            Arc::new(self.severity_text.finish(stats)?),
            Arc::new(self.body.finish(stats)?),
            Arc::new(self.event_name.finish(stats)?),
        ];
        let contexts = self
            .contexts
            .finish_into(&mut cols, resource_attributes_once)?;
        cols.push(Arc::new(self.log_attributes.finish(stats)?));
        Ok((RecordBatch::try_new(schema::logs_schema(), cols)?, contexts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_of_every_length_are_copied_whole() {
        let text: Vec<u8> = (0..200u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut col = Utf8Column::with_capacity(0, 0);
        let mut stats = DecodeStats::default();
        let mut want = Vec::new();
        for n in 0..=100 {
            col.push_bytes(&text[n..2 * n]);
            col.push_null();
            want.push(Some(std::str::from_utf8(&text[n..2 * n]).unwrap_or("?")));
            want.push(None);
        }
        let got = col.finish(&mut stats).ok();
        assert_eq!(got, Some(StringArray::from(want)));
    }

    /// Values of every length up to past the 32-byte chunks of `is_ascii`, as
    /// ASCII, with a multi-byte character at either end, and with an invalid byte
    /// (a stray continuation byte or a lone lead byte) at the first, middle and
    /// last position.
    fn utf8_cases() -> Vec<Vec<u8>> {
        let mut cases = Vec::new();
        for n in 0..=70usize {
            let ascii: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            cases.push(ascii.clone());
            if n >= 2 {
                for at in [0, n - 2] {
                    let mut v = ascii.clone();
                    v[at..at + 2].copy_from_slice("é".as_bytes());
                    cases.push(v);
                }
            }
            for at in [0, n / 2, n.saturating_sub(1)]
                .into_iter()
                .filter(|&at| at < n)
            {
                for bad in [0xa9, 0xc3, 0xff] {
                    let mut v = ascii.clone();
                    v[at] = bad;
                    cases.push(v);
                }
            }
        }
        cases
    }

    /// The column's own validation gives what arrow's gives: the same text,
    /// invalid values repaired and counted, whether a value is alone in its
    /// column or among others (valid ones also pushed as `&str`).
    #[test]
    fn utf8_validated_at_finish_as_arrow_would() {
        let cases = utf8_cases();
        let lossy = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let invalid = |v: &[u8]| u64::from(std::str::from_utf8(v).is_err());
        for v in &cases {
            let mut col = Utf8Column::with_capacity(0, 0);
            col.push_bytes(v);
            col.push_null();
            let mut stats = DecodeStats::default();
            let got = col.finish(&mut stats).ok();
            let want = StringArray::from(vec![Some(lossy(v)), None]);
            assert_eq!(got, Some(want), "{v:?}");
            assert_eq!(stats.invalid_utf8, invalid(v), "{v:?}");
        }
        // All in one column, valid values also pushed as `&str`.
        let mut col = Utf8Column::with_capacity(4, 64);
        let mut want = Vec::new();
        for v in &cases {
            col.push_bytes(v);
            want.push(lossy(v));
            if let Ok(s) = std::str::from_utf8(v) {
                col.push_str(s);
                want.push(s.to_owned());
            }
        }
        let mut stats = DecodeStats::default();
        let got = col.finish(&mut stats).ok();
        assert_eq!(got, Some(StringArray::from(want)));
        let bad: u64 = cases.iter().map(|v| invalid(v)).sum();
        assert_eq!(stats.invalid_utf8, bad);
    }

    /// A character split across two values is invalid in both, although the
    /// column's text as a whole is UTF-8.
    #[test]
    fn utf8_split_across_values_is_repaired() {
        let e = "é".as_bytes();
        for pad in [0, 20, 40] {
            let head = [vec![b'a'; pad], e[..1].to_vec()].concat();
            let tail = [e[1..].to_vec(), vec![b'b'; pad]].concat();
            let mut col = Utf8Column::with_capacity(0, 0);
            col.push_bytes(&head);
            col.push_bytes(&tail);
            let mut stats = DecodeStats::default();
            let got = col.finish(&mut stats).ok();
            let want = StringArray::from(vec![
                format!("{}\u{fffd}", "a".repeat(pad)),
                format!("\u{fffd}{}", "b".repeat(pad)),
            ]);
            assert_eq!(got, Some(want));
            assert_eq!(stats.invalid_utf8, 2);
        }
    }

    /// An invalid value taken back out leaves a valid column, which then comes
    /// out unrepaired; each `finish` checks only what it hands over.
    #[test]
    fn utf8_after_truncate_and_finish() {
        let mut col = Utf8Column::with_capacity(0, 0);
        col.push_bytes(b"ok");
        let mark = col.mark();
        col.push_bytes(b"\xff");
        col.truncate(mark);
        col.push_bytes(b"fine");
        let mut stats = DecodeStats::default();
        let got = col.finish(&mut stats).ok();
        assert_eq!(got, Some(StringArray::from(vec!["ok", "fine"])));
        assert_eq!(stats.invalid_utf8, 0);
        col.push_bytes(b"\xc3");
        let got = col.finish(&mut stats).ok();
        assert_eq!(got, Some(StringArray::from(vec!["\u{fffd}"])));
        assert_eq!(stats.invalid_utf8, 1);
        col.push_bytes(b"again");
        let got = col.finish(&mut stats).ok();
        assert_eq!(got, Some(StringArray::from(vec!["again"])));
        assert_eq!(stats.invalid_utf8, 1);
    }

    /// The checks before the unchecked constructors: parts that arrow's checked
    /// constructors would take give their array; anything else gives `None`
    /// (and the column goes through those constructors).
    #[test]
    fn validated_string_array_checks_the_parts() {
        let nulls = |n: usize| Some(NullBuffer::new_null(n));
        let cases = [
            (b"abcdef".as_slice(), vec![0, 2, 2, 6], None, true),
            (b"abcdef".as_slice(), vec![0, 2, 6], nulls(2), true),
            ("aé".as_bytes(), vec![0, 1, 3], None, true),
            (b"".as_slice(), vec![0], None, true),
            (b"abcdef".as_slice(), vec![0, 3, 2, 6], None, false),
            (b"abcdef".as_slice(), vec![1, 2, 6], None, false),
            (b"abcdef".as_slice(), vec![0, 2, 7], None, false),
            (b"abcdef".as_slice(), vec![0, 2, 6], nulls(3), false),
            ("aé".as_bytes(), vec![0, 2, 3], None, false),
            (b"a\xffb".as_slice(), vec![0, 1, 3], None, false),
        ];
        for (data, offsets, nulls, valid) in cases {
            let got = validated_string_array(
                &ScalarBuffer::from(offsets.clone()),
                &Buffer::from_vec(data.to_vec()),
                &nulls,
            );
            let want = valid.then(|| {
                StringArray::try_new(
                    OffsetBuffer::new(ScalarBuffer::from(offsets.clone())),
                    Buffer::from_vec(data.to_vec()),
                    nulls.clone(),
                )
                .ok()
            });
            assert_eq!(got, want.flatten(), "{data:?} {offsets:?}");
        }
        assert!(never_decrease(&[]) && never_decrease(&[5]) && never_decrease(&[0, 0, 1]));
        assert!(!never_decrease(&[0, 2, 1, 3]));
    }

    /// More rows than the column was sized for, many of them NULL: the NULL list
    /// reserves the rows expected, then grows like any other.
    #[test]
    fn nulls_past_the_expected_rows() {
        let mut col = Utf8Column::with_capacity(3, 4);
        let mut want = Vec::new();
        for i in 0..1000 {
            if i % 7 == 3 {
                col.push_bytes(b"value");
                want.push(Some("value"));
            } else {
                col.push_null();
                want.push(None);
            }
        }
        let mut stats = DecodeStats::default();
        assert_eq!(col.finish(&mut stats).ok(), Some(StringArray::from(want)));
    }

    #[test]
    fn hex_matches_format_for_every_length_and_byte() {
        for len in 0..=20usize {
            for seed in 0..=255u8 {
                let bytes: Vec<u8> = (0..len)
                    .map(|i| {
                        seed.wrapping_mul(31)
                            .wrapping_add((i as u8).wrapping_mul(97))
                    })
                    .collect();
                let want: String = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
                assert_eq!(Hex::new(&bytes).as_bytes(), want.as_bytes(), "{bytes:?}");
            }
        }
        let all: Vec<u8> = (0..=255u8).collect();
        let want: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex_bytes(&all), want.as_bytes());
    }
}
