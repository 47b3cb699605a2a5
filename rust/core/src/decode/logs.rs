//! `ExportLogsServiceRequest` -> `logs` batch.

use super::anyvalue::render_value;
use super::columns::{Entries, Hex, LogRow, LogsBuilder, ResourceCtx, ScopeCtx};
use super::wire::{fixed64_value, varint_value, Reader, Value};
use super::{
    nanos, row_estimate, text, walk_request, walk_resource, walk_scope, DecodeOptions, DecodeStats,
    Decoded,
};
use crate::error::{DecodeError, Error};

/// Decodes an `ExportLogsServiceRequest` into one `logs` batch. Log records are
/// never rejected: missing or malformed ids just mean "not correlated".
pub fn decode_logs(buf: &[u8], opts: &DecodeOptions) -> Result<Decoded, Error> {
    let mut d = LogDecoder {
        out: LogsBuilder::with_capacity(row_estimate(buf.len())),
        attrs: Entries::default(),
        body: String::new(),
        opts,
    };
    let mut stats = DecodeStats::default();
    walk_request(buf, "resource_logs", |rl, at| {
        walk_resource(
            rl,
            at,
            "scope_logs",
            opts,
            &mut stats,
            |res, sl, at, stats| {
                walk_scope(sl, at, "log_records", stats, |scope, rec, at, _, stats| {
                    d.record(rec, at, res, scope, stats)
                })
            },
        )
    })?;
    stats.accepted = d.out.rows() as u64;
    Ok(Decoded {
        batch: d.out.finish()?,
        stats,
    })
}

struct LogDecoder<'o> {
    out: LogsBuilder,
    attrs: Entries,
    body: String,
    opts: &'o DecodeOptions,
}

fn correlation_id(id: &[u8], len: usize) -> Option<Hex> {
    (id.len() == len && id.iter().any(|&b| b != 0)).then(|| Hex::new(id))
}

impl LogDecoder<'_> {
    fn record(
        &mut self,
        buf: &[u8],
        base: usize,
        res: &ResourceCtx,
        scope: &ScopeCtx,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        let mut time = 0u64;
        let mut observed = 0u64;
        let mut severity = 0u64;
        let mut severity_text: &[u8] = b"";
        let mut body: Option<(&[u8], usize)> = None;
        let mut trace_id: &[u8] = b"";
        let mut span_id: &[u8] = b"";
        let mut event_name: &[u8] = b"";
        let mut na = 0;
        self.attrs.clear();
        let mut r = Reader::new(buf, base);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (1, v) => time = fixed64_value(v).unwrap_or(time),
                (11, v) => observed = fixed64_value(v).unwrap_or(observed),
                (2, v) => severity = varint_value(v)?.unwrap_or(severity),
                (3, Value::Bytes(b, _)) => severity_text = b,
                (5, Value::Bytes(b, at)) => body = Some((b, at)),
                (6, Value::Bytes(b, at)) => {
                    super::push_key_value(&mut self.attrs, b, at, self.opts, stats)
                        .map_err(|e| e.within("attributes", Some(na)))?;
                    na += 1;
                }
                (9, Value::Bytes(b, _)) => trace_id = b,
                (10, Value::Bytes(b, _)) => span_id = b,
                (12, Value::Bytes(b, _)) => event_name = b,
                _ => {}
            }
        }
        self.attrs.resolve_duplicates();

        self.body.clear();
        let has_body = match body {
            Some((b, at)) => render_value(b, at, &mut self.body, self.opts, stats)
                .map_err(|e| e.within("body", None))?,
            None => false,
        };
        let tid = correlation_id(trace_id, 16);
        let sid = correlation_id(span_id, 8);
        let severity_text = text(severity_text, stats);
        let event_name = text(event_name, stats);
        let (time, observed) = (nanos(time), nanos(observed));
        let observed_time = (observed != 0).then_some(observed);
        let row = LogRow {
            time: if time != 0 { Some(time) } else { observed_time },
            observed_time,
            trace_id: tid.as_ref().map(Hex::as_str),
            span_id: sid.as_ref().map(Hex::as_str),
            // An enum on the wire; out-of-range values keep their low 32 bits as protobuf does.
            severity_number: severity as i32,
            severity_text: (!severity_text.is_empty()).then_some(&*severity_text),
            body: has_body.then_some(self.body.as_str()),
            event_name: (!event_name.is_empty()).then_some(&*event_name),
        };
        self.out
            .append(&row, &self.attrs, res, scope)
            .map_err(|e| DecodeError::new(base, e.to_string()))
    }
}
