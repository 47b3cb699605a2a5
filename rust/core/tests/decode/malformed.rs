//! Hostile input: truncated, mutated and random bytes. The decoder must return `Err`
//! where the wire format is broken, never panic, and, whenever prost accepts the bytes,
//! produce exactly the rows the prost-decoded request implies.

use prost::encoding::encoded_len_varint;
use prost::Message;

use super::rng::Rng;
use super::wire::{field, push_varint};
use super::{cases, check_against_prost, decode, gen, show, Signal};

fn encoded(signal: Signal, rng: &mut Rng) -> (Vec<u8>, Vec<usize>) {
    // Where each top-level message ends: cutting exactly there leaves a valid request.
    let ends = |lens: Vec<usize>| {
        let mut at = 0;
        let mut ends = vec![0];
        for len in lens {
            at += 1 + encoded_len_varint(len as u64) + len;
            ends.push(at);
        }
        ends
    };
    match signal {
        Signal::Traces => {
            let req = gen::traces(rng);
            let lens = req
                .resource_spans
                .iter()
                .map(Message::encoded_len)
                .collect();
            (req.encode_to_vec(), ends(lens))
        }
        Signal::Logs => {
            let req = gen::logs(rng);
            let lens = req.resource_logs.iter().map(Message::encoded_len).collect();
            (req.encode_to_vec(), ends(lens))
        }
    }
}

fn truncations(signal: Signal, n: u64) {
    let mut failures = Vec::new();
    for seed in 0..n {
        let mut rng = Rng::new(seed ^ 0x7a11);
        let (bytes, ends) = encoded(signal, &mut rng);
        // Every cut of small requests; a sample of cuts (and all the ends) of large ones.
        let cuts: Vec<usize> = if bytes.len() <= 3000 {
            (0..bytes.len()).collect()
        } else {
            (0..300)
                .map(|_| rng.below(bytes.len()))
                .chain(ends.iter().copied())
                .collect()
        };
        for cut in cuts {
            let prefix = &bytes[..cut];
            let outcome = if ends.contains(&cut) {
                check_against_prost(signal, prefix).map(|_| ())
            } else {
                match decode(signal, prefix) {
                    Ok(Err(_)) => Ok(()),
                    Ok(Ok(_)) => Err(format!("accepted a cut inside a message at byte {cut}")),
                    Err(e) => Err(e),
                }
            };
            if let Err(e) = outcome {
                failures.push(format!("seed {seed}, cut at {cut} of {}: {e}", bytes.len()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{signal:?}: {} truncations misbehaved; first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(3)].join("\n")
    );
}

#[test]
fn truncated_traces_fail_cleanly() {
    truncations(Signal::Traces, cases(40));
}

#[test]
fn truncated_logs_fail_cleanly() {
    truncations(Signal::Logs, cases(40));
}

/// Flips bits, overwrites, deletes, duplicates and inserts bytes.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        if bytes.is_empty() {
            let n = 1 + rng.below(8);
            bytes.extend(rng.bytes(n));
            continue;
        }
        let at = rng.below(bytes.len());
        match rng.below(6) {
            0 | 1 => bytes[at] ^= 1 << rng.below(8),
            2 => bytes[at] = rng.next_u64() as u8,
            3 => {
                let end = (at + 1 + rng.below(16)).min(bytes.len());
                bytes.drain(at..end);
            }
            4 => {
                let end = (at + 1 + rng.below(16)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => {
                let n = 1 + rng.below(4);
                let junk = rng.bytes(n);
                bytes.splice(at..at, junk);
            }
        }
    }
}

fn mutations(signal: Signal, n: u64) {
    let mut failures = Vec::new();
    let mut accepted = 0;
    for seed in 0..n {
        let mut rng = Rng::new(seed ^ 0xb17f);
        let (mut bytes, _) = encoded(signal, &mut rng);
        mutate(&mut rng, &mut bytes);
        match check_against_prost(signal, &bytes) {
            Ok(ok) => accepted += u64::from(ok),
            Err(e) => failures.push(format!("seed {seed}: {e}")),
        }
    }
    eprintln!("{signal:?}: prost accepted {accepted} of {n} mutated requests");
    assert!(
        failures.is_empty(),
        "{signal:?}: {} of {n} mutated requests misbehaved; first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(3)].join("\n")
    );
}

#[test]
fn mutated_traces_never_panic_and_agree_with_prost_when_valid() {
    mutations(Signal::Traces, cases(1000));
}

#[test]
fn mutated_logs_never_panic_and_agree_with_prost_when_valid() {
    mutations(Signal::Logs, cases(1000));
}

/// Random bytes shaped like protobuf: small field numbers (so the known fields are hit),
/// any wire type, and nested messages in length-delimited fields.
fn random_message(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) {
    for _ in 0..rng.below(6) {
        let field = 1 + rng.below(16) as u64;
        let wire = if rng.chance(60) {
            2
        } else {
            rng.pick(&[0, 1, 3, 4, 5, 6, 7])
        };
        push_varint(out, field << 3 | wire);
        match wire {
            0 => push_varint(out, rng.next_u64() >> rng.below(64)),
            1 => out.extend(rng.bytes(8)),
            5 => out.extend(rng.bytes(4)),
            2 => {
                let mut inner = Vec::new();
                if depth < 6 && rng.chance(70) {
                    random_message(rng, depth + 1, &mut inner);
                } else {
                    let n = rng.below(20);
                    inner = rng.bytes(n);
                }
                let len = if rng.chance(3) {
                    inner.len() as u64 + 1 + rng.below(4) as u64
                } else {
                    inner.len() as u64
                };
                push_varint(out, len);
                out.extend(inner);
            }
            _ => {}
        }
    }
}

fn random_inputs(signal: Signal, n: u64) {
    let mut failures = Vec::new();
    let mut accepted = 0;
    for seed in 0..n {
        let mut rng = Rng::new(seed ^ 0x5eed);
        let mut bytes = Vec::new();
        if rng.chance(20) {
            let n = rng.below(64);
            bytes = rng.bytes(n);
        } else {
            random_message(&mut rng, 0, &mut bytes);
        }
        match check_against_prost(signal, &bytes) {
            Ok(ok) => accepted += u64::from(ok),
            Err(e) => failures.push(format!("seed {seed}: {e}")),
        }
    }
    eprintln!("{signal:?}: prost accepted {accepted} of {n} random inputs");
    assert!(
        failures.is_empty(),
        "{signal:?}: {} of {n} random inputs misbehaved; first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(3)].join("\n")
    );
}

#[test]
fn random_traces_input_never_panics() {
    random_inputs(Signal::Traces, cases(3000));
}

#[test]
fn random_logs_input_never_panics() {
    random_inputs(Signal::Logs, cases(3000));
}

#[test]
fn broken_wire_format_is_an_error() {
    let mut overlong_len = vec![0x0a];
    push_varint(&mut overlong_len, u64::MAX);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("tag without a payload", vec![0x0a]),
        ("length past the end", vec![0x0a, 0x05, 1, 2]),
        ("length of u64::MAX", overlong_len),
        ("field number 0", vec![0x02, 0x00]),
        ("wire type 6", vec![0x0e, 0x00]),
        ("wire type 7", vec![0x0f, 0x00]),
        ("end-group without a start", vec![0x0c]),
        ("unterminated group", vec![0x0b, 0x08, 0x01]),
        ("mismatched end-group", vec![0x0b, 0x14]),
        (
            "varint of 11 bytes",
            [&[0x08][..], &[0xff; 10], &[0x01]].concat(),
        ),
        ("truncated varint", vec![0x08, 0xff]),
        ("truncated fixed64", vec![0x09, 1, 2, 3]),
        ("truncated fixed32", vec![0x0d, 1, 2]),
        // A nested length that runs past its parent, though not past the input.
        (
            "nested length past the parent",
            vec![0x0a, 0x02, 0x12, 0x05, 0, 0, 0, 0, 0],
        ),
    ];
    for signal in [Signal::Traces, Signal::Logs] {
        for (what, bytes) in &cases {
            match decode(signal, bytes) {
                Ok(Err(_)) => {}
                Ok(Ok(d)) => panic!(
                    "{signal:?}: {what} accepted ({} rows): {}",
                    d.batch.num_rows(),
                    show(bytes)
                ),
                Err(e) => panic!("{signal:?}: {what}: {e}"),
            }
        }
    }
}

/// `[[[...1...]]]` nested `levels` deep as an `AnyValue`. Written outside in, from
/// lengths worked out inside out, so a deep one costs linear time.
fn nested_array(levels: usize) -> Vec<u8> {
    let innermost: &[u8] = &[0x18, 0x01]; // int_value: 1
                                          // (ArrayValue length, AnyValue length) per level, innermost first.
    let mut lens = Vec::with_capacity(levels);
    let mut any = innermost.len();
    for _ in 0..levels {
        let array = 1 + encoded_len_varint(any as u64) + any;
        let outer = 1 + encoded_len_varint(array as u64) + array;
        lens.push((array, any));
        any = outer;
    }
    let mut out = Vec::with_capacity(any);
    for &(array, inner) in lens.iter().rev() {
        out.push(0x2a); // AnyValue.array_value
        push_varint(&mut out, array as u64);
        out.push(0x0a); // ArrayValue.values
        push_varint(&mut out, inner as u64);
    }
    out.extend(innermost);
    out
}

#[test]
fn absurdly_deep_values_are_capped_not_recursed() {
    let value = nested_array(100_000);
    let mut kv = Vec::new();
    field(&mut kv, 1, b"deep");
    field(&mut kv, 2, &value);

    let mut span = Vec::new();
    field(&mut span, 1, &[7; 16]);
    field(&mut span, 2, &[7; 8]);
    field(&mut span, 9, &kv);
    let mut record = Vec::new();
    field(&mut record, 5, &value);
    field(&mut record, 6, &kv);

    for (signal, item) in [(Signal::Traces, span), (Signal::Logs, record)] {
        let mut scope = Vec::new();
        field(&mut scope, 2, &item);
        let mut resource = Vec::new();
        field(&mut resource, 2, &scope);
        let mut req = Vec::new();
        field(&mut req, 1, &resource);
        let decoded = decode(signal, &req)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{signal:?}: {e}"));
        assert_eq!(decoded.batch.num_rows(), 1, "{signal:?}");
        assert!(
            decoded.stats.depth_capped > 0,
            "{signal:?}: {:?}",
            decoded.stats
        );
    }
}

#[test]
fn deeply_nested_groups_do_not_crash() {
    for depth in [10, 99, 100, 101, 100_000] {
        // Field 15: `depth` start-group tags, then as many end-group tags.
        let bytes = [vec![0x7b; depth], vec![0x7c; depth]].concat();
        for signal in [Signal::Traces, Signal::Logs] {
            let r = decode(signal, &bytes).unwrap_or_else(|e| panic!("{e}"));
            // Shallow, well-formed groups are unknown fields to skip.
            if depth <= 10 {
                assert!(r.is_ok(), "{signal:?}, depth {depth}: {:?}", r.err());
            }
        }
    }
}
