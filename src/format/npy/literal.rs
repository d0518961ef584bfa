//! The Python-literal subset of `.npy` headers: a parser into [`Value`]
//! and the `repr` helpers that print strings and shapes the way Python
//! does. Part of FORMAT.md section 2 ("The `.npy` header").

use super::*;

// ---------------------------------------------------------------------------
// Python literals: the subset that appears in .npy headers

/// A parsed Python literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
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
    pub(super) fn describe(&self) -> String {
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
    pub(super) fn to_usize(&self) -> Result<usize, HeaderError> {
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
pub(super) fn parse_literal(src: &str) -> Result<Value, HeaderError> {
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
pub(super) struct LiteralParser<'a> {
    src: &'a str,
    /// Byte offset into `src`, always on a char boundary.
    pos: usize,
}

impl LiteralParser<'_> {
    pub(super) fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or("")
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(super) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    pub(super) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    pub(super) fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r' | '\x0c')) {
            self.pos += 1;
        }
    }

    pub(super) fn err(&self, what: &str) -> HeaderError {
        HeaderError::new(format!("{what} (at byte {})", self.pos))
    }

    pub(super) fn value(&mut self, depth: usize) -> Result<Value, HeaderError> {
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
    pub(super) fn sequence(
        &mut self,
        close: char,
        depth: usize,
    ) -> Result<(Vec<Value>, bool), HeaderError> {
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

    pub(super) fn dict(&mut self, depth: usize) -> Result<Value, HeaderError> {
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
    pub(super) fn int(&mut self) -> Result<Value, HeaderError> {
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

    pub(super) fn name(&mut self) -> Result<Value, HeaderError> {
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
    pub(super) fn string(&mut self) -> Result<String, HeaderError> {
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
    pub(super) fn escape(&mut self, out: &mut String) -> Result<(), HeaderError> {
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

    pub(super) fn hex_escape(&mut self, digits: usize) -> Result<char, HeaderError> {
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
pub(super) fn py_repr_str(s: &str, out: &mut String) {
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
pub(super) fn py_printable(c: char) -> bool {
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
pub(super) fn py_repr_shape(dims: &[usize], out: &mut String) {
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
pub(super) fn shape_from_value(value: &Value) -> Result<Vec<usize>, HeaderError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::npy::test_util::*;

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
}
