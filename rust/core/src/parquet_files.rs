//! Parquet: a table's buffered batches written as the data files of a Delta Lake table,
//! one file per UTC day under `<table_dir>/day=YYYY-MM-DD/`. Committing them (the Delta
//! `add` actions) is the caller's job; [`DataFile`] carries everything an `add` needs,
//! including the per-file statistics that let readers skip files.
//!
//! Rows are sorted before writing so that equal values sit together (smaller pages, and
//! min/max statistics that prune): `spans` by service, each trace's spans together (the
//! traces in the order they arrived), so a trace lookup touches one run of rows and the
//! `trace_id` bloom filter rules out the other files.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, Int32Array, ListArray, MapArray, PrimitiveArray,
    RecordBatch, StringArray, StructArray, UInt32Array,
};
use arrow_buffer::{BooleanBufferBuilder, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_ord::ord::make_comparator;
use arrow_schema::{ArrowError, DataType, Fields, SchemaRef, SortOptions, TimeUnit};
use arrow_select::concat::concat_batches;
use arrow_select::take::take;
use chrono::DateTime;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnWriter, ArrowRowGroupWriterFactory};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::bloom_filter::Sbbf;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{
    ColumnChunkMetaData, KeyValue, ParquetMetaData, RowGroupMetaData, SortingColumn,
};
use parquet::file::properties::{BloomFilterProperties, EnabledStatistics, WriterProperties};
use parquet::file::reader::ChunkReader;
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use parquet::schema::types::SchemaDescriptor;

use crate::decode::Contexts;
use crate::error::{Error, Result};
use crate::parquet_strings::{Groups, StringChunkWriter, StringLeaf};
use crate::prefetch::{prefetch, AHEAD};
use crate::schema::{self, col, rollup_col, LOGS, RESOURCE_COLUMNS, ROLLUPS, SCOPE_COLUMNS, SPANS};

/// The partition column of every table: the UTC date of the row's event time. Not stored
/// inside the Parquet files (Delta convention); it is in the path and `partition_values`.
pub const DAY: &str = "day";

/// Key of the Parquet key/value metadata entry naming the writer.
pub const WRITER_KEY: &str = "aftershock.writer";
/// Key of the Parquet key/value metadata entry naming the table a file is of.
pub const TABLE_KEY: &str = "aftershock.table";

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// Delta's data-skipping prefix: string min/max statistics keep this many characters.
const STATS_STRING_PREFIX: usize = 32;

/// Largest dictionary page a column chunk is written with; a chunk whose distinct values
/// need more is written PLAIN. arrow-rs's and parquet-mr's default is 1 MiB (Iceberg's
/// 2 MiB). Attribute values mix a few near-unique values (URLs, addresses, timings) with
/// many repeated ones: the 8192-span payload's need ~2.6 MB of dictionary a flush of 12
/// requests (98K spans), ~3.3 MB a row group of 128K. Kept in a dictionary, zstd reads
/// each distinct value once and the data pages are ids: on the flush bench 71M fewer
/// instructions a flush of 12 requests (7% of it), 52.8 instead of 53.2 B/span, and 3%
/// more spans/s of CPU in the lake (`benches/README.md`, lake). Columns of unique values
/// (random ids) have no dictionary (`Layout::plain`); one that passes this limit anyway
/// has hashed its values up to it for nothing, about 7M instructions a MiB of them.
const DICTIONARY_PAGE_LIMIT: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct ParquetOptions {
    /// zstd level. On realistic spans (`benches/flush.rs`), level 2 writes 28.3 B/span
    /// against 29.3 at level 3 and 29.9 at level 1, with 4% fewer instructions for the
    /// whole flush than level 3 (its smaller match tables suit pages of a few hundred KB);
    /// level 9 compresses a few percent better at several times the cost.
    pub zstd_level: i32,
    /// Rows per row group: large enough for good compression, small enough that a
    /// reader skipping by statistics or bloom filter skips something.
    pub row_group_rows: usize,
    /// False-positive rate of the `trace_id` bloom filter.
    pub bloom_filter_fpp: f64,
    /// Compaction copies row groups of at least this many rows from files this writer
    /// wrote as they are, encoded pages and all, rather than decoding and encoding them
    /// again ([`crate::compaction`]). Busy writers flush row groups of tens of thousands
    /// of rows, which re-encoding would merge into 128K-row ones for a few percent fewer
    /// bytes at the full cost of a flush; a quiet writer's small row groups are merged.
    pub copy_row_group_rows: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            zstd_level: 2,
            row_group_rows: 128 * 1024,
            bloom_filter_fpp: 0.01,
            copy_row_group_rows: 16 * 1024,
        }
    }
}

/// One written data file: what a Delta `add` action needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Relative to the table directory, `/`-separated: `day=2026-11-29/part-....zstd.parquet`.
    pub path: String,
    pub size: u64,
    /// `[("day", "2026-11-29")]`.
    pub partition_values: Vec<(String, String)>,
    pub rows: u64,
    /// Delta per-file statistics: `numRecords`, `minValues`, `maxValues`, `nullCount`.
    pub stats_json: String,
    pub modification_time_ms: i64,
}

impl DataFile {
    /// The file as one JSON object, `partition_values` as an object, `stats_json` as a
    /// string (as the Delta log stores it).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.stats_json.len() * 2 + 256);
        out.push_str("{\"path\":");
        push_json_str(&mut out, &self.path);
        out.push_str(",\"size\":");
        out.push_str(itoa::Buffer::new().format(self.size));
        out.push_str(",\"partition_values\":{");
        for (i, (k, v)) in self.partition_values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(&mut out, k);
            out.push(':');
            push_json_str(&mut out, v);
        }
        out.push_str("},\"rows\":");
        out.push_str(itoa::Buffer::new().format(self.rows));
        out.push_str(",\"stats_json\":");
        push_json_str(&mut out, &self.stats_json);
        out.push_str(",\"modification_time_ms\":");
        out.push_str(itoa::Buffer::new().format(self.modification_time_ms));
        out.push('}');
        out
    }
}

/// The Parquet leaf of the spans' event times, as arrow-rs names the leaves of a list of
/// structs (`events` / `list` / `item` / `time`). Nearly every event time is distinct:
/// written PLAIN, without a dictionary, as `start_time` is (random payload: 0.91 -> 0.76
/// bytes a span).
pub(crate) const EVENT_TIME: &str = "events.list.item.time";

/// How a table is laid out on disk.
pub(crate) struct Layout {
    pub(crate) schema: SchemaRef,
    /// Timestamp columns giving a row's day, first non-null wins; the write time's day
    /// when all are null.
    day_from: &'static [&'static str],
    /// Keys the rows are sorted by, after the day: ascending, nulls first. The files
    /// declare them as their sorting columns.
    sort_by: &'static [&'static str],
    /// A last key whose rows are grouped, not sorted: the rows of each value together
    /// (within the `sort_by` keys), the values in the order of their first row in the
    /// input.
    group_by: Option<&'static str>,
    /// Columns of mostly distinct values (random ids, nanosecond times), written PLAIN:
    /// a dictionary would hold every value once more, and zstd packs them better without
    /// it (38 -> 32 bytes per span on a realistic payload). The string ones, random ids,
    /// are written by [`crate::parquet_strings`] and compressed as random text
    /// ([`crate::parquet_strings::RANDOM_TEXT_LEVEL`]). A nested leaf is named by its
    /// Parquet path ([`EVENT_TIME`]).
    plain: &'static [&'static str],
    /// Integer columns written DELTA_BINARY_PACKED and not compressed (a subset of
    /// `plain`): values that vary independently from row to row, which bit packing
    /// shrinks about as well as zstd does PLAIN, at a fraction of zstd's cost (zstd on
    /// PLAIN integers was the dearest work per byte of a flush: many short matches of
    /// high bytes), leaving zstd nothing to find.
    delta_packed: &'static [&'static str],
    /// String columns written DELTA_LENGTH_BYTE_ARRAY (a subset of `plain`): random ids,
    /// whose pages then hold the lengths delta-packed (a few bytes a page, the ids being
    /// of one length) and the bytes in one run, so that zstd is handed 16 rather than 20
    /// bytes a span id and no 4-byte match between ids to encode.
    delta_lengths: &'static [&'static str],
    /// Columns written without compression: dictionary indices of too many distinct
    /// values for zstd to find anything in them.
    uncompressed: &'static [&'static str],
}

pub(crate) fn layout(table: &str) -> Result<Layout> {
    Ok(match table {
        SPANS => Layout {
            schema: schema::spans_schema(),
            day_from: &[col::START_TIME],
            sort_by: &[col::SERVICE_NAME],
            // A trace's spans together, and the traces of a service in the order they
            // arrived, not in the order of their ids: rows are then read where they lie as
            // far as grouping them allows. Requests that bring traces whole (after a tail
            // sampler, or the load-balancing exporter, which splits batches by trace) are
            // read in long runs, not a run a trace; spans of concurrent traces interleaved
            // are still read roughly in the order memory holds them. On the flush bench
            // the flush took 9-16% less time with whole traces, 5-9% less with spans
            // moved up to 200 places, and the same (within 2%) with them shuffled
            // (benches/README.md, lake), for the same bytes. Ids in order of value gave nothing to readers: the page index of
            // string chunks is not written, and a file's ids span the whole range anyway.
            // Nor by start time within a trace: the sort is stable, so the spans of a
            // trace that arrived together stay together, one run read in order. Sorted by
            // start as well, a trace's spans were cut into runs of 1.4 rows on the
            // realistic flush bench, each of them read from wherever its batch holds it, a
            // cache miss or more in every column: the flush took 10-15% longer.
            group_by: Some(col::TRACE_ID),
            // `trace_id` keeps its dictionary: grouped by trace, a span's trace id is
            // mostly the previous row's, which `parquet_strings` reuses without hashing,
            // and zstd then reads each trace id once instead of once a span (on the
            // realistic flush bench 2% fewer instructions, 28.3 instead of 27.8 B/span).
            // A reader's dictionary filter (parquet-mr's) can rule a row group out by it
            // as well as the bloom filter does.
            plain: &[
                col::SPAN_ID,
                col::PARENT_SPAN_ID,
                col::START_TIME,
                col::END_TIME,
                col::DURATION_NS,
                EVENT_TIME,
            ],
            // Durations of unrelated spans: on the realistic, live and random flush
            // benches 3.39-3.49 B/span bit-packed against 3.48-3.63 PLAIN with zstd
            // level 3 (pyarrow; the lake's level 2 wrote 3.44 on the realistic one, for
            // ~400 instructions a span). Start and end times are not:
            // grouped by trace, they jump by hours between traces, and bit-packed they
            // took 5.7 instead of 3.9-4.2 B/span.
            delta_packed: &[col::DURATION_NS],
            delta_lengths: &[col::SPAN_ID, col::PARENT_SPAN_ID],
            uncompressed: &[],
        },
        LOGS => Layout {
            schema: schema::logs_schema(),
            day_from: &[col::TIME, col::OBSERVED_TIME],
            sort_by: &[col::SERVICE_NAME, col::TIME],
            group_by: None,
            plain: &[col::TIME, col::OBSERVED_TIME, col::SPAN_ID],
            delta_packed: &[],
            delta_lengths: &[col::SPAN_ID],
            uncompressed: &[],
        },
        ROLLUPS => Layout {
            schema: schema::rollups_schema(),
            day_from: &[rollup_col::MINUTE],
            sort_by: &[
                rollup_col::MINUTE,
                col::SERVICE_NAME,
                col::SERVICE_VERSION,
                col::SPAN_NAME,
            ],
            group_by: None,
            // Sums and extremes of durations rarely repeat. On the realistic flush bench
            // (11,513 rollup rows from 32,768 spans) these three without a dictionary
            // write 246 instead of 302 KB for 9% fewer instructions; the quantile columns
            // (a few hundred distinct bucket values) are smaller with one.
            plain: &[
                rollup_col::DURATION_SUM_NS,
                rollup_col::DURATION_MIN_NS,
                rollup_col::DURATION_MAX_NS,
            ],
            // PLAIN, zstd packed them to 3.5 bytes a value but took ~1.1K instructions
            // a row, a third of writing rollups; bit packed they take a little less
            // (119 instead of 121 KB) for ~200.
            delta_packed: &[
                rollup_col::DURATION_SUM_NS,
                rollup_col::DURATION_MIN_NS,
                rollup_col::DURATION_MAX_NS,
            ],
            delta_lengths: &[],
            // zstd took 2% off these on the realistic flush bench (1.1 KB of 246) and
            // nothing on spans within seconds, for ~100 instructions a row. Not the
            // sketches' buckets: 2% on the first, but 42% on the second (long sketches
            // of consecutive buckets).
            uncompressed: &[rollup_col::P50_NS, rollup_col::P95_NS, rollup_col::P99_NS],
        },
        other => {
            return Err(ArrowError::InvalidArgumentError(format!(
                "no Parquet layout for table {other:?}"
            ))
            .into())
        }
    })
}

/// The columns of `table` written without a dictionary (see `Layout::plain`), each with
/// its encoding (`Layout::delta_packed`, `Layout::delta_lengths`), so that other writers of
/// the same table (compaction) can use the same encodings.
pub fn plain_columns(table: &str) -> Result<Vec<(&'static str, Encoding)>> {
    let layout = layout(table)?;
    Ok(layout
        .plain
        .iter()
        .map(|&name| (name, layout.encoding(name)))
        .collect())
}

impl Layout {
    /// The encoding of the `plain` column `name`.
    fn encoding(&self, name: &str) -> Encoding {
        if self.delta_packed.contains(&name) {
            Encoding::DELTA_BINARY_PACKED
        } else if self.delta_lengths.contains(&name) {
            Encoding::DELTA_LENGTH_BYTE_ARRAY
        } else {
            Encoding::PLAIN
        }
    }
}

/// Writes `batches` (all with the schema of `table`) as new Parquet files under
/// `table_dir`, one per UTC day, and returns them in day order. Each file appears under
/// its final name only once complete and fsynced, so a crash leaves at most a hidden
/// `.part-*.tmp` file behind, never a truncated data file. Nothing is written for no rows.
///
/// `contexts` is empty, or says for each batch which of its rows share a resource and a
/// scope (`None`: not known), as its decode found ([`crate::decode::Decoded`]): the
/// columns of a resource or a scope are then encoded once per context of a batch rather
/// than row by row. The files are the same either way.
pub fn write_data_files(
    table_dir: &Path,
    table: &str,
    batches: &[RecordBatch],
    contexts: &[Option<Contexts>],
    opts: &ParquetOptions,
) -> Result<Vec<DataFile>> {
    let layout = layout(table)?;
    for batch in batches {
        if batch.schema().fields() != layout.schema.fields() {
            return Err(ArrowError::SchemaError(format!(
                "batch does not have the {table} schema: {}",
                batch.schema()
            ))
            .into());
        }
    }
    if !contexts.is_empty() && contexts.len() != batches.len() {
        return Err(Error::Internal(format!(
            "{} batches but {} sets of contexts",
            batches.len(),
            contexts.len()
        )));
    }
    let groups = contexts
        .iter()
        .zip(batches)
        .map(|(c, b)| {
            c.as_ref()
                .map(|c| BatchGroups::new(c, b.num_rows()))
                .transpose()
        })
        .collect::<Result<Vec<_>>>()?;
    let Some((sorted, sorted_days)) = sort_rows(&layout, batches, groups)? else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    let mut start = 0;
    while start < sorted_days.len() {
        let day = sorted_days[start];
        let len = sorted_days[start..].partition_point(|&d| d == day);
        let props = writer_properties(table, &layout, opts, len)?;
        let mut file = DataFileWriter::create(table_dir, &day_string(day)?, &layout.schema, props)?;
        file.write(&sorted.slice(start, len))?;
        files.push(file.finish()?);
        start += len;
    }
    Ok(files)
}

/// `batches` (all with the layout's schema) sorted by the layout's keys, after the day of
/// each row (returned with them, in that order): `None` for no rows. `groups` is empty,
/// or says for each batch which of its rows share a resource and a scope.
pub(crate) fn sort_rows(
    layout: &Layout,
    batches: &[RecordBatch],
    groups: Vec<Option<BatchGroups>>,
) -> Result<Option<(SortedRows, Vec<i32>)>> {
    // The string columns the string writer encodes stay in the input batches: it reads
    // them there in sorted order (`SortedColumn::Parts`), so they are never copied. The
    // other columns are gathered straight from the input batches (`gather`), a run at a
    // time, which skips a copy of them and arrow's row-by-row `take`. The sort keys and day
    // columns are concatenated whatever their kind, to be ranked, and those of them not
    // read in place are taken from there in sorted order.
    let in_parts: Vec<bool> = layout
        .schema
        .fields()
        .iter()
        .map(|f| StringLeaf::encodes(f.data_type()))
        .collect();
    let ranked = |name: &str| {
        layout.sort_by.contains(&name)
            || layout.group_by == Some(name)
            || layout.day_from.contains(&name)
    };
    // Flat columns that are neither read in place nor ranked are gathered like nested
    // ones: a run at a time, prefetched runs ahead, from the input batches.
    let gathered: Vec<bool> = (0..layout.schema.fields().len())
        .map(|i| {
            let field = layout.schema.field(i);
            field.data_type().is_nested()
                || (!in_parts[i] && !ranked(field.name()) && gathers(field.data_type()))
        })
        .collect();
    let flat: Vec<usize> = (0..layout.schema.fields().len())
        .filter(|&i| !gathered[i] && (!in_parts[i] || ranked(layout.schema.field(i).name())))
        .collect();
    let projected = batches
        .iter()
        .map(|b| b.project(&flat))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let batch = concat_batches(&Arc::new(layout.schema.project(&flat)?), &projected)?;
    if batch.num_rows() == 0 {
        return Ok(None);
    }

    let days = day_numbers(&batch, layout.day_from)?;
    let mut keys = vec![(Arc::clone(&days) as ArrayRef, Rank::Value)];
    for name in layout.sort_by {
        keys.push((Arc::clone(column(&batch, name)?), Rank::Value));
    }
    if let Some(name) = layout.group_by {
        keys.push((Arc::clone(column(&batch, name)?), Rank::Arrival));
    }
    // Rows in the order of every key's values are also grouped by any key.
    let identity = in_order(&keys.iter().map(|(k, _)| Arc::clone(k)).collect::<Vec<_>>())?;
    let order = match identity {
        true => UInt32Array::from_iter_values(0..batch.num_rows() as u32),
        false => sort_order(&keys)?,
    };
    drop(keys);
    let runs = runs(batches, order.values());
    let columns = layout
        .schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            Ok(
                if field.name() == col::RESOURCE_ATTRIBUTES && once_by_resource(&groups) {
                    SortedColumn::ByResource {
                        parts: (batches.iter().zip(&groups))
                            .map(
                                |(b, g)| match g.as_ref().and_then(|g| g.attributes.as_ref()) {
                                    Some(once) => Arc::clone(once),
                                    None => Arc::clone(b.column(i)),
                                },
                            )
                            .collect(),
                        runs: runs_by_resource(&runs, &groups),
                    }
                } else if in_parts[i] {
                    SortedColumn::Parts(batches.iter().map(|b| Arc::clone(b.column(i))).collect())
                } else if gathered[i] {
                    let parts: Vec<&ArrayRef> = batches.iter().map(|b| b.column(i)).collect();
                    SortedColumn::Array(gather(field.data_type(), &parts, &runs, order.len())?)
                } else {
                    let column = column(&batch, field.name())?;
                    SortedColumn::Array(match identity {
                        true => Arc::clone(column),
                        false => take(column.as_ref(), &order, None)?,
                    })
                },
            )
        })
        .collect::<Result<Vec<_>>>()?;
    // The unsorted copy is not needed while Parquet is encoded: freeing it now lowers the
    // flush's peak memory by the size of the flush.
    drop(batch);
    let sorted = SortedRows {
        schema: Arc::clone(&layout.schema),
        columns,
        runs,
        groups: Arc::new(groups),
        len: order.len(),
    };
    let sorted_days: Vec<i32> = order
        .values()
        .iter()
        .map(|&i| days.value(i as usize))
        .collect();

    Ok(Some((sorted, sorted_days)))
}

/// Rows in the order they are written, column by column.
pub(crate) struct SortedRows {
    schema: SchemaRef,
    columns: Vec<SortedColumn>,
    /// Where the rows are in the input batches, in order; what `SortedColumn::Parts`
    /// columns are read through (empty when there are none).
    runs: Vec<Run>,
    /// For each input batch, which of its rows share a resource and a scope, if known
    /// (empty when none is): what `SortedColumn::Parts` columns of a resource or a scope
    /// are encoded by.
    groups: Arc<Vec<Option<BatchGroups>>>,
    len: usize,
}

/// A batch's rows numbered by context and by resource ([`Contexts`]), checked against it.
pub(crate) struct BatchGroups {
    by_context: ScalarBuffer<u32>,
    contexts: usize,
    by_resource: Vec<u32>,
    resources: usize,
    /// Each resource's `resource_attributes`, a row per resource, when the batch's own
    /// column leaves them out ([`Contexts::resource_attributes`]).
    attributes: Option<ArrayRef>,
    /// `0..` the rows of `attributes`: each its own group.
    each_resource: Vec<u32>,
}

impl BatchGroups {
    fn new(contexts: &Contexts, rows: usize) -> Result<Self> {
        if !contexts.fit(rows) {
            return Err(Error::Internal(format!(
                "contexts of {} rows and {} contexts for a batch of {rows} rows",
                contexts.row_context.len(),
                contexts.context_resource.len()
            )));
        }
        Ok(BatchGroups {
            by_context: contexts.row_context.clone(),
            contexts: contexts.context_resource.len(),
            by_resource: contexts.row_resources(),
            resources: contexts.resources(),
            attributes: (contexts.resource_attributes.clone()).map(|m| Arc::new(m) as ArrayRef),
            each_resource: match &contexts.resource_attributes {
                Some(map) => (0..map.len() as u32).collect(),
                None => Vec::new(),
            },
        })
    }
}

/// Whether any batch of a flush has its `resource_attributes` once per resource.
fn once_by_resource(groups: &[Option<BatchGroups>]) -> bool {
    groups.iter().flatten().any(|g| g.attributes.is_some())
}

/// The runs of `resource_attributes` ([`SortedColumn::ByResource`]) for rows in the order
/// `runs` gives them, a run a row: a row of a batch with its resources' attributes once
/// reads its resource's row of those, a row of any other batch its own row. (A run a row
/// also lets a slice of the rows be a slice of the runs.)
fn runs_by_resource(runs: &[Run], groups: &[Option<BatchGroups>]) -> Vec<Run> {
    let mut out = Vec::with_capacity(runs.iter().map(|r| r.len).sum());
    for run in runs {
        let rows = run.start..run.start + run.len;
        let row = |start: usize| Run {
            batch: run.batch,
            start,
            len: 1,
        };
        match groups.get(run.batch).and_then(Option::as_ref) {
            Some(g) if g.attributes.is_some() => {
                out.extend(g.by_resource[rows].iter().map(|&r| row(r as usize)));
            }
            _ => out.extend(rows.map(row)),
        }
    }
    out
}

/// A column of [`SortedRows`].
enum SortedColumn {
    /// The column's rows copied into their order.
    Array(ArrayRef),
    /// The column as it is in the input batches (one array per batch), read in order
    /// through the rows' runs. Only for string and string-map columns of the kind the
    /// string writer encodes ([`StringLeaf::encodes`]): it reads them from there, and
    /// copying them into order was a tenth of the flush's instructions (callgrind,
    /// benches/flush.rs on realistic spans).
    Parts(Vec<ArrayRef>),
    /// `resource_attributes` of batches that hold it once per resource
    /// ([`Contexts::resource_attributes`]): for each batch, those rows (or, for a batch
    /// without, its own column), and the runs that read the rows in order from there,
    /// one row a run ([`runs_by_resource`]).
    ByResource {
        parts: Vec<ArrayRef>,
        runs: Vec<Run>,
    },
}

impl SortedRows {
    fn num_rows(&self) -> usize {
        self.len
    }

    /// Rows `offset..offset + len`.
    fn slice(&self, offset: usize, len: usize) -> SortedRows {
        let columns = self
            .columns
            .iter()
            .map(|c| match c {
                SortedColumn::Array(a) => SortedColumn::Array(a.slice(offset, len)),
                SortedColumn::Parts(p) => SortedColumn::Parts(p.clone()),
                SortedColumn::ByResource { parts, runs } => SortedColumn::ByResource {
                    parts: parts.clone(),
                    runs: runs[offset..offset + len].to_vec(),
                },
            })
            .collect();
        let has_parts = self
            .columns
            .iter()
            .any(|c| matches!(c, SortedColumn::Parts(_)));
        SortedRows {
            schema: Arc::clone(&self.schema),
            columns,
            runs: match has_parts {
                true => cut_runs(&self.runs, offset, len),
                false => Vec::new(),
            },
            groups: Arc::clone(&self.groups),
            len,
        }
    }

    /// Column `i` as input arrays and the runs that give its rows in order; an array in
    /// order already is one part, read in one run.
    fn parts_and_runs(&self, i: usize) -> (&[ArrayRef], Cow<'_, [Run]>) {
        match &self.columns[i] {
            SortedColumn::Array(a) => (
                std::slice::from_ref(a),
                Cow::Owned(vec![Run {
                    batch: 0,
                    start: 0,
                    len: a.len(),
                }]),
            ),
            SortedColumn::Parts(p) => (p, Cow::Borrowed(&self.runs)),
            SortedColumn::ByResource { parts, runs } => (parts, Cow::Borrowed(runs)),
        }
    }

    /// For each part of column `i` (named `name`), which of its rows share its value:
    /// their resource or their context, for a column of a resource or a scope read in
    /// parts. Empty when that is not known.
    fn groups(&self, i: usize, name: &str) -> Vec<Option<Groups<'_>>> {
        if let SortedColumn::ByResource { .. } = self.columns[i] {
            // A batch's resources' rows are each their own group; a batch without them
            // reads its own column, grouped by resource.
            return (self.groups.iter())
                .map(|g| {
                    g.as_ref().map(|g| match g.attributes {
                        Some(_) => Groups {
                            of_row: &g.each_resource,
                            count: g.each_resource.len(),
                        },
                        None => Groups {
                            of_row: &g.by_resource,
                            count: g.resources,
                        },
                    })
                })
                .collect();
        }
        let by_resource = RESOURCE_COLUMNS.contains(&name);
        if !matches!(self.columns[i], SortedColumn::Parts(_))
            || !(by_resource || SCOPE_COLUMNS.contains(&name))
        {
            return Vec::new();
        }
        self.groups
            .iter()
            .map(|g| {
                g.as_ref().map(|g| match by_resource {
                    true => Groups {
                        of_row: &g.by_resource,
                        count: g.resources,
                    },
                    false => Groups {
                        of_row: &g.by_context,
                        count: g.contexts,
                    },
                })
            })
            .collect()
    }
}

impl From<&RecordBatch> for SortedRows {
    /// A batch's rows in the order they are in.
    fn from(batch: &RecordBatch) -> Self {
        SortedRows {
            schema: batch.schema(),
            columns: batch
                .columns()
                .iter()
                .map(|c| SortedColumn::Array(Arc::clone(c)))
                .collect(),
            runs: Vec::new(),
            groups: Arc::default(),
            len: batch.num_rows(),
        }
    }
}

/// The runs of rows `offset..offset + len` of the rows `runs` lists, the runs at either
/// end cut to fit.
fn cut_runs(runs: &[Run], offset: usize, len: usize) -> Vec<Run> {
    let end = offset + len;
    let mut out = Vec::new();
    // The row (counted over all runs) that the current run starts at.
    let mut at = 0;
    for r in runs {
        if at >= end {
            break;
        }
        let (from, to) = (at.max(offset), (at + r.len).min(end));
        if from < to {
            out.push(Run {
                batch: r.batch,
                start: r.start + (from - at),
                len: to - from,
            });
        }
        at += r.len;
    }
    out
}

/// How many of the rows `runs` picks are null, `nulls[part]` being the validity of each
/// part the runs point into.
pub(crate) fn null_count(
    nulls: &[Option<&NullBuffer>],
    runs: impl IntoIterator<Item = Run>,
) -> usize {
    if nulls.iter().all(|n| n.is_none_or(|n| n.null_count() == 0)) {
        return 0;
    }
    runs.into_iter()
        .map(|r| match nulls[r.batch] {
            // The runs of sorted rows are short (a row or two): bit by bit, as in
            // `gather_nulls`; an array in order is one long run.
            Some(n) if r.len > 64 => r.len - n.inner().slice(r.start, r.len).count_set_bits(),
            Some(n) => (r.start..r.start + r.len).filter(|&i| n.is_null(i)).count(),
            None => 0,
        })
        .sum()
}

/// Whether the rows are in the order of `keys` already (NULLs first, as [`sort_order`]
/// ranks them), so that [`sort_order`] would return them as they are: rollups arrive
/// sorted by minute and key from [`crate::rollup::Rollups::finish`], and ranking their
/// keys to sort them again was a tenth of writing them. Rows out of order usually show
/// within the first few (spans), where the check stops.
fn in_order(keys: &[ArrayRef]) -> Result<bool> {
    let opts = SortOptions {
        descending: false,
        nulls_first: true,
    };
    let compare = keys
        .iter()
        .map(|k| make_comparator(k.as_ref(), k.as_ref(), opts))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let rows = keys.first().map_or(0, |k| k.len());
    Ok((1..rows).all(|row| {
        compare
            .iter()
            .map(|c| c(row - 1, row))
            .find(|o| o.is_ne())
            .is_none_or(|o| o.is_lt())
    }))
}

/// How the rows of a sort key's values are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rank {
    /// By value: ascending, nulls first.
    Value,
    /// By first appearance: nulls first, then each value's rows together, the values in
    /// the order their first rows come (strings only).
    Arrival,
}

/// The row indices that sort `keys` (the first key first, each ordered as its [`Rank`]
/// says): for keys all ranked by value, the order `lexsort_to_indices` gives (ascending,
/// nulls first), at a fraction of its cost. Each key is turned into an exact rank per row
/// (0 for null; a string's rank among the column's distinct strings, or its place among
/// them in order of first appearance; an integer's distance from the column's minimum;
/// plus one).
///
/// When the ranks of all keys pack into 32 bits (a flush's days, services and traces: a
/// few bits, a few more and 13-18), one least-significant-digit radix sort orders the rows
/// in two or three passes over them; it is stable, so rows of equal keys keep their input
/// order, as below. When those of all keys but the last do (minutes and versions, or a
/// last key of nanosecond times), rows are grouped by them with a radix sort, and only
/// each group is sorted by the last key. Otherwise the ranks of a row are packed into one
/// `u128` when they fit, so the sort compares single integers.
fn sort_order(keys: &[(ArrayRef, Rank)]) -> Result<UInt32Array> {
    let rows = keys.first().map_or(0, |(k, _)| k.len());
    let ranks = keys
        .iter()
        .map(|(k, rank)| ranks(k, *rank))
        .collect::<Result<Vec<_>>>()?;
    let bits: Vec<u32> = ranks
        .iter()
        .map(|r| 128 - r.iter().max().copied().unwrap_or(0).leading_zeros())
        .collect();
    // A row's ranks of `ranks`, each in its `bits`, packed first key highest.
    let pack = |ranks: &[Vec<u128>], row: usize| {
        ranks
            .iter()
            .zip(&bits)
            .fold(0u128, |key, (r, &b)| (key << b) | r[row])
    };
    let leading_bits: u32 = bits.iter().rev().skip(1).sum();
    let all_bits: u32 = bits.iter().sum();
    let order: Vec<u32> = if all_bits <= 32 {
        let packed: Vec<u32> = (0..rows).map(|row| pack(&ranks, row) as u32).collect();
        radix_order(&packed, all_bits)
    } else if keys.len() >= 2 && leading_bits <= 32 {
        let (leading, last) = ranks.split_at(ranks.len() - 1);
        let last = &last[0];
        let groups: Vec<u32> = (0..rows).map(|row| pack(leading, row) as u32).collect();
        let mut order = radix_order(&groups, leading_bits);
        // Within a group rows are in input order, so a stable sort by the last key alone
        // breaks its ties as the packed keys below do.
        let mut start = 0;
        while start < rows {
            let group = groups[order[start] as usize];
            let end = start
                + order[start..]
                    .iter()
                    .take_while(|&&row| groups[row as usize] == group)
                    .count();
            if end - start > 1 {
                order[start..end].sort_by_key(|&row| last[row as usize]);
            }
            start = end;
        }
        order
    } else if bits.iter().sum::<u32>() <= 96 {
        // The row in the low 32 bits breaks ties as the tuple below does, and a sort of
        // plain u128 is cheaper than one of tuples.
        let mut packed: Vec<u128> = (0..rows)
            .map(|row| (pack(&ranks, row) << 32) | row as u128)
            .collect();
        packed.sort_unstable();
        packed.into_iter().map(|key| key as u32).collect()
    } else if bits.iter().sum::<u32>() <= 128 {
        let mut packed: Vec<(u128, u32)> = (0..rows)
            .map(|row| (pack(&ranks, row), row as u32))
            .collect();
        packed.sort_unstable();
        packed.into_iter().map(|(_, row)| row).collect()
    } else {
        let mut order: Vec<u32> = (0..rows as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            ranks
                .iter()
                .map(|r| r[a as usize].cmp(&r[b as usize]))
                .find(|o| o.is_ne())
                .unwrap_or(a.cmp(&b))
        });
        order
    };
    Ok(UInt32Array::from(order))
}

/// The rows ordered by `keys` (each below `2^bits`), rows of equal keys in input order:
/// a least-significant-digit radix sort in passes of at most 11 bits.
fn radix_order(keys: &[u32], bits: u32) -> Vec<u32> {
    let mut order: Vec<u32> = (0..keys.len() as u32).collect();
    if bits == 0 {
        return order;
    }
    let passes = bits.div_ceil(11);
    let width = bits.div_ceil(passes);
    let mask = (1u32 << width) - 1;
    let mut sorted = vec![0u32; keys.len()];
    let mut starts = vec![0usize; 1 << width];
    for pass in 0..passes {
        let digit = |row: u32| ((keys[row as usize] >> (pass * width)) & mask) as usize;
        starts.fill(0);
        for &row in &order {
            starts[digit(row)] += 1;
        }
        let mut sum = 0;
        for start in starts.iter_mut() {
            (*start, sum) = (sum, sum + *start);
        }
        for &row in &order {
            let slot = &mut starts[digit(row)];
            sorted[*slot] = row;
            *slot += 1;
        }
        std::mem::swap(&mut order, &mut sorted);
    }
    order
}

/// Exact ranks of a sort key's rows, in the order `rank` asks for: 0 for null, 1.. for
/// values.
fn ranks(array: &ArrayRef, rank: Rank) -> Result<Vec<u128>> {
    Ok(match (array.data_type(), rank) {
        (DataType::Utf8, _) => string_ranks(array.as_string::<i32>(), rank),
        (other, Rank::Arrival) => {
            return Err(Error::from(ArrowError::NotYetImplemented(format!(
                "grouping by a {other} column"
            ))))
        }
        (DataType::Int32, _) => int_ranks(array.as_primitive::<Int32Type>()),
        (DataType::Int64, _) => int_ranks(array.as_primitive::<Int64Type>()),
        (DataType::Timestamp(TimeUnit::Nanosecond, _), _) => {
            int_ranks(array.as_primitive::<TimestampNanosecondType>())
        }
        (other, _) => {
            return Err(Error::from(ArrowError::NotYetImplemented(format!(
                "sorting by a {other} column"
            ))))
        }
    })
}

fn int_ranks<T>(array: &PrimitiveArray<T>) -> Vec<u128>
where
    T: ArrowPrimitiveType,
    T::Native: Into<i64>,
{
    let value = |row: usize| -> i64 { array.value(row).into() };
    let min = (0..array.len())
        .filter(|&row| array.is_valid(row))
        .map(value)
        .min()
        .unwrap_or(0);
    (0..array.len())
        .map(|row| match array.is_valid(row) {
            true => (i128::from(value(row)) - i128::from(min)) as u128 + 1,
            false => 0,
        })
        .collect()
}

/// Each row's rank among the column's distinct strings, by value or by first appearance
/// (`rank`), 1-based; 0 for null. Rows repeating the previous row's string (spans of one
/// trace, records of one service) skip the hash lookup.
fn string_ranks(strings: &StringArray, rank: Rank) -> Vec<u128> {
    let mut ids: HashMap<&str, u32, ahash::RandomState> = HashMap::default();
    let mut row_ids: Vec<u32> = Vec::with_capacity(strings.len());
    let mut previous: Option<(&str, u32)> = None;
    for s in strings.iter() {
        let id = match (s, previous) {
            (None, _) => u32::MAX,
            (Some(s), Some((p, id))) if p == s => id,
            (Some(s), _) => {
                let next = ids.len() as u32;
                let id = *ids.entry(s).or_insert(next);
                previous = Some((s, id));
                id
            }
        };
        row_ids.push(id);
    }
    if rank == Rank::Arrival {
        // Ids are numbered in order of first appearance already.
        return row_ids
            .iter()
            .map(|&id| match id {
                u32::MAX => 0,
                id => u128::from(id) + 1,
            })
            .collect();
    }
    let mut distinct: Vec<(&str, u32)> = ids.into_iter().collect();
    distinct.sort_unstable();
    let mut rank_of_id = vec![0u128; distinct.len()];
    for (rank, (_, id)) in distinct.iter().enumerate() {
        rank_of_id[*id as usize] = rank as u128 + 1;
    }
    row_ids
        .iter()
        .map(|&id| rank_of_id.get(id as usize).copied().unwrap_or(0))
        .collect()
}

/// Rows `start..start + len` of input batch `batch` (or entries of a child array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) batch: usize,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// `order`, indices into the concatenation of `batches`, as runs of consecutive rows of
/// one batch. After the sort a run of spans is mostly the spans of one trace that arrived
/// together, a few rows, and its list or map entries (the spans' attributes) one run of a
/// child.
fn runs(batches: &[RecordBatch], order: &[u32]) -> Vec<Run> {
    let mut starts = Vec::with_capacity(batches.len());
    let mut total = 0;
    for b in batches {
        starts.push(total);
        total += b.num_rows();
    }
    let mut runs: Vec<Run> = Vec::new();
    let mut previous = usize::MAX;
    for &row in order {
        let row = row as usize;
        match runs.last_mut() {
            Some(run)
                if row == previous.wrapping_add(1)
                    && run.start + run.len < batches[run.batch].num_rows() =>
            {
                run.len += 1
            }
            _ => {
                // The last batch starting at or before `row`: empty batches share a start
                // with the next one.
                let batch = starts.partition_point(|&s| s <= row).saturating_sub(1);
                runs.push(Run {
                    batch,
                    start: row - starts[batch],
                    len: 1,
                });
            }
        }
        previous = row;
    }
    runs
}

/// `runs` of `parts` (one array per input batch, all of `data_type`) as one array of
/// `rows` rows: the list and map columns (and their children) in sorted order. A run
/// costs a slice copy per buffer, whatever its length. The strings built here are checked
/// for UTF-8 once more by `StringArray::try_new` (arrow's own kernels skip that with
/// `unsafe`, which this crate denies); that check is a quarter of the gather.
fn gather(
    data_type: &DataType,
    parts: &[&ArrayRef],
    runs: &[Run],
    rows: usize,
) -> Result<ArrayRef> {
    let nulls = || {
        gather_nulls(
            &parts.iter().map(|a| a.nulls()).collect::<Vec<_>>(),
            runs,
            rows,
        )
    };
    Ok(match data_type {
        DataType::Utf8 => {
            let strings: Vec<&StringArray> = parts.iter().map(|a| a.as_string::<i32>()).collect();
            let offsets: Vec<&[i32]> = strings.iter().map(|s| s.value_offsets()).collect();
            let (offsets, bytes) = gather_offsets(&offsets, runs)?;
            let mut values = Vec::with_capacity(offsets.last().map_or(0, |&o| o as usize));
            for (k, r) in bytes.iter().enumerate() {
                if let Some(a) = bytes.get(k + AHEAD) {
                    prefetch(strings[a.batch].values(), a.start);
                }
                values.extend_from_slice(&strings[r.batch].values()[r.start..r.start + r.len]);
            }
            Arc::new(StringArray::try_new(offsets, values.into(), nulls())?)
        }
        DataType::List(field) => {
            let lists: Vec<&ListArray> = parts.iter().map(|a| a.as_list::<i32>()).collect();
            let offsets: Vec<&[i32]> = lists.iter().map(|l| l.value_offsets()).collect();
            let (offsets, entries) = gather_offsets(&offsets, runs)?;
            let children: Vec<&ArrayRef> = lists.iter().map(|l| l.values()).collect();
            let len = offsets.last().map_or(0, |&o| o as usize);
            let values = gather(field.data_type(), &children, &entries, len)?;
            Arc::new(ListArray::try_new(
                Arc::clone(field),
                offsets,
                values,
                nulls(),
            )?)
        }
        DataType::Map(field, sorted) => {
            let DataType::Struct(fields) = field.data_type() else {
                return Err(ArrowError::SchemaError(format!("map entries of type {field}")).into());
            };
            let maps: Vec<&MapArray> = parts.iter().map(|a| a.as_map()).collect();
            let offsets: Vec<&[i32]> = maps.iter().map(|m| m.value_offsets()).collect();
            let (offsets, entries) = gather_offsets(&offsets, runs)?;
            let children: Vec<&StructArray> = maps.iter().map(|m| m.entries()).collect();
            let len = offsets.last().map_or(0, |&o| o as usize);
            let values = gather_struct(fields, &children, &entries, len)?;
            Arc::new(MapArray::try_new(
                Arc::clone(field),
                offsets,
                values,
                nulls(),
                *sorted,
            )?)
        }
        DataType::Struct(fields) => {
            let structs: Vec<&StructArray> = parts.iter().map(|a| a.as_struct()).collect();
            Arc::new(gather_struct(fields, &structs, runs, rows)?)
        }
        DataType::Int32 => gather_primitive::<Int32Type>(data_type, parts, runs, rows, nulls())?,
        DataType::Int64 => gather_primitive::<Int64Type>(data_type, parts, runs, rows, nulls())?,
        DataType::Float64 => {
            gather_primitive::<Float64Type>(data_type, parts, runs, rows, nulls())?
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            gather_primitive::<TimestampNanosecondType>(data_type, parts, runs, rows, nulls())?
        }
        other => {
            return Err(ArrowError::NotYetImplemented(format!("writing a {other} column")).into())
        }
    })
}

/// Whether [`gather`] gathers a flat column of `data_type`.
fn gathers(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::Int32
            | DataType::Int64
            | DataType::Float64
            | DataType::Timestamp(TimeUnit::Nanosecond, _)
    )
}

fn gather_struct(
    fields: &Fields,
    parts: &[&StructArray],
    runs: &[Run],
    rows: usize,
) -> Result<StructArray> {
    let nulls = gather_nulls(
        &parts.iter().map(|s| s.nulls()).collect::<Vec<_>>(),
        runs,
        rows,
    );
    let children = fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let column: Vec<&ArrayRef> = parts.iter().map(|s| s.column(i)).collect();
            gather(field.data_type(), &column, runs, rows)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(StructArray::try_new(fields.clone(), children, nulls)?)
}

fn gather_primitive<T: ArrowPrimitiveType>(
    data_type: &DataType,
    parts: &[&ArrayRef],
    runs: &[Run],
    rows: usize,
    nulls: Option<NullBuffer>,
) -> Result<ArrayRef> {
    let parts: Vec<&PrimitiveArray<T>> = parts.iter().map(|a| a.as_primitive::<T>()).collect();
    let mut values = Vec::with_capacity(rows);
    for (k, r) in runs.iter().enumerate() {
        if let Some(a) = runs.get(k + AHEAD) {
            prefetch(parts[a.batch].values(), a.start);
        }
        values.extend_from_slice(&parts[r.batch].values()[r.start..r.start + r.len]);
    }
    Ok(Arc::new(
        PrimitiveArray::<T>::try_new(values.into(), nulls)?.with_data_type(data_type.clone()),
    ))
}

/// The offsets of the gathered lists (or strings), and the runs of child entries (or
/// bytes) they cover.
fn gather_offsets(parts: &[&[i32]], runs: &[Run]) -> Result<(OffsetBuffer<i32>, Vec<Run>)> {
    let mut offsets: Vec<i32> = Vec::with_capacity(runs.iter().map(|r| r.len).sum::<usize>() + 1);
    offsets.push(0);
    let mut children = Vec::with_capacity(runs.len());
    // Wide enough not to wrap; checked against i32 once, at the end.
    let mut end = 0i64;
    for (k, r) in runs.iter().enumerate() {
        if let Some(a) = runs.get(k + AHEAD) {
            prefetch(parts[a.batch], a.start);
        }
        let from = &parts[r.batch][r.start..r.start + r.len + 1];
        let (first, last) = (from[0], from[r.len]);
        let shift = end - i64::from(first);
        for &o in &from[1..] {
            offsets.push((i64::from(o) + shift) as i32);
        }
        end += i64::from(last - first);
        if last > first {
            children.push(Run {
                batch: r.batch,
                start: first as usize,
                len: (last - first) as usize,
            });
        }
    }
    if end > i64::from(i32::MAX) {
        return Err(ArrowError::ComputeError(
            "more than 2^31 list entries or string bytes".to_string(),
        )
        .into());
    }
    Ok((OffsetBuffer::new(offsets.into()), children))
}

fn gather_nulls(parts: &[Option<&NullBuffer>], runs: &[Run], rows: usize) -> Option<NullBuffer> {
    if parts.iter().all(|n| n.is_none_or(|n| n.null_count() == 0)) {
        return None;
    }
    let mut valid = BooleanBufferBuilder::new(rows);
    for r in runs {
        match parts[r.batch] {
            // Runs are short (a row or two): bit by bit beats a packed-range copy.
            Some(n) => (r.start..r.start + r.len).for_each(|i| valid.append(n.is_valid(i))),
            None => valid.append_n(r.len, true),
        }
    }
    Some(NullBuffer::new(valid.finish())).filter(|n| n.null_count() > 0)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::from(ArrowError::SchemaError(format!("missing column {name}"))))
}

/// Days since 1970-01-01 (UTC) of every row.
fn day_numbers(batch: &RecordBatch, day_from: &[&str]) -> Result<Arc<Int32Array>> {
    let sources = day_from
        .iter()
        .map(|name| {
            column(batch, name)?
                .as_primitive_opt::<TimestampNanosecondType>()
                .ok_or_else(|| {
                    Error::from(ArrowError::SchemaError(format!(
                        "{name} is not a nanosecond timestamp"
                    )))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let today = day_of(now_ns());
    let days = (0..batch.num_rows())
        .map(|row| {
            sources
                .iter()
                .find(|a| a.is_valid(row))
                .map_or(today, |a| day_of(a.value(row)))
        })
        .collect();
    Ok(Arc::new(Int32Array::new(days, None)))
}

fn day_of(ns: i64) -> i32 {
    // |i64::MAX ns| is about 106,752 days, so the quotient always fits.
    ns.div_euclid(NANOS_PER_DAY) as i32
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

pub(crate) fn writer_properties(
    table: &str,
    layout: &Layout,
    opts: &ParquetOptions,
    rows: usize,
) -> Result<WriterProperties> {
    if opts.row_group_rows == 0 {
        return Err(ArrowError::InvalidArgumentError("row_group_rows must be > 0".into()).into());
    }
    let sorting = layout
        .sort_by
        .iter()
        .map(|name| {
            let idx = layout.schema.index_of(name)?;
            Ok(SortingColumn {
                column_idx: i32::try_from(idx).unwrap_or(i32::MAX),
                descending: false,
                nulls_first: true,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(opts.zstd_level)?))
        .set_dictionary_enabled(true)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_LIMIT)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(opts.row_group_rows))
        .set_sorting_columns(Some(sorting))
        .set_key_value_metadata(Some(vec![
            KeyValue::new(
                WRITER_KEY.to_string(),
                concat!("aftershock-core ", env!("CARGO_PKG_VERSION")).to_string(),
            ),
            KeyValue::new(TABLE_KEY.to_string(), table.to_string()),
        ]));
    for name in layout.plain {
        props = props.set_column_dictionary_enabled(leaf_path(name), false);
    }
    for name in layout.delta_lengths {
        props = props.set_column_encoding(leaf_path(name), Encoding::DELTA_LENGTH_BYTE_ARRAY);
    }
    for name in layout.delta_packed {
        props = props
            .set_column_encoding(leaf_path(name), Encoding::DELTA_BINARY_PACKED)
            .set_column_compression(leaf_path(name), Compression::UNCOMPRESSED);
    }
    for name in layout.uncompressed {
        props = props.set_column_compression(leaf_path(name), Compression::UNCOMPRESSED);
    }
    // Min/max of attribute keys and values, event and link fields, cost a tenth of the
    // write (a string comparison per value) and prune nothing: no engine pushes a filter
    // on a map value or list element down to Parquet statistics.
    for leaf in ArrowSchemaConverter::new()
        .convert(&layout.schema)?
        .columns()
    {
        if leaf.path().parts().len() > 1 {
            props =
                props.set_column_statistics_enabled(leaf.path().clone(), EnabledStatistics::None);
        }
    }
    if layout.schema.index_of(col::TRACE_ID).is_ok() {
        // An upper bound on distinct values; the writer folds the filter down to what the
        // row group really holds, so only the transient allocation depends on it.
        let bloom = BloomFilterProperties::builder()
            .with_fpp(opts.bloom_filter_fpp)
            .with_max_ndv(rows.min(opts.row_group_rows) as u64)
            .try_build()?;
        props = props.set_column_bloom_filter_properties(ColumnPath::from(col::TRACE_ID), bloom);
    }
    Ok(props.build())
}

/// The Parquet leaf `name` names: a top-level column, or a nested leaf as Parquet spells
/// its path, its parts joined by dots (`events.list.item.time`).
fn leaf_path(name: &str) -> ColumnPath {
    ColumnPath::new(name.split('.').map(String::from).collect())
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01.
fn day_string(day: i32) -> Result<String> {
    Ok(DateTime::from_timestamp(i64::from(day) * 86_400, 0)
        .ok_or_else(|| ArrowError::ComputeError(format!("day {day} out of range")))?
        .format("%Y-%m-%d")
        .to_string())
}

/// A new data file in one day partition of a table, written a run of sorted rows at a
/// time ([`DataFileWriter::write`]). It is a hidden temp file until
/// [`DataFileWriter::finish`] fsyncs it and renames it into place (then fsyncs the
/// directory), so a crash leaves no truncated data file; dropped unfinished, it is deleted.
pub(crate) struct DataFileWriter {
    sink: ParquetSink<BufWriter<File>>,
    tmp: TempFile,
    dir: PathBuf,
    name: String,
    partition_dir: String,
    day: String,
}

impl DataFileWriter {
    /// Starts a file of rows of `schema` under `table_dir/day=<day>/`.
    pub(crate) fn create(
        table_dir: &Path,
        day: &str,
        schema: &SchemaRef,
        props: WriterProperties,
    ) -> Result<Self> {
        let partition_dir = format!("{DAY}={day}");
        let dir = table_dir.join(&partition_dir);
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            // The new directory's entry must be durable before the file in it can be.
            sync_dir(table_dir)?;
        }
        let name = unique_file_name();
        let tmp = TempFile {
            path: dir.join(format!(".{name}.tmp")),
            keep: false,
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp.path)?;
        let out = BufWriter::with_capacity(1 << 20, file);
        Ok(DataFileWriter {
            sink: ParquetSink::new(out, Arc::clone(schema), props)?,
            tmp,
            dir,
            name,
            partition_dir,
            day: day.to_string(),
        })
    }

    /// Appends `rows` in the order they are in, in row groups of the properties' size.
    pub(crate) fn write(&mut self, rows: &SortedRows) -> Result<()> {
        self.sink.write(rows)
    }

    /// Appends row group `index` of the file `source`, whose metadata (with its page
    /// index, if it has one) is `meta`, as it is: its encoded pages, bloom filters and
    /// page index. The source must have this file's schema and Delta statistics on its
    /// flat columns ([`copyable`]).
    pub(crate) fn append_row_group<R: ChunkReader>(
        &mut self,
        source: &R,
        meta: &ParquetMetaData,
        index: usize,
    ) -> Result<()> {
        self.sink.append_row_group(source, meta, index)
    }

    /// Writes the footer, makes the file durable under its final name and returns it.
    pub(crate) fn finish(mut self) -> Result<DataFile> {
        self.sink.writer.finish()?;
        let file = self.sink.writer.inner().get_ref();
        file.sync_all()?;
        let meta = file.metadata()?;
        fs::rename(&self.tmp.path, self.dir.join(&self.name))?;
        self.tmp.keep = true;
        sync_dir(&self.dir)?;

        let modified = meta.modified().unwrap_or_else(|_| SystemTime::now());
        let modification_time_ms = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Ok(DataFile {
            path: format!("{}/{}", self.partition_dir, self.name),
            size: meta.len(),
            partition_values: vec![(DAY.to_string(), self.day)],
            rows: self.sink.stats.rows as u64,
            stats_json: self.sink.stats.json(),
            modification_time_ms,
        })
    }
}

/// [`write_rows`] of a batch, its rows in the order they are in: what the string
/// writer's tests compare with arrow-rs's own writer.
#[cfg(test)]
pub(crate) fn write_parquet<W: Write + Send>(
    out: W,
    batch: &RecordBatch,
    props: WriterProperties,
) -> Result<ParquetMetaData> {
    Ok(write_rows(out, &SortedRows::from(batch), props)?.0)
}

/// `sorted` as one whole Parquet file written to `out`: its metadata and its Delta
/// statistics.
#[cfg(test)]
fn write_rows<W: Write + Send>(
    out: W,
    sorted: &SortedRows,
    props: WriterProperties,
) -> Result<(ParquetMetaData, String)> {
    let mut sink = ParquetSink::new(out, Arc::clone(&sorted.schema), props)?;
    sink.write(sorted)?;
    let written = sink.writer.finish()?;
    Ok((written, sink.stats.json()))
}

/// A Parquet file being written, row group by row group: the string columns through
/// [`parquet_strings`], every other column through arrow-rs's column writers, all under
/// the file's properties. The file is what `ArrowWriter` would write (the Arrow schema in
/// its metadata included), at a fraction of the cost for the strings. The string writer
/// reads `Parts` columns where they are; a `Parts` column it cannot take in some row
/// group (nulls where its levels have none) is gathered for arrow-rs. The Delta
/// statistics of the rows are gathered as they go (`stats`).
struct ParquetSink<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    /// arrow-rs makes a zstd compressor and decompressor for every column writer it
    /// creates, one per leaf and row group, whether or not the writer writes anything
    /// (the string leaves are written here), and the first page it compresses sets up
    /// the compressor's tables: 3.5% of a realistic ingest's CPU went to that. Its
    /// writers are made with no codec on the leaves the string writer takes and on the
    /// leaves of list columns (`stripped`). Should a string leaf fall back to arrow-rs in
    /// some row group, its writer comes from `fallback`, and a list column with elements
    /// in the row group takes its writers from `lists`: writers of those columns alone,
    /// made with `props` as they are. A list column with none (the links of nearly
    /// every span, the events of most) is written uncompressed: its pages hold levels
    /// alone, a few bytes that zstd would only wrap.
    arrow_writers: ArrowRowGroupWriterFactory,
    stripped: WriterProperties,
    fallback: FallbackWriters,
    lists: FallbackWriters,
    props: Arc<WriterProperties>,
    parquet_schema: SchemaDescriptor,
    schema: SchemaRef,
    strings: StringChunkWriter,
    row_group_rows: usize,
    stats: FileStats,
}

impl<W: Write + Send> ParquetSink<W> {
    fn new(out: W, schema: SchemaRef, props: WriterProperties) -> Result<Self> {
        let row_group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let stripped = without_codecs(&props, &schema)?;
        let (writer, arrow_writers) =
            ArrowWriter::try_new(out, Arc::clone(&schema), Some(stripped.clone()))?
                .into_serialized_writer()?;
        let props = Arc::new(props);
        let parquet_schema = writer.schema_descr().clone();
        let fallback = FallbackWriters::new(&schema, &parquet_schema, &props, StringLeaf::encodes);
        let lists = FallbackWriters::new(&schema, &parquet_schema, &props, is_list);
        Ok(ParquetSink {
            parquet_schema,
            writer,
            arrow_writers,
            stripped,
            fallback,
            lists,
            props,
            stats: FileStats::new(&schema),
            schema,
            strings: StringChunkWriter::new(),
            row_group_rows,
        })
    }

    /// Writes `sorted` as the next row groups, each at most `row_group_rows` long.
    fn write(&mut self, sorted: &SortedRows) -> Result<()> {
        let mut start = 0;
        while start < sorted.num_rows() {
            let len = self.row_group_rows.min(sorted.num_rows() - start);
            // A day's rows are mostly one row group: its runs need no copy then.
            let sliced;
            let rows = match len == sorted.num_rows() {
                true => sorted,
                false => {
                    sliced = sorted.slice(start, len);
                    &sliced
                }
            };
            start += len;
            self.write_row_group(rows)?;
        }
        Ok(())
    }

    /// See [`DataFileWriter::append_row_group`].
    fn append_row_group<R: ChunkReader>(
        &mut self,
        source: &R,
        meta: &ParquetMetaData,
        index: usize,
    ) -> Result<()> {
        let rows = meta.row_group(index);
        let mut row_group = self.writer.next_row_group()?;
        for (c, chunk) in rows.columns().iter().enumerate() {
            let close = ColumnCloseResult {
                bytes_written: u64::try_from(chunk.compressed_size()).unwrap_or(0),
                rows_written: u64::try_from(rows.num_rows()).unwrap_or(0),
                metadata: chunk.clone(),
                bloom_filter: Sbbf::read_from_column_chunk(chunk, source)?,
                column_index: page_index_entry(meta.column_index(), index, c),
                offset_index: page_index_entry(meta.offset_index(), index, c),
            };
            row_group.append_column(source, close)?;
        }
        let written = row_group.close()?;
        self.stats.add_written(&written)
    }

    fn write_row_group(&mut self, rows: &SortedRows) -> Result<()> {
        let schema = Arc::clone(&self.schema);
        let parquet_schema = &self.parquet_schema;
        let props = &self.props;
        let index = self.writer.flushed_row_groups().len();
        let mut column_writers = self.arrow_writers.create_column_writers(index)?.into_iter();
        let mut row_group = self.writer.next_row_group()?;
        let mut leaf = 0;
        for (i, field) in schema.fields().iter().enumerate() {
            let (parts, runs) = rows.parts_and_runs(i);
            let groups = rows.groups(i, field.name());
            let own =
                StringLeaf::leaves(field.data_type(), parts, &runs, &groups).filter(|leaves| {
                    leaves.iter().enumerate().all(|(k, l)| {
                        StringChunkWriter::handles(l, &parquet_schema.column(leaf + k), props)
                    })
                });
            match own {
                Some(leaves) => {
                    for l in leaves {
                        column_writers.next();
                        let (bytes, close) =
                            self.strings.write(l, &parquet_schema.column(leaf), props)?;
                        row_group.append_column(&bytes, close)?;
                        leaf += 1;
                    }
                }
                None => {
                    let column = match &rows.columns[i] {
                        SortedColumn::Array(a) => Arc::clone(a),
                        SortedColumn::Parts(p) | SortedColumn::ByResource { parts: p, .. } => {
                            let parts: Vec<&ArrayRef> = p.iter().collect();
                            gather(field.data_type(), &parts, &runs, rows.num_rows())?
                        }
                    };
                    let list = is_list(field.data_type());
                    let no_elements = list && has_no_elements(&column);
                    for l in compute_leaves(field, &column)? {
                        let no_leaf = || {
                            ArrowError::SchemaError(format!("no Parquet leaf for {}", field.name()))
                        };
                        let stripped_writer = column_writers.next().ok_or_else(no_leaf)?;
                        let descr = parquet_schema.column(leaf);
                        let path = descr.path();
                        let same_codec = self.stripped.compression(path) == props.compression(path);
                        let mut w = match (same_codec || no_elements, list) {
                            (true, _) => stripped_writer,
                            (false, true) => self.lists.take(index, leaf)?.ok_or_else(no_leaf)?,
                            (false, false) => {
                                self.fallback.take(index, leaf)?.ok_or_else(no_leaf)?
                            }
                        };
                        w.write(&l)?;
                        w.close()?.append_to_row_group(&mut row_group)?;
                        leaf += 1;
                    }
                }
            }
        }
        let written = row_group.close()?;
        self.stats.add(rows, &written);
        Ok(())
    }
}

/// Column `column` of row group `row_group` of a page index (column or offset index).
fn page_index_entry<T: Clone>(
    index: Option<&Vec<Vec<T>>>,
    row_group: usize,
    column: usize,
) -> Option<T> {
    index?.get(row_group)?.get(column).cloned()
}

/// Whether the row groups of a file with metadata `meta` and Arrow schema `schema` can be
/// copied into a file of `table` as they are: written by this writer for that table, with
/// the table's schema, and with the statistics the Delta statistics are made from.
pub(crate) fn copyable(table: &str, meta: &ParquetMetaData, schema: &SchemaRef) -> Result<bool> {
    let layout = layout(table)?;
    let kv = meta.file_metadata().key_value_metadata();
    let entry = |key: &str| {
        kv.and_then(|kv| kv.iter().find(|e| e.key == key))
            .and_then(|e| e.value.as_deref())
    };
    if !entry(WRITER_KEY).is_some_and(|w| w.starts_with("aftershock-core "))
        || entry(TABLE_KEY) != Some(table)
        || schema.fields() != layout.schema.fields()
    {
        return Ok(false);
    }
    Ok(meta.row_groups().iter().all(|rg| {
        layout.schema.fields().iter().all(|f| {
            f.data_type().is_nested()
                || top_level_chunk(rg, f.name())
                    .and_then(|c| c.statistics())
                    .is_some_and(|s| s.null_count_opt().is_some())
        })
    }))
}

/// arrow-rs column writers with a file's own properties for some of its columns, for the
/// leaves [`ParquetSink`] makes its main writers without a codec for, when such a leaf
/// needs one: made only then, a row group's set at a time, and for those columns alone
/// (a writer that is not used costs as much to make).
struct FallbackWriters {
    /// The file's columns these writers are for.
    schema: SchemaRef,
    props: Arc<WriterProperties>,
    /// For each leaf of the file, its index among the leaves of `schema`, if it is one.
    leaves: Vec<Option<usize>>,
    factory: Option<ArrowRowGroupWriterFactory>,
    /// The row group whose writers these are, and those not taken yet.
    writers: Option<(usize, Vec<Option<ArrowColumnWriter>>)>,
}

impl FallbackWriters {
    /// Writers for the columns of `schema` (whose Parquet leaves are `parquet_schema`'s)
    /// whose type `keep` holds for.
    fn new(
        schema: &SchemaRef,
        parquet_schema: &SchemaDescriptor,
        props: &Arc<WriterProperties>,
        keep: impl Fn(&DataType) -> bool,
    ) -> Self {
        let kept = |root: &str| {
            schema
                .field_with_name(root)
                .is_ok_and(|f| keep(f.data_type()))
        };
        let mut next = 0;
        let leaves = parquet_schema
            .columns()
            .iter()
            .map(|leaf| {
                kept(&leaf.path().parts()[0]).then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .filter(|f| keep(f.data_type()))
            .cloned()
            .collect();
        FallbackWriters {
            schema: Arc::new(arrow_schema::Schema::new(fields)),
            props: Arc::clone(props),
            leaves,
            factory: None,
            writers: None,
        }
    }

    /// The writer of the file's leaf `leaf` in row group `row_group`, `None` if already
    /// taken or not one of these columns'.
    fn take(&mut self, row_group: usize, leaf: usize) -> Result<Option<ArrowColumnWriter>> {
        let Some(&Some(leaf)) = self.leaves.get(leaf) else {
            return Ok(None);
        };
        if self.writers.as_ref().is_none_or(|(rg, _)| *rg != row_group) {
            let factory = match &mut self.factory {
                Some(f) => f,
                slot => slot.insert(
                    ArrowWriter::try_new(
                        std::io::sink(),
                        Arc::clone(&self.schema),
                        Some(WriterProperties::clone(&self.props)),
                    )?
                    .into_serialized_writer()?
                    .1,
                ),
            };
            let writers = factory.create_column_writers(row_group)?;
            self.writers = Some((row_group, writers.into_iter().map(Some).collect()));
        }
        Ok(self
            .writers
            .as_mut()
            .and_then(|(_, w)| w.get_mut(leaf))
            .and_then(Option::take))
    }
}

/// `props` with no compression on the leaves [`StringChunkWriter`] would write (the
/// string leaves of dictionary-encoded columns) and on the leaves of list columns, for
/// creating arrow-rs's main column writers only: the string writer reads the codec from
/// `props` itself, and a list column with elements gets writers with it (`lists`).
fn without_codecs(props: &WriterProperties, schema: &SchemaRef) -> Result<WriterProperties> {
    let mut stripped = props.clone().into_builder();
    for leaf in ArrowSchemaConverter::new().convert(schema)?.columns() {
        let root = &leaf.path().parts()[0];
        let Ok(field) = schema.field_with_name(root) else {
            continue;
        };
        let data_type = field.data_type();
        if is_list(data_type)
            || StringLeaf::encodes(data_type) && StringChunkWriter::writes_leaf(leaf.path(), props)
        {
            stripped =
                stripped.set_column_compression(leaf.path().clone(), Compression::UNCOMPRESSED);
        }
    }
    Ok(stripped.build())
}

fn is_list(data_type: &DataType) -> bool {
    matches!(data_type, DataType::List(_))
}

/// Whether the list column `column` has no element in any row: all empty or null.
fn has_no_elements(column: &ArrayRef) -> bool {
    column.as_list_opt::<i32>().is_some_and(|lists| {
        let offsets = lists.value_offsets();
        offsets.first() == offsets.last()
    })
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// A temp file, removed on drop unless kept, so that a failed write leaves nothing behind.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Temporary files younger than this may belong to a writer still at work (several
/// receivers can share a table directory); older ones were left by a crash.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes the `.part-*.tmp` files a crashed writer left in `table_dir`'s partitions,
/// if they are older than an hour. Returns how many were removed.
pub fn sweep_stale_temp_files(table_dir: &Path) -> Result<usize> {
    let Ok(partitions) = fs::read_dir(table_dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for partition in partitions.flatten() {
        let name = partition.file_name();
        if !name.to_string_lossy().starts_with(&format!("{DAY}=")) {
            continue;
        }
        let Ok(files) = fs::read_dir(partition.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with(".part-") && name.ends_with(".tmp")) {
                continue;
            }
            let age = file
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            if age.is_some_and(|a| a >= STALE_TEMP_AGE) {
                fs::remove_file(file.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// `part-<uuid-like>.zstd.parquet`: write time first so names sort by age, then bits
/// from the pid, a process-wide counter and std's per-process random hash keys, so that
/// two writers (threads or processes) never pick the same name.
fn unique_file_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = now_ns() as u64;
    let rand = RandomState::new().hash_one((
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        now,
    ));
    format!(
        "part-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}.zstd.parquet",
        now >> 32,
        (now >> 16) & 0xffff,
        now & 0xffff,
        rand >> 48,
        rand & 0xffff_ffff_ffff
    )
}

/// Delta per-file statistics of the rows of a file, gathered row group by row group:
/// min, max and null count of each flat column, strings cut to Delta's 32-character
/// prefix, timestamps as RFC 3339 UTC with nanoseconds. Map and list columns carry no
/// usable bounds and are left out. String bounds come from the Parquet statistics the
/// writer just computed for the row group when they are exact: comparing every string
/// again was 6% of the flush.
struct FileStats {
    schema: SchemaRef,
    rows: usize,
    /// One per top-level column.
    columns: Vec<ColumnStats>,
}

#[derive(Default)]
struct ColumnStats {
    nulls: usize,
    bounds: Bounds,
}

/// The least and greatest non-null values of a column so far.
#[derive(Debug, Default, Clone, PartialEq)]
enum Bounds {
    /// No value yet.
    #[default]
    Empty,
    Int(i64, i64),
    Float(f64, f64),
    /// Nanoseconds.
    Time(i64, i64),
    Str(String, String),
    /// A value or a type with no bound Delta can use: the column is not skipped by.
    Unknown,
}

impl Bounds {
    fn merge(self, other: Bounds) -> Bounds {
        use Bounds::*;
        match (self, other) {
            (Empty, b) | (b, Empty) => b,
            (Int(a, b), Int(c, d)) => Int(a.min(c), b.max(d)),
            (Float(a, b), Float(c, d)) => Float(a.min(c), b.max(d)),
            (Time(a, b), Time(c, d)) => Time(a.min(c), b.max(d)),
            (Str(a, b), Str(c, d)) => Str(a.min(c), b.max(d)),
            _ => Unknown,
        }
    }

    /// The JSON of the min and the max, if there is a bound.
    fn json(&self) -> Option<(String, String)> {
        match self {
            Bounds::Int(lo, hi) => Some((lo.to_string(), hi.to_string())),
            Bounds::Float(lo, hi) => Some((
                ryu::Buffer::new().format(*lo).to_string(),
                ryu::Buffer::new().format(*hi).to_string(),
            )),
            Bounds::Time(lo, hi) => Some((timestamp_json(*lo), timestamp_json(*hi))),
            Bounds::Str(lo, hi) => string_bounds(lo, hi),
            Bounds::Empty | Bounds::Unknown => None,
        }
    }
}

impl FileStats {
    fn new(schema: &SchemaRef) -> Self {
        FileStats {
            schema: Arc::clone(schema),
            rows: 0,
            columns: schema
                .fields()
                .iter()
                .map(|_| ColumnStats::default())
                .collect(),
        }
    }

    /// Adds a row group's `rows`, which the writer wrote as `written`.
    fn add(&mut self, rows: &SortedRows, written: &RowGroupMetaData) {
        self.rows += rows.num_rows();
        for (i, field) in rows.schema.fields().iter().enumerate() {
            if field.data_type().is_nested() {
                continue;
            }
            let (parts, runs) = rows.parts_and_runs(i);
            let validity: Vec<Option<&NullBuffer>> = parts.iter().map(|p| p.nulls()).collect();
            let column = &mut self.columns[i];
            column.nulls += null_count(&validity, runs.iter().copied());
            let bounds = match (field.data_type(), &rows.columns[i]) {
                (DataType::Utf8, _) => row_group_string_bounds(written, field.name())
                    .unwrap_or_else(|| min_max(strings_in_order(parts, &runs).flatten()))
                    .map_or(Bounds::Empty, |(lo, hi)| {
                        Bounds::Str(lo.to_string(), hi.to_string())
                    }),
                (_, SortedColumn::Array(array)) => bounds(array.as_ref()),
                // Only string columns are left in parts (`SortedColumn::Parts`).
                (_, SortedColumn::Parts(_) | SortedColumn::ByResource { .. }) => Bounds::Unknown,
            };
            column.bounds = std::mem::take(&mut column.bounds).merge(bounds);
        }
    }

    /// Adds a row group copied as it was written (`written`), from its Parquet statistics
    /// alone: exact for integers and timestamps, and for strings unless cut (then, as for
    /// floating point columns, whose statistics leave NaN out, no bound).
    fn add_written(&mut self, written: &RowGroupMetaData) -> Result<()> {
        self.rows += usize::try_from(written.num_rows()).unwrap_or(0);
        for (i, field) in self.schema.fields().iter().enumerate() {
            if field.data_type().is_nested() {
                continue;
            }
            let stats = top_level_chunk(written, field.name()).and_then(|c| c.statistics());
            let Some(nulls) = stats.and_then(|s| s.null_count_opt()) else {
                return Err(Error::Internal(format!(
                    "a copied row group has no null count for {}",
                    field.name()
                )));
            };
            let column = &mut self.columns[i];
            column.nulls += usize::try_from(nulls).unwrap_or(usize::MAX);
            let bounds = match (field.data_type(), stats) {
                (_, Some(s)) if s.min_bytes_opt().is_none() => Bounds::Empty,
                (DataType::Int32, Some(Statistics::Int32(s))) => match (s.min_opt(), s.max_opt()) {
                    (Some(&lo), Some(&hi)) => Bounds::Int(lo.into(), hi.into()),
                    _ => Bounds::Unknown,
                },
                (DataType::Int64, Some(Statistics::Int64(s))) => match (s.min_opt(), s.max_opt()) {
                    (Some(&lo), Some(&hi)) => Bounds::Int(lo, hi),
                    _ => Bounds::Unknown,
                },
                (DataType::Timestamp(TimeUnit::Nanosecond, _), Some(Statistics::Int64(s))) => {
                    match (s.min_opt(), s.max_opt()) {
                        (Some(&lo), Some(&hi)) => Bounds::Time(lo, hi),
                        _ => Bounds::Unknown,
                    }
                }
                (DataType::Utf8, Some(s)) if s.min_is_exact() && s.max_is_exact() => {
                    match (s.min_bytes_opt(), s.max_bytes_opt()) {
                        (Some(lo), Some(hi)) => {
                            match (std::str::from_utf8(lo), std::str::from_utf8(hi)) {
                                (Ok(lo), Ok(hi)) => Bounds::Str(lo.to_string(), hi.to_string()),
                                _ => Bounds::Unknown,
                            }
                        }
                        _ => Bounds::Unknown,
                    }
                }
                _ => Bounds::Unknown,
            };
            column.bounds = std::mem::take(&mut column.bounds).merge(bounds);
        }
        Ok(())
    }

    /// The statistics as the Delta log stores them (`add.stats`).
    fn json(&self) -> String {
        let mut min = String::new();
        let mut max = String::new();
        let mut nulls = String::new();
        for (field, column) in self.schema.fields().iter().zip(&self.columns) {
            if field.data_type().is_nested() {
                continue;
            }
            push_entry(&mut nulls, field.name(), &column.nulls.to_string());
            if let Some((lo, hi)) = column.bounds.json() {
                push_entry(&mut min, field.name(), &lo);
                push_entry(&mut max, field.name(), &hi);
            }
        }
        format!(
            "{{\"numRecords\":{},\"minValues\":{{{min}}},\"maxValues\":{{{max}}},\"nullCount\":{{{nulls}}},\"tightBounds\":true}}",
            self.rows
        )
    }
}

/// The values of a string column given as `parts` read through `runs`, in order.
fn strings_in_order<'a>(
    parts: &'a [ArrayRef],
    runs: &'a [Run],
) -> impl Iterator<Item = Option<&'a str>> + 'a {
    runs.iter().flat_map(move |r| {
        let strings = parts[r.batch].as_string::<i32>();
        (r.start..r.start + r.len).map(move |i| strings.is_valid(i).then(|| strings.value(i)))
    })
}

/// The column chunk of the flat top-level column `name` in a row group.
fn top_level_chunk<'a>(
    row_group: &'a RowGroupMetaData,
    name: &str,
) -> Option<&'a ColumnChunkMetaData> {
    row_group
        .columns()
        .iter()
        .find(|c| c.column_path().parts() == [name])
}

/// The min and max of a top-level string column in a written row group, `Some(None)`
/// when it holds only nulls; `None` when its bounds are not exact (the writer cuts values
/// longer than 64 bytes), so the values must be read.
fn row_group_string_bounds<'a>(
    written: &'a RowGroupMetaData,
    name: &str,
) -> Option<Option<(&'a str, &'a str)>> {
    let stats = top_level_chunk(written, name)?.statistics()?;
    match (stats.min_bytes_opt(), stats.max_bytes_opt()) {
        (Some(lo), Some(hi)) if stats.min_is_exact() && stats.max_is_exact() => Some(Some((
            std::str::from_utf8(lo).ok()?,
            std::str::from_utf8(hi).ok()?,
        ))),
        (None, None) if stats.null_count_opt() == Some(written.num_rows() as u64) => Some(None),
        _ => None,
    }
}

/// JSON-encoded Delta bounds of strings whose min and max are `lo` and `hi`.
fn string_bounds(lo: &str, hi: &str) -> Option<(String, String)> {
    let mut lo_json = String::new();
    push_json_str(&mut lo_json, truncate_min(lo));
    let mut hi_json = String::new();
    push_json_str(&mut hi_json, &truncate_max(hi)?);
    Some((lo_json, hi_json))
}

fn push_entry(out: &mut String, key: &str, json_value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    push_json_str(out, key);
    out.push(':');
    out.push_str(json_value);
}

/// The bounds of the non-null values of a column other than a string column.
fn bounds(array: &dyn Array) -> Bounds {
    let or_empty = |b: Option<Bounds>| b.unwrap_or(Bounds::Empty);
    match array.data_type() {
        DataType::Int32 => or_empty(
            min_max(array.as_primitive::<Int32Type>().iter().flatten())
                .map(|(lo, hi)| Bounds::Int(lo.into(), hi.into())),
        ),
        DataType::Int64 => or_empty(
            min_max(array.as_primitive::<Int64Type>().iter().flatten())
                .map(|(lo, hi)| Bounds::Int(lo, hi)),
        ),
        DataType::Float64 => {
            let values = array.as_primitive::<Float64Type>();
            // JSON has no NaN or infinity; without a bound the column is simply not skipped.
            if values.iter().flatten().any(|v| !v.is_finite()) {
                return Bounds::Unknown;
            }
            or_empty(
                values
                    .iter()
                    .flatten()
                    .fold(None, |acc: Option<(f64, f64)>, v| {
                        Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
                    })
                    .map(|(lo, hi)| Bounds::Float(lo, hi)),
            )
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => or_empty(
            min_max(
                array
                    .as_primitive::<TimestampNanosecondType>()
                    .iter()
                    .flatten(),
            )
            .map(|(lo, hi)| Bounds::Time(lo, hi)),
        ),
        _ => Bounds::Unknown,
    }
}

fn min_max<T: Ord + Copy>(mut values: impl Iterator<Item = T>) -> Option<(T, T)> {
    let first = values.next()?;
    Some(values.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
}

fn timestamp_json(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns)
        .format("\"%Y-%m-%dT%H:%M:%S%.9fZ\"")
        .to_string()
}

/// The first 32 characters: never greater than the value, so still a lower bound.
fn truncate_min(s: &str) -> &str {
    match s.char_indices().nth(STATS_STRING_PREFIX) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// The first 32 characters followed by a character greater than the one cut off, so the
/// result stays an upper bound (delta-kernel's rule: DEL after ASCII, else U+10FFFF).
/// `None` when the cut falls on U+10FFFF, which nothing exceeds: no bound then.
fn truncate_max(s: &str) -> Option<String> {
    let Some((at, cut)) = s.char_indices().nth(STATS_STRING_PREFIX) else {
        return Some(s.to_string());
    };
    let tie_breaker = match cut {
        c if c < '\x7f' => '\x7f',
        char::MAX => return None,
        _ => char::MAX,
    };
    let mut out = String::with_capacity(at + 4);
    out.push_str(&s[..at]);
    out.push(tie_breaker);
    Some(out)
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::fs::File;

    use arrow_array::{Int64Array, TimestampNanosecondArray};
    use arrow_ord::sort::{lexsort_to_indices, SortColumn};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, InstrumentationScope, KeyValue as OtlpKv,
    };
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::FileReader;
    use prost::Message;

    use super::*;
    use crate::decode::{decode_logs, decode_traces, DecodeOptions};
    use crate::rollup::Rollups;
    use crate::test_support::{reader_with_bloom_filters, Rng, TempDir};
    use parquet::basic::Encoding;

    /// 2024-02-29T00:00:00Z: the day after is in March.
    pub(crate) const DAY0: u64 = 1_709_164_800_000_000_000;
    const SECOND: u64 = 1_000_000_000;

    fn kv(key: &str, value: &str) -> OtlpKv {
        OtlpKv {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn trace_id(n: u64) -> Vec<u8> {
        let mut id = vec![0xab; 8];
        id.extend_from_slice(&(n + 1).to_be_bytes());
        id
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `traces` traces of 5 spans each, spread over two services, starting 20 hours
    /// into DAY0 so that the later traces cross midnight; emitted out of order.
    pub(crate) fn spans_batch(traces: u64) -> RecordBatch {
        let mut by_service: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
        for t in (0..traces).rev() {
            let service = if t % 3 == 0 { "checkout" } else { "cart" };
            let start = DAY0 + 20 * 3600 * SECOND + t * 60 * SECOND;
            for s in 0..5u64 {
                by_service.entry(service).or_default().push(Span {
                    trace_id: trace_id(t),
                    span_id: (t * 8 + s + 1).to_be_bytes().to_vec(),
                    name: format!("op-{s}"),
                    kind: 2,
                    start_time_unix_nano: start + (4 - s) * 1_000,
                    end_time_unix_nano: start + (4 - s) * 1_000 + 5_000_000,
                    attributes: (0..(t + s) % 4)
                        .map(|a| kv(&format!("attr.{a}"), &format!("v{}", t % 7)))
                        .collect(),
                    events: (0..s % 3)
                        .map(|e| Event {
                            time_unix_nano: start + e,
                            name: format!("event-{e}"),
                            attributes: vec![kv("n", &e.to_string())],
                            ..Default::default()
                        })
                        .collect(),
                    links: (0..t % 2)
                        .map(|_| Link {
                            trace_id: trace_id(t + 1),
                            span_id: vec![1; 8],
                            attributes: vec![kv("link", "parent")],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                });
            }
        }
        let req = ExportTraceServiceRequest {
            resource_spans: by_service
                .into_iter()
                .map(|(service, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", service)],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                })
                .collect(),
        };
        decode_traces(&req.encode_to_vec(), &DecodeOptions::default())
            .unwrap()
            .batch
    }

    /// [`row_group_string_bounds`] over all the row groups of a file.
    fn written_string_bounds<'a>(
        written: &'a ParquetMetaData,
        name: &str,
    ) -> Option<Option<(&'a str, &'a str)>> {
        let mut bounds: Option<(&str, &str)> = None;
        for row_group in written.row_groups() {
            if let Some((lo, hi)) = row_group_string_bounds(row_group, name)? {
                bounds = Some(bounds.map_or((lo, hi), |(l, h)| (l.min(lo), h.max(hi))));
            }
        }
        Some(bounds)
    }

    pub(crate) fn read(path: &Path) -> RecordBatch {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    pub(crate) fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
        let a = batch.column_by_name(name).unwrap();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        a.iter().map(|v| v.unwrap_or("").to_string()).collect()
    }

    fn times(batch: &RecordBatch, name: &str) -> Vec<i64> {
        let a = batch.column_by_name(name).unwrap();
        let a = a
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        a.values().to_vec()
    }

    /// Every file under `dir`, as a path relative to it.
    fn all_files(dir: &Path) -> Vec<String> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut paths = Vec::new();
        walk(dir, &mut paths);
        paths
            .iter()
            .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
            .collect()
    }

    /// The JSON value after `"key":` inside the object named `section` of `stats`.
    fn stat<'a>(stats: &'a str, section: &str, key: &str) -> &'a str {
        let section = &stats[stats.find(&format!("\"{section}\":{{")).unwrap()..];
        let section = &section[..section.find('}').unwrap()];
        let at = section.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
        let rest = &section[at..];
        let end = if let Some(quoted) = rest.strip_prefix('"') {
            quoted.find('"').unwrap() + 2
        } else {
            rest.find([',', '}']).unwrap_or(rest.len())
        };
        &rest[..end]
    }

    #[test]
    fn spans_are_split_by_day_sorted_and_indexed() {
        let dir = TempDir::new("spans");
        let traces = 400u64;
        let batch = spans_batch(traces);
        // Two input batches, as the lake buffers them.
        let (a, b) = (
            batch.slice(0, 700),
            batch.slice(700, batch.num_rows() - 700),
        );
        let opts = ParquetOptions {
            row_group_rows: 500,
            ..Default::default()
        };
        let files = write_data_files(&dir.0, SPANS, &[a, b], &[], &opts).unwrap();
        let arrived: Vec<(String, String)> = strings(&batch, col::SERVICE_NAME)
            .into_iter()
            .zip(strings(&batch, col::TRACE_ID))
            .collect();

        // 20:00 + 400 minutes crosses midnight after 240 traces.
        assert_eq!(files.len(), 2);
        let days: Vec<&str> = files
            .iter()
            .map(|f| f.partition_values[0].1.as_str())
            .collect();
        assert_eq!(days, ["2024-02-29", "2024-03-01"]);
        assert_eq!(files[0].partition_values[0].0, DAY);
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), traces * 5);
        assert_eq!(files[0].rows, 240 * 5);

        // Only the two data files, under their partition directories: no temp files.
        let mut on_disk = all_files(&dir.0);
        on_disk.sort();
        let mut want: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        want.sort();
        assert_eq!(on_disk, want);

        for (f, day) in files.iter().zip([DAY0, DAY0 + 86_400 * SECOND]) {
            let path = dir.0.join(&f.path);
            assert!(f
                .path
                .starts_with(&format!("day={}/part-", f.partition_values[0].1)));
            assert!(f.path.ends_with(".zstd.parquet"));
            assert_eq!(f.size, fs::metadata(&path).unwrap().len());
            assert!(f.modification_time_ms > 1_700_000_000_000);

            let got = read(&path);
            assert_eq!(got.num_rows() as u64, f.rows);
            assert_eq!(got.schema().fields(), schema::spans_schema().fields());
            let starts = times(&got, col::START_TIME);
            assert!(starts
                .iter()
                .all(|&t| (day as i64..(day + 86_400 * SECOND) as i64).contains(&t)));
            // Sorted by service; within it, each trace's spans together and the traces in
            // the order they arrived (spans_batch sends them with their ids descending).
            let mut runs: Vec<(String, String)> = strings(&got, col::SERVICE_NAME)
                .into_iter()
                .zip(strings(&got, col::TRACE_ID))
                .collect();
            runs.dedup();
            let mut want: Vec<(String, String)> = Vec::new();
            for key in arrived.iter().filter(|k| runs.contains(k)) {
                if !want.contains(key) {
                    want.push(key.clone());
                }
            }
            want.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(runs, want);
            assert!(runs.windows(2).any(|w| w[0].0 == w[1].0 && w[0].1 > w[1].1));

            // Parquet metadata: row groups, statistics, sort order, writer.
            let reader = reader_with_bloom_filters(File::open(&path).unwrap());
            let meta = reader.metadata();
            assert_eq!(meta.num_row_groups() as u64, f.rows.div_ceil(500));
            let kv = meta.file_metadata().key_value_metadata().unwrap();
            assert!(kv.iter().any(|e| e.key == WRITER_KEY
                && e.value.as_deref().unwrap().starts_with("aftershock-core ")));
            let trace_col = schema::spans_schema().index_of(col::TRACE_ID).unwrap();
            let start_col = schema::spans_schema().index_of(col::START_TIME).unwrap();
            let present: BTreeSet<String> = strings(&got, col::TRACE_ID).into_iter().collect();
            for rg in 0..meta.num_row_groups() {
                let rg_meta = meta.row_group(rg);
                assert!(rg_meta.column(start_col).statistics().is_some());
                assert!(rg_meta.column(trace_col).statistics().is_some());
                // Sorted by service only: trace ids are grouped, not in order.
                assert_eq!(rg_meta.sorting_columns().unwrap().len(), 1);
                // The encodings `layout` picks: trace ids through a dictionary, span ids
                // with their lengths apart, times as they are, durations bit-packed.
                for c in rg_meta.columns() {
                    let encodings: Vec<Encoding> = c.encodings().collect();
                    let want = match c.column_path().string().as_str() {
                        col::TRACE_ID => Encoding::RLE_DICTIONARY,
                        col::SPAN_ID | col::PARENT_SPAN_ID => Encoding::DELTA_LENGTH_BYTE_ARRAY,
                        col::START_TIME | col::END_TIME => Encoding::PLAIN,
                        col::DURATION_NS => Encoding::DELTA_BINARY_PACKED,
                        _ => continue,
                    };
                    assert!(
                        encodings.contains(&want),
                        "{}: {encodings:?}",
                        c.column_path()
                    );
                    assert_eq!(
                        c.dictionary_page_offset().is_some(),
                        want == Encoding::RLE_DICTIONARY,
                        "{}",
                        c.column_path()
                    );
                }

                let row_group = reader.get_row_group(rg).unwrap();
                let bloom = row_group.get_column_bloom_filter(trace_col).unwrap();
                let rows = got.slice(rg * 500, rg_meta.num_rows() as usize);
                for id in strings(&rows, col::TRACE_ID) {
                    assert!(bloom.check(id.as_str()));
                }
                // Ids of traces this row group does not hold: with fpp 1% nearly all
                // must be ruled out.
                let absent = (traces..traces + 1000).map(|n| hex(&trace_id(n)));
                let false_positives = absent.filter(|id| bloom.check(id.as_str())).count();
                assert!(false_positives < 50, "{false_positives} false positives");
                assert!(!present.is_empty());
            }

            // Delta statistics agree with the data.
            let s = &f.stats_json;
            assert!(
                s.starts_with(&format!("{{\"numRecords\":{},", f.rows)),
                "{s}"
            );
            let starts = times(&got, col::START_TIME);
            let (lo, hi) = (*starts.iter().min().unwrap(), *starts.iter().max().unwrap());
            assert_eq!(stat(s, "minValues", col::START_TIME), timestamp_json(lo));
            assert_eq!(stat(s, "maxValues", col::START_TIME), timestamp_json(hi));
            assert_eq!(
                stat(s, "minValues", col::TRACE_ID),
                format!("\"{}\"", present.first().unwrap())
            );
            // Trace ids are 32 characters: kept whole.
            assert_eq!(
                stat(s, "maxValues", col::TRACE_ID),
                format!("\"{}\"", present.last().unwrap())
            );
            assert_eq!(
                stat(s, "nullCount", col::PARENT_SPAN_ID),
                f.rows.to_string()
            );
            assert_eq!(stat(s, "minValues", col::SERVICE_NAME), "\"cart\"");
            assert_eq!(stat(s, "maxValues", col::SERVICE_NAME), "\"checkout\"");
            assert!(!s.contains(col::SPAN_ATTRIBUTES) && !s.contains(col::EVENTS));
            assert!(!s.contains("\"minValues\":{}") && s.ends_with("\"tightBounds\":true}"));
        }
        assert_eq!(
            timestamp_json(1_795_946_400_123_456_789),
            "\"2026-11-29T10:00:00.123456789Z\""
        );
    }

    /// A chunk keeps its dictionary while its distinct values fit in
    /// [`DICTIONARY_PAGE_LIMIT`] (arrow-rs's default of 1 MiB would have given it up), and
    /// is written PLAIN past it.
    #[test]
    fn a_dictionary_is_kept_up_to_its_page_limit() {
        // 8192 spans whose names are all distinct: 1.7 MB of them, then 5 MB.
        for (len, kept) in [(200, true), (600, false)] {
            let spans = (0..8192u64)
                .map(|n| Span {
                    trace_id: trace_id(n / 8),
                    span_id: (n + 1).to_be_bytes().to_vec(),
                    name: format!("{n:0len$}"),
                    start_time_unix_nano: DAY0 + n * SECOND,
                    end_time_unix_nano: DAY0 + n * SECOND + 1_000,
                    ..Default::default()
                })
                .collect();
            let req = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", "checkout")],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
            };
            let batch = decode_traces(&req.encode_to_vec(), &DecodeOptions::default())
                .unwrap()
                .batch;
            let dir = TempDir::new("dictionary-limit");
            let files =
                write_data_files(&dir.0, SPANS, &[batch], &[], &ParquetOptions::default()).unwrap();
            assert_eq!(files.len(), 1);
            let reader = reader_with_bloom_filters(File::open(dir.0.join(&files[0].path)).unwrap());
            let name_col = schema::spans_schema().index_of(col::SPAN_NAME).unwrap();
            let chunk = reader.metadata().row_group(0).column(name_col);
            let distinct = 8192 * (4 + len);
            assert!(distinct > 1 << 20);
            assert_eq!(distinct <= DICTIONARY_PAGE_LIMIT, kept);
            assert_eq!(chunk.dictionary_page_offset().is_some(), kept, "{len}");
            // Data pages of ids, or of values: a chunk written PLAIN has no id at all.
            let ids = chunk.encodings().any(|e| e == Encoding::RLE_DICTIONARY);
            assert_eq!(ids, kept, "{len}");
        }
    }

    #[test]
    fn sort_order_agrees_with_arrows_lexsort() {
        // Shared 8-byte prefixes, NUL bytes, empty strings against nulls, the extremes of
        // i64 against nulls, and ties on the first keys.
        let strings = [
            Some("abcdefgh"),
            Some("abcdefghi"),
            Some("abcdefgh\0"),
            Some("abc"),
            Some("abc\0"),
            Some(""),
            None,
            Some("zz"),
            Some("\u{e9}t\u{e9}"),
        ];
        let ints = [
            Some(i64::MIN),
            Some(i64::MAX),
            Some(-1),
            Some(0),
            Some(1),
            None,
        ];
        let days = [i32::MIN, -1, 0, 7, i32::MAX];
        let rows = 600;
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let mut days_col: Vec<i32> = Vec::new();
        let mut few: Vec<Option<&str>> = Vec::new();
        let mut many: Vec<Option<&str>> = Vec::new();
        let mut int_col: Vec<Option<i64>> = Vec::new();
        for _ in 0..rows {
            days_col.push(days[next(days.len())]);
            few.push(strings[next(3)]);
            many.push(strings[next(strings.len())]);
            int_col.push(ints[next(ints.len())]);
        }
        // With the extremes of i64 the ranks need more than 128 bits (the comparator
        // path); clamped to 2^45 they pack into one u128 beside the row (97-128 bits), to
        // 1000 into one u128 with the row in its low 32 bits. With days 0-3 instead of the
        // extremes of i32: ints clamped to 1000, all keys fit 32 bits (one radix sort),
        // with a timestamp or (the first three keys only) a string last; clamped to 2^20,
        // the keys before the last do (rows grouped by a radix sort, groups sorted by the
        // last key).
        for (clamp, small_days, key_count) in [
            (i64::MAX, false, 5),
            (1 << 45, false, 5),
            (1000, false, 5),
            (1000, true, 5),
            (1000, true, 3),
            (1 << 20, true, 5),
            (1 << 45, true, 5),
        ] {
            let ints: Vec<Option<i64>> = int_col
                .iter()
                .map(|v| v.map(|v| v.clamp(-clamp, clamp)))
                .collect();
            let days: Vec<i32> = match small_days {
                true => days_col.iter().map(|d| d.rem_euclid(4)).collect(),
                false => days_col.clone(),
            };
            let mut keys: Vec<ArrayRef> = vec![
                Arc::new(Int32Array::from(days)),
                Arc::new(StringArray::from(few.clone())),
                Arc::new(StringArray::from(many.clone())),
                Arc::new(Int64Array::from(ints.clone())),
                Arc::new(TimestampNanosecondArray::from(ints).with_timezone("UTC")),
            ];
            keys.truncate(key_count);
            let sorted = |order: &UInt32Array| -> Vec<ArrayRef> {
                keys.iter()
                    .map(|k| take(k.as_ref(), order, None).unwrap())
                    .collect()
            };
            let want = lexsort_to_indices(
                &keys
                    .iter()
                    .map(|k| SortColumn {
                        values: Arc::clone(k),
                        options: None,
                    })
                    .collect::<Vec<_>>(),
                None,
            )
            .unwrap();
            let by_value = |keys: &[ArrayRef]| -> Vec<(ArrayRef, Rank)> {
                keys.iter().map(|k| (Arc::clone(k), Rank::Value)).collect()
            };
            let order = sort_order(&by_value(&keys)).unwrap();
            assert_eq!(sorted(&order), sorted(&want));
            // Stable: rows whose keys are all equal keep their input order.
            let comparators: Vec<_> = keys
                .iter()
                .map(|k| make_comparator(k.as_ref(), k.as_ref(), SortOptions::default()).unwrap())
                .collect();
            for pair in order.values().windows(2) {
                let (a, b) = (pair[0] as usize, pair[1] as usize);
                if comparators.iter().all(|c| c(a, b).is_eq()) {
                    assert!(a < b, "rows {a} and {b}: equal keys out of input order");
                }
            }
            // Rows found in order already are those `sort_order` leaves as they are.
            assert!(!in_order(&keys).unwrap());
            let in_place = sorted(&want);
            assert!(in_order(&in_place).unwrap());
            let identity: Vec<u32> = (0..rows as u32).collect();
            assert_eq!(
                sort_order(&by_value(&in_place)).unwrap().values().to_vec(),
                identity
            );
        }
        assert_eq!(sort_order(&[]).unwrap().len(), 0);
        assert!(in_order(&[]).unwrap());
    }

    #[test]
    fn a_key_ranked_by_arrival_groups_its_values_in_the_order_they_first_come() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let rows = 2000;
        let days: Vec<i32> = (0..rows).map(|_| (rng.next_u64() % 3) as i32).collect();
        let services: Vec<Option<String>> = (0..rows)
            .map(|_| match rng.next_u64() % 5 {
                0 => None,
                n => Some(format!("svc-{}", 4 - n)),
            })
            .collect();
        // Traces of a few rows each, interleaved, some null, their ids in no order.
        let traces: Vec<Option<String>> = (0..rows)
            .map(|row| match rng.next_u64() % 40 {
                0 => None,
                _ => Some(format!(
                    "{:x}",
                    (row / 7 + (rng.next_u64() % 9) as usize) * 7919 % 1000
                )),
            })
            .collect();
        let keys: Vec<(ArrayRef, Rank)> = vec![
            (Arc::new(Int32Array::from(days.clone())), Rank::Value),
            (Arc::new(StringArray::from(services.clone())), Rank::Value),
            (Arc::new(StringArray::from(traces.clone())), Rank::Arrival),
        ];
        // Row by row: a trace ranks by the row it first comes in, a null before any.
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (row, t) in traces.iter().enumerate() {
            if let Some(t) = t {
                first.entry(t.as_str()).or_insert(row);
            }
        }
        let key = |row: usize| {
            let trace = traces[row].as_deref().map(|t| first[t]);
            (days[row], services[row].clone(), trace, row)
        };
        let mut want: Vec<u32> = (0..rows as u32).collect();
        want.sort_by_key(|&row| key(row as usize));
        let order = sort_order(&keys).unwrap();
        assert_eq!(order.values().to_vec(), want);
        // The ids themselves are not in order within a service: arrival is not value.
        let ids: Vec<Option<&str>> = order
            .values()
            .iter()
            .map(|&row| traces[row as usize].as_deref())
            .collect();
        assert!(ids.windows(2).any(|w| w[0] > w[1] && w[0].is_some()));

        let times: ArrayRef = Arc::new(Int64Array::from(vec![3, 1, 2]));
        assert!(sort_order(&[(times, Rank::Arrival)]).is_err());
    }

    #[test]
    fn radix_order_is_a_stable_sort() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for bits in [0u32, 1, 5, 11, 12, 19, 23, 32] {
            let keys: Vec<u32> = (0..3000)
                .map(|_| match bits {
                    0 => 0,
                    32 => rng.next_u64() as u32,
                    _ => (rng.next_u64() as u32) & ((1 << bits) - 1),
                })
                .collect();
            let mut want: Vec<u32> = (0..keys.len() as u32).collect();
            want.sort_by_key(|&row| keys[row as usize]);
            assert_eq!(radix_order(&keys, bits), want, "{bits} bits");
        }
        assert!(radix_order(&[], 7).is_empty());
    }

    #[test]
    fn gather_equals_arrows_take_on_nested_columns_with_nulls() {
        use arrow_array::builder::{MapBuilder, StringBuilder};
        use arrow_array::ListArray;
        use arrow_schema::{Field, Schema};

        let mut rng = 0x853c_49e6_748f_ea9b_u64;
        let mut next = move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let words = ["", "a", "\u{e9}t\u{e9}", "key", "a longer value"];
        let item = Fields::from(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("t", schema::timestamp_type(), false),
        ]);
        let mut make = |rows: usize| -> RecordBatch {
            let mut maps = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
            for _ in 0..rows {
                for _ in 0..next(4) {
                    maps.keys().append_value(words[next(words.len())]);
                    match next(4) {
                        0 => maps.values().append_null(),
                        _ => maps.values().append_value(words[next(words.len())]),
                    }
                }
                maps.append(next(5) != 0).unwrap();
            }
            let ints = ListArray::from_iter_primitive::<Int64Type, _, _>((0..rows).map(|_| {
                (next(5) != 0).then(|| {
                    (0..next(3))
                        .map(|k| (k != 1).then_some(k as i64))
                        .collect::<Vec<_>>()
                })
            }));
            let lens: Vec<usize> = (0..rows).map(|_| next(3)).collect();
            let entries: usize = lens.iter().sum();
            let strings: Vec<Option<&str>> = (0..entries)
                .map(|_| (next(3) != 0).then(|| words[next(words.len())]))
                .collect();
            let times: Vec<i64> = (0..entries).map(|_| next(1000) as i64).collect();
            let structs = StructArray::try_new(
                item.clone(),
                vec![
                    Arc::new(StringArray::from(strings)),
                    Arc::new(TimestampNanosecondArray::from(times).with_timezone("UTC")),
                ],
                Some(NullBuffer::from_iter((0..entries).map(|_| next(4) != 0))),
            )
            .unwrap();
            let structs = ListArray::try_new(
                Arc::new(Field::new("item", DataType::Struct(item.clone()), true)),
                OffsetBuffer::from_lengths(lens),
                Arc::new(structs),
                Some(NullBuffer::from_iter((0..rows).map(|_| next(5) != 0))),
            )
            .unwrap();
            let columns: Vec<ArrayRef> =
                vec![Arc::new(maps.finish()), Arc::new(ints), Arc::new(structs)];
            let schema = Schema::new(
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
                    .collect::<Vec<_>>(),
            );
            RecordBatch::try_new(Arc::new(schema), columns).unwrap()
        };
        let whole = make(300);
        let batches = vec![make(40), make(0), whole.slice(17, 200), make(1), make(90)];
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let all = concat_batches(&batches[0].schema(), &batches).unwrap();

        let mut shuffled: Vec<u32> = (0..rows as u32).collect();
        for i in (1..rows).rev() {
            shuffled.swap(i, next(i + 1));
        }
        // Runs of consecutive rows in shuffled order, as the spans of a trace come.
        let mut blocks: Vec<Vec<u32>> = (0..rows as u32)
            .collect::<Vec<_>>()
            .chunks(7)
            .map(|c| c.to_vec())
            .collect();
        for i in (1..blocks.len()).rev() {
            blocks.swap(i, next(i + 1));
        }
        let orders = [
            (0..rows as u32).collect::<Vec<_>>(),
            (0..rows as u32).rev().collect(),
            shuffled,
            blocks.concat(),
        ];
        for order in orders {
            let runs = runs(&batches, &order);
            assert_eq!(runs.iter().map(|r| r.len).sum::<usize>(), rows);
            let indices = UInt32Array::from(order.clone());
            for (i, field) in all.schema().fields().iter().enumerate() {
                let parts: Vec<&ArrayRef> = batches.iter().map(|b| b.column(i)).collect();
                let got = gather(field.data_type(), &parts, &runs, rows).unwrap();
                let want = take(all.column(i).as_ref(), &indices, None).unwrap();
                assert_eq!(got.as_ref(), want.as_ref(), "{}", field.name());
            }
        }
    }

    #[test]
    fn files_hold_exactly_the_rows_in_sort_order() {
        // Attributes, events and links of varying lengths, in a batch sliced off a larger
        // one: the custom gather of list and map entries against arrow's own `take`.
        let dir = TempDir::new("roundtrip");
        let whole = spans_batch(300);
        let batch = whole.slice(37, whole.num_rows() - 50);
        let files = write_data_files(
            &dir.0,
            SPANS,
            std::slice::from_ref(&batch),
            &[],
            &Default::default(),
        )
        .unwrap();
        let read_back: Vec<RecordBatch> =
            files.iter().map(|f| read(&dir.0.join(&f.path))).collect();
        let read_back = concat_batches(&batch.schema(), &read_back).unwrap();

        let want = sorted_by_arrow(std::slice::from_ref(&batch));
        assert_eq!(read_back.columns(), want.columns());
    }

    /// The rows of `batches` in the layout's sort order, by arrow's own kernels (trace
    /// ids ranked by the row each first comes in): ties in the input's order (the sort is
    /// stable).
    fn sorted_by_arrow(batches: &[RecordBatch]) -> RecordBatch {
        let all = concat_batches(&batches[0].schema(), batches).unwrap();
        let mut first: HashMap<String, u32> = HashMap::new();
        let arrival: Vec<u32> = strings(&all, col::TRACE_ID)
            .into_iter()
            .enumerate()
            .map(|(row, id)| *first.entry(id).or_insert(row as u32))
            .collect();
        let mut keys = vec![
            SortColumn {
                values: day_numbers(&all, &[col::START_TIME]).unwrap(),
                options: None,
            },
            SortColumn {
                values: Arc::clone(all.column_by_name(col::SERVICE_NAME).unwrap()),
                options: None,
            },
            SortColumn {
                values: Arc::new(arrow_array::UInt32Array::from(arrival)),
                options: None,
            },
        ];
        keys.push(SortColumn {
            values: Arc::new(arrow_array::UInt32Array::from_iter_values(
                0..all.num_rows() as u32,
            )),
            options: None,
        });
        let order = lexsort_to_indices(&keys, None).unwrap();
        arrow_select::take::take_record_batch(&all, &order).unwrap()
    }

    #[test]
    fn string_columns_read_through_runs_of_several_batches_write_what_copies_would() {
        // The string columns are read where they are in the input batches: nulls in
        // them (service_name, a sort key, included), empty maps, batches sliced off a
        // larger one, a copy with buffers of its own and an empty batch, over two days
        // and row groups that cut runs. The files hold the rows of arrow's `take` in sort
        // order, and are byte for byte the files those copied rows write.
        let with_nulls = |batch: RecordBatch, every: usize| -> RecordBatch {
            let columns = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .enumerate()
                .map(|(c, (field, column))| {
                    if field.data_type() != &DataType::Utf8 || !field.is_nullable() {
                        return Arc::clone(column);
                    }
                    let null: arrow_array::BooleanArray = (0..column.len())
                        .map(|row| Some((row * 7 + c) % every == 0))
                        .collect();
                    arrow_select::nullif::nullif(column.as_ref(), &null).unwrap()
                })
                .collect();
            RecordBatch::try_new(batch.schema(), columns).unwrap()
        };
        let whole = with_nulls(spans_batch(300), 5);
        let copy = concat_batches(&whole.schema(), &[whole.slice(601, 400)]).unwrap();
        let batches = vec![
            whole.slice(0, 1),
            whole.slice(1, 600),
            whole.slice(601, 0),
            with_nulls(copy, 3),
            whole.slice(1001, whole.num_rows() - 1001),
        ];
        let want = sorted_by_arrow(&batches);
        let service = want.column_by_name(col::SERVICE_NAME).unwrap();
        let attributes = want.column_by_name(col::SPAN_ATTRIBUTES).unwrap().as_map();
        assert!(service.null_count() > 0 && service.null_count() < want.num_rows());
        assert!((0..attributes.len()).any(|row| attributes.value_length(row) == 0));

        let dir = TempDir::new("runs");
        let opts = ParquetOptions {
            row_group_rows: 250,
            ..Default::default()
        };
        let files = write_data_files(&dir.0, SPANS, &batches, &[], &opts).unwrap();
        assert_eq!(files.len(), 2);
        let mut at = 0;
        for f in &files {
            let path = dir.0.join(&f.path);
            let want = want.slice(at, f.rows as usize);
            at += want.num_rows();
            assert_eq!(read(&path).columns(), want.columns());

            let props = writer_properties(SPANS, &layout(SPANS).unwrap(), &opts, want.num_rows());
            let mut copied = Vec::new();
            let (written, stats) =
                write_rows(&mut copied, &SortedRows::from(&want), props.unwrap()).unwrap();
            assert!(written.num_row_groups() > 1);
            assert!(fs::read(&path).unwrap() == copied, "{} differs", f.path);
            assert_eq!(f.stats_json, stats);
        }
        assert_eq!(at, want.num_rows());
    }

    /// Request `n` of several: resources with and without a version (a null), with the
    /// same or other attributes from request to request, one with no attributes at all
    /// (an empty map, null service) and a null attribute value, one resource of two
    /// scopes, one scope without a name; traces shared between requests, so that the
    /// sort interleaves their rows, and crossing midnight.
    fn grouped_request(n: u64) -> ExportTraceServiceRequest {
        let spans = |first: u64, count: u64| -> Vec<Span> {
            (0..count)
                .map(|i| {
                    let t = (first + 3 * n + i) % 11;
                    let start = DAY0 + 23 * 3600 * SECOND + t * 400 * SECOND + n * 7 + i;
                    Span {
                        trace_id: trace_id(t),
                        span_id: (n * 1000 + first * 100 + i + 1).to_be_bytes().to_vec(),
                        name: format!("op-{}", i % 3),
                        start_time_unix_nano: start,
                        end_time_unix_nano: start + 1_000,
                        attributes: vec![kv("i", &(i % 2).to_string())],
                        ..Default::default()
                    }
                })
                .collect()
        };
        let scope = |name: &str, version: &str, spans: Vec<Span>| ScopeSpans {
            scope: Some(InstrumentationScope {
                name: name.into(),
                version: version.into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        };
        let resource = |attributes: Vec<OtlpKv>, scope_spans: Vec<ScopeSpans>| ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans,
            schema_url: String::new(),
        };
        let null_value = OtlpKv {
            key: "empty".into(),
            value: None,
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                resource(
                    vec![
                        kv("service.name", "checkout"),
                        kv("service.version", &format!("1.{}", n % 2)),
                        kv("host.name", "a"),
                    ],
                    vec![
                        scope("http", "1.0", spans(0, 9)),
                        scope("", "", spans(1, 4)),
                        scope("db", "", spans(2, 5)),
                    ],
                ),
                resource(
                    vec![
                        kv("service.name", "cart"),
                        kv("service.instance.id", &format!("i-{}", n % 3)),
                        null_value,
                    ],
                    vec![scope("http", "1.0", spans(3, 7))],
                ),
                resource(Vec::new(), vec![scope("http", "2.0", spans(4, 6))]),
                resource(
                    vec![
                        kv("service.name", "cart"),
                        kv("deployment.environment", "prod"),
                    ],
                    vec![scope("http", "1.0", spans(5, 3 + n % 4))],
                ),
            ],
        }
    }

    /// The data files under `dir`, by partition, each file's bytes.
    fn file_bytes(dir: &Path, files: &[DataFile]) -> BTreeMap<String, Vec<u8>> {
        files
            .iter()
            .map(|f| {
                let partition = f.partition_values[0].1.clone();
                (partition, fs::read(dir.join(&f.path)).unwrap())
            })
            .collect()
    }

    #[test]
    fn resource_attributes_held_once_gather_into_the_column_in_full() {
        // What arrow-rs would be handed for the column, were the string writer not to take
        // it: the runs of `runs_by_resource` gathered from the resources' rows, here over
        // a batch held once and one in full, in an order that crosses resources back and
        // forth.
        let once_opts = DecodeOptions {
            resource_attributes_once: true,
            ..DecodeOptions::default()
        };
        let bytes = [
            grouped_request(0).encode_to_vec(),
            grouped_request(1).encode_to_vec(),
        ];
        let once = decode_traces(&bytes[0], &once_opts).unwrap();
        let full = [
            decode_traces(&bytes[0], &DecodeOptions::default()).unwrap(),
            decode_traces(&bytes[1], &DecodeOptions::default()).unwrap(),
        ];
        let (n0, n1) = (full[0].batch.num_rows(), full[1].batch.num_rows());
        let runs = [
            Run {
                batch: 0,
                start: n0 - 3,
                len: 3,
            },
            Run {
                batch: 1,
                start: 2,
                len: n1 - 2,
            },
            Run {
                batch: 0,
                start: 0,
                len: n0 - 3,
            },
            Run {
                batch: 1,
                start: 0,
                len: 2,
            },
        ];
        let groups = vec![
            Some(BatchGroups::new(&once.contexts, n0).unwrap()),
            Some(BatchGroups::new(&full[1].contexts, n1).unwrap()),
        ];
        let by_resource = runs_by_resource(&runs, &groups);
        assert_eq!(by_resource.len(), n0 + n1);
        let i = full[0]
            .batch
            .schema()
            .index_of(col::RESOURCE_ATTRIBUTES)
            .unwrap();
        let held: ArrayRef = Arc::new(once.contexts.resource_attributes.clone().unwrap());
        let parts = [&held, full[1].batch.column(i)];
        let data_type = full[0].batch.schema().field(i).data_type().clone();
        let gathered = gather(&data_type, &parts, &by_resource, n0 + n1).unwrap();
        let in_full = [full[0].batch.column(i), full[1].batch.column(i)];
        let want = gather(&data_type, &in_full, &runs, n0 + n1).unwrap();
        assert_eq!(gathered.as_ref(), want.as_ref());
        assert!(want.as_map().entries().len() > 0);
    }

    #[test]
    fn contexts_write_the_files_their_absence_writes() {
        let decoded: Vec<_> = (0..6)
            .map(|n| {
                let bytes = grouped_request(n).encode_to_vec();
                decode_traces(&bytes, &DecodeOptions::default()).unwrap()
            })
            .collect();
        let contexts = &decoded[0].contexts;
        assert_eq!(&contexts.context_resource[..], [0, 0, 0, 1, 2, 3]);
        let mut want = vec![0; 9];
        for (context, spans) in [(1, 4), (2, 5), (3, 7), (4, 6), (5, 3)] {
            want.extend(std::iter::repeat_n(context, spans));
        }
        assert_eq!(&contexts.row_context[..], want);

        let batches: Vec<RecordBatch> = decoded.iter().map(|d| d.batch.clone()).collect();
        let all: Vec<Option<Contexts>> = decoded.iter().map(|d| Some(d.contexts.clone())).collect();
        let once_opts = DecodeOptions {
            resource_attributes_once: true,
            ..DecodeOptions::default()
        };
        let once: Vec<_> = (0..6)
            .map(|n| decode_traces(&grouped_request(n).encode_to_vec(), &once_opts).unwrap())
            .collect();
        let once_batches: Vec<RecordBatch> = once.iter().map(|d| d.batch.clone()).collect();
        for (d, full) in once.iter().zip(&decoded) {
            // The batch's column is left empty, the resources' maps are in the contexts
            // (one a resource), and the rest is the same.
            let column = d.batch.column_by_name(col::RESOURCE_ATTRIBUTES).unwrap();
            assert_eq!(column.as_map().entries().len(), 0);
            let maps = d.contexts.resource_attributes.as_ref().unwrap();
            assert_eq!(maps.len(), full.contexts.resources());
            assert!(maps.entries().len() > 0);
            assert!(d.memory_size() < full.memory_size());
            for name in [col::SERVICE_NAME, col::SPAN_ATTRIBUTES, col::SCOPE_NAME] {
                assert_eq!(
                    d.batch.column_by_name(name),
                    full.batch.column_by_name(name)
                );
            }
        }
        let some: Vec<Option<Contexts>> = decoded
            .iter()
            .enumerate()
            .map(|(i, d)| (i % 2 == 1).then(|| d.contexts.clone()))
            .collect();
        let sorted = sorted_by_arrow(&batches);
        let version = sorted.column_by_name(col::SERVICE_VERSION).unwrap();
        assert!(version.null_count() > 0 && version.null_count() < sorted.num_rows());
        let resources = sorted
            .column_by_name(col::RESOURCE_ATTRIBUTES)
            .unwrap()
            .as_map();
        assert!((0..resources.len()).any(|row| resources.value_length(row) == 0));
        assert!(resources.values().null_count() > 0);

        for row_group_rows in [40, 1 << 20] {
            let opts = ParquetOptions {
                row_group_rows,
                ..Default::default()
            };
            let write = |contexts: &[Option<Contexts>], name: &str| {
                let dir = TempDir::new(name);
                let files = write_data_files(&dir.0, SPANS, &batches, contexts, &opts).unwrap();
                assert_eq!(files.len(), 2, "the rows cross midnight");
                let stats: Vec<String> = files.iter().map(|f| f.stats_json.clone()).collect();
                (file_bytes(&dir.0, &files), stats)
            };
            let without = write(&[], "contexts-none");
            assert!(
                without == write(&all, "contexts-all"),
                "{row_group_rows} rows"
            );
            assert!(
                without == write(&some, "contexts-some"),
                "{row_group_rows} rows"
            );
            // Resource attributes held once per resource (as the lake decodes): in every
            // batch, or in some, the others with their contexts or without.
            let once: Vec<Option<Contexts>> =
                once.iter().map(|d| Some(d.contexts.clone())).collect();
            let write = |batches: &[RecordBatch], contexts: &[Option<Contexts>], name: &str| {
                let dir = TempDir::new(name);
                let files = write_data_files(&dir.0, SPANS, batches, contexts, &opts).unwrap();
                let stats: Vec<String> = files.iter().map(|f| f.stats_json.clone()).collect();
                (file_bytes(&dir.0, &files), stats)
            };
            assert!(
                without == write(&once_batches, &once, "contexts-once"),
                "{row_group_rows} rows"
            );
            let (mixed, mixed_contexts): (Vec<RecordBatch>, Vec<Option<Contexts>>) = (0..6)
                .map(|i| match i % 3 {
                    0 => (once_batches[i].clone(), once[i].clone()),
                    1 => (batches[i].clone(), all[i].clone()),
                    _ => (batches[i].clone(), None),
                })
                .unzip();
            assert!(
                without == write(&mixed, &mixed_contexts, "contexts-mixed"),
                "{row_group_rows} rows"
            );
        }

        // Rollups read the resource's columns once per resource: the same rows.
        let rollups = |contexts: &[Option<Contexts>]| {
            let mut r = Rollups::new();
            for (batch, contexts) in batches.iter().zip(contexts) {
                r.add_spans(batch, contexts.as_ref()).unwrap();
            }
            r.finish().unwrap()
        };
        let without = rollups(&vec![None; batches.len()]);
        assert!(without.num_rows() > 10);
        assert_eq!(rollups(&all), without);
        let mut r = Rollups::new();
        for d in &once {
            r.add_spans(&d.batch, Some(&d.contexts)).unwrap();
        }
        assert_eq!(r.finish().unwrap(), without);

        // Logs: resources with one and two scopes, one without attributes, interleaved.
        let logs: Vec<_> = (0..4u64)
            .map(|n| {
                let records = |first: u64| -> Vec<LogRecord> {
                    (0..5)
                        .map(|i| LogRecord {
                            time_unix_nano: DAY0 + ((first + n + i * 3) % 7) * SECOND,
                            severity_text: "INFO".into(),
                            ..Default::default()
                        })
                        .collect()
                };
                let scope = |name: &str, log_records| ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: name.into(),
                        ..Default::default()
                    }),
                    log_records,
                    ..Default::default()
                };
                let resource = |attributes, scope_logs| ResourceLogs {
                    resource: Some(Resource {
                        attributes,
                        ..Default::default()
                    }),
                    scope_logs,
                    schema_url: String::new(),
                };
                let service = vec![kv("service.name", "cart"), kv("n", &(n % 2).to_string())];
                let req = ExportLogsServiceRequest {
                    resource_logs: vec![
                        resource(service, vec![scope("a", records(0)), scope("", records(1))]),
                        resource(Vec::new(), vec![scope("a", records(2))]),
                    ],
                };
                let bytes = req.encode_to_vec();
                let full = decode_logs(&bytes, &DecodeOptions::default()).unwrap();
                (full, decode_logs(&bytes, &once_opts).unwrap())
            })
            .collect();
        let batches: Vec<RecordBatch> = logs.iter().map(|d| d.0.batch.clone()).collect();
        let contexts: Vec<Option<Contexts>> =
            logs.iter().map(|d| Some(d.0.contexts.clone())).collect();
        let write = |batches: &[RecordBatch], contexts: &[Option<Contexts>], name: &str| {
            let dir = TempDir::new(name);
            let files = write_data_files(&dir.0, LOGS, batches, contexts, &Default::default());
            file_bytes(&dir.0, &files.unwrap())
        };
        let without = write(&batches, &[], "logs-none");
        assert!(without == write(&batches, &contexts, "logs-all"));
        let once_batches: Vec<RecordBatch> = logs.iter().map(|d| d.1.batch.clone()).collect();
        let once_contexts: Vec<Option<Contexts>> =
            logs.iter().map(|d| Some(d.1.contexts.clone())).collect();
        assert!(without == write(&once_batches, &once_contexts, "logs-once"));

        // Contexts that do not fit their batch are refused, not trusted.
        let dir = TempDir::new("contexts-bad");
        let mut bad = all.clone();
        bad[1] = Some(decoded[0].contexts.clone());
        assert!(write_data_files(&dir.0, SPANS, &batches, &bad, &Default::default()).is_err());
        assert!(write_data_files(&dir.0, SPANS, &batches, &all[1..], &Default::default()).is_err());
        // Nor resource attributes for fewer resources than the rows are of.
        let mut short = once[0].contexts.clone();
        short.resource_attributes = short.resource_attributes.map(|m| m.slice(0, 1));
        let (batch, short) = (once_batches[0].clone(), Some(short));
        assert!(write_data_files(&dir.0, SPANS, &[batch], &[short], &Default::default()).is_err());
    }

    #[test]
    fn string_bounds_fall_back_to_the_values_the_runs_pick() {
        // Values past the 64-byte statistics cut leave the written bounds inexact, so the
        // Delta bounds come from the values: those the runs pick, not every value of the
        // parts ("0" and "zz" are left out).
        let long = "m".repeat(70);
        let parts: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![
                Some("b"),
                None,
                Some(long.as_str()),
                Some("c"),
            ])),
            Arc::new(StringArray::from(vec![Some("0"), Some("a"), None, Some("zz")]).slice(1, 3)),
            Arc::new(StringArray::from(vec![None, Some("0")])),
        ];
        let run = |batch, start, len| Run { batch, start, len };
        let runs = vec![
            run(1, 1, 1),
            run(0, 2, 2),
            run(2, 0, 1),
            run(0, 0, 2),
            run(1, 0, 1),
        ];
        let want: ArrayRef = Arc::new(StringArray::from(vec![
            None,
            Some(long.as_str()),
            Some("c"),
            None,
            Some("b"),
            None,
            Some("a"),
        ]));
        let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "s",
            DataType::Utf8,
            true,
        )]));
        let rows = SortedRows {
            schema: Arc::clone(&schema),
            columns: vec![SortedColumn::Parts(parts)],
            runs,
            groups: Arc::default(),
            len: want.len(),
        };
        assert_eq!(
            cut_runs(&rows.runs, 2, 4),
            [run(0, 3, 1), run(2, 0, 1), run(0, 0, 2)]
        );
        assert_eq!(cut_runs(&rows.runs, 6, 1), [run(1, 0, 1)]);

        let props = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(3))
            .build();
        let mut file = Vec::new();
        let (written, stats) = write_rows(&mut file, &rows, props.clone()).unwrap();
        assert_eq!(written.num_row_groups(), 3);
        assert_eq!(written_string_bounds(&written, "s"), None);
        let want = RecordBatch::try_new(schema, vec![want]).unwrap();
        let read_back: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file))
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap())
                .collect();
        assert_eq!(concat_batches(&want.schema(), &read_back).unwrap(), want);

        let in_order = write_rows(Vec::new(), &SortedRows::from(&want), props).unwrap();
        assert_eq!(stats, in_order.1);
        assert_eq!(stat(&stats, "minValues", "s"), "\"a\"");
        assert_eq!(
            stat(&stats, "maxValues", "s"),
            format!("\"{}\u{7f}\"", "m".repeat(32))
        );
        assert_eq!(stat(&stats, "nullCount", "s"), "3");
    }

    #[test]
    fn logs_fall_back_to_observed_time_then_to_the_write_day() {
        let dir = TempDir::new("logs");
        let record = |time: u64, observed: u64, body: &str| LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: observed,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(body.into())),
            }),
            ..Default::default()
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "cart")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        record(DAY0 + 5 * SECOND, 0, "b"),
                        record(0, DAY0 + 86_400 * SECOND + 1, "next day, observed only"),
                        record(DAY0 + SECOND, DAY0 + 86_400 * SECOND, "a"),
                        record(0, 0, "no time at all"),
                    ],
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
        };
        let batch = decode_logs(&req.encode_to_vec(), &DecodeOptions::default())
            .unwrap()
            .batch;
        let today = DateTime::from_timestamp_nanos(now_ns())
            .format("%Y-%m-%d")
            .to_string();
        let files =
            write_data_files(&dir.0, LOGS, &[batch], &[], &ParquetOptions::default()).unwrap();
        let by_day: BTreeMap<String, Vec<String>> = files
            .iter()
            .map(|f| {
                let bodies = strings(&read(&dir.0.join(&f.path)), col::BODY);
                (f.partition_values[0].1.clone(), bodies)
            })
            .collect();
        let mut want = BTreeMap::new();
        want.insert(
            "2024-02-29".to_string(),
            vec!["a".to_string(), "b".to_string()],
        );
        want.insert(
            "2024-03-01".to_string(),
            vec!["next day, observed only".to_string()],
        );
        want.insert(today, vec!["no time at all".to_string()]);
        assert_eq!(by_day, want);
        // An all-null column has a null count and no bounds.
        let f = &files[0];
        assert_eq!(stat(&f.stats_json, "nullCount", col::TRACE_ID), "2");
        assert!(!f.stats_json.contains("\"minValues\":{\"trace_id\""));
    }

    #[test]
    fn list_columns_without_elements_are_written_uncompressed() {
        let dir = TempDir::new("empty-lists");
        let with_lists = spans_batch(40);
        // The same spans with no events and no links.
        let mut columns = with_lists.columns().to_vec();
        for name in [col::EVENTS, col::LINKS] {
            let at = with_lists.schema().index_of(name).unwrap();
            let DataType::List(item) = with_lists.schema().field(at).data_type().clone() else {
                panic!("{name} is not a list");
            };
            let empty = arrow_array::new_empty_array(item.data_type());
            let offsets = OffsetBuffer::new_zeroed(with_lists.num_rows());
            columns[at] = Arc::new(ListArray::new(item, offsets, empty, None));
        }
        let without = RecordBatch::try_new(with_lists.schema(), columns).unwrap();
        for (batch, lists_empty) in [(&with_lists, false), (&without, true)] {
            let files = write_data_files(
                &dir.0,
                SPANS,
                std::slice::from_ref(batch),
                &[],
                &ParquetOptions::default(),
            )
            .unwrap();
            assert_eq!(files.len(), 1);
            let path = dir.0.join(&files[0].path);
            let got = read(&path);
            assert_eq!(got.num_rows(), batch.num_rows());
            for name in [col::EVENTS, col::LINKS] {
                let elements = |b: &RecordBatch| {
                    b.column_by_name(name)
                        .unwrap()
                        .as_list::<i32>()
                        .values()
                        .len()
                };
                assert_eq!(elements(&got), elements(batch), "{name}");
            }
            let reader = reader_with_bloom_filters(File::open(&path).unwrap());
            for c in reader.metadata().row_group(0).columns() {
                let path = c.column_path().string();
                let list = path.starts_with(col::EVENTS) || path.starts_with(col::LINKS);
                if list {
                    let codec = c.compression();
                    assert_eq!(
                        codec == Compression::UNCOMPRESSED,
                        lists_empty,
                        "{path}: {codec}"
                    );
                }
            }
        }
    }

    #[test]
    fn rollups_are_sorted_by_minute_and_have_no_bloom_filter() {
        let dir = TempDir::new("rollups");
        let mut rollups = Rollups::new();
        rollups.add_spans(&spans_batch(300), None).unwrap();
        let batch = rollups.finish().unwrap();
        // Durations of every size and sign, as clock skew and saturated sums make them:
        // bit packing (`Layout::delta_packed`) must give them back exactly.
        let mut columns = batch.columns().to_vec();
        let mut rng = Rng(7);
        for name in [
            rollup_col::DURATION_SUM_NS,
            rollup_col::DURATION_MIN_NS,
            rollup_col::DURATION_MAX_NS,
        ] {
            let values = (0..batch.num_rows()).map(|row| match row % 5 {
                0 => i64::MAX,
                1 => i64::MIN,
                2 => -(rng.below(1000) as i64),
                _ => (rng.unit() * 1e12) as i64,
            });
            columns[batch.schema().index_of(name).unwrap()] =
                Arc::new(Int64Array::from_iter_values(values));
        }
        let batch = RecordBatch::try_new(batch.schema(), columns).unwrap();
        let files = write_data_files(
            &dir.0,
            ROLLUPS,
            std::slice::from_ref(&batch),
            &[],
            &ParquetOptions::default(),
        )
        .unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files.iter().map(|f| f.rows).sum::<u64>(),
            batch.num_rows() as u64
        );
        let days: Vec<RecordBatch> = files.iter().map(|f| read(&dir.0.join(&f.path))).collect();
        assert_eq!(concat_batches(&batch.schema(), &days).unwrap(), batch);
        for f in &files {
            let path = dir.0.join(&f.path);
            let got = read(&path);
            let minutes = times(&got, rollup_col::MINUTE);
            assert!(minutes.windows(2).all(|w| w[0] <= w[1]));
            let reader = reader_with_bloom_filters(File::open(&path).unwrap());
            let row_group = reader.get_row_group(0).unwrap();
            assert!((0..got.num_columns()).all(|c| row_group.get_column_bloom_filter(c).is_none()));
            for c in row_group.metadata().columns() {
                let plain = [
                    rollup_col::DURATION_SUM_NS,
                    rollup_col::DURATION_MIN_NS,
                    rollup_col::DURATION_MAX_NS,
                ]
                .contains(&c.column_path().string().as_str());
                assert_eq!(
                    c.dictionary_page_offset().is_none(),
                    plain,
                    "{}",
                    c.column_path()
                );
                // The plain ones are bit packed (`Layout::delta_packed`); they and the
                // `Layout::uncompressed` columns are not compressed.
                let path = c.column_path().string();
                let packed = c.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED);
                assert_eq!(packed, plain, "{path}");
                let uncompressed = plain
                    || [rollup_col::P50_NS, rollup_col::P95_NS, rollup_col::P99_NS]
                        .contains(&path.as_str());
                assert_eq!(
                    c.compression() == Compression::UNCOMPRESSED,
                    uncompressed,
                    "{path}"
                );
            }
            assert!(f.stats_json.contains("\"p50_ns\":"));
            assert!(!f.stats_json.contains(rollup_col::LATENCY_SKETCH));
        }
    }

    #[test]
    fn bad_input_is_refused_and_no_rows_write_nothing() {
        let dir = TempDir::new("errors");
        let opts = ParquetOptions::default();
        let spans = spans_batch(3);
        assert!(
            write_data_files(&dir.0, "metrics", std::slice::from_ref(&spans), &[], &opts).is_err()
        );
        assert!(write_data_files(&dir.0, LOGS, std::slice::from_ref(&spans), &[], &opts).is_err());
        let zero_rows = ParquetOptions {
            row_group_rows: 0,
            ..Default::default()
        };
        assert!(
            write_data_files(&dir.0, SPANS, std::slice::from_ref(&spans), &[], &zero_rows).is_err()
        );
        let bad_level = ParquetOptions {
            zstd_level: 99,
            ..Default::default()
        };
        assert!(
            write_data_files(&dir.0, SPANS, std::slice::from_ref(&spans), &[], &bad_level).is_err()
        );
        let bad_fpp = ParquetOptions {
            bloom_filter_fpp: 1.5,
            ..Default::default()
        };
        assert!(
            write_data_files(&dir.0, SPANS, std::slice::from_ref(&spans), &[], &bad_fpp).is_err()
        );
        assert!(write_data_files(&dir.0, SPANS, &[], &[], &opts)
            .unwrap()
            .is_empty());
        assert!(
            write_data_files(&dir.0, SPANS, &[spans.slice(0, 0)], &[], &opts)
                .unwrap()
                .is_empty()
        );
        assert!(all_files(&dir.0).is_empty());
    }

    #[test]
    fn layouts_name_leaves_their_schemas_have() {
        // A name in a layout's lists that is no leaf of the table's Parquet schema (a
        // nested one spelled wrong, a column renamed) would set nothing, silently.
        for table in [SPANS, LOGS, ROLLUPS] {
            let layout = layout(table).unwrap();
            let parquet = ArrowSchemaConverter::new().convert(&layout.schema).unwrap();
            let leaves: Vec<String> = parquet
                .columns()
                .iter()
                .map(|c| c.path().string())
                .collect();
            for name in [layout.plain, layout.delta_packed, layout.uncompressed].concat() {
                assert!(leaves.iter().any(|l| l == name), "{table}: no leaf {name}");
                assert_eq!(leaf_path(name).string(), name);
            }
        }
        assert!(layout(SPANS).unwrap().plain.contains(&EVENT_TIME));
    }

    #[test]
    fn file_names_are_unique() {
        let names: BTreeSet<String> = (0..10_000).map(|_| unique_file_name()).collect();
        assert_eq!(names.len(), 10_000);
    }

    #[test]
    fn string_bounds_from_parquet_statistics_equal_the_values_bounds() {
        // Empty strings, NUL bytes, non-ASCII, the largest code point, values past the
        // writer's 64-byte statistics cut, NULLs and an all-NULL column, over several
        // row groups.
        let long_ascii = "ab".repeat(40);
        let long_wide = "\u{e9}".repeat(33);
        let exactly_64 = "x".repeat(64);
        let pool: Vec<Option<&str>> = vec![
            None,
            Some(""),
            Some("a"),
            Some("a\0"),
            Some("abc"),
            Some("\u{e9}t\u{e9}"),
            Some("\u{10ffff}"),
            Some("zz"),
            Some(&exactly_64),
            Some(&long_ascii),
            Some(&long_wide),
        ];
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let rows = 700;
        let column = |choices: &[Option<&str>], next: &mut dyn FnMut(usize) -> usize| {
            let values: Vec<Option<&str>> =
                (0..rows).map(|_| choices[next(choices.len())]).collect();
            Arc::new(StringArray::from(values)) as ArrayRef
        };
        let columns = vec![
            ("all", column(&pool, &mut next)),
            ("short", column(&pool[..9], &mut next)),
            ("non_null", column(&pool[1..8], &mut next)),
            ("nulls", column(&pool[..1], &mut next)),
            ("one_long", {
                let mut values: Vec<Option<&str>> = vec![Some("m"); rows];
                values[rows - 1] = Some(&long_wide);
                Arc::new(StringArray::from(values)) as ArrayRef
            }),
        ];
        let schema = Arc::new(arrow_schema::Schema::new(
            columns
                .iter()
                .map(|(name, _)| arrow_schema::Field::new(*name, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            columns.into_iter().map(|(_, c)| c).collect(),
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(128))
            .build();
        let mut writer =
            ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props.clone())).unwrap();
        writer.write(&batch).unwrap();
        let written = writer.close().unwrap();
        assert!(written.num_row_groups() > 1);

        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let values = array.as_string::<i32>();
            let want = min_max(values.iter().flatten());
            match written_string_bounds(&written, field.name()) {
                Some(got) => assert_eq!(got, want, "{}", field.name()),
                None => assert!(values.iter().flatten().any(|v| v.len() > 64)),
            }
        }
        assert_eq!(written_string_bounds(&written, "nulls"), Some(None));
        assert_eq!(
            written_string_bounds(&written, "short").map(|b| b.is_some()),
            Some(true)
        );
        assert_eq!(written_string_bounds(&written, "one_long"), None);

        // The Delta statistics are those of the values, whichever way they were found.
        let (mut min, mut max, mut nulls) = (String::new(), String::new(), String::new());
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            push_entry(&mut nulls, field.name(), &array.null_count().to_string());
            let values = array.as_string::<i32>();
            if let Some((lo, hi)) =
                min_max(values.iter().flatten()).and_then(|(lo, hi)| string_bounds(lo, hi))
            {
                push_entry(&mut min, field.name(), &lo);
                push_entry(&mut max, field.name(), &hi);
            }
        }
        assert_eq!(
            write_rows(Vec::new(), &SortedRows::from(&batch), props)
                .unwrap()
                .1,
            format!(
                "{{\"numRecords\":{rows},\"minValues\":{{{min}}},\"maxValues\":{{{max}}},\"nullCount\":{{{nulls}}},\"tightBounds\":true}}"
            )
        );
    }

    #[test]
    fn strings_are_cut_to_delta_bounds() {
        let short = "a".repeat(32);
        assert_eq!(truncate_min(&short), short);
        assert_eq!(truncate_max(&short).unwrap(), short);
        let long = format!("{short}bcd");
        assert_eq!(truncate_min(&long), short);
        assert_eq!(truncate_max(&long).unwrap(), format!("{short}\x7f"));
        assert!(truncate_max(&long).unwrap().as_str() > long.as_str());
        // Counted in characters, never cut inside one.
        let wide = "é".repeat(40);
        assert_eq!(truncate_min(&wide), "é".repeat(32));
        assert_eq!(
            truncate_max(&wide).unwrap(),
            format!("{}{}", "é".repeat(32), char::MAX)
        );
        let at_max = format!("{short}{}", char::MAX);
        assert_eq!(truncate_max(&at_max), None);
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        push_json_str(&mut out, "a\"b\\c\nd\u{1}é\u{10ffff}");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\u{10ffff}\"");
        let f = DataFile {
            path: "day=2026-11-29/part-x.zstd.parquet".into(),
            size: 10,
            partition_values: vec![(DAY.into(), "2026-11-29".into())],
            rows: 2,
            stats_json: "{\"numRecords\":2}".into(),
            modification_time_ms: 5,
        };
        assert_eq!(
            f.to_json(),
            "{\"path\":\"day=2026-11-29/part-x.zstd.parquet\",\"size\":10,\
             \"partition_values\":{\"day\":\"2026-11-29\"},\"rows\":2,\
             \"stats_json\":\"{\\\"numRecords\\\":2}\",\"modification_time_ms\":5}"
        );
    }
}
