//! Hand-made protobuf for inputs prost would never write: split messages, fields out
//! of order, unknown fields, nesting deeper than any struct.

pub fn push_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push(x as u8 | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// A length-delimited field.
pub fn field(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
    push_varint(out, number << 3 | 2);
    push_varint(out, payload.len() as u64);
    out.extend(payload);
}

/// A length-delimited field, returned.
pub fn ld(number: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    field(&mut out, number, payload);
    out
}

pub fn varint(number: u64, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    push_varint(&mut out, number << 3);
    push_varint(&mut out, v);
    out
}

pub fn fixed64(number: u64, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    push_varint(&mut out, number << 3 | 1);
    out.extend(v.to_le_bytes());
    out
}
