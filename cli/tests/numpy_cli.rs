//! The CLI against numpy in a real python3 process: `import`/`export` round
//! trips are byte-exact, and `show` prints what numpy's `str()` prints.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;

use common::cli;

#[test]
fn cli_import_export_round_trip_is_byte_exact() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import numpy as np, sys
d = sys.argv[1]
rng = np.random.default_rng(5)
arrays = {
    "f4": rng.standard_normal((33, 17)).astype("<f4"),
    "f8_fortran": np.asfortranarray(rng.standard_normal((5, 6, 7))),
    "i2_big": np.arange(-50, 50, dtype=">i2").reshape(10, 10),
    "c16": (rng.standard_normal(9) + 1j * rng.standard_normal(9)),
    "bool": rng.standard_normal(31) > 0,
    "u1_0d": np.array(7, dtype=np.uint8),
    "empty": np.zeros((0, 4), dtype="<f4"),
    "structured": np.array([(1, 2.5, b"ab"), (3, -1.0, b"xyz")], dtype=[("n", "<i4"), ("v", "<f8"), ("s", "S3")]),
    "unicode": np.array(["hé", "wörld"], dtype="<U5"),
    "big_1mib": rng.integers(0, 255, size=(1024, 1024), dtype=np.uint8),
    # numpy's own lib/tests/test_format.py: a sub-array of a sub-array, a
    # field named '' that is not padding; and Latin-1 names (version 1.0).
    "subarray_of_subarray": np.arange(40.0).view([("c", ("<f8", (5,)), (2,))]),
    "empty_name": np.arange(9, dtype="<i4").view(np.dtype({"names": ["a", "", "b"], "formats": ["i4"] * 3})),
    "latin1_names": np.zeros(3, dtype=[("\xe9t\xe9", "<i4"), ("\xff", ">f8")]),
}
for name, a in arrays.items():
    np.save(f"{d}/{name}.npy", a)
print(" ".join(arrays))
"#;
    let names = common::python(script, &[dir.path().to_str().unwrap()]);
    for name in names.split_whitespace() {
        let src = dir.path().join(format!("{name}.npy"));
        let mid = dir.path().join(format!("{name}.sharray"));
        let back = dir.path().join(format!("{name}.back.npy"));
        let run = |args: &[&Path]| {
            let out = cli()
                .args(args.iter().map(|p| p.as_os_str()))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        run(&[Path::new("import"), &src, &mid]);
        assert!(run(&[Path::new("check"), &mid]).starts_with("ok"));
        run(&[Path::new("export"), &mid, &back]);
        assert_eq!(
            std::fs::read(&back).unwrap(),
            std::fs::read(&src).unwrap(),
            "{name}: export is not byte-identical to numpy's file"
        );
        // numpy reads the sharray file itself identically.
        let same = common::python(
            "import numpy as np, sys
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
print(a.dtype == b.dtype and a.shape == b.shape and a.tobytes('A') == b.tobytes('A') and a.flags.f_contiguous == b.flags.f_contiguous)",
            &[src.to_str().unwrap(), mid.to_str().unwrap()],
        );
        assert_eq!(same.trim(), "True", "{name}");
    }
}

#[test]
fn show_prints_like_numpy() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import numpy as np, sys
d = sys.argv[1]
arrays = {
    "ints": np.arange(12, dtype=np.int32).reshape(3, 4),
    "ints_f": np.asfortranarray(np.arange(-12, 12, dtype=np.int64).reshape(4, 6)),
    "big_ints": np.arange(10000, dtype="<i8"),
    "big_2d": np.arange(200 * 300, dtype=np.uint16).reshape(200, 300),
    "big_3d": np.arange(20 * 30 * 40, dtype=np.int32).reshape(20, 30, 40),
    "wide": np.arange(100, dtype=np.int64) * 1000,
    "bools": np.array([[True, False], [False, True]]),
    "floats": np.array([0.5, 1.0, 2.25, -3.0], dtype=np.float64),
    "floats32": np.array([0.1, 0.2, 1e-3], dtype=np.float32),
    "float_exp": np.array([1e20, 1.0, 3.5e-7]),
    "float_big_endian": np.array([1.5, -2.0, 3.25], dtype=">f8"),
    "float16": np.array([0.5, 1.5, 65504.0], dtype=np.float16),
    "nan_inf": np.array([np.nan, 1.0, -np.inf]),
    "complex": np.array([1 + 2j, -0.5 - 1j]),
    "int_big_endian": np.arange(6, dtype=">u4").reshape(2, 3),
    "scalar": np.array(3.5),
    "bytes": np.array([b"ab", b"xyz"]),
    "unicode": np.array(["ab", "xyz"]),
    "dates": np.array(["2024-01-01", "1999-12-31"], dtype="M8[D]"),
}
for name, a in arrays.items():
    np.save(f"{d}/{name}.npy", a)
    with open(f"{d}/{name}.txt", "w") as f:
        f.write(str(a))
print(" ".join(arrays))
"#;
    let names = common::python(script, &[dir.path().to_str().unwrap()]);
    let mut mismatches = Vec::new();
    for name in names.split_whitespace() {
        let p = dir.path().join(format!("{name}.npy"));
        let want = std::fs::read_to_string(dir.path().join(format!("{name}.txt"))).unwrap();
        let out = cli().args(["show", p.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success(), "{name}");
        let got = String::from_utf8_lossy(&out.stdout);
        if got.trim_end() != want.trim_end() {
            mismatches.push(format!("{name}:\n--- numpy\n{want}\n--- sharray\n{got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
