//! Element types: Rust types whose bytes are exactly a numpy dtype.

use num_complex::Complex;

/// A Rust type that may live in a shared array: any bit pattern is a valid
/// value (`bytemuck::Pod`), and its bytes are exactly the numpy dtype
/// [`Element::DESCR`] in native byte order.
///
/// # Safety
///
/// Implementors must guarantee that `size_of::<Self>()` equals the itemsize of
/// `DESCR`, that the memory layout matches numpy's for that descr, and that
/// every bit pattern is a valid value (peers in other languages may write any
/// bytes). `bool` is deliberately not an `Element`: a peer could write the byte
/// 2, which is undefined behaviour for a Rust `bool`. Use [`Bool`].
#[allow(unsafe_code)]
pub unsafe trait Element: bytemuck::Pod + Send + Sync + 'static {
    /// The numpy descr string, e.g. `"<f4"`.
    const DESCR: &'static str;
}

/// numpy's `bool` (`|b1`) as a byte: any value other than 0 reads as `true`.
///
/// ```
/// let b = sharray::Bool::from(true);
/// assert!(b.get());
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Bool(pub u8);

impl Bool {
    /// The value as a Rust `bool` (non-zero is `true`, as in numpy).
    pub fn get(self) -> bool {
        self.0 != 0
    }
}

impl From<bool> for Bool {
    fn from(b: bool) -> Bool {
        Bool(b as u8)
    }
}

impl From<Bool> for bool {
    fn from(b: Bool) -> bool {
        b.get()
    }
}

impl std::fmt::Debug for Bool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.get(), f)
    }
}

macro_rules! element {
    ($($t:ty => $le:literal, $be:literal;)*) => {$(
        // SAFETY: primitive numeric types (and num_complex's repr(C) pair) are
        // Pod and have exactly numpy's layout for the given descr.
        #[allow(unsafe_code)]
        unsafe impl Element for $t {
            const DESCR: &'static str = if cfg!(target_endian = "little") { $le } else { $be };
        }
    )*};
}

element! {
    Bool => "|b1", "|b1";
    i8 => "|i1", "|i1";
    u8 => "|u1", "|u1";
    i16 => "<i2", ">i2";
    u16 => "<u2", ">u2";
    i32 => "<i4", ">i4";
    u32 => "<u4", ">u4";
    i64 => "<i8", ">i8";
    u64 => "<u8", ">u8";
    f32 => "<f4", ">f4";
    f64 => "<f8", ">f8";
    Complex<f32> => "<c8", ">c8";
    Complex<f64> => "<c16", ">c16";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::npy::Dtype;

    fn check<T: Element>() {
        let d = Dtype::parse_user(T::DESCR).unwrap();
        assert_eq!(d.itemsize(), std::mem::size_of::<T>(), "{}", T::DESCR);
        assert_eq!(d.descr(), T::DESCR);
    }

    #[test]
    fn sizes_match_descr() {
        check::<Bool>();
        check::<i8>();
        check::<u8>();
        check::<i16>();
        check::<u16>();
        check::<i32>();
        check::<u32>();
        check::<i64>();
        check::<u64>();
        check::<f32>();
        check::<f64>();
        check::<Complex<f32>>();
        check::<Complex<f64>>();
    }
}
