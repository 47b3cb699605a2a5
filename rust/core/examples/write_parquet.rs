//! Decodes an OTLP trace request from a file and writes it as `spans` data files with
//! `parquet_files::write_data_files`, printing one JSON line per file written (the
//! Delta `add` action's fields). With `--repeat N` the write runs N times and the
//! throughput and bytes per span go to stderr.
//!
//! `write_parquet REQUEST.pb TABLE_DIR [--repeat N]`

use std::time::{Duration, Instant};

use aftershock_core::parquet_files::{write_data_files, ParquetOptions};
use aftershock_core::schema::SPANS;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: write_parquet REQUEST.pb TABLE_DIR [--repeat N]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (input, table_dir, repeat) = match args.as_slice() {
        [input, dir] => (input, dir, 1),
        [input, dir, flag, n] if flag == "--repeat" => (input, dir, n.parse()?),
        _ => return Err(usage.into()),
    };
    let request = std::fs::read(input)?;
    let decoded = aftershock_core::decode_traces(&request, &Default::default())?;
    let batch = decoded.batch;
    let opts = ParquetOptions::default();

    let mut elapsed = Duration::ZERO;
    let mut bytes = 0;
    for _ in 0..repeat {
        let start = Instant::now();
        let files = write_data_files(
            std::path::Path::new(table_dir),
            SPANS,
            std::slice::from_ref(&batch),
            &[Some(decoded.contexts.clone())],
            &opts,
        )?;
        elapsed += start.elapsed();
        for f in &files {
            bytes += f.size;
            println!("{}", f.to_json());
        }
    }
    if repeat > 1 {
        let spans = (batch.num_rows() * repeat) as f64;
        eprintln!(
            "{} spans x {repeat} in {:.3}s: {:.0} spans/s, {:.1} bytes/span ({} request bytes)",
            batch.num_rows(),
            elapsed.as_secs_f64(),
            spans / elapsed.as_secs_f64(),
            bytes as f64 / spans,
            request.len()
        );
    }
    Ok(())
}
