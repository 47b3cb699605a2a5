//! Reads the decoder's record batches back into the row structs of `expect`, so
//! that a difference shows up as one readable field of one row.

use aftershock_core::schema::col;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::{Array, MapArray, PrimitiveArray, RecordBatch, StringArray, StructArray};

use super::expect::{EventRow, LinkRow, LogRow, Map, ResourceCols, SpanRow};

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a dyn Array {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("batch has no column {name}"))
        .as_ref()
}

fn field<'a>(s: &'a StructArray, name: &str) -> &'a dyn Array {
    s.column_by_name(name)
        .unwrap_or_else(|| panic!("struct has no field {name}"))
        .as_ref()
}

fn opt_str(a: &StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_string())
}

/// A value of a non-nullable column: a NULL there is a bug of its own.
fn req_str(a: &StringArray, i: usize, what: &str) -> String {
    assert!(a.is_valid(i), "{what}[{i}] is NULL in a NOT NULL column");
    a.value(i).to_string()
}

fn opt_time(a: &PrimitiveArray<TimestampNanosecondType>, i: usize) -> Option<i64> {
    a.is_valid(i).then(|| a.value(i))
}

fn req_time(a: &PrimitiveArray<TimestampNanosecondType>, i: usize, what: &str) -> i64 {
    assert!(a.is_valid(i), "{what}[{i}] is NULL in a NOT NULL column");
    a.value(i)
}

fn map_row(m: &MapArray, i: usize) -> Map {
    assert!(m.is_valid(i), "attribute map [{i}] is NULL");
    let entries = m.value(i);
    let keys = entries.column(0).as_string::<i32>();
    let values = entries.column(1).as_string::<i32>();
    (0..entries.len())
        .map(|j| (req_str(keys, j, "key"), opt_str(values, j)))
        .collect()
}

struct ResourceReader<'a> {
    service_name: &'a StringArray,
    service_version: &'a StringArray,
    service_instance_id: &'a StringArray,
    deployment_environment: &'a StringArray,
    resource_attributes: &'a MapArray,
    scope_name: &'a StringArray,
    scope_version: &'a StringArray,
}

impl<'a> ResourceReader<'a> {
    fn new(b: &'a RecordBatch) -> Self {
        ResourceReader {
            service_name: column(b, col::SERVICE_NAME).as_string(),
            service_version: column(b, col::SERVICE_VERSION).as_string(),
            service_instance_id: column(b, col::SERVICE_INSTANCE_ID).as_string(),
            deployment_environment: column(b, col::DEPLOYMENT_ENVIRONMENT).as_string(),
            resource_attributes: column(b, col::RESOURCE_ATTRIBUTES).as_map(),
            scope_name: column(b, col::SCOPE_NAME).as_string(),
            scope_version: column(b, col::SCOPE_VERSION).as_string(),
        }
    }

    fn row(&self, i: usize) -> ResourceCols {
        ResourceCols {
            service_name: opt_str(self.service_name, i),
            service_version: opt_str(self.service_version, i),
            service_instance_id: opt_str(self.service_instance_id, i),
            deployment_environment: opt_str(self.deployment_environment, i),
            resource_attributes: map_row(self.resource_attributes, i),
            scope_name: opt_str(self.scope_name, i),
            scope_version: opt_str(self.scope_version, i),
        }
    }
}

pub fn spans(b: &RecordBatch) -> Vec<SpanRow> {
    let trace_id = column(b, col::TRACE_ID).as_string::<i32>();
    let span_id = column(b, col::SPAN_ID).as_string::<i32>();
    let parent = column(b, col::PARENT_SPAN_ID).as_string::<i32>();
    let trace_state = column(b, col::TRACE_STATE).as_string::<i32>();
    let name = column(b, col::SPAN_NAME).as_string::<i32>();
    let kind = column(b, col::SPAN_KIND).as_string::<i32>();
    let start = column(b, col::START_TIME).as_primitive::<TimestampNanosecondType>();
    let end = column(b, col::END_TIME).as_primitive::<TimestampNanosecondType>();
    let duration = column(b, col::DURATION_NS).as_primitive::<Int64Type>();
    let code = column(b, col::STATUS_CODE).as_string::<i32>();
    let message = column(b, col::STATUS_MESSAGE).as_string::<i32>();
    let resource = ResourceReader::new(b);
    let attrs = column(b, col::SPAN_ATTRIBUTES).as_map();
    let events = column(b, col::EVENTS).as_list::<i32>();
    let links = column(b, col::LINKS).as_list::<i32>();

    (0..b.num_rows())
        .map(|i| {
            assert!(duration.is_valid(i), "duration_ns[{i}] is NULL");
            SpanRow {
                trace_id: req_str(trace_id, i, col::TRACE_ID),
                span_id: req_str(span_id, i, col::SPAN_ID),
                parent_span_id: opt_str(parent, i),
                trace_state: opt_str(trace_state, i),
                span_name: req_str(name, i, col::SPAN_NAME),
                span_kind: req_str(kind, i, col::SPAN_KIND),
                start_time: req_time(start, i, col::START_TIME),
                end_time: req_time(end, i, col::END_TIME),
                duration_ns: duration.value(i),
                status_code: req_str(code, i, col::STATUS_CODE),
                status_message: opt_str(message, i),
                resource: resource.row(i),
                span_attributes: map_row(attrs, i),
                events: {
                    assert!(events.is_valid(i), "events[{i}] is NULL");
                    let items = events.value(i);
                    let s = items.as_struct();
                    let time = field(s, col::TIME).as_primitive::<TimestampNanosecondType>();
                    let name = field(s, col::NAME).as_string::<i32>();
                    let attrs = field(s, col::ATTRIBUTES).as_map();
                    (0..s.len())
                        .map(|j| EventRow {
                            time: req_time(time, j, "events.time"),
                            name: req_str(name, j, "events.name"),
                            attributes: map_row(attrs, j),
                        })
                        .collect()
                },
                links: {
                    assert!(links.is_valid(i), "links[{i}] is NULL");
                    let items = links.value(i);
                    let s = items.as_struct();
                    let tid = field(s, col::TRACE_ID).as_string::<i32>();
                    let sid = field(s, col::SPAN_ID).as_string::<i32>();
                    let ts = field(s, col::TRACE_STATE).as_string::<i32>();
                    let attrs = field(s, col::ATTRIBUTES).as_map();
                    (0..s.len())
                        .map(|j| LinkRow {
                            trace_id: req_str(tid, j, "links.trace_id"),
                            span_id: req_str(sid, j, "links.span_id"),
                            trace_state: opt_str(ts, j),
                            attributes: map_row(attrs, j),
                        })
                        .collect()
                },
            }
        })
        .collect()
}

pub fn logs(b: &RecordBatch) -> Vec<LogRow> {
    let time = column(b, col::TIME).as_primitive::<TimestampNanosecondType>();
    let observed = column(b, col::OBSERVED_TIME).as_primitive::<TimestampNanosecondType>();
    let trace_id = column(b, col::TRACE_ID).as_string::<i32>();
    let span_id = column(b, col::SPAN_ID).as_string::<i32>();
    let severity = column(b, col::SEVERITY_NUMBER).as_primitive::<Int32Type>();
    let severity_text = column(b, col::SEVERITY_TEXT).as_string::<i32>();
    let body = column(b, col::BODY).as_string::<i32>();
    let event_name = column(b, col::EVENT_NAME).as_string::<i32>();
    let resource = ResourceReader::new(b);
    let attrs = column(b, col::LOG_ATTRIBUTES).as_map();

    (0..b.num_rows())
        .map(|i| {
            assert!(severity.is_valid(i), "severity_number[{i}] is NULL");
            LogRow {
                time: opt_time(time, i),
                observed_time: opt_time(observed, i),
                trace_id: opt_str(trace_id, i),
                span_id: opt_str(span_id, i),
                severity_number: severity.value(i),
                severity_text: opt_str(severity_text, i),
                body: opt_str(body, i),
                event_name: opt_str(event_name, i),
                resource: resource.row(i),
                log_attributes: map_row(attrs, i),
            }
        })
        .collect()
}
