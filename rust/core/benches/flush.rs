//! The lake's flush alone: decoded span batches -> sorted, encoded, fsynced Parquet files
//! (`parquet_files::write_data_files`), without the WAL, rollups or Delta commits.
//!
//! Reads OTLP trace requests from a directory (`*.pb`, written by
//! `python benches/bench_lake.py --dump DIR`: a directory per kind of request; the lake
//! bench flushes the 24 random ones 12 at a time and the 16 of each other kind at once), decodes
//! them once, then writes them `--flush-every` requests at a time into a temporary table
//! directory, repeatedly, and prints µs per span and spans/s for the flush, best and
//! median over the repetitions. With `--rollups`, each flush also aggregates its spans
//! into `rollups` rows and writes those files, as the lake's flush does
//! (`--rollups-only`: only that, for profiling it). With `--keep OUT`, the last
//! repetition's files stay in `OUT` (for comparing what two builds write) instead of being
//! deleted.
//!
//! `taskset -c 0 cargo bench -p aftershock-core --bench flush -- DIR [--flush-every N] [--reps N] [--rollups | --rollups-only] [--keep OUT]`

use std::time::Instant;

use aftershock_core::parquet_files::{write_data_files, ParquetOptions};
use aftershock_core::rollup::Rollups;
use aftershock_core::schema::{ROLLUPS, SPANS};
use aftershock_core::{decode_traces, Contexts, DecodeOptions};
use arrow_array::RecordBatch;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut dir = None;
    let (mut flush_every, mut reps, mut rollups, mut spans_too) = (4usize, 10usize, false, true);
    let mut keep: Option<std::path::PathBuf> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--flush-every" => flush_every = args.next().ok_or("--flush-every N")?.parse()?,
            "--reps" => reps = args.next().ok_or("--reps N")?.parse()?,
            "--rollups" => rollups = true,
            "--rollups-only" => (rollups, spans_too) = (true, false),
            "--keep" => keep = Some(args.next().ok_or("--keep OUT")?.into()),
            _ => dir = Some(arg),
        }
    }
    let dir = dir.ok_or(
        "usage: flush DIR [--flush-every N] [--reps N] [--rollups | --rollups-only] [--keep OUT]",
    )?;
    let mut paths: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pb"))
        .collect();
    paths.sort();
    // As the lake decodes: each resource's attributes once, in the contexts.
    let opts = DecodeOptions {
        resource_attributes_once: true,
        ..DecodeOptions::default()
    };
    let (mut batches, mut contexts): (Vec<RecordBatch>, Vec<Option<Contexts>>) = (vec![], vec![]);
    for p in &paths {
        let decoded = decode_traces(&std::fs::read(p)?, &opts)?;
        batches.push(decoded.batch);
        contexts.push(Some(decoded.contexts));
    }
    let spans: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let out = std::env::temp_dir().join(format!("aftershock-flush-bench-{}", std::process::id()));
    let mut popts = ParquetOptions::default();
    if let Ok(level) = std::env::var("ZSTD_LEVEL") {
        popts.zstd_level = level.parse()?;
    }
    if let Ok(rows) = std::env::var("ROW_GROUP_ROWS") {
        popts.row_group_rows = rows.parse()?;
    }
    let mut per_span = Vec::new();
    let (mut bytes, mut rollup_bytes) = (0u64, 0u64);
    for rep in 0..reps {
        let out = match &keep {
            Some(keep) if rep + 1 == reps => keep.clone(),
            _ => out.clone(),
        };
        std::fs::create_dir_all(&out)?;
        let t = Instant::now();
        (bytes, rollup_bytes) = (0, 0);
        let every = flush_every.max(1);
        for (group, contexts) in batches.chunks(every).zip(contexts.chunks(every)) {
            if spans_too {
                for f in write_data_files(&out, SPANS, group, contexts, &popts)? {
                    bytes += f.size;
                }
            }
            if rollups {
                let mut r = Rollups::new();
                for (b, c) in group.iter().zip(contexts) {
                    r.add_spans(b, c.as_ref())?;
                }
                for f in write_data_files(&out.join(ROLLUPS), ROLLUPS, &[r.finish()?], &[], &popts)?
                {
                    rollup_bytes += f.size;
                }
            }
        }
        per_span.push(t.elapsed().as_secs_f64() * 1e6 / spans as f64);
        if keep.as_ref() != Some(&out) {
            std::fs::remove_dir_all(&out)?;
        }
    }
    per_span.sort_by(f64::total_cmp);
    let (best, median) = (per_span[0], per_span[per_span.len() / 2]);
    let with = if rollups {
        format!(
            " (+ {:.1} B/span of rollups)",
            rollup_bytes as f64 / spans as f64
        )
    } else {
        String::new()
    };
    println!(
        "{} requests, {spans} spans, flush every {flush_every}: best {best:.2} us/span ({:.0} spans/s), median {median:.2} us/span; {:.1} B/span{with}",
        paths.len(),
        1e6 / best,
        bytes as f64 / spans as f64
    );
    Ok(())
}
