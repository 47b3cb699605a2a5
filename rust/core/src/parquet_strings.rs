//! The string columns of the lake's Parquet files, encoded here rather than by arrow-rs's
//! generic column writer; [`crate::parquet_files`] hands every other column to arrow-rs and
//! splices these chunks into the same row groups. Most are dictionary-encoded (below); the
//! columns of random ids, which have no dictionary, are PLAIN pages filled straight from
//! the rows ([`StringChunkWriter::write_plain`]).
//!
//! Lists of structs of strings and string maps (a span's `events` and `links`) are written
//! here too, leaf by leaf, with their levels worked out from the list offsets as the rows
//! are read ([`walk_list`]): arrow-rs would need the column gathered into sorted order
//! first, then its levels computed for every leaf (on the flush bench of the random
//! payload, 7-8% of a flush went to events that way). An event's time, the one leaf that is
//! not a string, is written PLAIN alongside ([`StringChunkWriter::write_list_integers`]),
//! since a list column's leaves are written here all or not at all.
//!
//! Once rows are sorted, most of a span's strings equal the string at the same place in the
//! row before: the resource's and scope's columns and attributes are the same for every span
//! of a service, and attribute keys come in the same order span after span. arrow-rs hashes
//! every value into its dictionary and compares it with the chunk's running min and max
//! (together about a third of a flush's instructions). Here a value is first compared with
//! the value at the same position of the previous row, and only a miss is hashed; the
//! statistics come from the dictionary, whose values are each distinct (or, in a chunk
//! written PLAIN, every value from where its dictionary passed the limit).
//!
//! What is written is what arrow-rs writes for these columns (so readers see no
//! difference): a PLAIN dictionary page, then v1 data pages of RLE levels and
//! RLE_DICTIONARY indices, of at most the writer's page row and byte limits, compressed
//! with the column's codec; chunk statistics; an offset index. A chunk whose dictionary
//! would pass the writer's dictionary page limit is written as PLAIN data pages instead
//! (arrow-rs switches to PLAIN in the middle of such a chunk; here it is decided per chunk,
//! and the values after the point where the dictionary passed the limit are no longer
//! looked up in it). So is a chunk of map values that are mostly distinct at its first
//! few thousand ([`SPARSE_SHARE`]), long before any limit.

use std::hash::BuildHasher;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, MapArray, StringArray};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::basic::{Compression, Encoding, EncodingMask, PageType, ZstdLevel};
use parquet::bloom_filter::Sbbf;
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, ColumnChunkMetaDataBuilder, PageEncodingStats};
use parquet::file::page_index::offset_index::{OffsetIndexMetaData, PageLocation};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnDescPtr, ColumnPath};

use crate::error::Result;
use crate::parquet_files::{null_count, Run};
use crate::prefetch::{prefetch, AHEAD};

/// One string leaf of a top-level column, in row order: the rows `runs` picks out of
/// `parts`. The columns of a flush are read where they are in its input batches (one part
/// per batch) rather than copied into sorted order first; an array already in order is
/// one part read in one run.
pub(crate) struct StringLeaf<'a> {
    parts: Parts<'a>,
    runs: &'a [Run],
    /// For each part, which of its rows repeat one value, when known: a column of a
    /// resource or a scope of batches the decoder says that of. Empty when none is.
    groups: &'a [Option<Groups<'a>>],
}

/// The rows of one part numbered by the group they belong to, rows of a group holding
/// the same value of a column: their context, or their context's resource, for a column
/// of a scope or of a resource ([`crate::decode::Contexts`]); or the same list of keys,
/// for the keys of any other map ([`key_lists`]).
#[derive(Clone, Copy)]
pub(crate) struct Groups<'a> {
    /// The group of each row of the part.
    pub(crate) of_row: &'a [u32],
    /// How many groups the part has: more than any of `of_row`.
    pub(crate) count: usize,
}

/// The arrays a [`StringLeaf`] reads, one per input batch.
enum Parts<'a> {
    /// A `Utf8` column: one value or null per row.
    Flat(Vec<&'a StringArray>),
    /// The keys of a non-null `Map<Utf8, Utf8>` column.
    MapKeys(Vec<&'a MapArray>),
    /// The values of a non-null `Map<Utf8, Utf8>` column.
    MapValues(Vec<&'a MapArray>),
    /// One leaf of field `field` of the struct items of a non-null `List<Struct>` column
    /// (`events`, `links`), whose items are nullable when `item_nullable`.
    List {
        lists: Vec<ListPart<'a>>,
        field: usize,
        kind: ItemLeaf,
        item_nullable: bool,
    },
}

/// A part of a `List<Struct>` column: its list offsets, its struct items and their nulls.
#[derive(Clone, Copy)]
pub(crate) struct ListPart<'a> {
    offsets: &'a [i32],
    items: &'a arrow_array::StructArray,
    item_nulls: Option<&'a NullBuffer>,
}

impl<'a> ListPart<'a> {
    /// The array holding the values of leaf `kind` of field `field`: the field's own, or
    /// its map's keys or values.
    fn leaf_values(&self, field: usize, kind: ItemLeaf) -> &'a ArrayRef {
        let column = self.items.column(field);
        match kind {
            ItemLeaf::MapKeys { .. } => column.as_map().keys(),
            ItemLeaf::MapValues { .. } => column.as_map().values(),
            ItemLeaf::Strings { .. } | ItemLeaf::Int64 => column,
        }
    }

    fn new(array: &'a ArrayRef) -> Self {
        let list = array.as_list::<i32>();
        let items = list.values().as_struct();
        ListPart {
            offsets: list.value_offsets(),
            items,
            item_nulls: items.nulls().filter(|n| n.null_count() > 0),
        }
    }
}

/// What a leaf of a list's struct items is: the field's kind, for the leaves this module
/// writes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ItemLeaf {
    /// A `Utf8` field.
    Strings { nullable: bool },
    /// The keys of a non-null `Map<Utf8, Utf8>` field.
    MapKeys { values_nullable: bool },
    /// Its values.
    MapValues { values_nullable: bool },
    /// A non-null `Int64` or nanosecond timestamp field (an event's time), written PLAIN.
    Int64,
}

impl ItemLeaf {
    /// The kind of `field`'s first leaf, if this module writes its leaves.
    fn of(field: &arrow_schema::Field) -> Option<ItemLeaf> {
        match field.data_type() {
            DataType::Utf8 => Some(ItemLeaf::Strings {
                nullable: field.is_nullable(),
            }),
            DataType::Map(entries, _) if string_map(field.data_type()) => {
                let values_nullable = match entries.data_type() {
                    DataType::Struct(fields) => fields[1].is_nullable(),
                    _ => return None,
                };
                Some(ItemLeaf::MapKeys { values_nullable })
            }
            DataType::Int64 | DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, _)
                if !field.is_nullable() =>
            {
                Some(ItemLeaf::Int64)
            }
            _ => None,
        }
    }
}

/// Whether `data_type` is a map of strings to strings.
fn string_map(data_type: &DataType) -> bool {
    match data_type {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(fields) => {
                fields.len() == 2 && fields.iter().all(|f| f.data_type() == &DataType::Utf8)
            }
            _ => false,
        },
        _ => false,
    }
}

impl<'a> StringLeaf<'a> {
    /// Whether columns of `data_type` are of a kind this module writes: `Utf8`, or a map
    /// of strings to strings. Whether it writes a given chunk of one also depends on the
    /// chunk's nulls and on the writer's properties (`leaves`, `StringChunkWriter::handles`).
    pub(crate) fn encodes(data_type: &DataType) -> bool {
        match data_type {
            DataType::Utf8 => true,
            DataType::Map(..) => string_map(data_type),
            DataType::List(item) => match item.data_type() {
                DataType::Struct(fields) => fields.iter().all(|f| ItemLeaf::of(f).is_some()),
                _ => false,
            },
            _ => false,
        }
    }

    /// The Parquet leaves of a top-level column of `data_type` (the rows `runs` picks out
    /// of `parts`, `groups` saying which rows of a part share a value, if known) when
    /// this module writes all of them: a `Utf8` column, or a map of strings to strings
    /// without null maps or entries. `None` for any other.
    pub(crate) fn leaves(
        data_type: &DataType,
        parts: &'a [ArrayRef],
        runs: &'a [Run],
        groups: &'a [Option<Groups<'a>>],
    ) -> Option<Vec<StringLeaf<'a>>> {
        if !Self::encodes(data_type) {
            return None;
        }
        let leaf = |parts| StringLeaf {
            parts,
            runs,
            groups,
        };
        match data_type {
            DataType::Utf8 => Some(vec![leaf(Parts::Flat(
                parts.iter().map(|a| a.as_string::<i32>()).collect(),
            ))]),
            DataType::List(item) => {
                let lists: Vec<ListPart<'a>> = parts.iter().map(ListPart::new).collect();
                let list_nulls: Vec<_> = parts.iter().map(|a| a.nulls()).collect();
                if null_count(&list_nulls, runs.iter().copied()) > 0 {
                    return None;
                }
                let DataType::Struct(fields) = item.data_type() else {
                    return None;
                };
                // Null items of a list whose items are required have no level to be
                // written with.
                if !item.is_nullable() && lists.iter().any(|l| l.item_nulls.is_some()) {
                    return None;
                }
                let mut leaves = Vec::new();
                for (index, field) in fields.iter().enumerate() {
                    let kind = ItemLeaf::of(field)?;
                    // Nulls this module does not write: in a required field, or in a map
                    // or its entries (whole arrays checked, not only the rows written).
                    let column = |l: &ListPart<'a>| l.items.column(index);
                    let unwritten = match kind {
                        ItemLeaf::Strings { nullable: true } => false,
                        ItemLeaf::Strings { nullable: false } | ItemLeaf::Int64 => {
                            lists.iter().any(|l| column(l).null_count() > 0)
                        }
                        ItemLeaf::MapKeys { values_nullable }
                        | ItemLeaf::MapValues { values_nullable } => lists.iter().any(|l| {
                            let map = column(l).as_map();
                            map.null_count() > 0
                                || map.entries().null_count() > 0
                                || map.keys().null_count() > 0
                                || (!values_nullable && map.values().null_count() > 0)
                        }),
                    };
                    if unwritten {
                        return None;
                    }
                    let list_leaf = |kind| {
                        leaf(Parts::List {
                            lists: lists.clone(),
                            field: index,
                            kind,
                            item_nullable: item.is_nullable(),
                        })
                    };
                    match kind {
                        ItemLeaf::MapKeys { values_nullable } => {
                            leaves.push(list_leaf(kind));
                            leaves.push(list_leaf(ItemLeaf::MapValues { values_nullable }));
                        }
                        kind => leaves.push(list_leaf(kind)),
                    }
                }
                Some(leaves)
            }
            _ => {
                let maps: Vec<&MapArray> = parts.iter().map(|a| a.as_map()).collect();
                let map_nulls: Vec<_> = maps.iter().map(|m| m.nulls()).collect();
                let entry_nulls: Vec<_> = maps.iter().map(|m| m.entries().nulls()).collect();
                let ok = null_count(&map_nulls, runs.iter().copied()) == 0
                    && null_count(&entry_nulls, entry_runs(&maps, runs)) == 0;
                ok.then(|| {
                    vec![
                        leaf(Parts::MapKeys(maps.clone())),
                        leaf(Parts::MapValues(maps)),
                    ]
                })
            }
        }
    }

    fn len(&self) -> usize {
        self.runs.iter().map(|r| r.len).sum()
    }

    /// Nulls among the leaf's values.
    fn null_count(&self) -> usize {
        match &self.parts {
            Parts::Flat(arrays) => {
                let nulls: Vec<_> = arrays.iter().map(|a| a.nulls()).collect();
                null_count(&nulls, self.runs.iter().copied())
            }
            Parts::MapKeys(maps) | Parts::MapValues(maps) => {
                let nulls: Vec<_> = maps.iter().map(|&m| self.map_strings(m).nulls()).collect();
                null_count(&nulls, entry_runs(maps, self.runs))
            }
            // Not needed: a list leaf's levels follow from its schema alone (`fits`).
            Parts::List { .. } => 0,
        }
    }

    /// The keys or the values of `map`, whichever this leaf is.
    fn map_strings(&self, map: &'a MapArray) -> &'a StringArray {
        match self.parts {
            Parts::MapKeys(_) => map.keys(),
            _ => map.values(),
        }
        .as_string::<i32>()
    }

    /// Whether `descr` is the column this leaf fills, with the levels `intern` writes.
    fn fits(&self, descr: &ColumnDescPtr) -> bool {
        let (rep, def) = (descr.max_rep_level(), descr.max_def_level());
        match self.parts {
            Parts::Flat(_) => rep == 0 && (def == 1 || (def == 0 && self.null_count() == 0)),
            Parts::MapKeys(_) => rep == 1 && def == 1 && self.null_count() == 0,
            Parts::MapValues(_) => rep == 1 && (def == 2 || (def == 1 && self.null_count() == 0)),
            Parts::List {
                kind,
                item_nullable,
                ..
            } => {
                let levels = ListLevels::new(kind, item_nullable);
                let physical = match kind {
                    ItemLeaf::Int64 => parquet::basic::Type::INT64,
                    _ => parquet::basic::Type::BYTE_ARRAY,
                };
                (rep, def) == (levels.max_rep, i16::from(levels.max_def))
                    && descr.physical_type() == physical
            }
        }
    }
}

/// The runs of map entries that the map rows of `runs` hold.
fn entry_runs<'b>(maps: &'b [&MapArray], runs: &'b [Run]) -> impl Iterator<Item = Run> + 'b {
    runs.iter().map(|r| {
        let offsets = maps[r.batch].value_offsets();
        let (first, last) = (offsets[r.start] as usize, offsets[r.start + r.len] as usize);
        Run {
            batch: r.batch,
            start: first,
            len: last - first,
        }
    })
}

/// A dictionary being built: each distinct value once, in first-seen order, and an index
/// from value to id (up to the dictionary page limit: see `limit`).
///
/// The index is an open-addressing table (linear probing, at most half full) of a value's
/// 32-bit hash and id, rather than a `HashMap<&[u8], u32>`: a lookup compares bytes only
/// with a value of the same hash (nearly always the value sought), and growing moves
/// slots by their stored hash without hashing a value again. The hash is [`hash`], a few
/// multiplies for the short strings of telemetry where ahash's fallback spends about as
/// much again setting up and finishing.
///
/// The values themselves are copied, as they are first seen, into the PLAIN dictionary
/// page that the chunk will write (`page`). A lookup that finds its value then compares it
/// with that copy, in one compact buffer, rather than with the value's first occurrence,
/// which may be anywhere in the flush's input (a column of a few hundred thousand distinct
/// values has its first occurrences spread over tens of megabytes).
struct Dictionary<'a> {
    /// A power of two of slots, each 0 (empty) or `hash << 32 | (id + 1)`.
    slots: Vec<u64>,
    /// Random per dictionary, so that values cannot be chosen to collide.
    seed: u64,
    /// The PLAIN dictionary page: each distinct value's length (4 bytes, little-endian)
    /// and bytes, in id order.
    page: Vec<u8>,
    /// Where each id's length starts in `page`. At most `limit` (a value is added only
    /// while the page is within it), so a `u32`: `limit` is capped at `u32::MAX`.
    starts: Vec<u32>,
    /// The values added once the page has passed `limit`, their ids following the page's.
    beyond: Vec<&'a [u8]>,
    /// The writer's dictionary page limit. A chunk whose dictionary passes it is written
    /// PLAIN, which reads values, not ids: from then on each value looked up is added
    /// to `beyond` as it comes, with no hash and no search (so it may repeat a value). A
    /// column of nearly unique values that has a dictionary (trace ids of single-span
    /// traces, log bodies with ids in them) passes it part of the way into a row group.
    limit: usize,
}

impl<'a> Dictionary<'a> {
    /// Slots of a new dictionary: most chunks' columns have a handful of values.
    const INITIAL_SLOTS: usize = 16;

    fn new(limit: usize) -> Self {
        Self::with_seed(std::hash::RandomState::new().hash_one(0u64), limit)
    }

    fn with_seed(seed: u64, limit: usize) -> Self {
        Dictionary {
            slots: vec![0; Self::INITIAL_SLOTS],
            seed,
            page: Vec::new(),
            starts: Vec::new(),
            beyond: Vec::new(),
            // A page is far smaller than 4 GiB in practice (its size in Parquet's page
            // header is an `i32`); the cap keeps `starts` in 32 bits whatever the limit.
            limit: limit.min(u32::MAX as usize),
        }
    }

    /// How many ids the dictionary has given.
    fn len(&self) -> usize {
        self.starts.len() + self.beyond.len()
    }

    /// Whether the page has passed the limit, so that the chunk is written PLAIN.
    fn passed_limit(&self) -> bool {
        self.page.len() > self.limit
    }

    /// The value of `id`.
    fn value(&self, id: u32) -> &[u8] {
        match self.starts.get(id as usize) {
            Some(&start) => self.entry(start),
            None => self.beyond[id as usize - self.starts.len()],
        }
    }

    /// Each id's value, in id order.
    fn values(&self) -> impl Iterator<Item = &[u8]> + Clone + '_ {
        (self.starts.iter().map(|&start| self.entry(start))).chain(self.beyond.iter().copied())
    }

    /// The value whose length starts at `start` of the page.
    #[inline]
    fn entry(&self, start: u32) -> &[u8] {
        let start = start as usize;
        let len = self.page[start..]
            .first_chunk::<4>()
            .map_or(0, |len| u32::from_le_bytes(*len) as usize);
        &self.page[start + 4..start + 4 + len]
    }

    /// The id of `value`, added to the dictionary if it is not in it yet (or, once the
    /// page has passed the limit, added).
    fn intern(&mut self, value: &'a [u8]) -> u32 {
        if self.passed_limit() {
            return self.append(value);
        }
        let hash = hash(value, self.seed);
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                break;
            }
            let id = (slot as u32).wrapping_sub(1);
            if (slot >> 32) as u32 == hash
                && same_bytes(self.entry(self.starts[id as usize]), value)
            {
                return id;
            }
            at = (at + 1) & mask;
        }
        let id = self.starts.len() as u32;
        self.starts.push(self.page.len() as u32);
        push_plain(&mut self.page, value);
        self.slots[at] = (u64::from(hash) << 32) | u64::from(id + 1);
        if 2 * self.starts.len() > self.slots.len() {
            self.grow();
        }
        id
    }

    /// `value` as a new id, past the limit. Out of line, as [`Dictionary::grow`].
    #[cold]
    #[inline(never)]
    fn append(&mut self, value: &'a [u8]) -> u32 {
        self.beyond_push(value)
    }

    /// `value` as a new id, past the limit, inline: for a chunk known to be written PLAIN.
    #[inline]
    fn beyond_push(&mut self, value: &'a [u8]) -> u32 {
        self.beyond.push(value);
        (self.len() - 1) as u32
    }

    /// Gives the dictionary up, so that the chunk is written PLAIN, as when its page passes
    /// the limit; `more` values are expected (each added with [`Dictionary::beyond_push`]).
    /// Only once it holds a value, so that its page has passed a limit of 0.
    fn give_up(&mut self, more: usize) {
        debug_assert!(!self.page.is_empty());
        self.limit = 0;
        self.beyond.reserve(more);
    }

    /// Doubles the table, each slot moved to where its stored hash leads in the new one.
    /// Out of line: rare, and it would crowd the lookup's registers.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let grown = vec![0; 2 * self.slots.len()];
        let old = std::mem::replace(&mut self.slots, grown);
        let mask = self.slots.len() - 1;
        for slot in old.into_iter().filter(|&slot| slot != 0) {
            let mut at = (slot >> 32) as usize & mask;
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = slot;
        }
    }
}

/// A 32-bit hash of `bytes` keyed by `seed`: each 8-byte word (the last one overlapping
/// the one before it when the length is not a multiple of 8; a shorter value as one
/// word) is mixed in by a 64x64->128-bit multiply whose halves are folded together, so
/// that every bit of the result, the low ones that pick a slot included, depends on every
/// bit of the input.
fn hash(bytes: &[u8], seed: u64) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |h: u64, word: u64| {
        let product = u128::from(h ^ word) * u128::from(K);
        (product as u64) ^ ((product >> 64) as u64)
    };
    let n = bytes.len();
    let mut h = seed ^ (n as u64).wrapping_mul(K);
    match bytes.last_chunk::<8>() {
        Some(last) => {
            // The whole words before the last one (the last byte is left out so that a
            // length that is a multiple of 8 does not read its last word twice).
            let (words, _) = bytes[..n - 1].as_chunks::<8>();
            for word in words {
                h = mix(h, u64::from_le_bytes(*word));
            }
            h = mix(h, u64::from_le_bytes(*last));
        }
        None => {
            let word = match (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
                (Some(first), Some(last)) => {
                    u64::from(u32::from_le_bytes(*first))
                        | (u64::from(u32::from_le_bytes(*last)) << 32)
                }
                _ => bytes
                    .iter()
                    .enumerate()
                    .fold(0, |w, (k, &b)| w | (u64::from(b) << (8 * k))),
            };
            h = mix(h, word);
        }
    }
    h as u32
}

/// The value and id at each position of the previous row (a flat column's rows have one
/// position), compared with a value before the dictionary is searched for it.
struct Previous<'a>(Vec<(&'a [u8], u32)>);

impl<'a> Previous<'a> {
    /// Positions within a row remembered; attribute maps longer than this hash their later
    /// entries.
    const POSITIONS: usize = 64;

    /// The id of `value`, found at position `pos` of a row.
    #[inline]
    fn id_of(&mut self, dictionary: &mut Dictionary<'a>, pos: usize, value: &'a [u8]) -> u32 {
        match self.0.get(pos) {
            Some(&(last, id)) if same_bytes(last, value) => id,
            _ => self.miss(dictionary, pos, value),
        }
    }

    /// Out of line, so that the common case above stays small enough to be inlined.
    #[inline(never)]
    fn miss(&mut self, dictionary: &mut Dictionary<'a>, pos: usize, value: &'a [u8]) -> u32 {
        let id = dictionary.intern(value);
        if pos < self.0.len() {
            self.0[pos] = (value, id);
        } else if pos < Self::POSITIONS {
            self.0.push((value, id));
        }
        id
    }
}

/// `a == b`, inline for the short strings of telemetry: `==` calls `memcmp`, whose call
/// and size dispatch cost more than comparing a value of up to 16 bytes as two words, or
/// one of up to 32 (a hex trace id, most attribute keys, a host name) as two 16-byte
/// blocks.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // Two words (blocks) that cover the value, overlapping when it is shorter than 16 or 8
    // (32) bytes.
    match (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        (Some(a0), Some(b0)) if a.len() <= 16 => {
            a0 == b0 && a.last_chunk::<8>() == b.last_chunk::<8>()
        }
        (Some(_), Some(_)) if a.len() <= 32 => {
            a.first_chunk::<16>() == b.first_chunk::<16>()
                && a.last_chunk::<16>() == b.last_chunk::<16>()
        }
        (Some(_), Some(_)) => a == b,
        _ => match (a.first_chunk::<4>(), b.first_chunk::<4>()) {
            (Some(a0), Some(b0)) => a0 == b0 && a.last_chunk::<4>() == b.last_chunk::<4>(),
            _ => a == b,
        },
    }
}

/// A leaf's levels and dictionary indices, for the whole chunk.
struct Interned<'a> {
    dictionary: Dictionary<'a>,
    /// Dictionary index of each non-null value, in order.
    ids: Vec<u32>,
    /// Definition levels, one per level slot; empty when the column has none.
    def: Vec<u8>,
    /// Repetition levels; empty when the column has none.
    rep: Vec<u8>,
    /// For each row, where its level slots and values end.
    row_ends: Vec<(u32, u32)>,
    nulls: u64,
}

impl Interned<'_> {
    /// The end of the page of rows from `first`: up to `row_limit` rows, fewer if their
    /// values would pass `byte_limit` (always at least one row). Values take `id_bytes`
    /// each in a dictionary page, or their length and bytes when `None` (PLAIN).
    fn page_end(
        &self,
        first: usize,
        row_limit: usize,
        byte_limit: usize,
        id_bytes: Option<usize>,
    ) -> usize {
        let last = (first + row_limit).min(self.row_ends.len());
        let values_start = match first {
            0 => 0,
            _ => self.row_ends[first - 1].1 as usize,
        };
        match id_bytes {
            Some(id_bytes) => {
                // The bytes of the rows from `first` to a row grow with the row: the rows
                // that fit are a prefix, found by bisection rather than row by row.
                let fits = |&(_, values_end): &(u32, u32)| {
                    (values_end as usize - values_start) * id_bytes <= byte_limit
                };
                first + 1 + self.row_ends[first + 1..last].partition_point(fits)
            }
            None => {
                let (mut bytes, mut values_end) = (0usize, values_start);
                for end in first..last {
                    let ids = &self.ids[values_end..self.row_ends[end].1 as usize];
                    values_end += ids.len();
                    bytes += ids
                        .iter()
                        .map(|&id| 4 + self.dictionary.value(id).len())
                        .sum::<usize>();
                    if bytes > byte_limit && end > first {
                        return end;
                    }
                }
                last
            }
        }
    }
}

/// Where the first row of a group read into an [`Interned`] is: its level slots and its
/// ids (ranges), and how many of its slots are null (an empty map, null values).
#[derive(Clone, Copy)]
struct FirstRow {
    levels: (u32, u32),
    ids: (u32, u32),
    nulls: u32,
}

impl FirstRow {
    /// Its row again, at level slot `level` of `out` (returned past it): its level slots
    /// (row start, empty map, null values) and ids as they are, no byte read. Slots start
    /// as defined entries that continue a row, so only a row with nulls needs its
    /// definition levels copied.
    fn repeat(&self, out: &mut Interned<'_>, level: usize) -> usize {
        let levels = self.levels.0 as usize..self.levels.1 as usize;
        out.rep[level] = 0;
        if self.nulls > 0 {
            out.def.copy_within(levels.clone(), level);
        }
        out.ids
            .extend_from_within(self.ids.0 as usize..self.ids.1 as usize);
        out.nulls += u64::from(self.nulls);
        let level = level + levels.len();
        out.row_ends.push((level as u32, out.ids.len() as u32));
        level
    }
}

/// For each part, a slot per group (none for a part without groups), all empty.
fn first_of_groups<T: Clone>(groups: &[Option<Groups<'_>>]) -> Vec<Vec<Option<T>>> {
    groups
        .iter()
        .map(|g| vec![None; g.map_or(0, |g| g.count)])
        .collect()
}

/// The rows of `map` numbered by their keys: rows with the same keys in the same order
/// share a number, and the count of numbers. Found in the map's own row order, where a
/// row's keys lie right after the previous row's, by comparing each row with the last
/// [`KEY_LISTS`] distinct lists seen (most recently seen first); a list seen longer ago
/// than that gets a new number, which costs [`intern`] one more row read as bytes.
/// In sorted order, where each row is somewhere else in memory, `intern` then compares
/// a row's number instead of its keys' bytes.
fn key_lists(map: &MapArray) -> (Vec<u32>, usize) {
    let keys = map.keys().as_string::<i32>();
    let rows = map.value_offsets();
    let mut of_row = Vec::with_capacity(map.len());
    // The entries of the last distinct lists and their numbers, most recently seen first.
    let mut recent: Vec<((usize, usize), u32)> = Vec::with_capacity(KEY_LISTS);
    let mut count = 0u32;
    for row in rows.windows(2) {
        let entries = (row[0] as usize, row[1] as usize);
        let number = match recent
            .iter()
            .position(|&(e, _)| same_strings(keys, e, keys, entries))
        {
            Some(k) => {
                recent[..=k].rotate_right(1);
                recent[0].1
            }
            None => {
                if recent.len() == KEY_LISTS {
                    recent.pop();
                }
                recent.insert(0, (entries, count));
                count += 1;
                count - 1
            }
        };
        of_row.push(number);
    }
    (of_row, count as usize)
}

/// Whether the strings `a` of `x` and `b` of `y` (ranges of values, the end excluded) are
/// the same strings cut at the same places: offsets that differ by one shift, and the same
/// bytes. (A null's bytes are empty, as an empty string's: the caller rules nulls out.)
#[inline]
fn same_strings(x: &StringArray, a: (usize, usize), y: &StringArray, b: (usize, usize)) -> bool {
    let (p, q) = (&x.value_offsets()[a.0..=a.1], &y.value_offsets()[b.0..=b.1]);
    p.len() == q.len() && {
        let shift = q[0].wrapping_sub(p[0]);
        p.iter().zip(q).all(|(&s, &t)| t.wrapping_sub(s) == shift)
            && x.value_data()[p[0] as usize..p[p.len() - 1] as usize]
                == y.value_data()[q[0] as usize..q[q.len() - 1] as usize]
    }
}

/// Distinct lists of keys [`key_lists`] remembers: instrumented spans of one kind carry a
/// few lists (an HTTP server span's, with or without an optional attribute or two).
const KEY_LISTS: usize = 4;

/// Map values given ids before a chunk's distinct share is looked at ([`SPARSE_SHARE`]),
/// at the first row to start past them.
const SPARSE_PROBE: usize = 8192;

/// A chunk of map values of which more than one in this many is distinct at the probe
/// ([`SPARSE_PROBE`]) is written PLAIN, its dictionary given up: attribute values that mix
/// a few near-unique ones (URLs, client addresses, timings) with repeated ones, of which a
/// dictionary would hold ~150K a flush, each looked up in a table no cache holds (those
/// lookups were the flush's dearest function, a fifth of the random payload's flush).
/// PLAIN, zstd packs them about as small: the 8192-span payload's values are 22.7%
/// distinct at the probe (13% over a flush), and their chunk of a flush of 12 requests
/// took 15.3 instead of 14.9 B/span (53.1 B/span in all instead of 52.7), the flush ~4%
/// less time (benches/README.md, lake). Realistic traces' attribute values (0.5% distinct
/// at the probe) keep their dictionary, as do map keys, which repeat row after row.
const SPARSE_SHARE: usize = 8;

/// The chunk's dictionary, levels and ids. A row of a part whose group has been read
/// before (`StringLeaf::groups`, or for the keys of a map without those, [`key_lists`])
/// takes that row's ids and levels as they are, with no byte compared and no hash; any
/// other value is first compared with the value at the same position of the previous
/// row (`Previous`), and only a miss is hashed. Either way each value gets the id of its
/// first occurrence, so the ids are the same as hashing every value would give: a
/// group's first row is always read.
fn intern<'a>(leaf: &StringLeaf<'a>, max_def: i16, limit: usize) -> Interned<'a> {
    if let Parts::List {
        lists,
        field,
        kind,
        item_nullable,
    } = &leaf.parts
    {
        let levels = ListLevels::new(*kind, *item_nullable);
        return intern_list(lists, leaf.runs, *field, levels, limit);
    }
    let rows = leaf.len();
    let mut out = Interned {
        dictionary: Dictionary::new(limit),
        ids: Vec::with_capacity(rows),
        def: Vec::new(),
        rep: Vec::new(),
        row_ends: Vec::with_capacity(rows),
        nulls: 0,
    };
    let mut previous = Previous(Vec::new());
    match &leaf.parts {
        Parts::Flat(arrays) => {
            // One slot a row, defined unless it is null (one fill, not a push a row).
            if max_def > 0 {
                out.def = vec![1; rows];
            }
            let parts = flat_parts(arrays);
            // Per part with groups, the id of each group's value once a row of it has been
            // read: `Some(None)` for a null.
            let mut seen = first_of_groups(leaf.groups);
            for (r, run) in leaf.runs.iter().enumerate() {
                // Prefetched in two stages, the second reading what the first brought in:
                // a run's offsets, then its first value's bytes; for a part with groups,
                // whose rows read only their group number (a group's first row its value
                // too), that number alone.
                if let Some(a) = leaf.runs.get(r + 2 * AHEAD) {
                    match leaf.groups.get(a.batch) {
                        Some(Some(g)) => prefetch(g.of_row, a.start),
                        _ => prefetch(parts[a.batch].1, a.start),
                    }
                }
                if let Some(b) = leaf.runs.get(r + AHEAD) {
                    if !matches!(leaf.groups.get(b.batch), Some(Some(_))) {
                        let (data, offsets, _) = parts[b.batch];
                        prefetch(data, offsets[b.start] as usize);
                    }
                }
                let (data, offsets, nulls) = parts[run.batch];
                if let Some(Some(groups)) = leaf.groups.get(run.batch) {
                    let seen = &mut seen[run.batch];
                    for i in run.start..run.start + run.len {
                        let group = groups.of_row[i] as usize;
                        let id = match seen[group] {
                            Some(id) => id,
                            None => {
                                let value = &data[offsets[i] as usize..offsets[i + 1] as usize];
                                let id = match nulls.is_some_and(|n| n.is_null(i)) {
                                    true => None,
                                    false => Some(previous.id_of(&mut out.dictionary, 0, value)),
                                };
                                seen[group] = Some(id);
                                id
                            }
                        };
                        let row = out.row_ends.len();
                        match id {
                            Some(id) => out.ids.push(id),
                            None => {
                                out.def[row] = 0;
                                out.nulls += 1;
                            }
                        }
                        out.row_ends.push(((row + 1) as u32, out.ids.len() as u32));
                    }
                    continue;
                }
                let offsets = &offsets[run.start..=run.start + run.len];
                if nulls.is_none() {
                    // The common case, without a null check a row (other parts may have
                    // nulls: a row's slot is its position, not its value's).
                    for ends in offsets.windows(2) {
                        let value = &data[ends[0] as usize..ends[1] as usize];
                        let id = previous.id_of(&mut out.dictionary, 0, value);
                        out.ids.push(id);
                        let row = out.row_ends.len();
                        out.row_ends.push(((row + 1) as u32, out.ids.len() as u32));
                    }
                    continue;
                }
                for (i, ends) in (run.start..).zip(offsets.windows(2)) {
                    let row = out.row_ends.len();
                    if nulls.is_some_and(|n| n.is_null(i)) {
                        out.def[row] = 0;
                        out.nulls += 1;
                    } else {
                        let value = &data[ends[0] as usize..ends[1] as usize];
                        let id = previous.id_of(&mut out.dictionary, 0, value);
                        out.ids.push(id);
                    }
                    out.row_ends.push(((row + 1) as u32, out.ids.len() as u32));
                }
            }
        }
        Parts::MapKeys(maps) | Parts::MapValues(maps) => {
            let strings: Vec<&StringArray> = maps.iter().map(|&m| leaf.map_strings(m)).collect();
            let entries: usize = entry_runs(maps, leaf.runs).map(|r| r.len).sum();
            let max = max_def as u8;
            out.ids.reserve(entries);
            // A slot per entry and per empty map, so at most `entries + rows`. Each starts
            // as a defined entry that continues its row; row starts, empty maps and null
            // values are written over (one fill, not a push a slot) and the unused end is
            // cut off.
            out.rep = vec![1; entries + rows];
            out.def = vec![max; entries + rows];
            let mut level = 0;
            // The previous row: its part, its entries and the range of its ids.
            let mut last: Option<(usize, usize, usize, usize)> = None;
            // Keys that no resource or scope groups: grouped by their list of keys.
            let lists: Vec<(Vec<u32>, usize)> = match (&leaf.parts, leaf.groups.is_empty()) {
                (Parts::MapKeys(_), true) => maps.iter().map(|&m| key_lists(m)).collect(),
                _ => Vec::new(),
            };
            let listed: Vec<Option<Groups<'_>>> = lists
                .iter()
                .map(|(of_row, count)| {
                    Some(Groups {
                        of_row,
                        count: *count,
                    })
                })
                .collect();
            let groups = match listed.is_empty() {
                true => leaf.groups,
                false => &listed[..],
            };
            // Per part with groups, where the first row read of each group is in `out`.
            let mut seen = first_of_groups::<FirstRow>(groups);
            // Run `r + AHEAD` and beyond, prefetched in three stages, each reading what the
            // one before brought in: the map's offsets and group numbers, then its entries'
            // string offsets, then their first two lines of bytes. Not the strings of a
            // part with groups: only a group's first row reads them.
            let grouped = |batch: usize| groups.get(batch).copied().flatten().is_some();
            let ahead = |r: usize| {
                if let Some(a) = leaf.runs.get(r + 3 * AHEAD) {
                    prefetch(maps[a.batch].value_offsets(), a.start);
                    if let Some(g) = groups.get(a.batch).copied().flatten() {
                        prefetch(g.of_row, a.start);
                    }
                }
                if let Some(b) = leaf.runs.get(r + 2 * AHEAD).filter(|b| !grouped(b.batch)) {
                    let at = maps[b.batch].value_offsets()[b.start] as usize;
                    prefetch(strings[b.batch].value_offsets(), at);
                }
                if let Some(c) = leaf.runs.get(r + AHEAD).filter(|c| !grouped(c.batch)) {
                    let at = maps[c.batch].value_offsets()[c.start] as usize;
                    let offsets = strings[c.batch].value_offsets();
                    if let Some(&o) = offsets.get(at) {
                        prefetch(strings[c.batch].value_data(), o as usize);
                        prefetch(strings[c.batch].value_data(), o as usize + 64);
                    }
                }
            };
            // Map values (not keys) whose distinct share of the first values read says the
            // chunk is better written PLAIN ([`SPARSE_SHARE`]): looked at once this many
            // have ids, the dictionary given up if so.
            let mut probe_at = match leaf.parts {
                Parts::MapValues(_) if entries > SPARSE_PROBE => SPARSE_PROBE,
                _ => usize::MAX,
            };
            let mut next = 0;
            while let Some(run) = leaf.runs.get(next) {
                let r = next;
                next += 1;
                // Runs that repeat the one before (a column kept once per resource reads
                // a resource's row again for each of its rows: `parquet_files`'
                // `SortedColumn::ByResource`): the row again, as many times, with nothing
                // to prefetch or read.
                if r > 0 && leaf.runs[r - 1] == *run && run.len == 1 {
                    let group = groups.get(run.batch).copied().flatten();
                    let group = group.map(|g| g.of_row[run.start] as usize);
                    if let Some(first) = group.and_then(|g| seen[run.batch][g]) {
                        let times = leaf.runs[r..].iter().take_while(|&x| x == run).count();
                        for _ in 0..times {
                            level = first.repeat(&mut out, level);
                        }
                        next = r + times;
                        continue;
                    }
                }
                ahead(r);
                let part = run.batch;
                let values = strings[part];
                let (bytes, starts) = (values.value_data(), values.value_offsets());
                let nulls = values.nulls().filter(|n| n.null_count() > 0);
                let offsets = &maps[part].value_offsets()[run.start..=run.start + run.len];
                let part_groups = groups.get(part).copied().flatten();
                for (i, row) in (run.start..).zip(offsets.windows(2)) {
                    if out.ids.len() >= probe_at {
                        probe_at = usize::MAX;
                        if out.dictionary.len() * SPARSE_SHARE > out.ids.len() {
                            out.dictionary.give_up(entries - out.ids.len());
                        }
                    }
                    // Once the dictionary is given up (or past its limit), the chunk is
                    // written PLAIN: each value is added as it comes, with no comparison
                    // or hash.
                    let plain = out.dictionary.passed_limit();
                    let (start, end) = (row[0] as usize, row[1] as usize);
                    let group = part_groups.map(|g| g.of_row[i] as usize);
                    if let Some(first) = group.and_then(|g| seen[part][g]) {
                        // The group's first row again.
                        let ids_start = out.ids.len();
                        level = first.repeat(&mut out, level);
                        last = Some((part, start, end, ids_start));
                        continue;
                    }
                    let (level_start, ids_start, nulls_before) = (level, out.ids.len(), out.nulls);
                    let mut remember = |out: &Interned<'a>, level: usize| {
                        if let Some(g) = group {
                            seen[part][g] = Some(FirstRow {
                                levels: (level_start as u32, level as u32),
                                ids: (ids_start as u32, out.ids.len() as u32),
                                nulls: (out.nulls - nulls_before) as u32,
                            });
                        }
                    };
                    out.rep[level] = 0;
                    if start == end {
                        // An empty map: one slot, defined only up to the map itself.
                        out.def[level] = 0;
                        out.nulls += 1;
                        level += 1;
                        remember(&out, level);
                        out.row_ends.push((level as u32, out.ids.len() as u32));
                        continue;
                    }
                    let n = end - start;
                    // A row whose strings are the previous row's, byte for byte and cut at
                    // the same places, takes the previous row's ids as they are. The two
                    // rows may come from different parts; nulls (whose bytes are empty,
                    // as an empty string's) rule the shortcut out in either. Not in a chunk
                    // written PLAIN: its values' rows seldom repeat, and taking them as
                    // they come costs less than comparing them first.
                    let same = !plain
                        && last.is_some_and(|(last_part, ls, le, _)| {
                            let other = strings[last_part];
                            values.null_count() == 0
                                && other.null_count() == 0
                                && same_strings(other, (ls, le), values, (start, end))
                        });
                    match (same, last) {
                        (true, Some((_, _, _, from))) => out.ids.extend_from_within(from..from + n),
                        _ => {
                            for (k, j) in (start..end).enumerate() {
                                if nulls.is_some_and(|nulls| nulls.is_null(j)) {
                                    out.def[level + k] = max - 1;
                                    out.nulls += 1;
                                } else {
                                    let value = &bytes[starts[j] as usize..starts[j + 1] as usize];
                                    let id = match plain {
                                        true => out.dictionary.beyond_push(value),
                                        false => previous.id_of(&mut out.dictionary, k, value),
                                    };
                                    out.ids.push(id);
                                }
                            }
                        }
                    }
                    level += n;
                    remember(&out, level);
                    last = Some((part, start, end, ids_start));
                    out.row_ends.push((level as u32, out.ids.len() as u32));
                }
            }
            out.rep.truncate(level);
            out.def.truncate(level);
        }
        // Interned above.
        Parts::List { .. } => {}
    }
    out
}

/// The levels of a list leaf ([`Parts::List`]), from the schema alone. The list is
/// required, so it has no level of its own: definition level 0 is an empty list, `item`
/// an item there (1, or 2 when items are nullable, 1 being a null item). A field of the
/// item is `item`, or `item + 1` when it is nullable and has a value; a map field is
/// `item` when empty, `item + 1` for an entry's key, and its value one more when values
/// are nullable and it has one. Repetition level 0 starts a row, 1 an item, 2 a map entry
/// after the item's first.
#[derive(Clone, Copy)]
struct ListLevels {
    kind: ItemLeaf,
    item: u8,
    max_def: u8,
    max_rep: i16,
    /// Whether the leaf is a map's keys or values (one slot per entry).
    map: bool,
    /// Whether a slot with no value (null) is possible for an item that is there.
    nullable: bool,
}

impl ListLevels {
    fn new(kind: ItemLeaf, item_nullable: bool) -> Self {
        let item = 1 + u8::from(item_nullable);
        let (max_def, map, nullable) = match kind {
            ItemLeaf::Strings { nullable } => (item + u8::from(nullable), false, nullable),
            ItemLeaf::Int64 => (item, false, false),
            ItemLeaf::MapKeys { .. } => (item + 1, true, false),
            ItemLeaf::MapValues { values_nullable } => {
                (item + 1 + u8::from(values_nullable), true, values_nullable)
            }
        };
        ListLevels {
            kind,
            item,
            max_def,
            max_rep: if map { 2 } else { 1 },
            map,
            nullable,
        }
    }
}

/// The levels of a list leaf's rows, as [`Interned`] holds them.
#[derive(Default)]
struct LeafLevels {
    def: Vec<u8>,
    rep: Vec<u8>,
    row_ends: Vec<(u32, u32)>,
    nulls: u64,
}

/// Walks the rows of a list leaf in order, pushing each slot's levels into `out` and, for
/// each slot with a value, calling `value(part, index, position)`: `index` the value's
/// place in the field's array (for a map, in its entries' arrays), `position` its place
/// in its map (0 for other fields).
fn walk_list<'a>(
    lists: &[ListPart<'a>],
    runs: &[Run],
    field: usize,
    levels: ListLevels,
    mut value: impl FnMut(usize, usize, usize),
) -> LeafLevels {
    // A slot a row at least (an empty list's): sized once, where growing them a push at a
    // time reallocated each vector some 17 times over a flush.
    let rows: usize = runs.iter().map(|r| r.len).sum();
    let mut out = LeafLevels {
        def: Vec::with_capacity(rows),
        rep: Vec::with_capacity(rows),
        row_ends: Vec::with_capacity(rows),
        ..LeafLevels::default()
    };
    let mut values = 0u32;
    let (item, max) = (levels.item, levels.max_def);
    // Per part, looked up once rather than per run: the map's entry offsets (a map leaf),
    // and the nulls of the leaf's own values when it can have any.
    let per_part: Vec<_> = lists
        .iter()
        .map(|l| {
            let entries = levels
                .map
                .then(|| l.items.column(field).as_map().value_offsets());
            let nulls = l.leaf_values(field, levels.kind).nulls();
            (
                entries,
                nulls.filter(|n| levels.nullable && n.null_count() > 0),
            )
        })
        .collect();
    for run in runs {
        let part = &lists[run.batch];
        let (entries, value_nulls) = per_part[run.batch];
        if part.offsets[run.start] == part.offsets[run.start + run.len] {
            // A run of empty lists (most spans have no events, nearly all no links): a
            // slot each, defined and repeated at level 0, written at once.
            let first = out.def.len();
            out.def.resize(first + run.len, 0);
            out.rep.resize(first + run.len, 0);
            out.nulls += run.len as u64;
            let ends = (first + 1..=first + run.len).map(|end| (end as u32, values));
            out.row_ends.extend(ends);
            continue;
        }
        for i in run.start..run.start + run.len {
            let (first, last) = (part.offsets[i] as usize, part.offsets[i + 1] as usize);
            if first == last {
                out.def.push(0);
                out.rep.push(0);
                out.nulls += 1;
            }
            for j in first..last {
                let rep = u8::from(j > first);
                if part.item_nulls.is_some_and(|n| n.is_null(j)) {
                    out.def.push(item - 1);
                    out.rep.push(rep);
                    out.nulls += 1;
                    continue;
                }
                let (start, end) = match entries {
                    Some(offsets) => (offsets[j] as usize, offsets[j + 1] as usize),
                    None => (j, j + 1),
                };
                if start == end {
                    // An empty map.
                    out.def.push(item);
                    out.rep.push(rep);
                    out.nulls += 1;
                }
                for (k, e) in (start..end).enumerate() {
                    out.rep.push(if k == 0 { rep } else { 2 });
                    if value_nulls.is_some_and(|n| n.is_null(e)) {
                        out.def.push(max - 1);
                        out.nulls += 1;
                    } else {
                        out.def.push(max);
                        value(run.batch, e, k);
                        values += 1;
                    }
                }
            }
            out.row_ends.push((out.def.len() as u32, values));
        }
    }
    out
}

/// [`intern`] of a string leaf of a list's items.
fn intern_list<'a>(
    lists: &[ListPart<'a>],
    runs: &[Run],
    field: usize,
    levels: ListLevels,
    limit: usize,
) -> Interned<'a> {
    let strings: Vec<&'a StringArray> = lists
        .iter()
        .map(|l| l.leaf_values(field, levels.kind).as_string::<i32>())
        .collect();
    let mut dictionary = Dictionary::new(limit);
    let mut previous = Previous(Vec::new());
    let mut ids = Vec::new();
    let walked = walk_list(lists, runs, field, levels, |part, index, position| {
        ids.push(previous.id_of(
            &mut dictionary,
            position,
            strings[part].value(index).as_bytes(),
        ));
    });
    Interned {
        dictionary,
        ids,
        def: walked.def,
        rep: walked.rep,
        row_ends: walked.row_ends,
        nulls: walked.nulls,
    }
}

/// What a run of a flat leaf reads of its part: bytes, offsets, and nulls if it has any.
type FlatPart<'a> = (&'a [u8], &'a [i32], Option<&'a NullBuffer>);

/// Each part's [`FlatPart`], looked up once per part rather than per run (after the sort a
/// run is a row or two).
fn flat_parts<'a>(arrays: &[&'a StringArray]) -> Vec<FlatPart<'a>> {
    arrays
        .iter()
        .map(|&a| {
            let nulls = a.nulls().filter(|n| n.null_count() > 0);
            (a.value_data(), a.value_offsets(), nulls)
        })
        .collect()
}

/// A column chunk's pages, written into memory as they come, and what its metadata says
/// of them: their sizes, where the dictionary page is, and where each data page starts
/// and which row it starts with (the offset index).
struct ChunkPages {
    sink: TrackedWrite<Vec<u8>>,
    compressed: i64,
    uncompressed: i64,
    dictionary_page_offset: Option<i64>,
    locations: Vec<PageLocation>,
}

impl ChunkPages {
    fn new() -> Self {
        ChunkPages {
            sink: TrackedWrite::new(Vec::new()),
            compressed: 0,
            uncompressed: 0,
            dictionary_page_offset: None,
            locations: Vec::new(),
        }
    }

    /// Appends `page`, `uncompressed` bytes before compression: a data page whose rows
    /// start at `first_row`, or (`None`) the dictionary page.
    fn write(&mut self, page: Page, uncompressed: usize, first_row: Option<usize>) -> Result<()> {
        let mut writer = SerializedPageWriter::new(&mut self.sink);
        let spec = writer.write_page(CompressedPage::new(page, uncompressed))?;
        writer.close()?;
        self.compressed += spec.compressed_size as i64;
        self.uncompressed += spec.uncompressed_size as i64;
        match first_row {
            Some(row) => self.locations.push(PageLocation {
                offset: spec.offset as i64,
                compressed_page_size: spec.compressed_size as i32,
                first_row_index: row as i64,
            }),
            None => self.dictionary_page_offset = Some(spec.offset as i64),
        }
        Ok(())
    }

    /// The chunk's bytes and what a row group writer needs to splice them in: `builder`'s
    /// metadata completed with the pages' sizes and offsets, `rows`, `bloom_filter` and
    /// the offset index.
    fn finish(
        self,
        builder: ColumnChunkMetaDataBuilder,
        rows: usize,
        bloom_filter: Option<Sbbf>,
    ) -> Result<(Bytes, ColumnCloseResult)> {
        let metadata = builder
            .set_total_compressed_size(self.compressed)
            .set_total_uncompressed_size(self.uncompressed)
            .set_data_page_offset(self.locations.first().map_or(0, |l| l.offset))
            .set_dictionary_page_offset(self.dictionary_page_offset)
            .build()?;
        let close = ColumnCloseResult {
            bytes_written: self.compressed as u64,
            rows_written: rows as u64,
            metadata,
            bloom_filter,
            column_index: None,
            offset_index: Some(OffsetIndexMetaData {
                page_locations: self.locations,
                unencoded_byte_array_data_bytes: None,
            }),
        };
        Ok((Bytes::from(self.sink.into_inner()?), close))
    }
}

/// Encodes string column chunks; holds what one chunk's encoding can hand to the next.
pub(crate) struct StringChunkWriter {
    /// A zstd context and its level, made once per file.
    compressor: Option<(zstd::bulk::Compressor<'static>, i32)>,
    /// A zstd context set up for random text ([`RANDOM_TEXT_LEVEL`]), made once per file.
    random_text: Option<zstd::bulk::Compressor<'static>>,
    /// The page being assembled, uncompressed.
    page: Vec<u8>,
    /// The values of a page being filled ([`StringChunkWriter::write_plain`]): PLAIN, or
    /// the bytes alone of a DELTA_LENGTH_BYTE_ARRAY page.
    values: Vec<u8>,
    /// The lengths of a DELTA_LENGTH_BYTE_ARRAY page's values.
    lengths: Vec<u32>,
}

impl StringChunkWriter {
    pub(crate) fn new() -> Self {
        StringChunkWriter {
            compressor: None,
            random_text: None,
            page: Vec::new(),
            values: Vec::new(),
            lengths: Vec::new(),
        }
    }

    /// Whether `leaf` can be written as column `descr` under `props`: a column with a codec
    /// this module knows, filled with the levels it writes; dictionary-encoded, or a flat
    /// column without a dictionary, PLAIN or DELTA_LENGTH_BYTE_ARRAY
    /// ([`StringChunkWriter::write_plain`]).
    pub(crate) fn handles(
        leaf: &StringLeaf<'_>,
        descr: &ColumnDescPtr,
        props: &WriterProperties,
    ) -> bool {
        let dictionary = props.dictionary_enabled(descr.path());
        Self::writes_leaf(descr.path(), props)
            && leaf.fits(descr)
            && match leaf.parts {
                Parts::Flat(_) => dictionary || Self::plain_encoding(descr.path(), props).is_some(),
                // Integers are written PLAIN only.
                Parts::List {
                    kind: ItemLeaf::Int64,
                    ..
                } => !dictionary,
                _ => dictionary,
            }
    }

    /// The encoding of the pages of a flat leaf at `path` written without a dictionary
    /// ([`StringChunkWriter::write_plain`]), if it is one this module writes: PLAIN (also
    /// when `props` name none) or DELTA_LENGTH_BYTE_ARRAY.
    fn plain_encoding(path: &ColumnPath, props: &WriterProperties) -> Option<Encoding> {
        match props.encoding(path) {
            None | Some(Encoding::PLAIN) => Some(Encoding::PLAIN),
            Some(Encoding::DELTA_LENGTH_BYTE_ARRAY) => Some(Encoding::DELTA_LENGTH_BYTE_ARRAY),
            Some(_) => None,
        }
    }

    /// Whether a string leaf at `path` is one this module writes under `props` (when its
    /// levels fit and, without a dictionary, when it is flat): one with a codec it knows.
    pub(crate) fn writes_leaf(path: &ColumnPath, props: &WriterProperties) -> bool {
        matches!(
            props.compression(path),
            Compression::ZSTD(_) | Compression::UNCOMPRESSED
        )
    }

    /// Encodes `leaf` as the column chunk `descr`: its bytes, starting with the first page,
    /// and what a row group writer needs to splice them in (`append_column`).
    pub(crate) fn write(
        &mut self,
        leaf: StringLeaf<'_>,
        descr: &ColumnDescPtr,
        props: &WriterProperties,
    ) -> Result<(Bytes, ColumnCloseResult)> {
        if let Parts::List {
            lists,
            field,
            kind: ItemLeaf::Int64,
            item_nullable,
        } = &leaf.parts
        {
            let levels = ListLevels::new(ItemLeaf::Int64, *item_nullable);
            return self.write_list_integers(lists, leaf.runs, *field, levels, descr, props);
        }
        if !props.dictionary_enabled(descr.path()) {
            return self.write_plain(leaf, descr, props);
        }
        let (max_def, max_rep) = (descr.max_def_level(), descr.max_rep_level());
        let limit = props.dictionary_page_size_limit();
        let interned = intern(&leaf, max_def, limit);
        let dictionary = &interned.dictionary;
        // A column of nulls only still gets its (empty) dictionary, as arrow-rs writes it.
        let use_dictionary = !dictionary.passed_limit();
        let list = matches!(leaf.parts, Parts::List { .. });
        let codec = chunk_codec(list, &interned.def, props.compression(descr.path()));

        let mut pages = ChunkPages::new();
        let mut encodings = vec![Encoding::RLE];
        let mut encoding_stats = Vec::new();

        if use_dictionary {
            let page = Page::DictionaryPage {
                buf: compress(
                    &mut self.compressor,
                    dictionary_codec(codec),
                    &dictionary.page,
                )?,
                num_values: dictionary.len() as u32,
                encoding: Encoding::PLAIN,
                is_sorted: false,
            };
            pages.write(page, dictionary.page.len(), None)?;
            encodings.push(Encoding::PLAIN);
            encoding_stats.push(PageEncodingStats {
                page_type: PageType::DICTIONARY_PAGE,
                encoding: Encoding::PLAIN,
                count: 1,
            });
        }
        let value_encoding = match use_dictionary {
            true => Encoding::RLE_DICTIONARY,
            false => Encoding::PLAIN,
        };
        encodings.push(value_encoding);
        let id_width = bit_width(dictionary.len().saturating_sub(1) as u32).max(1);
        // PLAIN pages of a chunk that gave its dictionary up hold values of which many
        // seldom repeat, as a dictionary page does: level 1 too (the 8192-span payload's
        // attribute values, 144 B a span: as small as at level 2, ~10% faster).
        let data_codec = match use_dictionary {
            true => data_page_codec(codec, id_width),
            false => dictionary_codec(codec),
        };

        let (row_limit, byte_limit) = page_limits(props);
        let id_bytes = use_dictionary.then(|| usize::from(id_width).div_ceil(8));
        let (mut row, mut level, mut value) = (0usize, 0usize, 0usize);
        while row < interned.row_ends.len() {
            let first_row = row;
            let end = interned.page_end(first_row, row_limit, byte_limit, id_bytes);
            let (level_end, value_end) = interned.row_ends[end - 1];
            let (level_end, value_end) = (level_end as usize, value_end as usize);

            self.page.clear();
            if max_rep > 0 {
                levels(&interned.rep[level..level_end], max_rep, &mut self.page);
            }
            if max_def > 0 {
                levels(&interned.def[level..level_end], max_def, &mut self.page);
            }
            let ids = &interned.ids[value..value_end];
            if use_dictionary {
                self.page.push(id_width);
                rle_hybrid(ids, id_width, &mut self.page);
            } else {
                for &id in ids {
                    push_plain(&mut self.page, dictionary.value(id));
                }
            }
            let num_values = match (max_rep, max_def) {
                (0, 0) => value_end - value,
                _ => level_end - level,
            };
            let page = Page::DataPage {
                buf: self.compress(data_codec)?,
                num_values: num_values as u32,
                encoding: value_encoding,
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: None,
            };
            pages.write(page, self.page.len(), Some(first_row))?;
            (row, level, value) = (end, level_end, value_end);
        }
        encoding_stats.push(PageEncodingStats {
            page_type: PageType::DATA_PAGE,
            encoding: value_encoding,
            count: pages.locations.len() as i32,
        });

        let num_values = match (max_rep, max_def) {
            (0, 0) => interned.ids.len(),
            _ => interned.def.len().max(interned.rep.len()),
        };
        let mut builder = ColumnChunkMetaData::builder(descr.clone())
            .set_compression(codec)
            .set_encodings_mask(EncodingMask::new_from_encodings(encodings.iter()))
            .set_page_encoding_stats(encoding_stats)
            .set_num_values(num_values as i64);
        if props.statistics_enabled(descr.path()) != EnabledStatistics::None {
            builder = builder.set_statistics(statistics(
                dictionary.values(),
                interned.nulls,
                props.statistics_truncate_length(),
            ));
        }
        // The filter holds each distinct value once, as arrow-rs's would hold every value
        // inserted, sized for the values the chunk really has (in a chunk whose dictionary
        // passed the limit, for as many as the chunk's values could be: a filter larger
        // than needed, whose false positives are rarer than `fpp`).
        let bloom_filter = match props.bloom_filter_properties(descr.path()) {
            Some(bloom) => {
                let ndv = dictionary.len().max(1) as u64;
                let mut filter = Sbbf::new_with_ndv_fpp(ndv, bloom.fpp())?;
                for value in dictionary.values() {
                    filter.insert(value);
                }
                Some(filter)
            }
            None => None,
        };
        pages.finish(builder, interned.row_ends.len(), bloom_filter)
    }

    /// Encodes the flat `leaf` of a column without a dictionary (the layouts' random ids,
    /// `parquet_files::Layout::plain`) as the chunk `descr`: v1 data pages of RLE levels
    /// and PLAIN values, or DELTA_LENGTH_BYTE_ARRAY values when the properties say so
    /// (`parquet_files::Layout::delta_lengths`), filled straight from the runs (there is
    /// nothing to intern), of at most the writer's page row and byte limits, compressed
    /// as random text ([`RANDOM_TEXT_LEVEL`]) when the codec is zstd; statistics from a
    /// running min and max; a bloom filter if the properties ask for one; an offset index.
    fn write_plain(
        &mut self,
        leaf: StringLeaf<'_>,
        descr: &ColumnDescPtr,
        props: &WriterProperties,
    ) -> Result<(Bytes, ColumnCloseResult)> {
        let Parts::Flat(arrays) = &leaf.parts else {
            return Err(ParquetError::General(format!(
                "{}: only flat string columns are written without a dictionary here",
                descr.path()
            ))
            .into());
        };
        let max_def = descr.max_def_level();
        let codec = props.compression(descr.path());
        let encoding = Self::plain_encoding(descr.path(), props).ok_or_else(|| {
            ParquetError::NYI(format!(
                "{}: flat string columns written without a dictionary with {:?}",
                descr.path(),
                props.encoding(descr.path())
            ))
        })?;
        let delta_lengths = encoding == Encoding::DELTA_LENGTH_BYTE_ARRAY;
        let (row_limit, byte_limit) = page_limits(props);
        let mut bloom_filter = match props.bloom_filter_properties(descr.path()) {
            Some(bloom) => Some(Sbbf::new_with_ndv_fpp(
                leaf.len().max(1) as u64,
                bloom.fpp(),
            )?),
            None => None,
        };
        let mut pages = ChunkPages::new();
        let mut bounds: Option<(&[u8], &[u8])> = None;
        let (mut nulls, mut rows, mut first_row) = (0u64, 0usize, 0usize);
        // The page's definition levels (none when the column has none).
        let mut def: Vec<u8> = Vec::new();
        self.values.clear();
        self.lengths.clear();
        let parts = flat_parts(arrays);
        let mut emit = |this: &mut Self, def: &mut Vec<u8>, first_row: usize, rows: usize| {
            this.page.clear();
            if max_def > 0 {
                levels(def, max_def, &mut this.page);
            }
            if delta_lengths {
                delta_packed_lengths(&this.lengths, &mut this.page);
                this.lengths.clear();
            }
            this.page.extend_from_slice(&this.values);
            let buf = match codec {
                Compression::ZSTD(_) => this.compress_random_text()?,
                _ => this.compress(codec)?,
            };
            let page = Page::DataPage {
                buf,
                num_values: (rows - first_row) as u32,
                encoding,
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: None,
            };
            pages.write(page, this.page.len(), Some(first_row))?;
            def.clear();
            this.values.clear();
            Ok::<_, crate::error::Error>(())
        };
        for (r, run) in leaf.runs.iter().enumerate() {
            // As `intern` does: a run's offsets, then its first value's bytes, runs ahead.
            if let Some(a) = leaf.runs.get(r + 2 * AHEAD) {
                prefetch(parts[a.batch].1, a.start);
            }
            if let Some(b) = leaf.runs.get(r + AHEAD) {
                let (data, offsets, _) = parts[b.batch];
                prefetch(data, offsets[b.start] as usize);
            }
            let (data, offsets, run_nulls) = parts[run.batch];
            for i in run.start..run.start + run.len {
                if run_nulls.is_some_and(|n| n.is_null(i)) {
                    def.push(0);
                    nulls += 1;
                } else {
                    let value = &data[offsets[i] as usize..offsets[i + 1] as usize];
                    if max_def > 0 {
                        def.push(1);
                    }
                    if delta_lengths {
                        self.lengths.push(value.len() as u32);
                        self.values.extend_from_slice(value);
                    } else {
                        push_plain(&mut self.values, value);
                    }
                    bounds = Some(match bounds {
                        None => (value, value),
                        Some((min, max)) => (
                            if less(value, min) { value } else { min },
                            if less(max, value) { value } else { max },
                        ),
                    });
                    if let Some(filter) = &mut bloom_filter {
                        filter.insert(value);
                    }
                }
                rows += 1;
                if rows - first_row == row_limit || self.values.len() >= byte_limit {
                    emit(self, &mut def, first_row, rows)?;
                    first_row = rows;
                }
            }
        }
        if rows > first_row || rows == 0 {
            emit(self, &mut def, first_row, rows)?;
        }
        let mut builder = plain_chunk(descr, codec, encoding, &pages, rows);
        if props.statistics_enabled(descr.path()) != EnabledStatistics::None {
            let bounds = bounds.into_iter().flat_map(|(min, max)| [min, max]);
            builder = builder.set_statistics(statistics(
                bounds,
                nulls,
                props.statistics_truncate_length(),
            ));
        }
        pages.finish(builder, rows, bloom_filter)
    }

    /// Encodes the `Int64` (or timestamp) leaf of a list's items (`field`, an event's time)
    /// as the chunk `descr`: v1 data pages of RLE levels and PLAIN values, of at most the
    /// writer's page row and byte limits, compressed with the column's codec; statistics
    /// (min, max, nulls) if the properties ask for them; an offset index.
    fn write_list_integers(
        &mut self,
        lists: &[ListPart<'_>],
        runs: &[Run],
        field: usize,
        list_levels: ListLevels,
        descr: &ColumnDescPtr,
        props: &WriterProperties,
    ) -> Result<(Bytes, ColumnCloseResult)> {
        let parts: Vec<&[i64]> = lists
            .iter()
            .map(|l| integers(l.items.column(field)))
            .collect::<Result<_>>()?;
        let mut values: Vec<i64> = Vec::new();
        let walked = walk_list(lists, runs, field, list_levels, |part, index, _| {
            values.push(parts[part][index]);
        });
        let interned = Interned {
            dictionary: Dictionary::new(0),
            ids: Vec::new(),
            def: walked.def,
            rep: walked.rep,
            row_ends: walked.row_ends,
            nulls: walked.nulls,
        };
        let codec = chunk_codec(true, &interned.def, props.compression(descr.path()));
        let (row_limit, byte_limit) = page_limits(props);
        let mut pages = ChunkPages::new();
        let (mut row, mut level, mut value) = (0usize, 0usize, 0usize);
        while row < interned.row_ends.len() {
            let end = interned.page_end(row, row_limit, byte_limit, Some(8));
            let (level_end, value_end) = interned.row_ends[end - 1];
            let (level_end, value_end) = (level_end as usize, value_end as usize);
            self.page.clear();
            levels(
                &interned.rep[level..level_end],
                list_levels.max_rep,
                &mut self.page,
            );
            let max_def = i16::from(list_levels.max_def);
            levels(&interned.def[level..level_end], max_def, &mut self.page);
            for v in &values[value..value_end] {
                self.page.extend_from_slice(&v.to_le_bytes());
            }
            let page = Page::DataPage {
                buf: self.compress(codec)?,
                num_values: (level_end - level) as u32,
                encoding: Encoding::PLAIN,
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: None,
            };
            pages.write(page, self.page.len(), Some(row))?;
            (row, level, value) = (end, level_end, value_end);
        }
        let mut builder = plain_chunk(descr, codec, Encoding::PLAIN, &pages, interned.def.len());
        if props.statistics_enabled(descr.path()) != EnabledStatistics::None {
            let (min, max) = (values.iter().min(), values.iter().max());
            builder = builder.set_statistics(Statistics::Int64(ValueStatistics::new(
                min.copied(),
                max.copied(),
                None,
                Some(interned.nulls),
                false,
            )));
        }
        pages.finish(builder, interned.row_ends.len(), None)
    }

    /// `self.page` compressed with zstd set up for random text ([`RANDOM_TEXT_LEVEL`]).
    fn compress_random_text(&mut self) -> Result<Bytes> {
        let compressor = match &mut self.random_text {
            Some(c) => c,
            slot => {
                let mut c = zstd::bulk::Compressor::new(RANDOM_TEXT_LEVEL)?;
                c.set_parameter(zstd::zstd_safe::CParameter::LiteralCompressionMode(
                    zstd::zstd_safe::ParamSwitch::Enable,
                ))?;
                slot.insert(c)
            }
        };
        zstd_page(compressor, &self.page)
    }

    /// `self.page` compressed with `codec`.
    fn compress(&mut self, codec: Compression) -> Result<Bytes> {
        compress(&mut self.compressor, codec, &self.page)
    }
}

/// `page` compressed with `codec`, by the zstd context in `compressor` (made there at
/// first use).
fn compress(
    compressor: &mut Option<(zstd::bulk::Compressor<'static>, i32)>,
    codec: Compression,
    page: &[u8],
) -> Result<Bytes> {
    match codec {
        Compression::ZSTD(level) => {
            let level = level.compression_level();
            let compressor = match compressor {
                Some((c, l)) if *l == level => c,
                Some((c, l)) => {
                    // The dictionary page's level, then the data pages': a parameter of
                    // the context, not a new context.
                    c.set_compression_level(level)?;
                    *l = level;
                    c
                }
                slot => &mut slot.insert((zstd::bulk::Compressor::new(level)?, level)).0,
            };
            zstd_page(compressor, page)
        }
        Compression::UNCOMPRESSED => Ok(Bytes::copy_from_slice(page)),
        other => Err(ParquetError::NYI(format!("string chunks compressed with {other}")).into()),
    }
}

/// The metadata of a chunk `descr` of data `pages` only, all of them `encoding` (PLAIN, or
/// another encoding without a dictionary), compressed with `codec`, holding `num_values`
/// level slots (or values, in a column without levels).
fn plain_chunk(
    descr: &ColumnDescPtr,
    codec: Compression,
    encoding: Encoding,
    pages: &ChunkPages,
    num_values: usize,
) -> ColumnChunkMetaDataBuilder {
    ColumnChunkMetaData::builder(descr.clone())
        .set_compression(codec)
        .set_encodings_mask(EncodingMask::new_from_encodings(
            [Encoding::RLE, encoding].iter(),
        ))
        .set_page_encoding_stats(vec![PageEncodingStats {
            page_type: PageType::DATA_PAGE,
            encoding,
            count: pages.locations.len() as i32,
        }])
        .set_num_values(num_values as i64)
}

/// The codec of a chunk with definition levels `def`: the column's `codec`, but none for
/// a leaf of a `list` with no element in any row, whose pages hold levels alone, a few
/// bytes that zstd would only wrap (arrow-rs's writers are set up alike for such chunks:
/// `parquet_files::without_codecs`).
fn chunk_codec(list: bool, def: &[u8], codec: Compression) -> Compression {
    match list && def.iter().all(|&d| d == 0) {
        true => Compression::UNCOMPRESSED,
        false => codec,
    }
}

/// The values of an `Int64` or nanosecond timestamp array.
fn integers(array: &ArrayRef) -> Result<&[i64]> {
    use arrow_array::types::{Int64Type, TimestampNanosecondType};
    match array.data_type() {
        DataType::Int64 => Ok(array.as_primitive::<Int64Type>().values()),
        DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, _) => {
            Ok(array.as_primitive::<TimestampNanosecondType>().values())
        }
        other => Err(ParquetError::General(format!("not an integer column: {other}")).into()),
    }
}

/// `lengths` as DELTA_BINARY_PACKED encodes them, the first part of a
/// DELTA_LENGTH_BYTE_ARRAY page: a header (values a block, miniblocks a block, values, the
/// first value), then for each block of up to 128 deltas between consecutive values, their
/// least (zigzag), the bit width of each of its 4 miniblocks of 32, and each miniblock's
/// deltas less that least, bit-packed at its width (the last one padded to 32 values; the
/// widths of miniblocks past the last value 0, with no bytes). Ids of one length come to
/// 5 bytes a block: every delta 0, every width 0.
fn delta_packed_lengths(lengths: &[u32], out: &mut Vec<u8>) {
    const BLOCK: usize = 128;
    const MINIBLOCKS: usize = 4;
    const MINIBLOCK: usize = BLOCK / MINIBLOCKS;
    let zigzag = |v: i64| ((v << 1) ^ (v >> 63)) as u64;
    uleb128(BLOCK as u64, out);
    uleb128(MINIBLOCKS as u64, out);
    uleb128(lengths.len() as u64, out);
    let first = lengths.first().copied().unwrap_or(0);
    uleb128(zigzag(i64::from(first)), out);
    if lengths.iter().all(|&l| l == first) {
        // Ids of one length: each block a least delta of 0 and four widths of 0.
        let blocks = lengths.len().saturating_sub(1).div_ceil(BLOCK);
        out.resize(out.len() + blocks * (1 + MINIBLOCKS), 0);
        return;
    }
    let deltas: Vec<i64> = lengths
        .windows(2)
        .map(|w| i64::from(w[1]) - i64::from(w[0]))
        .collect();
    for block in deltas.chunks(BLOCK) {
        let least = block.iter().copied().min().unwrap_or(0);
        uleb128(zigzag(least), out);
        let mut widths = [0u8; MINIBLOCKS];
        for (width, mini) in widths.iter_mut().zip(block.chunks(MINIBLOCK)) {
            let most = mini.iter().map(|&d| (d - least) as u64).max().unwrap_or(0);
            *width = (u64::BITS - most.leading_zeros()) as u8;
        }
        out.extend_from_slice(&widths);
        for (&width, mini) in widths.iter().zip(block.chunks(MINIBLOCK)) {
            if width == 0 {
                continue;
            }
            // 32 values of `width` bits fill whole bytes.
            let (mut bits, mut held) = (0u128, 0u32);
            for k in 0..MINIBLOCK {
                let v = mini.get(k).map_or(0, |&d| (d - least) as u64);
                bits |= u128::from(v) << held;
                held += u32::from(width);
                while held >= 8 {
                    out.push(bits as u8);
                    bits >>= 8;
                    held -= 8;
                }
            }
        }
    }
}

/// `value` as PLAIN encodes a byte array: its length (4 bytes, little-endian), then its bytes.
fn push_plain(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// The writer's data page limits: (rows, bytes), each at least 1.
fn page_limits(props: &WriterProperties) -> (usize, usize) {
    (
        props.data_page_row_count_limit().max(1),
        props.data_page_size_limit().max(1),
    )
}

/// `page` compressed by `compressor` into a buffer of its own.
fn zstd_page(compressor: &mut zstd::bulk::Compressor<'static>, page: &[u8]) -> Result<Bytes> {
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(page.len()));
    compressor.compress_to_buffer(page, &mut out)?;
    Ok(Bytes::from(out))
}

/// The zstd level of the pages of columns written without a dictionary: the layouts'
/// random ids, the hex of random bytes, in which zstd's match search finds nothing but
/// the 4-byte length before each value when PLAIN (nothing at all when their lengths are
/// apart, DELTA_LENGTH_BYTE_ARRAY: 8.00 bytes an id at levels 1 to -5 alike), and which
/// its entropy coder packs to about 4 bits a character at any level. A negative level
/// searches for matches at a fraction of the positions; it would also leave literals
/// uncompressed, which the context is told not to (`LiteralCompressionMode`). On 131,072 PLAIN span ids, level 1 (the level of
/// these columns before) wrote 8.89 bytes an id at 516 MB/s, level -3 with literals
/// compressed 8.54 at 724 MB/s; -2 and -4 wrote 9.1-9.8 bytes, and level 1 is the
/// fastest positive level (benches/README.md, lake). Parent ids repeat within a trace,
/// a few rows apart: those matches are still found (realistic traces: 1.43 -> 1.39 bytes
/// a span; span ids 8.95 -> 8.56).
pub(crate) const RANDOM_TEXT_LEVEL: i32 = -3;

/// Whether `a` sorts before `b` as bytes: their first 8 bytes compared as one integer
/// (which decides it for random ids), the rest only when those are equal.
fn less(a: &[u8], b: &[u8]) -> bool {
    match (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        (Some(x), Some(y)) if x != y => u64::from_be_bytes(*x) < u64::from_be_bytes(*y),
        _ => a < b,
    }
}

/// The codec of a chunk's dictionary page: the chunk's, at zstd level 1 at most (a v1
/// page must use the chunk's codec, but its level is free). A dictionary page holds each
/// value once, so zstd's match search finds little but common prefixes and its entropy
/// coder does the rest at any level, as for random ids ([`RANDOM_TEXT_LEVEL`]). On the
/// flush bench with the lake's level 2, level 1
/// writes smaller pages with fewer instructions: real4 28.2 -> 28.1 B/span, live4 28.6 ->
/// 28.5, rand4 55.8 -> 55.5, live4 and rand4 about 3M instructions fewer. (Data pages at
/// level 1 too would save another 1.5M on real4 but write 0.3 B/span more.)
fn dictionary_codec(codec: Compression) -> Compression {
    match codec {
        Compression::ZSTD(level) if level.compression_level() > 1 => {
            ZstdLevel::try_new(1).map_or(codec, Compression::ZSTD)
        }
        other => other,
    }
}

/// The codec of a chunk's data pages of dictionary ids `id_width` bits wide: the chunk's,
/// at zstd level 1 at most once the ids are 16 bits or wider (a dictionary of 32K values
/// or more). Ids that wide are mostly of values that seldom repeat, and bit-packed they
/// repeat even less: zstd finds the same matches at level 1 as at 2. On the attribute
/// values of a flush of 12 random requests (2.3 MB of 19-bit ids) level 1 wrote 952,719
/// bytes in 6.6 ms, level 2 952,949 in 8.8 ms. The realistic payloads' dictionaries are far
/// smaller, and their narrow ids do repeat: level 1 would write 9% more there.
fn data_page_codec(codec: Compression, id_width: u8) -> Compression {
    match id_width {
        16.. => dictionary_codec(codec),
        _ => codec,
    }
}

/// Chunk statistics from the distinct values (or all of them): min, max (cut to `truncate`
/// bytes, then marked inexact) and the null count.
fn statistics<'v>(
    values: impl Iterator<Item = &'v [u8]>,
    nulls: u64,
    truncate: Option<usize>,
) -> Statistics {
    // One pass, the words compared first as `less` does (a chunk written PLAIN reads
    // every value here, not each distinct one).
    let bounds = values.fold(None, |bounds, v| {
        Some(match bounds {
            None => (v, v),
            Some((min, max)) => (
                if less(v, min) { v } else { min },
                if less(max, v) { v } else { max },
            ),
        })
    });
    let (min, max) = (bounds.map(|b| b.0), bounds.map(|b| b.1));
    let (min, min_exact) = match (min, truncate) {
        (Some(v), Some(limit)) if v.len() > limit => (Some(cut_utf8(v, limit).to_vec()), false),
        (v, _) => (v.map(<[u8]>::to_vec), true),
    };
    let (max, max_exact) = match (max, truncate) {
        (Some(v), Some(limit)) if v.len() > limit => match increment_utf8(cut_utf8(v, limit)) {
            Some(bound) => (Some(bound), false),
            // Nothing short is above it: keep the whole value.
            None => (Some(v.to_vec()), true),
        },
        (v, _) => (v.map(<[u8]>::to_vec), true),
    };
    let stats = ValueStatistics::new(
        min.map(ByteArray::from),
        max.map(ByteArray::from),
        None,
        Some(nulls),
        false,
    )
    .with_min_is_exact(min_exact)
    .with_max_is_exact(max_exact);
    Statistics::ByteArray(stats)
}

/// The longest prefix of `v` of at most `limit` bytes that ends on a UTF-8 boundary
/// (`v` is valid UTF-8: it comes from a string array).
fn cut_utf8(v: &[u8], limit: usize) -> &[u8] {
    let mut end = limit.min(v.len());
    while end > 0 && end < v.len() && (v[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &v[..end]
}

/// The shortest UTF-8 string greater than every string starting with `prefix`: the
/// prefix with its last character that can be incremented incremented, and cut after it.
fn increment_utf8(prefix: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(prefix).ok()?;
    let mut chars: Vec<char> = s.chars().collect();
    while let Some(c) = chars.pop() {
        let mut next = c as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(bigger) = char::from_u32(next) {
            chars.push(bigger);
            return Some(chars.into_iter().collect::<String>().into_bytes());
        }
    }
    None
}

/// Bits needed for values up to `max`.
fn bit_width(max: u32) -> u8 {
    (32 - max.leading_zeros()) as u8
}

/// Levels as a v1 data page stores them: a 4-byte length, then the RLE hybrid encoding.
fn levels(levels: &[u8], max: i16, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    rle_hybrid(levels, bit_width(max as u32), out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Appends `values` in Parquet's RLE / bit-packing hybrid encoding with `width` bits per
/// value (1 to 32): a run of 8 or more equal values as one RLE run, the rest bit-packed in
/// groups of 8 (the last group padded with zeros, which readers ignore: they know the
/// count). A bit-packed run holds at most 63 groups, so that its header is one byte.
fn rle_hybrid<T: Packed>(values: &[T], width: u8, out: &mut Vec<u8>) {
    const MAX_GROUPS: usize = 63;
    let n = values.len();
    // A run of 8 or more starts at `i` exactly when the next 8 values are equal, so a run
    // is measured only then, 8 values at a time while it lasts.
    let run_at = |i: usize| i + 8 <= n && all_equal(&values[i..i + 8], values[i]);
    let mut i = 0;
    while i < n {
        if run_at(i) {
            let v = values[i];
            let mut j = i + 8;
            while j + 8 <= n && all_equal(&values[j..j + 8], v) {
                j += 8;
            }
            while j < n && values[j] == v {
                j += 1;
            }
            uleb128(((j - i) as u64) << 1, out);
            let bytes = usize::from(width).div_ceil(8);
            out.extend_from_slice(&v.into().to_le_bytes()[..bytes]);
            i = j;
        } else {
            // A bit-packed run: groups of 8 until one starts a run, the values end or the
            // header byte counts no more.
            let header = out.len();
            out.push(0);
            let mut groups = 0;
            loop {
                pack_group(&values[i..(i + 8).min(n)], width, out);
                groups += 1;
                i += 8;
                if groups == MAX_GROUPS || i >= n || run_at(i) {
                    break;
                }
            }
            out[header] = ((groups << 1) | 1) as u8;
        }
    }
}

/// Whether all of `block` equals `v`: every value compared, without stopping at the first
/// difference, which lets the compiler compare them together.
fn all_equal<T: Copy + Eq>(block: &[T], v: T) -> bool {
    block.iter().fold(true, |all, &x| all & (x == v))
}

/// Appends up to 8 values bit-packed with `width` bits each, zero-padded to 8.
fn pack_group<T: Packed>(group: &[T], width: u8, out: &mut Vec<u8>) {
    let width = u32::from(width);
    if width <= 8 {
        let acc = match group.first_chunk::<8>() {
            Some(whole) => T::pack8(whole, width),
            None => pack_shifted(group, width),
        };
        // All 8 bytes, then cut to `width`: a fixed-size copy rather than a `memcpy` call.
        out.extend_from_slice(&acc.to_le_bytes());
        out.truncate(out.len() - 8 + width as usize);
    } else {
        let mut acc = 0u128;
        let mut bits = 0u32;
        for k in 0..8 {
            let v = group.get(k).map_or(0, |&v| v.into());
            acc |= u128::from(v) << bits;
            bits += width;
            while bits >= 64 {
                out.extend_from_slice(&(acc as u64).to_le_bytes());
                acc >>= 64;
                bits -= 64;
            }
        }
        out.extend_from_slice(&acc.to_le_bytes()[..(bits as usize).div_ceil(8)]);
    }
}

/// A value of the RLE / bit-packing hybrid encoding: a level (`u8`) or an id (`u32`).
trait Packed: Copy + Eq + Into<u32> {
    /// A whole group of values of `width` bits (at most 8) bit-packed, in the low `width`
    /// bytes.
    fn pack8(group: &[Self; 8], width: u32) -> u64 {
        pack_shifted(group, width)
    }
}

impl Packed for u32 {}

impl Packed for u8 {
    fn pack8(group: &[u8; 8], width: u32) -> u64 {
        match width {
            // Levels of 0 or 1, a map's repetition levels: read as one word, the multiply
            // moves bit 0 of byte k to bit 56 + k (and nothing else there, nor carries).
            1 => u64::from_le_bytes(*group).wrapping_mul(0x0102_0408_1020_4080) >> 56,
            _ => pack_shifted(group, width),
        }
    }
}

/// Up to 8 values of `width` bits (at most 8) bit-packed, value by value.
fn pack_shifted<T: Packed>(group: &[T], width: u32) -> u64 {
    group.iter().enumerate().fold(0, |acc, (k, &v)| {
        acc | (u64::from(v.into()) << (k as u32 * width))
    })
}

fn uleb128(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{MapBuilder, StringBuilder};
    use arrow_array::RecordBatch;
    use arrow_schema::{Field, Schema, TimeUnit};
    use arrow_select::concat::concat_batches;
    use parquet::arrow::arrow_reader::{
        ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
    };
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
    use parquet::file::reader::FileReader;

    use super::*;
    use crate::parquet_files::write_parquet;
    use crate::test_support::{reader_with_bloom_filters, Rng};

    const ROWS: usize = 100_000;

    /// Columns that take every path: runs and nulls, ~70K distinct values (17-bit ids),
    /// long values (cut statistics), a dictionary too big for its page (PLAIN pages cut
    /// by size), only nulls, and a map with empty rows, null values, repeated rows and
    /// rows of different lengths.
    fn batch() -> RecordBatch {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let long = |k: usize| format!("{}-é-{k}", "x".repeat(70));
        let (mut runs, mut wide, mut longs, mut big, mut nulls) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        let mut map = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        let mut run_value = 0;
        for i in 0..ROWS {
            if rng.below(50) == 0 {
                run_value = rng.below(40);
            }
            match rng.below(10) {
                0 => runs.append_null(),
                _ => runs.append_value(format!("service-{run_value}")),
            }
            wide.append_value(format!("{:x}", rng.below(70_000)));
            longs.append_value(long(rng.below(5)));
            big.append_value(format!("{:040x}", rng.next_u64()));
            nulls.append_null();
            match rng.below(4) {
                0 if i > 0 => {
                    // The previous row again (MapBuilder has no copy): regenerate it.
                    for k in 0..(i % 5) {
                        map.keys().append_value(format!("key.{k}"));
                        map.values().append_value(format!("v{}", (i - 1) % 3 + k));
                    }
                }
                1 => {}
                _ => {
                    for k in 0..rng.below(9) {
                        map.keys().append_value(format!("key.{}", rng.below(12)));
                        match rng.below(7) {
                            0 => map.values().append_null(),
                            v => map.values().append_value(format!("v{v}{k}")),
                        }
                    }
                }
            }
            map.append(true).unwrap();
        }
        let map = map.finish();
        let schema = Schema::new(vec![
            Field::new("runs", DataType::Utf8, true),
            Field::new("wide", DataType::Utf8, false),
            Field::new("longs", DataType::Utf8, false),
            Field::new("big", DataType::Utf8, false),
            Field::new("nulls", DataType::Utf8, true),
            Field::new("map", map.data_type().clone(), false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(runs.finish()),
                Arc::new(wide.finish()),
                Arc::new(longs.finish()),
                Arc::new(big.finish()),
                Arc::new(nulls.finish()),
                Arc::new(map),
            ],
        )
        .unwrap()
    }

    fn props() -> WriterProperties {
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(2).unwrap()))
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(40_000))
            .set_data_page_row_count_limit(7_000)
            .set_data_page_size_limit(64 * 1024)
            .build()
    }

    /// `batch` written by this crate (the file and its metadata) and the metadata of
    /// arrow-rs's writer for the same batch and properties.
    fn ours_and_arrow_rs(
        batch: &RecordBatch,
        props: impl Fn() -> WriterProperties,
    ) -> (Vec<u8>, ParquetMetaData, ParquetMetaData) {
        let mut ours = Vec::new();
        let meta = write_parquet(&mut ours, batch, props()).unwrap();
        let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props())).unwrap();
        writer.write(batch).unwrap();
        (ours, meta, writer.close().unwrap())
    }

    fn read(file: &[u8], selection: Option<RowSelection>) -> RecordBatch {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let mut builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
            Bytes::copy_from_slice(file),
            options,
        )
        .unwrap();
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        let batches: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    /// Reads `file` through its offset index, skipping into the middle of row groups of
    /// 40,000 rows: the rows of `batch` from `first` (`len` of them) and from `first +
    /// 70,000` to the end.
    fn assert_pages_found(file: &[u8], batch: &RecordBatch, first: usize, len: usize) {
        let second = first + 70_000;
        let rest = batch.num_rows() - second;
        let selection = RowSelection::from(vec![
            RowSelector::skip(first),
            RowSelector::select(len),
            RowSelector::skip(second - first - len),
            RowSelector::select(rest),
        ]);
        let expected = concat_batches(
            &batch.schema(),
            &[batch.slice(first, len), batch.slice(second, rest)],
        )
        .unwrap();
        assert_eq!(read(file, Some(selection)), expected);
    }

    /// Chunk `name`'s statistics are arrow-rs's `t`; for `longs`, whose values pass the
    /// 64-byte statistics limit, the max is cut too and stays above every value of
    /// `longs` (the two writers round the cut up differently).
    fn assert_statistics(name: &str, s: &Statistics, t: &Statistics, longs: &[&str]) {
        assert_eq!(s.null_count_opt(), t.null_count_opt(), "{name}");
        assert_eq!(s.min_bytes_opt(), t.min_bytes_opt(), "{name}");
        assert_eq!(s.min_is_exact(), t.min_is_exact(), "{name}");
        if name == "longs" {
            let max = longs.iter().max().unwrap().as_bytes();
            assert!(!s.max_is_exact());
            assert!(s.max_bytes_opt().unwrap() > max && s.max_bytes_opt().unwrap().len() <= 64);
        } else {
            assert_eq!(s.max_bytes_opt(), t.max_bytes_opt(), "{name}");
            assert_eq!(s.max_is_exact(), t.max_is_exact(), "{name}");
        }
    }

    /// Each column chunk of `meta` with the one at the same place in `reference`: (row
    /// group, column, ours, arrow-rs's).
    fn chunk_pairs<'m>(
        meta: &'m ParquetMetaData,
        reference: &'m ParquetMetaData,
    ) -> impl Iterator<
        Item = (
            usize,
            usize,
            &'m ColumnChunkMetaData,
            &'m ColumnChunkMetaData,
        ),
    > {
        meta.row_groups()
            .iter()
            .zip(reference.row_groups())
            .enumerate()
            .flat_map(|(rg, (mine, arrows))| {
                (mine.columns().iter().zip(arrows.columns()))
                    .enumerate()
                    .map(move |(c, (chunk, arrow))| (rg, c, chunk, arrow))
            })
    }

    /// The non-null keys (`leaf` 0) or values (1) of the rows of string map `map`, which may
    /// be a slice: a sliced map's keys and values are all of the array's, and its offsets
    /// say which are the slice's.
    fn map_leaf_values(map: &ArrayRef, leaf: usize) -> Vec<&str> {
        let map = map.as_map();
        let offsets = map.value_offsets();
        let (first, last) = (offsets[0] as usize, offsets[map.len()] as usize);
        let strings = [map.keys(), map.values()][leaf].as_string::<i32>();
        (first..last)
            .filter(|&i| strings.is_valid(i))
            .map(|i| strings.value(i))
            .collect()
    }

    /// Every one of `values` is in the bloom filter of column `c` of row group `rg`.
    fn assert_in_bloom_filter<R: FileReader>(reader: &R, rg: usize, c: usize, values: &[&str]) {
        let row_group = reader.get_row_group(rg).unwrap();
        let filter = row_group.get_column_bloom_filter(c).unwrap();
        assert!(
            values.iter().all(|v| filter.check(v)),
            "column {c}, row group {rg}: a value missing from the bloom filter"
        );
    }

    #[test]
    fn string_chunks_read_back_exactly_and_match_arrow_rs_metadata() {
        let batch = batch();
        let (ours, meta, reference) = ours_and_arrow_rs(&batch, props);

        assert_eq!(read(&ours, None), batch);
        assert_pages_found(&ours, &batch, 12_345, 30_000);
        let longs: Vec<&str> = batch
            .column(2)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();

        assert_eq!(meta.num_row_groups(), 3);
        for (rg, (mine, arrows)) in meta
            .row_groups()
            .iter()
            .zip(reference.row_groups())
            .enumerate()
        {
            assert_eq!(mine.num_rows(), arrows.num_rows());
            for (c, a) in mine.columns().iter().zip(arrows.columns()) {
                let name = c.column_path().string();
                assert_eq!(c.num_values(), a.num_values(), "{name} in row group {rg}");
                if name != "big" {
                    // (arrow-rs starts `big` with a dictionary and switches to PLAIN
                    // mid-chunk; this writer decides once per chunk: checked below.)
                    assert_eq!(
                        c.dictionary_page_offset().is_some(),
                        a.dictionary_page_offset().is_some(),
                        "{name}: a dictionary exactly where arrow-rs writes one"
                    );
                }
                assert_statistics(
                    &name,
                    c.statistics().unwrap(),
                    a.statistics().unwrap(),
                    &longs,
                );
            }
        }
        let big = &meta.row_group(0).columns()[3];
        assert!(
            big.dictionary_page_offset().is_none(),
            "an oversized dictionary falls back to PLAIN"
        );
        let pages = &meta.offset_index().unwrap()[0][3].page_locations;
        assert!(
            pages.len() > 6,
            "PLAIN pages are cut by size: {}",
            pages.len()
        );
    }

    /// A `List<Struct>` column of every shape: empty lists, null items, items with empty
    /// maps, null map values and null strings, over pages cut by rows, in row groups of
    /// 40,000 rows.
    fn list_batch() -> RecordBatch {
        use arrow_array::builder::{ListBuilder, StructBuilder, TimestampNanosecondBuilder};
        let mut rng = Rng(7);
        let map_type = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
            .finish()
            .data_type()
            .clone();
        let fields = vec![
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
            Field::new("name", DataType::Utf8, false),
            Field::new("tag", DataType::Utf8, true),
            Field::new("attributes", map_type, false),
        ];
        let item = StructBuilder::new(
            fields.clone(),
            vec![
                Box::new(TimestampNanosecondBuilder::new().with_timezone("UTC")),
                Box::new(StringBuilder::new()),
                Box::new(StringBuilder::new()),
                Box::new(MapBuilder::new(
                    None,
                    StringBuilder::new(),
                    StringBuilder::new(),
                )),
            ],
        );
        let mut lists = ListBuilder::new(item);
        for row in 0..ROWS {
            let items = match rng.below(10) {
                0..=5 => 0,
                k => k - 5,
            };
            for i in 0..items {
                let item = lists.values();
                let null = rng.below(20) == 0;
                item.field_builder::<TimestampNanosecondBuilder>(0)
                    .unwrap()
                    .append_value(1_700_000_000_000_000_000 + (row * 4 + i) as i64 * 1_000);
                item.field_builder::<StringBuilder>(1)
                    .unwrap()
                    .append_value(format!("event-{}", rng.below(5)));
                let tag = item.field_builder::<StringBuilder>(2).unwrap();
                match rng.below(3) {
                    0 => tag.append_null(),
                    t => tag.append_value(format!("tag {t} {}", rng.below(1000))),
                }
                let map = item
                    .field_builder::<MapBuilder<StringBuilder, StringBuilder>>(3)
                    .unwrap();
                for k in 0..rng.below(5) {
                    map.keys().append_value(format!("key.{k}"));
                    match rng.below(10) {
                        0 => map.values().append_null(),
                        _ => map
                            .values()
                            .append_value(format!("value {}", rng.below(300))),
                    }
                }
                map.append(true).unwrap();
                item.append(!null);
            }
            lists.append(true);
        }
        let lists = lists.finish();
        // Items nullable (`ListBuilder` makes them so), the list not.
        let list_field = Field::new("events", lists.data_type().clone(), false);
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![list_field])),
            vec![Arc::new(lists)],
        )
        .unwrap()
    }

    #[test]
    fn list_columns_of_every_shape_read_back_exactly_and_match_arrow_rs_metadata() {
        let batch = list_batch();
        let time = ColumnPath::new(
            ["events", "list", "item", "time"]
                .map(String::from)
                .to_vec(),
        );
        let list_props = || {
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(2).unwrap()))
                .set_dictionary_enabled(true)
                .set_column_dictionary_enabled(time.clone(), false)
                .set_statistics_enabled(EnabledStatistics::Page)
                .set_max_row_group_row_count(Some(40_000))
                .set_data_page_row_count_limit(7_000)
                .set_data_page_size_limit(64 * 1024)
                .build()
        };
        // This module writes every leaf of the column.
        let schema = parquet::arrow::ArrowSchemaConverter::new()
            .convert(&batch.schema())
            .unwrap();
        let runs = [Run {
            batch: 0,
            start: 0,
            len: batch.num_rows(),
        }];
        let leaves = StringLeaf::leaves(
            batch.schema().field(0).data_type(),
            batch.columns(),
            &runs,
            &[],
        )
        .expect("a list of structs of strings, maps and times");
        assert_eq!(leaves.len(), schema.num_columns());
        for (k, leaf) in leaves.iter().enumerate() {
            let descr = schema.column(k);
            assert!(
                StringChunkWriter::handles(leaf, &descr, &list_props()),
                "{}",
                descr.path()
            );
        }

        let (ours, meta, reference) = ours_and_arrow_rs(&batch, list_props);
        assert_eq!(read(&ours, None), batch);
        assert_pages_found(&ours, &batch, 12_345, 30_000);
        assert_eq!(meta.num_row_groups(), 3);
        for (rg, c, chunk, arrow) in chunk_pairs(&meta, &reference) {
            let name = chunk.column_path().string();
            assert_eq!(chunk.num_values(), arrow.num_values(), "{name} in {rg}/{c}");
            assert_eq!(chunk.compression(), arrow.compression(), "{name}");
            assert_eq!(
                chunk.dictionary_page_offset().is_some(),
                arrow.dictionary_page_offset().is_some(),
                "{name}"
            );
            let (s, t) = (chunk.statistics().unwrap(), arrow.statistics().unwrap());
            assert_eq!(s.null_count_opt(), t.null_count_opt(), "{name}");
            assert_eq!(s.min_bytes_opt(), t.min_bytes_opt(), "{name}");
            assert_eq!(s.max_bytes_opt(), t.max_bytes_opt(), "{name}");
        }
        let pages = &meta.offset_index().unwrap()[0][0].page_locations;
        assert!(pages.len() >= 6, "pages cut by rows: {}", pages.len());

        // The same column with no element in any row: uncompressed pages of levels only,
        // the same values counted and nulls in the statistics as arrow-rs's.
        let field = batch.schema().field(0).clone();
        let DataType::List(item) = field.data_type().clone() else {
            unreachable!()
        };
        let offsets = arrow_buffer::OffsetBuffer::new_zeroed(ROWS);
        let values = arrow_array::new_empty_array(item.data_type());
        let empty = arrow_array::ListArray::new(item, offsets, values, None);
        let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![Arc::new(empty)])
            .unwrap();
        let (ours, meta, reference) = ours_and_arrow_rs(&batch, list_props);
        assert_eq!(read(&ours, None), batch);
        assert_pages_found(&ours, &batch, 12_345, 30_000);
        for (rg, c, chunk, arrow) in chunk_pairs(&meta, &reference) {
            let name = chunk.column_path().string();
            assert_eq!(chunk.num_values(), arrow.num_values(), "{name} in {rg}/{c}");
            assert_eq!(chunk.compression(), Compression::UNCOMPRESSED, "{name}");
            let (s, t) = (chunk.statistics().unwrap(), arrow.statistics().unwrap());
            assert_eq!(s.null_count_opt(), t.null_count_opt(), "{name}");
            assert_eq!(s.min_bytes_opt(), None, "{name}");
        }
        let pages = &meta.offset_index().unwrap()[0][0].page_locations;
        assert_eq!(
            pages.len(),
            40_000usize.div_ceil(7_000),
            "pages cut by rows"
        );
    }

    /// Chunks whose dictionaries pass a small limit part of the way in (values after that
    /// are appended unlooked-up, repeats included) are PLAIN, read back exactly, have the
    /// statistics arrow-rs computes from every value, and a bloom filter holding them all.
    #[test]
    fn chunks_past_the_dictionary_limit_read_back_exactly() {
        let batch = batch();
        let props = || {
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(2).unwrap()))
                .set_dictionary_enabled(true)
                .set_dictionary_page_size_limit(300)
                .set_bloom_filter_enabled(true)
                .set_statistics_enabled(EnabledStatistics::Page)
                .set_max_row_group_row_count(Some(40_000))
                .build()
        };
        let (ours, meta, reference) = ours_and_arrow_rs(&batch, props);
        assert_eq!(read(&ours, None), batch);

        let reader = reader_with_bloom_filters(Bytes::from(ours));
        let mut plain = Vec::new();
        for (rg, c, chunk, arrow) in chunk_pairs(&meta, &reference) {
            let rows = batch.slice(rg * 40_000, meta.row_group(rg).num_rows() as usize);
            let name = chunk.column_path().string();
            if chunk.dictionary_page_offset().is_none() {
                plain.push(name.clone());
            }
            let (s, t) = (chunk.statistics().unwrap(), arrow.statistics().unwrap());
            assert_eq!(s.null_count_opt(), t.null_count_opt(), "{name}");
            assert_eq!(s.min_bytes_opt(), t.min_bytes_opt(), "{name}");
            if name != "longs" {
                assert_eq!(s.max_bytes_opt(), t.max_bytes_opt(), "{name}");
            }
            let values: Vec<&str> = match c {
                0..=4 => rows.column(c).as_string::<i32>().iter().flatten().collect(),
                _ => map_leaf_values(rows.column(5), c - 5),
            };
            assert_in_bloom_filter(&reader, rg, c, &values);
        }
        // Every chunk but those of a few short values (the map's keys) or none passed the
        // limit: 40 services, 5 long values and 60 map values at 300 bytes, the others
        // well before.
        assert_eq!(
            plain,
            ["runs", "wide", "longs", "big", "map.entries.values"].repeat(3)
        );
    }

    /// Flat columns without a dictionary (`write_plain`): PLAIN pages filled straight from
    /// the rows read back exactly, also through the offset index; pages are cut by the row
    /// and byte limits; the statistics are arrow-rs's (cut the same way for long values);
    /// a bloom filter holds every value; and random hex, compressed as random text,
    /// takes under 9 bytes a 16-character id (20 uncompressed with its length; 16.3 at
    /// level -3 were the literals left uncompressed).
    #[test]
    fn columns_without_a_dictionary_are_plain_pages_read_back_exactly() {
        without_a_dictionary_read_back_exactly(Encoding::PLAIN, 9.0);
    }

    /// The same columns DELTA_LENGTH_BYTE_ARRAY (`parquet_files::Layout::delta_lengths`):
    /// their lengths delta-packed, of one length (ids), of a few (`longs`), varying by
    /// one or two from row to row (`wide`), jumping between 0 and 5,000 bytes (`jumps`),
    /// none at all (`nulls`), in pages of up to 7,000 rows (blocks of 128 deltas, the last
    /// cut short); random ids take under 8.5 bytes each.
    #[test]
    fn columns_without_a_dictionary_read_back_exactly_with_delta_lengths() {
        without_a_dictionary_read_back_exactly(Encoding::DELTA_LENGTH_BYTE_ARRAY, 8.5);
    }

    fn without_a_dictionary_read_back_exactly(encoding: Encoding, bytes_an_id: f64) {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let ids: StringArray = (0..ROWS)
            .map(|i| (i % 11 != 0).then(|| format!("{:016x}", rng.next_u64())))
            .collect();
        let jumps: StringArray = (0..ROWS)
            .map(|i| match (i % 97, rng.below(3)) {
                (0, _) => None,
                (_, 0) => Some(String::new()),
                (_, 1) => Some("j".repeat(rng.below(5_000))),
                _ => Some(format!("{i}")),
            })
            .collect();
        let base = batch();
        let mut columns: Vec<ArrayRef> = base.columns().to_vec();
        columns.push(Arc::new(ids));
        columns.push(Arc::new(jumps));
        let mut fields: Vec<Field> = base
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("ids", DataType::Utf8, true));
        fields.push(Field::new("jumps", DataType::Utf8, true));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let props = || {
            props()
                .into_builder()
                .set_dictionary_enabled(false)
                .set_encoding(encoding)
                .set_bloom_filter_enabled(true)
                .build()
        };
        let (ours, meta, reference) = ours_and_arrow_rs(&batch, props);
        assert_eq!(read(&ours, None), batch);
        assert_pages_found(&ours, &batch, 9_999, 20_001);

        let reader = reader_with_bloom_filters(Bytes::from(ours));
        let offsets = meta.offset_index().unwrap();
        for (rg, c, chunk, arrow) in chunk_pairs(&meta, &reference) {
            let rows_in_group = meta.row_group(rg).num_rows();
            let rows = batch.slice(rg * 40_000, rows_in_group as usize);
            let name = chunk.column_path().string();
            if name.starts_with("map") {
                continue;
            }
            let column = if c < 5 { c } else { c - 1 };
            assert!(chunk.dictionary_page_offset().is_none(), "{name}");
            assert_eq!(chunk.num_values(), arrow.num_values(), "{name}");
            let mut encodings: Vec<Encoding> = chunk.encodings().collect();
            encodings.sort_by_key(|e| *e as i32);
            let mut want = vec![encoding, Encoding::RLE];
            want.sort_by_key(|e| *e as i32);
            assert_eq!(encodings, want, "{name}");
            let values: Vec<&str> = rows
                .column(column)
                .as_string::<i32>()
                .iter()
                .flatten()
                .collect();
            let (s, t) = (chunk.statistics().unwrap(), arrow.statistics().unwrap());
            assert_statistics(&name, s, t, &values);
            assert_in_bloom_filter(&reader, rg, c, &values);
            // Pages of at most 7,000 rows, cut sooner by 64 KiB of values.
            let pages = &offsets[rg][c].page_locations;
            let starts: Vec<i64> = pages.iter().map(|p| p.first_row_index).collect();
            let mut ends = starts[1..].to_vec();
            ends.push(rows_in_group);
            assert!(
                starts
                    .iter()
                    .zip(&ends)
                    .all(|(s, e)| e - s <= 7_000 && e > s),
                "{name}: {starts:?}"
            );
            if name == "longs" {
                // 75 bytes a value, 79 with its length (PLAIN): 64 KiB is 830 or 874 rows.
                let rows_a_page = match encoding {
                    Encoding::PLAIN => 830,
                    _ => 874,
                };
                let expected = (rows_in_group as usize).div_ceil(rows_a_page);
                assert_eq!(pages.len(), expected, "{name}: {starts:?}");
            }
            if name == "ids" {
                let per_id = chunk.compressed_size() as f64 / values.len() as f64;
                assert!(per_id < bytes_an_id, "{per_id:.2} bytes an id");
            }
        }
    }

    /// Attribute maps whose values are one in three near-unique (`SPARSE_SHARE`) give
    /// their dictionary up at the probe, within one run (a single batch in order), and are
    /// PLAIN pages that read back exactly, also through the offset index, with arrow-rs's
    /// statistics (over every value) and a bloom filter holding every value; their keys,
    /// and a map of the same shape whose values repeat, keep their dictionaries.
    #[test]
    fn sparse_map_values_give_their_dictionary_up() {
        let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
        let (mut sparse, mut dense) = (
            MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
        );
        for i in 0..ROWS {
            // Empty maps, null values, first values repeating the row before's.
            let entries = match i % 97 {
                0 => 0,
                _ => 3,
            };
            let unique = match i % 5 {
                0 if i > 0 => i - 1,
                _ => i,
            };
            for k in 0..entries {
                for map in [&mut sparse, &mut dense] {
                    map.keys().append_value(format!("key.{k}"));
                }
                match (k, rng.below(50)) {
                    (_, 0) => sparse.values().append_null(),
                    (0, _) => sparse.values().append_value(format!("/item/{unique}")),
                    (_, v) => sparse.values().append_value(format!("v{}", v % 4)),
                }
                dense
                    .values()
                    .append_value(format!("{}", (unique % 16) * k));
            }
            sparse.append(true).unwrap();
            dense.append(true).unwrap();
        }
        let (sparse, dense) = (sparse.finish(), dense.finish());
        let schema = Schema::new(vec![
            Field::new("sparse", sparse.data_type().clone(), false),
            Field::new("dense", dense.data_type().clone(), false),
        ]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(sparse), Arc::new(dense)])
            .unwrap();
        let props = || {
            props()
                .into_builder()
                .set_bloom_filter_enabled(true)
                .build()
        };
        let (ours, meta, reference) = ours_and_arrow_rs(&batch, props);
        assert_eq!(read(&ours, None), batch);
        assert_pages_found(&ours, &batch, 12_345, 30_000);

        let reader = reader_with_bloom_filters(Bytes::from(ours));
        for (rg, c, chunk, arrow) in chunk_pairs(&meta, &reference) {
            let name = chunk.column_path().string();
            let has_dictionary = chunk.dictionary_page_offset().is_some();
            assert_eq!(has_dictionary, name != "sparse.entries.values", "{name}");
            let encodings: Vec<Encoding> = chunk.encodings().collect();
            if !has_dictionary {
                assert_eq!(encodings, [Encoding::PLAIN, Encoding::RLE], "{name}");
            }
            let rows = batch.slice(rg * 40_000, meta.row_group(rg).num_rows() as usize);
            let values = map_leaf_values(rows.column(c / 2), c % 2);
            let (s, t) = (chunk.statistics().unwrap(), arrow.statistics().unwrap());
            assert_statistics(&name, s, t, &values);
            assert_in_bloom_filter(&reader, rg, c, &values);
        }
    }

    /// Dictionary pages at zstd level 1 and data pages at the chunk's level, one context
    /// switched between them (`dictionary_codec`): the chunks read back exactly at other
    /// file levels too, and uncompressed files stay uncompressed.
    #[test]
    fn dictionary_pages_at_their_own_level_read_back() {
        let zstd = |level| Compression::ZSTD(ZstdLevel::try_new(level).unwrap());
        assert_eq!(dictionary_codec(zstd(2)), zstd(1));
        assert_eq!(dictionary_codec(zstd(9)), zstd(1));
        assert_eq!(dictionary_codec(zstd(1)), zstd(1));
        assert_eq!(
            dictionary_codec(Compression::UNCOMPRESSED),
            Compression::UNCOMPRESSED
        );
        let batch = batch().slice(0, 30_000);
        for codec in [zstd(1), zstd(9), Compression::UNCOMPRESSED] {
            let props = props().into_builder().set_compression(codec).build();
            let mut file = Vec::new();
            let meta = write_parquet(&mut file, &batch, props).unwrap();
            assert_eq!(read(&file, None), batch, "{codec}");
            // (The footer names the codec, not its level.)
            for c in meta.row_group(0).columns() {
                assert_eq!(
                    std::mem::discriminant(&c.compression()),
                    std::mem::discriminant(&codec),
                    "{}",
                    c.column_path()
                );
            }
        }
    }

    #[test]
    fn string_leaves_arrow_rs_writes_keep_their_codec() {
        // A nullable map with null rows is not this module's to write (`StringLeaf::leaves`):
        // arrow-rs writes it, compressed as `props` say, although the writers arrow-rs made
        // for the leaves this module takes have no codec.
        let mut map = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for i in 0..1000 {
            if i % 7 == 0 {
                map.append(false).unwrap();
                continue;
            }
            map.keys().append_value(format!("key.{}", i % 3));
            map.values().append_value(format!("value {}", i % 11));
            map.append(true).unwrap();
        }
        let map = map.finish();
        let words: StringArray = (0..1000)
            .map(|i| Some(format!("word {}", i % 13)))
            .collect();
        let schema = Schema::new(vec![
            Field::new("words", DataType::Utf8, false),
            Field::new("maybe", map.data_type().clone(), true),
        ]);
        let batch =
            RecordBatch::try_new(Arc::new(schema), vec![Arc::new(words), Arc::new(map)]).unwrap();
        let mut file = Vec::new();
        // Row groups of 300 rows: the fallback writers are made again for each.
        let props = props()
            .into_builder()
            .set_max_row_group_row_count(Some(300))
            .build();
        let meta = write_parquet(&mut file, &batch, props).unwrap();
        assert_eq!(read(&file, None), batch);
        assert_eq!(meta.num_row_groups(), 4);
        for row_group in meta.row_groups() {
            let columns = row_group.columns();
            assert_eq!(columns.len(), 3);
            for c in columns {
                assert!(
                    matches!(c.compression(), Compression::ZSTD(_)),
                    "{} is {}",
                    c.column_path(),
                    c.compression()
                );
            }
        }
    }

    #[test]
    fn rle_hybrid_packs_runs_and_groups() {
        let mut out = Vec::new();
        rle_hybrid(&[5u32; 10], 3, &mut out);
        assert_eq!(out, [20, 5], "one RLE run of 10");
        out.clear();
        rle_hybrid(&[1u8, 0, 1, 1, 0, 0, 1, 0, 1], 1, &mut out);
        assert_eq!(
            out,
            [(2 << 1) | 1, 0b0100_1101, 0b0000_0001],
            "two bit-packed groups"
        );
        out.clear();
        let wide: Vec<u32> = (0..8).map(|k| 0x1_0000 + k).collect();
        rle_hybrid(&wide, 17, &mut out);
        assert_eq!(out.len(), 1 + 17, "8 values of 17 bits are 17 bytes");
    }

    /// The dictionary gives each distinct value one id, in first-seen order, through
    /// growth and full 32-bit hash collisions (among 300,000 values some pairs collide:
    /// about n^2 / 2^33), with empty, short and long values.
    #[test]
    fn key_lists_number_rows_with_the_same_keys_alike() {
        // Lists that alternate (more than `KEY_LISTS` of them), repeat after being
        // forgotten, are empty, or hold the same bytes cut differently.
        let lists: Vec<Vec<&str>> = vec![
            vec!["http.route", "http.method"],
            vec!["http.route", "http.method", "app.flag"],
            vec![],
            vec!["ab", "c"],
            vec!["a", "bc"],
            vec!["abc"],
            vec!["http.method", "http.route"],
        ];
        let mut rng = Rng(5);
        let picks: Vec<usize> = (0..2_000)
            .map(|i| match i % 3 {
                0 => 0,
                _ => rng.below(lists.len()),
            })
            .collect();
        let mut map = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for &p in &picks {
            for key in &lists[p] {
                map.keys().append_value(key);
                map.values().append_value("v");
            }
            map.append(true).unwrap();
        }
        // A slice, whose offsets do not start at 0.
        let map = map.finish().slice(3, picks.len() - 3);
        let picks = &picks[3..];
        let (of_row, count) = key_lists(&map);
        assert_eq!(of_row.len(), picks.len());
        assert_eq!(count, *of_row.iter().max().unwrap() as usize + 1);
        for (i, &a) in of_row.iter().enumerate() {
            for (j, &b) in of_row.iter().enumerate().skip(i + 1).take(50) {
                if a == b {
                    assert_eq!(picks[i], picks[j], "rows {i} and {j} numbered {a}");
                }
                if j == i + 1 && picks[i] == picks[j] {
                    assert_eq!(a, b, "the same list twice in a row, rows {i} and {j}");
                }
            }
        }
        // Seven lists in all, and mostly the same one: far fewer numbers than rows.
        assert!(
            count < picks.len() / 2,
            "{count} numbers for {} rows",
            picks.len()
        );
    }

    #[test]
    fn dictionary_ids_are_first_seen_order_through_growth_and_collisions() {
        let mut rng = Rng(7);
        let mut values: Vec<Vec<u8>> = vec![Vec::new(), b"a".to_vec(), b"ab".to_vec()];
        for k in 0..300_000u64 {
            let len = [1, 3, 4, 7, 8, 9, 15, 16, 17, 32, 70][rng.below(11)];
            let mut v = format!("{k:x}-").into_bytes();
            v.extend((0..len).map(|_| b'a' + rng.below(26) as u8));
            values.push(v);
        }
        let seed = 0x1234_5678_9ABC_DEF0;
        let mut hashes: Vec<u32> = values.iter().map(|v| hash(v, seed)).collect();
        hashes.sort_unstable();
        assert!(
            hashes.windows(2).any(|w| w[0] == w[1]),
            "the test has values whose hashes collide"
        );

        let mut dictionary = Dictionary::with_seed(seed, usize::MAX);
        for (k, v) in values.iter().enumerate() {
            assert_eq!(dictionary.intern(v), k as u32);
        }
        // Again, in another order, and mixed with values not seen before.
        for (k, v) in values.iter().enumerate().rev().step_by(3) {
            assert_eq!(dictionary.intern(v), k as u32);
        }
        assert_eq!(dictionary.intern(b"not seen"), values.len() as u32);
        assert_eq!(dictionary.len(), values.len() + 1);
        assert_eq!(
            dictionary.page.len(),
            values.iter().map(|v| 4 + v.len()).sum::<usize>() + 4 + 8
        );
        assert!(dictionary.slots.len() >= 2 * dictionary.len());
        for (k, v) in values.iter().enumerate() {
            assert_eq!(dictionary.value(k as u32), *v);
        }
    }

    #[test]
    fn hash_and_same_bytes_see_every_byte() {
        let mut rng = Rng(11);
        for len in 0..40 {
            let a: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            assert!(same_bytes(&a, &a.clone()));
            assert_eq!(hash(&a, 1), hash(&a.clone(), 1));
            let mut longer = a.clone();
            longer.push(0);
            assert!(!same_bytes(&a, &longer) && !same_bytes(&longer, &a));
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 1 << rng.below(8);
                assert!(!same_bytes(&a, &b), "{len} bytes differing at {at}");
                assert_ne!(hash(&a, 1), hash(&b, 1), "{len} bytes differing at {at}");
            }
        }
    }

    /// The encoding as written before runs were found 8 values at a time: value by value.
    fn rle_hybrid_by_value<T: Copy + Eq + Into<u32>>(values: &[T], width: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let n = values.len();
        let mut literal: Option<(usize, usize)> = None;
        let mut i = 0;
        while i < n {
            let v = values[i];
            let mut j = i + 1;
            while j < n && values[j] == v {
                j += 1;
            }
            if j - i >= 8 {
                literal = None;
                uleb128(((j - i) as u64) << 1, &mut out);
                let bytes = usize::from(width).div_ceil(8);
                out.extend_from_slice(&v.into().to_le_bytes()[..bytes]);
                i = j;
            } else {
                let (at, groups) = match literal {
                    Some((at, groups)) if groups < 63 => (at, groups),
                    _ => {
                        out.push(0);
                        (out.len() - 1, 0)
                    }
                };
                let group = &values[i..(i + 8).min(n)];
                // Bit b of the group's `width` bytes is bit b % width of value b / width.
                let width = usize::from(width);
                let mut bytes = vec![0u8; width];
                for b in 0..8 * width {
                    let v = group.get(b / width).map_or(0, |&v| v.into());
                    bytes[b / 8] |= (((v >> (b % width)) & 1) as u8) << (b % 8);
                }
                out.extend_from_slice(&bytes);
                out[at] = (((groups + 1) << 1) | 1) as u8;
                literal = Some((at, groups + 1));
                i += group.len();
            }
        }
        out
    }

    /// Random sequences of runs of random lengths (so runs of 8 start anywhere in a group
    /// of 8, and bit-packed stretches pass 63 groups), as levels and as wide ids.
    #[test]
    fn rle_hybrid_matches_encoding_value_by_value() {
        let mut rng = Rng(3);
        for case in 0..3_000 {
            let (max, longest) = match case % 4 {
                0 => (1, 6),
                1 => (2, 12),
                2 => (3, 40),
                _ => (1, 3),
            };
            let mut levels = Vec::new();
            for _ in 0..rng.below(120) {
                let v = rng.below(max + 1) as u8;
                levels.extend(std::iter::repeat_n(v, 1 + rng.below(longest)));
            }
            // Rows of a map (0 then 1s) as repetition levels are.
            if case % 4 == 3 {
                levels
                    .iter_mut()
                    .for_each(|l| *l = u8::from(rng.below(6) != 0));
            }
            let width = bit_width(max as u32);
            let mut out = Vec::new();
            rle_hybrid(&levels, width, &mut out);
            assert_eq!(
                out,
                rle_hybrid_by_value(&levels, width),
                "levels {levels:?}"
            );

            let top = [1u32, 255, 256, 70_000, u32::MAX][case % 5];
            let ids: Vec<u32> = levels
                .iter()
                .map(|&l| {
                    // Up to `top` itself: saturating where 3 * (u32::MAX / 3) + 1 would not fit.
                    (u32::from(l) * (top / 3))
                        .saturating_add(rng.below(2) as u32 & u32::from(l > 1))
                })
                .collect();
            let width = bit_width(ids.iter().copied().max().unwrap_or(0)).max(1);
            out.clear();
            rle_hybrid(&ids, width, &mut out);
            assert_eq!(out, rle_hybrid_by_value(&ids, width), "ids {ids:?}");
        }
    }

    /// Pages cut by bytes in a dictionary chunk (ids of one size, rows found by
    /// bisection) end where the row-by-row count of a PLAIN chunk whose values are that
    /// size would end them.
    #[test]
    fn dictionary_pages_end_where_counting_row_by_row_ends_them() {
        let mut rng = Rng(5);
        for _ in 0..500 {
            let mut interned = Interned {
                dictionary: Dictionary::new(usize::MAX),
                ids: Vec::new(),
                def: Vec::new(),
                rep: Vec::new(),
                row_ends: Vec::new(),
                nulls: 0,
            };
            let value_len = rng.below(4);
            interned.dictionary.intern(&b"abc"[..value_len]);
            let (mut levels, mut values) = (0u32, 0u32);
            for _ in 0..1 + rng.below(300) {
                let n = rng.below(12) as u32;
                levels += n.max(1);
                values += n;
                interned.row_ends.push((levels, values));
            }
            interned.ids = vec![0; values as usize];
            let (row_limit, byte_limit) = (1 + rng.below(100), 1 + rng.below(200));
            let mut first = 0;
            while first < interned.row_ends.len() {
                let end = interned.page_end(first, row_limit, byte_limit, Some(4 + value_len));
                assert_eq!(end, interned.page_end(first, row_limit, byte_limit, None));
                assert!(end > first);
                first = end;
            }
        }
    }

    #[test]
    fn statistics_bounds_hold_when_cut() {
        let v = "aé".repeat(40);
        let stats = statistics([v.as_bytes(), b"b"].into_iter(), 3, Some(64));
        let Statistics::ByteArray(s) = stats else {
            panic!()
        };
        let min = s.min_opt().unwrap().data();
        assert!(min.len() <= 64 && v.as_bytes().starts_with(min) && !s.min_is_exact());
        assert_eq!(s.max_opt().unwrap().data(), b"b");
        assert_eq!(s.null_count_opt(), Some(3));
        assert_eq!(
            increment_utf8("a\u{10FFFF}".as_bytes()),
            Some(b"b".to_vec())
        );
        assert_eq!(
            increment_utf8("\u{D7FF}".as_bytes()),
            Some("\u{E000}".as_bytes().to_vec())
        );
        assert_eq!(cut_utf8("aé".as_bytes(), 2), b"a");
    }
}
