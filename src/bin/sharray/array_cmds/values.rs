//! Element values as text: parse a `--fill` value into the bytes of one
//! element, and format elements the way numpy prints them.

use sharray::Dtype;

/// Byte order of a simple dtype: `true` for big-endian.
fn big_endian(dtype: &Dtype) -> bool {
    dtype.descr().starts_with('>')
}

/// Bytes of a little-endian value in the dtype's byte order.
fn ordered(mut le: Vec<u8>, dtype: &Dtype) -> Vec<u8> {
    if big_endian(dtype) {
        le.reverse();
    }
    le
}

fn parse_int<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    let t = text.trim().replace('_', "");
    t.parse::<T>()
        .map_err(|_| format!("--fill {text:?} is not a valid {what}"))
}

fn parse_float(text: &str) -> Result<f64, String> {
    let t = text.trim().to_ascii_lowercase();
    match t.as_str() {
        "nan" | "+nan" => Ok(f64::NAN),
        "-nan" => Ok(-f64::NAN),
        "inf" | "+inf" | "infinity" => Ok(f64::INFINITY),
        "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
        _ => t
            .parse::<f64>()
            .map_err(|_| format!("--fill {text:?} is not a valid number")),
    }
}

/// `"1+2j"`, `"(1-2j)"`, `"2j"`, `"-1.5"`, `"1e3-2.5e-1j"` -> (re, im).
fn parse_complex(text: &str) -> Result<(f64, f64), String> {
    let bad = || format!("--fill {text:?} is not a complex number like 1+2j");
    let t: String = text.trim().chars().filter(|c| !c.is_whitespace()).collect();
    let t = t
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(&t);
    let Some(body) = t.strip_suffix(['j', 'J']) else {
        return Ok((parse_float(t).map_err(|_| bad())?, 0.0));
    };
    // Split at the last sign that is not the first character and not part of
    // an exponent ("1e-3").
    let bytes = body.as_bytes();
    let split = (1..bytes.len())
        .rev()
        .find(|&i| matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
    match split {
        Some(i) => {
            let re = parse_float(&body[..i]).map_err(|_| bad())?;
            let im_text = &body[i..];
            let im = match im_text {
                "+" => 1.0,
                "-" => -1.0,
                _ => parse_float(im_text).map_err(|_| bad())?,
            };
            Ok((re, im))
        }
        None => {
            let im = match body {
                "" | "+" => 1.0,
                "-" => -1.0,
                _ => parse_float(body).map_err(|_| bad())?,
            };
            Ok((0.0, im))
        }
    }
}

/// `f32` -> IEEE half bits (round to nearest even).
fn f32_to_f16_bits(v: f32) -> u16 {
    let x = v.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let mant = x & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let mut r = m >> shift;
        let rem = m & ((1 << shift) - 1);
        if rem > half || (rem == half && r & 1 == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (mant >> 13);
    let rem = mant & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && r & 1 == 1) {
        r += 1; // may carry into the exponent, which is still correct
    }
    sign | r as u16
}

fn f16_bits_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = (h >> 10) & 0x1f;
    let mant = f64::from(h & 0x3ff);
    sign * match exp {
        0 => mant * 2f64.powi(-24),
        0x1f if mant == 0.0 => f64::INFINITY,
        0x1f => f64::NAN,
        e => (1.0 + mant / 1024.0) * 2f64.powi(i32::from(e) - 15),
    }
}

/// x87 80-bit extended precision (numpy's `f16`/`longdouble` on x86-64),
/// given its 16 little-endian bytes.
fn f80_to_f64(le: &[u8]) -> f64 {
    let mant = u64::from_le_bytes(le[0..8].try_into().expect("8 bytes"));
    let se = u16::from_le_bytes([le[8], le[9]]);
    let sign = if se & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from(se & 0x7fff);
    if exp == 0x7fff {
        return if mant << 1 == 0 {
            sign * f64::INFINITY
        } else {
            f64::NAN
        };
    }
    let e = if exp == 0 { 1 - 16383 } else { exp - 16383 };
    sign * ldexp(mant as f64, e - 63)
}

/// `x * 2^k` without overflowing the power on the way.
fn ldexp(mut x: f64, mut k: i32) -> f64 {
    while k > 1000 {
        x *= 2f64.powi(1000);
        k -= 1000;
    }
    while k < -1000 {
        x *= 2f64.powi(-1000);
        k += 1000;
    }
    x * 2f64.powi(k)
}

fn f64_to_f80_le(v: f64) -> Vec<u8> {
    let mut out = vec![0u8; 16];
    let sign: u16 = if v.is_sign_negative() { 0x8000 } else { 0 };
    let (exp, mant): (u16, u64) = if v.is_nan() {
        (0x7fff, 0xc000_0000_0000_0000)
    } else if v.is_infinite() {
        (0x7fff, 0x8000_0000_0000_0000)
    } else if v == 0.0 {
        (0, 0)
    } else {
        let bits = v.to_bits();
        let e = ((bits >> 52) & 0x7ff) as i32;
        let m = bits & ((1 << 52) - 1);
        if e == 0 {
            // subnormal f64: normalise
            let lz = m.leading_zeros() as i32; // >= 12
            let shifted = m << lz;
            ((-1022 - (lz - 11) + 16383) as u16, shifted)
        } else {
            ((e - 1023 + 16383) as u16, (1 << 63) | (m << 11))
        }
    };
    out[0..8].copy_from_slice(&mant.to_le_bytes());
    out[8..10].copy_from_slice(&(sign | exp).to_le_bytes());
    out
}

/// The bytes of one element of `dtype` holding `text`, for `--fill`.
pub fn parse_fill(dtype: &Dtype, text: &str) -> Result<Vec<u8>, String> {
    let kind = dtype.kind().ok_or_else(|| {
        format!(
            "--fill is not supported for the structured dtype {}; create with zeros and write the records with numpy or the library",
            dtype.descr()
        )
    })?;
    let size = dtype.itemsize();
    let le: Vec<u8> = match (kind, size) {
        ('b', 1) => match text.trim() {
            "true" | "True" | "TRUE" | "1" => vec![1],
            "false" | "False" | "FALSE" | "0" => vec![0],
            _ => {
                return Err(format!(
                    "--fill {text:?} is not a bool: use true, false, 1 or 0"
                ));
            }
        },
        ('i', 1) => parse_int::<i8>(text, "int8")?.to_le_bytes().to_vec(),
        ('i', 2) => parse_int::<i16>(text, "int16")?.to_le_bytes().to_vec(),
        ('i', 4) => parse_int::<i32>(text, "int32")?.to_le_bytes().to_vec(),
        ('i', 8) => parse_int::<i64>(text, "int64")?.to_le_bytes().to_vec(),
        ('u', 1) => parse_int::<u8>(text, "uint8")?.to_le_bytes().to_vec(),
        ('u', 2) => parse_int::<u16>(text, "uint16")?.to_le_bytes().to_vec(),
        ('u', 4) => parse_int::<u32>(text, "uint32")?.to_le_bytes().to_vec(),
        ('u', 8) => parse_int::<u64>(text, "uint64")?.to_le_bytes().to_vec(),
        ('f', 2) => f32_to_f16_bits(parse_float(text)? as f32)
            .to_le_bytes()
            .to_vec(),
        ('f', 4) => (parse_float(text)? as f32).to_le_bytes().to_vec(),
        ('f', 8) => parse_float(text)?.to_le_bytes().to_vec(),
        ('f', 16) => f64_to_f80_le(parse_float(text)?),
        ('c', 8) => {
            let (re, im) = parse_complex(text)?;
            let (re, im) = (re as f32, im as f32);
            // Each half is one float in the dtype's byte order.
            let mut v = ordered(re.to_le_bytes().to_vec(), dtype);
            v.extend(ordered(im.to_le_bytes().to_vec(), dtype));
            return Ok(v);
        }
        ('c', 16) => {
            let (re, im) = parse_complex(text)?;
            let mut v = ordered(re.to_le_bytes().to_vec(), dtype);
            v.extend(ordered(im.to_le_bytes().to_vec(), dtype));
            return Ok(v);
        }
        ('c', 32) => {
            let (re, im) = parse_complex(text)?;
            let mut v = ordered(f64_to_f80_le(re), dtype);
            v.extend(ordered(f64_to_f80_le(im), dtype));
            return Ok(v);
        }
        _ => {
            return Err(format!(
                "--fill is not supported for dtype {}; it works for bool, integers, floats and complex numbers",
                dtype.descr()
            ));
        }
    };
    Ok(ordered(le, dtype))
}

/// One element decoded for printing.
enum Value {
    Bool(bool),
    Int(i128),
    Float(f64),
    Complex(f64, f64),
    /// Already final text (strings, bytes, datetimes, records).
    Text(String),
}

fn le_bytes(raw: &[u8], big: bool) -> Vec<u8> {
    let mut v = raw.to_vec();
    if big {
        v.reverse();
    }
    v
}

fn float_of(raw: &[u8], big: bool) -> f64 {
    let b = le_bytes(raw, big);
    match b.len() {
        2 => f16_bits_to_f64(u16::from_le_bytes([b[0], b[1]])),
        4 => f64::from(f32::from_le_bytes(b[..4].try_into().expect("4 bytes"))),
        8 => f64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
        _ => f80_to_f64(&b),
    }
}

fn int_of(raw: &[u8], big: bool, signed: bool) -> i128 {
    let b = le_bytes(raw, big);
    let mut buf = [0u8; 16];
    buf[..b.len()].copy_from_slice(&b);
    if signed && b.last().is_some_and(|&x| x & 0x80 != 0) {
        buf[b.len()..].fill(0xff);
    }
    i128::from_le_bytes(buf)
}

fn bytes_repr(b: &[u8]) -> String {
    let mut s = String::from("b'");
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\'' => s.push_str("\\'"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('\'');
    s
}

/// Days since 1970-01-01 -> (year, month, day) (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn datetime_text(v: i64, unit: &str) -> String {
    if v == i64::MIN {
        return "'NaT'".into();
    }
    let per_day: Option<(i128, usize)> = match unit {
        "h" => Some((24, 0)),
        "m" => Some((1440, 0)),
        "s" => Some((86_400, 0)),
        "ms" => Some((86_400_000, 3)),
        "us" => Some((86_400_000_000, 6)),
        "ns" => Some((86_400_000_000_000, 9)),
        _ => None,
    };
    let text = match unit {
        "Y" => format!("{}", 1970 + i128::from(v)),
        "M" => {
            let y = 1970 + v.div_euclid(12);
            format!("{y}-{:02}", v.rem_euclid(12) + 1)
        }
        "W" | "D" => {
            let days = if unit == "W" { v.saturating_mul(7) } else { v };
            let (y, m, d) = civil(days);
            format!("{y}-{m:02}-{d:02}")
        }
        _ => match per_day {
            Some((n, frac_digits)) => {
                let v = i128::from(v);
                let days = v.div_euclid(n);
                let rest = v.rem_euclid(n);
                let (y, m, d) = civil(days as i64);
                let date = format!("{y}-{m:02}-{d:02}");
                match unit {
                    "h" => format!("{date}T{rest:02}"),
                    "m" => format!("{date}T{:02}:{:02}", rest / 60, rest % 60),
                    _ => {
                        let scale = 10i128.pow(frac_digits as u32);
                        let secs = rest / scale;
                        let frac = rest % scale;
                        let mut t = format!(
                            "{date}T{:02}:{:02}:{:02}",
                            secs / 3600,
                            secs / 60 % 60,
                            secs % 60
                        );
                        if frac_digits > 0 {
                            t.push_str(&format!(".{frac:0frac_digits$}"));
                        }
                        t
                    }
                }
            }
            // Units without a calendar form here (ps, fs, as, multiples,
            // generic): the raw count.
            None => return v.to_string(),
        },
    };
    format!("'{text}'")
}

fn decode(dtype: &Dtype, raw: &[u8]) -> Value {
    let descr = dtype.descr();
    let big = descr.starts_with('>');
    match dtype.kind() {
        Some('b') => Value::Bool(raw[0] != 0),
        Some('i') => Value::Int(int_of(raw, big, true)),
        Some('u') => Value::Int(int_of(raw, big, false)),
        Some('f') => Value::Float(float_of(raw, big)),
        Some('c') => {
            let h = raw.len() / 2;
            Value::Complex(float_of(&raw[..h], big), float_of(&raw[h..], big))
        }
        Some('S') => {
            let end = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            Value::Text(bytes_repr(&raw[..end]))
        }
        Some('V') => Value::Text(bytes_repr(raw)),
        Some('U') => {
            let mut s = String::new();
            for c in raw.chunks_exact(4) {
                let b: [u8; 4] = c.try_into().expect("4 bytes");
                let cp = if big {
                    u32::from_be_bytes(b)
                } else {
                    u32::from_le_bytes(b)
                };
                s.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
            }
            let s = s.trim_end_matches('\0');
            Value::Text(format!("{s:?}").replacen('"', "'", 2))
        }
        Some('M') => {
            let v = int_of(raw, big, true) as i64;
            let unit = descr
                .split_once('[')
                .map_or("", |(_, u)| u.trim_end_matches(']'));
            Value::Text(datetime_text(v, unit))
        }
        Some('m') => {
            let v = int_of(raw, big, true) as i64;
            Value::Text(if v == i64::MIN {
                "NaT".into()
            } else {
                v.to_string()
            })
        }
        // Structured records: their raw bytes, in hex.
        _ => Value::Text(raw.iter().map(|b| format!("{b:02x}")).collect()),
    }
}

/// Precision of the floats being printed (decides the shortest digits that
/// identify a value).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Width {
    Half,
    Single,
    Double,
}

/// The shortest scientific digits that read back as the same value at
/// `width`: ("655", 4) for 6.55e4.
fn unique_sci(v: f64, width: Width) -> (String, i32) {
    let text = match width {
        Width::Double => format!("{v:e}"),
        Width::Single => format!("{:e}", v as f32),
        Width::Half => {
            let bits = f32_to_f16_bits(v as f32);
            (0..8)
                .map(|p| format!("{v:.p$e}"))
                .find(|t| {
                    t.parse::<f64>()
                        .is_ok_and(|x| f32_to_f16_bits(x as f32) == bits)
                })
                .unwrap_or_else(|| format!("{v:e}"))
        }
    };
    let (m, e) = text.split_once('e').unwrap_or((&text, "0"));
    let digits: String = m.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    (digits.to_string(), e.parse().unwrap_or(0))
}

/// numpy's positional text: shortest unique digits, at most 8 after the
/// point, trailing zeros trimmed but the point kept ("1.", "0.25").
fn positional(v: f64, width: Width) -> String {
    let (digits, exp) = unique_sci(v.abs(), width);
    let sign = if v.is_sign_negative() && v != 0.0 {
        "-"
    } else {
        ""
    };
    let (int, frac) = if exp >= 0 {
        let e = exp as usize;
        if digits.len() > e + 1 {
            (digits[..=e].to_string(), digits[e + 1..].to_string())
        } else {
            (format!("{digits:0<w$}", w = e + 1), String::new())
        }
    } else {
        let zeros = "0".repeat((-exp - 1) as usize);
        ("0".to_string(), format!("{zeros}{digits}"))
    };
    if frac.len() > 8 {
        let r = format!("{:.8}", v.abs());
        let r = r.trim_end_matches('0');
        return format!("{sign}{r}");
    }
    format!("{sign}{int}.{frac}")
}

/// numpy's default float formatting for a set of values printed together
/// (`floatmode="maxprec"`, precision 8): positional with the decimal points
/// aligned, or scientific with a common number of digits when the
/// magnitudes call for it.
struct FloatFormat {
    exp: bool,
    /// Digits after the point in scientific mode.
    precision: usize,
    pad_left: usize,
    pad_right: usize,
    exp_digits: usize,
    plus: bool,
}

impl FloatFormat {
    fn new(values: &[f64], width: Width, plus: bool) -> FloatFormat {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let nonzero: Vec<f64> = finite
            .iter()
            .map(|v| v.abs())
            .filter(|&v| v != 0.0)
            .collect();
        let exp = match (
            nonzero.iter().copied().reduce(f64::max),
            nonzero.iter().copied().reduce(f64::min),
        ) {
            (Some(max), Some(min)) => max >= 1e8 || min < 1e-4 || max / min > 1000.0,
            _ => false,
        };
        let mut f = FloatFormat {
            exp,
            precision: 0,
            pad_left: 0,
            pad_right: 0,
            exp_digits: 2,
            plus,
        };
        for &v in &finite {
            let sign = usize::from(v.is_sign_negative() && v != 0.0 || plus);
            if exp {
                let (digits, e) = unique_sci(v.abs(), width);
                f.precision = f.precision.max(digits.len() - 1).min(8);
                f.exp_digits = f.exp_digits.max(e.unsigned_abs().to_string().len());
                f.pad_left = f.pad_left.max(1 + sign);
            } else {
                let p = positional(v, width);
                let (i, fr) = p.split_once('.').unwrap_or((&p, ""));
                f.pad_left = f
                    .pad_left
                    .max(i.len() + usize::from(plus && !i.starts_with('-')));
                f.pad_right = f.pad_right.max(fr.len());
            }
        }
        f
    }

    fn format(&self, v: f64, width: Width) -> String {
        if !v.is_finite() {
            let s = if v.is_nan() {
                if self.plus { "+nan" } else { "nan" }
            } else if v > 0.0 {
                if self.plus { "+inf" } else { "inf" }
            } else {
                "-inf"
            };
            let w = if self.exp {
                self.pad_left + 1 + self.precision + 2 + self.exp_digits
            } else {
                self.pad_left + 1 + self.pad_right
            };
            return format!("{s:>w$}");
        }
        let negative = v.is_sign_negative() && v != 0.0;
        let sign = if negative {
            "-"
        } else if self.plus {
            "+"
        } else {
            ""
        };
        if self.exp {
            // Exactly `precision` digits, correctly rounded (numpy's
            // non-unique second pass).
            let t = format!("{:.p$e}", v.abs(), p = self.precision);
            let (m, e) = t.split_once('e').unwrap_or((&t, "0"));
            let e: i32 = e.parse().unwrap_or(0);
            let m = if m.contains('.') {
                m.to_string()
            } else {
                format!("{m}.")
            };
            let es = if e < 0 { '-' } else { '+' };
            let int_frac = format!("{sign}{m}");
            let (int, frac) = int_frac.split_once('.').unwrap_or((&int_frac, ""));
            return format!(
                "{int:>l$}.{frac}e{es}{:0d$}",
                e.unsigned_abs(),
                l = self.pad_left,
                d = self.exp_digits
            );
        }
        let body = positional(v, width);
        let body = if self.plus && !negative {
            format!("+{body}")
        } else {
            body
        };
        let (int, frac) = body.split_once('.').unwrap_or((&body, ""));
        format!(
            "{int:>l$}.{frac:<r$}",
            l = self.pad_left,
            r = self.pad_right
        )
    }
}

/// A 0-d array as numpy prints it: Python's `repr` of the scalar for
/// floats ("3.0", "1e-05"), the array element text otherwise.
pub fn scalar_text(dtype: &Dtype, raw: &[u8]) -> String {
    if dtype.kind() == Some('f') {
        let v = float_of(raw, dtype.descr().starts_with('>'));
        if v.is_nan() {
            return "nan".into();
        }
        if v.is_infinite() {
            return if v > 0.0 { "inf" } else { "-inf" }.into();
        }
        let width = match dtype.itemsize() {
            2 => Width::Half,
            4 => Width::Single,
            _ => Width::Double,
        };
        let (digits, exp) = unique_sci(v.abs(), width);
        let sign = if v.is_sign_negative() { "-" } else { "" };
        if !(-4..16).contains(&exp) {
            let (first, rest) = digits.split_at(1);
            let rest = if rest.is_empty() {
                String::new()
            } else {
                format!(".{rest}")
            };
            let es = if exp < 0 { '-' } else { '+' };
            return format!("{sign}{first}{rest}e{es}{:02}", exp.unsigned_abs());
        }
        let p = positional(v, width);
        return if p.ends_with('.') { format!("{p}0") } else { p };
    }
    format_elements(dtype, &[raw]).pop().unwrap_or_default()
}

/// Format `elements` (raw bytes of each, in print order) as numpy would in
/// one printed array: every word padded to a common width.
pub fn format_elements(dtype: &Dtype, elements: &[&[u8]]) -> Vec<String> {
    let values: Vec<Value> = elements.iter().map(|raw| decode(dtype, raw)).collect();
    // The precision of one float component (complex: half the itemsize).
    let component = match dtype.kind() {
        Some('c') => dtype.itemsize() / 2,
        _ => dtype.itemsize(),
    };
    let width = match component {
        2 => Width::Half,
        4 => Width::Single,
        _ => Width::Double,
    };
    let words: Vec<String> = match dtype.kind() {
        Some('f') => {
            let vs: Vec<f64> = values
                .iter()
                .map(|v| if let Value::Float(f) = v { *f } else { 0.0 })
                .collect();
            let ff = FloatFormat::new(&vs, width, false);
            vs.iter().map(|&v| ff.format(v, width)).collect()
        }
        Some('c') => {
            let (re, im): (Vec<f64>, Vec<f64>) = values
                .iter()
                .map(|v| {
                    if let Value::Complex(r, i) = v {
                        (*r, *i)
                    } else {
                        (0.0, 0.0)
                    }
                })
                .unzip();
            let fr = FloatFormat::new(&re, width, false);
            let fi = FloatFormat::new(&im, width, true);
            re.iter()
                .zip(&im)
                .map(|(&r, &i)| {
                    let im_text = fi.format(i, width);
                    let trimmed = im_text.trim_end();
                    let pad = im_text.len() - trimmed.len();
                    format!("{}{}j{}", fr.format(r, width), trimmed, " ".repeat(pad))
                })
                .collect()
        }
        _ => values
            .iter()
            .map(|v| match v {
                Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
                Value::Int(i) => i.to_string(),
                Value::Text(t) => t.clone(),
                Value::Float(f) => f.to_string(),
                Value::Complex(r, i) => format!("{r}+{i}j"),
            })
            .collect(),
    };
    // numpy right-aligns numbers and bools; strings keep their own width.
    if matches!(dtype.kind(), Some('S' | 'U' | 'V' | 'M')) {
        return words;
    }
    let width = words.iter().map(|w| w.chars().count()).max().unwrap_or(0);
    words.into_iter().map(|w| format!("{w:>width$}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dtype {
        Dtype::parse_user(s).unwrap()
    }

    #[test]
    fn fills() {
        assert_eq!(parse_fill(&d(">i4"), "1").unwrap(), vec![0, 0, 0, 1]);
        assert_eq!(parse_fill(&d("<i2"), "-2").unwrap(), vec![0xfe, 0xff]);
        assert!(parse_fill(&d("u8"), "256").is_err());
        assert_eq!(parse_fill(&d("bool"), "true").unwrap(), vec![1]);
        assert_eq!(parse_fill(&d("<f2"), "1").unwrap(), vec![0x00, 0x3c]);
        assert_eq!(
            parse_fill(&d("<c8"), "1+2j").unwrap(),
            [1f32.to_le_bytes(), 2f32.to_le_bytes()].concat()
        );
        assert_eq!(parse_complex("-1.5e-3-2j").unwrap(), (-1.5e-3, -2.0));
        assert_eq!(parse_complex("2j").unwrap(), (0.0, 2.0));
        assert_eq!(parse_complex("(3)").unwrap(), (3.0, 0.0));
        assert!(parse_fill(&d("|S3"), "ab").is_err());
        assert!(parse_fill(&d("[('a', '<i4')]"), "1").is_err());
        let x = f64_to_f80_le(-2.5);
        assert_eq!(f80_to_f64(&x), -2.5);
    }

    #[test]
    fn floats_like_numpy() {
        let fmt = |vals: &[f64]| {
            let bytes: Vec<[u8; 8]> = vals.iter().map(|v| v.to_le_bytes()).collect();
            let refs: Vec<&[u8]> = bytes.iter().map(|b| &b[..]).collect();
            format_elements(&d("<f8"), &refs)
        };
        assert_eq!(fmt(&[0.5, 1.0]), vec!["0.5", "1. "]);
        assert_eq!(fmt(&[0.0, 1.0, 2.0]), vec!["0.", "1.", "2."]);
        assert_eq!(
            fmt(&[1e20, 1.0, 3.5e-7]),
            vec!["1.0e+20", "1.0e+00", "3.5e-07"]
        );
        assert_eq!(fmt(&[f64::NAN, 1.5]), vec!["nan", "1.5"]);
        assert_eq!(fmt(&[-1.25, 10.0]), vec!["-1.25", "10.  "]);
    }

    #[test]
    fn dates() {
        assert_eq!(datetime_text(0, "D"), "'1970-01-01'");
        assert_eq!(datetime_text(19_723, "D"), "'2024-01-01'");
        assert_eq!(datetime_text(1_500, "ms"), "'1970-01-01T00:00:01.500'");
        assert_eq!(datetime_text(i64::MIN, "s"), "'NaT'");
    }
}
