//! Compaction: small data files of one day partition rewritten as one file, through the
//! same writer as flushes ([`crate::parquet_files`]): the same encodings, sort order,
//! bloom filter and statistics, at the cost of a flush rather than of a generic writer.
//! Committing the swap (one Delta commit removing the inputs and adding the output) is the
//! caller's job, as it is for flushes.
//!
//! Row groups of [`ParquetOptions::copy_row_group_rows`] rows or more in files this writer
//! wrote are copied as they are, pages, bloom filter and page index, at the cost of a file
//! copy. The rest are decoded and merged: memory stays bounded whatever the inputs' size,
//! as rows are read a batch at a time and written a row group at a time, each row group's
//! rows sorted among themselves (the inputs are sorted already, so a row group interleaves
//! a few runs).

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Component, Path};
use std::sync::Arc;

use arrow_array::{new_null_array, RecordBatch};
use arrow_schema::{ArrowError, SchemaRef};
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::properties::WriterProperties;

use crate::error::Result;
use crate::parquet_files::{
    copyable, layout, sort_rows, writer_properties, DataFile, DataFileWriter, Layout,
    ParquetOptions,
};

/// Rows read from an input file at a time.
const READ_BATCH_ROWS: usize = 8192;

/// Rewrites the data files `inputs` (paths relative to `table_dir`, all in the partition
/// `day=<day>` of `table`) as one new data file in that partition, and returns it; `None`
/// when the inputs hold no rows. The inputs are left as they are. Every row stays in
/// `day`, whatever its timestamps say (rows without one were put in the day they were
/// written).
///
/// Files written by an earlier writer with other names for the map and list children
/// (delta-rs's `key_value` and `element`) or without a column added since are read as
/// the table's current schema.
pub fn compact_data_files(
    table_dir: &Path,
    table: &str,
    day: &str,
    inputs: &[String],
    opts: &ParquetOptions,
) -> Result<Option<DataFile>> {
    let layout = layout(table)?;
    if NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_or(true, |d| d.format("%Y-%m-%d").to_string() != day)
    {
        return Err(invalid(format!("{day:?} is not a day (YYYY-MM-DD)")));
    }
    let row_group_rows = opts.row_group_rows.max(1);
    let props = writer_properties(table, &layout, opts, row_group_rows)?;
    let mut out: Option<DataFileWriter> = None;
    let mut pending: VecDeque<RecordBatch> = VecDeque::new();
    let mut pending_rows = 0;
    for input in inputs {
        let path = Path::new(input);
        if !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(invalid(format!(
                "{input:?} is not a path inside the table directory"
            )));
        }
        let file = File::open(table_dir.join(path))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
            file.try_clone()?,
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
        )?;
        let meta = Arc::clone(builder.metadata());
        let (copy, decode): (Vec<usize>, Vec<usize>) = (0..meta.num_row_groups())
            .partition(|&rg| meta.row_group(rg).num_rows() as usize >= opts.copy_row_group_rows);
        let (copy, decode) = match copyable(table, &meta, builder.schema())? {
            true => (copy, decode),
            false => (Vec::new(), (0..meta.num_row_groups()).collect()),
        };
        for rg in copy {
            output(&mut out, table_dir, day, &layout, &props)?
                .append_row_group(&file, &meta, rg)?;
        }
        if decode.is_empty() {
            continue;
        }
        let reader = builder
            .with_row_groups(decode)
            .with_batch_size(READ_BATCH_ROWS)
            .build()?;
        for batch in reader {
            let batch = conform(batch?, &layout.schema, input)?;
            pending_rows += batch.num_rows();
            pending.push_back(batch);
            while pending_rows >= row_group_rows {
                let chunk = take_rows(&mut pending, row_group_rows);
                pending_rows -= row_group_rows;
                write_sorted(&mut out, table_dir, day, &layout, &props, chunk)?;
            }
        }
    }
    let rest: Vec<RecordBatch> = pending.into_iter().collect();
    write_sorted(&mut out, table_dir, day, &layout, &props, rest)?;
    out.map(DataFileWriter::finish).transpose()
}

/// Sorts `batches` and appends them to the output file, which is created on the first rows.
fn write_sorted(
    out: &mut Option<DataFileWriter>,
    table_dir: &Path,
    day: &str,
    layout: &Layout,
    props: &WriterProperties,
    batches: Vec<RecordBatch>,
) -> Result<()> {
    // The days sort_rows finds are ignored: the rows stay in the inputs' partition.
    let Some((sorted, _)) = sort_rows(layout, &batches, Vec::new())? else {
        return Ok(());
    };
    output(out, table_dir, day, layout, props)?.write(&sorted)
}

/// The output file, created on first use.
fn output<'a>(
    out: &'a mut Option<DataFileWriter>,
    table_dir: &Path,
    day: &str,
    layout: &Layout,
    props: &WriterProperties,
) -> Result<&'a mut DataFileWriter> {
    Ok(match out {
        Some(f) => f,
        None => out.insert(DataFileWriter::create(
            table_dir,
            day,
            &layout.schema,
            props.clone(),
        )?),
    })
}

/// The first `rows` rows of `pending` (which holds at least that many), taken off it.
fn take_rows(pending: &mut VecDeque<RecordBatch>, rows: usize) -> Vec<RecordBatch> {
    let mut chunk = Vec::new();
    let mut left = rows;
    while left > 0 {
        let Some(batch) = pending.pop_front() else {
            break;
        };
        if batch.num_rows() <= left {
            left -= batch.num_rows();
            chunk.push(batch);
        } else {
            chunk.push(batch.slice(0, left));
            pending.push_front(batch.slice(left, batch.num_rows() - left));
            left = 0;
        }
    }
    chunk
}

/// `batch`, read from `input`, with exactly the columns and types of `schema`: columns
/// cast where only names of nested fields differ, missing nullable columns as nulls.
fn conform(batch: RecordBatch, schema: &SchemaRef, input: &str) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch);
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Ok(Arc::clone(c)),
            Some(c) => Ok(arrow_cast::cast(c, field.data_type())?),
            None if field.is_nullable() => Ok(new_null_array(field.data_type(), batch.num_rows())),
            None => Err(invalid(format!(
                "data file {input} has no column {}",
                field.name()
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

fn invalid(message: String) -> crate::error::Error {
    ArrowError::InvalidArgumentError(message).into()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;

    use arrow_array::cast::AsArray;
    use arrow_array::ArrayRef;
    use arrow_ord::ord::make_comparator;
    use arrow_schema::{DataType, Field, Schema, SortOptions};
    use parquet::arrow::ArrowWriter;
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::SerializedFileReader;

    use super::*;
    use crate::parquet_files::tests::{read, spans_batch, strings};
    use crate::parquet_files::write_data_files;
    use crate::schema::{col, LOGS, SPANS};
    use crate::test_support::{reader_with_bloom_filters, TempDir};

    fn day_of(file: &DataFile) -> String {
        file.partition_values[0].1.clone()
    }

    /// Flushes each of `batches` into `dir`; returns the files of the first day, in order.
    fn flush_each(dir: &Path, batches: &[RecordBatch], opts: &ParquetOptions) -> Vec<DataFile> {
        let files: Vec<DataFile> = batches
            .iter()
            .flat_map(|b| write_data_files(dir, SPANS, std::slice::from_ref(b), &[], opts).unwrap())
            .collect();
        let first = files.iter().map(day_of).min().unwrap();
        files.into_iter().filter(|f| day_of(f) == first).collect()
    }

    /// Flushes the slices of `batch` between consecutive `cuts`, one flush each; returns
    /// the files of the first day, in order.
    fn flush_cuts(
        dir: &Path,
        batch: &RecordBatch,
        cuts: &[usize],
        opts: &ParquetOptions,
    ) -> Vec<DataFile> {
        let slices: Vec<RecordBatch> = cuts
            .windows(2)
            .map(|w| batch.slice(w[0], w[1] - w[0]))
            .collect();
        flush_each(dir, &slices, opts)
    }

    /// The span ids of `batch`, sorted.
    fn span_ids(batch: &RecordBatch) -> Vec<String> {
        let mut ids = strings(batch, col::SPAN_ID);
        ids.sort();
        ids
    }

    fn paths(files: &[DataFile]) -> Vec<String> {
        files.iter().map(|f| f.path.clone()).collect()
    }

    #[test]
    fn compacted_files_hold_what_one_flush_of_all_the_rows_would() {
        // Three flushes of slices of one batch; the batch crosses midnight, so each flush
        // writes a file for each of two days. The first day's three files compacted are
        // one flush of the whole batch: the same rows in the same order, the same stats.
        let batch = spans_batch(300);
        let dir = TempDir::new("compact-one-flush");
        let opts = ParquetOptions::default();
        let slices = [
            batch.slice(0, 700),
            batch.slice(700, 1),
            batch.slice(701, 799),
        ];
        let inputs = flush_each(&dir.0, &slices, &opts);
        assert_eq!(inputs.len(), 3);
        let day = day_of(&inputs[0]);

        let out = compact_data_files(&dir.0, SPANS, &day, &paths(&inputs), &opts)
            .unwrap()
            .unwrap();
        assert_eq!(out.partition_values, inputs[0].partition_values);
        assert!(out.path.starts_with(&format!("day={day}/part-")));
        assert_eq!(out.rows, inputs.iter().map(|f| f.rows).sum::<u64>());
        assert_eq!(out.size, fs::metadata(dir.0.join(&out.path)).unwrap().len());
        for input in &inputs {
            assert!(dir.0.join(&input.path).exists(), "inputs stay");
        }

        let whole = TempDir::new("compact-whole");
        let want = write_data_files(&whole.0, SPANS, &[batch], &[], &opts).unwrap();
        let want = want.iter().find(|f| day_of(f) == day).unwrap();
        let got = read(&dir.0.join(&out.path));
        assert_eq!(got.columns(), read(&whole.0.join(&want.path)).columns());
        assert_eq!(out.stats_json, want.stats_json);
        assert_eq!(out.rows, want.rows);
    }

    #[test]
    fn rows_go_out_in_full_sorted_row_groups_whatever_the_input_sizes() {
        // 1,000 spans, all before midnight.
        let batch = spans_batch(200);
        let dir = TempDir::new("compact-row-groups");
        let opts = ParquetOptions {
            row_group_rows: 250,
            ..Default::default()
        };
        let cuts = [0, 1, 101, 434, 634, 900, batch.num_rows()];
        let inputs = flush_cuts(&dir.0, &batch, &cuts, &opts);
        assert_eq!(inputs.len(), 6);
        let rows: u64 = inputs.iter().map(|f| f.rows).sum();
        let day = day_of(&inputs[0]);
        let out = compact_data_files(&dir.0, SPANS, &day, &paths(&inputs), &opts)
            .unwrap()
            .unwrap();
        assert_eq!(out.rows, rows);

        let path = dir.0.join(&out.path);
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let sizes: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        let full = rows as usize / 250;
        assert_eq!(
            sizes.len(),
            full + usize::from(!rows.is_multiple_of(250)),
            "{sizes:?}"
        );
        assert!(sizes[..full].iter().all(|&n| n == 250), "{sizes:?}");

        // Each row group is in the layout's order (by service, each trace's spans
        // together); together they hold every input span.
        let got = read(&path);
        let services = got.column_by_name(col::SERVICE_NAME).unwrap();
        let compare =
            make_comparator(services.as_ref(), services.as_ref(), SortOptions::default()).unwrap();
        let traces = strings(&got, col::TRACE_ID);
        for start in (0..got.num_rows()).step_by(250) {
            let end = (start + 250).min(got.num_rows());
            for row in start + 1..end {
                assert!(!compare(row - 1, row).is_gt(), "row {row} out of order");
            }
            let mut seen = BTreeSet::new();
            let mut group = traces[start..end].to_vec();
            group.dedup();
            assert!(group.iter().all(|t| seen.insert(t)), "a trace cut in two");
        }
        let mut want: Vec<String> = inputs
            .iter()
            .flat_map(|f| span_ids(&read(&dir.0.join(&f.path))))
            .collect();
        want.sort();
        assert_eq!(span_ids(&got), want);
    }

    #[test]
    fn large_row_groups_of_this_writers_files_are_copied_as_they_are() {
        // Flushes with row groups of 250 rows and a remainder each; row groups of 100 rows
        // or more are copied, pages, bloom filter and page index; the remainders merged.
        let batch = spans_batch(200);
        let dir = TempDir::new("compact-copy");
        let opts = ParquetOptions {
            row_group_rows: 250,
            copy_row_group_rows: 100,
            ..Default::default()
        };
        let cuts = [0, 330, 360, 700, batch.num_rows()];
        let inputs = flush_cuts(&dir.0, &batch, &cuts, &opts);
        let day = day_of(&inputs[0]);
        let copied = compact_data_files(&dir.0, SPANS, &day, &paths(&inputs), &opts)
            .unwrap()
            .unwrap();
        let merged = compact_data_files(
            &dir.0,
            SPANS,
            &day,
            &paths(&inputs),
            &ParquetOptions {
                copy_row_group_rows: usize::MAX,
                ..opts.clone()
            },
        )
        .unwrap()
        .unwrap();
        // The same Delta statistics either way (no floats, no long strings here).
        assert_eq!(copied.stats_json, merged.stats_json);
        assert_eq!(copied.rows, merged.rows);

        let open = |path: &str| reader_with_bloom_filters(File::open(dir.0.join(path)).unwrap());
        let out = open(&copied.path);
        let sizes: Vec<i64> = out
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        // Inputs of 330, 30, 340, 300 rows: row groups 250 + 80, 30, 250 + 90, 250 + 50.
        // Copied: the three 250s; merged into a fourth: 80 + 30 + 90 + 50.
        assert_eq!(sizes, [250, 250, 250, 250], "{sizes:?}");
        assert_eq!(
            span_ids(&read(&dir.0.join(&copied.path))),
            span_ids(&read(&dir.0.join(&merged.path)))
        );

        // The first row group is the first input's first one, byte for byte: same pages,
        // a bloom filter that finds its traces, and a page index.
        let input = open(&inputs[0].path);
        let (a, b) = (out.metadata().row_group(0), input.metadata().row_group(0));
        let trace_col = crate::schema::spans_schema()
            .index_of(col::TRACE_ID)
            .unwrap();
        let bytes = |path: &str, c: &parquet::file::metadata::ColumnChunkMetaData| {
            let (start, len) = c.byte_range();
            fs::read(dir.0.join(path)).unwrap()[start as usize..(start + len) as usize].to_vec()
        };
        for c in 0..a.num_columns() {
            assert_eq!(
                bytes(&copied.path, a.column(c)),
                bytes(&inputs[0].path, b.column(c))
            );
        }
        let bloom = out.get_row_group(0).unwrap();
        let bloom = bloom.get_column_bloom_filter(trace_col).unwrap();
        let first = read(&dir.0.join(&copied.path)).slice(0, 250);
        assert!(strings(&first, col::TRACE_ID)
            .iter()
            .all(|id| bloom.check(id.as_str())));
        assert!(out.metadata().offset_index().is_some());
        assert!(out.metadata().column_index().is_some());
    }

    /// `data_type` with the children of maps and lists named as delta-rs's writer
    /// names them (`key_value`, `element`).
    fn delta_rs_names(data_type: &DataType) -> DataType {
        let rename = |f: &Field, name: &str| {
            Arc::new(Field::new(
                name,
                delta_rs_names(f.data_type()),
                f.is_nullable(),
            ))
        };
        match data_type {
            DataType::Map(entries, sorted) => DataType::Map(rename(entries, "key_value"), *sorted),
            DataType::List(item) => DataType::List(rename(item, "element")),
            DataType::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|f| rename(f, f.name()))
                    .collect::<Vec<_>>()
                    .into(),
            ),
            other => other.clone(),
        }
    }

    #[test]
    fn files_of_another_writer_are_read_as_the_tables_schema() {
        // One input as delta-rs's optimize wrote them (other child names, no aftershock
        // metadata), one flush: the compacted file has the table's own schema.
        let batch = spans_batch(60);
        let dir = TempDir::new("compact-foreign");
        // Any row group of this writer's would be copied; the other writer's are not.
        let opts = ParquetOptions {
            copy_row_group_rows: 1,
            ..Default::default()
        };
        let flushed = flush_each(&dir.0, &[batch.slice(0, 100)], &opts);
        let day = day_of(&flushed[0]);
        let theirs = batch.slice(100, 150);
        let fields: Vec<Field> = theirs
            .schema()
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), delta_rs_names(f.data_type()), f.is_nullable()))
            .collect();
        let columns: Vec<ArrayRef> = theirs
            .columns()
            .iter()
            .zip(&fields)
            .map(|(c, f)| arrow_cast::cast(c, f.data_type()).unwrap())
            .collect();
        let theirs = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        assert_ne!(theirs.schema().fields(), batch.schema().fields());
        let foreign = format!("day={day}/part-00000-delta-rs.zstd.parquet");
        let file = File::create(dir.0.join(&foreign)).unwrap();
        let mut writer = ArrowWriter::try_new(file, theirs.schema(), None).unwrap();
        writer.write(&theirs).unwrap();
        writer.close().unwrap();

        let mut inputs = paths(&flushed);
        inputs.push(foreign);
        let out = compact_data_files(&dir.0, SPANS, &day, &inputs, &opts)
            .unwrap()
            .unwrap();
        let got = read(&dir.0.join(&out.path));
        assert_eq!(got.schema().fields(), batch.schema().fields());
        assert_eq!(got.num_rows(), 100 + 150);
        let attributes = got.column_by_name(col::SPAN_ATTRIBUTES).unwrap().as_map();
        let from_theirs = strings(&read(&dir.0.join(&inputs[1])), col::SPAN_ID);
        let rows: Vec<usize> = (0..got.num_rows())
            .filter(|&r| from_theirs.contains(&strings(&got, col::SPAN_ID)[r]))
            .collect();
        assert_eq!(rows.len(), 150);
        assert!(rows.iter().any(|&r| attributes.value_length(r) > 0));
    }

    #[test]
    fn rows_stay_in_the_partition_they_were_in() {
        // Log records with no time at all go to the day they were written; compacted on a
        // later day, they stay in that partition.
        use crate::decode::{decode_logs, DecodeOptions};
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        use prost::Message;

        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(); 3],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let batch = decode_logs(&req.encode_to_vec(), &DecodeOptions::default())
            .unwrap()
            .batch;
        let dir = TempDir::new("compact-day");
        let opts = ParquetOptions::default();
        let mut inputs = Vec::new();
        fs::create_dir_all(dir.0.join("day=2020-01-01")).unwrap();
        for _ in 0..2 {
            let [f] = &write_data_files(&dir.0, LOGS, std::slice::from_ref(&batch), &[], &opts)
                .unwrap()[..]
            else {
                panic!("one file a flush");
            };
            let moved = format!("day=2020-01-01/{}", f.path.split_once('/').unwrap().1);
            fs::rename(dir.0.join(&f.path), dir.0.join(&moved)).unwrap();
            inputs.push(moved);
        }
        let out = compact_data_files(&dir.0, LOGS, "2020-01-01", &inputs, &opts)
            .unwrap()
            .unwrap();
        assert_eq!(out.partition_values, [("day".into(), "2020-01-01".into())]);
        assert!(out.path.starts_with("day=2020-01-01/"));
        assert_eq!(read(&dir.0.join(&out.path)).num_rows(), 6);
    }

    #[test]
    fn bad_requests_are_errors_and_write_nothing() {
        let dir = TempDir::new("compact-bad");
        let opts = ParquetOptions::default();
        let inputs = flush_each(&dir.0, &[spans_batch(10)], &opts);
        let day = day_of(&inputs[0]);
        let good = paths(&inputs);
        let files_before = fs::read_dir(dir.0.join(format!("day={day}")))
            .unwrap()
            .count();
        fs::write(dir.0.join(format!("day={day}/not-parquet")), b"garbage").unwrap();
        let cases: [(&str, &str, Vec<String>, &str); 6] = [
            (SPANS, "2024-13-01", good.clone(), "is not a day"),
            (SPANS, "../2024-02-29", good.clone(), "is not a day"),
            (
                SPANS,
                &day,
                vec!["../escape.parquet".into()],
                "not a path inside",
            ),
            (SPANS, &day, vec!["/etc/passwd".into()], "not a path inside"),
            (
                SPANS,
                &day,
                vec![format!("day={day}/not-parquet")],
                "arquet",
            ),
            ("markers", &day, good.clone(), "no Parquet layout"),
        ];
        for (table, day, inputs, want) in cases {
            let err = compact_data_files(&dir.0, table, day, &inputs, &opts).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
        let missing = vec![format!("day={day}/part-missing.zstd.parquet")];
        assert!(compact_data_files(&dir.0, SPANS, &day, &missing, &opts).is_err());
        // A failed compaction leaves no file behind (its temp file is removed).
        assert_eq!(
            fs::read_dir(dir.0.join(format!("day={day}")))
                .unwrap()
                .count(),
            files_before + 1
        );
        // Inputs with no rows: no file at all.
        let empty = RecordBatch::new_empty(crate::schema::spans_schema());
        let path = format!("day={day}/part-empty.zstd.parquet");
        let mut writer = ArrowWriter::try_new(
            File::create(dir.0.join(&path)).unwrap(),
            empty.schema(),
            None,
        )
        .unwrap();
        writer.write(&empty).unwrap();
        writer.close().unwrap();
        assert_eq!(
            compact_data_files(&dir.0, SPANS, &day, &[path], &opts).unwrap(),
            None
        );
    }
}
