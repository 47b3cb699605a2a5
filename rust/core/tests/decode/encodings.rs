//! Valid protobuf that prost never writes but other encoders may: fields out of order,
//! messages split over several occurrences, repeated scalars, unknown fields. The
//! decoder must read them as prost does (protobuf: the last scalar wins, occurrences of
//! a message field merge, unknown fields are skipped).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::wire::{fixed64, ld, varint};
use super::{check_against_prost, Signal};

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// Passes if prost accepts `bytes` and the decoder's rows match the prost structs.
fn agree(signal: Signal, what: &str, bytes: &[u8]) {
    match check_against_prost(signal, bytes) {
        Ok(true) => {}
        Ok(false) => {
            let why = match signal {
                Signal::Traces => ExportTraceServiceRequest::decode(bytes).err(),
                Signal::Logs => ExportLogsServiceRequest::decode(bytes).err(),
            };
            panic!("{what}: prost rejects the test input itself: {why:?}")
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

fn any_str(s: &str) -> Vec<u8> {
    ld(1, s.as_bytes())
}

fn kv(key: &str, any: &[u8]) -> Vec<u8> {
    cat(&[ld(1, key.as_bytes()), ld(2, any)])
}

fn ids() -> Vec<u8> {
    cat(&[ld(1, &[0x11; 16]), ld(2, &[0x22; 8])])
}

/// A request of one resource with one scope holding `spans`.
fn traces(resource: &[u8], spans: &[Vec<u8>]) -> Vec<u8> {
    let mut scope_spans = ld(1, &ld(1, b"scope"));
    for s in spans {
        scope_spans.extend(ld(2, s));
    }
    ld(1, &cat(&[ld(1, resource), ld(2, &scope_spans)]))
}

fn logs(resource: &[u8], records: &[Vec<u8>]) -> Vec<u8> {
    let mut scope_logs = Vec::new();
    for r in records {
        scope_logs.extend(ld(2, r));
    }
    ld(1, &cat(&[ld(1, resource), ld(2, &scope_logs)]))
}

#[test]
fn fields_in_any_order() {
    let resource = ld(1, &kv("service.name", &any_str("cart")));
    let event = cat(&[ld(3, &kv("e", &any_str("1"))), ld(2, b"ev"), fixed64(1, 5)]);
    let link = cat(&[
        ld(4, &kv("l", &any_str("2"))),
        ld(2, &[3; 8]),
        ld(1, &[4; 16]),
    ]);
    let span = cat(&[
        ld(13, &link),
        ld(9, &kv("a", &any_str("x"))),
        ld(11, &event),
        ld(15, &cat(&[varint(3, 2), ld(2, b"boom")])),
        ld(9, &kv("b", &varint(3, 7))),
        fixed64(8, 20),
        fixed64(7, 10),
        varint(6, 3),
        ld(5, b"op"),
        ld(2, &[0x22; 8]),
        ld(1, &[0x11; 16]),
    ]);
    // The resource after its scopes, the scope after its spans.
    let scope_spans = cat(&[ld(2, &span), ld(1, &ld(1, b"scope"))]);
    let rs = cat(&[ld(2, &scope_spans), ld(1, &resource)]);
    agree(Signal::Traces, "reordered span", &ld(1, &rs));

    let record = cat(&[
        ld(6, &kv("k", &any_str("v"))),
        ld(5, &any_str("body")),
        ld(10, &[5; 8]),
        ld(9, &[6; 16]),
        fixed64(11, 9),
        varint(2, 17),
    ]);
    let rl = cat(&[ld(2, &ld(2, &record)), ld(1, &resource)]);
    agree(Signal::Logs, "reordered record", &ld(1, &rl));
}

#[test]
fn split_resource_scope_and_status_merge() {
    let scope_spans = cat(&[
        ld(1, &ld(1, b"scope-name")),
        ld(
            2,
            &cat(&[ids(), ld(15, &varint(3, 2)), ld(15, &ld(2, b"msg"))]),
        ),
        ld(1, &ld(2, b"scope-version")),
    ]);
    let rs = cat(&[
        ld(1, &ld(1, &kv("service.name", &any_str("cart")))),
        ld(2, &scope_spans),
        ld(1, &ld(1, &kv("service.version", &any_str("1.2")))),
    ]);
    agree(Signal::Traces, "split resource/scope/status", &ld(1, &rs));

    let rl = cat(&[
        ld(1, &ld(1, &kv("service.name", &any_str("cart")))),
        ld(2, &cat(&[ld(1, &ld(1, b"s")), ld(2, &varint(2, 9))])),
        ld(1, &ld(1, &kv("deployment.environment", &any_str("prod")))),
    ]);
    agree(Signal::Logs, "split resource", &ld(1, &rl));
}

#[test]
fn repeated_scalars_last_wins() {
    let span = cat(&[
        ld(1, &[0x11; 5]),
        ids(),
        ld(5, b"first"),
        ld(5, b"second"),
        varint(6, 9),
        varint(6, 2),
        fixed64(7, 100),
        fixed64(7, 7),
        fixed64(8, 1),
        fixed64(8, 50),
        ld(4, &[1; 3]),
        ld(4, &[1; 8]),
    ]);
    agree(
        Signal::Traces,
        "repeated span scalars",
        &traces(&[], &[span]),
    );

    let record = cat(&[
        fixed64(1, 0),
        fixed64(11, 3),
        varint(2, 3),
        varint(2, 4),
        ld(9, &[0; 16]),
        ld(9, &[7; 16]),
        ld(12, b"a"),
        ld(12, b""),
    ]);
    agree(
        Signal::Logs,
        "repeated record scalars",
        &logs(&[], &[record]),
    );
}

#[test]
fn last_oneof_member_wins() {
    // One AnyValue with a string, then an int, then a bool: the bool counts.
    let any = cat(&[any_str("text"), varint(3, 5), varint(2, 1)]);
    let span = cat(&[ids(), ld(9, &kv("v", &any))]);
    agree(Signal::Traces, "oneof", &traces(&[], &[span]));
}

#[test]
fn unknown_fields_are_skipped() {
    let junk = cat(&[
        varint(99, 1),
        fixed64(98, 2),
        ld(97, b"junk"),
        vec![0xd5, 0x06, 1, 2, 3, 4],             // field 106, fixed32
        vec![0xdb, 0x06, 0x08, 0x01, 0xdc, 0x06], // field 107, a group holding a varint
    ]);
    let any = cat(&[junk.clone(), any_str("v")]);
    let attr = cat(&[junk.clone(), kv("k", &any)]);
    let flags = vec![0x85, 0x01, 3, 0, 0, 0]; // field 16, fixed32
    let span = cat(&[junk.clone(), ids(), ld(9, &attr), flags]);
    let resource = cat(&[junk.clone(), ld(1, &kv("service.name", &any))]);
    let scope_spans = cat(&[junk.clone(), ld(1, &junk), ld(2, &span)]);
    let rs = cat(&[junk.clone(), ld(1, &resource), ld(2, &scope_spans)]);
    let req = cat(&[junk.clone(), ld(1, &rs), junk.clone()]);
    agree(Signal::Traces, "unknown fields", &req);

    let record = cat(&[junk.clone(), ld(5, &any), ld(6, &attr)]);
    let rl = cat(&[junk.clone(), ld(1, &resource), ld(2, &ld(2, &record))]);
    agree(Signal::Logs, "unknown fields", &cat(&[ld(1, &rl), junk]));
}

// A message field that occurs twice is one message, merged: an attribute value or a
// log body sent as a string and then as an empty AnyValue keeps the string, and an
// array sent in two halves is one array.

#[test]
fn split_attribute_value_merges() {
    let split = cat(&[ld(1, b"k"), ld(2, &any_str("kept")), ld(2, &[])]);
    let span = cat(&[ids(), ld(9, &split)]);
    agree(
        Signal::Traces,
        "split attribute value",
        &traces(&[], &[span]),
    );
}

#[test]
fn split_array_value_concatenates() {
    let array = cat(&[
        ld(5, &cat(&[ld(1, &varint(3, 1)), ld(1, &varint(3, 2))])),
        ld(5, &ld(1, &varint(3, 3))),
    ]);
    let span = cat(&[ids(), ld(9, &kv("arr", &array))]);
    agree(Signal::Traces, "split array value", &traces(&[], &[span]));
}

#[test]
fn split_log_body_merges() {
    let record = cat(&[ld(5, &any_str("kept")), ld(5, &[])]);
    agree(Signal::Logs, "split body", &logs(&[], &[record]));
}
