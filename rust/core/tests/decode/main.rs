//! The protobuf decoder against a reference: random OTLP requests are built as prost
//! structs (the official `opentelemetry-proto` types), encoded by prost, decoded by
//! `aftershock_core`, and every column of every row is compared with what the prost
//! structs say under the rendering rules (`expect`). Hostile inputs (truncated,
//! mutated, random) must fail cleanly and never panic.
//!
//! Every case is derived from a printed seed. `AFTERSHOCK_TEST_CASES=N` runs N
//! random cases per test instead of the default, for a longer soak.

// Test code: a failed expectation is supposed to panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod actual;
mod differential;
mod encodings;
mod expect;
mod gen;
mod json;
mod malformed;
mod rng;
mod wire;

use std::fmt::Debug;
use std::panic::catch_unwind;

use aftershock_core::schema::{logs_schema, spans_schema};
use aftershock_core::{decode_logs, decode_traces, DecodeOptions, Decoded, Error};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// Random cases per test: the default, or `AFTERSHOCK_TEST_CASES`.
pub fn cases(default: u64) -> u64 {
    std::env::var("AFTERSHOCK_TEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Decodes `bytes` as traces and compares every row with what `req` says.
/// `Err` describes the first difference.
pub fn check_traces(
    bytes: &[u8],
    req: &ExportTraceServiceRequest,
    opts: &DecodeOptions,
) -> Result<(), String> {
    let decoded = decode_traces(bytes, opts).map_err(|e| format!("decode failed: {e}"))?;
    if decoded.batch.schema() != spans_schema() {
        return Err(format!("schema differs: {:#?}", decoded.batch.schema()));
    }
    let (want, rejected) = expect::spans(req, opts.max_value_bytes);
    compare_rows(&want, &actual::spans(&decoded.batch))?;
    if decoded.stats.accepted != want.len() as u64 || decoded.stats.rejected != rejected {
        return Err(format!(
            "stats say accepted {} rejected {}, want {} and {rejected}",
            decoded.stats.accepted,
            decoded.stats.rejected,
            want.len()
        ));
    }
    Ok(())
}

/// The logs counterpart of [`check_traces`].
pub fn check_logs(
    bytes: &[u8],
    req: &ExportLogsServiceRequest,
    opts: &DecodeOptions,
) -> Result<(), String> {
    let decoded = decode_logs(bytes, opts).map_err(|e| format!("decode failed: {e}"))?;
    if decoded.batch.schema() != logs_schema() {
        return Err(format!("schema differs: {:#?}", decoded.batch.schema()));
    }
    let want = expect::logs(req, opts.max_value_bytes);
    compare_rows(&want, &actual::logs(&decoded.batch))?;
    if decoded.stats.accepted != want.len() as u64 || decoded.stats.rejected != 0 {
        return Err(format!(
            "stats say accepted {} rejected {}, want {} and 0",
            decoded.stats.accepted,
            decoded.stats.rejected,
            want.len()
        ));
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
pub enum Signal {
    Traces,
    Logs,
}

/// The decoder's own result, or `Err` describing the panic it raised instead.
pub fn decode(signal: Signal, bytes: &[u8]) -> Result<Result<Decoded, Error>, String> {
    let opts = DecodeOptions::default();
    catch_unwind(|| match signal {
        Signal::Traces => decode_traces(bytes, &opts),
        Signal::Logs => decode_logs(bytes, &opts),
    })
    .map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("panicked ({msg}) on {}", show(bytes))
    })
}

/// Inputs short enough to paste into a reproducer are shown whole.
pub fn show(bytes: &[u8]) -> String {
    if bytes.len() <= 256 {
        format!("{bytes:02x?}")
    } else {
        format!("{} bytes", bytes.len())
    }
}

/// No panic; if prost accepts the bytes, the decoder must agree with it row for row.
pub fn check_against_prost(signal: Signal, bytes: &[u8]) -> Result<bool, String> {
    // Rejecting what prost accepts is checked below; here only a panic is a failure.
    let _ = decode(signal, bytes)?;
    let opts = DecodeOptions::default();
    let accepted = match signal {
        Signal::Traces => match ExportTraceServiceRequest::decode(bytes) {
            Ok(req) => {
                check_traces(bytes, &req, &opts)
                    .map_err(|e| format!("{e}\n  input: {}", show(bytes)))?;
                true
            }
            Err(_) => false,
        },
        Signal::Logs => match ExportLogsServiceRequest::decode(bytes) {
            Ok(req) => {
                check_logs(bytes, &req, &opts)
                    .map_err(|e| format!("{e}\n  input: {}", show(bytes)))?;
                true
            }
            Err(_) => false,
        },
    };
    Ok(accepted)
}

fn compare_rows<T: PartialEq + Debug>(want: &[T], got: &[T]) -> Result<(), String> {
    if want.len() != got.len() {
        return Err(format!("{} rows, want {}", got.len(), want.len()));
    }
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        if w != g {
            return Err(format!("row {i}: {}", first_difference(w, g)));
        }
    }
    Ok(())
}

/// Rows hold 8 KiB strings: show the first differing line of their pretty Debug forms,
/// with the field path leading to it, rather than both rows whole.
fn first_difference<T: Debug>(want: &T, got: &T) -> String {
    let (w, g) = (format!("{want:#?}"), format!("{got:#?}"));
    let (wl, gl): (Vec<&str>, Vec<&str>) = (w.lines().collect(), g.lines().collect());
    let at = wl
        .iter()
        .zip(&gl)
        .position(|(a, b)| a != b)
        .unwrap_or(wl.len().min(gl.len()));
    // The enclosing fields are the nearest less-indented lines above the difference.
    let mut path = Vec::new();
    let mut indent = wl.get(at).map_or(0, |l| l.len() - l.trim_start().len());
    for line in wl[..at].iter().rev() {
        let ind = line.len() - line.trim_start().len();
        if ind < indent {
            path.push(line.trim());
            indent = ind;
        }
    }
    path.reverse();
    // A few lines from the difference on, so that `Some(` is followed by its content.
    let from = |lines: &[&str]| {
        let s: Vec<&str> = lines.iter().skip(at).take(4).map(|l| l.trim()).collect();
        if s.is_empty() {
            "<end>".to_string()
        } else {
            s.join(" ")
        }
    };
    let clip = |s: String| {
        if s.len() > 300 {
            let mut end = 300;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}... ({} bytes)", &s[..end], s.len())
        } else {
            s
        }
    };
    format!(
        "in {}\n  want: {}\n  got:  {}",
        path.join(" "),
        clip(from(&wl)),
        clip(from(&gl))
    )
}
