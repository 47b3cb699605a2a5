//! `aftershock._core`: the Python face of `aftershock-core`. Every call goes
//! through [`run`], which releases the GIL and maps errors in one place.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3_arrow::PyRecordBatch;

use aftershock_core::{schema, DecodeOptions, Decoded};

mod errors;
mod lake;

/// Decoding allocates and frees large column buffers per request; mimalloc keeps
/// them warm instead of returning them to the kernel (page faults were ~10% of a decode).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs `f` without the GIL and maps its error to an `aftershock.errors` exception.
fn run<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: Send + FnOnce() -> aftershock_core::error::Result<T>,
{
    py.detach(f).map_err(|e| errors::to_pyerr(py, e))
}

/// Decode counters as a plain dict (`accepted`, `rejected`, `rejection`, ...).
fn stats_dict(d: &Decoded) -> HashMap<&'static str, Option<String>> {
    let s = &d.stats;
    HashMap::from([
        ("accepted", Some(s.accepted.to_string())),
        ("rejected", Some(s.rejected.to_string())),
        ("rejection", s.error_message()),
        ("invalid_utf8", Some(s.invalid_utf8.to_string())),
        ("truncated_values", Some(s.truncated_values.to_string())),
        ("depth_capped", Some(s.depth_capped.to_string())),
        ("negative_durations", Some(s.negative_durations.to_string())),
    ])
}

fn options(max_depth: usize, max_value_bytes: usize) -> DecodeOptions {
    DecodeOptions {
        max_depth,
        max_value_bytes,
        ..DecodeOptions::default()
    }
}

type DecodeResult = (PyRecordBatch, HashMap<&'static str, Option<String>>);

/// A Python function for one decoder of `aftershock_core`: bytes and limits in,
/// the batch and decode counters out.
macro_rules! decoder {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[pyfunction]
        #[pyo3(signature = (data, /, max_depth = 64, max_value_bytes = 8192))]
        fn $name(
            py: Python<'_>,
            data: &[u8],
            max_depth: usize,
            max_value_bytes: usize,
        ) -> PyResult<DecodeResult> {
            let opts = options(max_depth, max_value_bytes);
            let d = run(py, || aftershock_core::$name(data, &opts))?;
            let stats = stats_dict(&d);
            Ok((PyRecordBatch::new(d.batch), stats))
        }
    };
}

decoder!(
    /// Decodes an `ExportTraceServiceRequest`; returns the `spans` batch and decode counters.
    decode_traces
);
decoder!(
    /// Decodes an `ExportLogsServiceRequest`; returns the `logs` batch and decode counters.
    decode_logs
);
decoder!(
    /// Decodes an OTLP/JSON `ExportTraceServiceRequest`; the same result as `decode_traces`.
    decode_traces_json
);
decoder!(
    /// Decodes an OTLP/JSON `ExportLogsServiceRequest`; the same result as `decode_logs`.
    decode_logs_json
);

/// The Arrow schema of a table by name (`spans`, `logs`, `rollups`, `markers`), as a PyCapsule-capable object.
#[pyfunction]
fn table_schema(name: &str) -> PyResult<pyo3_arrow::PySchema> {
    let s = match name {
        schema::SPANS => schema::spans_schema(),
        schema::LOGS => schema::logs_schema(),
        schema::ROLLUPS => schema::rollups_schema(),
        schema::MARKERS => schema::markers_schema(),
        other => {
            return Err(pyo3::exceptions::PyKeyError::new_err(format!(
                "no table named {other:?}"
            )))
        }
    };
    Ok(pyo3_arrow::PySchema::new(s))
}

/// The columns of a lake table that its data files store without a dictionary, each with
/// its Parquet encoding (`PLAIN`, `DELTA_BINARY_PACKED`).
#[pyfunction]
fn plain_columns(name: &str) -> PyResult<Vec<(&'static str, String)>> {
    let columns = aftershock_core::parquet_files::plain_columns(name)
        .map_err(|e| pyo3::exceptions::PyKeyError::new_err(e.to_string()))?;
    Ok(columns
        .into_iter()
        .map(|(name, encoding)| (name, format!("{encoding:?}")))
        .collect())
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decode_traces, m)?)?;
    m.add_function(wrap_pyfunction!(decode_logs, m)?)?;
    m.add_function(wrap_pyfunction!(decode_traces_json, m)?)?;
    m.add_function(wrap_pyfunction!(decode_logs_json, m)?)?;
    m.add_function(wrap_pyfunction!(table_schema, m)?)?;
    m.add_function(wrap_pyfunction!(plain_columns, m)?)?;
    m.add_function(wrap_pyfunction!(lake::compact_data_files, m)?)?;
    m.add(
        "TABLES",
        (
            schema::SPANS,
            schema::LOGS,
            schema::ROLLUPS,
            schema::MARKERS,
        ),
    )?;
    m.add("LAKE_TABLES", aftershock_core::lake::TABLES.to_vec())?;
    m.add("ROLLUP_SQL_MACROS", aftershock_core::rollup::sql_macros())?;
    m.add_class::<lake::RawLake>()?;
    Ok(())
}
