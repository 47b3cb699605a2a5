//! Any bytes given to the protobuf logs decoder: see `aftershock_fuzz::check_decoder`.
#![no_main]

use std::sync::LazyLock;

use aftershock_core::decode_logs;
use aftershock_core::schema::logs_schema;
use arrow_schema::SchemaRef;
use libfuzzer_sys::fuzz_target;

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(logs_schema);

fuzz_target!(|data: &[u8]| {
    aftershock_fuzz::check_decoder(decode_logs, &SCHEMA, data);
});
