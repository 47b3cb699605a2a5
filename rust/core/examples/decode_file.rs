//! Decodes an OTLP trace request from a file many times; for profiling the decoder
//! (`perf record target/release/examples/decode_file FILE 200`).

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: decode_file FILE [ITERATIONS]")?;
    let iterations: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(100);
    let buf = std::fs::read(path)?;
    let opts = aftershock_core::DecodeOptions::default();
    let start = Instant::now();
    let mut rows = 0;
    for _ in 0..iterations {
        rows += aftershock_core::decode_traces(&buf, &opts)?
            .batch
            .num_rows();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{rows} spans in {secs:.3}s: {:.2} M spans/s, {:.0} MB/s",
        rows as f64 / secs / 1e6,
        (buf.len() * iterations) as f64 / secs / 1e6
    );
    Ok(())
}
