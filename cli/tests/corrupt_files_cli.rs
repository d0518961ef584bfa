//! Hand-corrupted files through the CLI: exit code 1 with one line on
//! stderr for every command, and `sharray check` reports FAIL. The same
//! files through the library: `tests/corrupt_files.rs`.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::cli_run as sharray_cli;
use common::corrupt::{check_only, corrupted, write};

#[test]
fn cli_check_fails_on_damage_that_open_tolerates() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in check_only(dir.path()) {
        let p = write(dir.path(), name, &bytes);
        let out = sharray_cli(&["check", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("FAIL"),
            "{name}"
        );
    }
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
