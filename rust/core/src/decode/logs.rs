//! `ExportLogsServiceRequest` -> `logs` batch.

use super::anyvalue::{render_value, AnyValue, Kind, Parts};
use super::columns::{ContextColumns, Hex, LogRow, LogsBuilder};
use super::wire::{Reader, Value};
use super::{
    nanos, opt, row_estimate, walk_request, AttrWriter, DecodeOptions, DecodeStats, Decoded,
    Envelope, RecordSink,
};
use crate::error::{DecodeError, Error};

pub(super) const ENVELOPE: Envelope = Envelope {
    resources: "resource_logs",
    scopes: "scope_logs",
    records: "log_records",
};

/// Decodes an `ExportLogsServiceRequest` into one `logs` batch. Log records are
/// never rejected: missing or malformed ids just mean "not correlated".
pub fn decode_logs(buf: &[u8], opts: &DecodeOptions) -> Result<Decoded, Error> {
    let mut d = LogDecoder {
        out: LogsBuilder::with_capacity(row_estimate(buf.len()), opts.max_value_bytes),
        attrs: AttrWriter::default(),
        body: String::new(),
        opts,
    };
    let mut stats = DecodeStats::default();
    walk_request(buf, &ENVELOPE, &mut d, opts, &mut stats)?;
    stats.accepted = d.out.rows() as u64;
    let (batch, contexts) = d.out.finish(&mut stats, opts.resource_attributes_once)?;
    Ok(Decoded {
        batch,
        contexts,
        stats,
    })
}

struct LogDecoder<'a, 'o> {
    out: LogsBuilder,
    attrs: AttrWriter<'a>,
    body: String,
    opts: &'o DecodeOptions,
}

fn correlation_id(id: &[u8], len: usize) -> Option<Hex> {
    (id.len() == len && id.iter().any(|&b| b != 0)).then(|| Hex::new(id))
}

impl<'a> RecordSink<'a> for LogDecoder<'a, '_> {
    fn contexts(&mut self) -> &mut ContextColumns {
        &mut self.out.contexts
    }

    fn record(
        &mut self,
        buf: &'a [u8],
        base: usize,
        context: u32,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        let mut time = 0u64;
        let mut observed = 0u64;
        let mut severity = 0u64;
        let mut severity_text: &[u8] = b"";
        let mut body = Parts::default();
        let mut trace_id: &[u8] = b"";
        let mut span_id: &[u8] = b"";
        let mut event_name: &[u8] = b"";
        let mut r = Reader::new(buf, base);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (1, Value::Fixed64(x)) => time = x,
                (11, Value::Fixed64(x)) => observed = x,
                (2, Value::Varint(x)) => severity = x,
                (3, Value::Bytes(b, _)) => severity_text = b,
                (5, Value::Bytes(b, at)) => body.push(b, at),
                (6, Value::Bytes(b, at)) => self.attrs.push(b, at)?,
                (9, Value::Bytes(b, _)) => trace_id = b,
                (10, Value::Bytes(b, _)) => span_id = b,
                (12, Value::Bytes(b, _)) => event_name = b,
                _ => {}
            }
        }
        self.attrs.write(self.out.attributes(), self.opts, stats)?;

        self.body.clear();
        // A string body (most of them) goes to the column as it is, checked for
        // UTF-8 with the column; anything else is rendered first.
        let text: Option<&[u8]> = match body.kind().map_err(|e| e.within("body", None))? {
            None => None,
            Some(Kind::Str(s)) => Some(s),
            Some(_) => {
                render_value(&body, &mut self.body, self.opts, stats)
                    .map_err(|e| e.within("body", None))?;
                Some(self.body.as_bytes())
            }
        };
        let log = LogFields {
            time,
            observed,
            // An enum on the wire; out-of-range values keep their low 32 bits as protobuf does.
            severity: severity as i32,
            severity_text,
            trace_id,
            span_id,
            event_name,
        };
        log.append_to(&mut self.out, text, context);
        Ok(())
    }
}

/// One log record's scalar fields as either encoding reads them (ids as raw bytes).
pub(super) struct LogFields<'a> {
    pub time: u64,
    pub observed: u64,
    pub severity: i32,
    pub severity_text: &'a [u8],
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub event_name: &'a [u8],
}

impl LogFields<'_> {
    /// Appends the record with its rendered body; its attributes were written already.
    pub(super) fn append_to(&self, out: &mut LogsBuilder, body: Option<&[u8]>, context: u32) {
        let tid = correlation_id(self.trace_id, 16);
        let sid = correlation_id(self.span_id, 8);
        let (time, observed) = (nanos(self.time), nanos(self.observed));
        let observed_time = (observed != 0).then_some(observed);
        let row = LogRow {
            time: if time != 0 { Some(time) } else { observed_time },
            observed_time,
            trace_id: tid.as_ref().map(Hex::as_bytes),
            span_id: sid.as_ref().map(Hex::as_bytes),
            severity_number: self.severity,
            severity_text: opt(self.severity_text),
            body,
            event_name: opt(self.event_name),
        };
        out.append(&row, context);
    }
}
