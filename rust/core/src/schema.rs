//! Table and column names, and the Arrow schemas of the tables. Defined here once;
//! the decoders, the lake writer and the Python side all read them from here.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

pub const SPANS: &str = "spans";
pub const LOGS: &str = "logs";

/// Column names, shared by `spans` and `logs` where the meaning is the same.
pub mod col {
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    pub const TRACE_STATE: &str = "trace_state";
    pub const SPAN_NAME: &str = "span_name";
    pub const SPAN_KIND: &str = "span_kind";
    pub const START_TIME: &str = "start_time";
    pub const END_TIME: &str = "end_time";
    pub const DURATION_NS: &str = "duration_ns";
    pub const STATUS_CODE: &str = "status_code";
    pub const STATUS_MESSAGE: &str = "status_message";
    pub const SERVICE_NAME: &str = "service_name";
    pub const SERVICE_VERSION: &str = "service_version";
    pub const SERVICE_INSTANCE_ID: &str = "service_instance_id";
    pub const DEPLOYMENT_ENVIRONMENT: &str = "deployment_environment";
    pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
    pub const SCOPE_NAME: &str = "scope_name";
    pub const SCOPE_VERSION: &str = "scope_version";
    pub const SPAN_ATTRIBUTES: &str = "span_attributes";
    pub const EVENTS: &str = "events";
    pub const LINKS: &str = "links";

    pub const TIME: &str = "time";
    pub const OBSERVED_TIME: &str = "observed_time";
    pub const SEVERITY_NUMBER: &str = "severity_number";
    pub const SEVERITY_TEXT: &str = "severity_text";
    pub const BODY: &str = "body";
    pub const EVENT_NAME: &str = "event_name";
    pub const LOG_ATTRIBUTES: &str = "log_attributes";

    // Fields of the `events` and `links` structs.
    pub const NAME: &str = "name";
    pub const ATTRIBUTES: &str = "attributes";
}

/// The columns of `spans` and `logs` whose value every row of a resource repeats
/// (see [`crate::decode::Contexts`]).
pub const RESOURCE_COLUMNS: [&str; 5] = [
    col::SERVICE_NAME,
    col::SERVICE_VERSION,
    col::SERVICE_INSTANCE_ID,
    col::DEPLOYMENT_ENVIRONMENT,
    col::RESOURCE_ATTRIBUTES,
];

/// The columns of `spans` and `logs` whose value every row of a scope repeats.
pub const SCOPE_COLUMNS: [&str; 2] = [col::SCOPE_NAME, col::SCOPE_VERSION];

/// Resource attributes lifted into their own columns.
pub mod attr {
    pub const SERVICE_NAME: &str = "service.name";
    pub const SERVICE_VERSION: &str = "service.version";
    pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
    pub const DEPLOYMENT_ENVIRONMENT_NAME: &str = "deployment.environment.name";
    pub const DEPLOYMENT_ENVIRONMENT: &str = "deployment.environment";
}

pub const SPAN_KINDS: [&str; 6] = [
    "UNSPECIFIED",
    "INTERNAL",
    "SERVER",
    "CLIENT",
    "PRODUCER",
    "CONSUMER",
];
pub const STATUS_CODES: [&str; 3] = ["UNSET", "OK", "ERROR"];

pub const TIMEZONE: &str = "UTC";

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(TIMEZONE.into()))
}

/// The entries struct of an attribute map: `key` (never null) and `value` (null for an empty AnyValue).
pub fn map_entries_field() -> Arc<Field> {
    let entries = Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
    ]);
    Arc::new(Field::new("entries", DataType::Struct(entries), false))
}

/// `MAP(VARCHAR, VARCHAR)`: non-string AnyValues rendered as JSON, bytes as base64.
pub fn attribute_map_type() -> DataType {
    DataType::Map(map_entries_field(), false)
}

pub fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new(col::TIME, timestamp_type(), false),
        Field::new(col::NAME, DataType::Utf8, false),
        Field::new(col::ATTRIBUTES, attribute_map_type(), false),
    ])
}

pub fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new(col::TRACE_ID, DataType::Utf8, false),
        Field::new(col::SPAN_ID, DataType::Utf8, false),
        Field::new(col::TRACE_STATE, DataType::Utf8, true),
        Field::new(col::ATTRIBUTES, attribute_map_type(), false),
    ])
}

/// The element field of the `events` / `links` lists.
pub fn list_item_field(fields: Fields) -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(fields), true))
}

fn resource_columns() -> Vec<Field> {
    vec![
        Field::new(col::SERVICE_NAME, DataType::Utf8, true),
        Field::new(col::SERVICE_VERSION, DataType::Utf8, true),
        Field::new(col::SERVICE_INSTANCE_ID, DataType::Utf8, true),
        Field::new(col::DEPLOYMENT_ENVIRONMENT, DataType::Utf8, true),
        Field::new(col::RESOURCE_ATTRIBUTES, attribute_map_type(), false),
        Field::new(col::SCOPE_NAME, DataType::Utf8, true),
        Field::new(col::SCOPE_VERSION, DataType::Utf8, true),
    ]
}

/// The `spans` table, column for column as CONTRACT.md lists it.
pub fn spans_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut fields = vec![
                Field::new(col::TRACE_ID, DataType::Utf8, false),
                Field::new(col::SPAN_ID, DataType::Utf8, false),
                Field::new(col::PARENT_SPAN_ID, DataType::Utf8, true),
                Field::new(col::TRACE_STATE, DataType::Utf8, true),
                Field::new(col::SPAN_NAME, DataType::Utf8, false),
                Field::new(col::SPAN_KIND, DataType::Utf8, false),
                Field::new(col::START_TIME, timestamp_type(), false),
                Field::new(col::END_TIME, timestamp_type(), false),
                Field::new(col::DURATION_NS, DataType::Int64, false),
                Field::new(col::STATUS_CODE, DataType::Utf8, false),
                Field::new(col::STATUS_MESSAGE, DataType::Utf8, true),
            ];
            fields.extend(resource_columns());
            fields.extend([
                Field::new(col::SPAN_ATTRIBUTES, attribute_map_type(), false),
                Field::new(
                    col::EVENTS,
                    DataType::List(list_item_field(event_fields())),
                    false,
                ),
                Field::new(
                    col::LINKS,
                    DataType::List(list_item_field(link_fields())),
                    false,
                ),
            ]);
            Arc::new(Schema::new(fields))
        })
        .clone()
}

/// The `logs` table, column for column as CONTRACT.md lists it.
pub fn logs_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut fields = vec![
                Field::new(col::TIME, timestamp_type(), true),
                Field::new(col::OBSERVED_TIME, timestamp_type(), true),
                Field::new(col::TRACE_ID, DataType::Utf8, true),
                Field::new(col::SPAN_ID, DataType::Utf8, true),
                Field::new(col::SEVERITY_NUMBER, DataType::Int32, false),
                Field::new(col::SEVERITY_TEXT, DataType::Utf8, true),
                Field::new(col::BODY, DataType::Utf8, true),
                Field::new(col::EVENT_NAME, DataType::Utf8, true),
            ];
            fields.extend(resource_columns());
            fields.push(Field::new(col::LOG_ATTRIBUTES, attribute_map_type(), false));
            Arc::new(Schema::new(fields))
        })
        .clone()
}

pub const ROLLUPS: &str = "rollups";

/// Columns of `rollups` beyond the span keys (`service_name`, `service_version`,
/// `deployment_environment`, `span_name`, `span_kind`), which keep their `col` names.
pub mod rollup_col {
    pub const MINUTE: &str = "minute";
    pub const CALLS: &str = "calls";
    pub const ERRORS: &str = "errors";
    pub const DURATION_SUM_NS: &str = "duration_sum_ns";
    pub const DURATION_MIN_NS: &str = "duration_min_ns";
    pub const DURATION_MAX_NS: &str = "duration_max_ns";
    pub const LATENCY_SKETCH: &str = "latency_sketch";
    pub const P50_NS: &str = "p50_ns";
    pub const P95_NS: &str = "p95_ns";
    pub const P99_NS: &str = "p99_ns";

    // Fields of the `latency_sketch` entries.
    pub const BUCKET: &str = "bucket";
    pub const COUNT: &str = "count";
}

/// One occupied bucket of a latency sketch: `bucket` is the log-bucket index (see
/// `rollup::LatencySketch`), `count` the number of spans in it.
pub fn sketch_entry_fields() -> Fields {
    Fields::from(vec![
        Field::new(rollup_col::BUCKET, DataType::Int32, false),
        Field::new(rollup_col::COUNT, DataType::Int64, false),
    ])
}

/// The element field of `latency_sketch`; entries are never null.
pub fn sketch_item_field() -> Arc<Field> {
    Arc::new(Field::new(
        "item",
        DataType::Struct(sketch_entry_fields()),
        false,
    ))
}

/// `latency_sketch`: `LIST(STRUCT(bucket INTEGER, count BIGINT))`, sorted by bucket. A
/// list of plain rows rather than a binary blob so that any SQL engine can merge
/// sketches (unnest, group by bucket, sum counts) without a plugin.
pub fn latency_sketch_type() -> DataType {
    DataType::List(sketch_item_field())
}

/// The `rollups` table: one row per minute x service x version x environment x span
/// name x span kind. Key columns are nullable exactly where they are in `spans`.
pub fn rollups_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(rollup_col::MINUTE, timestamp_type(), false),
                Field::new(col::SERVICE_NAME, DataType::Utf8, true),
                Field::new(col::SERVICE_VERSION, DataType::Utf8, true),
                Field::new(col::DEPLOYMENT_ENVIRONMENT, DataType::Utf8, true),
                Field::new(col::SPAN_NAME, DataType::Utf8, false),
                Field::new(col::SPAN_KIND, DataType::Utf8, false),
                Field::new(rollup_col::CALLS, DataType::Int64, false),
                Field::new(rollup_col::ERRORS, DataType::Int64, false),
                Field::new(rollup_col::DURATION_SUM_NS, DataType::Int64, false),
                Field::new(rollup_col::DURATION_MIN_NS, DataType::Int64, false),
                Field::new(rollup_col::DURATION_MAX_NS, DataType::Int64, false),
                Field::new(rollup_col::LATENCY_SKETCH, latency_sketch_type(), false),
                Field::new(rollup_col::P50_NS, DataType::Float64, true),
                Field::new(rollup_col::P95_NS, DataType::Float64, true),
                Field::new(rollup_col::P99_NS, DataType::Float64, true),
            ]))
        })
        .clone()
}

pub const MARKERS: &str = "markers";

/// Columns of `markers` beyond the resource keys, which keep their `col` names.
pub mod marker_col {
    /// Event time of the deploy (`--at`, or when the marker was recorded).
    pub const TIME: &str = "time";
    /// Where the marker came from: `cli`, `grpc` or `log`.
    pub const SOURCE: &str = "source";
    /// Wall-clock time the marker was written.
    pub const RECORDED_AT: &str = "recorded_at";
    pub const ATTRIBUTES: &str = "attributes";
}

/// The `markers` table: explicit deploy markers, one row per `mark-deploy` call or
/// `DeployService` request, as recorded.
pub fn markers_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(marker_col::TIME, timestamp_type(), false),
                Field::new(col::SERVICE_NAME, DataType::Utf8, false),
                Field::new(col::SERVICE_VERSION, DataType::Utf8, false),
                Field::new(col::DEPLOYMENT_ENVIRONMENT, DataType::Utf8, true),
                Field::new(marker_col::SOURCE, DataType::Utf8, false),
                Field::new(marker_col::RECORDED_AT, timestamp_type(), false),
                Field::new(marker_col::ATTRIBUTES, attribute_map_type(), false),
            ]))
        })
        .clone()
}
