//! `sharray import --raw`, `sharray advise` and `sharray prefault`, against
//! files numpy writes and reads in a real python3 process.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::{cli_fails as fails, cli_ok as ok};

#[test]
fn import_raw_from_numpy_memmap_keeps_layout_and_values() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    common::python(
        r#"
import numpy as np, sys
with open(sys.argv[1], "wb") as f:
    f.write(b"\0" * 100)
m = np.memmap(sys.argv[1], dtype=">f8", mode="r+", shape=(4, 3), order="F", offset=100)
m[...] = np.arange(12).reshape(4, 3) * 1.5
m.flush()
"#,
        &[&p("data.dat")],
    );
    ok(&[
        "import",
        "--raw",
        "--dtype",
        ">f8",
        "--shape",
        "4,3",
        "--offset",
        "100",
        "--order",
        "f",
        &p("data.dat"),
        &p("data.npy"),
    ]);
    let got = common::python(
        r#"
import numpy as np, sys
a = np.load(sys.argv[1], mmap_mode="r")
assert a.dtype.str == ">f8" and a.shape == (4, 3) and a.flags.f_contiguous, (a.dtype, a.shape)
assert (a == np.arange(12).reshape(4, 3) * 1.5).all(), a
print("ok")
"#,
        &[&p("data.npy")],
    );
    assert_eq!(got.trim(), "ok");
    // A wrong shape says what the file holds, on one line.
    let err = fails(
        &[
            "import",
            "--raw",
            "--dtype",
            ">f8",
            "--shape",
            "5,3",
            "--offset",
            "100",
            &p("data.dat"),
            &p("other.npy"),
        ],
        1,
    );
    assert!(
        err.contains("needs 220 (100 bytes of offset + 120 of data); the file holds 12 >f8 values, e.g. shape (4, 3)"),
        "{err}"
    );
    assert!(!dir.path().join("other.npy").exists());
    // show reads a raw file the same way.
    let out = ok(&[
        "show",
        "--raw",
        "--dtype",
        ">f8",
        "--shape",
        "4,3",
        "--offset",
        "100",
        "--order",
        "F",
        &p("data.dat"),
    ]);
    assert!(out.contains("16.5"), "{out}");
    // --dtype without --raw is a usage error.
    fails(&["import", "--dtype", "f8", &p("data.dat"), &p("x.npy")], 2);
    fails(
        &[
            "import",
            "--raw",
            "--dtype",
            "f8",
            &p("data.dat"),
            &p("x.npy"),
        ],
        2,
    );
}

#[test]
fn advise_and_prefault_report_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.npy").to_str().unwrap().to_string();
    ok(&["create", &a, "--dtype", "f4", "--shape", "1000,256"]);
    let out = ok(&["advise", &a, "willneed", "--range", "0:1024"]);
    assert_eq!(out.trim(), "reading in 4.0 KiB");
    let out = ok(&["advise", &a, "dontneed"]);
    assert!(out.starts_with("evicted 1000.0 KiB"), "{out}");
    let out = ok(&["advise", &a, "hugepage"]);
    assert!(out.starts_with("huge pages: "), "{out}");
    let out = ok(&["prefault", &a, "--range", "256:"]);
    assert!(out.starts_with("prefaulted 999.0 KiB for reading"), "{out}");
    let out = ok(&["prefault", &a, "--write"]);
    assert!(
        out.starts_with("prefaulted 1000.0 KiB for writing"),
        "{out}"
    );
    let err = fails(&["advise", &a, "dontneed", "--range", "0:256001"], 1);
    assert!(err.contains("outside the array's 256000 elements"), "{err}");
    fails(&["advise", &a, "sequential"], 2);
    // Rings take willneed and hugepage as a whole.
    let ring = dir.path().join("r.npy").to_str().unwrap().to_string();
    ok(&[
        "ring",
        "create",
        &ring,
        "--dtype",
        "u1",
        "--frame-shape",
        "4096",
        "--slots",
        "4",
    ]);
    assert_eq!(
        ok(&["advise", &ring, "willneed"]).trim(),
        "reading in 16.0 KiB"
    );
    assert!(ok(&["advise", &ring, "hugepage"]).starts_with("huge pages: "));
    let err = fails(&["advise", &ring, "dontneed"], 1);
    assert!(err.contains("evicting works on arrays"), "{err}");
    fails(&["prefault", &a, "--range", "9:3"], 2);
}
