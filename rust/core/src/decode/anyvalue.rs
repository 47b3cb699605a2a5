//! Rendering OTLP `AnyValue`s as text, per CONTRACT.md: strings as they are,
//! everything else as compact JSON (`true`, `42`, `1.5`, `["a","b"]`, `{"k":"v"}`),
//! bytes as base64. Nested JSON follows Python's `json.dumps(v, ensure_ascii=False,
//! separators=(",", ":"))`, so analysts get the text they would get from Python.

use base64::Engine;

use super::columns::{copy_prefix, Utf8Column};
use super::wire::{Reader, Value};
use super::{DecodeOptions, DecodeStats};
use crate::error::DecodeError;

/// What a nested value deeper than the cap is rendered as.
pub const TRUNCATED_DEPTH: &str = "\"...(nested too deep)\"";

/// An embedded message that may occur several times on the wire; protobuf
/// merges the occurrences, which is the same as parsing their concatenation.
#[derive(Clone, Default, Debug)]
pub(crate) struct Parts<'a> {
    first: Option<(&'a [u8], usize)>,
    more: Vec<(&'a [u8], usize)>,
}

impl<'a> Parts<'a> {
    pub(crate) fn one(buf: &'a [u8], base: usize) -> Self {
        Parts {
            first: Some((buf, base)),
            more: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, buf: &'a [u8], base: usize) {
        if self.first.is_none() {
            self.first = Some((buf, base));
        } else {
            self.more.push((buf, base));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn iter(&self) -> impl Iterator<Item = (&'a [u8], usize)> + '_ {
        self.first.iter().chain(self.more.iter()).copied()
    }

    /// Each field of every occurrence, in wire order.
    fn for_each_field(
        &self,
        mut f: impl FnMut(u32, Value<'a>) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        for (buf, base) in self.iter() {
            let mut r = Reader::new(buf, base);
            while let Some((field, v)) = r.next()? {
                f(field, v)?;
            }
        }
        Ok(())
    }
}

/// The one `AnyValue` variant that counts, as either encoding presents it.
/// Containers stay in the encoding's own form (`L`) and are walked through [`AnyValue`].
pub(crate) enum Kind<'a, L> {
    Str(&'a [u8]),
    Bool(bool),
    Int(i64),
    Double(f64),
    Array(L),
    KvList(L),
    Bytes(&'a [u8]),
}

/// A lone scalar `AnyValue`, small enough to pass around in registers: what the
/// hot path of [`append_value`] looks at before asking for the general [`Kind`].
#[derive(Clone, Copy)]
pub(crate) enum Scalar<'a> {
    Str(&'a [u8]),
    Bool(bool),
    Int(i64),
    Double(f64),
}

impl<'a, L> From<Scalar<'a>> for Kind<'a, L> {
    #[inline(always)]
    fn from(s: Scalar<'a>) -> Self {
        match s {
            Scalar::Str(b) => Kind::Str(b),
            Scalar::Bool(b) => Kind::Bool(b),
            Scalar::Int(i) => Kind::Int(i),
            Scalar::Double(x) => Kind::Double(x),
        }
    }
}

/// An OTLP `AnyValue` in some encoding. Rendering is written once against this
/// trait, so protobuf and JSON requests produce the same text.
pub(crate) trait AnyValue<'a>: Sized {
    /// An array's or kvlist's elements, in the encoding's form.
    type List;
    /// No value at all (a `KeyValue` without `value`), as opposed to an empty `AnyValue`.
    fn is_absent(&self) -> bool;
    /// The variant set, or `None` for an empty `AnyValue`.
    fn kind(&self) -> Result<Option<Kind<'a, Self::List>>, DecodeError>;
    /// The value if the encoding can tell cheaply that it is a lone scalar; `None`
    /// says nothing (ask [`AnyValue::kind`]).
    #[inline(always)]
    fn scalar(&self) -> Option<Scalar<'a>> {
        None
    }
    /// Appends the value if the encoding can tell cheaply that it is an array of
    /// strings that render as they are (see `plain_json_string`) within `max`
    /// bytes, and elements would not be capped at `max_depth`; false (nothing
    /// written) says nothing.
    #[inline(always)]
    fn append_plain_string_array(
        &self,
        _out: &mut Utf8Column,
        _max: usize,
        _max_depth: usize,
    ) -> bool {
        false
    }
    /// Calls `f` with each element of an array.
    fn each_element(
        list: &Self::List,
        f: impl FnMut(&Self) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError>;
    /// Calls `f` with the key and value of each entry of a kvlist.
    fn each_entry(
        list: &Self::List,
        f: impl FnMut(&'a [u8], &Self) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError>;
}

impl<'a> Parts<'a> {
    /// The general case of [`AnyValue::kind`]: every field of every occurrence.
    #[inline(never)]
    fn kind_walk(&self) -> Result<Option<Kind<'a, Parts<'a>>>, DecodeError> {
        let mut kind: Option<Kind<'a, Parts<'a>>> = None;
        self.for_each_field(|field, v| {
            kind = match (field, v, kind.take()) {
                (1, Value::Bytes(b, _), _) => Some(Kind::Str(b)),
                (2, Value::Varint(x), _) => Some(Kind::Bool(x != 0)),
                // int64 travels as a varint; the cast restores its sign.
                (3, Value::Varint(x), _) => Some(Kind::Int(x as i64)),
                (4, Value::Fixed64(x), _) => Some(Kind::Double(f64::from_bits(x))),
                (5, Value::Bytes(b, at), Some(Kind::Array(mut p))) => {
                    p.push(b, at);
                    Some(Kind::Array(p))
                }
                (5, Value::Bytes(b, at), _) => Some(Kind::Array(Parts::one(b, at))),
                (6, Value::Bytes(b, at), Some(Kind::KvList(mut p))) => {
                    p.push(b, at);
                    Some(Kind::KvList(p))
                }
                (6, Value::Bytes(b, at), _) => Some(Kind::KvList(Parts::one(b, at))),
                (7, Value::Bytes(b, _), _) => Some(Kind::Bytes(b)),
                (_, _, k) => k,
            };
            Ok(())
        })?;
        Ok(kind)
    }
}

/// Protobuf: by the oneof rule the last variant set wins, and occurrences of the
/// same message-typed variant in a row merge.
impl<'a> AnyValue<'a> for Parts<'a> {
    type List = Parts<'a>;

    #[inline]
    fn is_absent(&self) -> bool {
        self.is_empty()
    }

    #[inline(always)]
    fn kind(&self) -> Result<Option<Kind<'a, Parts<'a>>>, DecodeError> {
        match self.scalar() {
            Some(s) => Ok(Some(s.into())),
            None => self.kind_walk(),
        }
    }

    /// Fast paths: one scalar field, by far the most common values (a short
    /// string most of all). Anything else takes the general walk, `kind_walk`.
    #[inline(always)]
    fn scalar(&self) -> Option<Scalar<'a>> {
        let (Some((buf, _)), true) = (self.first, self.more.is_empty()) else {
            return None;
        };
        match buf {
            [0x0a, ..] => match super::short_field(buf, 0x0a) {
                Some((s, [])) => Some(Scalar::Str(s)),
                _ => None,
            },
            [0x10, b] if *b < 0x80 => Some(Scalar::Bool(*b != 0)),
            // int64 travels as a varint; the cast restores its sign.
            [0x18, rest @ ..] => exact_varint(rest).map(|x| Scalar::Int(x as i64)),
            [0x21, rest @ ..] => <[u8; 8]>::try_from(rest)
                .ok()
                .map(|b| Scalar::Double(f64::from_bits(u64::from_le_bytes(b)))),
            _ => None,
        }
    }

    #[inline(never)]
    fn append_plain_string_array(
        &self,
        out: &mut Utf8Column,
        max: usize,
        max_depth: usize,
    ) -> bool {
        // `render_nested` caps elements (depth 2) below this depth.
        if max_depth < 2 || !self.more.is_empty() {
            return false;
        }
        // The whole value is one `array_value` (5) whose elements are each only a
        // `string_value` (1); anything else (other fields, repeats) takes the general path.
        let Some((buf, _)) = self.first else {
            return false;
        };
        let Some((array, [])) = super::bytes_field(buf, 0x2a) else {
            return false;
        };
        let string = |elem: &'a [u8]| match super::short_field(elem, 0x0a) {
            Some((s, [])) if plain_json_string(s) => Some(s),
            _ => None,
        };
        // `[`, `]`, and per element two quotes and a comma (one too many).
        let mut len = 1;
        let mut rest = array;
        while !rest.is_empty() {
            let Some((elem, r)) = super::short_field(rest, 0x0a) else {
                return false;
            };
            let Some(s) = string(elem) else {
                return false;
            };
            len += s.len() + 3;
            rest = r;
        }
        if len.max(2) > max {
            return false;
        }
        out.push_with(len.max(2), |mut dst| {
            put(&mut dst, b"[");
            let mut rest = array;
            let mut first = true;
            while let Some((elem, r)) = super::short_field(rest, 0x0a) {
                if let Some((s, _)) = super::short_field(elem, 0x0a) {
                    put(
                        &mut dst,
                        if std::mem::take(&mut first) {
                            b"\""
                        } else {
                            b",\""
                        },
                    );
                    put(&mut dst, s);
                    put(&mut dst, b"\"");
                }
                rest = r;
            }
            put(&mut dst, b"]");
        });
        true
    }

    fn each_element(
        list: &Parts<'a>,
        mut f: impl FnMut(&Self) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let mut i = 0;
        list.for_each_field(|field, v| {
            if let (1, Value::Bytes(elem, at)) = (field, v) {
                f(&Parts::one(elem, at)).map_err(|e| e.within("values", Some(i)))?;
                i += 1;
            }
            Ok(())
        })
    }

    fn each_entry(
        list: &Parts<'a>,
        mut f: impl FnMut(&'a [u8], &Self) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let mut i = 0;
        list.for_each_field(|field, v| {
            if let (1, Value::Bytes(kv, at)) = (field, v) {
                let kv = super::raw_kv(kv, at).map_err(|e| e.within("values", Some(i)))?;
                f(kv.key, &kv.value).map_err(|e| e.within("values", Some(i)))?;
                i += 1;
            }
            Ok(())
        })
    }
}

/// A varint that is all of `b` (at most ten bytes, the last one without a
/// continuation bit and, if tenth, at most 1), or `None` for the general reader.
#[inline(always)]
fn exact_varint(b: &[u8]) -> Option<u64> {
    let (&last, body) = b.split_last()?;
    if last >= 0x80 || b.len() > 10 || (b.len() == 10 && last > 1) {
        return None;
    }
    let mut x = u64::from(last) << (7 * body.len());
    for (i, &byte) in body.iter().enumerate() {
        if byte < 0x80 {
            return None;
        }
        x |= u64::from(byte & 0x7f) << (7 * i);
    }
    Some(x)
}

/// Appends `bytes` as UTF-8 to `out`, replacing invalid sequences with U+FFFD and
/// counting them.
#[inline]
pub(crate) fn push_utf8(out: &mut String, bytes: &[u8], stats: &mut DecodeStats) {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => {
            stats.invalid_utf8 += 1;
            out.push_str(&String::from_utf8_lossy(bytes));
        }
    }
}

/// Renders a top-level attribute value (or a log body) into `out`.
/// Returns false for an empty `AnyValue` (no variant set), which the tables store as NULL.
pub(crate) fn render_value<'a, V: AnyValue<'a>>(
    value: &V,
    out: &mut String,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
) -> Result<bool, DecodeError> {
    let Some(kind) = value.kind()? else {
        return Ok(false);
    };
    match kind {
        Kind::Str(s) => push_utf8(out, s, stats),
        Kind::Bytes(b) => base64::engine::general_purpose::STANDARD.encode_string(b, out),
        other => render_json::<V>(other, 1, out, opts, stats)?,
    }
    Ok(true)
}

/// Appends a top-level attribute value to `out` (NULL for an empty `AnyValue`),
/// capped at `opts.max_value_bytes`. Strings, the common case, go straight from
/// the input to the column; other kinds are rendered in `scratch` first.
#[inline(always)]
pub(crate) fn append_value<'a, V: AnyValue<'a>>(
    value: &V,
    out: &mut Utf8Column,
    scratch: &mut String,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    match value.scalar() {
        Some(s) if append_scalar(s, out, scratch, opts) => Ok(()),
        None if value.append_plain_string_array(out, opts.max_value_bytes, opts.max_depth) => {
            Ok(())
        }
        _ => append_value_general(value, out, scratch, opts, stats),
    }
}

/// Appends a lone scalar that needs no cutting; false (nothing written) if it would.
#[inline(always)]
fn append_scalar(
    value: Scalar<'_>,
    out: &mut Utf8Column,
    scratch: &mut String,
    opts: &DecodeOptions,
) -> bool {
    let max = opts.max_value_bytes;
    match value {
        Scalar::Str(s) if s.len() <= max => out.push_bytes(s),
        Scalar::Int(i) => {
            let mut buf = itoa::Buffer::new();
            let s = buf.format(i);
            if s.len() > max {
                return false;
            }
            out.push_str(s);
        }
        Scalar::Bool(b) => {
            let s = if b { "true" } else { "false" };
            if s.len() > max {
                return false;
            }
            out.push_str(s);
        }
        Scalar::Double(x) => {
            scratch.clear();
            push_double(scratch, x);
            if scratch.len() > max {
                return false;
            }
            out.push_str(scratch);
        }
        Scalar::Str(_) => return false,
    }
    true
}

#[inline(never)]
fn append_value_general<'a, V: AnyValue<'a>>(
    value: &V,
    out: &mut Utf8Column,
    scratch: &mut String,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    let Some(kind) = value.kind()? else {
        out.push_null();
        return Ok(());
    };
    scratch.clear();
    match kind {
        Kind::Str(s) => push_utf8(scratch, s, stats),
        Kind::Bytes(b) => base64::engine::general_purpose::STANDARD.encode_string(b, scratch),
        other => render_json::<V>(other, 1, scratch, opts, stats)?,
    }
    out.push_str(cap(scratch, opts.max_value_bytes, stats));
    Ok(())
}

/// `s` cut to at most `max` bytes on a character boundary; cuts are counted.
#[inline]
fn cap<'s>(s: &'s str, max: usize, stats: &mut DecodeStats) -> &'s str {
    if s.len() <= max {
        return s;
    }
    stats.truncated_values += 1;
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

fn render_nested<'a, V: AnyValue<'a>>(
    value: &V,
    depth: usize,
    out: &mut String,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    if depth > opts.max_depth {
        stats.depth_capped += 1;
        out.push_str(TRUNCATED_DEPTH);
        return Ok(());
    }
    match value.kind()? {
        None => out.push_str("null"),
        Some(kind) => render_json::<V>(kind, depth, out, opts, stats)?,
    }
    Ok(())
}

fn render_json<'a, V: AnyValue<'a>>(
    kind: Kind<'a, V::List>,
    depth: usize,
    out: &mut String,
    opts: &DecodeOptions,
    stats: &mut DecodeStats,
) -> Result<(), DecodeError> {
    match kind {
        Kind::Str(s) => push_json_string(out, s, stats),
        Kind::Bytes(b) => {
            out.push('"');
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            out.push('"');
        }
        Kind::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Kind::Int(i) => out.push_str(itoa::Buffer::new().format(i)),
        Kind::Double(x) => push_double(out, x),
        Kind::Array(list) => {
            out.push('[');
            let mut first = true;
            V::each_element(&list, |elem| {
                if !std::mem::take(&mut first) {
                    out.push(',');
                }
                render_nested(elem, depth + 1, out, opts, stats)
            })?;
            out.push(']');
        }
        Kind::KvList(list) => {
            out.push('{');
            let mut first = true;
            V::each_entry(&list, |key, value| {
                if !std::mem::take(&mut first) {
                    out.push(',');
                }
                push_json_string(out, key, stats);
                out.push(':');
                if value.is_absent() {
                    out.push_str("null");
                    Ok(())
                } else {
                    render_nested(value, depth + 1, out, opts, stats)
                        .map_err(|e| e.within("value", None))
                }
            })?;
            out.push('}');
        }
    }
    Ok(())
}

/// Whether `push_json_string` writes `bytes` as they are between quotes: ASCII
/// without control characters, `"` or `\\`.
#[inline]
fn plain_json_string(bytes: &[u8]) -> bool {
    // No early exit: the loop is a few instructions per byte without branches.
    !bytes.iter().fold(false, |bad, &c| {
        bad | !(0x20..0x80).contains(&c) | (c == b'"') | (c == b'\\')
    })
}

/// Copies `b` to the start of `dst` and moves `dst` past it (nothing if it does not fit).
#[inline(always)]
fn put(dst: &mut &mut [u8], b: &[u8]) {
    if let Some((head, tail)) = std::mem::take(dst).split_at_mut_checked(b.len()) {
        copy_prefix(head, b);
        *dst = tail;
    }
}

/// JSON string escaping as Python's `json.dumps(..., ensure_ascii=False)` does it.
fn push_json_string(out: &mut String, bytes: &[u8], stats: &mut DecodeStats) {
    let mut tmp = String::new();
    let s: &str = match simdutf8::basic::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => {
            push_utf8(&mut tmp, bytes, stats);
            &tmp
        }
    };
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{08}' => Some("\\b"),
            '\u{0c}' => Some("\\f"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                out.push_str("\\u00");
                let b = c as u8;
                out.push(hex_digit(b >> 4));
                out.push(hex_digit(b & 0xf));
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(n & 0xf)])
}

/// Powers of ten that are exact doubles, for [`push_short_decimal`].
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Writes `x` if it is a short decimal (`12.345`, `0.5`, `3.0`), the kind of value
/// attributes mostly carry, without going through ryu; returns false otherwise.
///
/// For `1e-4 <= |x| < 1e15` the first `k` for which some integer `m < 1e15` has
/// `m / 10^k` rounding to `x` gives the shortest digits that round-trip, which is
/// what Python's `repr` (and ryu) print: fewer fractional digits means fewer
/// significant digits, and with `m < 1e15` the candidates `10^-k` apart are wider
/// spaced than `x`'s rounding interval, so that `m` is the only one (and it is the
/// nearest integer to `|x| * 10^k`, whose rounding error is far below 1/2).
/// `m as f64 / 10^k` is correctly rounded, so comparing it with `|x|` is exact.
fn push_short_decimal(out: &mut String, x: f64) -> bool {
    let a = x.abs();
    if !(1e-4..1e15).contains(&a) {
        return false;
    }
    for (k, &p) in POW10.iter().enumerate() {
        let y = a * p;
        if y >= 1e15 {
            return false;
        }
        // `i64`, not `u64`: both hold `m < 1e15`, but without AVX-512 the unsigned
        // conversions either way take a dozen instructions and the signed ones one.
        let m = (y + 0.5) as i64;
        if m as f64 / p != a {
            continue;
        }
        if x < 0.0 {
            out.push('-');
        }
        let mut buf = itoa::Buffer::new();
        let digits = buf.format(m);
        if k == 0 {
            out.push_str(digits);
            out.push_str(".0");
            return true;
        }
        // `m`'s digits with the point `k` from the end, zeros in front if `m < 10^k`
        // (no division by `10^k`).
        match digits.len().checked_sub(k) {
            Some(int) if int > 0 => {
                out.push_str(&digits[..int]);
                out.push('.');
                out.push_str(&digits[int..]);
            }
            _ => {
                out.push_str("0.");
                for _ in digits.len()..k {
                    out.push('0');
                }
                out.push_str(digits);
            }
        }
        return true;
    }
    false
}

/// Doubles as Python's `repr` writes them: the shortest digits that round-trip,
/// positional for exponents -4..16 (always with a fractional part), scientific
/// otherwise with a signed exponent of at least two digits; `NaN`, `Infinity`.
pub(crate) fn push_double(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("NaN");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if push_short_decimal(out, x) {
        return;
    }
    // ryu gives the shortest round-trip digits, as `d.ddde[-]x` or positional;
    // re-lay them out the way Python's repr does.
    let mut rbuf = ryu::Buffer::new();
    let r = rbuf.format_finite(x);
    // Where both print positionally, ryu and Python agree digit for digit.
    let a = x.abs();
    if (a == 0.0 || (1e-4..1e16).contains(&a)) && !r.contains('e') {
        out.push_str(r);
        return;
    }
    let (neg, r) = match r.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, r),
    };
    let (mantissa, exp_part) = match r.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (r, 0),
    };
    // Digits without the point, and the decimal exponent of the first digit.
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits = [0u8; 40];
    let mut n = 0;
    for &b in int_part.as_bytes().iter().chain(frac_part.as_bytes()) {
        if n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    let mut exp = exp_part + int_part.len() as i32 - 1;
    // Leading zeros (0.000123 in positional form) are not significant.
    let lead = digits[..n].iter().take_while(|&&d| d == b'0').count();
    let digits: &[u8] = if lead == n {
        exp = 0;
        b"0"
    } else {
        exp -= lead as i32;
        let d = &digits[lead..n];
        // Trailing zeros (as in "100.0") are not significant either.
        let t = d.iter().rev().take_while(|&&c| c == b'0').count();
        &d[..d.len() - t]
    };
    let digits = std::str::from_utf8(digits).unwrap_or("0");
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(digits);
        } else if exp + 1 >= n {
            out.push_str(digits);
            for _ in 0..(exp + 1 - n) {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            let split = (exp + 1) as usize;
            out.push_str(&digits[..split]);
            out.push('.');
            out.push_str(&digits[split..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push('0');
        }
        out.push_str(itoa::Buffer::new().format(a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ld;

    fn d(x: f64) -> String {
        let mut s = String::new();
        push_double(&mut s, x);
        s
    }

    #[test]
    fn doubles_match_python_repr() {
        assert_eq!(d(1.5), "1.5");
        assert_eq!(d(1.0), "1.0");
        assert_eq!(d(-0.0), "-0.0");
        assert_eq!(d(0.0), "0.0");
        assert_eq!(d(100.0), "100.0");
        assert_eq!(d(1e16), "1e+16");
        assert_eq!(d(1e15), "1000000000000000.0");
        assert_eq!(d(1e-5), "1e-05");
        assert_eq!(d(0.0001), "0.0001");
        assert_eq!(d(123456789012345680.0), "1.2345678901234568e+17");
        assert_eq!(d(2.5e-300), "2.5e-300");
        assert_eq!(d(f64::NAN), "NaN");
        assert_eq!(d(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(d(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(d(123.456), "123.456");
        assert_eq!(d(0.000123), "0.000123");
        assert_eq!(d(5e-324), "5e-324");
        assert_eq!(d(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(d(-1234.5e10), "-12345000000000.0");
        assert_eq!(d(9007199254740993.0), "9007199254740992.0");
    }

    /// The ryu path alone, to check the short-decimal fast path against.
    fn d_slow(x: f64) -> String {
        let mut s = String::new();
        let mut rbuf = ryu::Buffer::new();
        let r = rbuf.format_finite(x);
        // Only values ryu prints positionally are compared.
        if !r.contains('e') {
            s.push_str(r);
        }
        s
    }

    #[test]
    fn short_decimals_match_ryu() {
        let mut st = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            st
        };
        let mut checked = 0;
        for i in 0..200_000u64 {
            let r = next();
            let k = (r % 16) as i32;
            let m = (next() % 10u64.pow((1 + r % 15) as u32)) as f64;
            let mut xs = vec![m / 10f64.powi(k), i as f64 / 1000.0, f64::from_bits(next())];
            xs.push(-xs[0]);
            // Values next to a short decimal, one ulp either way.
            xs.push(f64::from_bits(xs[0].to_bits() + 1));
            xs.push(f64::from_bits(xs[0].to_bits().saturating_sub(1)));
            for x in xs {
                let mut fast = String::new();
                if push_short_decimal(&mut fast, x) {
                    checked += 1;
                    let slow = d_slow(x);
                    // ryu writes integral values without the ".0" Python adds.
                    let slow = if slow.contains('.') {
                        slow
                    } else {
                        slow + ".0"
                    };
                    assert_eq!(fast, slow, "bits {:#x}", x.to_bits());
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
        assert_eq!(d(0.0001), "0.0001");
        assert_eq!(d(0.00012), "0.00012");
        assert_eq!(d(12.345), "12.345");
        assert_eq!(d(-7.0), "-7.0");
        assert_eq!(d(999999999999999.9), "999999999999999.9");
    }

    /// Doubles and their Python `repr`, generated once with CPython.
    mod cases {
        include!("python_repr_cases.rs");
    }

    #[test]
    fn doubles_match_python_repr_on_random_values() {
        for &(bits, want) in cases::CASES {
            assert_eq!(d(f64::from_bits(bits)), want, "bits {bits:#x}");
        }
    }

    /// What `append_value` gives, and what the general renderer gives.
    fn both(value: &[u8], opts: &DecodeOptions) -> (Option<String>, Option<String>, u64, u64) {
        let parts = Parts::one(value, 0);
        let run = |general: bool| {
            let mut col = Utf8Column::with_capacity(0, 0);
            let mut stats = DecodeStats::default();
            let mut scratch = String::new();
            let ok = if general {
                append_value_general(&parts, &mut col, &mut scratch, opts, &mut stats)
            } else {
                append_value(&parts, &mut col, &mut scratch, opts, &mut stats)
            };
            let got = ok.ok().and_then(|()| {
                let a = col.finish(&mut stats).ok()?;
                use arrow_array::Array;
                (a.len() == 1 && a.is_valid(0)).then(|| a.value(0).to_owned())
            });
            (got, stats.truncated_values + stats.depth_capped)
        };
        let (fast, fast_counts) = run(false);
        let (general, general_counts) = run(true);
        (fast, general, fast_counts, general_counts)
    }

    #[test]
    fn string_arrays_render_as_the_general_path_does() {
        let string = |s: &[u8]| ld(1, &ld(1, s));
        let array = |elems: &[Vec<u8>]| ld(5, &elems.concat());
        let cases = [
            array(&[]),
            array(&[string(b"new-cart")]),
            array(&[string(b"new-cart"), string(b"fast-pay"), string(b"")]),
            array(&[string(b"a\"b"), string(b"c")]),
            array(&[string(b"back\\slash")]),
            array(&[string(b"tab\t"), string("caf\u{e9}".as_bytes())]),
            array(&[string(b"\xff\xfe")]),
            array(&[string(b"x"), ld(1, &[0x18, 7])]),
            array(&[string(b"x"), ld(1, b"")]),
            [array(&[string(b"x")]), ld(1, b"then a string")].concat(),
            [array(&[string(b"x")]), array(&[string(b"y")])].concat(),
            array(&[string(&[b'z'; 120]), string(&[b'y'; 120])]),
        ];
        for (i, value) in cases.iter().enumerate() {
            for (max_depth, max_value_bytes) in
                [(64, 8192), (1, 8192), (2, 8192), (64, 12), (64, 2)]
            {
                let opts = DecodeOptions {
                    max_depth,
                    max_value_bytes,
                    ..DecodeOptions::default()
                };
                let (fast, general, fc, gc) = both(value, &opts);
                assert!(general.is_some(), "case {i}");
                assert_eq!((fast, fc), (general, gc), "case {i} {opts:?}");
            }
        }
    }

    #[test]
    fn json_strings_escape_like_python() {
        let mut s = String::new();
        let mut st = DecodeStats::default();
        push_json_string(&mut s, "a\"b\\c\nd\u{1}é".as_bytes(), &mut st);
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }
}
