//! The typed API for every element type: create with a fill in both orders
//! and several ranks, reopen typed (dtype must match, else an error naming
//! both), untyped access, guards, generation, flush.

use std::time::Duration;

use sharray::{Bool, Complex, Element, ErrorKind, Order, SharedArray, UntypedArray};

fn round_trip<T: Element + PartialEq + std::fmt::Debug>(fill: T, other: T) {
    let dir = tempfile::tempdir().unwrap();
    for (k, shape) in [vec![], vec![5], vec![2, 3], vec![2, 1, 4]]
        .iter()
        .enumerate()
    {
        for order in [Order::C, Order::F] {
            let p = dir.path().join(format!("{k}{}.npy", order.as_str()));
            let a = SharedArray::<T>::builder()
                .shape(shape)
                .order(order)
                .fill(fill)
                .create(&p)
                .unwrap();
            assert_eq!(a.len(), shape.iter().product::<usize>());
            assert!(a.read().unwrap().iter().all(|x| *x == fill), "{}", T::DESCR);
            assert_eq!(a.generation(), 0);
            {
                let mut w = a.write().unwrap();
                let last = w.len() - 1;
                w[last] = other;
            }
            assert_eq!(a.generation(), 1);
            a.flush().unwrap();
            let b = SharedArray::<T>::open_read_only(&p).unwrap();
            assert_eq!(b.shape(), &shape[..]);
            assert_eq!(b.order(), order);
            let r = b.read().unwrap();
            assert_eq!(r[r.len() - 1], other);
            #[cfg(feature = "ndarray")]
            assert_eq!(r.view().shape(), &shape[..]);
            let u = UntypedArray::open(&p).unwrap();
            assert_eq!(u.dtype().descr(), T::DESCR);
            assert_eq!(u.nbytes(), a.len() * std::mem::size_of::<T>());
        }
    }
}

#[test]
fn every_element_type() {
    round_trip(Bool::from(true), Bool::from(false));
    round_trip(-3i8, 4);
    round_trip(200u8, 1);
    round_trip(-300i16, 7);
    round_trip(60000u16, 1);
    round_trip(-70000i32, 1);
    round_trip(4_000_000_000u32, 1);
    round_trip(i64::MIN, i64::MAX);
    round_trip(u64::MAX, 0);
    round_trip(1.5f32, -0.25);
    round_trip(f64::MAX, f64::MIN_POSITIVE);
    round_trip(Complex::new(1.0f32, -2.0), Complex::new(0.0, 1.0));
    round_trip(Complex::new(1e300f64, -2.0), Complex::new(0.5, 1.0));
}

#[test]
fn typed_open_needs_the_matching_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    SharedArray::<i32>::create(&p, &[4]).unwrap();
    for e in [
        SharedArray::<u32>::open(&p).unwrap_err(),
        SharedArray::<f32>::open(&p).unwrap_err(),
        SharedArray::<i64>::open(&p).unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::DtypeMismatch);
        assert!(e.to_string().contains("<i4"), "{e}");
    }
    let e = SharedArray::<Bool>::open(&p).unwrap_err();
    assert!(
        e.to_string().contains("|b1") && e.to_string().contains("<i4"),
        "{e}"
    );
    // Big-endian files are only reachable untyped (their bytes are not a native i32).
    let be = dir.path().join("be.npy");
    UntypedArray::builder(sharray::Dtype::parse_user(">i4").unwrap())
        .shape(&[2])
        .create(&be)
        .unwrap();
    assert_eq!(
        SharedArray::<i32>::open(&be).unwrap_err().kind(),
        ErrorKind::DtypeMismatch
    );
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    let e = SharedArray::<u64>::create(&p, &[usize::MAX, 2]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = SharedArray::<u8>::create(&p, &[1usize << 62]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::NoSpace),
        "{e}"
    );
    let e = UntypedArray::builder(sharray::Dtype::parse_user("<f4").unwrap())
        .shape(&[2])
        .fill_bytes(&[1, 2, 3])
        .create(&p)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(!p.exists());
    let a = SharedArray::<u8>::create(&p, &[2]).unwrap();
    let e = a.wait_changed(0, Duration::from_millis(20)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    // A read-only handle waits for changes too (it still registers as a waiter).
    let ro = SharedArray::<u8>::open_read_only(&p).unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| ro.wait_changed(0, Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        a.write().unwrap()[0] = 1;
        assert_eq!(t.join().unwrap().unwrap(), 1);
    });
    // A timeout too large to be an instant means "forever", not "at once".
    std::thread::scope(|s| {
        let t = s.spawn(|| a.wait_changed(1, Duration::MAX));
        std::thread::sleep(Duration::from_millis(50));
        a.write().unwrap()[0] = 2;
        assert_eq!(t.join().unwrap().unwrap(), 2);
    });
}
