//! The fuzz targets' checks (`fuzz/src/lib.rs`) over the committed seed corpus
//! (`fuzz/corpus/<target>/`) and every input a fuzzer found crashing
//! (`fuzz/regressions/<target>/`), in the normal test run: a fixed crash stays
//! fixed without libFuzzer or a nightly flag.

// Test code: a failed check is supposed to panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../fuzz/src/lib.rs"]
mod checks;

use std::fs;
use std::path::{Path, PathBuf};

use aftershock_core::schema::{logs_schema, spans_schema};
use aftershock_core::{decode_logs, decode_logs_json, decode_traces, decode_traces_json};
use arrow_schema::SchemaRef;
use checks::Decoder;

/// Every seed and regression input of `target`, by path.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut found = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        for entry in dir {
            let path = entry.unwrap().path();
            let data = fs::read(&path).unwrap();
            found.push((path, data));
        }
    }
    found.sort();
    assert!(!found.is_empty(), "no inputs for {target} under {fuzz:?}");
    found
}

fn replay(target: &str, decode: Decoder, schema: SchemaRef) {
    for (path, data) in inputs(target) {
        // Shown only if this input fails.
        eprintln!("{}", path.display());
        checks::check_decoder(decode, &schema, &data);
    }
}

#[test]
fn decode_traces_inputs() {
    replay("decode_traces", decode_traces, spans_schema());
}

#[test]
fn decode_logs_inputs() {
    replay("decode_logs", decode_logs, logs_schema());
}

#[test]
fn decode_traces_json_inputs() {
    replay("decode_traces_json", decode_traces_json, spans_schema());
}

#[test]
fn decode_logs_json_inputs() {
    replay("decode_logs_json", decode_logs_json, logs_schema());
}

#[test]
fn wal_replay_inputs() {
    let dir = std::env::temp_dir().join(format!("aftershock-fuzz-wal-test-{}", std::process::id()));
    for (path, data) in inputs("wal_replay") {
        eprintln!("{}", path.display());
        let _ = fs::remove_dir_all(&dir);
        checks::check_wal_segment(&dir, &data);
    }
    fs::remove_dir_all(&dir).unwrap();
}
