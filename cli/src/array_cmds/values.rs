//! Element values as text: parse a `--fill` value into the bytes of one
//! element, and format elements the way numpy prints them.

use sharray::Dtype;

use super::floats::{
    FloatFormat, Width, f16_bits_to_f64, f32_to_f16_bits, f64_to_f80_le, f80_to_f64, positional,
    unique_sci,
};

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
        assert!(parse_fill(&d("uint8"), "256").is_err());
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
