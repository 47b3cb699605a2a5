//! `ExportTraceServiceRequest` -> `spans` batch.

use super::columns::{hex_bytes, ContextColumns, SpanRow, SpansBuilder};
use super::wire::{Reader, Value};
use super::{
    bytes_field, fixed64_field, nanos, opt, row_estimate, small_varint_field, walk_request,
    AttrWriter, DecodeOptions, DecodeStats, Decoded, Envelope, RecordSink,
};
use crate::error::{DecodeError, Error};
use crate::schema::{SPAN_KINDS, STATUS_CODES};

pub(super) const ENVELOPE: Envelope = Envelope {
    resources: "resource_spans",
    scopes: "scope_spans",
    records: "spans",
};

/// Decodes an `ExportTraceServiceRequest` into one `spans` batch. Spans with
/// invalid ids are left out and counted in `stats.rejected`; malformed protobuf
/// anywhere fails the whole request.
pub fn decode_traces(buf: &[u8], opts: &DecodeOptions) -> Result<Decoded, Error> {
    let mut d = SpanDecoder {
        out: SpansBuilder::with_capacity(row_estimate(buf.len()), opts.max_value_bytes),
        attrs: AttrWriter::default(),
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

struct SpanDecoder<'a, 'o> {
    out: SpansBuilder,
    attrs: AttrWriter<'a>,
    opts: &'o DecodeOptions,
}

/// Enums are int32 on the wire: protobuf keeps the low 32 bits of a wider varint.
fn enum_value(v: u64) -> i32 {
    v as i32
}

pub(super) fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|&b| b != 0)
}

impl<'a> RecordSink<'a> for SpanDecoder<'a, '_> {
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
        // Attributes go straight into the map column; a span that turns out to need
        // more (a duplicate key, a malformed or rejected span) is taken back out and
        // decoded again by the general path, with the counters it had touched.
        let mark = self.out.attributes().mark();
        let repairs = (
            stats.invalid_utf8,
            stats.truncated_values,
            stats.depth_capped,
        );
        self.attrs.begin_direct();
        if let Ok(f) = self.scan::<true>(buf, base, stats) {
            if self.attrs.direct_distinct() && f.valid() {
                let nested = f.nested_fields(buf, base);
                let span = f.fields();
                if let Some((b, at)) = nested {
                    self.events_and_links(b, at, stats)?;
                }
                span.append_to(&mut self.out, context, stats);
                return Ok(());
            }
        }
        self.out.attributes().truncate(mark);
        (
            stats.invalid_utf8,
            stats.truncated_values,
            stats.depth_capped,
        ) = repairs;
        self.record_general(buf, base, context, stats)
    }
}

impl<'a> SpanDecoder<'a, '_> {
    /// A span's attributes gathered (then deduplicated and written), the reference
    /// semantics for every span the direct path of `record` gives back.
    #[inline(never)]
    fn record_general(
        &mut self,
        buf: &'a [u8],
        base: usize,
        context: u32,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        self.attrs.clear();
        let f = self.scan::<false>(buf, base, stats)?;
        let nested = f.nested_fields(buf, base);
        let span = f.fields();
        if !span.accept(base, stats) {
            self.attrs.clear();
            return Ok(());
        }
        self.attrs.write(self.out.attributes(), self.opts, stats)?;
        if let Some((b, at)) = nested {
            self.events_and_links(b, at, stats)?;
        }
        span.append_to(&mut self.out, context, stats);
        Ok(())
    }

    /// Reads a span's fields. Its attributes are written to the map column
    /// (`DIRECT`, see [`AttrWriter::direct`]; any error then only means "take the
    /// general path") or gathered in `self.attrs`.
    #[inline(always)]
    fn scan<const DIRECT: bool>(
        &mut self,
        buf: &'a [u8],
        base: usize,
        stats: &mut DecodeStats,
    ) -> Result<SpanScan<'a>, DecodeError> {
        let mut f = SpanScan::default();
        // Fast path: the fields in field-number order, as encoders write them, each
        // read where it is expected; whatever is left (or unusual) goes through the
        // general reader below, which then sees the rest of the fields in wire order.
        let mut rest = buf;
        let at = |payload: &[u8], rest: &[u8]| base + buf.len() - rest.len() - payload.len();
        let strings = [
            (0x0a, &mut f.trace_id),
            (0x12, &mut f.span_id),
            (0x1a, &mut f.trace_state),
            (0x22, &mut f.parent),
            (0x2a, &mut f.name),
        ];
        for (tag, slot) in strings {
            if let Some((b, r)) = bytes_field(rest, tag) {
                (*slot, rest) = (b, r);
            }
        }
        if let Some((x, r)) = small_varint_field(rest, 0x30) {
            (f.kind, rest) = (x, r);
        }
        for (tag, slot) in [(0x39, &mut f.start), (0x41, &mut f.end)] {
            if let Some((x, r)) = fixed64_field(rest, tag) {
                (*slot, rest) = (x, r);
            }
        }
        while let Some((b, r)) = bytes_field(rest, 0x4a) {
            self.attribute::<DIRECT>(b, at(b, r), stats)?;
            rest = r;
        }
        let events_from = rest;
        while let Some((_, r)) = bytes_field(rest, 0x5a) {
            (f.nested, rest) = (true, r);
        }
        while let Some((_, r)) = bytes_field(rest, 0x6a) {
            (f.nested, rest) = (true, r);
        }
        f.nested_run = buf.len() - events_from.len()..buf.len() - rest.len();
        if let Some((b, r)) = bytes_field(rest, 0x7a) {
            f.status(b, at(b, r))?;
            rest = r;
        }
        let mut r = Reader::new(rest, base + buf.len() - rest.len());
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (1, Value::Bytes(b, _)) => f.trace_id = b,
                (2, Value::Bytes(b, _)) => f.span_id = b,
                (3, Value::Bytes(b, _)) => f.trace_state = b,
                (4, Value::Bytes(b, _)) => f.parent = b,
                (5, Value::Bytes(b, _)) => f.name = b,
                (6, Value::Varint(x)) => f.kind = x,
                (7, Value::Fixed64(x)) => f.start = x,
                (8, Value::Fixed64(x)) => f.end = x,
                (11 | 13, Value::Bytes(..)) => (f.nested, f.nested_elsewhere) = (true, true),
                (9, Value::Bytes(b, at)) => self.attribute::<DIRECT>(b, at, stats)?,
                (15, Value::Bytes(b, at)) => f.status(b, at)?,
                _ => {}
            }
        }
        Ok(f)
    }

    #[inline(always)]
    fn attribute<const DIRECT: bool>(
        &mut self,
        buf: &'a [u8],
        base: usize,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        if !DIRECT {
            return self.attrs.push(buf, base);
        }
        match self
            .attrs
            .direct(buf, base, self.out.attributes(), self.opts, stats)
        {
            Some(()) => Ok(()),
            None => Err(take_general_path(base)),
        }
    }
}

/// The error that sends a span from the direct path to the general one, which
/// then reports what is actually wrong.
#[cold]
#[inline(never)]
fn take_general_path(at: usize) -> DecodeError {
    DecodeError::new(at, "attribute needs the general path")
}

/// A span's fields as read from the wire so far (protobuf: the last occurrence wins).
#[derive(Default)]
struct SpanScan<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent: &'a [u8],
    trace_state: &'a [u8],
    name: &'a [u8],
    kind: u64,
    start: u64,
    end: u64,
    status_message: &'a [u8],
    status_code: u64,
    /// Events or links present.
    nested: bool,
    /// Where the fast path found events and links one after the other, and whether
    /// any are elsewhere in the span.
    nested_run: std::ops::Range<usize>,
    nested_elsewhere: bool,
}

impl<'a> SpanScan<'a> {
    /// Whether [`SpanFields::accept`] will take the span, without counting anything.
    #[inline]
    fn valid(&self) -> bool {
        valid_id(self.trace_id, 16)
            && valid_id(self.span_id, 8)
            && (self.parent.is_empty() || self.parent.len() == 8)
    }

    /// The part of the span (`buf` at `base`) to read events and links from, if it
    /// has any: only the run the fast path saw them in, unless some are elsewhere.
    #[inline]
    fn nested_fields(&self, buf: &'a [u8], base: usize) -> Option<(&'a [u8], usize)> {
        if !self.nested {
            return None;
        }
        match buf.get(self.nested_run.clone()) {
            Some(run) if !self.nested_elsewhere => Some((run, base + self.nested_run.start)),
            _ => Some((buf, base)),
        }
    }

    #[inline]
    fn fields(self) -> SpanFields<'a> {
        SpanFields {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent: self.parent,
            trace_state: self.trace_state,
            name: self.name,
            kind: enum_value(self.kind),
            start: self.start,
            end: self.end,
            status_code: enum_value(self.status_code),
            status_message: self.status_message,
        }
    }

    /// Status is merged field by field if it occurs more than once.
    fn status(&mut self, buf: &'a [u8], base: usize) -> Result<(), DecodeError> {
        let mut s = Reader::new(buf, base);
        while let Some((f, v)) = s.next().map_err(|e| e.within("status", None))? {
            match (f, v) {
                (2, Value::Bytes(m, _)) => self.status_message = m,
                (3, Value::Varint(x)) => self.status_code = x,
                _ => {}
            }
        }
        Ok(())
    }
}

/// One span's scalar fields as either encoding reads them (ids as raw bytes).
pub(super) struct SpanFields<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent: &'a [u8],
    pub trace_state: &'a [u8],
    pub name: &'a [u8],
    pub kind: i32,
    pub start: u64,
    pub end: u64,
    pub status_code: i32,
    pub status_message: &'a [u8],
}

/// Counts a rejected span; the first rejection says why, for `partial_success`.
pub(super) fn reject(
    stats: &mut DecodeStats,
    at: usize,
    field: &str,
    want: usize,
    got: impl std::fmt::Display,
) {
    stats.rejected += 1;
    if stats.rejection.is_none() {
        stats.rejection = Some(format!(
            "span at byte {at}: {field} must be {want} bytes and not all zero (got {got})"
        ));
    }
}

impl SpanFields<'_> {
    /// Whether the ids make a valid span; a span that is not is counted as rejected.
    pub(super) fn accept(&self, at: usize, stats: &mut DecodeStats) -> bool {
        let problem = if !valid_id(self.trace_id, 16) {
            Some(("trace_id", 16, self.trace_id.len()))
        } else if !valid_id(self.span_id, 8) {
            Some(("span_id", 8, self.span_id.len()))
        } else if !self.parent.is_empty() && self.parent.len() != 8 {
            Some(("parent_span_id", 8, self.parent.len()))
        } else {
            None
        };
        match problem {
            Some((field, want, got)) => {
                reject(stats, at, field, want, format_args!("{got} bytes"));
                false
            }
            None => true,
        }
    }

    /// Appends the span; its attributes, events and links were written already.
    pub(super) fn append_to(&self, out: &mut SpansBuilder, context: u32, stats: &mut DecodeStats) {
        let (start, end) = (nanos(self.start), nanos(self.end));
        let duration = if end >= start {
            end - start
        } else {
            stats.negative_durations += 1;
            0
        };
        let row = SpanRow {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: valid_id(self.parent, 8).then_some(self.parent),
            trace_state: opt(self.trace_state),
            name: self.name,
            kind: usize::try_from(self.kind)
                .ok()
                .and_then(|k| SPAN_KINDS.get(k))
                .copied()
                .unwrap_or(SPAN_KINDS[0]),
            start,
            end,
            duration,
            status_code: usize::try_from(self.status_code)
                .ok()
                .and_then(|k| STATUS_CODES.get(k))
                .copied()
                .unwrap_or(STATUS_CODES[0]),
            status_message: opt(self.status_message),
        };
        out.append(&row, context);
    }
}

impl<'a> SpanDecoder<'a, '_> {
    /// Events (11) and links (13), in wire order.
    fn events_and_links(
        &mut self,
        buf: &'a [u8],
        base: usize,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        let (mut ne, mut nl) = (0, 0);
        let mut r = Reader::new(buf, base);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (11, Value::Bytes(b, at)) => {
                    self.event(b, at, stats)
                        .map_err(|e| e.within("events", Some(ne)))?;
                    ne += 1;
                }
                (13, Value::Bytes(b, at)) => {
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
        buf: &'a [u8],
        base: usize,
        stats: &mut DecodeStats,
    ) -> Result<(), DecodeError> {
        let mut time = 0u64;
        let mut name: &[u8] = b"";
        let mut r = Reader::new(buf, base);
        while let Some((field, v)) = r.next()? {
            match (field, v) {
                (1, Value::Fixed64(x)) => time = x,
                (2, Value::Bytes(b, _)) => name = b,
                _ => {}
            }
        }
        self.attrs.clear();
        self.attrs.collect(buf, base, 3)?;
        let events = self.out.events();
        self.attrs.write(events.attributes(), self.opts, stats)?;
        events.push(nanos(time), name);
        Ok(())
    }

    fn link(
        &mut self,
        buf: &'a [u8],
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
        self.attrs.clear();
        self.attrs.collect(buf, base, 4)?;
        let links = self.out.links();
        self.attrs.write(links.attributes(), self.opts, stats)?;
        links.push(&hex_bytes(trace_id), &hex_bytes(span_id), opt(trace_state));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ld;

    fn request(span: &[u8]) -> Vec<u8> {
        ld(1, &ld(2, &ld(2, span)))
    }

    /// A scope that follows its spans on the wire (or comes in pieces) names them
    /// as one read before them would; an error is that of the scope, read first.
    #[test]
    fn scope_after_its_spans() {
        let span = |n: u8| [ld(1, &[n; 16]), ld(2, &[n; 8]), ld(5, b"op")].concat();
        let spans = [ld(2, &span(1)), ld(2, &span(2))].concat();
        let scope = |fields: &[u8]| ld(1, fields);
        let name_version = [ld(1, b"lib"), ld(2, b"1.0")].concat();
        let scope_spans = |body: Vec<u8>| ld(1, &ld(2, &body));
        let decode = |body: Vec<u8>| {
            decode_traces(&scope_spans(body), &DecodeOptions::default())
                .map(|d| (d.batch, d.stats))
                .map_err(|e| e.to_string())
        };
        let before = decode([scope(&name_version), spans.clone()].concat());
        let after = decode([spans.clone(), scope(&name_version)].concat());
        let split = decode(
            [
                scope(&ld(1, b"lib")),
                ld(2, &span(1)),
                scope(&ld(2, b"1.0")),
                ld(2, &span(2)),
            ]
            .concat(),
        );
        assert!(before.is_ok());
        assert_eq!(before, after);
        assert_eq!(before, split);
        let broken_span = ld(2, &[ld(1, &[1; 16]), vec![0x2a, 0x7f]].concat());
        let broken_scope = ld(1, &[0x0a, 0x7f]);
        let first = decode([broken_scope.clone(), broken_span.clone()].concat());
        let last = decode([broken_span, broken_scope].concat());
        // Either way the scope's error is reported (at its own byte), not the span's.
        for got in [first, last] {
            assert!(
                got.as_ref()
                    .is_err_and(|e| e.ends_with("scope_spans[0].scope)")),
                "{got:?}"
            );
        }
    }

    /// Invalid UTF-8 in any string of a span comes out repaired (U+FFFD) and
    /// counted: the same batch as from a request that carried the repaired text,
    /// for short values and long ones, one bad string at a time and all at once.
    #[test]
    fn invalid_utf8_in_every_span_string_is_repaired() {
        let kv = |k: &[u8], v: &[u8]| [ld(1, k), ld(2, &ld(1, v))].concat();
        // The strings, by position: trace_state, name, attribute key, short and long
        // attribute values, status message, event name, event attribute value, link
        // trace_state, link attribute key.
        let span = |s: &[&[u8]; 10]| {
            let time = [vec![0x09], 5u64.to_le_bytes().to_vec()].concat();
            let event = [time, ld(2, s[6]), ld(3, &kv(b"ek", s[7]))].concat();
            let link = [
                ld(1, &[7; 16]),
                ld(2, &[8; 8]),
                ld(3, s[8]),
                ld(4, &kv(s[9], b"lv")),
            ]
            .concat();
            [
                ld(1, &[1; 16]),
                ld(2, &[2; 8]),
                ld(3, s[0]),
                ld(5, s[1]),
                ld(9, &kv(s[2], b"v")),
                ld(9, &kv(b"short", s[3])),
                ld(9, &kv(b"long", s[4])),
                ld(11, &event),
                ld(13, &link),
                ld(15, &ld(2, s[5])),
            ]
            .concat()
        };
        let long_good = b"z".repeat(60);
        let long_bad = [b"x".repeat(40), vec![0xff], b"y".repeat(10)].concat();
        let good: [&[u8]; 10] = [
            b"ts", b"op", b"key", b"val", &long_good, b"msg", b"ev", b"eattr", b"lts", b"lkey",
        ];
        let bad: [&[u8]; 10] = [
            b"t\xff", b"op\xc3", b"\xa9key", b"v\xffl", &long_bad, b"m\xc3g", b"\xffev", b"ea\xa9",
            b"lt\xc3", b"lk\xff",
        ];
        let lossy: Vec<Vec<u8>> = bad
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned().into_bytes())
            .collect();
        let opts = DecodeOptions::default();
        let decode = |s: &[&[u8]; 10]| {
            decode_traces(&request(&span(s)), &opts)
                .map(|d| (d.batch, d.stats.invalid_utf8))
                .ok()
        };
        for i in 0..=bad.len() {
            let (mut with, mut repaired) = (good, good);
            let mut n = 0;
            for j in (0..bad.len()).filter(|&j| j == i || i == bad.len()) {
                with[j] = bad[j];
                repaired[j] = &lossy[j];
                n += 1;
            }
            let got = decode(&with);
            assert!(got.is_some(), "string {i}");
            assert_eq!(got, decode(&repaired).map(|(b, _)| (b, n)), "string {i}");
        }
    }

    /// Events and links read from the run the fast path saw them in give what
    /// reading the whole span gives when some of them are elsewhere.
    #[test]
    fn events_and_links_anywhere_in_the_span() {
        let kv = ld(1, b"k")
            .into_iter()
            .chain(ld(2, &ld(1, b"v")))
            .collect::<Vec<_>>();
        let event = |name: &[u8]| [ld(2, name), ld(3, &kv)].concat();
        let link = [ld(1, &[7; 16]), ld(2, &[8; 8])].concat();
        let head = [ld(1, &[1; 16]), ld(2, &[2; 8]), ld(5, b"op")].concat();
        let (e1, e2, l1) = (ld(11, &event(b"a")), ld(11, &event(b"b")), ld(13, &link));
        let status = ld(15, &[0x18, 2]);
        let dropped = vec![12 << 3, 0];
        let spans = [
            [
                head.clone(),
                e1.clone(),
                e2.clone(),
                l1.clone(),
                status.clone(),
            ]
            .concat(),
            [
                head.clone(),
                e1.clone(),
                status.clone(),
                e2.clone(),
                l1.clone(),
            ]
            .concat(),
            [
                head.clone(),
                e1.clone(),
                e2.clone(),
                dropped,
                l1.clone(),
                status.clone(),
            ]
            .concat(),
        ];
        let opts = DecodeOptions::default();
        let batches: Vec<_> = spans
            .iter()
            .map(|s| decode_traces(&request(s), &opts).map(|d| d.batch).ok())
            .collect();
        let nested = |i: usize| {
            batches[i].as_ref().map(|b| {
                let s = b.schema();
                let col = |name: &str| s.index_of(name).ok().map(|c| b.column(c).clone());
                (col("events"), col("links"))
            })
        };
        let lengths = nested(0).and_then(|(e, l)| {
            let len = |c: Option<arrow_array::ArrayRef>| {
                c.and_then(|c| {
                    c.as_any()
                        .downcast_ref::<arrow_array::ListArray>()
                        .map(|l| l.value_length(0))
                })
            };
            Some((len(e)?, len(l)?))
        });
        assert_eq!(lengths, Some((2, 1)));
        assert_eq!(nested(0), nested(1));
        assert_eq!(nested(0), nested(2));
    }
}
