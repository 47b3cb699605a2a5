//! Rollup: RED metrics (calls, errors, latency) per minute and span key, computed from
//! `spans` batches at ingest so that deploy analysis reads a few thousand `rollups`
//! rows instead of millions of spans.
//!
//! Latency is kept as a [`LatencySketch`], a log-bucketed histogram whose quantiles are
//! within 1% relative error and which merges by adding counts bucket by bucket. Its
//! Arrow form is a plain `LIST(STRUCT(bucket, count))`, so any SQL engine can merge
//! sketches across minutes, versions or hosts; [`sql_macros`] gives the DuckDB macros.
//! Elsewhere (Spark, Trino) the same merge is `unnest` + `GROUP BY bucket` +
//! `sum(count)`, and a quantile is the first bucket, in bucket order, whose running
//! sum of counts exceeds `q * (total - 1)`, read through [`bucket_value`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock};

use arrow_array::{
    builder::StringBuilder, Array, ArrayRef, Float64Array, Int32Array, Int64Array, ListArray,
    RecordBatch, StringArray, StructArray, TimestampNanosecondArray,
};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::ArrowError;

use crate::decode::Contexts;
use crate::error::{Error, Result};
use crate::prefetch::{prefetch, AHEAD};
use crate::schema::{self, col, rollup_col, STATUS_CODES, TIMEZONE};

/// Ratio between consecutive bucket bounds. The representative value of a bucket,
/// `2 * gamma^i / (gamma + 1)`, is within `(gamma - 1) / (gamma + 1)` = 1% of every
/// value in the bucket, hence of every quantile read from it.
pub const SKETCH_GAMMA: f64 = 1.01 / 0.99;

const NANOS_PER_MINUTE: i64 = 60_000_000_000;
const STATUS_ERROR: &str = STATUS_CODES[2];

/// The bucket of a duration in ns: `ceil(log_gamma(ns))`, i.e. bucket `i` holds
/// `(gamma^(i-1), gamma^i]`. Durations below 1 ns (0, or negative ones from clock skew)
/// count as 1 ns, bucket 0, whose value reads back as 0.99 ns.
///
/// Computed with two table lookups against the bounds `floor(gamma^i)` instead of a
/// `ln` per span (2.8 vs 9 ns). Code that computes `ceil(ln(v) / ln(gamma))` in floating
/// point instead (SQL, the Python tests) can only disagree for a `v` within rounding of
/// a bucket bound, where both neighbouring buckets are within 1% of `v`.
pub fn bucket_of(ns: i64) -> i32 {
    let v = ns.max(1) as u64;
    let exp = 63 - v.leading_zeros();
    let top = if exp >= CELL_BITS {
        v >> (exp - CELL_BITS)
    } else {
        v << (CELL_BITS - exp)
    };
    let cell = ((exp << CELL_BITS) as usize) | (top as usize & CELL_MASK);
    let t = bucket_table();
    let base = t.cell_base[cell];
    i32::from(base) + i32::from(v > t.upper[usize::from(base)])
}

/// The value a bucket stands for in quantiles: `2 * gamma^i / (gamma + 1)`. `powf`
/// rather than `powi`, to compute it the way SQL's `pow` does. The values of buckets
/// 0..=[`MAX_BUCKET`] are computed once: a `powf` for each of the three quantiles of
/// every rollup row was a third of [`Rollups::finish`].
pub fn bucket_value(bucket: i32) -> f64 {
    static VALUES: OnceLock<Vec<f64>> = OnceLock::new();
    let values = VALUES.get_or_init(|| (0..=MAX_BUCKET).map(computed_bucket_value).collect());
    usize::try_from(bucket)
        .ok()
        .and_then(|b| values.get(b))
        .copied()
        .unwrap_or_else(|| computed_bucket_value(bucket))
}

fn computed_bucket_value(bucket: i32) -> f64 {
    2.0 * SKETCH_GAMMA.powf(f64::from(bucket)) / (SKETCH_GAMMA + 1.0)
}

/// Cells split each power of two of the u64 range into 2^CELL_BITS equal parts. A cell
/// is at most 1/64 = 1.6% wide relative to its values and a bucket is 2% wide, so a
/// cell holds at most one bucket bound: each value is in its cell's first bucket or
/// the next one.
const CELL_BITS: u32 = 6;
const CELL_MASK: usize = (1 << CELL_BITS) - 1;

struct BucketTable {
    /// `upper[i] = floor(gamma^i)`, the largest integer in bucket `i`, up to the first
    /// bound past u64::MAX (which saturates to it).
    upper: Vec<u64>,
    /// Bucket of the smallest integer of each cell.
    cell_base: Vec<u16>,
}

fn bucket_table() -> &'static BucketTable {
    static TABLE: OnceLock<BucketTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut upper = Vec::new();
        loop {
            let bound = SKETCH_GAMMA.powf(upper.len() as f64).floor() as u64;
            upper.push(bound);
            if bound == u64::MAX {
                break;
            }
        }
        let cell_base = (0..(64usize << CELL_BITS))
            .map(|cell| {
                let exp = (cell >> CELL_BITS) as u32;
                let top = ((1 << CELL_BITS) | (cell & CELL_MASK)) as u64;
                let lowest = if exp >= CELL_BITS {
                    top << (exp - CELL_BITS)
                } else {
                    top >> (CELL_BITS - exp)
                };
                // About 2,220 buckets cover u64, well within u16.
                upper.partition_point(|&u| u < lowest) as u16
            })
            .collect();
        BucketTable { upper, cell_base }
    })
}

/// A mergeable latency distribution with 1% relative accuracy (DDSketch-style
/// log buckets, see [`bucket_of`]).
///
/// Quantile rank rule: `quantile(q)` is the value of the bucket holding the element of
/// 0-based rank `floor(q * (count - 1))` in sorted order (numpy's `method="lower"`):
/// the first bucket whose running count exceeds `q * (count - 1)`. The SQL macros use
/// the same rule, so Rust and SQL agree bucket for bucket.
///
/// In memory a sketch keeps its first few occupied buckets inline, then switches to
/// counts dense from the lowest to the highest occupied bucket (see `Counts`). The
/// Arrow form is sparse.
#[derive(Debug, Clone, Default)]
pub struct LatencySketch {
    counts: Counts,
    total: u64,
}

/// The bucket of `i64::MAX` ns; bucket indices run from 0 to this.
pub const MAX_BUCKET: i32 = 2184;

/// Occupied buckets a sketch holds inline before it allocates dense counts. On a
/// recorded shop workload (4 requests of 8,192 spans), rollup keys see 2.8 spans on
/// average and 95% of keys occupy at most 8 buckets.
const INLINE_BUCKETS: usize = 8;

/// A sketch's counts. Rollups keep one sketch per minute and key, and most keys see
/// only a few spans: allocating, zero-filling and walking a dense range (54 buckets
/// on average for those few spans) per key was most of the cost of computing
/// rollups, so small sketches keep their buckets inline instead. Which form a sketch
/// has follows from its content (inline exactly when it has at most
/// [`INLINE_BUCKETS`] occupied buckets), but equality compares content anyway.
#[derive(Debug, Clone)]
enum Counts {
    Inline(InlineCounts),
    Dense(DenseCounts),
}

impl Default for Counts {
    fn default() -> Self {
        Counts::Inline(InlineCounts::default())
    }
}

/// Up to [`INLINE_BUCKETS`] occupied buckets, in ascending order, with non-zero counts.
#[derive(Debug, Clone, Default)]
struct InlineCounts {
    len: usize,
    buckets: [i32; INLINE_BUCKETS],
    counts: [u64; INLINE_BUCKETS],
}

impl InlineCounts {
    fn entries(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        let len = self.len;
        self.buckets[..len]
            .iter()
            .copied()
            .zip(self.counts[..len].iter().copied())
    }

    /// Adds `n > 0` to `bucket`; false, changing nothing, when `bucket` is new and
    /// there is no room left for it.
    fn add(&mut self, bucket: i32, n: u64) -> bool {
        let len = self.len;
        let pos = self.buckets[..len]
            .iter()
            .position(|&b| b >= bucket)
            .unwrap_or(len);
        if pos < len && self.buckets[pos] == bucket {
            self.counts[pos] = self.counts[pos].saturating_add(n);
            return true;
        }
        if len == INLINE_BUCKETS {
            return false;
        }
        // Element by element: new buckets mostly go last, where `copy_within` would
        // still call `memmove` twice for nothing.
        for k in (pos..len).rev() {
            self.buckets[k + 1] = self.buckets[k];
            self.counts[k + 1] = self.counts[k];
        }
        self.buckets[pos] = bucket;
        self.counts[pos] = n;
        self.len += 1;
        true
    }
}

/// Counts dense from bucket `offset`: an add is an index instead of a search (about
/// 5x faster per span than a binary search), and since buckets only span
/// 0..=[`MAX_BUCKET`], counts never exceed ~17 KB (typical latency spreads take
/// 2-4 KB).
#[derive(Debug, Clone, Default)]
struct DenseCounts {
    /// Bucket of `counts[0]`.
    offset: i32,
    /// First and last are non-zero unless empty.
    counts: Vec<u64>,
}

impl DenseCounts {
    fn entries(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        (self.offset..)
            .zip(self.counts.iter().copied())
            .filter(|&(_, n)| n > 0)
    }

    /// Adds `n > 0` to `bucket`, which callers keep within 0..=MAX_BUCKET. Inlined
    /// for the common case, a bucket within the range: keys with many spans add
    /// almost only there, and a call per add made those adds about 40% dearer.
    #[inline]
    fn add(&mut self, bucket: i32, n: u64) {
        match usize::try_from(bucket - self.offset) {
            Ok(k) if k < self.counts.len() => self.counts[k] = self.counts[k].saturating_add(n),
            _ => self.add_outside_range(bucket, n),
        }
    }

    /// Out of line, which keeps [`DenseCounts::add`] small enough to inline.
    #[inline(never)]
    fn add_outside_range(&mut self, bucket: i32, n: u64) {
        self.cover(bucket);
        let k = (bucket - self.offset) as usize;
        self.counts[k] = self.counts[k].saturating_add(n);
    }

    /// Extends the dense range with zeros so that it includes `bucket`.
    fn cover(&mut self, bucket: i32) {
        if self.counts.is_empty() {
            self.offset = bucket;
            self.counts.push(0);
        } else if bucket < self.offset {
            let grow = (self.offset - bucket) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = bucket;
        } else {
            let len = (bucket - self.offset) as usize + 1;
            if len > self.counts.len() {
                self.counts.resize(len, 0);
            }
        }
    }
}

/// For each of `ranks`, which ascend, the first bucket, in bucket order, whose running
/// count exceeds it; the last bucket if none does, which happens only when `total - 1`
/// rounds up to `total` as f64 (above 2^53). One walk of `entries`, empty only for an
/// empty sketch, whose quantiles are `None` whatever this returns.
fn buckets_past<const N: usize>(
    entries: impl Iterator<Item = (i32, u64)>,
    ranks: [f64; N],
) -> [i32; N] {
    let mut out = [0; N];
    let mut next = 0;
    let mut seen = 0u64;
    let mut last = 0;
    for (b, n) in entries {
        seen += n;
        while next < N && seen as f64 > ranks[next] {
            out[next] = b;
            next += 1;
        }
        if next == N {
            return out;
        }
        last = b;
    }
    out[next..].fill(last);
    out
}

/// Equal when they hold the same counts, whichever form each keeps them in.
impl PartialEq for LatencySketch {
    fn eq(&self, other: &Self) -> bool {
        self.total == other.total && self.buckets().eq(other.buckets())
    }
}

impl Eq for LatencySketch {}

impl LatencySketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one duration in nanoseconds.
    pub fn add(&mut self, ns: i64) {
        self.add_to_bucket(bucket_of(ns), 1);
    }

    /// Number of durations recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Occupied buckets and their counts, in bucket order.
    pub fn buckets(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        let (inline, dense) = match &self.counts {
            Counts::Inline(c) => (Some(c), None),
            Counts::Dense(c) => (None, Some(c)),
        };
        let inline = inline.into_iter().flat_map(InlineCounts::entries);
        inline.chain(dense.into_iter().flat_map(DenseCounts::entries))
    }

    /// Adds `other`'s counts into this sketch; the result is what one sketch fed both
    /// inputs would hold.
    pub fn merge(&mut self, other: &LatencySketch) {
        if other.total == 0 {
            return;
        }
        if self.total == 0 {
            self.clone_from(other);
            return;
        }
        for (bucket, n) in other.buckets() {
            self.add_to_bucket(bucket, n);
        }
    }

    /// The `q`-quantile (q in [0, 1]) in nanoseconds, under the rank rule in the type's
    /// docs; `None` for an empty sketch or a `q` outside [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.quantiles([q])[0]
    }

    /// [`LatencySketch::quantile`] of each of `qs` in one walk of the buckets, for
    /// [`Rollups::finish`]'s three quantiles of every row. The valid ones among `qs`
    /// must ascend.
    fn quantiles<const N: usize>(&self, qs: [f64; N]) -> [Option<f64>; N] {
        let valid = qs.map(|q| (0.0..=1.0).contains(&q) && self.total > 0);
        // An invalid `q` ranks first, so that it never holds up the walk.
        let ranks: [f64; N] = std::array::from_fn(|k| match valid[k] {
            true => qs[k] * (self.total - 1) as f64,
            false => f64::NEG_INFINITY,
        });
        // A loop per form rather than one over `buckets()`, whose chained iterators
        // cost more than the walk itself on a few inline buckets.
        let buckets = match &self.counts {
            Counts::Inline(c) => buckets_past(c.entries(), ranks),
            Counts::Dense(c) => buckets_past(c.entries(), ranks),
        };
        std::array::from_fn(|k| valid[k].then(|| bucket_value(buckets[k])))
    }

    /// Callers keep `bucket` within 0..=MAX_BUCKET, which bounds the dense range.
    fn add_to_bucket(&mut self, bucket: i32, n: u64) {
        if n == 0 {
            return;
        }
        match &mut self.counts {
            Counts::Inline(inline) => {
                if !inline.add(bucket, n) {
                    self.go_dense(bucket);
                    return self.add_to_bucket(bucket, n);
                }
            }
            Counts::Dense(dense) => dense.add(bucket, n),
        }
        self.total = self.total.saturating_add(n);
    }

    /// Moves inline counts to the dense form, its range covering `bucket` (the one about
    /// to be added) as well, in one allocation: added one by one, the inline buckets grew
    /// the range, and reallocated it, up to eight times. Once per sketch at most, and kept
    /// out of [`LatencySketch::add_to_bucket`] so that the per-span path stays small.
    #[cold]
    fn go_dense(&mut self, bucket: i32) {
        if let Counts::Inline(inline) = &self.counts {
            let buckets = &inline.buckets[..inline.len];
            let low = buckets.first().map_or(bucket, |&b| b.min(bucket));
            let high = buckets.last().map_or(bucket, |&b| b.max(bucket));
            let mut counts = vec![0; (high - low) as usize + 1];
            for (b, n) in inline.entries() {
                counts[(b - low) as usize] = n;
            }
            self.counts = Counts::Dense(DenseCounts {
                offset: low,
                counts,
            });
        }
    }

    /// Reads row `row` of a `latency_sketch` column; a null row is an empty sketch.
    /// Entries need not be sorted or distinct (hand-written data): equal buckets add up.
    pub fn from_arrow(list: &ListArray, row: usize) -> Result<LatencySketch> {
        SketchColumn::new(list)?.sketch(row)
    }
}

/// The `latency_sketch` column for `sketches`, one list per sketch.
pub fn sketch_array<'a>(
    sketches: impl IntoIterator<Item = &'a LatencySketch>,
) -> Result<ListArray> {
    let mut offsets = vec![0i32];
    let mut buckets = Vec::new();
    let mut counts = Vec::new();
    for s in sketches {
        // `for_each` rather than a `for` loop: it runs the loop of the sketch's own
        // form, where `next()` would go through the chained iterators per bucket.
        s.buckets().for_each(|(b, n)| {
            buckets.push(b);
            counts.push(i64::try_from(n).unwrap_or(i64::MAX));
        });
        offsets.push(
            i32::try_from(buckets.len())
                .map_err(|_| invalid("latency_sketch column over 2^31 entries".into()))?,
        );
    }
    let entries = StructArray::try_new(
        schema::sketch_entry_fields(),
        vec![
            Arc::new(Int32Array::from(buckets)) as ArrayRef,
            Arc::new(Int64Array::from(counts)),
        ],
        None,
    )?;
    Ok(ListArray::try_new(
        schema::sketch_item_field(),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(entries),
        None,
    )?)
}

/// A `latency_sketch` column with its children downcast once.
struct SketchColumn<'a> {
    list: &'a ListArray,
    buckets: &'a Int32Array,
    counts: &'a Int64Array,
}

impl<'a> SketchColumn<'a> {
    fn new(list: &'a ListArray) -> Result<Self> {
        let entries = downcast::<StructArray>(list.values().as_ref(), rollup_col::LATENCY_SKETCH)?;
        let field = |name: &str| {
            entries
                .column_by_name(name)
                .ok_or_else(|| invalid(format!("latency_sketch entries lack `{name}`")))
        };
        let buckets = downcast::<Int32Array>(field(rollup_col::BUCKET)?, rollup_col::BUCKET)?;
        let counts = downcast::<Int64Array>(field(rollup_col::COUNT)?, rollup_col::COUNT)?;
        Ok(SketchColumn {
            list,
            buckets,
            counts,
        })
    }

    fn sketch(&self, row: usize) -> Result<LatencySketch> {
        let mut s = LatencySketch::new();
        if row >= self.list.len() {
            return Err(invalid(format!("no row {row} in latency_sketch")));
        }
        if self.list.is_null(row) {
            return Ok(s);
        }
        let offsets = self.list.value_offsets();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        for k in start..end {
            if self.buckets.is_null(k) || self.counts.is_null(k) {
                return Err(invalid("null in latency_sketch entries".into()));
            }
            let n = u64::try_from(self.counts.value(k))
                .map_err(|_| invalid("negative count in latency_sketch".into()))?;
            let bucket = self.buckets.value(k);
            if !(0..=MAX_BUCKET).contains(&bucket) {
                return Err(invalid(format!(
                    "latency_sketch bucket {bucket} outside 0..={MAX_BUCKET}"
                )));
            }
            s.add_to_bucket(bucket, n);
        }
        Ok(s)
    }
}

/// DuckDB macros over `latency_sketch` values (text in `rollup.sql`), with
/// [`SKETCH_GAMMA`] filled in; run once per connection. Both take a LIST of sketches,
/// typically `list(latency_sketch)` in an aggregate query:
///
/// ```sql
/// select service_version,
///        sketch_quantile(list(latency_sketch), 0.99) as p99_ns,
///        sketch_merge(list(latency_sketch)) as latency_sketch   -- store coarser rollups
/// from rollups where service_name = 'checkout' group by 1;
/// ```
///
/// `sketch_merge(sketches)` sums counts per bucket into one sketch of the column's own
/// type; `sketch_quantile(sketches, q)` is the merged sketch's quantile under
/// [`LatencySketch`]'s rank rule, NULL for no data or q outside [0, 1]; `sketch_value(b)`
/// is a bucket's value. For one row's own sketch, pass `[latency_sketch]`.
pub fn sql_macros() -> String {
    include_str!("rollup.sql").replace("{gamma}", &format!("{SKETCH_GAMMA:?}"))
}

/// Per-key totals of one rollup row.
#[derive(Debug, Clone)]
struct Agg {
    calls: i64,
    errors: i64,
    sum_ns: i64,
    min_ns: i64,
    max_ns: i64,
    sketch: LatencySketch,
}

impl Default for Agg {
    fn default() -> Self {
        Agg {
            calls: 0,
            errors: 0,
            sum_ns: 0,
            min_ns: i64::MAX,
            max_ns: i64::MIN,
            sketch: LatencySketch::new(),
        }
    }
}

impl Agg {
    fn add_span(&mut self, duration_ns: i64, error: bool) {
        self.calls += 1;
        self.errors += i64::from(error);
        self.sum_ns = self.sum_ns.saturating_add(duration_ns);
        self.min_ns = self.min_ns.min(duration_ns);
        self.max_ns = self.max_ns.max(duration_ns);
        self.sketch.add(duration_ns);
    }

    fn merge(&mut self, other: &Agg) {
        self.calls = self.calls.saturating_add(other.calls);
        self.errors = self.errors.saturating_add(other.errors);
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sketch.merge(&other.sketch);
    }
}

/// Hashing for the per-span lookups (strings to intern, rollup keys). Seeded per
/// process like std's `RandomState`, so span names crafted to collide need the seed,
/// but one 64x64->128-bit multiply per word instead of SipHash rounds, which cost more
/// than the rest of the per-span work.
#[derive(Debug, Clone, Copy)]
struct FoldState {
    seed: u64,
    key: u64,
}

impl Default for FoldState {
    fn default() -> Self {
        static SEEDS: OnceLock<(u64, u64)> = OnceLock::new();
        let &(seed, key) = SEEDS.get_or_init(|| {
            let random = std::collections::hash_map::RandomState::new();
            // An even key would zero the low bits of every product.
            (random.hash_one(0u8), random.hash_one(1u8) | 1)
        });
        FoldState { seed, key }
    }
}

impl BuildHasher for FoldState {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher {
            acc: self.seed,
            key: self.key,
        }
    }
}

struct FoldHasher {
    acc: u64,
    key: u64,
}

impl FoldHasher {
    fn mix(&mut self, word: u64) {
        let product = u128::from(self.acc ^ word) * u128::from(self.key);
        self.acc = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(le_u64(w));
        }
        let tail = words.remainder();
        // The tail's length in the top byte keeps tails of different lengths apart
        // whatever their bytes (a length xor-ed in did not).
        self.mix(tail_word(tail) | (tail.len() as u64) << 56);
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(n.into());
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(n.into());
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_i64(&mut self, n: i64) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.acc
    }
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

fn le_u32(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word).into()
}

/// The little-endian value of up to 7 bytes, read in at most two loads that may
/// overlap rather than copied into a zeroed word: a copy of a variable length is a
/// call to `memcpy`, which cost more than the hashing around it.
fn tail_word(tail: &[u8]) -> u64 {
    let len = tail.len();
    match len {
        0 => 0,
        1..=3 => {
            let byte = |k: usize| u64::from(tail[k]) << (8 * k);
            byte(0) | byte(len / 2) | byte(len - 1)
        }
        _ => le_u32(tail) | le_u32(&tail[len - 4..]) << (8 * (len - 4)),
    }
}

/// Slots of [`Interner::column`]'s table of recent values.
const RECENT_SLOTS: usize = 64;

/// The slot of `bytes` in [`Interner::column`]'s table: unseeded, since strings
/// crafted to share a slot only fall back to the seeded map.
fn recent_slot(bytes: &[u8]) -> usize {
    let len = bytes.len();
    let words = match len {
        0..8 => tail_word(bytes),
        _ => le_u64(bytes) ^ le_u64(&bytes[len - 8..]).rotate_left(32),
    };
    let mixed = (words ^ len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> (64 - RECENT_SLOTS.trailing_zeros())) as usize
}

/// An interned string; [`NULL`] for a null key column.
type Sym = u32;
const NULL: Sym = Sym::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    minute: i64,
    service_name: Sym,
    service_version: Sym,
    deployment_environment: Sym,
    span_name: Sym,
    span_kind: Sym,
}

/// Four words rather than the derived six: one multiply each, per span.
impl std::hash::Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let pair = |a: Sym, b: Sym| u64::from(a) | u64::from(b) << 32;
        state.write_i64(self.minute);
        state.write_u64(pair(self.service_name, self.service_version));
        state.write_u64(pair(self.deployment_environment, self.span_name));
        state.write_u32(self.span_kind);
    }
}

impl Key {
    fn syms(&self) -> [Sym; 5] {
        [
            self.service_name,
            self.service_version,
            self.deployment_environment,
            self.span_name,
            self.span_kind,
        ]
    }

    fn map_syms(&self, mut f: impl FnMut(Sym) -> Sym) -> Key {
        Key {
            minute: self.minute,
            service_name: f(self.service_name),
            service_version: f(self.service_version),
            deployment_environment: f(self.deployment_environment),
            span_name: f(self.span_name),
            span_kind: f(self.span_kind),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Interner {
    ids: HashMap<Box<str>, Sym, FoldState>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as Sym;
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    fn resolve(&self, sym: Sym) -> Option<&str> {
        self.names.get(sym as usize).map(|s| &**s)
    }

    /// Symbols of a string column. A column holds few distinct values (span kinds,
    /// the operations of a few services), so each row first tries the value last
    /// seen in its slot of a small table indexed by the string's length and end
    /// words: a comparison, where the map's lookup hashes every word of the string and
    /// probes. Mostly that is the previous row's value (spans arrive grouped by
    /// resource and scope), which is what was tried alone before.
    fn column(&mut self, col: &StringArray) -> Vec<Sym> {
        let mut out = Vec::with_capacity(col.len());
        let mut recent: [Option<(&str, Sym)>; RECENT_SLOTS] = [None; RECENT_SLOTS];
        for i in 0..col.len() {
            if col.is_null(i) {
                out.push(NULL);
                continue;
            }
            let s = col.value(i);
            let slot = &mut recent[recent_slot(s.as_bytes())];
            let sym = match *slot {
                Some((r, sym)) if r == s => sym,
                _ => {
                    let sym = self.intern(s);
                    *slot = Some((s, sym));
                    sym
                }
            };
            out.push(sym);
        }
        out
    }

    /// Symbols of a string column whose rows of one group hold one value: `groups` the
    /// group of each row, of `count` groups. Each group's value is looked up once, at
    /// its first row, and the other rows are not read.
    fn column_of_groups(&mut self, col: &StringArray, groups: &[u32], count: usize) -> Vec<Sym> {
        let mut syms: Vec<Option<Sym>> = vec![None; count];
        groups
            .iter()
            .enumerate()
            .map(|(i, &g)| {
                *syms[g as usize].get_or_insert_with(|| match col.is_null(i) {
                    true => NULL,
                    false => self.intern(col.value(i)),
                })
            })
            .collect()
    }
}

/// Aggregates spans (and rollup rows, for compaction) into `rollups` rows.
///
/// Keys hold interned strings and each key's state is a few counters and a sketch
/// (typically 2-4 KB), so memory grows with the number of distinct keys, not of spans.
#[derive(Debug, Clone, Default)]
pub struct Rollups {
    strings: Interner,
    slots: HashMap<Key, usize, FoldState>,
    keys: Vec<Key>,
    aggs: Vec<Agg>,
}

impl Rollups {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of rows [`Rollups::finish`] would return.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds a batch with the `spans` schema: each span counts towards the minute its
    /// `start_time` falls in, and is an error when `status_code` is `ERROR`. With the
    /// batch's `contexts` (from its decode), the resource's columns of the key are read
    /// once per resource rather than per span.
    pub fn add_spans(&mut self, batch: &RecordBatch, contexts: Option<&Contexts>) -> Result<()> {
        let start = required::<TimestampNanosecondArray>(batch, col::START_TIME)?;
        let duration = required::<Int64Array>(batch, col::DURATION_NS)?;
        let status = required::<StringArray>(batch, col::STATUS_CODE)?;
        let contexts = contexts.filter(|c| c.fit(batch.num_rows()));
        let keys = self.key_columns(batch, contexts)?;
        // Each span's aggregate first, then the spans added to them, each aggregate
        // prefetched a few spans ahead: with traffic spread over hours, a span's key is
        // rarely the previous span's, and its aggregate is anywhere in `aggs`.
        let mut last: Option<(Key, usize)> = None;
        let slots: Vec<usize> = start
            .values()
            .iter()
            .enumerate()
            .map(|(row, &start)| {
                let key = keys.key(start.div_euclid(NANOS_PER_MINUTE) * NANOS_PER_MINUTE, row);
                match last {
                    Some((k, slot)) if k == key => slot,
                    _ => {
                        let slot = self.slot(key);
                        last = Some((key, slot));
                        slot
                    }
                }
            })
            .collect();
        for (row, (&slot, &duration)) in slots.iter().zip(duration.values()).enumerate() {
            if let Some(&ahead) = slots.get(row + AHEAD) {
                prefetch(&self.aggs, ahead);
            }
            self.aggs[slot].add_span(duration, status.value(row) == STATUS_ERROR);
        }
        Ok(())
    }

    /// Adds a batch with the `rollups` schema, merging rows whose keys are already here.
    /// The helper quantile columns are ignored and recomputed by [`Rollups::finish`].
    pub fn add_rollups(&mut self, batch: &RecordBatch) -> Result<()> {
        let minute = required::<TimestampNanosecondArray>(batch, rollup_col::MINUTE)?;
        let calls = required::<Int64Array>(batch, rollup_col::CALLS)?;
        let errors = required::<Int64Array>(batch, rollup_col::ERRORS)?;
        let sum = required::<Int64Array>(batch, rollup_col::DURATION_SUM_NS)?;
        let min = required::<Int64Array>(batch, rollup_col::DURATION_MIN_NS)?;
        let max = required::<Int64Array>(batch, rollup_col::DURATION_MAX_NS)?;
        let sketches = SketchColumn::new(column::<ListArray>(batch, rollup_col::LATENCY_SKETCH)?)?;
        let keys = self.key_columns(batch, None)?;
        for row in 0..batch.num_rows() {
            let key = keys.key(minute.value(row), row);
            let agg = Agg {
                calls: calls.value(row),
                errors: errors.value(row),
                sum_ns: sum.value(row),
                min_ns: min.value(row),
                max_ns: max.value(row),
                sketch: sketches.sketch(row)?,
            };
            let slot = self.slot(key);
            self.aggs[slot].merge(&agg);
        }
        Ok(())
    }

    /// Adds everything `other` aggregated.
    pub fn merge(&mut self, other: &Rollups) {
        let mut translated: Vec<Option<Sym>> = vec![None; other.strings.names.len()];
        for (key, agg) in other.keys.iter().zip(&other.aggs) {
            let key = key.map_syms(|sym| {
                let Some(name) = other.strings.resolve(sym) else {
                    return NULL;
                };
                *translated[sym as usize].get_or_insert_with(|| self.strings.intern(name))
            });
            let slot = self.slot(key);
            self.aggs[slot].merge(agg);
        }
    }

    /// The aggregated rows with the `rollups` schema, sorted by minute then the key
    /// columns (byte order, NULLs last, as DuckDB sorts); leaves `self` empty.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let Rollups {
            strings,
            keys,
            mut aggs,
            ..
        } = std::mem::take(self);

        // Sort by string rank rather than by string, so comparisons are integer
        // compares; NULL ranks after every string.
        let mut by_name: Vec<Sym> = (0..strings.names.len() as Sym).collect();
        by_name
            .sort_unstable_by(|&a, &b| strings.names[a as usize].cmp(&strings.names[b as usize]));
        let null_rank = by_name.len() as Sym;
        let mut rank = vec![null_rank; by_name.len()];
        for (r, &sym) in by_name.iter().enumerate() {
            rank[sym as usize] = r as Sym;
        }
        let rank_of = |sym: Sym| rank.get(sym as usize).copied().unwrap_or(null_rank);
        let order = sorted_rows(&keys, rank_of, null_rank);
        // The rows moved into sorted order once, so that each column below reads them in
        // memory order: read through `order` column by column, every column jumped among
        // thousands of aggregates again (with spans spread over hours, one for every few
        // spans).
        let keys: Vec<Key> = order.iter().map(|&i| keys[i]).collect();
        let aggs: Vec<Agg> = order
            .iter()
            .map(|&i| std::mem::take(&mut aggs[i]))
            .collect();

        // Sized once (rows and bytes): collected from an iterator, the builder grew its
        // buffers as it went.
        let key_col = |pick: fn(&Key) -> Sym| -> ArrayRef {
            let values = || keys.iter().map(|k| strings.resolve(pick(k)));
            let bytes = values().map(|v| v.map_or(0, str::len)).sum();
            let mut column = StringBuilder::with_capacity(keys.len(), bytes);
            values().for_each(|v| column.append_option(v));
            Arc::new(column.finish())
        };
        let int_col = |pick: fn(&Agg) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(aggs.iter().map(pick)))
        };
        let quantiles: Vec<[Option<f64>; 3]> = aggs
            .iter()
            .map(|a| a.sketch.quantiles([0.5, 0.95, 0.99]))
            .collect();
        let quantile_col = |k: usize| -> ArrayRef {
            Arc::new(Float64Array::from_iter(quantiles.iter().map(|q| q[k])))
        };
        let minute = TimestampNanosecondArray::from_iter_values(keys.iter().map(|k| k.minute))
            .with_timezone(TIMEZONE);
        let columns = vec![
            Arc::new(minute) as ArrayRef,
            key_col(|k| k.service_name),
            key_col(|k| k.service_version),
            key_col(|k| k.deployment_environment),
            key_col(|k| k.span_name),
            key_col(|k| k.span_kind),
            int_col(|a| a.calls),
            int_col(|a| a.errors),
            int_col(|a| a.sum_ns),
            int_col(|a| a.min_ns),
            int_col(|a| a.max_ns),
            Arc::new(sketch_array(aggs.iter().map(|a| &a.sketch))?),
            quantile_col(0),
            quantile_col(1),
            quantile_col(2),
        ];
        Ok(RecordBatch::try_new(schema::rollups_schema(), columns)?)
    }

    fn slot(&mut self, key: Key) -> usize {
        *self.slots.entry(key).or_insert_with(|| {
            self.keys.push(key);
            self.aggs.push(Agg::default());
            self.keys.len() - 1
        })
    }

    /// The key columns of `batch`, those of the resource by resource when `contexts`
    /// (which fit the batch) are given.
    fn key_columns(
        &mut self,
        batch: &RecordBatch,
        contexts: Option<&Contexts>,
    ) -> Result<KeyColumns> {
        let service_name = column::<StringArray>(batch, col::SERVICE_NAME)?;
        let service_version = column::<StringArray>(batch, col::SERVICE_VERSION)?;
        let environment = column::<StringArray>(batch, col::DEPLOYMENT_ENVIRONMENT)?;
        let span_name = required::<StringArray>(batch, col::SPAN_NAME)?;
        let span_kind = required::<StringArray>(batch, col::SPAN_KIND)?;
        let resources = contexts.map(|c| (c.row_resources(), c.resources()));
        let mut of_resource = |col| match &resources {
            Some((groups, count)) => self.strings.column_of_groups(col, groups, *count),
            None => self.strings.column(col),
        };
        let resource_columns = [
            of_resource(service_name),
            of_resource(service_version),
            of_resource(environment),
        ];
        let [service_name, service_version, environment] = resource_columns;
        Ok(KeyColumns([
            service_name,
            service_version,
            environment,
            self.strings.column(span_name),
            self.strings.column(span_kind),
        ]))
    }
}

/// The rows of `keys` (distinct) in order of minute then the ranks of their symbols,
/// `rank_of` giving each a rank of at most `max_rank`. Sort keys are built once per row
/// rather than in every comparison, where the rank lookups were most of the sort, and
/// packed into one `u128` when they fit (the minute relative to the earliest, the ranks
/// and the row, each in the bits its largest value needs), which sorts in a third of
/// the instructions of the tuples. Keys are distinct, so the row never decides.
fn sorted_rows(keys: &[Key], rank_of: impl Fn(Sym) -> Sym, max_rank: Sym) -> Vec<usize> {
    let bits = |n: u64| 64 - n.leading_zeros();
    let earliest = keys.iter().map(|k| k.minute).min().unwrap_or(0);
    // The true difference, in 0..2^64 since `earliest` is the minimum.
    let since = |k: &Key| k.minute.wrapping_sub(earliest) as u64;
    let minute_bits = bits(keys.iter().map(since).max().unwrap_or(0));
    let rank_bits = bits(max_rank.into());
    let row_bits = bits(keys.len() as u64);
    if minute_bits + 5 * rank_bits + row_bits <= 128 {
        let mut packed: Vec<u128> = keys
            .iter()
            .enumerate()
            .map(|(row, k)| {
                let key = k.syms().into_iter().fold(u128::from(since(k)), |key, sym| {
                    key << rank_bits | u128::from(rank_of(sym))
                });
                key << row_bits | row as u128
            })
            .collect();
        packed.sort_unstable();
        let row_mask = (1u128 << row_bits) - 1;
        packed
            .into_iter()
            .map(|p| (p & row_mask) as usize)
            .collect()
    } else {
        let mut sort_keys: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(row, k)| (k.minute, k.syms().map(&rank_of), row))
            .collect();
        sort_keys.sort_unstable();
        sort_keys.into_iter().map(|(_, _, row)| row).collect()
    }
}

/// Interned key columns of a batch, in [`Key::syms`] order.
struct KeyColumns([Vec<Sym>; 5]);

impl KeyColumns {
    fn key(&self, minute: i64, row: usize) -> Key {
        let [service_name, service_version, environment, span_name, span_kind] = &self.0;
        Key {
            minute,
            service_name: service_name[row],
            service_version: service_version[row],
            deployment_environment: environment[row],
            span_name: span_name[row],
            span_kind: span_kind[row],
        }
    }
}

/// Merges `rollups` batches into one, re-aggregating rows with equal keys: compaction
/// of small files, or folding late spans into an already written minute.
pub fn merge_rollups(batches: &[RecordBatch]) -> Result<RecordBatch> {
    let mut r = Rollups::new();
    for b in batches {
        r.add_rollups(b)?;
    }
    r.finish()
}

fn invalid(message: String) -> Error {
    ArrowError::InvalidArgumentError(message).into()
}

fn downcast<'a, T: Array + 'static>(array: &'a dyn Array, name: &str) -> Result<&'a T> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| invalid(format!("column `{name}` has type {}", array.data_type())))
}

fn column<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| invalid(format!("batch has no column `{name}`")))?;
    downcast(array.as_ref(), name)
}

/// A column that the schema declares non-null; nulls would be read as garbage values.
fn required<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    let array = column::<T>(batch, name)?;
    if array.null_count() > 0 {
        return Err(invalid(format!("column `{name}` has nulls")));
    }
    Ok(array)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use arrow_schema::{Field, Schema};

    use super::*;
    use crate::test_support::Rng;

    const QS: [f64; 12] = [
        0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0,
    ];
    const TOLERANCE: f64 = 0.01 + 1e-12;

    fn sketch_of(values: &[i64]) -> LatencySketch {
        let mut s = LatencySketch::new();
        values.iter().for_each(|&v| s.add(v));
        s
    }

    /// Largest relative error of the sketch's quantiles against the exact ones under the
    /// same rank rule (element `floor(q * (n - 1))` of the sorted values).
    fn max_relative_error(values: &[i64]) -> f64 {
        let s = sketch_of(values);
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        QS.iter()
            .map(|&q| {
                let exact = sorted[(q * (n - 1) as f64) as usize] as f64;
                let estimate = s.quantile(q).unwrap();
                (estimate - exact).abs() / exact
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn bucket_of_is_the_smallest_bucket_whose_bound_holds_the_value() {
        let t = bucket_table();
        let slow = |v: u64| t.upper.partition_point(|&u| u < v) as i32;
        for v in 1..=(1u64 << 20) {
            assert_eq!(bucket_of(v as i64), slow(v), "v={v}");
        }
        for &bound in &t.upper {
            for v in [bound.saturating_sub(1), bound, bound.saturating_add(1)] {
                if (1..=i64::MAX as u64).contains(&v) {
                    assert_eq!(bucket_of(v as i64), slow(v), "v={v}");
                }
            }
        }
        let mut rng = Rng(7);
        for _ in 0..1_000_000 {
            let v = (rng.next_u64() >> rng.below(64)).max(1) >> 1;
            assert_eq!(bucket_of(v.max(1) as i64), slow(v.max(1)), "v={v}");
        }
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(-5), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 35);
        assert_eq!(bucket_of(i64::MAX), MAX_BUCKET);
    }

    #[test]
    fn bucket_of_matches_the_float_formula_away_from_bounds() {
        let ln_gamma = SKETCH_GAMMA.ln();
        let mut rng = Rng(11);
        let mut checked = 0;
        for _ in 0..1_000_000 {
            let v = ((rng.next_u64() >> 1) >> rng.below(63)).max(1);
            let exact = (v as f64).ln() / ln_gamma;
            if (exact - exact.round()).abs() > 1e-9 {
                assert_eq!(bucket_of(v as i64), exact.ceil() as i32, "v={v}");
                checked += 1;
            }
        }
        assert!(checked > 900_000, "{checked}");
    }

    #[test]
    fn bucket_values_are_the_formulas_bit_for_bit() {
        for bucket in -3..=MAX_BUCKET + 3 {
            assert_eq!(
                bucket_value(bucket).to_bits(),
                (2.0 * SKETCH_GAMMA.powf(f64::from(bucket)) / (SKETCH_GAMMA + 1.0)).to_bits(),
                "bucket {bucket}"
            );
        }
    }

    #[test]
    fn every_value_is_within_one_percent_of_its_bucket_value() {
        let mut rng = Rng(3);
        let values = (1..100_000i64).chain((0..1_000_000).map(|_| {
            let v = (rng.next_u64() >> 1) >> rng.below(63);
            v.max(1) as i64
        }));
        for v in values {
            let err = (bucket_value(bucket_of(v)) - v as f64).abs() / v as f64;
            assert!(err <= TOLERANCE, "v={v} err={err}");
        }
    }

    #[test]
    fn quantiles_are_within_one_percent_across_distributions() {
        let mut rng = Rng(42);
        let n = 200_000;
        let cases: Vec<(&str, Vec<i64>)> = vec![
            (
                "uniform 1us..1s",
                (0..n).map(|_| 1_000 + (rng.unit() * 1e9) as i64).collect(),
            ),
            (
                "lognormal median 5ms sigma 2",
                (0..n)
                    .map(|_| (5e6 * (2.0 * rng.normal()).exp()).max(1.0) as i64)
                    .collect(),
            ),
            (
                "log-uniform 1ns..10min",
                (0..n).map(|_| (6e11f64.powf(rng.unit())) as i64).collect(),
            ),
            ("constant 42ms", vec![42_000_000; 1000]),
            ("single value", vec![123_456]),
            ("small integers", (1..=100).collect()),
            (
                "bimodal 1ms / 30s",
                (0..n)
                    .map(|i| {
                        if i % 10 == 0 {
                            30_000_000_000
                        } else {
                            1_000_000
                        }
                    })
                    .collect(),
            ),
        ];
        for (name, values) in cases {
            let err = max_relative_error(&values);
            println!("{name}: max relative error {err:.5}");
            assert!(err <= TOLERANCE, "{name}: {err}");
        }
    }

    #[test]
    fn zero_durations_read_as_a_fraction_of_a_nanosecond() {
        let s = sketch_of(&[0, 0, -3]);
        assert_eq!(s.count(), 3);
        let p50 = s.quantile(0.5).unwrap();
        assert!(p50 > 0.98 && p50 < 1.0, "{p50}");
    }

    #[test]
    fn quantile_is_none_for_empty_sketches_and_out_of_range_q() {
        assert_eq!(LatencySketch::new().quantile(0.5), None);
        let s = sketch_of(&[10, 20]);
        assert_eq!(s.quantile(-0.1), None);
        assert_eq!(s.quantile(1.1), None);
        assert_eq!(s.quantile(f64::NAN), None);
        assert_eq!(s.quantile(0.0), Some(bucket_value(bucket_of(10))));
        assert_eq!(s.quantile(1.0), Some(bucket_value(bucket_of(20))));
    }

    /// Values spread over exactly `distinct` buckets from 600 up (where each bucket
    /// holds many integers), 1-3 values per bucket, in random order.
    fn values_in_buckets(rng: &mut Rng, distinct: usize) -> Vec<i64> {
        let t = bucket_table();
        let mut values = Vec::new();
        let mut bucket = 600;
        for _ in 0..distinct {
            bucket += 1 + rng.below(5);
            let v = t.upper[bucket] as i64;
            assert_eq!(bucket_of(v), bucket as i32);
            values.extend(std::iter::repeat_n(v, 1 + rng.below(3)));
        }
        for i in (1..values.len()).rev() {
            values.swap(i, rng.below(i + 1));
        }
        values
    }

    /// What a sketch of `values` must hold, computed without one: the count per
    /// bucket, and each quantile as the bucket value of the sorted values' element
    /// of rank `floor(q * (n - 1))`.
    fn assert_sketch_holds(s: &LatencySketch, values: &[i64]) {
        let mut per_bucket = std::collections::BTreeMap::new();
        for &v in values {
            *per_bucket.entry(bucket_of(v)).or_insert(0u64) += 1;
        }
        let expected: Vec<(i32, u64)> = per_bucket.into_iter().collect();
        assert_eq!(s.buckets().collect::<Vec<_>>(), expected);
        assert_eq!(s.count(), values.len() as u64);
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        for q in QS {
            let exact = (!sorted.is_empty())
                .then(|| bucket_value(bucket_of(sorted[(q * (sorted.len() - 1) as f64) as usize])));
            assert_eq!(s.quantile(q), exact, "q={q} n={}", values.len());
        }
    }

    /// Sketches keep a few buckets inline and switch to dense counts past
    /// `INLINE_BUCKETS`: on both sides of the switch, and merged across forms, they
    /// hold what a plain count per bucket holds.
    #[test]
    fn inline_and_dense_sketches_agree_with_plain_counts() {
        let mut rng = Rng(13);
        let sizes = [
            0,
            1,
            2,
            INLINE_BUCKETS - 1,
            INLINE_BUCKETS,
            INLINE_BUCKETS + 1,
            40,
        ];
        let parts: Vec<Vec<i64>> = sizes
            .iter()
            .map(|&distinct| values_in_buckets(&mut rng, distinct))
            .collect();
        for values in &parts {
            assert_sketch_holds(&sketch_of(values), values);
        }
        for a in &parts {
            for b in &parts {
                let mut merged = sketch_of(a);
                merged.merge(&sketch_of(b));
                let union = [a.as_slice(), b].concat();
                assert_sketch_holds(&merged, &union);
                assert_eq!(merged, sketch_of(&union));
            }
        }
    }

    /// The switch to dense counts sizes their range once, to cover the inline buckets and
    /// the one being added: below, between or above them, every count is kept, and the
    /// range ends on occupied buckets.
    #[test]
    fn going_dense_keeps_every_count_wherever_the_new_bucket_falls() {
        let upper = &bucket_table().upper;
        let inline: Vec<i64> = (0..INLINE_BUCKETS)
            .flat_map(|k| [upper[1000 + 2 * k] as i64; 2])
            .collect();
        for ninth in [900, 1005, 1300] {
            let values = [inline.as_slice(), &[upper[ninth] as i64]].concat();
            let s = sketch_of(&values);
            assert_sketch_holds(&s, &values);
            let Counts::Dense(dense) = &s.counts else {
                panic!("{} buckets kept inline", INLINE_BUCKETS + 1);
            };
            assert_eq!(dense.offset, 1000.min(ninth as i32));
            assert_eq!(
                dense.counts.first().copied(),
                Some(if ninth < 1000 { 1 } else { 2 })
            );
            assert_eq!(
                dense.counts.last().copied(),
                Some(if ninth > 1014 { 1 } else { 2 })
            );
        }
    }

    #[test]
    fn merge_is_associative_commutative_and_equals_the_union() {
        let mut rng = Rng(5);
        // Empty, tiny and large parts, whose bucket ranges nest, overlap or are disjoint.
        for sizes in [[3, 2, 1], [5_000, 20_000, 1], [1, 10_000, 2], [0, 100, 0]] {
            let parts: Vec<Vec<i64>> = sizes
                .iter()
                .map(|&n| {
                    (0..n)
                        .map(|_| (1e6 * (1.5 * rng.normal()).exp()) as i64)
                        .collect()
                })
                .collect();
            let [a, b, c] = [0, 1, 2].map(|i| sketch_of(&parts[i]));
            let union = sketch_of(&parts.concat());
            let merged = |xs: &[&LatencySketch]| {
                let mut m = LatencySketch::new();
                xs.iter().for_each(|x| m.merge(x));
                m
            };
            let mut ab_c = merged(&[&a, &b]);
            ab_c.merge(&c);
            let mut bc = merged(&[&b, &c]);
            let mut a_bc = a.clone();
            a_bc.merge(&bc);
            bc.merge(&a);
            assert_eq!(ab_c, union);
            assert_eq!(a_bc, union);
            assert_eq!(bc, union);
            assert_eq!(merged(&[&c, &a, &b]), union);
            assert_eq!(union.count(), sizes.iter().sum::<usize>() as u64);
        }
    }

    #[test]
    fn sketch_round_trips_through_arrow() {
        let mut rng = Rng(9);
        let sketches = [
            sketch_of(
                &(0..10_000)
                    .map(|_| rng.next_u64() as i64 >> 20)
                    .collect::<Vec<_>>(),
            ),
            LatencySketch::new(),
            sketch_of(&[5, 5, 5, 7_000_000]),
        ];
        let array = sketch_array(&sketches).unwrap();
        assert_eq!(array.data_type(), &schema::latency_sketch_type());
        for (row, s) in sketches.iter().enumerate() {
            assert_eq!(&LatencySketch::from_arrow(&array, row).unwrap(), s);
        }
        assert!(LatencySketch::from_arrow(&array, sketches.len()).is_err());
    }

    #[test]
    fn sketches_from_arrow_tolerate_unsorted_entries_and_reject_impossible_ones() {
        let entries = |buckets: Vec<i32>, counts: Vec<i64>| {
            let len = buckets.len() as i32;
            let values = StructArray::try_new(
                schema::sketch_entry_fields(),
                vec![
                    Arc::new(Int32Array::from(buckets)) as ArrayRef,
                    Arc::new(Int64Array::from(counts)),
                ],
                None,
            )
            .unwrap();
            ListArray::try_new(
                schema::sketch_item_field(),
                OffsetBuffer::new(ScalarBuffer::from(vec![0, len])),
                Arc::new(values),
                None,
            )
            .unwrap()
        };
        let s = LatencySketch::from_arrow(&entries(vec![9, 3, 9, 1], vec![1, 2, 3, 0]), 0).unwrap();
        assert_eq!(s.buckets().collect::<Vec<_>>(), vec![(3, 2), (9, 4)]);
        assert_eq!(s.count(), 6);
        assert!(LatencySketch::from_arrow(&entries(vec![1], vec![-1]), 0).is_err());
        assert!(LatencySketch::from_arrow(&entries(vec![-1], vec![1]), 0).is_err());
        assert!(LatencySketch::from_arrow(&entries(vec![MAX_BUCKET + 1], vec![1]), 0).is_err());
    }

    /// The `spans` columns rollups read, with the `spans` schema's types.
    #[derive(Clone, Copy)]
    struct Span<'a> {
        start: i64,
        duration: i64,
        status: &'a str,
        service: Option<&'a str>,
        version: Option<&'a str>,
        environment: Option<&'a str>,
        name: &'a str,
        kind: &'a str,
    }

    fn spans_batch<'a>(spans: &[Span<'a>]) -> RecordBatch {
        let full = schema::spans_schema();
        let names = [
            col::START_TIME,
            col::DURATION_NS,
            col::STATUS_CODE,
            col::SERVICE_NAME,
            col::SERVICE_VERSION,
            col::DEPLOYMENT_ENVIRONMENT,
            col::SPAN_NAME,
            col::SPAN_KIND,
        ];
        let fields: Vec<Field> = names
            .iter()
            .map(|n| full.field_with_name(n).unwrap().clone())
            .collect();
        let strings = |f: fn(&Span<'a>) -> Option<&'a str>| -> ArrayRef {
            Arc::new(StringArray::from_iter(spans.iter().map(f)))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampNanosecondArray::from_iter_values(spans.iter().map(|s| s.start))
                    .with_timezone(TIMEZONE),
            ),
            Arc::new(Int64Array::from_iter_values(
                spans.iter().map(|s| s.duration),
            )),
            strings(|s| Some(s.status)),
            strings(|s| s.service),
            strings(|s| s.version),
            strings(|s| s.environment),
            strings(|s| Some(s.name)),
            strings(|s| Some(s.kind)),
        ];
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    const BASE: Span<'static> = Span {
        start: 0,
        duration: 1_000,
        status: "UNSET",
        service: Some("checkout"),
        version: Some("2.4.0"),
        environment: Some("prod"),
        name: "PlaceOrder",
        kind: "SERVER",
    };

    type Row = (
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        String,
        [i64; 5],
    );

    fn rows(batch: &RecordBatch) -> Vec<Row> {
        let s = |name: &str| batch[name].as_any().downcast_ref::<StringArray>().unwrap();
        let i = |name: &str| batch[name].as_any().downcast_ref::<Int64Array>().unwrap();
        let minute = batch[rollup_col::MINUTE]
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        let opt = |a: &StringArray, r: usize| a.is_valid(r).then(|| a.value(r).to_string());
        (0..batch.num_rows())
            .map(|r| {
                (
                    minute.value(r),
                    opt(s(col::SERVICE_NAME), r),
                    opt(s(col::SERVICE_VERSION), r),
                    opt(s(col::DEPLOYMENT_ENVIRONMENT), r),
                    s(col::SPAN_NAME).value(r).to_string(),
                    s(col::SPAN_KIND).value(r).to_string(),
                    [
                        rollup_col::CALLS,
                        rollup_col::ERRORS,
                        rollup_col::DURATION_SUM_NS,
                        rollup_col::DURATION_MIN_NS,
                        rollup_col::DURATION_MAX_NS,
                    ]
                    .map(|c| i(c).value(r)),
                )
            })
            .collect()
    }

    #[test]
    fn spans_group_by_minute_and_keys_with_nulls_and_errors() {
        const MIN: i64 = NANOS_PER_MINUTE;
        let spans = [
            Span {
                duration: 10,
                status: "ERROR",
                ..BASE
            },
            Span {
                start: 59_999_999_999,
                duration: 30,
                status: "OK",
                ..BASE
            },
            Span {
                start: MIN,
                duration: 5,
                ..BASE
            },
            Span {
                start: -1,
                duration: 7,
                status: "ERROR",
                ..BASE
            },
            Span {
                version: None,
                ..BASE
            },
            Span {
                service: None,
                environment: None,
                ..BASE
            },
            Span {
                name: "GET /cart",
                kind: "CLIENT",
                ..BASE
            },
            // Not adjacent to its key's other spans: found through the map, not the
            // previous-row shortcut.
            Span {
                start: 30 * 1_000_000_000,
                duration: 20,
                ..BASE
            },
            Span {
                kind: "INTERNAL",
                ..BASE
            },
        ];
        let mut r = Rollups::new();
        r.add_spans(&spans_batch(&spans), None).unwrap();
        assert_eq!(r.len(), 7);
        let batch = r.finish().unwrap();
        assert!(r.is_empty());
        assert_eq!(batch.schema(), schema::rollups_schema());
        let some = |s: &str| Some(s.to_string());
        let key = |m: i64,
                   svc: Option<&str>,
                   ver: Option<&str>,
                   env: Option<&str>,
                   name: &str,
                   kind: &str| {
            (
                m,
                svc.map(String::from),
                ver.map(String::from),
                env.map(String::from),
                name.to_string(),
                kind.to_string(),
            )
        };
        let expected: Vec<Row> = [
            (
                key(
                    -MIN,
                    some("checkout").as_deref(),
                    Some("2.4.0"),
                    Some("prod"),
                    "PlaceOrder",
                    "SERVER",
                ),
                [1, 1, 7, 7, 7],
            ),
            (
                key(
                    0,
                    Some("checkout"),
                    Some("2.4.0"),
                    Some("prod"),
                    "GET /cart",
                    "CLIENT",
                ),
                [1, 0, 1_000, 1_000, 1_000],
            ),
            (
                key(
                    0,
                    Some("checkout"),
                    Some("2.4.0"),
                    Some("prod"),
                    "PlaceOrder",
                    "INTERNAL",
                ),
                [1, 0, 1_000, 1_000, 1_000],
            ),
            (
                key(
                    0,
                    Some("checkout"),
                    Some("2.4.0"),
                    Some("prod"),
                    "PlaceOrder",
                    "SERVER",
                ),
                [3, 1, 60, 10, 30],
            ),
            (
                key(
                    0,
                    Some("checkout"),
                    None,
                    Some("prod"),
                    "PlaceOrder",
                    "SERVER",
                ),
                [1, 0, 1_000, 1_000, 1_000],
            ),
            (
                key(0, None, Some("2.4.0"), None, "PlaceOrder", "SERVER"),
                [1, 0, 1_000, 1_000, 1_000],
            ),
            (
                key(
                    MIN,
                    Some("checkout"),
                    Some("2.4.0"),
                    Some("prod"),
                    "PlaceOrder",
                    "SERVER",
                ),
                [1, 0, 5, 5, 5],
            ),
        ]
        .into_iter()
        .map(|((m, a, b, c, d, e), v)| (m, a, b, c, d, e, v))
        .collect();
        assert_eq!(rows(&batch), expected);

        let sketches = batch[rollup_col::LATENCY_SKETCH]
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap();
        let p99 = batch[rollup_col::P99_NS]
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let three = LatencySketch::from_arrow(sketches, 3).unwrap();
        assert_eq!(three, sketch_of(&[10, 30, 20]));
        assert_eq!(p99.value(3), three.quantile(0.99).unwrap());
    }

    /// The rows of `batch` strictly ascend by minute then the key columns, NULLs last.
    fn assert_in_key_order(batch: &RecordBatch) {
        let nulls_last = |s: &Option<String>| (s.is_none(), s.clone());
        let key = |r: &Row| {
            let (minute, service, version, environment, name, kind, _) = r;
            let optional = [service, version, environment].map(nulls_last);
            (*minute, optional, name.clone(), kind.clone())
        };
        let rows = rows(batch);
        assert!(rows.windows(2).all(|w| key(&w[0]) < key(&w[1])));
    }

    #[test]
    fn rows_are_in_key_order_when_sort_keys_do_not_pack_into_128_bits() {
        // Minutes 2^63 ns apart take 64 bits, 1,100 names and rows 11 bits each: 130.
        let names: Vec<String> = (0..1_100).map(|i| format!("op-{i}")).collect();
        let spans: Vec<Span> = names
            .iter()
            .enumerate()
            .map(|(i, name)| Span {
                start: [i64::MIN / 2, 0, i64::MAX / 2][i % 3],
                service: [Some("checkout"), None][i % 2],
                name,
                ..BASE
            })
            .collect();
        let mut r = Rollups::new();
        r.add_spans(&spans_batch(&spans), None).unwrap();
        let batch = r.finish().unwrap();
        assert_eq!(batch.num_rows(), spans.len());
        assert_in_key_order(&batch);
    }

    #[test]
    fn add_spans_rejects_batches_without_the_spans_columns() {
        let batch = spans_batch(&[BASE]);
        let without_status = batch.project(&[0, 1, 3, 4, 5, 6, 7]).unwrap();
        assert!(Rollups::new().add_spans(&without_status, None).is_err());
        let mut columns = batch.columns().to_vec();
        columns[1] = Arc::new(Int32Array::from(vec![1]));
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| (**f).clone())
            .collect();
        fields[1] = Field::new(col::DURATION_NS, arrow_schema::DataType::Int32, false);
        let wrong_type = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        assert!(Rollups::new().add_spans(&wrong_type, None).is_err());
    }

    /// An export-sized batch: a few resources, each a run of spans over two minutes,
    /// spread over 30 operations with lognormal durations and 2% errors.
    fn realistic_spans<'a>(rng: &mut Rng, names: &'a [String], rows: usize) -> Vec<Span<'a>> {
        const SERVICES: [&str; 4] = ["frontend", "checkout", "payment", "cart"];
        const KINDS: [&str; 3] = ["SERVER", "CLIENT", "INTERNAL"];
        (0..rows)
            .map(|i| {
                let resource = i * 8 / rows;
                let op = rng.below(names.len());
                Span {
                    start: 1_800_000_000_000_000_000 + (rng.unit() * 120e9) as i64,
                    duration: (2e6 * (1.2 * rng.normal()).exp()) as i64,
                    status: if rng.unit() < 0.02 { "ERROR" } else { "UNSET" },
                    service: Some(SERVICES[resource % 4]),
                    version: Some(if resource < 4 { "1.0.0" } else { "1.1.0" }),
                    environment: Some("prod"),
                    name: &names[op],
                    kind: KINDS[op % 3],
                }
            })
            .collect()
    }

    #[test]
    fn rollups_merge_and_compact_to_what_one_aggregator_computes() {
        let mut rng = Rng(1);
        let names: Vec<String> = (0..30).map(|i| format!("op-{i}")).collect();
        let spans = realistic_spans(&mut rng, &names, 6_000);
        let (a, b) = spans.split_at(2_500);
        let mut whole = Rollups::new();
        whole.add_spans(&spans_batch(&spans), None).unwrap();
        let expected = whole.finish().unwrap();
        assert_in_key_order(&expected);

        let [mut ra, mut rb] = [a, b].map(|part| {
            let mut r = Rollups::new();
            r.add_spans(&spans_batch(part), None).unwrap();
            r
        });
        let mut merged = rb.clone();
        merged.merge(&ra);
        assert_eq!(merged.finish().unwrap(), expected);

        let parts = [ra.finish().unwrap(), rb.finish().unwrap()];
        assert_eq!(merge_rollups(&parts).unwrap(), expected);
        assert_eq!(
            merge_rollups(std::slice::from_ref(&expected)).unwrap(),
            expected
        );
        assert_eq!(
            merge_rollups(&[expected.clone(), Rollups::new().finish().unwrap()]).unwrap(),
            expected
        );
    }

    #[test]
    fn quantiles_in_one_walk_are_those_of_the_rank_rule_one_by_one() {
        let mut rng = Rng(5);
        let mut sketches = vec![
            LatencySketch::new(),
            sketch_of(&[1_000]),
            sketch_of(&[5; 7]),
            sketch_of(&[0, i64::MAX]),
        ];
        // 8 occupied buckets or fewer stay inline, more go dense.
        for n in [2, 8, 9, 50, 1_000] {
            let values: Vec<i64> = (0..n)
                .map(|_| (1e6 * (2.0 * rng.normal()).exp()) as i64)
                .collect();
            sketches.push(sketch_of(&values));
        }
        for s in &sketches {
            let buckets: Vec<(i32, u64)> = s.buckets().collect();
            let expected = |q: f64| {
                if !(0.0..=1.0).contains(&q) || s.count() == 0 {
                    return None;
                }
                let rank = q * (s.count() - 1) as f64;
                let mut seen = 0;
                let past = buckets.iter().find(|&&(_, n)| {
                    seen += n;
                    seen as f64 > rank
                });
                Some(bucket_value(past.unwrap_or(&buckets[buckets.len() - 1]).0))
            };
            let three = [0.5, 0.95, 0.99];
            assert_eq!(s.quantiles(three), three.map(expected));
            assert_eq!(s.quantiles(QS), QS.map(expected));
            let invalid = [-1.0, 0.3, f64::NAN, 0.7, 2.0];
            assert_eq!(s.quantiles(invalid), invalid.map(expected));
            for q in QS {
                assert_eq!(s.quantile(q), expected(q));
            }
        }
    }

    #[test]
    fn interned_columns_give_each_row_its_own_string() {
        let mut rng = Rng(3);
        // Lengths from 0 to 42, 300 values sharing the table's 64 slots, and few
        // values (span kinds) that each keep theirs.
        let many: Vec<String> = (0..300)
            .map(|i| "x".repeat(i % 40) + &i.to_string())
            .collect();
        let few = ["", "a", "SERVER", "CLIENT", "INTERNAL"].map(String::from);
        for values in [&many[..], &few[..]] {
            let rows: Vec<Option<&str>> = (0..5_000)
                .map(|_| values.get(rng.below(values.len() + 1)).map(String::as_str))
                .collect();
            let mut interner = Interner::default();
            let syms = interner.column(&StringArray::from(rows.clone()));
            let got: Vec<Option<&str>> = syms.iter().map(|&s| interner.resolve(s)).collect();
            assert_eq!(got, rows);
        }
    }

    #[test]
    fn hashes_of_strings_tell_lengths_and_bytes_apart() {
        let state = FoldState::default();
        // Distinct texts: both kinds of empty string are one.
        let texts: std::collections::BTreeSet<String> = (0..=20)
            .flat_map(|len| {
                [
                    "a".repeat(len),
                    "\0".repeat(len),
                    format!("{}b", "a".repeat(len)),
                ]
            })
            .collect();
        let hashes: std::collections::HashSet<u64> =
            texts.iter().map(|t| state.hash_one(t.as_str())).collect();
        assert_eq!(hashes.len(), texts.len());
    }

    #[test]
    fn sql_macros_carry_gamma() {
        let sql = sql_macros();
        assert!(!sql.contains("{gamma}"));
        assert!(sql.contains(&format!("pow({SKETCH_GAMMA:?}, bucket)")));
    }

    /// Fastest of `reps` runs of `f`, in ns per item: on a shared 2-core machine the
    /// minimum is the run nobody preempted.
    fn best_ns_per_item(reps: usize, items: usize, mut f: impl FnMut()) -> f64 {
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
            * 1e9
            / items as f64
    }

    /// Timings, not checks: `cargo test --release -p aftershock-core --lib
    /// rollup::tests::bench -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench() {
        let mut rng = Rng(2);
        let durations: Vec<i64> = (0..8192)
            .map(|_| (2e6 * (1.5 * rng.normal()).exp()) as i64)
            .collect();
        let n = durations.len();
        let mut sink = 0i64;
        let ns = best_ns_per_item(2000, n, || {
            sink += durations
                .iter()
                .map(|&d| i64::from(bucket_of(d)))
                .sum::<i64>();
        });
        println!("bucket_of: {ns:.2} ns/op");
        let ln_gamma = SKETCH_GAMMA.ln();
        let ns = best_ns_per_item(2000, n, || {
            sink += durations
                .iter()
                .map(|&d| ((d.max(1) as f64).ln() / ln_gamma).ceil() as i64)
                .sum::<i64>();
        });
        println!("ceil(ln(v) / ln(gamma)), for comparison: {ns:.2} ns/op");
        let mut s = LatencySketch::new();
        let ns = best_ns_per_item(2000, n, || durations.iter().for_each(|&d| s.add(d)));
        println!("LatencySketch::add: {ns:.2} ns/op");
        assert!(sink > 0 && s.count() > 0);

        let names: Vec<String> = (0..30).map(|i| format!("/api/v1/operation-{i}")).collect();
        let batch = spans_batch(&realistic_spans(&mut rng, &names, 8192));
        let mut r = Rollups::new();
        let ns = best_ns_per_item(1000, batch.num_rows(), || {
            r.add_spans(&batch, None).unwrap()
        });
        println!(
            "add_spans, 8192-span batch into warm state ({} keys): {ns:.1} ns/span, {:.1} M spans/s",
            r.len(),
            1e3 / ns
        );
        let ns = best_ns_per_item(1000, batch.num_rows(), || {
            let mut r = Rollups::new();
            r.add_spans(&batch, None).unwrap();
            r.finish().unwrap();
        });
        println!(
            "new aggregator + add_spans + finish per batch: {ns:.1} ns/span, {:.1} M spans/s",
            1e3 / ns
        );
    }
}
