//! The lake writer: durable ingest in front of the Delta tables.
//!
//! `ingest_*` decodes a request, appends its bytes to the WAL and returns once they
//! are durable; the decoded rows wait in memory until [`Lake::flush`] writes them as
//! Parquet data files. Committing those files to Delta is the caller's job (the
//! Python layer, through delta-rs); it reports back with [`Lake::committed`], and only
//! then are rows dropped from memory and WAL segments deleted.
//!
//! Exactly-once across crashes: every Delta commit carries the WAL sequence number it
//! covers as a `txn` version for this receiver. On open, the caller passes those
//! versions in, and the WAL records after them are decoded again; each table takes
//! only the records it does not have yet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;

use crate::decode::{
    decode_logs, decode_logs_json, decode_traces, decode_traces_json, Contexts, DecodeOptions,
    DecodeStats, Decoded,
};
use crate::error::{Error, Result};
use crate::parquet_files::{sweep_stale_temp_files, write_data_files, DataFile, ParquetOptions};
use crate::rollup::Rollups;
use crate::schema::{LOGS, ROLLUPS, SPANS};
use crate::wal::{Durability, Wal, WalOptions};

/// WAL record kinds: the raw OTLP request of each signal, in each encoding. The
/// numbers are on disk: never reuse one. Records of a kind this build does not
/// know are skipped on replay.
const KIND_TRACES: u8 = 1;
const KIND_LOGS: u8 = 2;
const KIND_TRACES_JSON: u8 = 3;
const KIND_LOGS_JSON: u8 = 4;

/// Decodes a WAL record (or a request about to become one) of `kind`, each resource's
/// attributes once ([`DecodeOptions::resource_attributes_once`]): the batch is buffered
/// with its contexts and written by `write_data_files`, which encodes the column from them.
fn decode_kind(kind: u8, payload: &[u8], opts: &DecodeOptions) -> Result<Decoded> {
    let opts = &DecodeOptions {
        resource_attributes_once: true,
        ..opts.clone()
    };
    match kind {
        KIND_TRACES => decode_traces(payload, opts),
        KIND_LOGS => decode_logs(payload, opts),
        KIND_TRACES_JSON => decode_traces_json(payload, opts),
        KIND_LOGS_JSON => decode_logs_json(payload, opts),
        _ => Err(Error::Internal(format!("unknown record kind {kind}"))),
    }
}

/// The tables the writer fills, in commit order.
pub const TABLES: [&str; 3] = [SPANS, LOGS, ROLLUPS];

/// The most decoded rows one Parquet write takes: as much as a flush takes by default
/// (`max_flush_bytes`), so that a default flush is one write, a file per day partition
/// (a write is cut by the rule the flush takes rows by). Each write's files pay once for
/// what does not grow with their rows (footer, page indexes, dictionaries, an fsync, a
/// Delta add action), and the compaction every span later goes through finds large files
/// it copies rather than small ones it merges. Against 32 MiB writes (`bench_lake.py`):
/// - realistic traces need no compaction any more (0.44-0.48 -> 0.01-0.02 us a span), so
///   with it counted in a core sustains 1.03-1.08M spans/s instead of 0.69-0.73M;
/// - the flushes themselves take 1-5% less CPU a span, within the bench's noise for the
///   whole run;
/// - random spans take 53.7 instead of 55.2 B/span;
/// - peak RSS is unchanged (1.05 GiB in `bench_lake.py`, 1.15 GiB for `aftershock serve`
///   under `bench_receiver.py`).
pub const MAX_WRITE_BYTES: usize = 128 << 20;

#[derive(Debug, Clone)]
pub struct LakeOptions {
    /// This writer's own state: its WAL (and the quarantine beside it).
    pub data_dir: PathBuf,
    /// Where the Delta tables live, one directory each: `data_dir` unless several writers
    /// share one table location, each with a `data_dir` of its own.
    pub tables_dir: PathBuf,
    pub durability: Durability,
    /// Memory for decoded rows not yet committed; beyond it ingest answers busy.
    pub max_buffer_bytes: usize,
    /// Most decoded rows one flush (one Delta commit per table) takes, so that a flush
    /// frees memory before the whole budget is written. Each Delta commit costs the same
    /// whatever it adds (10-30 ms of CPU with delta-rs: the log is read back), so a
    /// flush should be large.
    pub max_flush_bytes: usize,
    /// Most decoded rows one Parquet write takes ([`MAX_WRITE_BYTES`]): writing needs
    /// memory of its own (sort order, encoders) in proportion.
    pub max_write_bytes: usize,
    pub decode: DecodeOptions,
    pub parquet: ParquetOptions,
    /// Each table's committed WAL sequence (its Delta `txn` version), 0 if none.
    pub committed: HashMap<String, u64>,
}

impl LakeOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        LakeOptions {
            tables_dir: data_dir.clone(),
            data_dir,
            durability: Durability::Fsync,
            max_buffer_bytes: 512 << 20,
            max_flush_bytes: 128 << 20,
            max_write_bytes: MAX_WRITE_BYTES,
            decode: DecodeOptions::default(),
            parquet: ParquetOptions::default(),
            committed: HashMap::new(),
        }
    }

    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("wal")
    }

    pub fn table_dir(&self, table: &str) -> PathBuf {
        self.tables_dir.join(table)
    }
}

/// What one ingest call did.
#[derive(Debug, Clone, Default)]
pub struct IngestOutcome {
    pub accepted: u64,
    pub rejected: u64,
    pub stats: DecodeStats,
    /// The WAL sequence of the request, if anything was stored.
    pub seq: Option<u64>,
}

/// Files written for one table, waiting to be committed with `txn` version `seq`.
#[derive(Debug, Clone)]
pub struct PendingCommit {
    pub table: &'static str,
    pub seq: u64,
    pub files: Vec<DataFile>,
    pub rows: u64,
}

/// What opening the lake found and replayed.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    pub replayed_records: u64,
    pub replayed_rows: u64,
    pub torn_tail_bytes: u64,
    pub quarantined_records: u64,
    /// Half-written Parquet files of a crashed flush, deleted.
    pub stale_temp_files: usize,
}

struct Buffered {
    seq: u64,
    table: &'static str,
    batch: RecordBatch,
    /// Which rows share a resource and a scope, for the Parquet writer.
    contexts: Contexts,
    bytes: usize,
}

#[derive(Default)]
struct State {
    batches: Vec<Buffered>,
    bytes: usize,
    /// For each ingest between its WAL append and its batch being buffered: a lower
    /// bound of the sequence it will get. A flush must not claim those sequences.
    in_flight: HashMap<u64, u64>,
    next_ticket: u64,
    committed: HashMap<&'static str, u64>,
    oldest: Option<Instant>,
    /// When the `flush` under way started.
    flush_started: Option<Instant>,
    /// How long the last `flush` took (writing the files; commits add little).
    last_flush: Option<Duration>,
}

impl State {
    /// The highest sequence such that every acknowledged record up to it is buffered.
    fn watermark(&self) -> u64 {
        let buffered = self.batches.iter().map(|b| b.seq).max().unwrap_or(0);
        match self.in_flight.values().min() {
            Some(&floor) => buffered.min(floor.saturating_sub(1)),
            None => buffered,
        }
    }

    fn committed(&self, table: &str) -> u64 {
        self.committed.get(table).copied().unwrap_or(0)
    }

    /// The highest sequence one flush takes: the watermark, or lower, where the rows after
    /// every table's commit reach `max_bytes` (always at least one record).
    fn flush_limit(&self, max_bytes: usize) -> u64 {
        let w = self.watermark();
        let from = TABLES.iter().map(|t| self.committed(t)).min().unwrap_or(0);
        let mut pending: Vec<(u64, usize)> = self
            .batches
            .iter()
            .filter(|b| b.seq > from && b.seq <= w)
            .map(|b| (b.seq, b.bytes))
            .collect();
        pending.sort_unstable();
        let mut total = 0usize;
        for (seq, bytes) in pending {
            total += bytes;
            if total >= max_bytes {
                return seq;
            }
        }
        w
    }
}

pub struct Lake {
    opts: LakeOptions,
    wal: Wal,
    state: Mutex<State>,
}

/// The table a decoded record kind lands in first (rollups derive from spans).
fn table_of(kind: u8) -> Option<&'static str> {
    match kind {
        KIND_TRACES | KIND_TRACES_JSON => Some(SPANS),
        KIND_LOGS | KIND_LOGS_JSON => Some(LOGS),
        _ => None,
    }
}

impl Lake {
    /// Opens the WAL under `data_dir/wal` and replays what the tables do not have yet.
    pub fn open(opts: LakeOptions) -> Result<(Lake, OpenReport)> {
        let mut state = State::default();
        for table in TABLES {
            state
                .committed
                .insert(table, opts.committed.get(table).copied().unwrap_or(0));
        }
        let mut wal_opts = WalOptions::new(opts.wal_dir());
        wal_opts.durability = opts.durability;
        // Sequences a commit already covers are never handed out again, even if the
        // WAL lost them (`os` durability and a machine crash).
        wal_opts.resume_after = TABLES.iter().map(|t| state.committed(t)).max().unwrap_or(0);
        let (wal, replay) = Wal::open(wal_opts)?;
        let mut report = OpenReport {
            torn_tail_bytes: replay.report().torn_tail_bytes,
            quarantined_records: replay.report().quarantined,
            ..OpenReport::default()
        };
        for table in TABLES {
            report.stale_temp_files += sweep_stale_temp_files(&opts.table_dir(table))?;
        }
        let oldest_needed = TABLES.iter().map(|t| state.committed(t)).min().unwrap_or(0);
        for record in replay.skip_through(oldest_needed) {
            let record = record?;
            let Some(table) = table_of(record.kind) else {
                continue;
            };
            let needed = match table {
                SPANS => record.seq > state.committed(SPANS).min(state.committed(ROLLUPS)),
                _ => record.seq > state.committed(table),
            };
            if !needed {
                continue;
            }
            // A record was acknowledged only after it decoded, so it decodes again;
            // should it not (a different build, a damaged file), skip it, not loop.
            let decoded = decode_kind(record.kind, &record.payload, &opts.decode);
            let Ok(decoded) = decoded else {
                report.quarantined_records += 1;
                quarantine_undecodable(&opts.wal_dir(), record.seq, &record.payload)?;
                continue;
            };
            report.replayed_records += 1;
            report.replayed_rows += decoded.batch.num_rows() as u64;
            push(&mut state, record.seq, table, decoded);
        }
        Ok((
            Lake {
                opts,
                wal,
                state: Mutex::new(state),
            },
            report,
        ))
    }

    pub fn options(&self) -> &LakeOptions {
        &self.opts
    }

    pub fn ingest_traces(&self, request: &[u8]) -> Result<IngestOutcome> {
        self.ingest(KIND_TRACES, request)
    }

    pub fn ingest_logs(&self, request: &[u8]) -> Result<IngestOutcome> {
        self.ingest(KIND_LOGS, request)
    }

    /// [`Lake::ingest_traces`] for an OTLP/JSON request; the WAL records it as JSON.
    pub fn ingest_traces_json(&self, request: &[u8]) -> Result<IngestOutcome> {
        self.ingest(KIND_TRACES_JSON, request)
    }

    /// [`Lake::ingest_logs`] for an OTLP/JSON request; the WAL records it as JSON.
    pub fn ingest_logs_json(&self, request: &[u8]) -> Result<IngestOutcome> {
        self.ingest(KIND_LOGS_JSON, request)
    }

    fn ingest(&self, kind: u8, request: &[u8]) -> Result<IngestOutcome> {
        {
            // Refuse before decoding when the rows cannot fit: under overload the CPU is
            // better spent on the flush that frees memory than on rows that will be
            // refused. Decoded rows take at least as many bytes as their encoding (hex ids
            // double, maps add offsets), so the request's size is a safe lower bound.
            let st = self.lock()?;
            if st.bytes + request.len() > self.opts.max_buffer_bytes && !st.batches.is_empty() {
                return Err(Error::Busy {
                    retry_after_ms: self.retry_after_ms(&st),
                });
            }
        }
        let decoded = decode_kind(kind, request, &self.opts.decode)?;
        let mut outcome = IngestOutcome {
            accepted: decoded.stats.accepted,
            rejected: decoded.stats.rejected,
            stats: decoded.stats.clone(),
            seq: None,
        };
        if decoded.batch.num_rows() == 0 {
            return Ok(outcome);
        }
        let table =
            table_of(kind).ok_or_else(|| Error::Internal(format!("unknown record kind {kind}")))?;
        let ticket = {
            let mut st = self.lock()?;
            let size = decoded.memory_size();
            if st.bytes + size > self.opts.max_buffer_bytes && !st.batches.is_empty() {
                return Err(Error::Busy {
                    retry_after_ms: self.retry_after_ms(&st),
                });
            }
            let ticket = st.next_ticket;
            st.next_ticket += 1;
            st.in_flight.insert(ticket, self.wal.next_seq());
            ticket
        };
        let appended = self.wal.append(kind, request);
        let mut st = self.lock()?;
        st.in_flight.remove(&ticket);
        let seq = appended?;
        push(&mut st, seq, table, decoded);
        outcome.seq = Some(seq);
        Ok(outcome)
    }

    /// The wait before retrying: about when the flush under way (or the one about to
    /// start, as the buffer is full) should have freed memory, judged by how long the last
    /// one took; before any flush, the time left until the age-based one. Between 100 ms and
    /// 2 s. A fixed long wait left the core idle while clients slept past a short flush.
    fn retry_after_ms(&self, st: &State) -> u64 {
        retry_wait_ms(
            st.last_flush,
            st.flush_started.map(|t| t.elapsed()),
            st.oldest.map(|t| t.elapsed()),
        )
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::Internal("lake state lock poisoned".into()))
    }

    /// Bytes of decoded rows waiting for a commit.
    pub fn buffered_bytes(&self) -> usize {
        self.state.lock().map(|s| s.bytes).unwrap_or(0)
    }

    /// Seconds since the oldest uncommitted row arrived (0 when nothing waits).
    pub fn buffered_age_secs(&self) -> f64 {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.oldest)
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }

    pub fn wal_bytes(&self) -> u64 {
        self.wal.bytes()
    }

    /// Writes every buffered row up to the watermark as Parquet data files and returns
    /// one pending commit per table with new rows. Rows stay buffered until
    /// [`Lake::committed`]: if the commit fails, the next flush writes them again.
    pub fn flush(&self) -> Result<Vec<PendingCommit>> {
        let started = Instant::now();
        self.lock()?.flush_started = Some(started);
        let written = self.write_pending();
        let mut st = self.lock()?;
        st.flush_started = None;
        st.last_flush = Some(started.elapsed());
        written
    }

    fn write_pending(&self) -> Result<Vec<PendingCommit>> {
        let (watermark, buffered, committed) = {
            let st = self.lock()?;
            let w = st.flush_limit(self.opts.max_flush_bytes);
            let from = TABLES.iter().map(|t| st.committed(t)).min().unwrap_or(0);
            let buffered: Vec<(u64, &'static str, Batch, usize)> = st
                .batches
                .iter()
                .filter(|b| b.seq > from && b.seq <= w)
                .map(|b| {
                    let batch = (b.batch.clone(), Some(b.contexts.clone()));
                    (b.seq, b.table, batch, b.bytes)
                })
                .collect();
            (w, buffered, st.committed.clone())
        };
        let done = |table: &str| committed.get(table).copied().unwrap_or(0);
        let mut rollups = Rollups::new();
        for (seq, table, (batch, contexts), _) in &buffered {
            if *table == SPANS && *seq > done(ROLLUPS) {
                rollups.add_spans(batch, contexts.as_ref())?;
            }
        }
        let rollup_batches = if rollups.is_empty() {
            Vec::new()
        } else {
            vec![((rollups.finish()?, None), 0)]
        };
        let rows_of = |table: &str| -> Vec<(Batch, usize)> {
            buffered
                .iter()
                .filter(|(seq, t, _, _)| *t == table && *seq > done(table))
                .map(|(_, _, batch, bytes)| (batch.clone(), *bytes))
                .collect()
        };
        let mut pending = Vec::new();
        for (table, batches) in [
            (SPANS, rows_of(SPANS)),
            (LOGS, rows_of(LOGS)),
            (ROLLUPS, rollup_batches),
        ] {
            if watermark <= done(table) {
                continue;
            }
            let rows: u64 = batches.iter().map(|((b, _), _)| b.num_rows() as u64).sum();
            let mut files = Vec::new();
            for (chunk, contexts) in write_chunks(&batches, self.opts.max_write_bytes) {
                files.extend(write_data_files(
                    &self.opts.table_dir(table),
                    table,
                    &chunk,
                    &contexts,
                    &self.opts.parquet,
                )?);
            }
            pending.push(PendingCommit {
                table,
                seq: watermark,
                files,
                rows,
            });
        }
        Ok(pending)
    }

    /// Records that `table` now holds every row up to WAL sequence `seq` (its Delta
    /// commit succeeded); drops rows every table has and deletes covered WAL segments.
    pub fn committed(&self, table: &str, seq: u64) -> Result<()> {
        let Some(&table) = TABLES.iter().find(|t| **t == table) else {
            return Err(Error::Internal(format!("no table named {table:?}")));
        };
        let through = {
            let mut st = self.lock()?;
            let c = st.committed.entry(table).or_insert(0);
            *c = (*c).max(seq);
            let spans_done = st.committed(SPANS).min(st.committed(ROLLUPS));
            let logs_done = st.committed(LOGS);
            let mut freed = 0;
            st.batches.retain(|b| {
                let done = if b.table == SPANS {
                    spans_done
                } else {
                    logs_done
                };
                let keep = b.seq > done;
                if !keep {
                    freed += b.bytes;
                }
                keep
            });
            st.bytes -= freed;
            if st.batches.is_empty() {
                st.oldest = None;
            }
            // Everything up to the lowest table watermark is in Delta; a table with no
            // rows in that range has nothing to lose either.
            TABLES.iter().map(|t| st.committed(t)).min().unwrap_or(0)
        };
        self.wal.truncate_through(through)?;
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        &self.opts.data_dir
    }
}

/// [`Lake::retry_after_ms`] from the last flush's duration, the running flush's age and
/// the oldest buffered row's age.
fn retry_wait_ms(
    last_flush: Option<Duration>,
    running_for: Option<Duration>,
    oldest_age: Option<Duration>,
) -> u64 {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let wait = match (last_flush, running_for, oldest_age) {
        (Some(took), Some(running), _) => ms(took).saturating_sub(ms(running)),
        (Some(took), None, _) => ms(took),
        (None, _, Some(age)) => 2000u64.saturating_sub(ms(age)),
        (None, _, None) => 250,
    };
    wait.clamp(100, 2000)
}

/// A batch to write and which of its rows share a resource and a scope, if known.
type Batch = (RecordBatch, Option<Contexts>);

/// `batches` in order, cut into runs that each end with the batch that brings them to
/// `max_bytes` or more (the last run may hold less), the rule [`State::flush_limit`]
/// takes a flush's batches by: a flush of at most `max_flush_bytes` is one write when
/// `max_write_bytes` is as large. Each run's batches and their contexts, as
/// [`write_data_files`] takes them.
fn write_chunks(
    batches: &[(Batch, usize)],
    max_bytes: usize,
) -> Vec<(Vec<RecordBatch>, Vec<Option<Contexts>>)> {
    let mut chunks: Vec<(Vec<RecordBatch>, Vec<Option<Contexts>>)> = Vec::new();
    // Bytes of the last run; `max_bytes` makes the first batch start one.
    let mut size = max_bytes;
    for ((batch, contexts), bytes) in batches {
        if size >= max_bytes {
            chunks.push((Vec::new(), Vec::new()));
            size = 0;
        }
        if let Some((run, run_contexts)) = chunks.last_mut() {
            run.push(batch.clone());
            run_contexts.push(contexts.clone());
        }
        size += bytes;
    }
    chunks
}

/// Keeps a WAL record that no longer decodes out of the way, for a human to look at.
fn quarantine_undecodable(wal_dir: &Path, seq: u64, payload: &[u8]) -> Result<()> {
    let dir = wal_dir.join("quarantine");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("undecodable-{seq:020}.bin")), payload)?;
    Ok(())
}

fn push(st: &mut State, seq: u64, table: &'static str, decoded: Decoded) {
    let bytes = decoded.memory_size();
    let Decoded {
        batch, contexts, ..
    } = decoded;
    st.bytes += bytes;
    st.oldest.get_or_insert_with(Instant::now);
    st.batches.push(Buffered {
        seq,
        table,
        batch,
        contexts,
        bytes,
    });
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    use super::*;
    use crate::test_support::TempDir;

    /// A request of `spans` spans of one service, with ids unique to `n`.
    fn request(n: u64, spans: u64) -> Vec<u8> {
        let service = KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("checkout".into())),
            }),
            ..Default::default()
        };
        let start = 1_709_164_800_000_000_000 + n * 1_000_000_000;
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![service],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: (0..spans)
                        .map(|i| Span {
                            trace_id: [n.to_be_bytes(), 1u64.to_be_bytes()].concat(),
                            span_id: (n * spans + i + 1).to_be_bytes().to_vec(),
                            name: "GET /cart".into(),
                            start_time_unix_nano: start + i,
                            end_time_unix_nano: start + i + 1_000_000,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn one_flush_writes_in_bounded_pieces_and_commits_once_per_table() {
        let dir = TempDir::new("lake-chunks");
        let mut opts = LakeOptions::new(dir.path());
        opts.durability = Durability::Os;
        let (lake, _) = Lake::open(opts.clone()).unwrap();
        let per_request = lake.ingest_traces(&request(0, 500)).unwrap();
        assert_eq!(per_request.accepted, 500);
        let bytes = lake.buffered_bytes();
        drop(lake);
        // Each write takes about 3 requests; a flush takes about 8.
        opts.max_write_bytes = bytes * 3;
        opts.max_flush_bytes = bytes * 8;
        let _ = std::fs::remove_dir_all(dir.path());
        let (lake, _) = Lake::open(opts).unwrap();
        for n in 0..20 {
            lake.ingest_traces(&request(n, 500)).unwrap();
        }
        let pending = lake.flush().unwrap();
        let tables: Vec<&str> = pending.iter().map(|p| p.table).collect();
        assert_eq!(tables, [SPANS, LOGS, ROLLUPS]);
        let (spans, rollups) = (&pending[0], &pending[2]);
        assert_eq!(spans.rows, 8 * 500);
        assert!(pending.iter().all(|p| p.seq == spans.seq));
        // 8 requests in writes that close once they hold 3 requests' bytes: three files,
        // all in the one commit.
        assert_eq!(spans.files.len(), 3);
        assert_eq!(spans.files.iter().map(|f| f.rows).sum::<u64>(), 8 * 500);
        // The rollups of the 8 requests are computed together, into one file.
        assert_eq!(rollups.files.len(), 1);
        for p in &pending {
            lake.committed(p.table, p.seq).unwrap();
        }
        // The next flush starts where the commit ended.
        let next = lake.flush().unwrap();
        assert_eq!(next[0].rows, 8 * 500);
        assert!(next[0].seq > spans.seq);
    }

    /// A write closes with the batch that brings it to the limit, as a flush does: a flush
    /// of at most the write limit is one write, not a full one and a sliver.
    #[test]
    fn a_write_takes_batches_as_a_flush_takes_them() {
        let batch = RecordBatch::new_empty(crate::schema::spans_schema());
        let batches: Vec<(Batch, usize)> = [5, 5, 5, 1, 9, 3]
            .iter()
            .map(|&bytes| ((batch.clone(), None), bytes))
            .collect();
        let runs = |max| -> Vec<usize> {
            write_chunks(&batches, max)
                .iter()
                .map(|(b, c)| {
                    assert_eq!(b.len(), c.len());
                    b.len()
                })
                .collect()
        };
        assert_eq!(runs(10), [2, 3, 1]);
        assert_eq!(runs(11), [3, 3]);
        assert_eq!(runs(28), [6]);
        assert_eq!(runs(1), [1; 6]);
        assert!(write_chunks(&[], 10).is_empty());
    }

    #[test]
    fn the_budget_counts_the_rows_and_their_contexts() {
        let dir = TempDir::new("lake-bytes");
        let mut opts = LakeOptions::new(dir.path());
        opts.durability = Durability::Os;
        let (lake, _) = Lake::open(opts.clone()).unwrap();
        let req = request(0, 500);
        lake.ingest_traces(&req).unwrap();
        let decoded = decode_kind(KIND_TRACES, &req, &opts.decode).unwrap();
        // A context a row, of one resource and scope: at least 4 bytes a row more, and
        // the resource's attributes, held once.
        assert_eq!(decoded.contexts.row_context.len(), 500);
        let once = decoded.contexts.resource_attributes.as_ref().unwrap();
        assert_eq!(once.len(), 1);
        let size = decoded.batch.get_array_memory_size() + 500 * 4 + 4;
        assert!(decoded.memory_size() >= size + once.get_array_memory_size());
        // Less than with the attributes in every row.
        assert!(decoded.memory_size() < decode_traces(&req, &opts.decode).unwrap().memory_size());
        assert_eq!(lake.buffered_bytes(), decoded.memory_size());
        // Replayed rows are counted the same.
        drop(lake);
        let (lake, _) = Lake::open(opts).unwrap();
        assert_eq!(lake.buffered_bytes(), decoded.memory_size());
    }

    #[test]
    fn busy_clients_wait_about_as_long_as_a_flush_takes() {
        let ms = Duration::from_millis;
        // Before any flush: until the age-based flush (2 s after the oldest row).
        assert_eq!(retry_wait_ms(None, None, Some(ms(500))), 1500);
        assert_eq!(retry_wait_ms(None, None, None), 250);
        // A flush took 400 ms: wait that long, or what is left of the one under way.
        assert_eq!(retry_wait_ms(Some(ms(400)), None, Some(ms(50))), 400);
        assert_eq!(retry_wait_ms(Some(ms(400)), Some(ms(150)), None), 250);
        // Never shorter than 100 ms (a flush overrunning its estimate) nor over 2 s.
        assert_eq!(retry_wait_ms(Some(ms(400)), Some(ms(900)), None), 100);
        assert_eq!(retry_wait_ms(Some(ms(9000)), None, None), 2000);
        assert_eq!(retry_wait_ms(None, None, Some(ms(5000))), 100);
    }
}
