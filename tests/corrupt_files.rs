//! Hand-corrupted files: every one must give an error (never a panic or a
//! signal) through the library, and `check` must name what is wrong. The
//! same files through the CLI: `cli/tests/corrupt_files_cli.rs`.

mod common;

use common::corrupt::{CTRL_OFF, check_only, corrupted, set_u32, valid_bytes, write};
use sharray::{OpenOptions, SharedArray, UntypedArray};

#[test]
fn library_refuses_every_corrupted_file_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, kind) in corrupted(dir.path()) {
        let p = write(dir.path(), name, &bytes);
        for read_only in [false, true] {
            let err = OpenOptions::new()
                .read_only(read_only)
                .open_untyped(&p)
                .expect_err(name);
            assert_eq!(err.kind(), kind, "{name}: {err}");
            let msg = err.to_string();
            assert!(!msg.contains('\n'), "{name}: multi-line error {msg:?}");
            assert!(
                msg.contains(&*p.to_string_lossy()),
                "{name}: no path in {msg:?}"
            );
        }
        assert!(SharedArray::<f32>::open(&p).is_err(), "{name}");
        assert!(sharray::inspect(&p).is_err(), "{name}");
        let problems = sharray::check(&p, None).unwrap();
        assert!(!problems.is_empty(), "{name}: check found nothing");
        // Importing a corrupt file fails too, and leaves nothing behind.
        let dst = dir.path().join(format!("{name}.imported"));
        assert!(sharray::import_npy(&p, &dst, 0o600, &mut |_, _| {}).is_err());
        assert!(!dst.exists(), "{name}: import left a file behind");
    }
}

#[test]
fn check_reports_damage_that_open_tolerates() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good", &valid_bytes(dir.path()));
    assert_eq!(sharray::check(&good, None).unwrap(), vec![]);
    for (name, bytes) in check_only(dir.path()) {
        let p = write(dir.path(), name, &bytes);
        let problems = sharray::check(&p, None).unwrap();
        assert!(!problems.is_empty(), "{name}: check found nothing");
    }
}

#[test]
fn check_lists_every_problem_not_just_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = valid_bytes(dir.path());
    set_u32(&mut b, CTRL_OFF + 56, 1); // flags
    set_u32(&mut b, CTRL_OFF + 60, 0); // state
    b[CTRL_OFF + 100] = 1; // reserved
    let p = write(dir.path(), "many", &b);
    let problems = sharray::check(&p, None).unwrap();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(problems.len() >= 3, "{text:?}");
    assert!(text.iter().any(|t| t.contains("flags")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("state")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("reserved")), "{text:?}");
}

#[test]
fn plain_npy_with_odd_shapes_and_trailing_bytes() {
    // A plain .npy (data offset 128) with bytes after the data is accepted
    // (numpy ignores them), and a 0-length array works.
    let dir = tempfile::tempdir().unwrap();
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    let dict = "{'descr': '<i2', 'fortran_order': False, 'shape': (0, 5), }";
    b.extend_from_slice(&118u16.to_le_bytes());
    b.extend_from_slice(dict.as_bytes());
    b.resize(127, b' ');
    b.push(b'\n');
    b.extend_from_slice(&[1, 2, 3]);
    let p = write(dir.path(), "empty_trailing", &b);
    let a = UntypedArray::open(&p).unwrap();
    assert_eq!(a.shape(), &[0, 5]);
    assert_eq!(a.read().unwrap().bytes().len(), 0);
    assert_eq!(sharray::check(&p, None).unwrap(), vec![]);
}
