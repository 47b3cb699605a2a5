//! What the fuzz targets check, whatever the input. Also compiled into
//! `rust/core/tests/fuzz_regressions.rs`, which replays the seeds and every
//! crasher found with these same checks in the normal test run.

use std::fs;
use std::path::Path;

use aftershock_core::wal::{Durability, RecoveryReport, Wal, WalOptions};
use aftershock_core::{DecodeOptions, Decoded, Error};
use arrow_array::Array;
use arrow_schema::SchemaRef;

/// A decoder under test: one of `aftershock_core::decode_*`.
pub type Decoder = fn(&[u8], &DecodeOptions) -> Result<Decoded, Error>;

/// Decodes `data` with the default limits and with tight ones (so that cutting
/// values at any byte and capping nesting are exercised too), the latter with each
/// resource's attributes given once, as the lake decodes. The decoder must
/// return (no panic, abort, overflow or hang), refuse bad input only with a
/// decode error, and return only well-formed batches of the contract's schema,
/// with contexts that fit them.
pub fn check_decoder(decode: Decoder, schema: &SchemaRef, data: &[u8]) {
    let tight = DecodeOptions {
        max_depth: 2,
        max_value_bytes: 7,
        resource_attributes_once: true,
    };
    for opts in [DecodeOptions::default(), tight] {
        let decoded = match decode(data, &opts) {
            Ok(decoded) => decoded,
            // Malformed input: the expected way to say no.
            Err(Error::Decode(_)) => continue,
            Err(other) => panic!("hostile input must fail as a decode error, got: {other}"),
        };
        let batch = &decoded.batch;
        assert_eq!(
            &batch.schema(),
            schema,
            "batch schema is not the contract's"
        );
        assert_eq!(decoded.stats.accepted, batch.num_rows() as u64);
        for column in batch.columns() {
            assert_eq!(column.len(), batch.num_rows());
            if let Err(e) = column.to_data().validate_full() {
                panic!("invalid Arrow data in the batch: {e}");
            }
        }
        assert!(
            decoded.contexts.fit(batch.num_rows()),
            "contexts that do not fit"
        );
        if let Some(map) = &decoded.contexts.resource_attributes {
            if let Err(e) = map.to_data().validate_full() {
                panic!("invalid Arrow data in the resources' attributes: {e}");
            }
        }
    }
}

/// Bytes of a WAL record header (see the format in `rust/core/src/wal.rs`).
const WAL_HEADER: u64 = 24;

/// `data` as the one segment of a write-ahead log in the empty directory `dir`
/// (left behind). `Wal::open` must recover (a damaged log never stops the
/// receiver from starting), account for every byte as a record, a quarantined
/// stretch, a torn tail or old records of a recycled segment (headers numbered
/// below the segment's first), replay intact records in sequence order, and leave a
/// log that reopens to the same records without further repair.
pub fn check_wal_segment(dir: &Path, data: &[u8]) {
    fs::create_dir_all(dir).expect("create the WAL directory");
    fs::write(dir.join("wal-00000000000000000001.log"), data).expect("write the segment");

    let (records, report) = open_wal(dir);
    assert_eq!(records.len() as u64, report.records);
    assert!(
        records.windows(2).all(|w| w[0].0 < w[1].0),
        "replay out of order"
    );
    assert!(records.iter().all(|&(seq, _)| seq < report.next_seq));
    let in_records: u64 = records
        .iter()
        .map(|&(_, len)| WAL_HEADER + len as u64)
        .sum();
    assert_eq!(
        in_records + report.quarantined_bytes + report.torn_tail_bytes + report.recycled_bytes,
        data.len() as u64,
        "every byte is a record, quarantined, torn or an old record of a recycled segment: {report:?}"
    );

    let (again, report_again) = open_wal(dir);
    assert_eq!(again, records, "a repaired log replays differently");
    assert_eq!(
        (report_again.torn_tail_bytes, report_again.recycled_bytes),
        (0, 0),
        "the repair did not last"
    );
    assert_eq!(report_again.next_seq, report.next_seq);
}

/// Opens the log and reads every record: (seq, payload length), and the report.
fn open_wal(dir: &Path) -> (Vec<(u64, usize)>, RecoveryReport) {
    let mut opts = WalOptions::new(dir);
    opts.durability = Durability::Os;
    let (wal, replay) = match Wal::open(opts) {
        Ok(opened) => opened,
        Err(e) => panic!("a damaged segment must not stop Wal::open: {e}"),
    };
    let report = replay.report().clone();
    let records = replay
        .map(|r| match r {
            Ok(record) => (record.seq, record.payload.len()),
            Err(e) => panic!("an intact record failed to replay: {e}"),
        })
        .collect();
    drop(wal);
    (records, report)
}
