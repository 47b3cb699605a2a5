//! `ExportTraceServiceRequest` -> `spans` batch.

use super::columns::{hex_string, Entries, Hex, ResourceCtx, ScopeCtx, SpanRow, SpansBuilder};
use super::wire::{fixed64_value, varint_value, Reader, Value};
use super::{
    nanos, read_attributes, row_estimate, text, walk_request, walk_resource, walk_scope,
    DecodeOptions, DecodeStats, Decoded,
};
use crate::error::{DecodeError, Error};
use crate::schema::{SPAN_KINDS, STATUS_CODES};

/// Decodes an `ExportTraceServiceRequest` into one `spans` batch. Spans with
/// invalid ids are left out and counted in `stats.rejected`; malformed protobuf
/// anywhere fails the whole request.
pub fn decode_traces(buf: &[u8], opts: &DecodeOptions) -> Result<Decoded, Error> {
    let mut d = SpanDecoder {
        out: SpansBuilder::with_capacity(row_estimate(buf.len())),
        attrs: Entries::default(),
        scratch: Entries::default(),
        opts,
    };
    let mut stats = DecodeStats::default();
    walk_request(buf, "resource_spans", |rs, at| {
        walk_resource(
            rs,
            at,
            "scope_spans",
            opts,
            &mut stats,
            |res, ss, at, stats| {
                walk_scope(ss, at, "spans", stats, |scope, span, at, _, stats| {
                    d.span(span, at, res, scope, stats)
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

struct SpanDecoder<'o> {
    out: SpansBuilder,
    /// The current span's attributes.
    attrs: Entries,
    /// An event's or link's attributes.
    scratch: Entries,
    opts: &'o DecodeOptions,
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|&b| b != 0)
}

impl SpanDecoder<'_> {
    fn span(
        &mut self,
        buf: &[u8],
        base: usize,
        res: &ResourceCtx,
        scope: &ScopeCtx,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        let mut trace_id: &[u8] = b"";
        let mut span_id: &[u8] = b"";
        let mut parent: &[u8] = b"";
        let mut trace_state: &[u8] = b"";
        let mut name: &[u8] = b"";
        let mut kind = 0u64;
        let mut start = 0u64;
        let mut end = 0u64;
        let mut status_message: &[u8] = b"";
        let mut status_code = 0u64;
        let mut nested = false;

        let mut r = Reader::new(buf, base);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (1, Value::Bytes(b, _)) => trace_id = b,
                (2, Value::Bytes(b, _)) => span_id = b,
                (3, Value::Bytes(b, _)) => trace_state = b,
                (4, Value::Bytes(b, _)) => parent = b,
                (5, Value::Bytes(b, _)) => name = b,
                (6, v) => kind = varint_value(v)?.unwrap_or(kind),
                (7, v) => start = fixed64_value(v).unwrap_or(start),
                (8, v) => end = fixed64_value(v).unwrap_or(end),
                (9 | 11 | 13, Value::Bytes(..)) => nested = true,
                (15, Value::Bytes(b, at)) => {
                    // Status is merged field by field if it occurs more than once.
                    let mut s = Reader::new(b, at);
                    while let Some((f, v)) = s.next().map_err(|e| e.within("status", None))? {
                        match (f, v) {
                            (2, Value::Bytes(m, _)) => status_message = m,
                            (3, v) => {
                                status_code = varint_value(v)
                                    .map_err(|e| e.within("status", None))?
                                    .unwrap_or(status_code)
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }

        let problem = if !valid_id(trace_id, 16) {
            Some(("trace_id", 16, trace_id.len()))
        } else if !valid_id(span_id, 8) {
            Some(("span_id", 8, span_id.len()))
        } else if !parent.is_empty() && parent.len() != 8 {
            Some(("parent_span_id", 8, parent.len()))
        } else {
            None
        };
        if let Some((field, want, got)) = problem {
            stats.rejected += 1;
            if stats.rejection.is_none() {
                stats.rejection = Some(format!(
                    "span at byte {base}: {field} must be {want} bytes and not all zero (got {got} bytes)"
                ));
            }
            return Ok(());
        }

        self.attrs.clear();
        if nested {
            self.nested(buf, base, stats)?;
        }
        self.attrs.resolve_duplicates();

        let (start, end) = (nanos(start), nanos(end));
        let duration = if end >= start {
            end - start
        } else {
            stats.negative_durations += 1;
            0
        };
        let tid = Hex::new(trace_id);
        let sid = Hex::new(span_id);
        let pid = Hex::new(parent);
        let trace_state = text(trace_state, stats);
        let name = text(name, stats);
        let status_message = text(status_message, stats);
        let row = SpanRow {
            trace_id: tid.as_str(),
            span_id: sid.as_str(),
            parent_span_id: valid_id(parent, 8).then(|| pid.as_str()),
            trace_state: (!trace_state.is_empty()).then_some(&*trace_state),
            name: &name,
            kind: usize::try_from(kind)
                .ok()
                .and_then(|k| SPAN_KINDS.get(k))
                .copied()
                .unwrap_or(SPAN_KINDS[0]),
            start,
            end,
            duration,
            status_code: usize::try_from(status_code)
                .ok()
                .and_then(|k| STATUS_CODES.get(k))
                .copied()
                .unwrap_or(STATUS_CODES[0]),
            status_message: (!status_message.is_empty()).then_some(&*status_message),
        };
        self.out
            .append(&row, &self.attrs, res, scope)
            .map_err(|e| DecodeError::new(base, e.to_string()))
    }

    /// Attributes (9), events (11) and links (13), in wire order.
    fn nested(
        &mut self,
        buf: &[u8],
        base: usize,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        let (mut na, mut ne, mut nl) = (0, 0, 0);
        let mut r = Reader::new(buf, base);
        while let Some((field, v)) = r.next()? {
            let Value::Bytes(b, at) = v else { continue };
            match field {
                9 => {
                    super::push_key_value(&mut self.attrs, b, at, self.opts, stats)
                        .map_err(|e| e.within("attributes", Some(na)))?;
                    na += 1;
                }
                11 => {
                    self.event(b, at, stats)
                        .map_err(|e| e.within("events", Some(ne)))?;
                    ne += 1;
                }
                13 => {
                    self.link(b, at, stats)
                        .map_err(|e| e.within("links", Some(nl)))?;
                    nl += 1;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn event(
        &mut self,
        buf: &[u8],
        base: usize,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        let mut time = 0u64;
        let mut name: &[u8] = b"";
        let mut r = Reader::new(buf, base);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (1, v) => time = fixed64_value(v).unwrap_or(time),
                (2, Value::Bytes(b, _)) => name = b,
                _ => {}
            }
        }
        self.scratch.clear();
        read_attributes(&mut self.scratch, buf, base, 3, self.opts, stats)?;
        self.scratch.resolve_duplicates();
        let name = text(name, stats);
        self.out
            .events()
            .push(nanos(time), &name, &self.scratch)
            .map_err(|e| DecodeError::new(base, e.to_string()))
    }

    fn link(
        &mut self,
        buf: &[u8],
        base: usize,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        let mut trace_id: &[u8] = b"";
        let mut span_id: &[u8] = b"";
        let mut trace_state: &[u8] = b"";
        let mut r = Reader::new(buf, base);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (1, Value::Bytes(b, _)) => trace_id = b,
                (2, Value::Bytes(b, _)) => span_id = b,
                (3, Value::Bytes(b, _)) => trace_state = b,
                _ => {}
            }
        }
        self.scratch.clear();
        read_attributes(&mut self.scratch, buf, base, 4, self.opts, stats)?;
        self.scratch.resolve_duplicates();
        let trace_state = text(trace_state, stats);
        self.out
            .links()
            .push(
                &hex_string(trace_id),
                &hex_string(span_id),
                (!trace_state.is_empty()).then_some(&*trace_state),
                &self.scratch,
            )
            .map_err(|e| DecodeError::new(base, e.to_string()))
    }
}
