//! `RawLake`: the Rust lake writer for `aftershock.lake.LakeWriter`, which owns the
//! user-facing API and the Delta commits.

use std::collections::HashMap;
use std::path::Path;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use aftershock_core::compaction;
use aftershock_core::lake::{IngestOutcome, Lake, LakeOptions, PendingCommit};
use aftershock_core::parquet_files::{DataFile, ParquetOptions};
use aftershock_core::wal::Durability;

use crate::run;
use aftershock_core::Error;
use std::sync::RwLock;

#[pyclass(frozen, module = "aftershock._core")]
pub struct RawLake {
    /// `None` once closed: the WAL and its lock are released at close, not whenever
    /// Python's garbage collector gets to the object.
    lake: RwLock<Option<Lake>>,
}

impl RawLake {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl Send + FnOnce(&Lake) -> aftershock_core::error::Result<T>,
    ) -> PyResult<T> {
        run(py, || {
            let guard = self
                .lake
                .read()
                .map_err(|_| Error::Internal("lake lock poisoned".into()))?;
            let lake = guard
                .as_ref()
                .ok_or_else(|| Error::Internal("the lake writer is closed".into()))?;
            f(lake)
        })
    }
}

type IngestFn = fn(&Lake, &[u8]) -> aftershock_core::error::Result<IngestOutcome>;

impl RawLake {
    fn ingest(&self, py: Python<'_>, data: &[u8], ingest: IngestFn) -> PyResult<Ingested> {
        let o = self.with(py, |l| ingest(l, data))?;
        let s = &o.stats;
        let repairs = HashMap::from([
            ("invalid_utf8", s.invalid_utf8),
            ("truncated_values", s.truncated_values),
            ("depth_capped", s.depth_capped),
            ("negative_durations", s.negative_durations),
        ]);
        Ok((o.accepted, o.rejected, s.error_message(), repairs))
    }
}

/// A written data file as the dict `lake.py` turns into a Delta `add` action.
fn file_dict<'py>(py: Python<'py>, f: &DataFile) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", &f.path)?;
    d.set_item("size", f.size)?;
    d.set_item("partition_values", f.partition_values.clone())?;
    d.set_item("rows", f.rows)?;
    d.set_item("stats_json", &f.stats_json)?;
    d.set_item("modification_time_ms", f.modification_time_ms)?;
    Ok(d)
}

fn commit_dict<'py>(py: Python<'py>, p: &PendingCommit) -> PyResult<Bound<'py, PyDict>> {
    let files = PyList::empty(py);
    for f in &p.files {
        files.append(file_dict(py, f)?)?;
    }
    let d = PyDict::new(py);
    d.set_item("table", p.table)?;
    d.set_item("seq", p.seq)?;
    d.set_item("rows", p.rows)?;
    d.set_item("files", files)?;
    Ok(d)
}

/// Rewrites the data files `paths` (relative to `table_dir`, all in partition
/// `day=<day>` of lake table `table`) as one new file in that partition, with the
/// encodings and statistics of a flush; returns it as a dict like a flush's files, or
/// None when they hold no rows. The inputs stay; committing the swap is the caller's job.
/// Row groups of `copy_row_group_rows` rows or more (by default the core's threshold) are
/// copied as they are.
#[pyfunction]
#[pyo3(signature = (table_dir, table, day, paths, *, copy_row_group_rows = None))]
pub fn compact_data_files<'py>(
    py: Python<'py>,
    table_dir: &str,
    table: &str,
    day: &str,
    paths: Vec<String>,
    copy_row_group_rows: Option<usize>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let mut opts = ParquetOptions::default();
    if let Some(rows) = copy_row_group_rows {
        opts.copy_row_group_rows = rows;
    }
    let file = run(py, || {
        compaction::compact_data_files(Path::new(table_dir), table, day, &paths, &opts)
    })?;
    file.map(|f| file_dict(py, &f)).transpose()
}

/// Accepted and rejected records, the partial-success message, and the values repaired on
/// the way in (by kind), for the receiver's metrics.
type Ingested = (u64, u64, Option<String>, HashMap<&'static str, u64>);

#[pymethods]
impl RawLake {
    /// Opens the lake with its WAL under `data_dir` and its tables under `tables_dir`,
    /// replaying WAL records after each table's committed sequence. Returns the lake and a
    /// dict of what replay found.
    #[staticmethod]
    fn open(
        py: Python<'_>,
        data_dir: String,
        tables_dir: String,
        durability: &str,
        max_buffer_bytes: usize,
        committed: HashMap<String, u64>,
    ) -> PyResult<(RawLake, HashMap<&'static str, u64>)> {
        let durability = match durability {
            "fsync" => Durability::Fsync,
            "os" => Durability::Os,
            other => {
                return Err(PyValueError::new_err(format!(
                    "durability must be 'fsync' or 'os', not {other:?}"
                )))
            }
        };
        let mut opts = LakeOptions::new(data_dir);
        opts.tables_dir = tables_dir.into();
        opts.durability = durability;
        opts.max_buffer_bytes = max_buffer_bytes;
        opts.max_flush_bytes = (max_buffer_bytes / 4).max(1);
        opts.committed = committed;
        let (lake, report) = run(py, || Lake::open(opts))?;
        let report = HashMap::from([
            ("replayed_records", report.replayed_records),
            ("replayed_rows", report.replayed_rows),
            ("torn_tail_bytes", report.torn_tail_bytes),
            ("quarantined_records", report.quarantined_records),
            ("stale_temp_files", report.stale_temp_files as u64),
        ]);
        Ok((
            RawLake {
                lake: RwLock::new(Some(lake)),
            },
            report,
        ))
    }

    /// `(accepted, rejected, error_message)` once the request is durable.
    fn ingest_traces(&self, py: Python<'_>, data: &[u8]) -> PyResult<Ingested> {
        self.ingest(py, data, Lake::ingest_traces)
    }

    fn ingest_logs(&self, py: Python<'_>, data: &[u8]) -> PyResult<Ingested> {
        self.ingest(py, data, Lake::ingest_logs)
    }

    /// `ingest_traces` for an OTLP/JSON request.
    fn ingest_traces_json(&self, py: Python<'_>, data: &[u8]) -> PyResult<Ingested> {
        self.ingest(py, data, Lake::ingest_traces_json)
    }

    /// `ingest_logs` for an OTLP/JSON request.
    fn ingest_logs_json(&self, py: Python<'_>, data: &[u8]) -> PyResult<Ingested> {
        self.ingest(py, data, Lake::ingest_logs_json)
    }

    /// Writes buffered rows as Parquet files; one dict per table to commit.
    fn flush<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let pending = self.with(py, |l| l.flush())?;
        pending.iter().map(|p| commit_dict(py, p)).collect()
    }

    /// Reports a successful Delta commit of `table` through WAL sequence `seq`.
    fn committed(&self, py: Python<'_>, table: &str, seq: u64) -> PyResult<()> {
        self.with(py, |l| l.committed(table, seq))
    }

    fn buffered_bytes(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |l| Ok(l.buffered_bytes()))
    }

    fn buffered_age(&self, py: Python<'_>) -> PyResult<f64> {
        self.with(py, |l| Ok(l.buffered_age_secs()))
    }

    fn wal_bytes(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |l| Ok(l.wal_bytes()))
    }

    /// Releases the WAL without flushing; what was acknowledged is replayed on the next open.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        run(py, || {
            let mut guard = self
                .lake
                .write()
                .map_err(|_| Error::Internal("lake lock poisoned".into()))?;
            guard.take();
            Ok(())
        })
    }
}
