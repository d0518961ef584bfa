//! Headerless raw binary files, as `np.memmap(path, dtype, mode, shape,
//! offset, order)` opens them: the caller gives the layout, sharray checks
//! that the file holds exactly that many bytes and maps it with the same
//! guards as a plain `.npy` (whole-array `flock`, no control block).

use std::path::Path;

use crate::array::{OpenOptions, Order, SharedArray, UntypedArray};
use crate::element::Element;
use crate::error::{Error, ErrorKind, Result};
use crate::format::npy::{Dtype, NpyHeader, shape_repr};
use crate::mapping::{MapSpec, Mapping};

/// The layout of a headerless file: dtype, shape, order and the byte offset
/// where the data starts (numpy's `np.memmap` arguments).
///
/// ```
/// use sharray::{Dtype, Order, RawLayout};
/// let l = RawLayout::new(Dtype::parse_user("float64")?, &[1000, 1000]).offset(64).order(Order::F);
/// assert_eq!((l.nbytes(), l.get_offset()), (Some(8_000_000), 64));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLayout {
    dtype: Dtype,
    shape: Vec<usize>,
    order: Order,
    offset: u64,
}

impl RawLayout {
    /// `shape` elements of `dtype` in C order from byte 0.
    pub fn new(dtype: Dtype, shape: &[usize]) -> RawLayout {
        RawLayout {
            dtype,
            shape: shape.to_vec(),
            order: Order::C,
            offset: 0,
        }
    }

    /// Memory order of the data (default C).
    #[must_use]
    pub fn order(mut self, order: Order) -> RawLayout {
        self.order = order;
        self
    }

    /// Byte offset of the first element (default 0): skip a foreign header.
    #[must_use]
    pub fn offset(mut self, offset: u64) -> RawLayout {
        self.offset = offset;
        self
    }

    /// The byte offset set by [`RawLayout::offset`].
    pub fn get_offset(&self) -> u64 {
        self.offset
    }

    /// Bytes of data (`None` if the shape overflows).
    pub fn nbytes(&self) -> Option<usize> {
        self.header().nbytes()
    }

    fn header(&self) -> NpyHeader {
        NpyHeader {
            dtype: self.dtype.clone(),
            fortran_order: self.order == Order::F,
            shape: self.shape.clone(),
        }
    }
}

impl OpenOptions {
    /// Open a headerless file with the given layout, as an array of any
    /// dtype. The file must be exactly `offset + nbytes` long; guards lock
    /// the whole file with `flock` as for a plain `.npy` (a raw file has no
    /// control block, so no generation counter).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("data.dat");
    /// use sharray::{Dtype, OpenOptions, RawLayout};
    /// std::fs::write(&path, [0u8; 8 * 12])?;
    /// let layout = RawLayout::new(Dtype::parse_user("float64")?, &[3, 4]);
    /// let a = OpenOptions::new().open_raw::<f64>(&path, &layout)?;
    /// a.write()?[5] = 2.5;
    /// assert_eq!(&std::fs::read(&path)?[40..48], &2.5f64.to_le_bytes());
    ///
    /// // The wrong shape says what the file would hold.
    /// let wrong = RawLayout::new(Dtype::parse_user("float64")?, &[3, 5]);
    /// let e = OpenOptions::new().open_raw::<f64>(&path, &wrong).unwrap_err();
    /// assert!(e.to_string().contains("e.g. shape (3, 4)"), "{e}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::ShapeMismatch`] when the file size does not match (the
    /// message says what would fit), [`ErrorKind::InvalidInput`] for an
    /// overflowing shape, and the errors of [`OpenOptions::open_untyped`].
    pub fn open_raw_untyped(
        self,
        path: impl AsRef<Path>,
        layout: &RawLayout,
    ) -> Result<UntypedArray> {
        let spec = MapSpec {
            cow: self.is_copy_on_write(),
            raw: Some((layout.header(), layout.offset)),
        };
        let map = Mapping::open_with(path.as_ref(), self.flags(), &spec)?;
        Ok(UntypedArray::from_mapping(map))
    }

    /// [`OpenOptions::open_raw_untyped`] as a typed array.
    ///
    /// # Errors
    ///
    /// As [`OpenOptions::open_raw_untyped`], plus those of
    /// [`UntypedArray::typed`] (dtype mismatch, an offset not aligned for `T`).
    pub fn open_raw<T: Element>(
        self,
        path: impl AsRef<Path>,
        layout: &RawLayout,
    ) -> Result<SharedArray<T>> {
        self.open_raw_untyped(path, layout)?.typed()
    }
}

/// Check that a raw file of `file_len` bytes holds exactly the data of
/// `header` from `offset`; return the data length. The error says what the
/// file would hold instead (the "file is actually 1000x1000" pitfall).
pub(crate) fn check_raw_size(header: &NpyHeader, offset: u64, file_len: u64) -> Result<usize> {
    let item = header.dtype.itemsize();
    let nbytes = header.nbytes().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "shape {} of {} overflows; give a smaller shape",
                shape_repr(&header.shape),
                dtype_label(&header.dtype)
            ),
        )
    })?;
    let needs = offset.checked_add(nbytes as u64);
    if needs == Some(file_len) {
        return Ok(nbytes);
    }
    let dtype = dtype_label(&header.dtype);
    let what = format!(
        "{dtype} {}{}",
        shape_repr(&header.shape),
        if header.fortran_order {
            " (F order)"
        } else {
            ""
        }
    );
    let at = if offset > 0 {
        format!(" ({offset} bytes of offset + {nbytes} of data)")
    } else {
        String::new()
    };
    let needs = needs.map_or("more than 2^64 bytes".to_string(), |n| n.to_string());
    if file_len < offset {
        return Err(Error::new(
            ErrorKind::ShapeMismatch,
            format!("{file_len} bytes, shorter than the offset {offset}; check the offset"),
        ));
    }
    let avail = file_len - offset;
    let fits = if item == 0 {
        "an itemsize of 0 holds nothing; check the dtype".to_string()
    } else {
        let count = avail / item as u64;
        let rest = avail % item as u64;
        let mut s = format!("the file holds {count} {dtype} values");
        if rest > 0 {
            s += &format!(" and {rest} stray bytes (check the offset and dtype)");
        } else if let Some(shape) = fitting_shape(&header.shape, count) {
            s += &format!(", e.g. shape {}", shape_repr(&shape));
        }
        s
    };
    Err(Error::new(
        ErrorKind::ShapeMismatch,
        format!("{file_len} bytes, but {what} needs {needs}{at}; {fits}"),
    ))
}

/// A shape close to `asked` with `count` elements: the first axis varied,
/// else the last, else a square for 2-d, else 1-d.
fn fitting_shape(asked: &[usize], count: u64) -> Option<Vec<usize>> {
    let count = usize::try_from(count).ok()?;
    let vary = |axis: usize| -> Option<Vec<usize>> {
        let others: usize = asked
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != axis)
            .map(|(_, &d)| d)
            .product();
        if others == 0 || !count.is_multiple_of(others) {
            return None;
        }
        let mut s = asked.to_vec();
        s[axis] = count / others;
        Some(s)
    };
    if asked.len() >= 2 {
        if let Some(s) = vary(0).or_else(|| vary(asked.len() - 1)) {
            return Some(s);
        }
        if asked.len() == 2 {
            let r = (count as f64).sqrt().round() as usize;
            if r.checked_mul(r) == Some(count) {
                return Some(vec![r, r]);
            }
        }
    }
    Some(vec![count])
}

/// numpy's name of a little-endian numeric dtype (`float64`), else its descr.
fn dtype_label(d: &Dtype) -> String {
    let bits = d.itemsize() * 8;
    match d.kind() {
        _ if d.descr().starts_with('>') => d.descr().to_string(),
        Some('b') => "bool".to_string(),
        Some('i') => format!("int{bits}"),
        Some('u') => format!("uint{bits}"),
        Some('f') if bits <= 64 => format!("float{bits}"),
        Some('c') if bits <= 128 => format!("complex{bits}"),
        _ => d.descr().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(d: &str, shape: &[usize]) -> NpyHeader {
        NpyHeader {
            dtype: Dtype::parse_user(d).unwrap(),
            fortran_order: false,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn exact_size_passes_and_others_say_what_fits() {
        let h = header("float64", &[1000, 1001]);
        assert_eq!(check_raw_size(&h, 0, 8_008_000).unwrap(), 8_008_000);
        let e = check_raw_size(&h, 0, 8_000_000).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ShapeMismatch);
        assert_eq!(
            e.to_string(),
            "8000000 bytes, but float64 (1000, 1001) needs 8008000; the file holds 1000000 float64 values, e.g. shape (1000, 1000)"
        );
        let e = check_raw_size(&header("int32", &[10, 3]), 8, 8 + 4 * 40).unwrap_err();
        assert!(e.to_string().contains("e.g. shape (10, 4)"), "{e}");
        assert!(
            e.to_string()
                .contains("needs 128 (8 bytes of offset + 120 of data)"),
            "{e}"
        );
        let e = check_raw_size(&header("int32", &[7]), 0, 30).unwrap_err();
        assert!(e.to_string().contains("2 stray bytes"), "{e}");
        let e = check_raw_size(&header("int32", &[7]), 100, 30).unwrap_err();
        assert!(e.to_string().contains("shorter than the offset"), "{e}");
        let e = check_raw_size(&header("uint8", &[usize::MAX, 2]), 0, 30).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn fitting_shapes() {
        assert_eq!(fitting_shape(&[5, 4], 40), Some(vec![10, 4]));
        assert_eq!(fitting_shape(&[7, 9], 63 * 2), Some(vec![14, 9]));
        assert_eq!(fitting_shape(&[3, 7], 7 * 5), Some(vec![5, 7]));
        assert_eq!(fitting_shape(&[6, 4], 36), Some(vec![9, 4]));
        assert_eq!(fitting_shape(&[5, 7], 11), Some(vec![11]));
        assert_eq!(fitting_shape(&[0, 3], 12), Some(vec![4, 3]));
    }
}
