//! The `sharray` command line: create (dtypes, shapes, fills, orders,
//! modes), info (text and JSON), check, show, and the exit codes (0 success,
//! 1 error, 2 usage, 3 timeout) with one line on stderr for errors.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::cli_fails as fails;

use std::process::Output;

use sharray::{Dtype, Order, UntypedArray};

fn sharray(args: &[&str]) -> Output {
    common::cli_run(args)
}

/// Run `sharray`, which must succeed and print nothing on stderr; its stdout.
fn ok(args: &[&str]) -> String {
    let out = sharray(args);
    assert!(
        out.status.success(),
        "sharray {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn create_with_every_spelling_and_fill() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    // (dtype as typed, descr expected, fill, element bytes expected)
    let cases: &[(&str, &str, &str, &[u8])] = &[
        ("f32", "<f4", "1.5", &[0, 0, 0xc0, 0x3f]),
        ("float32", "<f4", "-0", &[0, 0, 0, 0x80]),
        ("<f4", "<f4", "inf", &[0, 0, 0x80, 0x7f]),
        (">i4", ">i4", "-2", &[0xff, 0xff, 0xff, 0xfe]),
        ("|u1", "|u1", "255", &[255]),
        ("uint16", "<u2", "513", &[1, 2]),
        ("bool", "|b1", "true", &[1]),
        ("b1", "|b1", "0", &[0]),
        ("int8", "|i1", "-128", &[0x80]),
        ("int64", "<i8", "1_000", &1000i64.to_le_bytes()),
        (">f8", ">f8", "2", &2f64.to_be_bytes()),
        ("float16", "<f2", "-2", &[0x00, 0xc0]),
        (
            "complex64",
            "<c8",
            "1+2j",
            &[0, 0, 0x80, 0x3f, 0, 0, 0, 0x40],
        ),
        (">c8", ">c8", "-1j", &[0, 0, 0, 0, 0xbf, 0x80, 0, 0]),
        (
            "c128",
            "<c16",
            "(0.5-0j)",
            &[0, 0, 0, 0, 0, 0, 0xe0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0x80],
        ),
    ];
    for (k, (dtype, descr, fill, elem)) in cases.iter().enumerate() {
        let path = p(&format!("{k}.npy"));
        ok(&[
            "create", &path, "--dtype", dtype, "--shape", "2,3", "--fill", fill,
        ]);
        let a = UntypedArray::open(&path).unwrap();
        assert_eq!(a.dtype().descr(), *descr, "{dtype}");
        assert_eq!(a.shape(), &[2, 3]);
        let r = a.read().unwrap();
        for chunk in r.bytes().chunks(elem.len()) {
            assert_eq!(chunk, *elem, "{dtype} --fill {fill}");
        }
    }
    // Orders, 0-d, 1-d, zeros by default, structured and string dtypes.
    ok(&[
        "create",
        &p("f.npy"),
        "--dtype",
        "u2",
        "--shape",
        "4,5,6",
        "--order",
        "F",
    ]);
    let f = UntypedArray::open(p("f.npy")).unwrap();
    assert_eq!(f.order(), Order::F);
    assert!(f.read().unwrap().bytes().iter().all(|&b| b == 0));
    ok(&[
        "create",
        &p("scalar.npy"),
        "--dtype",
        "f8",
        "--shape",
        "",
        "--fill",
        "3",
    ]);
    assert_eq!(ok(&["show", &p("scalar.npy")]).trim(), "3.0");
    ok(&[
        "create",
        &p("s.npy"),
        "--dtype",
        "[('a', '<i4'), ('b', '|S2')]",
        "--shape",
        "3",
    ]);
    ok(&["create", &p("u.npy"), "--dtype", "<U4", "--shape", "2"]);
    assert_eq!(ok(&["show", &p("u.npy")]).trim(), "['' '']");
    // Errors: one line, exit 1.
    let e = fails(
        &["create", &p("x.npy"), "--dtype", "floaty", "--shape", "2"],
        1,
    );
    assert!(e.contains("dtype"), "{e}");
    let e = fails(
        &[
            "create",
            &p("x.npy"),
            "--dtype",
            "u1",
            "--shape",
            "2",
            "--fill",
            "256",
        ],
        1,
    );
    assert!(e.contains("uint8"), "{e}");
    let e = fails(
        &[
            "create",
            &p("x.npy"),
            "--dtype",
            "bool",
            "--shape",
            "2",
            "--fill",
            "yes",
        ],
        1,
    );
    assert!(e.contains("bool"), "{e}");
    let e = fails(
        &[
            "create",
            &p("x.npy"),
            "--dtype",
            "[('a', '<i4')]",
            "--shape",
            "2",
            "--fill",
            "1",
        ],
        1,
    );
    assert!(e.contains("structured"), "{e}");
    let e = fails(
        &[
            "create",
            &p("x.npy"),
            "--dtype",
            "|S4",
            "--shape",
            "2",
            "--fill",
            "ab",
        ],
        1,
    );
    assert!(e.contains("not supported"), "{e}");
    let e = fails(
        &[
            "create",
            &p("x.npy"),
            "--dtype",
            "uint8",
            "--shape",
            "4611686018427387904,8",
        ],
        1,
    );
    assert!(e.contains("too large"), "{e}");
    assert!(!dir.path().join("x.npy").exists());
    // Usage errors: exit 2.
    fails(
        &["create", &p("x.npy"), "--dtype", "u1", "--shape", "2,-1"],
        2,
    );
    fails(
        &[
            "create",
            &p("x.npy"),
            "--dtype",
            "u1",
            "--shape",
            "2",
            "--mode",
            "999",
        ],
        2,
    );
    fails(
        &[
            "create",
            &p("x.npy"),
            "--dtype",
            "u1",
            "--shape",
            "2",
            "--order",
            "X",
        ],
        2,
    );
    fails(&["show", &p("f.npy"), "--lock-timeout", "soon"], 2);
    fails(&["frobnicate"], 2);
}

#[test]
fn info_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let a = UntypedArray::builder(Dtype::parse_user(">f8").unwrap())
        .shape(&[3, 5])
        .order(Order::F)
        .create(&path)
        .unwrap();
    a.write().unwrap().bytes_mut()[0] = 1;
    let ps = path.to_str().unwrap();
    let text = ok(&["info", ps]);
    for want in [
        "kind:           array",
        ">f8 (float64, big-endian)",
        "(3, 5)",
        "order:          F",
        "generation:     1",
    ] {
        assert!(text.contains(want), "{want:?} missing in\n{text}");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&["info", "--json", ps])).unwrap();
    assert_eq!(json["kind"], "array");
    assert_eq!(json["dtype"], ">f8");
    assert_eq!(json["shape"], serde_json::json!([3, 5]));
    assert_eq!(json["order"], "F");
    assert_eq!(json["data_offset"], 4096);
    assert_eq!(json["nbytes"], 120);
    assert_eq!(json["file_len"], 65536 + 4096);
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["generation"], 1);
    // A plain .npy: kind "npy", format_version null.
    let npy = dir.path().join("plain.npy");
    sharray::export_npy(&path, &npy, 0o600, &mut |_, _| {}).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["info", "--json", npy.to_str().unwrap()])).unwrap();
    assert_eq!(json["kind"], "npy");
    assert_eq!(json["format_version"], serde_json::Value::Null);
    assert_eq!(json["data_offset"], 128);
    assert_eq!(json["generation"], 0);
    assert!(ok(&["check", npy.to_str().unwrap()]).contains("plain .npy"));
    // info takes no lock: it answers while a writer holds the array.
    let _w = a.write().unwrap();
    assert!(ok(&["info", ps]).contains("kind"));
    // Missing files: exit 1, one line.
    let e = fails(&["info", dir.path().join("nope.npy").to_str().unwrap()], 1);
    assert!(e.contains("no such file"), "{e}");
}

#[test]
fn show_summarises_big_arrays_and_handles_every_simple_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    ok(&[
        "create",
        &p("big.npy"),
        "--dtype",
        "i4",
        "--shape",
        "1000,1000",
        "--fill",
        "7",
    ]);
    let out = ok(&["show", &p("big.npy")]);
    assert_eq!(out.lines().count(), 7, "{out}");
    assert!(out.contains("..."));
    let out = ok(&["show", &p("big.npy"), "--max", "2000000"]);
    assert!(!out.contains("..."));
    for dtype in [
        "b1",
        "i1",
        "u1",
        "<i2",
        ">i2",
        "<u4",
        ">u8",
        "<f2",
        ">f4",
        "<f8",
        "<f16",
        "<c8",
        ">c16",
        "<c32",
        "|S3",
        ">U2",
        "|V2",
        "<M8[s]",
        ">m8[ms]",
        "[('a', '>i4'), ('b', '|u1', (2,))]",
    ] {
        let path = p(&format!(
            "d{}.npy",
            dtype.len() * 1000 + dtype.as_bytes()[1] as usize
        ));
        let _ = std::fs::remove_file(&path);
        ok(&["create", &path, "--dtype", dtype, "--shape", "2,2"]);
        let out = sharray(&["show", &path]);
        assert!(out.status.success(), "{dtype}");
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("[["),
            "{dtype}"
        );
    }
}
