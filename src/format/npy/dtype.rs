//! numpy dtypes: [`Dtype`], its typestr/descr parsing (simple, datetime,
//! structured) and the user-facing names. Part of FORMAT.md section 2
//! ("The `.npy` header").

use super::*;

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
    pub(super) descr: String,
    pub(super) itemsize: usize,
    /// `Some(kind)` for simple dtypes, `None` for structured ones.
    pub(super) kind: Option<char>,
    pub(super) native: bool,
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
        let typestr = rust_name(t)
            .or_else(|| numpy_name(t))
            .or_else(|| numpy_alias(t));
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
    pub(super) fn from_value(value: &Value) -> Result<Dtype, HeaderError> {
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
    pub(super) fn check_top_level(self) -> Result<Dtype, HeaderError> {
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
pub(super) fn ambiguous_name(s: &str) -> Option<&'static str> {
    Some(match s {
        "i8" => "numpy reads it as int64 ('<i8'), Rust as int8 ('|i1')",
        "u8" => "numpy reads it as uint64 ('<u8'), Rust as uint8 ('|u1')",
        "f16" => "numpy reads it as float128, Rust as float16 ('<f2')",
        _ => return None,
    })
}

/// Short Rust-style names (sizes in bits) -> numpy typestr.
pub(super) fn rust_name(s: &str) -> Option<&'static str> {
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
pub(super) fn numpy_name(s: &str) -> Option<&'static str> {
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

/// The other names `numpy.dtype()` takes for fixed-size types (numpy 2):
/// C-type names, Python type names and the one-letter type codes, with the
/// sizes of this platform's C types (as numpy itself reads them here).
pub(super) fn numpy_alias(s: &str) -> Option<&'static str> {
    use std::mem::size_of;
    use std::os::raw::c_long;
    let long = if size_of::<c_long>() == 8 { "i8" } else { "i4" };
    let ulong = if size_of::<c_long>() == 8 { "u8" } else { "u4" };
    let intp = if size_of::<usize>() == 8 { "i8" } else { "i4" };
    let uintp = if size_of::<usize>() == 8 { "u8" } else { "u4" };
    // numpy's long double is 16 bytes (x87 extended, padded, or IEEE quad)
    // on 64-bit Linux; elsewhere its size varies, so it stays unknown.
    let long_double = cfg!(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ));
    Some(match s {
        "bool_" | "?" => "b1",
        "byte" | "b" => "i1",
        "ubyte" | "B" => "u1",
        "short" | "h" => "i2",
        "ushort" | "H" => "u2",
        "intc" | "i" => "i4",
        "uintc" | "I" => "u4",
        "long" | "l" => long,
        "ulong" | "L" => ulong,
        "longlong" | "q" => "i8",
        "ulonglong" | "Q" => "u8",
        "int" | "int_" | "intp" | "p" => intp,
        "uint" | "uintp" | "P" => uintp,
        "half" | "e" => "f2",
        "single" | "f" => "f4",
        "double" | "float" | "d" => "f8",
        "csingle" | "F" => "c8",
        "cdouble" | "complex" | "D" => "c16",
        "longdouble" | "float128" | "g" if long_double => "f16",
        "clongdouble" | "complex256" | "G" if long_double => "c32",
        "c" => "S1",
        _ => return None,
    })
}

pub(super) fn object_error() -> HeaderError {
    HeaderError::new(
        "the object dtype ('O') is not supported: it holds pickled Python objects, not fixed-size data",
    )
}

/// A simple dtype from a descr string (numpy's meaning) or a numpy name.
pub(super) fn simple_from_str(s: &str) -> Result<Dtype, HeaderError> {
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
pub(super) fn simple(
    order: char,
    kind: char,
    count: usize,
    suffix: &str,
    itemsize: usize,
) -> Dtype {
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
pub(super) fn parse_typestr(s: &str) -> Result<Dtype, HeaderError> {
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
pub(super) fn datetime_unit(tail: &str) -> Option<String> {
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

/// The format of a field: a typestr, a list of fields, or a sub-array
/// `(format, shape)` whose format may itself be any of these (numpy's
/// `[('c', ('<f8', (5,)), (2,))]`). A sub-array keeps its spelling (numpy
/// does not merge nested shapes); an empty shape is dropped, as numpy does.
fn field_format(value: &Value) -> Result<Dtype, HeaderError> {
    match value {
        Value::Str(s) => simple_from_str(s),
        Value::List(inner) => structured(inner),
        Value::Tuple(parts) => {
            let [inner, shape] = parts.as_slice() else {
                return Err(HeaderError::new(format!(
                    "a sub-array format must be a (format, shape) pair, not a tuple of {} items",
                    parts.len()
                )));
            };
            let base = field_format(inner)?;
            let dims = shape_from_value(shape)?;
            if dims.is_empty() {
                return Ok(base);
            }
            let itemsize = dims
                .iter()
                .try_fold(base.itemsize, |acc, &d| acc.checked_mul(d))
                .filter(|&s| s <= MAX_BYTES)
                .ok_or_else(|| HeaderError::new("the sub-array is too large"))?;
            let mut descr = String::from("(");
            descr.push_str(&base.descr_literal());
            descr.push_str(", ");
            py_repr_shape(&dims, &mut descr);
            descr.push(')');
            Ok(Dtype {
                descr,
                itemsize,
                kind: None,
                native: base.native,
            })
        }
        other => Err(HeaderError::new(format!(
            "its format must be a string, a list of fields or a (format, shape) pair, not {}",
            other.describe()
        ))),
    }
}

/// A structured dtype from the list of field tuples of a descr.
pub(super) fn structured(fields: &[Value]) -> Result<Dtype, HeaderError> {
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
        let format = field_format(format_value).map_err(|e| e.context(&context))?;
        let dims = match shape_value {
            Some(v) => shape_from_value(v).map_err(|e| e.context(&context))?,
            None => Vec::new(),
        };
        // As numpy's descr_to_dtype: a field named '' of a plain void type
        // is padding (skipped, so any number of them); any other field named
        // '' is a real field with the name ''.
        let padding = name.is_empty() && title.is_none() && format.kind == Some('V');
        for label in title.into_iter().chain(Some(name)) {
            if !padding && !seen.insert(label) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::npy::test_util::*;

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
        // numpy's C-type and Python names are names (see `numpy_alias`);
        // other words are not.
        assert!(user_err("floaty").contains("unknown dtype"));
        assert!(user_err("float_").contains("unknown dtype"));
        assert_eq!(Dtype::parse_user("float").unwrap().descr(), "<f8");
        assert_eq!(Dtype::parse_user("double").unwrap().descr(), "<f8");
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
            "[('', '<f4'), ('', '<i4')]",
            "[('a', ('<f4', (2,), 1))]",
            "[('a', (4, (2,)))]",
            "[('a', ('<f4', (-1,)))]",
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
    fn numpy_format_test_cases() {
        // numpy's lib/tests/test_format.py: record_arrays and
        // test_descr_to_dtype write sub-arrays of sub-arrays as
        // (format, shape) pairs, kept as written (numpy does not merge them).
        let s = lit("[('c', ('<f8', (5,)), (2,))]");
        assert_eq!(s.descr(), "[('c', ('<f8', (5,)), (2,))]");
        assert_eq!(s.itemsize(), 80);
        let s =
            lit("[('x', ([('a', '|i1'), ('', '|V3'), ('b', '|i1'), ('', '|V3')], (3,)), (4,))]");
        assert_eq!(s.itemsize(), 8 * 3 * 4);
        assert_eq!(lit(s.descr()), s);
        let s = lit("[('a', (('>i2', 3), (2, 2)))]");
        assert_eq!(s.descr(), "[('a', (('>i2', (3,)), (2, 2)))]");
        assert_eq!(s.itemsize(), 2 * 3 * 4);
        assert!(!s.is_native_endian());
        // An empty sub-array shape is dropped, as numpy does.
        assert_eq!(lit("[('a', ('<f8', ()))]").descr(), "[('a', '<f8')]");
        // A field named '' that is not padding (dt4 of test_format.py) is a
        // field; '' padding fields of type V may repeat.
        let s = lit("[('a', '<i4'), ('', '<i4'), ('b', '<i4')]");
        assert_eq!(s.descr(), "[('a', '<i4'), ('', '<i4'), ('b', '<i4')]");
        assert_eq!(s.itemsize(), 12);
        assert_eq!(lit("[('', '<f4')]").itemsize(), 4);
        assert_eq!(lit("[(('t', ''), '|V4')]").descr(), "[(('t', ''), '|V4')]");
        assert_eq!(lit("[('', '|V1'), ('', '|V2'), ('', '<i4')]").itemsize(), 7);
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
}
