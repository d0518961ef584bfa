//! Hand-corrupted files: every one must give an error (never a panic or a
//! signal) through the library, and exit code 1 with one line on stderr
//! through the CLI; `sharray check` must name what is wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sharray::{ErrorKind, OpenOptions, SharedArray, UntypedArray};

const CTRL_OFF: usize = 65536;

fn sharray_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sharray"))
        .args(args)
        .output()
        .expect("run the sharray binary")
}

/// The bytes of a valid 10x10 `<f4` sharray file.
fn valid_bytes(dir: &Path) -> Vec<u8> {
    let p = dir.join("valid.npy");
    if !p.exists() {
        let a = SharedArray::<f32>::builder()
            .shape(&[10, 10])
            .fill(1.0)
            .create(&p)
            .unwrap();
        a.write().unwrap()[3] = 2.0;
    }
    std::fs::read(&p).unwrap()
}

/// A v1 header of exactly 4096 bytes with this dict text.
fn header_with(dict: &str) -> Vec<u8> {
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&4086u16.to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(4095, b' ');
    h.push(b'\n');
    h
}

fn set_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn set_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// (name, bytes, the error kind opening must give).
fn corrupted(dir: &Path) -> Vec<(&'static str, Vec<u8>, ErrorKind)> {
    let good = valid_bytes(dir);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let c = ErrorKind::Corrupt;
    vec![
        ("empty", Vec::new(), c),
        ("five_bytes", good[..5].to_vec(), c),
        ("wrong_magic", with(&|b| b[1] = b'X'), c),
        ("elf_file", with(&|b| b[..4].copy_from_slice(b"\x7fELF")), c),
        ("bad_npy_version", with(&|b| b[6] = 9), c),
        ("truncated_in_header", good[..100].to_vec(), c),
        ("truncated_in_data", good[..4096 + 100].to_vec(), c),
        ("truncated_in_padding", good[..4096 + 400 + 10].to_vec(), c),
        ("truncated_in_control", good[..CTRL_OFF + 100].to_vec(), c),
        ("truncated_by_one", good[..good.len() - 1].to_vec(), c),
        ("extended", with(&|b| b.extend_from_slice(&[0u8; 4096])), c),
        (
            "header_len_huge",
            with(&|b| b[8..10].copy_from_slice(&60000u16.to_le_bytes())),
            c,
        ),
        ("header_no_newline", with(&|b| b[4095] = b' '), c),
        ("header_not_ascii", with(&|b| b[200] = 0xff), c),
        ("header_garbage", with(&|b| b[10..60].fill(b'(')), c),
        (
            "shape_overflows",
            with(&|b| {
                b[..4096].copy_from_slice(&header_with(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904), }",
                ))
            }),
            c,
        ),
        (
            "shape_too_big_for_file",
            with(&|b| {
                b[..4096].copy_from_slice(&header_with(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }",
                ))
            }),
            c,
        ),
        (
            "negative_dim",
            with(&|b| {
                b[..4096].copy_from_slice(&header_with(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (-10, 10), }",
                ))
            }),
            c,
        ),
        (
            "object_dtype",
            with(&|b| {
                b[..4096].copy_from_slice(&header_with(
                    "{'descr': '|O', 'fortran_order': False, 'shape': (10, 10), }",
                ))
            }),
            c,
        ),
        (
            "shape_mismatch_with_control",
            with(&|b| {
                b[..4096].copy_from_slice(&header_with(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (10, 9), }",
                ))
            }),
            c,
        ),
        ("control_magic", with(&|b| b[CTRL_OFF] = b'X'), c),
        ("control_zeroed", with(&|b| b[CTRL_OFF..].fill(0)), c),
        ("version_zero", with(&|b| set_u32(b, CTRL_OFF + 8, 0)), c),
        (
            "version_newer",
            with(&|b| set_u32(b, CTRL_OFF + 8, 2)),
            ErrorKind::Unsupported,
        ),
        ("kind_unknown", with(&|b| set_u32(b, CTRL_OFF + 12, 9)), c),
        (
            "kind_ring_without_section",
            with(&|b| set_u32(b, CTRL_OFF + 12, 2)),
            c,
        ),
        (
            "ctrl_len_odd",
            with(&|b| set_u64(b, CTRL_OFF + 16, 12345)),
            c,
        ),
        (
            "ctrl_len_huge",
            with(&|b| set_u64(b, CTRL_OFF + 16, u64::MAX)),
            c,
        ),
        (
            "data_offset_wrong",
            with(&|b| set_u64(b, CTRL_OFF + 24, 8192)),
            c,
        ),
        (
            "data_len_wrong",
            with(&|b| set_u64(b, CTRL_OFF + 32, 404)),
            c,
        ),
        (
            "data_len_huge",
            with(&|b| set_u64(b, CTRL_OFF + 32, u64::MAX)),
            c,
        ),
        (
            "section_without_len",
            with(&|b| set_u64(b, CTRL_OFF + 40, 256)),
            c,
        ),
        (
            "section_outside",
            with(&|b| {
                set_u64(b, CTRL_OFF + 40, 256);
                set_u64(b, CTRL_OFF + 48, u64::MAX - 100);
            }),
            c,
        ),
        ("flags_set", with(&|b| set_u32(b, CTRL_OFF + 56, 1)), c),
        (
            "state_not_ready",
            with(&|b| set_u32(b, CTRL_OFF + 60, 0)),
            c,
        ),
    ]
}

/// Damage that opening tolerates (it never reads these bytes) but `check`
/// must report.
fn check_only(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let good = valid_bytes(dir);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    vec![
        ("padding_nonzero", with(&|b| b[4096 + 400 + 7] = 1)),
        ("reserved_nonzero", with(&|b| b[CTRL_OFF + 100] = 1)),
        ("reserved_after_counters", with(&|b| b[CTRL_OFF + 200] = 1)),
        ("unused_control_tail", with(&|b| b[CTRL_OFF + 3000] = 7)),
        (
            "header_not_canonical",
            with(&|b| {
                b[..4096].copy_from_slice(&header_with(
                    "{'shape': (10, 10), 'fortran_order': False, 'descr': '<f4'}",
                ))
            }),
        ),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(format!("{name}.npy"));
    std::fs::write(&p, bytes).unwrap();
    p
}

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
        let out = sharray_cli(&["check", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("FAIL"),
            "{name}"
        );
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
fn cli_exits_1_with_one_line_for_every_corrupted_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, _) in corrupted(dir.path()) {
        let p = write(dir.path(), name, &bytes);
        let ps = p.to_str().unwrap();
        let dst = dir.path().join(format!("{name}.out.npy"));
        let ds = dst.to_str().unwrap();
        for args in [
            vec!["info", ps],
            vec!["info", "--json", ps],
            vec!["show", ps],
            vec!["export", ps, ds],
            vec!["import", ps, ds],
            vec!["check", ps],
        ] {
            let out = sharray_cli(&args);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{name}: sharray {args:?} -> {:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(err.lines().count(), 1, "{name}: {args:?} stderr {err:?}");
            assert!(err.starts_with("sharray: "), "{err}");
            assert!(!dst.exists(), "{name}: {args:?} left {ds} behind");
        }
        let out = sharray_cli(&["check", ps]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("FAIL"),
            "{name}: check printed no failure"
        );
    }
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
