//! Any bytes as a write-ahead-log segment: see `aftershock_fuzz::check_wal_segment`.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One scratch directory per fuzzing process, on tmpfs when there is one:
/// recovery fsyncs what it repairs.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        base.join(format!("aftershock-fuzz-wal-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    // Also the leftovers of an input that crashed, when libFuzzer goes on (-fork).
    let _ = fs::remove_dir_all(dir);
    aftershock_fuzz::check_wal_segment(dir, data);
    fs::remove_dir_all(dir).expect("clean up");
});
