//! The crate's one error type. The Python bindings map each variant to an
//! `aftershock.errors` exception in exactly one place.

use std::fmt;

/// Malformed input: where in the message it went wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset into the whole request at which the problem was found.
    pub offset: usize,
    /// Field path from the request root, e.g. `resource_spans[0].scope_spans[1].spans[3].attributes[2]`.
    pub path: String,
    pub message: String,
}

impl DecodeError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        DecodeError {
            offset,
            path: String::new(),
            message: message.into(),
        }
    }

    /// Prefixes the path with the enclosing field; called while the error bubbles up,
    /// so the happy path never builds paths.
    pub(crate) fn within(mut self, field: &str, index: Option<usize>) -> Self {
        let seg = match index {
            Some(i) => format!("{field}[{i}]"),
            None => field.to_string(),
        };
        self.path = if self.path.is_empty() {
            seg
        } else {
            format!("{seg}.{}", self.path)
        };
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{} at byte {}", self.message, self.offset)
        } else {
            write!(
                f,
                "{} at byte {} ({})",
                self.message, self.offset, self.path
            )
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
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
