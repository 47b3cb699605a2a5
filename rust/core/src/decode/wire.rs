//! Walking protobuf wire format without generated types: one field at a time,
//! borrowing length-delimited payloads from the input.

use crate::error::DecodeError;

/// One field's payload. Length-delimited payloads borrow the input and carry
/// their absolute offset so nested errors can name the byte.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    /// fixed32 payloads (span flags) are not stored; only their presence is.
    Fixed32,
    Bytes(&'a [u8], usize),
}

/// Groups (wire types 3 and 4) nest; skipping them is iterative, but a
/// pathological input could nest millions deep, so cap the count.
const MAX_GROUP_DEPTH: usize = 100;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` within the whole request.
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// The bytes not read yet.
    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Skips `n` bytes (at most what remains).
    pub(crate) fn skip(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    #[cold]
    fn err(&self, msg: &str) -> DecodeError {
        DecodeError::new(self.offset(), msg)
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        // Tags, lengths and small ints are nearly always one byte.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.err("varint longer than 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    #[inline(always)]
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err(what))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next field number and its payload, or `None` at the end of the message.
    /// Groups are skipped whole and never returned.
    #[inline(always)]
    pub(crate) fn next(&mut self) -> Result<Option<(u32, Value<'a>)>, DecodeError> {
        loop {
            if self.pos >= self.buf.len() {
                return Ok(None);
            }
            let tag_at = self.offset();
            let tag = self.varint()?;
            let field = tag >> 3;
            if field == 0 || field > u64::from(u32::MAX >> 3) {
                return Err(DecodeError::new(tag_at, "invalid field number 0"));
            }
            let field = field as u32;
            let value = match tag & 7 {
                0 => Value::Varint(self.varint()?),
                1 => {
                    let b = self.take(8, "truncated fixed64")?;
                    Value::Fixed64(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                }
                2 => {
                    let len = self.varint()?;
                    let at = self.offset();
                    let len = usize::try_from(len).map_err(|_| self.err("length too large"))?;
                    Value::Bytes(
                        self.take(len, "length-delimited field runs past the end")?,
                        at,
                    )
                }
                3 => {
                    self.skip_group(field, tag_at)?;
                    continue;
                }
                5 => {
                    self.take(4, "truncated fixed32")?;
                    Value::Fixed32
                }
                4 => return Err(DecodeError::new(tag_at, "unexpected end-group tag")),
                _ => return Err(DecodeError::new(tag_at, "invalid wire type")),
            };
            return Ok(Some((field, value)));
        }
    }

    fn skip_group(&mut self, field: u32, start: usize) -> Result<(), DecodeError> {
        let mut open = vec![field];
        while let Some(&current) = open.last() {
            if self.pos >= self.buf.len() {
                return Err(DecodeError::new(start, "unterminated group"));
            }
            let tag_at = self.offset();
            let tag = self.varint()?;
            let f = (tag >> 3) as u32;
            match tag & 7 {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.take(8, "truncated fixed64")?;
                }
                2 => {
                    let len = self.varint()?;
                    let len = usize::try_from(len).map_err(|_| self.err("length too large"))?;
                    self.take(len, "length-delimited field runs past the end")?;
                }
                3 => {
                    if open.len() >= MAX_GROUP_DEPTH {
                        return Err(DecodeError::new(tag_at, "groups nested too deeply"));
                    }
                    open.push(f);
                }
                4 => {
                    if f != current {
                        return Err(DecodeError::new(tag_at, "mismatched end-group tag"));
                    }
                    open.pop();
                }
                5 => {
                    self.take(4, "truncated fixed32")?;
                }
                _ => return Err(DecodeError::new(tag_at, "invalid wire type")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_skips_groups() {
        // field 1 varint 150, field 2 group { field 3 varint 1 }, field 4 bytes "hi"
        let buf = [
            0x08, 0x96, 0x01, 0x13, 0x18, 0x01, 0x14, 0x22, 0x02, b'h', b'i',
        ];
        let mut r = Reader::new(&buf, 0);
        assert!(matches!(r.next(), Ok(Some((1, Value::Varint(150))))));
        match r.next() {
            Ok(Some((4, Value::Bytes(b, 9)))) => assert_eq!(b, b"hi"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(r.next(), Ok(None)));
    }

    #[test]
    fn truncation_is_an_error_with_offset() {
        let buf = [0x22, 0x05, b'h'];
        let mut r = Reader::new(&buf, 100);
        let e = r.next().err();
        assert_eq!(e.map(|e| e.offset()), Some(102));
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let buf = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert!(Reader::new(&buf, 0).next().is_err());
    }
}
