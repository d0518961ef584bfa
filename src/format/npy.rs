//! The `.npy` header: parse and emit format versions 1.0, 2.0 and 3.0.
//!
//! Pure logic: no I/O, no `unsafe`, and no panics on any input (fuzzed by
//! `fuzz/fuzz_targets/npy_header.rs`). The layout is numpy's
//! (`numpy/lib/format.py`, NEP 1):
//!
//! | bytes | content |
//! | --- | --- |
//! | 0..6 | magic `\x93NUMPY` |
//! | 6, 7 | major and minor version: 1.0, 2.0 or 3.0 |
//! | 8..10 (v1), 8..12 (v2, v3) | `HEADER_LEN`, a little-endian `u16` (v1) or `u32` |
//! | next `HEADER_LEN` bytes | a Python dict literal (ASCII in v1/v2, UTF-8 in v3), padded with spaces, ending in `'\n'` |
//!
//! The array data starts right after the header, at `10 + HEADER_LEN` (v1)
//! or `12 + HEADER_LEN` (v2, v3).
//!
//! Headers are emitted the way numpy writes them (`repr` of the dict with
//! sorted keys, structured descrs re-serialised as Python's `repr` of
//! `dtype.descr`), so a header emitted here is byte-identical to numpy's for
//! the same array.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::fmt;
use std::fmt::Write as _;

/// The first six bytes of every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The largest `HEADER_LEN` that [`NpyHeader::parse`] accepts (1 MiB); also
/// the longest text that [`Dtype::from_descr_literal`] accepts.
pub const MAX_HEADER_LEN: usize = 1 << 20;
/// The most dimensions a shape (of the array or of a sub-array field) may have.
pub const MAX_NDIM: usize = 64;
/// How deeply tuples, lists and dicts may nest in a header literal.
const MAX_DEPTH: usize = 32;
/// numpy pads the header so that the data starts at a multiple of this.
const ARRAY_ALIGN: usize = 64;
/// numpy leaves room for the growth axis to reach this many digits.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
/// The byte-order character of this machine.
const NATIVE: char = if cfg!(target_endian = "little") {
    '<'
} else {
    '>'
};
/// Largest size of anything in bytes (Rust allocations are limited to this).
const MAX_BYTES: usize = isize::MAX as usize;
/// How many characters of offending input an error message quotes.
const SHOW_CHARS: usize = 40;

// ---------------------------------------------------------------------------
// Errors

/// Error from parsing or emitting an .npy header. Display is one human
/// sentence saying what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    message: String,
}

impl HeaderError {
    fn new(message: impl Into<String>) -> HeaderError {
        HeaderError {
            message: message.into(),
        }
    }

    /// Prefix the message with context, e.g. "field 'a': ".
    fn context(self, prefix: &str) -> HeaderError {
        HeaderError::new(format!("{prefix}{}", self.message))
    }

    /// The message, one sentence without a final period.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HeaderError {}

/// Quote (a prefix of) untrusted text for an error message.
fn show(s: &str) -> String {
    let head: String = s.chars().take(SHOW_CHARS).collect();
    let mut out = String::new();
    py_repr_str(&head, &mut out);
    if s.chars().nth(SHOW_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

// ---------------------------------------------------------------------------
// Python literals: the subset that appears in .npy headers

/// A parsed Python literal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Str(String),
    /// An integer of any sign; `magnitude` is its absolute value.
    Int {
        negative: bool,
        magnitude: u128,
    },
    Bool(bool),
    None,
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

impl Value {
    /// What kind of value this is, for error messages.
    fn describe(&self) -> String {
        match self {
            Value::Str(s) => format!("the string {}", show(s)),
            Value::Int {
                negative,
                magnitude,
            } => format!(
                "the integer {}{magnitude}",
                if *negative { "-" } else { "" }
            ),
            Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            Value::None => "None".to_string(),
            Value::Tuple(_) => "a tuple".to_string(),
            Value::List(_) => "a list".to_string(),
            Value::Dict(_) => "a dict".to_string(),
        }
    }

    /// A non-negative integer that fits `usize`.
    fn to_usize(&self) -> Result<usize, HeaderError> {
        match *self {
            Value::Int {
                negative,
                magnitude,
            } => {
                if negative && magnitude != 0 {
                    Err(HeaderError::new(format!(
                        "found the negative integer -{magnitude}"
                    )))
                } else {
                    usize::try_from(magnitude).map_err(|_| {
                        HeaderError::new(format!(
                            "the integer {magnitude} is too large for this machine"
                        ))
                    })
                }
            }
            _ => Err(HeaderError::new(format!(
                "expected a non-negative integer but found {}",
                self.describe()
            ))),
        }
    }
}

/// Parse `src` as one Python literal (surrounding whitespace allowed).
fn parse_literal(src: &str) -> Result<Value, HeaderError> {
    let mut p = LiteralParser { src, pos: 0 };
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos < src.len() {
        return Err(p.err("unexpected text after the end of the literal"));
    }
    Ok(value)
}

/// A recursive-descent parser for strings, integers, True/False/None,
/// tuples, lists and dicts. Recursion is bounded by [`MAX_DEPTH`].
struct LiteralParser<'a> {
    src: &'a str,
    /// Byte offset into `src`, always on a char boundary.
    pos: usize,
}

impl LiteralParser<'_> {
    fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r' | '\x0c')) {
            self.pos += 1;
        }
    }

    fn err(&self, what: &str) -> HeaderError {
        HeaderError::new(format!("{what} (at byte {})", self.pos))
    }

    fn value(&mut self, depth: usize) -> Result<Value, HeaderError> {
        if depth >= MAX_DEPTH {
            return Err(self.err(&format!(
                "brackets are nested more than {MAX_DEPTH} levels deep"
            )));
        }
        let Some(c) = self.peek() else {
            return Err(self.err("expected a value but the text ended"));
        };
        match c {
            '\'' | '"' => self.string().map(Value::Str),
            'u' | 'U' if matches!(self.rest().as_bytes().get(1), Some(b'\'' | b'"')) => {
                self.pos += 1;
                self.string().map(Value::Str)
            }
            '0'..='9' | '-' | '+' => self.int(),
            '(' => {
                self.pos += 1;
                let (mut items, trailing_comma) = self.sequence(')', depth)?;
                // `(x)` is just `x` in parentheses; `(x,)` is a tuple.
                if items.len() == 1
                    && !trailing_comma
                    && let Some(item) = items.pop()
                {
                    return Ok(item);
                }
                Ok(Value::Tuple(items))
            }
            '[' => {
                self.pos += 1;
                Ok(Value::List(self.sequence(']', depth)?.0))
            }
            '{' => {
                self.pos += 1;
                self.dict(depth)
            }
            c if c.is_ascii_alphabetic() || c == '_' => self.name(),
            c => Err(self.err(&format!("unexpected character {}", show(&c.to_string())))),
        }
    }

    /// Items up to `close` (the opening bracket is consumed); also whether
    /// a comma followed the last item.
    fn sequence(&mut self, close: char, depth: usize) -> Result<(Vec<Value>, bool), HeaderError> {
        let mut items = Vec::new();
        let mut trailing_comma = false;
        loop {
            self.skip_ws();
            if self.eat(close) {
                return Ok((items, trailing_comma));
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            if self.eat(',') {
                trailing_comma = true;
            } else if self.eat(close) {
                return Ok((items, false));
            } else {
                return Err(self.err(&format!("expected ',' or '{close}'")));
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Value, HeaderError> {
        let mut entries = Vec::new();
        loop {
            self.skip_ws();
            if self.eat('}') {
                return Ok(Value::Dict(entries));
            }
            let key = self.value(depth + 1)?;
            self.skip_ws();
            if !self.eat(':') {
                return Err(self.err("expected ':' after a dict key"));
            }
            self.skip_ws();
            let value = self.value(depth + 1)?;
            entries.push((key, value));
            self.skip_ws();
            if !self.eat(',') {
                if self.eat('}') {
                    return Ok(Value::Dict(entries));
                }
                return Err(self.err("expected ',' or '}'"));
            }
        }
    }

    /// A decimal integer with an optional sign and an optional Python 2 `L`.
    fn int(&mut self) -> Result<Value, HeaderError> {
        let negative = if self.eat('-') {
            true
        } else {
            self.eat('+');
            false
        };
        self.skip_ws();
        let start = self.pos;
        let mut magnitude: u128 = 0;
        while let Some(digit) = self.peek().and_then(|c| c.to_digit(10)) {
            magnitude = magnitude
                .checked_mul(10)
                .and_then(|m| m.checked_add(u128::from(digit)))
                .ok_or_else(|| self.err("integer is too large"))?;
            self.pos += 1;
        }
        let digits = self.src.get(start..self.pos).unwrap_or("");
        if digits.is_empty() {
            return Err(self.err("expected digits"));
        }
        // Python 3 rejects "012" (Python 2 read it as octal); "00" is zero.
        if digits.starts_with('0') && magnitude != 0 {
            return Err(self.err("integers with leading zeros are not allowed"));
        }
        if matches!(self.peek(), Some('L' | 'l')) {
            self.pos += 1;
        }
        if matches!(self.peek(), Some(c) if c.is_alphanumeric() || c == '.' || c == '_') {
            return Err(self.err("only plain decimal integers are allowed"));
        }
        Ok(Value::Int {
            negative,
            magnitude,
        })
    }

    fn name(&mut self) -> Result<Value, HeaderError> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        let word = self.src.get(start..self.pos).unwrap_or("");
        match word {
            "True" => Ok(Value::Bool(true)),
            "False" => Ok(Value::Bool(false)),
            "None" => Ok(Value::None),
            _ => Err(self.err(&format!("unknown name {}", show(word)))),
        }
    }

    /// A '...' or "..." string; backslash escapes as in Python.
    fn string(&mut self) -> Result<String, HeaderError> {
        let Some(quote) = self.bump() else {
            return Err(self.err("expected a string"));
        };
        let triple: &[u8] = if quote == '"' { b"\"\"" } else { b"''" };
        if self.rest().as_bytes().starts_with(triple) {
            return Err(self.err("triple-quoted strings are not supported"));
        }
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(self.err("unterminated string"));
            };
            match c {
                c if c == quote => return Ok(out),
                '\n' | '\r' => return Err(self.err("line break inside a string")),
                '\0' => return Err(self.err("NUL character inside a string")),
                '\\' => self.escape(&mut out)?,
                c => out.push(c),
            }
        }
    }

    /// The escape sequence after a backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), HeaderError> {
        let Some(c) = self.bump() else {
            return Err(self.err("unterminated string"));
        };
        match c {
            '\n' => {}
            '\r' => {
                self.eat('\n');
            }
            '\\' | '\'' | '"' => out.push(c),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            '0'..='7' => {
                let mut code = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            code = code * 8 + d;
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                // At most 0o777, always a valid char.
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            'x' => out.push(self.hex_escape(2)?),
            'u' => out.push(self.hex_escape(4)?),
            'U' => out.push(self.hex_escape(8)?),
            'N' => return Err(self.err("\\N{...} escapes are not supported")),
            // Python keeps unknown escapes as they are.
            c => {
                out.push('\\');
                out.push(c);
            }
        }
        Ok(())
    }

    fn hex_escape(&mut self, digits: usize) -> Result<char, HeaderError> {
        let mut code: u32 = 0;
        for _ in 0..digits {
            let Some(d) = self.peek().and_then(|c| c.to_digit(16)) else {
                return Err(self.err("truncated hexadecimal escape"));
            };
            // At most 8 digits: never overflows u32.
            code = (code << 4) | d;
            self.pos += 1;
        }
        char::from_u32(code).ok_or_else(|| self.err("escape is not a valid Unicode character"))
    }
}

/// Append Python's `repr` of a string: single quotes unless the text
/// contains `'` but no `"`, with backslash escapes for what is not printable.
fn py_repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        let code = u32::from(c);
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if !c.is_ascii() && py_printable(c) => out.push(c),
            _ if code <= 0xff => {
                let _ = write!(out, "\\x{code:02x}");
            }
            _ if code <= 0xffff => {
                let _ = write!(out, "\\u{code:04x}");
            }
            _ => {
                let _ = write!(out, "\\U{code:08x}");
            }
        }
    }
    out.push(quote);
}

/// An approximation of Python's `str.isprintable` for non-ASCII characters
/// (exact for controls, separators, format characters, private use and
/// noncharacters; unassigned code points count as printable).
fn py_printable(c: char) -> bool {
    let code = u32::from(c);
    let format_char = matches!(
        code,
        0xad | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x180e
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
    );
    let private_use = matches!(code, 0xe000..=0xf8ff | 0xf0000..=0x10ffff);
    let noncharacter = matches!(code, 0xfdd0..=0xfdef) || code & 0xfffe == 0xfffe;
    !(c.is_control() || c.is_whitespace() || format_char || private_use || noncharacter)
}

/// Append Python's `repr` of a tuple of integers: `()`, `(5,)`, `(3, 4)`.
fn py_repr_shape(dims: &[usize], out: &mut String) {
    out.push('(');
    for (i, d) in dims.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{d}");
    }
    if dims.len() == 1 {
        out.push(',');
    }
    out.push(')');
}

/// A shape from a tuple (or, for sub-array fields, a single integer).
fn shape_from_value(value: &Value) -> Result<Vec<usize>, HeaderError> {
    let items = match value {
        Value::Tuple(items) => items,
        Value::Int { .. } => return Ok(vec![value.to_usize()?]),
        other => {
            return Err(HeaderError::new(format!(
                "a shape must be a tuple of integers, not {}",
                other.describe()
            )));
        }
    };
    if items.len() > MAX_NDIM {
        return Err(HeaderError::new(format!(
            "a shape has {} dimensions, more than the limit of {MAX_NDIM}",
            items.len()
        )));
    }
    items
        .iter()
        .map(|v| {
            v.to_usize()
                .map_err(|e| e.context("a shape must hold non-negative integers: "))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Dtypes

/// A numpy dtype as found in an .npy header.
///
/// Always held in numpy's canonical spelling (`dtype.str` for simple dtypes,
/// `repr(dtype.descr)` for structured ones), so two equal dtypes compare
/// equal however they were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtype {
    /// `"<f4"` for simple dtypes, the list literal for structured ones.
    descr: String,
    itemsize: usize,
    /// `Some(kind)` for simple dtypes, `None` for structured ones.
    kind: Option<char>,
    native: bool,
}

impl Dtype {
    /// Parse the Python literal that follows `'descr':` in a header: a quoted
    /// string like `'<f4'` or a list for structured dtypes like
    /// `[('a', '<i4'), ('b', '<f8', (2,))]` (nested structured fields allowed,
    /// sub-array shapes allowed, padding fields with `''` names allowed).
    ///
    /// Simple descrs use numpy's meaning (`'i8'` is a 64-bit integer); the
    /// numpy names `'float32'`, `'int64'`, `'bool'`, ... are accepted too. The
    /// result is canonical: `'=f4'` becomes `'<f4'` on a little-endian
    /// machine and `'>u1'` becomes `'|u1'`.
    pub fn from_descr_literal(text: &str) -> Result<Dtype, HeaderError> {
        if text.len() > MAX_HEADER_LEN {
            return Err(HeaderError::new(format!(
                "the dtype description is {} bytes long, more than the limit of {MAX_HEADER_LEN}",
                text.len()
            )));
        }
        let value = parse_literal(text)
            .map_err(|e| e.context("the dtype description is not a valid Python literal: "))?;
        Dtype::from_value(&value).and_then(Dtype::check_top_level)
    }

    /// User-facing spelling -> Dtype: numpy descr strings (`<f4`, `|u1`,
    /// `>i4`, `=f8`, `f4` (no order char = native), `<c8`, `|S10`, `<U5`,
    /// `|V16`, `<M8[ns]`, `<m8[s]`) and names: `bool`, `int8`..`int64`,
    /// `uint8`..`uint64`, `float16/32/64`, `complex64/128`, `f32/f64`,
    /// `i16/i32/i64`, `u16/u32/u64`, `c64/c128`, `b1`.
    ///
    /// The short names count bits, as in Rust. `i8`, `u8` and `f16` are
    /// refused as ambiguous: numpy reads those order-less descrs as 8-, 8- and
    /// 16-byte types, Rust as 1-, 1- and 2-byte types. Write `int8`/`|i1` or
    /// `int64`/`<i8` (and so on) instead.
    /// Named types and order-less descrs get this machine's byte order;
    /// 1-byte types always use '|'. A text starting with `[` or a quote is
    /// read as a descr literal (see [`Dtype::from_descr_literal`]). Object
    /// dtypes and anything not fixed-size are rejected.
    pub fn parse_user(s: &str) -> Result<Dtype, HeaderError> {
        let t = s.trim();
        if t.starts_with(['[', '\'', '"']) {
            return Dtype::from_descr_literal(t);
        }
        if let Some(meaning) = ambiguous_name(t) {
            return Err(HeaderError::new(format!(
                "dtype {} is ambiguous: {meaning}; spell it out",
                show(t)
            )));
        }
        let typestr = rust_name(t).or_else(|| numpy_name(t));
        let parsed = match typestr {
            Some(typestr) => parse_typestr(typestr),
            None => simple_from_str(t),
        };
        match parsed {
            Ok(d) => d.check_top_level(),
            Err(e) => {
                // A word such as "float" or "double": suggest the spellings
                // that work rather than complain about its characters.
                let wordy = t.len() > 2
                    && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && t.chars().take(2).all(|c| c.is_ascii_alphabetic());
                if wordy && e.message().contains("is not a valid numpy dtype") {
                    Err(HeaderError::new(format!(
                        "unknown dtype {}: use a numpy descr such as '<f4', '|u1' or '<U5', \
                         or a name such as float32, int64, uint8, complex64 or bool",
                        show(t)
                    )))
                } else {
                    Err(e)
                }
            }
        }
    }

    /// For a simple (non-structured) dtype: the descr string without
    /// quotes, e.g. `"<f4"`. For structured: the list literal text, e.g.
    /// `"[('a', '<i4'), ('b', '<f8', (2,))]"`.
    pub fn descr(&self) -> &str {
        &self.descr
    }

    /// The literal as written inside a header: "'<f4'" for simple, the list
    /// text for structured.
    pub fn descr_literal(&self) -> String {
        if self.kind.is_some() {
            // Canonical simple descrs are plain ASCII without quotes or
            // backslashes, so this is exactly Python's repr.
            format!("'{}'", self.descr)
        } else {
            self.descr.clone()
        }
    }

    /// Bytes per element; structured = sum of fields incl. sub-array
    /// products and padding voids; 'U' = 4*n; datetime = 8.
    pub fn itemsize(&self) -> usize {
        self.itemsize
    }

    /// Whether this is a structured (record) dtype.
    pub fn is_structured(&self) -> bool {
        self.kind.is_none()
    }

    /// Simple dtypes: Some(kind char) e.g. 'f','i','u','c','b','S','U','V',
    /// 'M','m'; None for structured.
    pub fn kind(&self) -> Option<char> {
        self.kind
    }

    /// true if every multi-byte component is in native byte order (1-byte
    /// types and '|' count as native; structured: all fields).
    pub fn is_native_endian(&self) -> bool {
        self.native
    }

    /// A dtype from the parsed 'descr' value of a header.
    fn from_value(value: &Value) -> Result<Dtype, HeaderError> {
        match value {
            Value::Str(s) => simple_from_str(s),
            Value::List(fields) => structured(fields),
            Value::Tuple(_) => Err(HeaderError::new(
                "a sub-array dtype is not supported as the whole descr: \
                 put its dimensions in the shape instead",
            )),
            other => Err(HeaderError::new(format!(
                "a dtype description must be a string or a list of fields, not {}",
                other.describe()
            ))),
        }
    }

    /// Checks that apply to the dtype of a whole array, not to fields.
    fn check_top_level(self) -> Result<Dtype, HeaderError> {
        if self.itemsize == 0 {
            return Err(HeaderError::new(format!(
                "the dtype {} has an itemsize of 0 bytes, which is not supported",
                show(&self.descr)
            )));
        }
        Ok(self)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.descr)
    }
}

/// Names that mean one size to numpy (bytes) and another to Rust (bits).
fn ambiguous_name(s: &str) -> Option<&'static str> {
    Some(match s {
        "i8" => "numpy reads it as int64 ('<i8'), Rust as int8 ('|i1')",
        "u8" => "numpy reads it as uint64 ('<u8'), Rust as uint8 ('|u1')",
        "f16" => "numpy reads it as float128, Rust as float16 ('<f2')",
        _ => return None,
    })
}

/// Short Rust-style names (sizes in bits) -> numpy typestr.
fn rust_name(s: &str) -> Option<&'static str> {
    Some(match s {
        "b1" => "b1",
        "i16" => "i2",
        "i32" => "i4",
        "i64" => "i8",
        "u16" => "u2",
        "u32" => "u4",
        "u64" => "u8",
        "f32" => "f4",
        "f64" => "f8",
        "c64" => "c8",
        "c128" => "c16",
        _ => return None,
    })
}

/// numpy's type names -> numpy typestr.
fn numpy_name(s: &str) -> Option<&'static str> {
    Some(match s {
        "bool" => "b1",
        "int8" => "i1",
        "int16" => "i2",
        "int32" => "i4",
        "int64" => "i8",
        "uint8" => "u1",
        "uint16" => "u2",
        "uint32" => "u4",
        "uint64" => "u8",
        "float16" => "f2",
        "float32" => "f4",
        "float64" => "f8",
        "complex64" => "c8",
        "complex128" => "c16",
        _ => return None,
    })
}

fn object_error() -> HeaderError {
    HeaderError::new(
        "the object dtype ('O') is not supported: it holds pickled Python objects, not fixed-size data",
    )
}

/// A simple dtype from a descr string (numpy's meaning) or a numpy name.
fn simple_from_str(s: &str) -> Result<Dtype, HeaderError> {
    match s {
        "object" | "object_" => Err(object_error()),
        "str" | "str_" | "unicode" | "bytes" | "bytes_" | "void" => Err(HeaderError::new(format!(
            "the dtype {} has no fixed size: give a length, as in '|S10', '<U5' or '|V16'",
            show(s)
        ))),
        _ => parse_typestr(numpy_name(s).unwrap_or(s)),
    }
}

/// A simple dtype of the given parts; `order` is '<', '>' or '|'.
fn simple(order: char, kind: char, count: usize, suffix: &str, itemsize: usize) -> Dtype {
    Dtype {
        descr: format!("{order}{kind}{count}{suffix}"),
        itemsize,
        kind: Some(kind),
        native: order == '|' || order == NATIVE,
    }
}

/// Parse a numpy typestr: optional byte order (`<`, `>`, `|`, `=`), a kind
/// character, a size in bytes (characters for 'U'), and for datetimes an
/// optional `[unit]`.
fn parse_typestr(s: &str) -> Result<Dtype, HeaderError> {
    let bad =
        |why: &str| HeaderError::new(format!("{} is not a valid numpy dtype: {why}", show(s)));
    let (order, rest) = match s.as_bytes().first() {
        Some(b'<' | b'>' | b'|' | b'=') => (s.get(..1).unwrap_or(""), s.get(1..).unwrap_or("")),
        _ => ("", s),
    };
    // The order for types whose byte order matters; '|' and '=' mean native.
    let order = match order {
        "<" => '<',
        ">" => '>',
        _ => NATIVE,
    };
    let mut chars = rest.chars();
    let Some(kind) = chars.next() else {
        return Err(bad("it has no type character"));
    };
    let after_kind = chars.as_str();
    let digits_end = after_kind
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after_kind.len());
    let (digits, tail) = after_kind.split_at(digits_end);
    let count = if digits.is_empty() {
        None
    } else {
        match digits.parse::<usize>() {
            Ok(n) if n <= MAX_BYTES => Some(n),
            _ => return Err(bad("its size is too large")),
        }
    };
    if kind == 'O' {
        return Err(object_error());
    }
    if !matches!(kind, 'M' | 'm') && !tail.is_empty() {
        return Err(bad("unexpected text after the size"));
    }
    let fixed = |allowed: &[usize], what: &str| -> Result<Dtype, HeaderError> {
        match count {
            Some(n) if allowed.contains(&n) => {
                let order = if n == 1 { '|' } else { order };
                Ok(simple(order, kind, n, "", n))
            }
            _ => Err(bad(what)),
        }
    };
    match kind {
        'b' => fixed(&[1], "a bool is 'b1'"),
        '?' if count.is_none() => Ok(simple('|', 'b', 1, "", 1)),
        'i' | 'u' => fixed(&[1, 2, 4, 8], "integers are 1, 2, 4 or 8 bytes"),
        'f' => fixed(&[2, 4, 8, 16], "floats are 2, 4, 8 or 16 bytes"),
        'c' => fixed(&[8, 16, 32], "complex numbers are 8, 16 or 32 bytes"),
        'S' | 'a' | 'V' | 'U' => {
            let Some(n) = count else {
                return Err(bad(
                    "it has no fixed size: give a length, as in '|S10', '<U5' or '|V16'",
                ));
            };
            if n == 0 {
                return Err(bad("its length must be at least 1"));
            }
            match kind {
                'U' => {
                    let itemsize = n
                        .checked_mul(4)
                        .filter(|&b| b <= MAX_BYTES)
                        .ok_or_else(|| bad("its size is too large"))?;
                    Ok(simple(order, 'U', n, "", itemsize))
                }
                'V' => Ok(simple('|', 'V', n, "", n)),
                _ => Ok(simple('|', 'S', n, "", n)),
            }
        }
        'M' | 'm' => {
            if !matches!(count, None | Some(8)) {
                return Err(bad("datetimes and timedeltas are 8 bytes"));
            }
            let unit = datetime_unit(tail).ok_or_else(|| {
                bad("the unit must be one of Y, M, W, D, h, m, s, ms, us, ns, ps, fs, as in brackets, as in '<M8[ns]'")
            })?;
            Ok(simple(order, kind, 8, &unit, 8))
        }
        _ => Err(bad(&format!(
            "unknown type character {}",
            show(&kind.to_string())
        ))),
    }
}

/// The canonical `[unit]` suffix of a datetime typestr ("" for generic).
fn datetime_unit(tail: &str) -> Option<String> {
    if tail.is_empty() {
        return Some(String::new());
    }
    let inner = tail.strip_prefix('[')?.strip_suffix(']')?;
    let digits_end = inner
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(inner.len());
    let (multiplier, unit) = inner.split_at(digits_end);
    let unit = match unit {
        "Y" | "M" | "W" | "D" | "h" | "m" | "s" | "ms" | "us" | "ns" | "ps" | "fs" | "as" => unit,
        "\u{3bc}s" | "\u{b5}s" => "us",
        _ => return None,
    };
    // numpy keeps the multiplier in a C int.
    let multiplier: i32 = if multiplier.is_empty() {
        1
    } else {
        multiplier.parse().ok()?
    };
    match multiplier {
        0 => None,
        1 => Some(format!("[{unit}]")),
        m => Some(format!("[{m}{unit}]")),
    }
}

/// A structured dtype from the list of field tuples of a descr.
fn structured(fields: &[Value]) -> Result<Dtype, HeaderError> {
    if fields.is_empty() {
        return Err(HeaderError::new(
            "a structured dtype needs at least one field",
        ));
    }
    let mut descr = String::from("[");
    let mut itemsize: usize = 0;
    let mut native = true;
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, field) in fields.iter().enumerate() {
        let number = i + 1;
        let field_err =
            |why: &str| HeaderError::new(format!("field {number} of the structured dtype {why}"));
        let Value::Tuple(parts) = field else {
            return Err(field_err("is not a tuple like ('name', '<f4')"));
        };
        let (name_value, format_value, shape_value) = match parts.as_slice() {
            [n, f] => (n, f, None),
            [n, f, s] => (n, f, Some(s)),
            _ => {
                return Err(field_err(
                    "must have 2 or 3 items: name, format and optionally a shape",
                ));
            }
        };
        let (title, name) = match name_value {
            Value::Str(name) => (None, name.as_str()),
            Value::Tuple(pair) => match pair.as_slice() {
                [Value::Str(title), Value::Str(name)] => (Some(title.as_str()), name.as_str()),
                _ => {
                    return Err(field_err(
                        "has a name that is not a string or a (title, name) pair",
                    ));
                }
            },
            _ => {
                return Err(field_err(
                    "has a name that is not a string or a (title, name) pair",
                ));
            }
        };
        let context = format!("field {}: ", show(name));
        let format = match format_value {
            Value::Str(s) => simple_from_str(s),
            Value::List(inner) => structured(inner),
            other => Err(HeaderError::new(format!(
                "its format must be a string or a list of fields, not {}",
                other.describe()
            ))),
        }
        .map_err(|e| e.context(&context))?;
        let dims = match shape_value {
            Some(v) => shape_from_value(v).map_err(|e| e.context(&context))?,
            None => Vec::new(),
        };
        if name.is_empty() && (title.is_some() || format.kind != Some('V')) {
            return Err(field_err(
                "has an empty name, which only padding fields of type 'V' may have",
            ));
        }
        for label in title.into_iter().chain(Some(name)) {
            if !label.is_empty() && !seen.insert(label) {
                return Err(HeaderError::new(format!(
                    "the structured dtype has the field name {} twice",
                    show(label)
                )));
            }
        }
        let size = dims
            .iter()
            .try_fold(format.itemsize, |acc, &d| acc.checked_mul(d))
            .and_then(|s| itemsize.checked_add(s))
            .filter(|&s| s <= MAX_BYTES)
            .ok_or_else(|| HeaderError::new("the structured dtype is too large"))?;
        itemsize = size;
        native &= format.native;

        if i > 0 {
            descr.push_str(", ");
        }
        descr.push('(');
        match title {
            Some(title) => {
                descr.push('(');
                py_repr_str(title, &mut descr);
                descr.push_str(", ");
                py_repr_str(name, &mut descr);
                descr.push(')');
            }
            None => py_repr_str(name, &mut descr),
        }
        descr.push_str(", ");
        if format.kind.is_some() {
            descr.push('\'');
            descr.push_str(&format.descr);
            descr.push('\'');
        } else {
            descr.push_str(&format.descr);
        }
        // numpy drops an empty sub-array shape: ('a', '<f8', ()) is ('a', '<f8').
        if !dims.is_empty() {
            descr.push_str(", ");
            py_repr_shape(&dims, &mut descr);
        }
        descr.push(')');
    }
    descr.push(']');
    Ok(Dtype {
        descr,
        itemsize,
        kind: None,
        native,
    })
}

// ---------------------------------------------------------------------------
// Headers

/// The contents of an `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The element type ('descr').
    pub dtype: Dtype,
    /// Whether the data is in Fortran (column-major) order rather than C order.
    pub fortran_order: bool,
    /// The array dimensions; empty for a 0-d array.
    pub shape: Vec<usize>,
}

impl NpyHeader {
    /// Number of elements (product of shape; `()` -> 1), None on overflow.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Data size in bytes, None on overflow (checked arithmetic; also None
    /// if > isize::MAX).
    pub fn nbytes(&self) -> Option<usize> {
        self.len()?
            .checked_mul(self.dtype.itemsize)
            .filter(|&n| n <= MAX_BYTES)
    }

    /// Parse the start of a file. `bytes` is a prefix of the file (may be
    /// shorter than the header: then an error saying the file is
    /// truncated). Validates the magic "\x93NUMPY", major version 1, 2 or 3
    /// (minor 0), the u16le (v1) or u32le (v2, v3) HEADER_LEN, that the
    /// header text is ASCII (v1/v2) or UTF-8 (v3), ends in '\n', and is a
    /// dict literal with exactly the keys 'descr', 'fortran_order', 'shape'
    /// (any key order, optional trailing comma, arbitrary spaces; extra keys
    /// are an error; missing keys are an error). shape is a tuple of
    /// non-negative ints ("()" and "(5,)" forms). Returns the header and the
    /// data offset (10 or 12 + HEADER_LEN). Rejects header lengths over
    /// [`MAX_HEADER_LEN`] (1 MiB) and shapes with more than [`MAX_NDIM`]
    /// dimensions. Never panics, no matter the input.
    pub fn parse(bytes: &[u8]) -> Result<(NpyHeader, usize), HeaderError> {
        let have = bytes.len();
        let magic_part = have.min(MAGIC.len());
        if bytes.get(..magic_part) != MAGIC.get(..magic_part) {
            return Err(HeaderError::new(
                "not an .npy file: it does not start with the magic bytes \\x93NUMPY",
            ));
        }
        let (Some(&major), Some(&minor)) = (bytes.get(6), bytes.get(7)) else {
            return Err(HeaderError::new(format!(
                "the .npy file is truncated: it is only {have} bytes long, shorter than its magic and version"
            )));
        };
        let prefix = match (major, minor) {
            (1, 0) => 10,
            (2, 0) | (3, 0) => 12,
            _ => {
                return Err(HeaderError::new(format!(
                    "unsupported .npy format version {major}.{minor} (only 1.0, 2.0 and 3.0 are supported)"
                )));
            }
        };
        let header_len = match bytes.get(8..prefix) {
            Some(&[a, b]) => usize::from(u16::from_le_bytes([a, b])),
            Some(&[a, b, c, d]) => {
                usize::try_from(u32::from_le_bytes([a, b, c, d])).unwrap_or(usize::MAX)
            }
            _ => {
                return Err(HeaderError::new(format!(
                    "the .npy file is truncated: it is only {have} bytes long, shorter than its header length field"
                )));
            }
        };
        if header_len > MAX_HEADER_LEN {
            return Err(HeaderError::new(format!(
                "the .npy header claims to be {header_len} bytes long, more than the limit of {MAX_HEADER_LEN}"
            )));
        }
        let end = prefix + header_len;
        let Some(raw) = bytes.get(prefix..end) else {
            return Err(HeaderError::new(format!(
                "the .npy file is truncated: its header needs {end} bytes but only {have} are present"
            )));
        };
        if major < 3 && !raw.is_ascii() {
            return Err(HeaderError::new(format!(
                "the .npy header contains non-ASCII bytes, which format version {major}.0 does not allow"
            )));
        }
        let text = std::str::from_utf8(raw).map_err(|_| {
            HeaderError::new("the .npy header of format version 3.0 is not valid UTF-8")
        })?;
        if !text.ends_with('\n') {
            return Err(HeaderError::new(
                "the .npy header does not end with a newline",
            ));
        }
        let value = parse_literal(text)
            .map_err(|e| e.context("the .npy header is not a valid Python literal: "))?;
        let header = NpyHeader::from_value(&value)?;
        Ok((header, end))
    }

    /// The header from the parsed dict literal.
    fn from_value(value: &Value) -> Result<NpyHeader, HeaderError> {
        let Value::Dict(entries) = value else {
            return Err(HeaderError::new(format!(
                "the .npy header is not a dict but {}",
                value.describe()
            )));
        };
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        for (key, value) in entries {
            let Value::Str(key) = key else {
                return Err(HeaderError::new(format!(
                    "the .npy header has a key that is not a string: {}",
                    key.describe()
                )));
            };
            let slot = match key.as_str() {
                "descr" => &mut descr,
                "fortran_order" => &mut fortran,
                "shape" => &mut shape,
                other => {
                    return Err(HeaderError::new(format!(
                        "the .npy header has the unexpected key {} (only 'descr', 'fortran_order' and 'shape' are allowed)",
                        show(other)
                    )));
                }
            };
            if slot.replace(value).is_some() {
                return Err(HeaderError::new(format!(
                    "the .npy header has the key '{key}' more than once"
                )));
            }
        }
        let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
            let missing: Vec<&str> = [
                ("'descr'", descr.is_none()),
                ("'fortran_order'", fortran.is_none()),
                ("'shape'", shape.is_none()),
            ]
            .iter()
            .filter(|(_, missing)| *missing)
            .map(|(name, _)| *name)
            .collect();
            return Err(HeaderError::new(format!(
                "the .npy header is missing the key{} {}",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(" and ")
            )));
        };
        let dtype = Dtype::from_value(descr)
            .and_then(Dtype::check_top_level)
            .map_err(|e| e.context("the .npy header has an invalid 'descr': "))?;
        let Value::Bool(fortran_order) = *fortran else {
            return Err(HeaderError::new(format!(
                "'fortran_order' in the .npy header must be True or False, not {}",
                fortran.describe()
            )));
        };
        if !matches!(shape, Value::Tuple(_)) {
            return Err(HeaderError::new(format!(
                "'shape' in the .npy header must be a tuple, not {}",
                shape.describe()
            )));
        }
        let shape = shape_from_value(shape)
            .map_err(|e| e.context("the .npy header has an invalid 'shape': "))?;
        Ok(NpyHeader {
            dtype,
            fortran_order,
            shape,
        })
    }

    /// Emit a version 1.0 header whose TOTAL length (magic + version + u16
    /// len + dict text + space padding + final '\n') is exactly `total_len`
    /// (sharray uses 4096, so HEADER_LEN = 4086). Error if it does not fit,
    /// if `total_len` is not a multiple of 64 or > 65535+10, if the header
    /// text is not ASCII (field names outside ASCII need format 3.0: see
    /// [`NpyHeader::emit_standard`]) or if the shape has more than
    /// [`MAX_NDIM`] dimensions.
    pub fn emit_padded(&self, total_len: usize) -> Result<Vec<u8>, HeaderError> {
        if !total_len.is_multiple_of(ARRAY_ALIGN) {
            return Err(HeaderError::new(format!(
                "an .npy header length of {total_len} bytes is not a multiple of {ARRAY_ALIGN}"
            )));
        }
        let header_len = total_len
            .checked_sub(10)
            .and_then(|n| u16::try_from(n).ok());
        let Some(header_len) = header_len else {
            return Err(HeaderError::new(format!(
                "an .npy header of {total_len} bytes does not fit format version 1.0 (10 to 65545 bytes)"
            )));
        };
        if self.shape.len() > MAX_NDIM {
            return Err(HeaderError::new(format!(
                "the shape has {} dimensions, more than the limit of {MAX_NDIM}",
                self.shape.len()
            )));
        }
        let text = self.dict_text();
        if !text.is_ascii() {
            return Err(HeaderError::new(
                "the .npy header text is not ASCII (a field name is), which needs format version 3.0",
            ));
        }
        let needed = 10 + text.len() + 1;
        if needed > total_len {
            return Err(HeaderError::new(format!(
                "the .npy header needs {needed} bytes, more than the {total_len} available"
            )));
        }
        let mut out = Vec::with_capacity(total_len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&header_len.to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out.resize(total_len - 1, b' ');
        out.push(b'\n');
        Ok(out)
    }

    /// Emit the header numpy itself would write (np.save): version 1.0 if
    /// the header fits in u16 else 2.0, total length a multiple of 64, with
    /// numpy's spare room for the growth axis. A header whose text is not
    /// ASCII (non-ASCII field names) is written as version 3.0 (UTF-8).
    pub fn emit_standard(&self) -> Vec<u8> {
        let mut text = self.dict_text();
        // Like numpy >= 1.23: spare spaces so that the first (C order) or
        // last (Fortran order) axis can grow to 21 digits in place.
        let growth_axis = if self.fortran_order {
            self.shape.last()
        } else {
            self.shape.first()
        };
        if let Some(axis) = growth_axis {
            let digits = axis.to_string().len();
            let spare = GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits);
            text.extend(std::iter::repeat_n(' ', spare));
        }
        // numpy: hlen counts the final '\n'; pad = ALIGN - (prefix + hlen) % ALIGN
        // (a full 64 when already aligned).
        let hlen = text.len() + 1;
        let pad_v1 = ARRAY_ALIGN - (10 + hlen) % ARRAY_ALIGN;
        let (major, prefix, pad) = if text.is_ascii() && hlen + pad_v1 <= usize::from(u16::MAX) {
            (1u8, 10, pad_v1)
        } else {
            let major = if text.is_ascii() { 2 } else { 3 };
            (major, 12, ARRAY_ALIGN - (12 + hlen) % ARRAY_ALIGN)
        };
        let header_len = hlen + pad;
        let mut out = Vec::with_capacity(prefix + header_len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[major, 0]);
        if major == 1 {
            let len = u16::try_from(header_len).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_le_bytes());
        } else {
            // Only a shape of hundreds of millions of dimensions could
            // exceed u32; saturate rather than panic.
            let len = u32::try_from(header_len).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(text.as_bytes());
        out.resize(out.len() + pad, b' ');
        out.push(b'\n');
        out
    }

    /// The canonical dict text numpy writes:
    /// "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }" (shape
    /// "()" for 0-d, "(5,)" for 1-d).
    pub fn dict_text(&self) -> String {
        let descr = self.dtype.descr_literal();
        let mut s = String::with_capacity(64 + descr.len() + 22 * self.shape.len());
        s.push_str("{'descr': ");
        s.push_str(&descr);
        s.push_str(", 'fortran_order': ");
        s.push_str(if self.fortran_order { "True" } else { "False" });
        s.push_str(", 'shape': ");
        py_repr_shape(&self.shape, &mut s);
        s.push_str(", }");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Dtype {
        match Dtype::parse_user(s) {
            Ok(d) => d,
            Err(e) => panic!("parse_user({s:?}) failed: {e}"),
        }
    }

    fn lit(s: &str) -> Dtype {
        match Dtype::from_descr_literal(s) {
            Ok(d) => d,
            Err(e) => panic!("from_descr_literal({s:?}) failed: {e}"),
        }
    }

    fn user_err(s: &str) -> String {
        match Dtype::parse_user(s) {
            Ok(d) => panic!("parse_user({s:?}) unexpectedly gave {d}"),
            Err(e) => e.to_string(),
        }
    }

    fn parse_err(bytes: &[u8]) -> String {
        match NpyHeader::parse(bytes) {
            Ok(h) => panic!("parse unexpectedly gave {h:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// A file prefix holding `text` padded to a total of at least 128 bytes:
    /// version 1.0, or 2.0 if the text is too long for 1.0.
    fn v1_with_text(text: &str) -> Vec<u8> {
        let total = 128.max((10 + text.len() + 1).div_ceil(64) * 64);
        let mut out = b"\x93NUMPY".to_vec();
        match u16::try_from(total - 10) {
            Ok(len) => {
                out.extend_from_slice(&[1, 0]);
                out.extend_from_slice(&len.to_le_bytes());
            }
            Err(_) => {
                out.extend_from_slice(&[2, 0]);
                out.extend_from_slice(&u32::try_from(total - 10).unwrap().to_le_bytes());
            }
        }
        out.extend_from_slice(text.as_bytes());
        out.resize(total - 1, b' ');
        out.push(b'\n');
        out
    }

    fn header(dtype: &str, fortran_order: bool, shape: &[usize]) -> NpyHeader {
        NpyHeader {
            dtype: d(dtype),
            fortran_order,
            shape: shape.to_vec(),
        }
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const NUMPY_F4_3X4: &[u8] =
        b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";

    #[test]
    fn numpy_float32_header_byte_exact() {
        let mut expected = NUMPY_F4_3X4.to_vec();
        expected.resize(127, b' ');
        expected.push(b'\n');
        let h = header("<f4", false, &[3, 4]);
        let emitted = h.emit_standard();
        assert_eq!(emitted, expected);
        assert_eq!(emitted.len() % 64, 0);
        assert_eq!(NpyHeader::parse(&expected), Ok((h.clone(), 128)));
        assert_eq!(
            h.dict_text(),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"
        );
        // Parsing only needs a prefix; data after the header is ignored.
        let mut with_data = expected.clone();
        with_data.extend_from_slice(&[0u8; 48]);
        assert_eq!(NpyHeader::parse(&with_data), Ok((h, 128)));
    }

    /// (descr literal, shape, fortran_order, itemsize, np.save header in hex),
    /// written by numpy's own header writer.
    const NUMPY_VECTORS: &[(&str, &[u64], bool, usize, &str)] = &[
        (
            "'<f4'",
            &[3, 4],
            false,
            4,
            "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c2034292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'<f8'",
            &[],
            false,
            8,
            "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'>i2'",
            &[5],
            false,
            2,
            "934e554d5059010076007b276465736372273a20273e6932272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028352c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'<f8'",
            &[2, 3],
            true,
            8,
            "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a20547275652c20277368617065273a2028322c2033292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'|u1'",
            &[0],
            false,
            1,
            "934e554d5059010076007b276465736372273a20277c7531272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028302c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'|b1'",
            &[7],
            false,
            1,
            "934e554d5059010076007b276465736372273a20277c6231272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028372c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "[('a', '<i4'), ('b', '<f8', (2,))]",
            &[10],
            false,
            20,
            "934e554d5059010076007b276465736372273a205b282761272c20273c693427292c20282762272c20273c6638272c2028322c29295d2c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a202831302c292c207d2020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "[('x', '<i2'), ('', '|V6'), ('y', '<f8'), ('', '|V8')]",
            &[1],
            false,
            24,
            "934e554d50590100b6007b276465736372273a205b282778272c20273c693227292c202827272c20277c563627292c20282779272c20273c663827292c202827272c20277c563827295d2c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028312c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "[(('T', 'x'), '<i4'), ('y', '>u2', (2, 3))]",
            &[2, 2],
            false,
            16,
            "934e554d50590100b6007b276465736372273a205b28282754272c20277827292c20273c693427292c20282779272c20273e7532272c2028322c203329295d2c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2032292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "[('p', [('q', '<f4'), ('r', '|S3')]), ('s', [('t', '<c16')], (2,))]",
            &[4],
            false,
            39,
            "934e554d50590100b6007b276465736372273a205b282770272c205b282771272c20273c663427292c20282772272c20277c533327295d292c20282773272c205b282774272c20273c63313627295d2c2028322c29295d2c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028342c292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "[(\"it's\", '<i4')]",
            &[1],
            false,
            4,
            "934e554d5059010076007b276465736372273a205b282269742773222c20273c693427295d2c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028312c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "[('\u{20ac}', '<i4')]",
            &[1],
            false,
            4,
            "934e554d50590300740000007b276465736372273a205b2827e282ac272c20273c693427295d2c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028312c292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "[('a\"b\\\\c\\n', '<i4')]",
            &[1],
            false,
            4,
            "934e554d5059010076007b276465736372273a205b28276122625c5c635c6e272c20273c693427295d2c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028312c292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'<M8[ns]'",
            &[3],
            false,
            8,
            "934e554d5059010076007b276465736372273a20273c4d385b6e735d272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'>m8[10ms]'",
            &[3],
            false,
            8,
            "934e554d5059010076007b276465736372273a20273e6d385b31306d735d272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'<U5'",
            &[2],
            false,
            20,
            "934e554d5059010076007b276465736372273a20273c5535272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'|S10'",
            &[2],
            false,
            10,
            "934e554d5059010076007b276465736372273a20277c533130272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'|V16'",
            &[2],
            false,
            16,
            "934e554d5059010076007b276465736372273a20277c563136272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'<f8'",
            &[12345678901234567890, 3],
            false,
            8,
            "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a202831323334353637383930313233343536373839302c2033292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'<f8'",
            &[3, 12345678901234567890],
            true,
            8,
            "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a20547275652c20277368617065273a2028332c203132333435363738393031323334353637383930292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
        (
            "'<c8'",
            &[1, 2, 3, 4, 5, 6],
            true,
            8,
            "934e554d5059010076007b276465736372273a20273c6338272c2027666f727472616e5f6f72646572273a20547275652c20277368617065273a2028312c20322c20332c20342c20352c2036292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a",
        ),
    ];

    #[test]
    fn numpy_written_headers_byte_exact() {
        for &(descr, shape, fortran_order, itemsize, hex) in NUMPY_VECTORS {
            let Ok(shape) = shape.iter().map(|&n| usize::try_from(n)).collect() else {
                continue; // 32-bit machine: the shape does not fit usize
            };
            let expected = unhex(hex);
            let h = NpyHeader {
                dtype: lit(descr),
                fortran_order,
                shape,
            };
            assert_eq!(h.dtype.descr_literal(), descr);
            assert_eq!(h.dtype.itemsize(), itemsize, "{descr}");
            let emitted = h.emit_standard();
            assert_eq!(
                String::from_utf8_lossy(&emitted),
                String::from_utf8_lossy(&expected),
                "{descr}"
            );
            assert_eq!(emitted, expected, "{descr}");
            assert_eq!(NpyHeader::parse(&expected), Ok((h.clone(), expected.len())));
        }
    }

    #[test]
    fn numpy_version_2_for_a_huge_header() {
        // numpy: np.dtype([('f%d' % i, '<f8') for i in range(4000)]), shape (3,)
        // is saved as version 2.0 with a 70976-byte header.
        let fields: Vec<String> = (0..4000).map(|i| format!("('f{i}', '<f8')")).collect();
        let h = NpyHeader {
            dtype: lit(&format!("[{}]", fields.join(", "))),
            fortran_order: false,
            shape: vec![3],
        };
        assert_eq!(h.dtype.itemsize(), 32000);
        let emitted = h.emit_standard();
        assert_eq!(emitted.len(), 70976);
        assert_eq!(&emitted[..12], &unhex("934e554d5059020034150100")[..]);
        assert_eq!(NpyHeader::parse(&emitted), Ok((h.clone(), 70976)));
        assert!(h.emit_padded(4096).unwrap_err().message().contains("needs"));
    }

    #[test]
    fn simple_dtypes() {
        let cases: &[(&str, &str, usize, char, bool)] = &[
            ("<f4", "<f4", 4, 'f', true),
            ("|u1", "|u1", 1, 'u', true),
            (">i4", ">i4", 4, 'i', false),
            ("=f8", "<f8", 8, 'f', true),
            ("f4", "<f4", 4, 'f', true),
            ("<c8", "<c8", 8, 'c', true),
            (">c16", ">c16", 16, 'c', false),
            ("<c32", "<c32", 32, 'c', true),
            ("<f2", "<f2", 2, 'f', true),
            ("<f16", "<f16", 16, 'f', true),
            ("|S10", "|S10", 10, 'S', true),
            ("<S3", "|S3", 3, 'S', true),
            ("a5", "|S5", 5, 'S', true),
            ("<U5", "<U5", 20, 'U', true),
            (">U5", ">U5", 20, 'U', false),
            ("U1", "<U1", 4, 'U', true),
            ("|V16", "|V16", 16, 'V', true),
            ("<M8[ns]", "<M8[ns]", 8, 'M', true),
            ("<m8[s]", "<m8[s]", 8, 'm', true),
            (">M8[10ms]", ">M8[10ms]", 8, 'M', false),
            ("M8[1s]", "<M8[s]", 8, 'M', true),
            ("<M8[\u{3bc}s]", "<M8[us]", 8, 'M', true),
            ("M8", "<M8", 8, 'M', true),
            ("m8[D]", "<m8[D]", 8, 'm', true),
            (">u1", "|u1", 1, 'u', true),
            ("<i1", "|i1", 1, 'i', true),
            ("|i4", "<i4", 4, 'i', true),
            ("b1", "|b1", 1, 'b', true),
            ("<b1", "|b1", 1, 'b', true),
            ("?", "|b1", 1, 'b', true),
            ("  <f8 ", "<f8", 8, 'f', true),
        ];
        for &(input, descr, itemsize, kind, native) in cases {
            let dt = d(input);
            assert_eq!(dt.descr(), descr, "{input}");
            assert_eq!(dt.to_string(), descr, "{input}");
            assert_eq!(dt.descr_literal(), format!("'{descr}'"), "{input}");
            assert_eq!(dt.itemsize(), itemsize, "{input}");
            assert_eq!(dt.kind(), Some(kind), "{input}");
            assert!(!dt.is_structured(), "{input}");
            assert_eq!(dt.is_native_endian(), native, "{input}");
            // The canonical form is a fixed point, in both parsers.
            assert_eq!(d(descr), dt);
            assert_eq!(lit(&dt.descr_literal()), dt);
        }
    }

    #[test]
    fn names() {
        let cases: &[(&str, &str)] = &[
            ("bool", "|b1"),
            ("b1", "|b1"),
            ("int8", "|i1"),
            ("int16", "<i2"),
            ("int32", "<i4"),
            ("int64", "<i8"),
            ("uint8", "|u1"),
            ("uint16", "<u2"),
            ("uint32", "<u4"),
            ("uint64", "<u8"),
            ("float16", "<f2"),
            ("float32", "<f4"),
            ("float64", "<f8"),
            ("complex64", "<c8"),
            ("complex128", "<c16"),
            ("i16", "<i2"),
            ("i32", "<i4"),
            ("i64", "<i8"),
            ("u16", "<u2"),
            ("u32", "<u4"),
            ("u64", "<u8"),
            ("f32", "<f4"),
            ("f64", "<f8"),
            ("c64", "<c8"),
            ("c128", "<c16"),
            // With a byte-order character the numpy meaning applies.
            ("<i8", "<i8"),
            ("<u8", "<u8"),
            ("<f16", "<f16"),
        ];
        for &(name, descr) in cases {
            assert_eq!(d(name).descr(), descr, "{name}");
        }
        // Names whose meaning differs between numpy and Rust are refused.
        for name in ["i8", "u8", "f16"] {
            let e = Dtype::parse_user(name).unwrap_err();
            assert!(e.message().contains("ambiguous"), "{name}: {e}");
        }
        // Inside a header, numpy's meaning of order-less descrs applies.
        assert_eq!(lit("'i8'").descr(), "<i8");
        assert_eq!(lit("'u8'").descr(), "<u8");
        assert_eq!(lit("'float32'").descr(), "<f4");
        assert_eq!(lit("u'<f4'").descr(), "<f4");
        assert_eq!(lit("\"<f4\"").descr(), "<f4");
    }

    #[test]
    fn dtype_errors() {
        assert!(user_err("O").contains("object"));
        assert!(user_err("|O").contains("object"));
        assert!(user_err("object").contains("object"));
        assert!(
            Dtype::from_descr_literal("'O'")
                .unwrap_err()
                .message()
                .contains("object")
        );
        assert!(
            Dtype::from_descr_literal("[('a', 'O')]")
                .unwrap_err()
                .message()
                .contains("object")
        );
        assert!(user_err("S").contains("fixed size"));
        assert!(user_err("<U").contains("fixed size"));
        assert!(user_err("str").contains("fixed size"));
        assert!(user_err("S0").contains("at least 1"));
        assert!(user_err("<i3").contains("1, 2, 4 or 8"));
        assert!(user_err("<f3").contains("2, 4, 8 or 16"));
        assert!(user_err("<c4").contains("8, 16 or 32"));
        assert!(user_err("b2").contains("'b1'"));
        assert!(user_err("<M4").contains("8 bytes"));
        assert!(user_err("<M8[parsec]").contains("unit"));
        assert!(user_err("<M8[0s]").contains("unit"));
        assert!(user_err("<M8[ns").contains("unit"));
        assert!(user_err("<f4x").contains("unexpected text"));
        assert!(user_err("float").contains("unknown dtype"));
        assert!(user_err("double").contains("unknown dtype"));
        assert!(user_err("").contains("no type character"));
        assert!(user_err("<").contains("no type character"));
        assert!(user_err("<q8").contains("unknown type character"));
        assert!(user_err("<S99999999999999999999999").contains("too large"));
        assert!(user_err(&format!("<U{}", usize::MAX / 2)).contains("too large"));
        assert!(user_err("<f4 <f4").contains("unexpected text"));
        // Literals
        for bad in [
            "'<f4",
            "<f4",
            "[",
            "[]",
            "[('a')]",
            "[('a', '<f4', (2,), 1)]",
            "[(1, '<f4')]",
            "[('a', 4)]",
            "[('', '<f4')]",
            "[(('t', ''), '|V4')]",
            "[('a', '<f4'), ('a', '<i4')]",
            "[(('a', 'b'), '<f4'), ('a', '<i4')]",
            "[('a', '<f4', (-1,))]",
            "[('a', '<f4', 2.5)]",
            "('<f4', (2,))",
            "{'a': 1}",
            "None",
            "'<f4' '<f4'",
            "[('a', '<f4', (02,))]",
            "'''<f4'''",
            "'\\N{DIGIT ONE}'",
            "'\\x4'",
            "'\\ud800'",
            "'a\nb'",
            "[('a', '<f8', (0,))]",
            "[('a', '|S9223372036854775807', (2,))]",
        ] {
            assert!(Dtype::from_descr_literal(bad).is_err(), "{bad:?}");
        }
        // One message says which field is wrong.
        let e = Dtype::from_descr_literal("[('a', '<f4'), ('b', '<x4')]").unwrap_err();
        assert!(e.message().starts_with("field 'b': '<x4'"), "{e}");
    }

    #[test]
    fn structured_dtypes() {
        let s = lit("[('a','<i4'),('b','<f8',(2,))]");
        assert_eq!(s.descr(), "[('a', '<i4'), ('b', '<f8', (2,))]");
        assert_eq!(s.descr_literal(), s.descr());
        assert_eq!(s.to_string(), s.descr());
        assert_eq!(s.itemsize(), 20);
        assert!(s.is_structured());
        assert_eq!(s.kind(), None);
        assert!(s.is_native_endian());

        // int shape -> tuple, empty shape dropped, '=' and names canonicalised,
        // "..." and escapes, Python 2 L, arbitrary whitespace and trailing commas.
        let s = lit(" [ ( \"a\" , '=i4' , 3L , ) , ('\\x62', 'float64', ()), ('c', \"|b1\"), ] ");
        assert_eq!(
            s.descr(),
            "[('a', '<i4', (3,)), ('b', '<f8'), ('c', '|b1')]"
        );
        assert_eq!(s.itemsize(), 21);

        // Padding, titles, nested structs, sub-arrays of structs.
        let s = lit(
            "[('x', '<i2'), ('', '|V6'), (('Title', 'y'), '>f8', (2, 3)), ('n', [('p', '|u1'), ('q', '<U2')], (4,))]",
        );
        assert_eq!(s.itemsize(), 2 + 6 + 48 + 4 * 9);
        assert!(!s.is_native_endian());
        assert_eq!(lit(s.descr()), s);
        assert!(!lit("[('n', [('p', '|u1'), ('q', '>U2')])]").is_native_endian());
        assert!(lit("[('n', [('p', '|u1'), ('q', '<U2')])]").is_native_endian());

        // Quotes and backslashes are re-serialised like Python's repr.
        assert_eq!(lit(r#"[("it's", '<i4')]"#).descr(), r#"[("it's", '<i4')]"#);
        assert_eq!(
            lit(r#"[('it\'s "x"', '<i4')]"#).descr(),
            r#"[('it\'s "x"', '<i4')]"#
        );
        assert_eq!(
            lit(r"[('a\\b\tc\x01\x7f', '<i4')]").descr(),
            r"[('a\\b\tc\x01\x7f', '<i4')]"
        );
        assert_eq!(
            lit(r"[('\xe9\xa0\u200b\U0001f600', '<i4')]").descr(),
            "[('\u{e9}\\xa0\\u200b\u{1f600}', '<i4')]"
        );
        assert_eq!(lit(r"[('\101\q', '<i4')]").descr(), r"[('A\\q', '<i4')]");

        // parse_user accepts literals too.
        assert_eq!(d("[('a', '<i4')]").itemsize(), 4);
        assert_eq!(d("'>f8'").descr(), ">f8");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for depth in [33, 1000, 100_000] {
            let text = format!("{}'<f4'{}", "[".repeat(depth), "]".repeat(depth));
            assert!(Dtype::from_descr_literal(&text).is_err());
            let text = "(".repeat(depth);
            assert!(Dtype::from_descr_literal(&text).is_err());
            let header = v1_with_text(&format!("{{'descr': {}", "[(".repeat(depth)));
            assert!(NpyHeader::parse(&header).is_err());
        }
        // Structured nesting well inside the limit is fine.
        let mut t = "'<f4'".to_string();
        for _ in 0..10 {
            t = format!("[('a', {t})]");
        }
        assert_eq!(lit(&t).itemsize(), 4);
        assert!(Dtype::from_descr_literal(&"x".repeat(MAX_HEADER_LEN + 1)).is_err());
    }

    #[test]
    fn header_variants_parse() {
        let want = header("<f4", false, &[3, 4]);
        for text in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}",
            "{'shape':(3,4),'fortran_order':False,'descr':'<f4'}",
            "  {\"descr\" : \"<f4\" ,\n 'fortran_order' : False , 'shape' : ( 3L , 4L , ) , }  ",
            "{'descr': 'float32', 'fortran_order': False, 'shape': (3, 4), }",
            "{'descr': '=f4', 'fortran_order': False, 'shape': (+3, 4), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } \n\n",
        ] {
            let bytes = v1_with_text(text);
            assert_eq!(
                NpyHeader::parse(&bytes),
                Ok((want.clone(), bytes.len())),
                "{text}"
            );
        }
        let bytes = v1_with_text("{'descr': '|u1', 'fortran_order': True, 'shape': (), }");
        let (h, _) = NpyHeader::parse(&bytes).unwrap();
        assert_eq!(h.shape, Vec::<usize>::new());
        assert!(h.fortran_order);
        assert_eq!(h.len(), Some(1));
        assert_eq!(h.nbytes(), Some(1));
        let bytes = v1_with_text("{'descr': '<i8', 'fortran_order': False, 'shape': (00, 0L), }");
        assert_eq!(NpyHeader::parse(&bytes).unwrap().0.shape, vec![0, 0]);
        let bytes = v1_with_text("{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }");
        let (h, _) = NpyHeader::parse(&bytes).unwrap();
        assert_eq!(h.shape, vec![5]);
        assert_eq!(h.nbytes(), Some(40));

        // Versions 2.0 and 3.0, and the offset they give.
        for (major, text) in [
            (
                2u8,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
            ),
            (
                3u8,
                "{'descr': [('\u{e9}t\u{e9}', '<f4')], 'fortran_order': False, 'shape': (3, 4), }",
            ),
        ] {
            let mut bytes = vec![0x93, b'N', b'U', b'M', b'P', b'Y', major, 0];
            let body = format!("{text}{}\n", " ".repeat(40));
            bytes.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
            bytes.extend_from_slice(body.as_bytes());
            let (h, offset) = NpyHeader::parse(&bytes).unwrap();
            assert_eq!(offset, bytes.len());
            assert_eq!(h.shape, vec![3, 4]);
        }
    }

    #[test]
    fn header_errors() {
        let good = header("<f4", false, &[3, 4]).emit_standard();

        // Bad magic.
        assert!(parse_err(b"\x93NUMPZ\x01\x00").contains("magic"));
        assert!(parse_err(b"PK\x03\x04").contains("magic"));
        assert!(parse_err(b"\x92").contains("magic"));
        // Truncated anywhere.
        for n in 0..good.len() {
            let e = parse_err(&good[..n]);
            assert!(e.contains("truncated"), "{n}: {e}");
        }
        // Bad versions.
        for (major, minor) in [(0u8, 0u8), (1, 1), (4, 0), (255, 255), (2, 1)] {
            let mut bytes = good.clone();
            bytes[6] = major;
            bytes[7] = minor;
            assert!(parse_err(&bytes).contains("version"), "{major}.{minor}");
        }
        // Absurd header length (v2 u32).
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend_from_slice(&(MAX_HEADER_LEN as u32 + 1).to_le_bytes());
        assert!(parse_err(&bytes).contains("limit"));
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_err(&bytes).contains("limit"));
        // Missing final newline.
        let mut bytes = good.clone();
        *bytes.last_mut().unwrap() = b' ';
        assert!(parse_err(&bytes).contains("newline"));
        // Non-ASCII in v1 and v2; invalid UTF-8 in v3.
        let text = "{'descr': [('\u{e9}', '<f4')], 'fortran_order': False, 'shape': (3, 4), }";
        assert!(parse_err(&v1_with_text(text)).contains("ASCII"));
        let mut bytes = v1_with_text("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }");
        bytes[40] = 0xff;
        assert!(parse_err(&bytes).contains("ASCII"));
        let mut v3 = b"\x93NUMPY\x03\x00\x04\x00\x00\x00".to_vec();
        v3.extend_from_slice(b"{\xff}\n");
        assert!(parse_err(&v3).contains("UTF-8"));

        let header_err = |text: &str| parse_err(&v1_with_text(text));
        // Keys.
        let e = header_err("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'extra': 1}");
        assert!(e.contains("unexpected key 'extra'"), "{e}");
        let e = header_err("{'descr': '<f4', 'shape': (3, 4)}");
        assert!(e.contains("missing the key 'fortran_order'"), "{e}");
        let e = header_err("{'descr': '<f4'}");
        assert!(
            e.contains("missing the keys 'fortran_order' and 'shape'"),
            "{e}"
        );
        let e = header_err("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}");
        assert!(e.contains("more than once"), "{e}");
        let e = header_err("{1: '<f4', 'fortran_order': False, 'shape': ()}");
        assert!(e.contains("not a string"), "{e}");
        assert!(header_err("['descr', '<f4']").contains("not a dict"));
        assert!(header_err("").contains("valid Python literal"));
        assert!(
            header_err("{'descr': '<f4', 'fortran_order': False, 'shape': ()} x")
                .contains("valid Python literal")
        );
        // Shapes.
        let e = header_err("{'descr': '<f4', 'fortran_order': False, 'shape': (3, -4), }");
        assert!(e.contains("negative"), "{e}");
        let e = header_err("{'descr': '<f4', 'fortran_order': False, 'shape': [3, 4], }");
        assert!(e.contains("must be a tuple"), "{e}");
        let e = header_err("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }");
        assert!(e.contains("must be a tuple"), "{e}");
        let e = header_err("{'descr': '<f4', 'fortran_order': False, 'shape': (3.0,), }");
        assert!(e.contains("valid Python literal"), "{e}");
        let e = header_err("{'descr': '<f4', 'fortran_order': False, 'shape': ('3',), }");
        assert!(e.contains("non-negative integer"), "{e}");
        let e = header_err(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
        );
        assert!(e.contains("too large"), "{e}");
        let e = header_err(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999999999999999999999999999999999,), }",
        );
        assert!(e.contains("too large"), "{e}");
        let dims = vec!["1"; 65].join(", ");
        let e = header_err(&format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}"
        ));
        assert!(e.contains("more than the limit of 64"), "{e}");
        // fortran_order and descr.
        let e = header_err("{'descr': '<f4', 'fortran_order': False, 'shape': (010,), }");
        assert!(e.contains("leading zeros"), "{e}");
        let e = header_err("{'descr': '<f4', 'fortran_order': 0, 'shape': (), }");
        assert!(e.contains("True or False"), "{e}");
        let e = header_err("{'descr': 'O', 'fortran_order': False, 'shape': (), }");
        assert!(e.contains("object"), "{e}");
        let e = header_err("{'descr': '|O8', 'fortran_order': False, 'shape': (), }");
        assert!(e.contains("object"), "{e}");
        let e = header_err("{'descr': 4, 'fortran_order': False, 'shape': (), }");
        assert!(e.contains("invalid 'descr'"), "{e}");
        // Messages are single sentences.
        assert!(!e.contains('\n') && !e.ends_with('.'));
    }

    #[test]
    fn overflowing_shapes() {
        let h = header("<f8", false, &[usize::MAX, 2]);
        assert_eq!(h.len(), None);
        assert_eq!(h.nbytes(), None);
        let h = header("<f8", false, &[usize::MAX / 4]);
        assert_eq!(h.len(), Some(usize::MAX / 4));
        assert_eq!(h.nbytes(), None); // > isize::MAX
        let h = header("<f8", false, &[usize::MAX, 0]);
        assert_eq!(h.len(), Some(0));
        assert_eq!(h.nbytes(), Some(0));
        // parse accepts, nbytes reports the overflow.
        let text = format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}",
            usize::MAX,
            usize::MAX
        );
        let (h, _) = NpyHeader::parse(&v1_with_text(&text)).unwrap();
        assert_eq!(h.nbytes(), None);
        assert_eq!(header("<f8", false, &[]).len(), Some(1));
    }

    #[test]
    fn emit_padded_layout_and_errors() {
        let h = header("<f4", false, &[3, 4]);
        let bytes = h.emit_padded(4096).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 4086);
        assert!(bytes[10..].starts_with(h.dict_text().as_bytes()));
        assert!(
            bytes[10 + h.dict_text().len()..4095]
                .iter()
                .all(|&b| b == b' ')
        );
        assert_eq!(bytes[4095], b'\n');
        assert_eq!(NpyHeader::parse(&bytes), Ok((h.clone(), 4096)));
        // The smallest and largest totals.
        assert_eq!(h.emit_padded(128).unwrap()[..], h.emit_standard()[..]);
        assert!(h.emit_padded(64).unwrap_err().message().contains("needs"));
        assert_eq!(h.emit_padded(65536).unwrap().len(), 65536);
        assert!(
            h.emit_padded(65536 + 64)
                .unwrap_err()
                .message()
                .contains("1.0")
        );
        assert!(h.emit_padded(0).is_err());
        assert!(
            h.emit_padded(4095)
                .unwrap_err()
                .message()
                .contains("multiple of 64")
        );
        assert!(h.emit_padded(usize::MAX).is_err());
        // Non-ASCII needs version 3.0; too many dimensions.
        let u = NpyHeader {
            dtype: lit("[('\u{e9}', '<f4')]"),
            fortran_order: false,
            shape: vec![1],
        };
        assert!(u.emit_padded(4096).unwrap_err().message().contains("ASCII"));
        assert_eq!(u.emit_standard()[6], 3);
        assert!(header("<f4", false, &[1; 65]).emit_padded(4096).is_err());
    }

    #[test]
    fn emit_standard_aligns_to_64_with_a_full_pad_when_aligned() {
        // numpy adds 64 spaces rather than none when the text already ends
        // on a multiple of 64: vary a field name to hit every remainder.
        let mut hit_aligned = false;
        for k in 1..=64 {
            let h = NpyHeader {
                dtype: lit(&format!("[('{}', '<f4')]", "a".repeat(k))),
                fortran_order: false,
                shape: vec![7],
            };
            let bytes = h.emit_standard();
            assert_eq!(bytes.len() % 64, 0);
            let text_len = h.dict_text().len() + 20; // growth room for "7"
            let unpadded = 10 + text_len + 1;
            if unpadded.is_multiple_of(64) {
                assert_eq!(bytes.len(), unpadded + 64);
                hit_aligned = true;
            } else {
                assert_eq!(bytes.len(), unpadded.div_ceil(64) * 64);
            }
            assert_eq!(NpyHeader::parse(&bytes), Ok((h, bytes.len())));
        }
        assert!(hit_aligned);
    }

    fn field_name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9_]{0,5}",
            "[ -~]{1,6}",
            any::<String>().prop_filter("non-empty, short", |s| !s.is_empty()
                && s.chars().count() <= 6),
        ]
    }

    const SIMPLE: &[&str] = &[
        "<f4",
        "<f8",
        "|u1",
        "|i1",
        ">i8",
        "<u2",
        "<c16",
        ">c8",
        "|b1",
        "|S7",
        "<U3",
        ">U1",
        "|V5",
        "<M8[ns]",
        ">m8[10ms]",
        "<f2",
        "<M8",
    ];

    /// Any string written with \U escapes only: another spelling than ours.
    fn escaped(s: &str) -> String {
        let mut out = String::from("'");
        for c in s.chars() {
            out.push_str(&format!("\\U{:08x}", u32::from(c)));
        }
        out.push('\'');
        out
    }

    fn dtype_strategy() -> impl Strategy<Value = Dtype> {
        let simple = prop::sample::select(SIMPLE).prop_map(d);
        let field = (
            field_name(),
            prop::sample::select(SIMPLE),
            prop::option::of(prop::collection::vec(0usize..4, 0..3)),
        );
        let structured =
            prop::collection::vec(field, 1..5).prop_filter_map("unique field names", |fields| {
                let mut names = HashSet::new();
                if !fields.iter().all(|(n, _, _)| names.insert(n.clone())) {
                    return None;
                }
                let items: Vec<String> = fields
                    .iter()
                    .map(|(name, fmt, shape)| match shape {
                        Some(dims) if dims.is_empty() => {
                            format!("({}, '{fmt}', ())", escaped(name))
                        }
                        Some(dims) => {
                            let dims: Vec<String> = dims.iter().map(|n| format!("{n}L")).collect();
                            format!("({}, \"{fmt}\", ({},))", escaped(name), dims.join(","))
                        }
                        None => format!("({}, '{fmt}')", escaped(name)),
                    })
                    .collect();
                let text = format!("[{}]", items.join(","));
                Dtype::from_descr_literal(&text).ok()
            });
        let fixed = prop::sample::select(NUMPY_VECTORS.iter().map(|v| v.0).collect::<Vec<_>>())
            .prop_map(lit);
        prop_oneof![simple, structured, fixed]
    }

    fn header_strategy() -> impl Strategy<Value = NpyHeader> {
        let dim = prop_oneof![8 => 0usize..20, 1 => any::<usize>()];
        (
            dtype_strategy(),
            any::<bool>(),
            prop::collection::vec(dim, 0..6),
        )
            .prop_map(|(dtype, fortran_order, shape)| NpyHeader {
                dtype,
                fortran_order,
                shape,
            })
    }

    proptest! {
        #[test]
        fn round_trip(h in header_strategy()) {
            // The canonical descr is a fixed point.
            prop_assert_eq!(&Dtype::from_descr_literal(&h.dtype.descr_literal()), &Ok(h.dtype.clone()));

            match h.emit_padded(4096) {
                Ok(bytes) => {
                    prop_assert_eq!(bytes.len(), 4096);
                    prop_assert_eq!(NpyHeader::parse(&bytes), Ok((h.clone(), 4096)));
                }
                Err(e) => prop_assert!(!h.dict_text().is_ascii(), "{}", e),
            }

            let bytes = h.emit_standard();
            prop_assert_eq!(bytes.len() % 64, 0);
            prop_assert_eq!(bytes[6], if h.dict_text().is_ascii() { 1 } else { 3 });
            prop_assert_eq!(NpyHeader::parse(&bytes), Ok((h.clone(), bytes.len())));
            // Data after the header does not matter.
            let mut with_data = bytes.clone();
            with_data.extend_from_slice(&[0xff; 100]);
            prop_assert_eq!(NpyHeader::parse(&with_data), Ok((h, bytes.len())));
        }

        #[test]
        fn parse_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = NpyHeader::parse(&bytes);
            let mut with_magic = b"\x93NUMPY".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = NpyHeader::parse(&with_magic);
            let _ = Dtype::from_descr_literal(&String::from_utf8_lossy(&bytes));
            let _ = Dtype::parse_user(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn parse_never_panics_on_random_text(text in "[\\[\\](){}'\",:<>|=a-zA-Z0-9_ \\\\LTFN-]{0,120}") {
            let _ = Dtype::from_descr_literal(&text);
            let _ = Dtype::parse_user(&text);
            let _ = NpyHeader::parse(&v1_with_text(&text));
        }
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Set(usize, u8),
        Insert(usize, u8),
        Remove(usize),
        Truncate(usize),
        Swap(usize, usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let structural = prop::sample::select(b"()[]{}',:\"\\ 0123456789-L\n\x00\xff".to_vec());
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
            (any::<usize>(), structural.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
            (any::<usize>(), structural).prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Remove),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics_on_mutated_headers(
            h in header_strategy(),
            padded in any::<bool>(),
            mutations in prop::collection::vec(mutation(), 1..6),
        ) {
            let mut bytes = if padded {
                h.emit_padded(4096).unwrap_or_else(|_| h.emit_standard())
            } else {
                h.emit_standard()
            };
            for m in mutations {
                let len = bytes.len().max(1);
                match m {
                    Mutation::Set(i, b) => {
                        if let Some(x) = bytes.get_mut(i % len) {
                            *x = b;
                        }
                    }
                    Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
                    Mutation::Remove(i) => {
                        if !bytes.is_empty() {
                            bytes.remove(i % len);
                        }
                    }
                    Mutation::Truncate(i) => bytes.truncate(i % len),
                    Mutation::Swap(i, j) => {
                        if !bytes.is_empty() {
                            bytes.swap(i % len, j % len);
                        }
                    }
                }
            }
            if let Ok((parsed, offset)) = NpyHeader::parse(&bytes) {
                prop_assert!(offset <= bytes.len());
                let again = parsed.emit_standard();
                prop_assert_eq!(NpyHeader::parse(&again), Ok((parsed.clone(), again.len())));
                if let Ok(padded) = parsed.emit_padded(4096) {
                    prop_assert_eq!(NpyHeader::parse(&padded), Ok((parsed, 4096)));
                }
            }
        }
    }
}
