//! Any bytes given to the OTLP/JSON traces decoder: see `aftershock_fuzz::check_decoder`.
#![no_main]

use std::sync::LazyLock;

use aftershock_core::decode_traces_json;
use aftershock_core::schema::spans_schema;
use arrow_schema::SchemaRef;
use libfuzzer_sys::fuzz_target;

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(spans_schema);

fuzz_target!(|data: &[u8]| {
    aftershock_fuzz::check_decoder(decode_traces_json, &SCHEMA, data);
});
