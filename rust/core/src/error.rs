//! The crate's one error type. The Python bindings map each variant to an
//! `aftershock.errors` exception in exactly one place.

use std::fmt;

/// Malformed input: where in the message it went wrong, and how. Boxed so that
/// the decoder's hot `Result`s stay two words wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(Box<Detail>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Detail {
    offset: usize,
    path: String,
    message: String,
}

impl DecodeError {
    #[cold]
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        DecodeError(Box::new(Detail {
            offset,
            path: String::new(),
            message: message.into(),
        }))
    }

    /// Byte offset into the whole request at which the problem was found.
    pub fn offset(&self) -> usize {
        self.0.offset
    }

    /// Field path from the request root, e.g. `resource_spans[0].scope_spans[1].spans[3].attributes[2]`.
    pub fn path(&self) -> &str {
        &self.0.path
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Prefixes the path with the enclosing field; called while the error bubbles up,
    /// so the happy path never builds paths.
    #[cold]
    pub(crate) fn within(mut self, field: &str, index: Option<usize>) -> Self {
        let seg = match index {
            Some(i) => format!("{field}[{i}]"),
            None => field.to_string(),
        };
        let d = &mut self.0;
        d.path = if d.path.is_empty() {
            seg
        } else {
            format!("{seg}.{}", d.path)
        };
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        if d.path.is_empty() {
            write!(f, "{} at byte {}", d.message, d.offset)
        } else {
            write!(f, "{} at byte {} ({})", d.message, d.offset, d.path)
        }
    }
}

impl std::error::Error for DecodeError {}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid OTLP message: {0}")]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("write-ahead log: {0}")]
    Wal(#[from] WalError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The writer's memory budget is full: the caller should retry after the delay.
    #[error("busy: buffered data is waiting for a flush; retry after {retry_after_ms} ms")]
    Busy { retry_after_ms: u64 },
    /// A broken invariant inside aftershock, not the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the same call may succeed later without anyone fixing anything:
    /// a full disk or quota, an interrupted or timed-out call. The WAL is left
    /// consistent after these, so the receiver can answer "unavailable, retry".
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Io(e) => retryable_io(e),
            // The Parquet writer wraps the I/O errors of the file it writes.
            Error::Parquet(parquet::errors::ParquetError::External(e)) => {
                e.downcast_ref::<std::io::Error>().is_some_and(retryable_io)
            }
            Error::Busy { .. } => true,
            _ => false,
        }
    }
}

/// I/O errors that go away by themselves (space freed, load gone), unlike a bad path.
fn retryable_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        StorageFull | QuotaExceeded | Interrupted | WouldBlock | TimedOut | ResourceBusy
    )
}

/// What the write-ahead log refuses, beyond plain I/O errors.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("a record of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    /// An I/O failure left a partial write that could not be cut off; see
    /// [`crate::wal`] for why appending on stops.
    #[error("appends are refused until the log is reopened: {0}")]
    Poisoned(String),
    #[error("record {seq} in {} changed on disk after recovery checked it", path.display())]
    Changed { seq: u64, path: std::path::PathBuf },
    #[error("{} is in use by another process", .0.display())]
    Locked(std::path::PathBuf),
}
