//! Hand-corrupted array files, shared by the library's `tests/corrupt_files.rs`
//! and the CLI's `cli/tests/corrupt_files_cli.rs`.

use std::path::{Path, PathBuf};

use sharray::{ErrorKind, SharedArray};

/// Offset of the control block in the 10x10 `<f4` file of [`valid_bytes`].
pub const CTRL_OFF: usize = 65536;

/// The bytes of a valid 10x10 `<f4` sharray file.
pub fn valid_bytes(dir: &Path) -> Vec<u8> {
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
pub fn header_with(dict: &str) -> Vec<u8> {
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&4086u16.to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(4095, b' ');
    h.push(b'\n');
    h
}

pub fn set_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn set_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// (name, bytes, the error kind opening must give).
pub fn corrupted(dir: &Path) -> Vec<(&'static str, Vec<u8>, ErrorKind)> {
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
pub fn check_only(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
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

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(format!("{name}.npy"));
    std::fs::write(&p, bytes).unwrap();
    p
}
