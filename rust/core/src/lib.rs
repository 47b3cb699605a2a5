//! aftershock's engine, in the order data flows through it:
//! [`decode`] (OTLP bytes -> Arrow), then [`rollup`] (RED metrics per minute),
//! [`wal`] (requests made durable before they are acknowledged) and the lake writer.
//! Nothing here knows about Python; `rust/python` is a thin binding layer.

pub mod compaction;
pub mod decode;
pub mod error;
pub mod lake;
pub mod parquet_files;
mod parquet_strings;
mod prefetch;
pub mod rollup;
pub mod schema;
pub mod wal;

#[cfg(test)]
mod test_support;

pub use decode::{
    decode_logs, decode_logs_json, decode_traces, decode_traces_json, Contexts, DecodeOptions,
    DecodeStats, Decoded,
};
pub use error::{DecodeError, Error};
