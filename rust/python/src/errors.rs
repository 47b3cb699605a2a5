//! The one place where core errors become Python exceptions. The exception
//! classes live in `aftershock/errors.py` so they can inherit from two bases
//! (`DecodeError` is both an `AftershockError` and a `ValueError`).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

use aftershock_core::Error;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let module = ERRORS.get_or_try_init(py, || {
        PyModule::import(py, "aftershock.errors").map(Bound::unbind)
    })?;
    module.bind(py).getattr(name)
}

fn build(py: Python<'_>, err: &Error) -> PyResult<PyErr> {
    let (name, extra): (&str, Vec<(&str, Py<PyAny>)>) = match err {
        Error::Decode(d) => (
            "DecodeError",
            vec![
                ("offset", d.offset().into_pyobject(py)?.into_any().unbind()),
                ("path", d.path().into_pyobject(py)?.into_any().unbind()),
            ],
        ),
        Error::Io(e) => match e.kind() {
            std::io::ErrorKind::NotFound => {
                return Ok(pyo3::exceptions::PyFileNotFoundError::new_err(
                    err.to_string(),
                ))
            }
            std::io::ErrorKind::PermissionDenied => {
                return Ok(pyo3::exceptions::PyPermissionError::new_err(
                    err.to_string(),
                ))
            }
            _ => ("StorageError", vec![]),
        },
        Error::Wal(_) => ("StorageError", vec![]),
        Error::Busy { retry_after_ms } => (
            "BusyError",
            vec![(
                "retry_after_ms",
                retry_after_ms.into_pyobject(py)?.into_any().unbind(),
            )],
        ),
        Error::Arrow(_) | Error::Internal(_) => ("AftershockError", vec![]),
        Error::Parquet(_) => ("StorageError", vec![]),
    };
    let exc = class(py, name)?.call1((err.to_string(),))?;
    // Full disks and the like pass: the receiver turns these into "retry later" answers.
    exc.setattr("retryable", err.is_retryable())?;
    for (k, v) in extra {
        exc.setattr(k, v)?;
    }
    Ok(PyErr::from_value(exc))
}

pub(crate) fn to_pyerr(py: Python<'_>, err: Error) -> PyErr {
    build(py, &err)
        .unwrap_or_else(|e| PyRuntimeError::new_err(format!("{err} (while raising it: {e})")))
}
