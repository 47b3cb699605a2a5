//! The write-ahead log as the lake uses it, at steady state: records of a request's size
//! appended with `fsync` durability, and after every `--per-flush` of them the segments
//! a commit covers retired (`Wal::truncate_through`), flush after flush. Compares, in the
//! same run and alternating, a log that keeps two retired segments to write over
//! (`WalOptions::spares`, the default) with one that deletes them and grows a new file
//! at every rotation (`spares: 0`, what the log did before). Prints, per build of the
//! log, CPU time (this thread's, user and kernel) per MB appended and the median
//! append's wall time, over `--flushes` flushes after three untimed ones.
//!
//! `taskset -c 0 cargo bench -p aftershock-core --bench wal -- [--record-kb N] [--per-flush N] [--flushes N] [--pairs N] [--dir DIR]`
//!
//! `--dir` picks the disk (the default temp dir may be a tmpfs, where fsync costs nothing).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aftershock_core::wal::{Wal, WalOptions};

/// This thread's CPU time, user and kernel, from the scheduler's own count.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = stat.split_whitespace().next().and_then(|f| f.parse().ok());
    Duration::from_nanos(ns.unwrap_or(0))
}

struct Run {
    cpu_us_per_mb: f64,
    median_append_ms: f64,
}

fn run(
    dir: &Path,
    spares: usize,
    record: &[u8],
    per_flush: usize,
    flushes: usize,
) -> Result<Run, aftershock_core::Error> {
    let _ = std::fs::remove_dir_all(dir);
    let opts = WalOptions {
        spares,
        ..WalOptions::new(dir)
    };
    let (wal, _) = Wal::open(opts)?;
    let mut appends = Vec::with_capacity(per_flush * flushes);
    let mut cpu = Duration::ZERO;
    for flush in 0..3 + flushes {
        let timed = flush >= 3;
        let before = thread_cpu();
        let mut last = 0;
        for _ in 0..per_flush {
            let started = Instant::now();
            last = wal.append(0, record)?;
            if timed {
                appends.push(started.elapsed());
            }
        }
        // What the lake does once its commit covers these records.
        wal.truncate_through(last)?;
        if timed {
            cpu += thread_cpu() - before;
        }
    }
    drop(wal);
    let _ = std::fs::remove_dir_all(dir);
    appends.sort_unstable();
    let mb = (record.len() * per_flush * flushes) as f64 / 1e6;
    Ok(Run {
        cpu_us_per_mb: cpu.as_secs_f64() * 1e6 / mb,
        median_append_ms: appends[appends.len() / 2].as_secs_f64() * 1e3,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut record_kb, mut per_flush, mut flushes, mut pairs) = (2400usize, 16usize, 30usize, 3);
    let mut root: PathBuf = std::env::temp_dir();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--record-kb" => record_kb = value()?.parse()?,
            "--per-flush" => per_flush = value()?.parse()?,
            "--flushes" => flushes = value()?.parse()?,
            "--pairs" => pairs = value()?.parse()?,
            "--dir" => root = value()?.into(),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    // Bytes that do not repeat, as a compressed-looking request's do not.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let record: Vec<u8> = (0..record_kb * 1000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let dir = root.join(format!("aftershock-wal-bench-{}", std::process::id()));
    println!(
        "{record_kb} KB records, fsync, {per_flush} a flush, {flushes} flushes timed after 3, 64 MiB segments"
    );
    println!("{:>28} {:>14} {:>18}", "", "CPU us/MB", "median append ms");
    for _ in 0..pairs {
        for (name, spares) in [("new file each rotation", 0), ("two spares (default)", 2)] {
            let r = run(&dir, spares, &record, per_flush, flushes)?;
            println!(
                "{name:>28} {:>14.0} {:>18.2}",
                r.cpu_us_per_mb, r.median_append_ms
            );
        }
    }
    Ok(())
}
