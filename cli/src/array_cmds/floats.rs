//! Floats as numpy prints them (its default `floatmode="maxprec"`), and the
//! float formats Rust lacks: IEEE half precision and x87 extended precision
//! (numpy's `float16` and, on x86-64, `longdouble`).

/// `f32` -> IEEE half bits (round to nearest even).
pub(super) fn f32_to_f16_bits(v: f32) -> u16 {
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

pub(super) fn f16_bits_to_f64(h: u16) -> f64 {
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
pub(super) fn f80_to_f64(le: &[u8]) -> f64 {
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
pub(super) fn ldexp(mut x: f64, mut k: i32) -> f64 {
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

pub(super) fn f64_to_f80_le(v: f64) -> Vec<u8> {
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

/// Precision of the floats being printed (decides the shortest digits that
/// identify a value).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Width {
    Half,
    Single,
    Double,
}

/// The shortest scientific digits that read back as the same value at
/// `width`: ("655", 4) for 6.55e4.
pub(super) fn unique_sci(v: f64, width: Width) -> (String, i32) {
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
pub(super) fn positional(v: f64, width: Width) -> String {
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
pub(super) struct FloatFormat {
    exp: bool,
    /// Digits after the point in scientific mode.
    precision: usize,
    pad_left: usize,
    pad_right: usize,
    exp_digits: usize,
    plus: bool,
}

impl FloatFormat {
    pub(super) fn new(values: &[f64], width: Width, plus: bool) -> FloatFormat {
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

    pub(super) fn format(&self, v: f64, width: Width) -> String {
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
