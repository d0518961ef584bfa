//! The `.npy` header itself: [`NpyHeader`] parse and emit (versions 1.0,
//! 2.0, 3.0), byte-identical to numpy. FORMAT.md section 2 ("The `.npy`
//! header").

use super::*;

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
    /// header text is Latin-1 (v1/v2, as numpy reads it) or UTF-8 (v3), ends in '\n', and is a
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
        // As numpy's read_array_header: versions 1.0 and 2.0 are Latin-1
        // (np.save writes field names such as 'é' that way), 3.0 is UTF-8.
        let decoded: String;
        let text = if major < 3 {
            decoded = raw.iter().map(|&b| char::from(b)).collect();
            decoded.as_str()
        } else {
            std::str::from_utf8(raw).map_err(|_| {
                HeaderError::new("the .npy header of format version 3.0 is not valid UTF-8")
            })?
        };
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
    pub(super) fn from_value(value: &Value) -> Result<NpyHeader, HeaderError> {
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

    /// Does this header (the file's first bytes, at least up to the end of
    /// the header) carry sharray's signature: data at offset 4096 after a
    /// dict padded with hundreds of spaces? numpy pads at most ~84 (64-byte
    /// alignment plus room for the growth axis), so a plain `.npy` with
    /// such padding was made by sharray and has lost its control block
    /// (truncated to the end of its data).
    pub fn padded_like_sharray(bytes: &[u8]) -> bool {
        const SHARRAY_DATA_OFFSET: usize = 4096;
        const MIN_PADDING: usize = 256;
        let Some(head) = bytes.get(..SHARRAY_DATA_OFFSET) else {
            return false;
        };
        if head.get(..8)
            != Some(
                &[
                    MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], MAGIC[4], MAGIC[5], 1, 0,
                ][..],
            )
            || u16::from_le_bytes([head[8], head[9]]) as usize != SHARRAY_DATA_OFFSET - 10
            || head[SHARRAY_DATA_OFFSET - 1] != b'\n'
        {
            return false;
        }
        let spaces = head[..SHARRAY_DATA_OFFSET - 1]
            .iter()
            .rev()
            .take_while(|&&b| b == b' ')
            .count();
        spaces >= MIN_PADDING
    }

    /// Emit a header whose TOTAL length (magic + version + length + dict
    /// text + space padding + final '\n') is exactly `total_len` (sharray
    /// uses 4096): version 1.0 (u16 length, Latin-1 text; HEADER_LEN =
    /// 4086) as numpy writes it, or version 3.0 (u32 length, UTF-8 text;
    /// HEADER_LEN = 4084) when a field name is beyond Latin-1. Error if it
    /// does not fit, if `total_len` is not a multiple of 64 (or, for 1.0,
    /// above 65535+10) or if the shape has more than [`MAX_NDIM`]
    /// dimensions.
    pub fn emit_padded(&self, total_len: usize) -> Result<Vec<u8>, HeaderError> {
        if !total_len.is_multiple_of(ARRAY_ALIGN) {
            return Err(HeaderError::new(format!(
                "an .npy header length of {total_len} bytes is not a multiple of {ARRAY_ALIGN}"
            )));
        }
        if self.shape.len() > MAX_NDIM {
            return Err(HeaderError::new(format!(
                "the shape has {} dimensions, more than the limit of {MAX_NDIM}",
                self.shape.len()
            )));
        }
        // Version 1.0 (Latin-1 text, u16 length) whenever the text is
        // Latin-1, as numpy writes it; version 3.0 (UTF-8 text, u32 length)
        // only for field names beyond Latin-1, which numpy >= 1.17 reads.
        let dict = self.dict_text();
        let (version, prefix, text) = match latin1(&dict) {
            Some(t) => ([1u8, 0u8], 10usize, t),
            None => ([3, 0], 12, dict.into_bytes()),
        };
        let Some(header_len) = total_len.checked_sub(prefix) else {
            return Err(HeaderError::new(format!(
                "an .npy header of {total_len} bytes is too short for its prefix"
            )));
        };
        if version[0] == 1 && header_len > usize::from(u16::MAX) {
            return Err(HeaderError::new(format!(
                "an .npy header of {total_len} bytes does not fit format version 1.0 (10 to 65545 bytes)"
            )));
        }
        let needed = prefix + text.len() + 1;
        if needed > total_len {
            return Err(HeaderError::new(format!(
                "the .npy header needs {needed} bytes, more than the {total_len} available"
            )));
        }
        let mut out = Vec::with_capacity(total_len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&version);
        if version[0] == 1 {
            out.extend_from_slice(&(header_len as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header_len as u32).to_le_bytes());
        }
        out.extend_from_slice(&text);
        out.resize(total_len - 1, b' ');
        out.push(b'\n');
        Ok(out)
    }

    /// Emit the header numpy itself would write (np.save): version 1.0 if
    /// the header fits in u16 else 2.0, total length a multiple of 64, with
    /// numpy's spare room for the growth axis. A header whose text is not
    /// Latin-1 (field names beyond U+00FF) is written as version 3.0 (UTF-8),
    /// as numpy does; Latin-1 text is written as Latin-1 in 1.0/2.0.
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
        // numpy tries 1.0, then 2.0, encoding Latin-1; a text that is not
        // Latin-1 goes to 3.0 (UTF-8). hlen counts encoded bytes.
        let latin = latin1(&text);
        let text = latin.clone().unwrap_or_else(|| text.into_bytes());
        let hlen = text.len() + 1;
        let pad_v1 = ARRAY_ALIGN - (10 + hlen) % ARRAY_ALIGN;
        let (major, prefix, pad) = if latin.is_some() && hlen + pad_v1 <= usize::from(u16::MAX) {
            (1u8, 10, pad_v1)
        } else {
            let major = if latin.is_some() { 2 } else { 3 };
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
        out.extend_from_slice(&text);
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

/// `text` encoded as Latin-1 (one byte per char), or None if a char is
/// above U+00FF.
fn latin1(text: &str) -> Option<Vec<u8>> {
    text.chars().map(|c| u8::try_from(c).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::npy::test_util::*;
    use proptest::prelude::*;

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
        // v1 and v2 are Latin-1, as numpy reads them: the UTF-8 bytes of 'é'
        // are two Latin-1 chars; invalid UTF-8 in v3 is an error.
        let text = "{'descr': [('\u{e9}', '<f4')], 'fortran_order': False, 'shape': (3, 4), }";
        let (h, _) = NpyHeader::parse(&v1_with_text(text)).unwrap();
        assert_eq!(h.dtype.descr(), "[('\u{c3}\u{a9}', '<f4')]");
        let mut bytes =
            v1_with_text("{'descr': [('Q', '<f4')], 'fortran_order': False, 'shape': (3, 4), }");
        let at = bytes.iter().position(|&b| b == b'Q').unwrap();
        bytes[at] = 0xe9;
        let (h, _) = NpyHeader::parse(&bytes).unwrap();
        assert_eq!(h.dtype.descr(), "[('\u{e9}', '<f4')]");
        let standard = h.emit_standard();
        assert_eq!(standard[6], 1);
        assert!(standard.windows(3).any(|w| w == b"'\xe9'"));
        let mut bytes = v1_with_text("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }");
        bytes[40] = 0xff;
        assert!(NpyHeader::parse(&bytes).is_err());
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
        // Latin-1 names fit version 1.0 (as np.save writes them); others
        // need version 3.0; too many dimensions.
        let u = NpyHeader {
            dtype: lit("[('\u{e9}', '<f4')]"),
            fortran_order: false,
            shape: vec![1],
        };
        let bytes = u.emit_padded(4096).unwrap();
        assert!(bytes.windows(3).any(|w| w == b"'\xe9'"));
        assert_eq!(NpyHeader::parse(&bytes), Ok((u.clone(), 4096)));
        assert_eq!(u.emit_standard()[6], 1);
        let u = NpyHeader {
            dtype: lit("[('\u{416}', '<f4')]"),
            fortran_order: false,
            shape: vec![1],
        };
        // Beyond Latin-1: version 3.0, UTF-8, still 4096 bytes.
        let v3 = u.emit_padded(4096).unwrap();
        assert_eq!((v3.len(), v3[6], v3[4095]), (4096, 3, b'\n'));
        assert_eq!(NpyHeader::parse(&v3), Ok((u.clone(), 4096)));
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
                Err(e) => prop_assert!(latin1(&h.dict_text()).is_none(), "{}", e),
            }

            let bytes = h.emit_standard();
            prop_assert_eq!(bytes.len() % 64, 0);
            prop_assert_eq!(bytes[6], if latin1(&h.dict_text()).is_some() { 1 } else { 3 });
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
