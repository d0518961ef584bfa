//! The one little-endian reader/writer of the crate: every encoder and
//! decoder in `format/` reads and writes its fields through these.
//!
//! Reads are bounds-checked and never panic: a field that does not fit in the
//! slice reads as `None` (the `*_or0` forms read it as 0, for callers that
//! checked the length first). Writes go into a slice the caller sized; a
//! write past its end is a bug in the caller and panics.

/// `len` bytes at `off`, or `None` if they are not all inside `b`.
fn field(b: &[u8], off: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    b.get(start..start.checked_add(len)?)
}

/// The little-endian `u32` at byte `off` of `b`, if it is inside.
pub fn u32_at(b: &[u8], off: u64) -> Option<u32> {
    Some(u32::from_le_bytes(field(b, off, 4)?.try_into().ok()?))
}

/// The little-endian `u64` at byte `off` of `b`, if it is inside.
pub fn u64_at(b: &[u8], off: u64) -> Option<u64> {
    Some(u64::from_le_bytes(field(b, off, 8)?.try_into().ok()?))
}

/// [`u32_at`], reading 0 outside the slice.
pub fn u32_or0(b: &[u8], off: u64) -> u32 {
    u32_at(b, off).unwrap_or(0)
}

/// [`u64_at`], reading 0 outside the slice.
pub fn u64_or0(b: &[u8], off: u64) -> u64 {
    u64_at(b, off).unwrap_or(0)
}

/// Write `v` little-endian at byte `off` of `b`.
///
/// # Panics
///
/// If the field does not fit in `b` (the caller sizes the buffer).
pub fn put_u32(b: &mut [u8], off: u64, v: u32) {
    put(b, off, &v.to_le_bytes());
}

/// Write `v` little-endian at byte `off` of `b`.
///
/// # Panics
///
/// If the field does not fit in `b` (the caller sizes the buffer).
pub fn put_u64(b: &mut [u8], off: u64, v: u64) {
    put(b, off, &v.to_le_bytes());
}

/// Copy `bytes` to byte `off` of `b`.
///
/// # Panics
///
/// If the field does not fit in `b` (the caller sizes the buffer).
pub fn put(b: &mut [u8], off: u64, bytes: &[u8]) {
    let start = usize::try_from(off).expect("field offset fits in usize");
    b[start..start + bytes.len()].copy_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_bounds() {
        let mut b = [0u8; 12];
        put_u32(&mut b, 0, 0xdead_beef);
        put_u64(&mut b, 4, 0x0102_0304_0506_0708);
        assert_eq!(u32_at(&b, 0), Some(0xdead_beef));
        assert_eq!(u64_at(&b, 4), Some(0x0102_0304_0506_0708));
        assert_eq!(b[4], 8);
        assert_eq!(u64_at(&b, 5), None);
        assert_eq!(u32_at(&b, u64::MAX), None);
        assert_eq!(u64_or0(&b, 100), 0);
    }

    proptest! {
        #[test]
        fn reads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), off in any::<u64>()) {
            let _ = u32_at(&bytes, off);
            let _ = u64_at(&bytes, off);
            let _ = u64_at(&bytes, off % 70);
        }
    }
}
