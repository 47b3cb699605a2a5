//! Write-ahead log: the receiver acknowledges an OTLP export only once the
//! request's raw bytes are here and durable. The lake writer replays what its
//! last Delta commit does not cover, and deletes segments once a commit does.
//!
//! # On disk
//!
//! A directory of segment files named `wal-<first sequence number, 20 digits>.log`,
//! each a run of records with no file header:
//!
//! ```text
//! offset size field
//!      0    4 CRC32C of bytes 4..24, i.e. of every other header field
//!      4    1 magic, 0xA7
//!      5    1 format version, 1
//!      6    1 kind: the caller's tag for the payload
//!      7    1 reserved, 0
//!      8    4 payload length, at most MAX_PAYLOAD
//!     12    8 sequence number
//!     20    4 CRC32C of the payload
//!     24    n payload
//! ```
//!
//! Integers are little-endian. The header has a checksum of its own so that a
//! damaged payload leaves its length trustworthy and the record can be stepped
//! over exactly; when the header itself is damaged, recovery looks forward byte
//! by byte for the next record whose two checksums hold.
//!
//! # Recycled segments
//!
//! A segment that a lake commit covers is not deleted but renamed
//! `spare-<end>.log` (up to [`WalOptions::spares`] of them), where every record it holds is
//! numbered below `<end>`. A rotation renames a spare to the new segment's name
//! and writes over it from the start.
//! Writing into blocks a file already has, whose pages are still cached, costs
//! the kernel two fifths of what growing a new file does (page cache pages, buffer
//! heads, block reservations, and the unlink that freed them all), and its
//! `fdatasync` has no size to record. A segment that has to be a new file (the
//! log's first, or when no spare is left) has its blocks allocated when it is
//! created, its size unchanged (`reserve_blocks`), so that its appends too
//! write into blocks the file has.
//!
//! A recycled segment holds the old records past the new ones until it is sealed
//! (cut to its length when the log rotates away from it) or the log is dropped.
//! Their sequence numbers are below the segment's first, so they are never taken
//! for records of its own; recovery cuts them off and counts them apart from a
//! torn tail, from the first old record on. The few bytes before that, the rest
//! of the old record the last write ended inside, cannot be told from a torn
//! write and are counted as one.
//!
//! # Recovery
//!
//! [`Wal::open`] checks every record of every segment. Damaged bytes followed by
//! an intact record are corruption: they are copied to `quarantine/`, counted and
//! skipped, so one bad record can neither be replayed nor stop the process from
//! starting. Damaged bytes with nothing intact after them at the end of the newest
//! segment are a write torn by a crash: they are counted and truncated away.
//!
//! # Durability and group commit
//!
//! With [`Durability::Fsync`], [`Wal::append`] returns once an `fdatasync` that
//! covers its record has succeeded. Appenders write their records under one lock;
//! one that then finds no sync running leads: it syncs everything written so far
//! while the others wait, and whatever is written meanwhile shares the next sync.
//! [`Durability::Os`] returns once the record is in the page cache.
//!
//! # Failures
//!
//! A failed write (a full disk, say) is cut off the segment, so that the file
//! always ends at a record boundary, and fails only its own append. A failed sync
//! fails every append not yet known durable and cuts the segment back to the last
//! successful sync: after an fsync error the kernel may have dropped those pages,
//! so what reached the disk is unknown and must not be vouched for. Sequence
//! numbers of cut records are handed out again, so the log stays gapless. Either
//! way the next append starts afresh and succeeds once space returns.
//!
//! If the cut itself fails, the log is poisoned: appends fail with
//! [`WalError::Poisoned`] until it is reopened, whose recovery treats the
//! leftovers like any crash. A failed sync whose cut failed leaves whole records
//! behind that will be replayed although their appends failed: the sender was
//! told to retry, so at worst one export is stored twice, never lost.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Result, WalError};

/// Largest payload [`Wal::append`] accepts.
pub const MAX_PAYLOAD: usize = 256 << 20;

const HEADER: usize = 24;
const MAGIC: u8 = 0xA7;
const VERSION: u8 = 1;
const QUARANTINE_DIR: &str = "quarantine";
const LOCK_FILE: &str = "wal.lock";
/// Prefix of a retired segment kept for reuse: `spare-<end seq, 20 digits>.log`, every
/// record in it numbered below the end.
const SPARE_PREFIX: &str = "spare-";

/// When [`Wal::append`] may return.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Once the record is on disk (`fdatasync`): survives power loss.
    #[default]
    Fsync,
    /// Once the record is in the OS page cache: survives a crash of the process,
    /// not of the machine.
    Os,
}

#[derive(Debug, Clone)]
pub struct WalOptions {
    pub dir: PathBuf,
    pub durability: Durability,
    /// A new segment is started before a record would take the current one past
    /// this size. Deletion works on whole segments, so this is also the grain of
    /// [`Wal::truncate_through`].
    pub segment_bytes: u64,
    /// Sequence numbers continue after this one even if the log holds nothing
    /// that high. The lake writer passes the last sequence number its Delta
    /// commit covers: with [`Durability::Os`], a machine crash can lose records
    /// that were committed, and their numbers must not be handed out again.
    pub resume_after: u64,
    /// Retired segments kept for reuse instead of deleted (0: none). A flush retires
    /// about one segment at a time, so two cover a rotation between flushes with one
    /// to spare, at the price of up to two segments of disk.
    pub spares: usize,
}

impl WalOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WalOptions {
            dir: dir.into(),
            durability: Durability::default(),
            segment_bytes: 64 << 20,
            resume_after: 0,
            spares: 2,
        }
    }
}

/// What [`Wal::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    /// Intact records, all of which the [`Replay`] yields.
    pub records: u64,
    /// Bytes cut off the end of the newest segment: records whose write a crash
    /// interrupted. In `fsync` mode none of them had been acknowledged, unless
    /// the disk itself damaged the last record.
    pub torn_tail_bytes: u64,
    /// Damaged stretches copied to `quarantine/` and skipped: usually one record
    /// each, more when a damaged header hid where the next record began.
    pub quarantined: u64,
    pub quarantined_bytes: u64,
    /// Bytes cut off the end of recycled segments: records of the segment reused,
    /// from before it was, not records of this log.
    pub recycled_bytes: u64,
    /// The sequence number the next append gets.
    pub next_seq: u64,
}

/// One record as appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub kind: u8,
    pub payload: Vec<u8>,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalStats {
    /// Size of all segments on disk.
    pub bytes: u64,
    pub segments: usize,
    /// Records appended since [`Wal::open`].
    pub appends: u64,
    /// `fdatasync` calls since [`Wal::open`]; divided by `appends`, the share of
    /// appends that paid for a sync of their own.
    pub syncs: u64,
}

/// The log. `append` takes `&self`: share it between threads in an `Arc`.
pub struct Wal {
    dir: PathBuf,
    durability: Durability,
    segment_bytes: u64,
    spares: usize,
    state: Mutex<State>,
    /// Signalled whenever a sync ends, successfully or not.
    synced: Condvar,
    /// Held for the life of the `Wal`: two processes appending to one log
    /// would interleave records at the same offsets.
    _lock: File,
    #[cfg(test)]
    faults: tests::Faults,
}

struct State {
    active: Active,
    /// Older segments, oldest first.
    sealed: VecDeque<Sealed>,
    /// Retired segments to reuse, at most [`WalOptions::spares`]: the sequence number below
    /// every record in each, and its path.
    spares: Vec<(u64, PathBuf)>,
    next_seq: u64,
    /// Everything before `synced_seq` and the active segment's first `synced_len`
    /// bytes are durable: a failed sync rolls back to here.
    synced_seq: u64,
    synced_len: u64,
    /// Outcome shared by the records written since the last sync began.
    pending: Arc<Batch>,
    syncing: bool,
    poisoned: Option<String>,
    appends: u64,
    syncs: u64,
}

struct Active {
    file: Arc<File>,
    path: PathBuf,
    len: u64,
    /// Size of the file: more than `len` while a recycled segment still holds
    /// old records past the new ones.
    size: u64,
}

struct Sealed {
    path: PathBuf,
    /// Every record in the segment has a smaller sequence number.
    end_seq: u64,
    bytes: u64,
}

/// Set once, under the state lock, by whoever syncs the batch's records.
type Batch = OnceLock<std::result::Result<(), Arc<io::Error>>>;

impl Wal {
    /// Opens (or creates) the log in `opts.dir`, repairs it as described in the
    /// module docs, and returns it with the intact records to replay.
    pub fn open(opts: WalOptions) -> Result<(Wal, Replay)> {
        fs::create_dir_all(&opts.dir)?;
        let lock = lock_dir(&opts.dir)?;
        let segments = list_segments(&opts.dir)?;

        let mut report = RecoveryReport {
            segments: segments.len(),
            ..RecoveryReport::default()
        };
        let mut replay = Replay::default();
        let mut sealed = VecDeque::new();
        let mut newest = None;
        let mut next_seq = 1;
        for (i, (first_seq, path)) in segments.iter().enumerate() {
            let is_newest = i + 1 == segments.len();
            let mut reader = File::open(path)?;
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes)?;

            let scan = scan_segment(&bytes, next_seq.max(*first_seq));
            next_seq = scan.end_seq;
            let mut len = bytes.len();
            if let Some(old) = scan.recycled {
                report.recycled_bytes += (len - old) as u64;
                len = old;
            }
            for damaged in scan.damaged {
                let stretch = &bytes[damaged.clone()];
                if is_newest && damaged.end == len {
                    len = damaged.start;
                    report.torn_tail_bytes += stretch.len() as u64;
                } else {
                    quarantine(&opts.dir, path, damaged.start, stretch)?;
                    report.quarantined += 1;
                    report.quarantined_bytes += stretch.len() as u64;
                }
            }
            if len < bytes.len() {
                let writer = OpenOptions::new().write(true).open(path)?;
                writer.set_len(len as u64)?;
                writer.sync_all()?;
            }
            let len = len as u64;
            report.records += scan.records.len() as u64;
            replay.add_segment(path, reader, scan.records);

            if is_newest {
                newest = Some((path.clone(), len));
            } else {
                sealed.push_back(Sealed {
                    path: path.clone(),
                    end_seq: next_seq,
                    bytes: len,
                });
            }
        }
        let next_seq = next_seq.max(opts.resume_after.saturating_add(1));

        let (path, len) = match newest {
            Some(found) => found,
            None => {
                let path = opts.dir.join(segment_name(next_seq));
                create_segment(&path, opts.segment_bytes)?;
                (path, 0)
            }
        };
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let spares = list_spares(&opts.dir, opts.spares)?;
        // Makes the repairs and a new segment's name durable before anything
        // is appended on top of them.
        sync_dir(&opts.dir)?;

        report.next_seq = next_seq;
        replay.report = report;
        let wal = Wal {
            dir: opts.dir,
            durability: opts.durability,
            segment_bytes: opts.segment_bytes,
            spares: opts.spares,
            state: Mutex::new(State {
                active: Active {
                    file: Arc::new(file),
                    path,
                    len,
                    size: len,
                },
                sealed,
                spares,
                next_seq,
                synced_seq: next_seq,
                synced_len: len,
                pending: Arc::default(),
                syncing: false,
                poisoned: None,
                appends: 0,
                syncs: 0,
            }),
            synced: Condvar::new(),
            _lock: lock,
            #[cfg(test)]
            faults: tests::Faults::default(),
        };
        Ok((wal, replay))
    }

    /// Appends one record and returns its sequence number once the record is as
    /// durable as the log's [`Durability`] promises. Errors from I/O leave the
    /// log consistent; [`crate::Error::is_retryable`] tells which ones may pass later.
    pub fn append(&self, kind: u8, payload: &[u8]) -> Result<u64> {
        // The header is written in front of the caller's bytes rather than copied together
        // with them: a request can be tens of MiB.
        let mut header = encode(kind, payload)?;
        let record_len = (HEADER + payload.len()) as u64;
        let mut st = self.lock();
        loop {
            if let Some(cause) = &st.poisoned {
                return Err(WalError::Poisoned(cause.clone()).into());
            }
            let fits = st.active.len + record_len <= self.segment_bytes;
            if st.active.len == 0 || fits {
                break;
            }
            // A new segment is started only once everything in the current
            // one is durable, so that no record becomes durable before an
            // earlier one, and no sync is left covering a retired file.
            if st.syncing {
                st = self.wait(st);
            } else if self.durability == Durability::Fsync && st.active.len > st.synced_len {
                st = self.sync_pending(st);
            } else {
                self.rotate(&mut st)?;
            }
        }
        let seq = self.write(&mut st, &mut header, payload)?;
        if self.durability == Durability::Os {
            return Ok(seq);
        }

        let batch = Arc::clone(&st.pending);
        loop {
            if let Some(outcome) = batch.get() {
                return match outcome {
                    Ok(()) => Ok(seq),
                    Err(cause) => Err(copy_io_error(cause).into()),
                };
            }
            st = if st.syncing {
                self.wait(st)
            } else {
                self.sync_pending(st)
            };
        }
    }

    /// Retires the segments whose records all have sequence numbers up to `seq`,
    /// once a lake commit covers them, and returns how many: kept as spares to
    /// reuse (up to [`WalOptions::spares`]) or deleted. The segment being appended to is never
    /// retired.
    pub fn truncate_through(&self, seq: u64) -> Result<usize> {
        let mut st = self.lock();
        let mut retired = 0;
        while let Some(oldest) = st.sealed.front() {
            if oldest.end_seq > seq.saturating_add(1) {
                break;
            }
            let outcome = match st.spares.len() < self.spares {
                true => {
                    let spare = self.dir.join(spare_name(oldest.end_seq));
                    fs::rename(&oldest.path, &spare).map(|()| Some((oldest.end_seq, spare)))
                }
                false => fs::remove_file(&oldest.path).map(|()| None),
            };
            match outcome {
                Ok(spare) => st.spares.extend(spare),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            st.sealed.pop_front();
            retired += 1;
        }
        // No directory sync: a retirement undone by a crash only brings back
        // records that the lake commit covers, which replay skips.
        Ok(retired)
    }

    /// Size of all segments on disk.
    pub fn bytes(&self) -> u64 {
        self.stats().bytes
    }

    /// A lower bound of the sequence number the next append will get: the lake
    /// writer uses it to know which sequences an append in progress may take.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    pub fn stats(&self) -> WalStats {
        let st = self.lock();
        WalStats {
            bytes: st.active.len + st.sealed.iter().map(|s| s.bytes).sum::<u64>(),
            segments: st.sealed.len() + 1,
            appends: st.appends,
            syncs: st.syncs,
        }
    }

    /// No code panics while holding the lock, so a poisoned mutex still guards
    /// consistent state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.synced.wait(st).unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `record` at the end of the active segment under the next sequence
    /// number, which it stamps into the header.
    fn write(&self, st: &mut State, header: &mut [u8; HEADER], payload: &[u8]) -> Result<u64> {
        let seq = st.next_seq;
        stamp(header, seq);
        let at = st.active.len;
        if let Err(e) = self.write_at(&st.active.file, at, header, payload) {
            self.cut(st, at);
            return Err(e.into());
        }
        st.active.len += (HEADER + payload.len()) as u64;
        st.active.size = st.active.size.max(st.active.len);
        st.next_seq += 1;
        st.appends += 1;
        Ok(seq)
    }

    /// Leads a group commit: syncs every record written so far, without the
    /// lock so that others can keep writing, then settles their batch.
    fn sync_pending<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.syncing = true;
        let batch = mem::take(&mut st.pending);
        let file = Arc::clone(&st.active.file);
        let (len, next_seq) = (st.active.len, st.next_seq);
        drop(st);

        let outcome = self.sync(&file);

        let mut st = self.lock();
        st.syncing = false;
        st.syncs += 1;
        match outcome {
            Ok(()) => {
                st.synced_len = len;
                st.synced_seq = next_seq;
                let _ = batch.set(Ok(()));
            }
            Err(e) => {
                let cause = Arc::new(e);
                let _ = batch.set(Err(Arc::clone(&cause)));
                self.discard_unsynced(&mut st, cause);
            }
        }
        self.synced.notify_all();
        st
    }

    /// Starts a new segment, a spare if there is one; the caller has made the
    /// current one durable.
    fn rotate(&self, st: &mut State) -> Result<()> {
        // A recycled segment is sealed at its length, durably before the next
        // segment's name is, so that only the newest segment can end in old records.
        if st.active.size > st.active.len {
            self.set_len(&st.active.file, st.active.len)?;
            if self.durability == Durability::Fsync {
                st.active.file.sync_all()?;
            }
            st.active.size = st.active.len;
        }
        let path = self.dir.join(segment_name(st.next_seq));
        // Only a spare whose records are all numbered below the new segment's first
        // (always so for a spare of this log) is written over: recovery tells its old
        // records apart by their numbers.
        // A spare that cannot be reused is not worth an error: it goes, and a new
        // file takes its place.
        let next_seq = st.next_seq;
        let reused = st.spares.pop().and_then(|(end_seq, spare)| {
            let reused = (end_seq <= next_seq)
                .then(|| reuse_segment(&spare, &path).ok())
                .flatten();
            if reused.is_none() {
                let _ = fs::remove_file(&spare);
            }
            reused
        });
        let (file, size) = match reused {
            Some(reused) => reused,
            None => (create_segment(&path, self.segment_bytes)?, 0),
        };
        if self.durability == Durability::Fsync {
            if let Err(e) = sync_dir(&self.dir) {
                // Best effort: a leftover is harmless, recovery and the next
                // rotation both accept it (an empty file, or a renamed spare whose
                // old records recovery cuts off).
                let _ = fs::remove_file(&path);
                return Err(e.into());
            }
        }
        let old = mem::replace(
            &mut st.active,
            Active {
                file: Arc::new(file),
                path,
                len: 0,
                size,
            },
        );
        st.sealed.push_back(Sealed {
            path: old.path,
            end_seq: st.next_seq,
            bytes: old.len,
        });
        st.synced_len = 0;
        st.synced_seq = st.next_seq;
        Ok(())
    }

    /// After a failed sync: fails the records written since it began and cuts
    /// them off, back to the last successful sync.
    fn discard_unsynced(&self, st: &mut State, cause: Arc<io::Error>) {
        let _ = mem::take(&mut st.pending).set(Err(cause));
        let synced_len = st.synced_len;
        if self.cut(st, synced_len) {
            st.next_seq = st.synced_seq;
        }
    }

    /// Truncates the active segment to `len`, or poisons the log if it cannot.
    fn cut(&self, st: &mut State, len: u64) -> bool {
        match self.set_len(&st.active.file, len) {
            Ok(()) => {
                st.active.len = len;
                st.active.size = len;
                true
            }
            Err(e) => {
                st.poisoned = Some(format!(
                    "could not cut a failed write off {}: {e}",
                    st.active.path.display()
                ));
                false
            }
        }
    }

    fn write_at(&self, file: &File, at: u64, header: &[u8], payload: &[u8]) -> io::Result<()> {
        let mut file = file;
        file.seek(SeekFrom::Start(at))?;
        #[cfg(test)]
        self.faults.on_write(file, header, payload)?;
        file.write_all(header)?;
        file.write_all(payload)
    }

    fn sync(&self, file: &File) -> io::Result<()> {
        #[cfg(test)]
        self.faults.on_sync()?;
        file.sync_data()
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        #[cfg(test)]
        self.faults.on_truncate()?;
        file.set_len(len)
    }
}

impl Drop for Wal {
    /// Cuts a recycled segment's old records off, so that a log closed in order
    /// reopens with none to count. Best effort: recovery cuts them otherwise.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if st.active.size > st.active.len {
            let _ = st.active.file.set_len(st.active.len);
        }
    }
}

/// The records [`Wal::open`] found intact, in sequence order, read from disk
/// one at a time so that a large log need not fit in memory.
#[derive(Default)]
pub struct Replay {
    report: RecoveryReport,
    segments: Vec<(PathBuf, File)>,
    entries: VecDeque<Entry>,
}

struct Entry {
    segment: usize,
    found: Found,
}

impl Replay {
    pub fn report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Skips the records up to `seq`: those a lake commit already covers.
    pub fn skip_through(mut self, seq: u64) -> Self {
        while self.entries.front().is_some_and(|e| e.found.seq <= seq) {
            self.entries.pop_front();
        }
        self
    }

    fn add_segment(&mut self, path: &Path, file: File, records: Vec<Found>) {
        if records.is_empty() {
            return;
        }
        let segment = self.segments.len();
        self.segments.push((path.to_path_buf(), file));
        self.entries
            .extend(records.into_iter().map(|found| Entry { segment, found }));
    }

    fn read(&mut self, entry: &Entry) -> Result<Record> {
        let (path, file) = &mut self.segments[entry.segment];
        let found = &entry.found;
        let mut payload = vec![0; found.len];
        file.seek(SeekFrom::Start(found.offset + HEADER as u64))?;
        file.read_exact(&mut payload)?;
        // Checked again because the bytes were read again.
        if crc32c(&payload) != found.payload_crc {
            return Err(WalError::Changed {
                seq: found.seq,
                path: path.clone(),
            }
            .into());
        }
        Ok(Record {
            seq: found.seq,
            kind: found.kind,
            payload,
        })
    }
}

impl Iterator for Replay {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.entries.pop_front()?;
        Some(self.read(&entry))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.entries.len(), Some(self.entries.len()))
    }
}

impl ExactSizeIterator for Replay {}

/// An intact record's place in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    offset: u64,
    len: usize,
    seq: u64,
    kind: u8,
    payload_crc: u32,
}

struct Scan {
    records: Vec<Found>,
    /// Byte ranges that are not intact records, each followed by an intact
    /// record, by `recycled` or by the end of the segment.
    damaged: Vec<std::ops::Range<usize>>,
    /// Where the old records of a recycled segment begin, after the last intact
    /// record: the first record header with a sequence number below `min_seq`.
    recycled: Option<usize>,
    /// Sequence number after the last intact record (or the starting one).
    end_seq: u64,
}

/// Splits a segment into intact records and damaged stretches. A record is
/// intact when both checksums hold and its sequence number is at least
/// `min_seq` and above the previous record's, so that stale or misplaced bytes
/// which happen to checksum are never replayed out of order.
fn scan_segment(bytes: &[u8], min_seq: u64) -> Scan {
    let mut scan = Scan {
        records: Vec::new(),
        damaged: Vec::new(),
        recycled: None,
        end_seq: min_seq,
    };
    let mut pos = 0;
    while pos < bytes.len() {
        if let Some(found) = record_at(bytes, pos, scan.end_seq) {
            scan.records.push(found);
            scan.end_seq = found.seq + 1;
            pos += HEADER + found.len;
            continue;
        }
        let resume = match next_record(bytes, pos, scan.end_seq) {
            Some(next) => next,
            None => {
                // Nothing intact follows: the rest is a torn write, old records of
                // a recycled segment, or both, in that order.
                let old = (pos..bytes.len())
                    .find(|&at| header_at(bytes, at, 0).is_some_and(|h| h.seq < scan.end_seq));
                scan.recycled = old;
                old.unwrap_or(bytes.len())
            }
        };
        if resume > pos {
            scan.damaged.push(pos..resume);
        }
        if scan.recycled.is_some() {
            break;
        }
        pos = resume;
    }
    scan
}

/// Where the first intact record after the damage at `pos` starts.
fn next_record(bytes: &[u8], pos: usize, min_seq: u64) -> Option<usize> {
    // An intact header gives a trustworthy length: only the payload is damaged.
    if let Some(header) = header_at(bytes, pos, min_seq) {
        let end = pos + HEADER + header.len;
        if record_at(bytes, end, min_seq).is_some() {
            return Some(end);
        }
    }
    (pos + 1..bytes.len()).find(|&at| record_at(bytes, at, min_seq).is_some())
}

fn record_at(bytes: &[u8], pos: usize, min_seq: u64) -> Option<Found> {
    let header = header_at(bytes, pos, min_seq)?;
    let start = pos + HEADER;
    let payload = bytes.get(start..start + header.len)?;
    (crc32c(payload) == header.payload_crc).then_some(header)
}

fn header_at(bytes: &[u8], pos: usize, min_seq: u64) -> Option<Found> {
    let h = bytes.get(pos..pos.checked_add(HEADER)?)?;
    if h[4] != MAGIC || h[5] != VERSION || h[7] != 0 || crc32c(&h[4..]) != le_u32(h, 0) {
        return None;
    }
    let len = le_u32(h, 8) as usize;
    let seq = u64::from(le_u32(h, 12)) | (u64::from(le_u32(h, 16)) << 32);
    if len > MAX_PAYLOAD || seq < min_seq {
        return None;
    }
    Some(Found {
        offset: pos as u64,
        len,
        seq,
        kind: h[6],
        payload_crc: le_u32(h, 20),
    })
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The header of a record of `payload`, with everything but its sequence number (and the
/// header's own checksum), which are only known under the lock; the payload checksum, the
/// costly part, is computed before it. The payload is written after it as it is.
fn encode(kind: u8, payload: &[u8]) -> Result<[u8; HEADER]> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&len| len as usize <= MAX_PAYLOAD)
        .ok_or(WalError::TooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD,
        })?;
    let mut header = [0u8; HEADER];
    header[4..8].copy_from_slice(&[MAGIC, VERSION, kind, 0]);
    header[8..12].copy_from_slice(&len.to_le_bytes());
    header[20..24].copy_from_slice(&crc32c(payload).to_le_bytes());
    Ok(header)
}

fn stamp(header: &mut [u8], seq: u64) {
    header[12..20].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c(&header[4..HEADER]);
    header[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// One `io::Error` per caller that shared a failed sync, same kind and message.
fn copy_io_error(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("write-ahead log sync failed: {e}"))
}

fn segment_name(first_seq: u64) -> String {
    format!("wal-{first_seq:020}.log")
}

/// The name of a retired segment whose records are all numbered below `end_seq`.
fn spare_name(end_seq: u64) -> String {
    format!("{SPARE_PREFIX}{end_seq:020}.log")
}

/// Spare segments (end sequence number, path): the `keep` newest; any more (left
/// when the log kept more) are deleted.
fn list_spares(dir: &Path, keep: usize) -> Result<Vec<(u64, PathBuf)>> {
    let mut spares = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(end_seq) = name.to_str().and_then(|n| parse_seq_name(n, SPARE_PREFIX)) {
            spares.push((end_seq, entry.path()));
        }
    }
    spares.sort_unstable();
    let extra = spares.len().saturating_sub(keep);
    for (_, path) in spares.drain(..extra) {
        fs::remove_file(path)?;
    }
    Ok(spares)
}

/// `spare` opened for writing over its old records and renamed to the segment
/// `path` (opened first, so that a failure leaves no segment behind), and its size.
fn reuse_segment(spare: &Path, path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().read(true).write(true).open(spare)?;
    let size = file.metadata()?.len();
    fs::rename(spare, path)?;
    Ok((file, size))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    parse_seq_name(name, "wal-")
}

/// The sequence number of a file named `<prefix><20 digits>.log`.
fn parse_seq_name(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files, oldest first. Anything else in the directory is left alone.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(first_seq) = entry.file_name().to_str().and_then(parse_segment_name) {
            segments.push((first_seq, entry.path()));
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// Opens a new, empty segment with `reserve` bytes of disk blocks set aside for it
/// ([`reserve_blocks`]). An empty file already there is a leftover of a rotation that
/// failed after creating it, and is taken over.
fn create_segment(path: &Path, reserve: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    if file.metadata()?.len() != 0 {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("segment {} already has data", path.display()),
        ));
    }
    reserve_blocks(&file, reserve);
    Ok(file)
}

/// Allocates the disk blocks of the empty `file`'s first `bytes` without changing its
/// size (`fallocate` with `FALLOC_FL_KEEP_SIZE`, as RocksDB does for its log files), so
/// that appends to a new segment write into blocks it has, as they do into a spare,
/// instead of reserving blocks page by page as the file grows: on ext4, 357-359 -> 271-281
/// µs of CPU a MB appended with fsync, against 146-160 for a spare (`benches/wal.rs`, a
/// new file at every rotation). Reading stops at the file's size, so recovery never sees
/// the reserved blocks. A deleted segment gives them back; one kept as a spare keeps them
/// for its next use, until a rotation seals it at its length. Best effort: where the call
/// fails (a filesystem without it, too little space) blocks it may have allocated are
/// given back and appends grow the file as they otherwise would.
fn reserve_blocks(file: &File, bytes: u64) {
    #[cfg(target_os = "linux")]
    if rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, bytes).is_err() {
        // Truncating to the size the file has frees blocks allocated past it.
        let _ = file.set_len(0);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, bytes);
}

/// Copies a damaged stretch to `quarantine/`, named after its segment and
/// offset so that reopening the same log again rewrites the same file.
fn quarantine(dir: &Path, segment: &Path, offset: usize, bytes: &[u8]) -> io::Result<()> {
    let qdir = dir.join(QUARANTINE_DIR);
    fs::create_dir_all(&qdir)?;
    let stem = segment
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let mut file = File::create(qdir.join(format!("{stem}-at-{offset:012}.bin")))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    sync_dir(&qdir)
}

/// Retries for a moment before giving up, because between fork and exec a child
/// process shares its parent's descriptors, this lock included: a `Wal` dropped
/// and reopened while the process spawns a command would otherwise fail.
fn lock_dir(dir: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))?;
    let deadline = Instant::now() + Duration::from_millis(300);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => return Err(WalError::Locked(dir.to_path_buf()).into()),
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

/// Makes file creations, deletions and renames in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Elsewhere a directory cannot be opened as a file; its entries are made
/// durable with the files' own metadata.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// CRC32C (Castagnoli), the checksum of iSCSI, ext4 and most logs. `crc-fast` folds
/// the bytes with carry-less multiplies (VPCLMULQDQ with AVX-512, PCLMULQDQ, or ARMv8's
/// PMULL), falling back to the CPU's CRC32 instruction or tables: on a 3 MB request
/// 58-62 GB/s here, against 30 GB/s for the `crc32c` crate's three streams of CRC32
/// instructions (which replaced slicing-by-8 tables at 1.7 GB/s, then 3% of the
/// receiver's CPU). The WAL bench's appends took 135-147 instead of 152-169 µs of CPU
/// a MB.
fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::mpsc;

    use super::*;
    use crate::error::Error;
    use crate::test_support::{Rng, TempDir};

    /// Switches that make the next write, sync or truncation fail like a full
    /// disk would.
    #[derive(Default)]
    pub(super) struct Faults {
        write: AtomicBool,
        sync: AtomicBool,
        truncate: AtomicBool,
    }

    impl Faults {
        /// A disk that fills up halfway through the record.
        /// A failing write leaves the first half of the record behind, as a disk that
        /// fills up mid-write does.
        pub(super) fn on_write(
            &self,
            mut file: &File,
            header: &[u8],
            payload: &[u8],
        ) -> io::Result<()> {
            if !self.write.load(Relaxed) {
                return Ok(());
            }
            let record = [header, payload].concat();
            file.write_all(&record[..record.len() / 2])?;
            Err(io::ErrorKind::StorageFull.into())
        }

        pub(super) fn on_sync(&self) -> io::Result<()> {
            fail_if(&self.sync)
        }

        pub(super) fn on_truncate(&self) -> io::Result<()> {
            fail_if(&self.truncate)
        }
    }

    fn fail_if(switch: &AtomicBool) -> io::Result<()> {
        match switch.load(Relaxed) {
            true => Err(io::ErrorKind::StorageFull.into()),
            false => Ok(()),
        }
    }

    /// A payload that tells which record it is, so replay can be checked
    /// against what was appended without keeping the bytes around.
    fn payload(id: u64, len: usize) -> Vec<u8> {
        let mut rng = Rng(id);
        let mut bytes = id.to_le_bytes().to_vec();
        bytes.resize(len.max(8), 0);
        for b in &mut bytes[8..] {
            *b = rng.next_u64() as u8;
        }
        bytes
    }

    fn opts(dir: &Path) -> WalOptions {
        WalOptions::new(dir)
    }

    fn small_segments(dir: &Path, segment_bytes: u64) -> WalOptions {
        WalOptions {
            segment_bytes,
            ..opts(dir)
        }
    }

    fn open(opts: WalOptions) -> (Wal, Vec<Record>, RecoveryReport) {
        let (wal, replay) = Wal::open(opts).unwrap();
        let report = replay.report().clone();
        let records = replay.collect::<Result<Vec<_>>>().unwrap();
        (wal, records, report)
    }

    /// Appends records `ids` with payloads of `len` bytes.
    fn append_all(wal: &Wal, ids: std::ops::RangeInclusive<u64>, len: usize) {
        for i in ids {
            assert_eq!(wal.append(0, &payload(i, len)).unwrap(), i);
        }
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        list_segments(dir)
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    #[test]
    fn crc32c_matches_the_published_check_values() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xff; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
    }

    #[test]
    fn round_trip() {
        let dir = TempDir::new("round-trip");
        let (wal, records, report) = open(opts(dir.path()));
        assert!(records.is_empty());
        assert_eq!(report.next_seq, 1);
        let appended: Vec<(u8, Vec<u8>)> = vec![
            (1, b"first".to_vec()),
            (2, Vec::new()),
            (7, payload(3, 100_000)),
        ];
        for (i, (kind, bytes)) in appended.iter().enumerate() {
            assert_eq!(wal.append(*kind, bytes).unwrap(), i as u64 + 1);
        }
        let stats = wal.stats();
        assert_eq!((stats.appends, stats.syncs), (3, 3));
        assert_eq!(
            stats.bytes,
            fs::metadata(&segment_files(dir.path())[0]).unwrap().len()
        );
        drop(wal);

        let (_wal, records, report) = open(opts(dir.path()));
        let expected: Vec<Record> = appended
            .into_iter()
            .enumerate()
            .map(|(i, (kind, payload))| Record {
                seq: i as u64 + 1,
                kind,
                payload,
            })
            .collect();
        assert_eq!(records, expected);
        assert_eq!(
            report,
            RecoveryReport {
                segments: 1,
                records: 3,
                next_seq: 4,
                ..RecoveryReport::default()
            }
        );
    }

    #[test]
    fn os_durability_round_trip_without_syncs() {
        let dir = TempDir::new("os");
        let o = WalOptions {
            durability: Durability::Os,
            ..opts(dir.path())
        };
        let (wal, _, _) = open(o.clone());
        for i in 0..10 {
            wal.append(0, &payload(i, 50)).unwrap();
        }
        assert_eq!(wal.stats().syncs, 0);
        drop(wal);
        let (_wal, records, _) = open(o);
        assert_eq!(seqs(&records), (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn oversized_payload_is_refused() {
        let dir = TempDir::new("too-large");
        let (wal, _, _) = open(opts(dir.path()));
        let err = wal.append(0, &vec![0; MAX_PAYLOAD + 1]).unwrap_err();
        assert!(
            matches!(err, Error::Wal(WalError::TooLarge { .. })),
            "{err}"
        );
        assert!(!err.is_retryable());
        assert_eq!(wal.append(0, b"ok").unwrap(), 1);
    }

    #[test]
    fn a_second_opener_is_refused() {
        let dir = TempDir::new("locked");
        let (wal, _, _) = open(opts(dir.path()));
        let err = Wal::open(opts(dir.path())).err().unwrap();
        assert!(matches!(err, Error::Wal(WalError::Locked(_))), "{err}");
        drop(wal);
        open(opts(dir.path()));
    }

    #[test]
    fn concurrent_appends_replay_exactly_once_in_order() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Wal>();

        let dir = TempDir::new("concurrent");
        let o = WalOptions {
            segment_bytes: 64 << 10,
            ..opts(dir.path())
        };
        let (wal, _, _) = open(o.clone());
        let wal = Arc::new(wal);
        let (threads, per_thread) = (8u64, 150u64);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let wal = Arc::clone(&wal);
                thread::spawn(move || {
                    (0..per_thread)
                        .map(|i| {
                            let id = t * 1_000_000 + i;
                            (wal.append(t as u8, &payload(id, 1000)).unwrap(), id)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let acked: BTreeMap<u64, u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = threads * per_thread;
        assert_eq!(
            acked.len() as u64,
            n,
            "a sequence number was handed out twice"
        );
        let stats = wal.stats();
        assert!(stats.segments > 1, "{stats:?}");
        assert!(stats.syncs < n, "no group commit: {stats:?}");
        drop(wal);

        let (_wal, records, report) = open(o);
        assert_eq!(seqs(&records), (1..=n).collect::<Vec<_>>());
        for r in &records {
            let id = acked[&r.seq];
            assert_eq!(r.payload, payload(id, 1000));
            assert_eq!(u64::from(r.kind), id / 1_000_000);
        }
        assert_eq!((report.torn_tail_bytes, report.quarantined), (0, 0));
    }

    /// Three records in one segment, and the byte range of each.
    fn three_records(dir: &Path) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
        let (wal, _, _) = open(opts(dir));
        let mut ranges = Vec::new();
        let mut at = 0;
        for (i, len) in [300, 40, 50].into_iter().enumerate() {
            wal.append(1, &payload(i as u64, len)).unwrap();
            ranges.push(at..at + HEADER + len);
            at += HEADER + len;
        }
        drop(wal);
        (fs::read(&segment_files(dir)[0]).unwrap(), ranges)
    }

    #[test]
    fn torn_tail_at_every_byte_of_the_last_record_is_truncated() {
        let source = TempDir::new("torn-source");
        let (bytes, ranges) = three_records(source.path());
        let last = ranges[2].clone();
        for cut in last.start..last.end {
            let dir = TempDir::new("torn");
            let segment = dir.path().join(segment_name(1));
            fs::write(&segment, &bytes[..cut]).unwrap();

            let (wal, records, report) = open(opts(dir.path()));
            assert_eq!(seqs(&records), [1, 2], "cut at {cut}");
            assert_eq!(report.torn_tail_bytes, (cut - last.start) as u64);
            assert_eq!(report.quarantined, 0);
            assert_eq!(fs::metadata(&segment).unwrap().len(), last.start as u64);
            assert_eq!(wal.append(1, b"after").unwrap(), 3);
        }
    }

    #[test]
    fn a_damaged_middle_record_is_quarantined_and_later_ones_replay() {
        let source = TempDir::new("flip-source");
        let (bytes, ranges) = three_records(source.path());
        let middle = ranges[1].clone();
        for at in middle.clone() {
            let dir = TempDir::new("flip");
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            fs::write(dir.path().join(segment_name(1)), &damaged).unwrap();

            for _reopen in 0..2 {
                let (wal, records, report) = open(opts(dir.path()));
                assert_eq!(seqs(&records), [1, 3], "byte {at} flipped");
                assert_eq!(records[1].payload, payload(2, 50));
                assert_eq!((report.quarantined, report.torn_tail_bytes), (1, 0));
                assert_eq!(report.quarantined_bytes, middle.len() as u64);
                let quarantined: Vec<_> = fs::read_dir(dir.path().join(QUARANTINE_DIR))
                    .unwrap()
                    .map(|e| fs::read(e.unwrap().path()).unwrap())
                    .collect();
                assert_eq!(quarantined, [damaged[middle.clone()].to_vec()]);
                // The next record's number is still past the last intact one.
                assert_eq!(report.next_seq, 4);
                drop(wal);
            }
        }
    }

    #[test]
    fn damage_at_the_end_of_an_older_segment_is_quarantined_not_truncated() {
        let dir = TempDir::new("old-tail");
        let o = small_segments(dir.path(), 200);
        let (wal, _, _) = open(o.clone());
        for i in 0..4 {
            wal.append(0, &payload(i, 100)).unwrap();
        }
        drop(wal);
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 4);
        let mut bytes = fs::read(&files[1]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&files[1], &bytes).unwrap();

        let (_wal, records, report) = open(o);
        assert_eq!(seqs(&records), [1, 3, 4]);
        assert_eq!((report.quarantined, report.torn_tail_bytes), (1, 0));
        assert_eq!(fs::read(&files[1]).unwrap(), bytes);
    }

    #[test]
    fn replay_refuses_a_record_changed_after_recovery() {
        let dir = TempDir::new("changed");
        let (wal, _, _) = open(opts(dir.path()));
        wal.append(0, b"one").unwrap();
        wal.append(0, b"two").unwrap();
        drop(wal);
        let (_wal, mut replay) = Wal::open(opts(dir.path())).unwrap();
        let segment = segment_files(dir.path()).remove(0);
        let mut bytes = fs::read(&segment).unwrap();
        bytes[HEADER] ^= 1;
        fs::write(&segment, &bytes).unwrap();
        let err = replay.next().unwrap().unwrap_err();
        assert!(
            matches!(err, Error::Wal(WalError::Changed { seq: 1, .. })),
            "{err}"
        );
        assert_eq!(replay.next().unwrap().unwrap().payload, b"two");
    }

    #[test]
    fn rotation_and_truncate_through() {
        let dir = TempDir::new("rotation");
        let o = small_segments(dir.path(), 1000);
        let (wal, _, _) = open(o.clone());
        // 224-byte records: four to a segment.
        for i in 1..=18 {
            assert_eq!(wal.append(0, &payload(i, 200)).unwrap(), i);
        }
        let firsts: Vec<u64> = list_segments(dir.path())
            .unwrap()
            .into_iter()
            .map(|(first, _)| first)
            .collect();
        assert_eq!(firsts, [1, 5, 9, 13, 17]);
        assert_eq!(wal.bytes(), 18 * 224);

        assert_eq!(wal.truncate_through(3).unwrap(), 0);
        assert_eq!(wal.truncate_through(4).unwrap(), 1);
        assert_eq!(wal.truncate_through(10).unwrap(), 1);
        assert_eq!(wal.bytes(), 10 * 224);
        // The active segment stays, whatever the lake says.
        assert_eq!(wal.truncate_through(u64::MAX).unwrap(), 2);
        assert_eq!(segment_files(dir.path()).len(), 1);
        assert_eq!(wal.stats().segments, 1);
        drop(wal);

        let (wal, records, report) = open(o);
        assert_eq!(seqs(&records), [17, 18]);
        assert_eq!(report.segments, 1);
        assert_eq!(wal.append(0, b"next").unwrap(), 19);
    }

    fn spare_files(dir: &Path) -> Vec<PathBuf> {
        let mut spares: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(SPARE_PREFIX)
            })
            .collect();
        spares.sort();
        spares
    }

    /// The log's files as a crash at this moment would leave them, in a new
    /// directory (the log itself stays open and locked).
    fn crash_copy(dir: &Path, name: &str) -> TempDir {
        let copy = TempDir::new(name);
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && path.file_name().unwrap() != LOCK_FILE {
                fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        copy
    }

    /// A new segment has its blocks before its first append, its size still 0; it
    /// grows as records are appended into them, and a reopened log reads exactly what
    /// was appended, not the reserved space after it.
    #[cfg(target_os = "linux")]
    #[test]
    fn new_segments_reserve_their_blocks_and_keep_their_size() {
        use std::os::unix::fs::MetadataExt;
        let dir = TempDir::new("reserve");
        let segment_bytes = 1 << 20;
        let (wal, _, _) = open(small_segments(dir.path(), segment_bytes));
        let segment = |dir: &Path| {
            let (_, path) = list_segments(dir).unwrap().pop().unwrap();
            fs::metadata(path).unwrap()
        };
        let fresh = segment(dir.path());
        assert_eq!(fresh.len(), 0);
        assert!(
            fresh.blocks() * 512 >= segment_bytes,
            "{} blocks",
            fresh.blocks()
        );
        let seqs: Vec<u64> = (0..3u64)
            .map(|i| wal.append(0, &payload(i, 1000)).unwrap())
            .collect();
        let written = segment(dir.path());
        assert_eq!(written.len(), 3 * (HEADER as u64 + 1000));
        assert_eq!(written.blocks(), fresh.blocks());
        drop(wal);
        let (_, replayed, report) = open(small_segments(dir.path(), segment_bytes));
        let got: Vec<u64> = replayed.iter().map(|r| r.seq).collect();
        assert_eq!(got, seqs);
        assert_eq!(report.torn_tail_bytes, 0);
    }

    #[cfg(unix)]
    fn inode(path: &Path) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(path).unwrap())
    }

    #[cfg(unix)]
    #[test]
    fn retired_segments_are_reused_and_their_old_records_never_replay() {
        let dir = TempDir::new("recycle");
        let o = small_segments(dir.path(), 1000);
        let (wal, _, _) = open(o.clone());
        // 224-byte records, four to a segment: segments 1, 5, 9 and 13.
        append_all(&wal, 1..=16, 200);
        // Three retired: two kept as spares, the third deleted.
        assert_eq!(wal.truncate_through(12).unwrap(), 3);
        let spares = spare_files(dir.path());
        assert_eq!(spares.len(), o.spares);
        let spare_inodes: Vec<u64> = spares.iter().map(|p| inode(p)).collect();
        assert_eq!(wal.stats().segments, 1);

        // The next segment is a spare, written over from the start.
        append_all(&wal, 17..=18, 200);
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 2);
        assert!(spare_inodes.contains(&inode(&files[1])));
        assert_eq!(spare_files(dir.path()).len(), o.spares - 1);
        assert_eq!(fs::metadata(&files[1]).unwrap().len(), 4 * 224);
        assert_eq!(wal.bytes(), 6 * 224);

        // A crash now leaves two old records (sequence numbers 1-4 or 5-8) after the
        // two new ones: cut off and counted, never replayed.
        let crashed = crash_copy(dir.path(), "recycle-crash");
        let (reopened, records, report) = open(opts(crashed.path()));
        assert_eq!(seqs(&records), [13, 14, 15, 16, 17, 18]);
        assert_eq!(report.recycled_bytes, 2 * 224);
        assert_eq!((report.torn_tail_bytes, report.quarantined), (0, 0));
        assert_eq!(report.next_seq, 19);
        let newest = &segment_files(crashed.path())[1];
        assert_eq!(fs::metadata(newest).unwrap().len(), 2 * 224);
        assert_eq!(reopened.append(0, b"next").unwrap(), 19);
        // The other spare is still one.
        assert_eq!(spare_files(crashed.path()).len(), o.spares - 1);
    }

    #[test]
    fn a_spare_with_records_numbered_as_high_as_the_log_is_not_reused() {
        let source = TempDir::new("foreign-source");
        let (bytes, _) = three_records(source.path());
        let dir = TempDir::new("foreign");
        let o = small_segments(dir.path(), 1000);
        // Records 1-3, as a spare of another log (or of this one before its lake was
        // reset) would hold them: written over by a log that numbers from 1, they
        // would be taken for its own.
        fs::write(dir.path().join(spare_name(4)), &bytes).unwrap();
        assert!(bytes.len() > 424);
        let (wal, _, _) = open(o.clone());
        // 424-byte records, two to a segment: segment 3 starts below 4.
        append_all(&wal, 1..=3, 400);
        // Segment 3 is a new file holding record 3 alone; the spare is gone.
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 2);
        assert_eq!(fs::metadata(&files[1]).unwrap().len(), 424);
        assert!(spare_files(dir.path()).is_empty());
        drop(wal);
        let (_wal, records, report) = open(o);
        assert_eq!(seqs(&records), [1, 2, 3]);
        assert_eq!((report.recycled_bytes, report.torn_tail_bytes), (0, 0));
    }

    #[test]
    fn a_reused_segment_is_cut_to_its_records_when_sealed_or_dropped() {
        let dir = TempDir::new("recycle-seal");
        let o = small_segments(dir.path(), 1000);
        let (wal, _, _) = open(o.clone());
        append_all(&wal, 1..=8, 200);
        assert_eq!(wal.truncate_through(4).unwrap(), 1);
        // A 424-byte record does not fit after four of 224: segment 9 reuses
        // segment 1, 896 bytes of old records, and stops 24 bytes into the second.
        wal.append(0, &payload(9, 400)).unwrap();
        let segment_9 = segment_files(dir.path())[1].clone();
        assert_eq!(fs::metadata(&segment_9).unwrap().len(), 896);

        // A crash: the rest of the old record the new one ended inside cannot be
        // told from a torn write; the old records after it are counted apart.
        let crashed = crash_copy(dir.path(), "recycle-seal-crash");
        let (_reopened, records, report) = open(opts(crashed.path()));
        assert_eq!(seqs(&records), [5, 6, 7, 8, 9]);
        assert_eq!(records[4].payload, payload(9, 400));
        assert_eq!(
            (report.torn_tail_bytes, report.recycled_bytes),
            (24, 2 * 224)
        );
        assert_eq!(report.quarantined, 0);

        // Sealed when the log moves on: 848 bytes of its own, the old ones cut.
        wal.append(0, &payload(10, 400)).unwrap();
        wal.append(0, &payload(11, 400)).unwrap();
        assert_eq!(fs::metadata(&segment_9).unwrap().len(), 2 * 424);

        // Dropped while a reused segment is active: cut as well, so that the log
        // reopens with nothing to count.
        assert_eq!(wal.truncate_through(10).unwrap(), 2);
        wal.append(0, &payload(12, 400)).unwrap();
        wal.append(0, &payload(13, 200)).unwrap();
        let newest = segment_files(dir.path()).pop().unwrap();
        assert_eq!(fs::metadata(&newest).unwrap().len(), 2 * 424);
        drop(wal);
        assert_eq!(fs::metadata(&newest).unwrap().len(), 224);
        let (_wal, records, report) = open(o);
        assert_eq!(seqs(&records), [11, 12, 13]);
        assert_eq!(
            (
                report.torn_tail_bytes,
                report.recycled_bytes,
                report.quarantined
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn reopening_continues_the_sequence() {
        let dir = TempDir::new("reopen");
        for round in 0..3u64 {
            let (wal, records, report) = open(opts(dir.path()));
            assert_eq!(records.len() as u64, round * 2);
            assert_eq!(report.next_seq, round * 2 + 1);
            wal.append(0, b"a").unwrap();
            wal.append(0, b"b").unwrap();
        }
        // A lake commit ahead of the log (an `os`-mode machine crash lost its
        // last records) moves the sequence past what the commit covers.
        let o = WalOptions {
            resume_after: 100,
            ..opts(dir.path())
        };
        let (wal, replay) = Wal::open(o).unwrap();
        assert_eq!(replay.report().next_seq, 101);
        assert_eq!(
            replay
                .skip_through(4)
                .map(|r| r.unwrap().seq)
                .collect::<Vec<_>>(),
            [5, 6]
        );
        assert_eq!(wal.append(0, b"c").unwrap(), 101);
        drop(wal);
        let (_wal, records, _) = open(opts(dir.path()));
        assert_eq!(seqs(&records), [1, 2, 3, 4, 5, 6, 101]);
    }

    #[test]
    fn a_failed_write_is_cut_off_and_appends_resume() {
        let dir = TempDir::new("write-fault");
        let (wal, _, _) = open(opts(dir.path()));
        wal.append(0, &payload(1, 500)).unwrap();
        let len = wal.bytes();

        wal.faults.write.store(true, Relaxed);
        for _ in 0..3 {
            let err = wal.append(0, &payload(99, 500)).unwrap_err();
            assert!(err.is_retryable(), "{err}");
            assert_eq!(wal.bytes(), len);
            assert_eq!(
                fs::metadata(&segment_files(dir.path())[0]).unwrap().len(),
                len
            );
        }
        wal.faults.write.store(false, Relaxed);
        assert_eq!(wal.append(0, &payload(2, 500)).unwrap(), 2);
        drop(wal);

        let (_wal, records, report) = open(opts(dir.path()));
        assert_eq!(seqs(&records), [1, 2]);
        assert_eq!(records[1].payload, payload(2, 500));
        assert_eq!((report.torn_tail_bytes, report.quarantined), (0, 0));
    }

    #[test]
    fn a_failed_sync_fails_every_waiter_and_rolls_back() {
        let dir = TempDir::new("sync-fault");
        let (wal, _, _) = open(opts(dir.path()));
        wal.append(0, b"durable").unwrap();
        let wal = Arc::new(wal);

        wal.faults.sync.store(true, Relaxed);
        let failures: Vec<Error> = (0..4)
            .map(|i| {
                let wal = Arc::clone(&wal);
                thread::spawn(move || wal.append(0, &payload(i, 100)).unwrap_err())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert!(failures.iter().all(Error::is_retryable));
        assert_eq!(wal.bytes(), (HEADER + 7) as u64);

        wal.faults.sync.store(false, Relaxed);
        // The failed records' numbers are handed out again: the log stays gapless.
        assert_eq!(wal.append(0, b"again").unwrap(), 2);
        drop(wal);
        let (_wal, records, _) = open(opts(dir.path()));
        assert_eq!(seqs(&records), [1, 2]);
        assert_eq!(records[1].payload, b"again");
    }

    #[test]
    fn a_failed_sync_in_a_fresh_segment_cuts_it_back_to_empty() {
        let dir = TempDir::new("rotate-fault");
        let o = WalOptions {
            durability: Durability::Fsync,
            segment_bytes: 300,
            ..opts(dir.path())
        };
        let (wal, _, _) = open(o.clone());
        wal.append(0, &payload(1, 200)).unwrap();
        wal.faults.sync.store(true, Relaxed);
        assert!(wal.append(0, &payload(2, 200)).is_err());
        wal.faults.sync.store(false, Relaxed);
        assert_eq!(wal.append(0, &payload(3, 200)).unwrap(), 2);
        assert_eq!(wal.stats().segments, 2);
        drop(wal);
        let (_wal, records, _) = open(o);
        assert_eq!(seqs(&records), [1, 2]);
        assert_eq!(records[1].payload, payload(3, 200));
    }

    #[test]
    fn an_uncuttable_write_poisons_until_reopened() {
        let dir = TempDir::new("poison");
        let (wal, _, _) = open(opts(dir.path()));
        wal.append(0, b"kept").unwrap();
        wal.faults.write.store(true, Relaxed);
        wal.faults.truncate.store(true, Relaxed);
        assert!(wal.append(0, &payload(2, 300)).unwrap_err().is_retryable());
        wal.faults.write.store(false, Relaxed);
        wal.faults.truncate.store(false, Relaxed);
        let err = wal.append(0, b"refused").unwrap_err();
        assert!(matches!(err, Error::Wal(WalError::Poisoned(_))), "{err}");
        assert!(!err.is_retryable());
        drop(wal);

        let (wal, records, report) = open(opts(dir.path()));
        assert_eq!(seqs(&records), [1]);
        assert_eq!(report.torn_tail_bytes, (HEADER + 300) as u64 / 2);
        assert_eq!(wal.append(0, b"fine").unwrap(), 2);
    }

    const CRASH_CHILD_DIR: &str = "AFTERSHOCK_WAL_CRASH_CHILD_DIR";

    /// Not a test by itself: the child process of
    /// `sigkill_loses_no_acknowledged_record`, which runs the test binary again
    /// with this one selected. Appends from four threads and prints every
    /// acknowledged record, while a fifth retires segments 100 records behind (so
    /// that rotations write over spares), until killed (or, should the parent be
    /// gone, for 20 s).
    #[test]
    fn crash_child() {
        let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) else {
            return;
        };
        let o = WalOptions {
            segment_bytes: 256 << 10,
            ..opts(Path::new(&dir))
        };
        let (wal, replay) = Wal::open(o).unwrap();
        let base = replay.report().next_seq * 1000;
        let wal = Arc::new(wal);
        let started = Instant::now();
        let last_acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (wal, last_acked) = (Arc::clone(&wal), Arc::clone(&last_acked));
                thread::spawn(move || {
                    let mut rng = Rng(base + t);
                    let mut i = 0;
                    while started.elapsed() < Duration::from_secs(20) {
                        let id = (base + t) << 20 | i;
                        let len = 1 + rng.below(12_000);
                        let seq = wal.append(0, &payload(id, len)).unwrap();
                        last_acked.fetch_max(seq, Relaxed);
                        // One write per line, ending in a marker, so a line cut
                        // by the kill is recognisable.
                        let line = format!("acked {seq} {id} {len} end\n");
                        io::stdout().lock().write_all(line.as_bytes()).unwrap();
                        i += 1;
                    }
                })
            })
            .collect();
        // Retires segments well behind the appends, as the lake does after a commit,
        // so that rotations reuse spares: announced before, so that the parent never
        // expects a record it may have retired.
        threads.push(thread::spawn(move || {
            while started.elapsed() < Duration::from_secs(20) {
                thread::sleep(Duration::from_millis(2));
                let through = last_acked.load(Relaxed).saturating_sub(100);
                let line = format!("retiring {through} end\n");
                io::stdout().lock().write_all(line.as_bytes()).unwrap();
                wal.truncate_through(through).unwrap();
            }
        }));
        for t in threads {
            t.join().unwrap();
        }
    }

    #[cfg(unix)]
    #[test]
    fn sigkill_loses_no_acknowledged_record() {
        let dir = TempDir::new("sigkill");
        let exe = std::env::current_exe().unwrap();
        let mut rng = Rng(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64);
        // seq -> (id, len) of every record a child acknowledged, in any round.
        let mut acked = BTreeMap::new();
        // Records up to here may have been retired; the rest must replay.
        let mut retired = 0;
        // Old records cut off recycled segments, over all rounds.
        let mut recycled = 0;
        for round in 0..6 {
            let mut child = Command::new(&exe)
                .args(["--exact", "wal::tests::crash_child", "--nocapture"])
                .env(CRASH_CHILD_DIR, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, rx) = mpsc::channel();
            let (retiring, retirements) = mpsc::channel();
            let reader = thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let f: Vec<&str> = line.split(' ').collect();
                    match f[..] {
                        ["acked", seq, id, len, "end"] => {
                            let parsed = (seq.parse(), id.parse(), len.parse());
                            tx.send((parsed.0.unwrap(), parsed.1.unwrap(), parsed.2.unwrap()))
                                .unwrap();
                        }
                        ["retiring", through, "end"] => {
                            retiring.send(through.parse::<u64>().unwrap()).unwrap()
                        }
                        _ => {}
                    }
                }
            });
            // Kill only once the child is appending, at a random moment after.
            let first: (u64, u64, usize) = rx.recv_timeout(Duration::from_secs(20)).unwrap();
            thread::sleep(Duration::from_millis(rng.below(600) as u64));
            child.kill().unwrap();
            child.wait().unwrap();
            reader.join().unwrap();
            retired = retirements.try_iter().fold(retired, u64::max);
            let before = acked.len();
            for (seq, id, len) in std::iter::once(first).chain(rx.try_iter()) {
                assert!(
                    acked.insert(seq, (id, len)).is_none(),
                    "seq {seq} acked twice"
                );
            }
            assert!(acked.len() > before);

            let (wal, records, report) = open(opts(dir.path()));
            let replayed: BTreeMap<u64, &Record> = records.iter().map(|r| (r.seq, r)).collect();
            assert_eq!(
                replayed.len(),
                records.len(),
                "round {round}: a seq replayed twice"
            );
            assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
            assert_eq!(report.quarantined, 0, "round {round}: {report:?}");
            recycled += report.recycled_bytes;
            for (seq, (id, len)) in acked.range(retired + 1..) {
                let record = replayed
                    .get(seq)
                    .unwrap_or_else(|| panic!("round {round}: acked seq {seq} lost"));
                assert_eq!(
                    record.payload,
                    payload(*id, *len),
                    "round {round}: seq {seq}"
                );
            }
            drop(wal);
        }
        // Retiring every 2 ms, nearly every rotation reuses a spare: a kill finds one
        // being written over nearly every time.
        assert!(
            recycled > 0,
            "no round was killed while a recycled segment was active"
        );
    }

    /// `AFTERSHOCK_WAL_BENCH_DIR` picks the disk (the default temp dir may be
    /// a tmpfs, where fsync costs nothing).
    #[test]
    #[ignore = "benchmark: cargo test --release -p aftershock-core --lib wal::tests::append_throughput -- --ignored --nocapture"]
    fn append_throughput() {
        let tmp = TempDir::new("bench");
        let root = std::env::var_os("AFTERSHOCK_WAL_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| tmp.path().to_path_buf());
        let record = payload(0, 4096);
        for durability in [Durability::Fsync, Durability::Os] {
            for threads in [1, 8] {
                let dir = root.join(format!("bench-{durability:?}-{threads}"));
                let _ = fs::remove_dir_all(&dir);
                let (wal, _) = Wal::open(WalOptions {
                    durability,
                    ..opts(&dir)
                })
                .unwrap();
                let wal = Arc::new(wal);
                let started = Instant::now();
                let run = Duration::from_secs(3);
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        let (wal, record) = (Arc::clone(&wal), record.clone());
                        thread::spawn(move || {
                            while started.elapsed() < run {
                                wal.append(0, &record).unwrap();
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    w.join().unwrap();
                }
                let secs = started.elapsed().as_secs_f64();
                let stats = wal.stats();
                println!(
                    "{durability:?} {threads} thread(s), 4 KiB records: {:.0} records/s, {:.1} MB/s, {:.3} syncs/record",
                    stats.appends as f64 / secs,
                    stats.bytes as f64 / secs / 1e6,
                    stats.syncs as f64 / stats.appends as f64,
                );
                drop(wal);
                let _ = fs::remove_dir_all(&dir);
            }
        }
    }
}
