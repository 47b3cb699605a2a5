//! Arrow column builders for the `spans` and `logs` tables, shared by every
//! decoder (protobuf and JSON) so both produce the same batches.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, Int32Builder, Int64Builder, MapBuilder, MapFieldNames, StringBuilder,
    TimestampNanosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, MapArray, RecordBatch, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{ArrowError, DataType, Field};

use crate::schema::{self, attr};

/// The key/value pairs of one attribute map, rendered to text, before they become
/// a map row. Keeps one text buffer so a map costs no allocation per entry.
#[derive(Default, Clone, Debug)]
pub struct Entries {
    text: String,
    items: Vec<Item>,
}

#[derive(Clone, Copy, Debug)]
struct Item {
    key: (usize, usize),
    value: Option<(usize, usize)>,
    live: bool,
}

/// Above this many entries duplicates are found with a hash map instead of pairwise.
const PAIRWISE_DEDUP_MAX: usize = 16;

impl Entries {
    pub fn clear(&mut self) {
        self.text.clear();
        self.items.clear();
    }

    pub fn len(&self) -> usize {
        self.items.iter().filter(|i| i.live).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts an entry: the caller writes the key through [`Entries::text`] after this.
    pub(crate) fn begin(&mut self) -> usize {
        self.text.len()
    }

    pub(crate) fn text(&mut self) -> &mut String {
        &mut self.text
    }

    /// Closes an entry whose key was written from `key_start` to `value_start` and whose
    /// value (if `has_value`) follows up to the end of the buffer.
    pub(crate) fn commit(&mut self, key_start: usize, value_start: usize, has_value: bool) {
        let end = self.text.len();
        self.items.push(Item {
            key: (key_start, value_start),
            value: has_value.then_some((value_start, end)),
            live: true,
        });
    }

    /// Caps the value just written at `max` bytes (on a character boundary).
    /// Returns whether it had to cut.
    pub(crate) fn cap_last_value(&mut self, value_start: usize, max: usize) -> bool {
        let len = self.text.len() - value_start;
        if len <= max {
            return false;
        }
        let mut cut = value_start + max;
        while !self.text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.truncate(cut);
        true
    }

    fn key(&self, it: &Item) -> &str {
        &self.text[it.key.0..it.key.1]
    }

    fn value(&self, it: &Item) -> Option<&str> {
        it.value.map(|(a, b)| &self.text[a..b])
    }

    /// Duplicate keys: the last value wins, at the position where it was written.
    pub(crate) fn resolve_duplicates(&mut self) {
        let n = self.items.len();
        if n < 2 {
            return;
        }
        if n <= PAIRWISE_DEDUP_MAX {
            for i in 0..n {
                let dup = (i + 1..n).any(|j| self.key(&self.items[i]) == self.key(&self.items[j]));
                if dup {
                    self.items[i].live = false;
                }
            }
        } else {
            let mut last: HashMap<&str, usize> = HashMap::with_capacity(n);
            let mut dead = Vec::new();
            for (i, it) in self.items.iter().enumerate() {
                if let Some(prev) = last.insert(&self.text[it.key.0..it.key.1], i) {
                    dead.push(prev);
                }
            }
            for i in dead {
                self.items[i].live = false;
            }
        }
    }

    /// The value of `key` (after duplicates are resolved), if present and not null.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.items
            .iter()
            .rev()
            .find(|it| it.live && self.key(it) == key)
            .and_then(|it| self.value(it))
    }
}

/// A `MAP(VARCHAR, VARCHAR)` column.
pub(crate) struct MapColumn {
    builder: MapBuilder<StringBuilder, StringBuilder>,
}

impl MapColumn {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        let names = MapFieldNames {
            entry: "entries".into(),
            key: "key".into(),
            value: "value".into(),
        };
        let builder = MapBuilder::with_capacity(
            Some(names),
            StringBuilder::new(),
            StringBuilder::new(),
            rows,
        )
        .with_values_field(Arc::new(Field::new("value", DataType::Utf8, true)));
        MapColumn { builder }
    }

    pub(crate) fn append(&mut self, e: &Entries) -> Result<(), ArrowError> {
        for it in e.items.iter().filter(|it| it.live) {
            self.builder.keys().append_value(e.key(it));
            self.builder.values().append_option(e.value(it));
        }
        self.builder.append(true)
    }

    pub(crate) fn finish(&mut self) -> MapArray {
        self.builder.finish()
    }
}

/// Resource and scope fields that every row of a resource/scope repeats.
#[derive(Default, Debug)]
pub struct ResourceCtx {
    pub attributes: Entries,
    service_name: Option<String>,
    service_version: Option<String>,
    service_instance_id: Option<String>,
    deployment_environment: Option<String>,
}

impl ResourceCtx {
    /// Lifts the well-known attributes into columns, once per resource.
    pub(crate) fn seal(&mut self) {
        self.attributes.resolve_duplicates();
        let a = &self.attributes;
        self.service_name = a.get(attr::SERVICE_NAME).map(str::to_owned);
        self.service_version = a.get(attr::SERVICE_VERSION).map(str::to_owned);
        self.service_instance_id = a.get(attr::SERVICE_INSTANCE_ID).map(str::to_owned);
        self.deployment_environment = a
            .get(attr::DEPLOYMENT_ENVIRONMENT_NAME)
            .or_else(|| a.get(attr::DEPLOYMENT_ENVIRONMENT))
            .map(str::to_owned);
    }
}

#[derive(Default, Debug)]
pub struct ScopeCtx {
    pub name: Option<String>,
    pub version: Option<String>,
}

/// The columns every table repeats from the resource and scope.
pub(crate) struct ResourceColumns {
    service_name: StringBuilder,
    service_version: StringBuilder,
    service_instance_id: StringBuilder,
    deployment_environment: StringBuilder,
    resource_attributes: MapColumn,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
}

impl ResourceColumns {
    fn with_capacity(rows: usize) -> Self {
        ResourceColumns {
            service_name: StringBuilder::with_capacity(rows, rows * 8),
            service_version: StringBuilder::with_capacity(rows, rows * 4),
            service_instance_id: StringBuilder::with_capacity(rows, rows * 8),
            deployment_environment: StringBuilder::with_capacity(rows, rows * 4),
            resource_attributes: MapColumn::with_capacity(rows),
            scope_name: StringBuilder::with_capacity(rows, rows * 8),
            scope_version: StringBuilder::with_capacity(rows, rows * 4),
        }
    }

    fn append(&mut self, res: &ResourceCtx, scope: &ScopeCtx) -> Result<(), ArrowError> {
        self.service_name.append_option(res.service_name.as_deref());
        self.service_version
            .append_option(res.service_version.as_deref());
        self.service_instance_id
            .append_option(res.service_instance_id.as_deref());
        self.deployment_environment
            .append_option(res.deployment_environment.as_deref());
        self.resource_attributes.append(&res.attributes)?;
        self.scope_name.append_option(scope.name.as_deref());
        self.scope_version.append_option(scope.version.as_deref());
        Ok(())
    }

    fn finish_into(&mut self, cols: &mut Vec<ArrayRef>) {
        cols.push(Arc::new(self.service_name.finish()));
        cols.push(Arc::new(self.service_version.finish()));
        cols.push(Arc::new(self.service_instance_id.finish()));
        cols.push(Arc::new(self.deployment_environment.finish()));
        cols.push(Arc::new(self.resource_attributes.finish()));
        cols.push(Arc::new(self.scope_name.finish()));
        cols.push(Arc::new(self.scope_version.finish()));
    }
}

fn timestamps(rows: usize) -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::with_capacity(rows).with_timezone(schema::TIMEZONE)
}

/// Lowercase hex of an id, on the stack.
pub(crate) struct Hex {
    buf: [u8; 64],
    len: usize,
}

impl Hex {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut h = Hex {
            buf: [0; 64],
            len: 0,
        };
        for &b in bytes.iter().take(32) {
            h.buf[h.len] = DIGITS[usize::from(b >> 4)];
            h.buf[h.len + 1] = DIGITS[usize::from(b & 0xf)];
            h.len += 2;
        }
        h
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// Hex for ids of any length (links may carry odd ones); ids of the usual sizes use [`Hex`].
pub(crate) fn hex_string(bytes: &[u8]) -> String {
    if bytes.len() <= 32 {
        return Hex::new(bytes).as_str().to_owned();
    }
    bytes
        .chunks(32)
        .map(|c| Hex::new(c).as_str().to_owned())
        .collect()
}

/// One span's scalar fields, borrowed from whatever the decoder reads.
pub(crate) struct SpanRow<'a> {
    pub trace_id: &'a str,
    pub span_id: &'a str,
    pub parent_span_id: Option<&'a str>,
    pub trace_state: Option<&'a str>,
    pub name: &'a str,
    pub kind: &'static str,
    pub start: i64,
    pub end: i64,
    pub duration: i64,
    pub status_code: &'static str,
    pub status_message: Option<&'a str>,
}

pub(crate) struct SpansBuilder {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    trace_state: StringBuilder,
    span_name: StringBuilder,
    span_kind: StringBuilder,
    start_time: TimestampNanosecondBuilder,
    end_time: TimestampNanosecondBuilder,
    duration_ns: Int64Builder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    resource: ResourceColumns,
    span_attributes: MapColumn,
    events: EventsColumn,
    links: LinksColumn,
    rows: usize,
}

impl SpansBuilder {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        SpansBuilder {
            trace_id: StringBuilder::with_capacity(rows, rows * 32),
            span_id: StringBuilder::with_capacity(rows, rows * 16),
            parent_span_id: StringBuilder::with_capacity(rows, rows * 16),
            trace_state: StringBuilder::new(),
            span_name: StringBuilder::with_capacity(rows, rows * 16),
            span_kind: StringBuilder::with_capacity(rows, rows * 6),
            start_time: timestamps(rows),
            end_time: timestamps(rows),
            duration_ns: Int64Builder::with_capacity(rows),
            status_code: StringBuilder::with_capacity(rows, rows * 5),
            status_message: StringBuilder::new(),
            resource: ResourceColumns::with_capacity(rows),
            span_attributes: MapColumn::with_capacity(rows),
            events: EventsColumn::new(),
            links: LinksColumn::new(),
            rows: 0,
        }
    }

    /// Appends one span. `attributes` must be resolved; events and links for this
    /// span must already have been pushed to [`SpansBuilder::events`] / [`SpansBuilder::links`].
    pub(crate) fn append(
        &mut self,
        row: &SpanRow<'_>,
        attributes: &Entries,
        res: &ResourceCtx,
        scope: &ScopeCtx,
    ) -> Result<(), ArrowError> {
        self.trace_id.append_value(row.trace_id);
        self.span_id.append_value(row.span_id);
        self.parent_span_id.append_option(row.parent_span_id);
        self.trace_state.append_option(row.trace_state);
        self.span_name.append_value(row.name);
        self.span_kind.append_value(row.kind);
        self.start_time.append_value(row.start);
        self.end_time.append_value(row.end);
        self.duration_ns.append_value(row.duration);
        self.status_code.append_value(row.status_code);
        self.status_message.append_option(row.status_message);
        self.resource.append(res, scope)?;
        self.span_attributes.append(attributes)?;
        self.events.close_row();
        self.links.close_row();
        self.rows += 1;
        Ok(())
    }

    pub(crate) fn events(&mut self) -> &mut EventsColumn {
        &mut self.events
    }

    pub(crate) fn links(&mut self) -> &mut LinksColumn {
        &mut self.links
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.span_name.finish()),
            Arc::new(self.span_kind.finish()),
            Arc::new(self.start_time.finish()),
            Arc::new(self.end_time.finish()),
            Arc::new(self.duration_ns.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
        ];
        self.resource.finish_into(&mut cols);
        cols.push(Arc::new(self.span_attributes.finish()));
        cols.push(self.events.finish()?);
        cols.push(self.links.finish()?);
        RecordBatch::try_new(schema::spans_schema(), cols)
    }
}

/// `events`: LIST of STRUCT(time, name, attributes).
pub(crate) struct EventsColumn {
    offsets: Vec<i32>,
    time: TimestampNanosecondBuilder,
    name: StringBuilder,
    attributes: MapColumn,
}

impl EventsColumn {
    fn new() -> Self {
        EventsColumn {
            offsets: vec![0],
            time: timestamps(0),
            name: StringBuilder::new(),
            attributes: MapColumn::with_capacity(0),
        }
    }

    pub(crate) fn push(
        &mut self,
        time: i64,
        name: &str,
        attributes: &Entries,
    ) -> Result<(), ArrowError> {
        self.time.append_value(time);
        self.name.append_value(name);
        self.attributes.append(attributes)
    }

    fn close_row(&mut self) {
        self.offsets.push(self.name.len() as i32);
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let fields = schema::event_fields();
        let items = StructArray::try_new(
            fields.clone(),
            vec![
                Arc::new(self.time.finish()),
                Arc::new(self.name.finish()),
                Arc::new(self.attributes.finish()),
            ],
            None,
        )?;
        let offsets = OffsetBuffer::new(std::mem::take(&mut self.offsets).into());
        Ok(Arc::new(ListArray::try_new(
            schema::list_item_field(fields),
            offsets,
            Arc::new(items),
            None,
        )?))
    }
}

/// `links`: LIST of STRUCT(trace_id, span_id, trace_state, attributes).
pub(crate) struct LinksColumn {
    offsets: Vec<i32>,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    trace_state: StringBuilder,
    attributes: MapColumn,
}

impl LinksColumn {
    fn new() -> Self {
        LinksColumn {
            offsets: vec![0],
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            attributes: MapColumn::with_capacity(0),
        }
    }

    pub(crate) fn push(
        &mut self,
        trace_id: &str,
        span_id: &str,
        trace_state: Option<&str>,
        attributes: &Entries,
    ) -> Result<(), ArrowError> {
        self.trace_id.append_value(trace_id);
        self.span_id.append_value(span_id);
        self.trace_state.append_option(trace_state);
        self.attributes.append(attributes)
    }

    fn close_row(&mut self) {
        self.offsets.push(self.trace_id.len() as i32);
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let fields = schema::link_fields();
        let items = StructArray::try_new(
            fields.clone(),
            vec![
                Arc::new(self.trace_id.finish()),
                Arc::new(self.span_id.finish()),
                Arc::new(self.trace_state.finish()),
                Arc::new(self.attributes.finish()),
            ],
            None,
        )?;
        let offsets = OffsetBuffer::new(std::mem::take(&mut self.offsets).into());
        Ok(Arc::new(ListArray::try_new(
            schema::list_item_field(fields),
            offsets,
            Arc::new(items),
            None,
        )?))
    }
}

/// One log record's scalar fields.
pub(crate) struct LogRow<'a> {
    pub time: Option<i64>,
    pub observed_time: Option<i64>,
    pub trace_id: Option<&'a str>,
    pub span_id: Option<&'a str>,
    pub severity_number: i32,
    pub severity_text: Option<&'a str>,
    pub body: Option<&'a str>,
    pub event_name: Option<&'a str>,
}

pub(crate) struct LogsBuilder {
    time: TimestampNanosecondBuilder,
    observed_time: TimestampNanosecondBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    severity_number: Int32Builder,
    severity_text: StringBuilder,
    body: StringBuilder,
    event_name: StringBuilder,
    resource: ResourceColumns,
    log_attributes: MapColumn,
    rows: usize,
}

impl LogsBuilder {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        LogsBuilder {
            time: timestamps(rows),
            observed_time: timestamps(rows),
            trace_id: StringBuilder::with_capacity(rows, rows * 32),
            span_id: StringBuilder::with_capacity(rows, rows * 16),
            severity_number: Int32Builder::with_capacity(rows),
            severity_text: StringBuilder::with_capacity(rows, rows * 5),
            body: StringBuilder::with_capacity(rows, rows * 64),
            event_name: StringBuilder::new(),
            resource: ResourceColumns::with_capacity(rows),
            log_attributes: MapColumn::with_capacity(rows),
            rows: 0,
        }
    }

    pub(crate) fn append(
        &mut self,
        row: &LogRow<'_>,
        attributes: &Entries,
        res: &ResourceCtx,
        scope: &ScopeCtx,
    ) -> Result<(), ArrowError> {
        self.time.append_option(row.time);
        self.observed_time.append_option(row.observed_time);
        self.trace_id.append_option(row.trace_id);
        self.span_id.append_option(row.span_id);
        self.severity_number.append_value(row.severity_number);
        self.severity_text.append_option(row.severity_text);
        self.body.append_option(row.body);
        self.event_name.append_option(row.event_name);
        self.resource.append(res, scope)?;
        self.log_attributes.append(attributes)?;
        self.rows += 1;
        Ok(())
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.observed_time.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.severity_number.finish()),
            Arc::new(self.severity_text.finish()),
            Arc::new(self.body.finish()),
            Arc::new(self.event_name.finish()),
        ];
        self.resource.finish_into(&mut cols);
        cols.push(Arc::new(self.log_attributes.finish()));
        RecordBatch::try_new(schema::logs_schema(), cols)
    }
}
