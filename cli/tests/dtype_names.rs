//! Every name `numpy.dtype()` accepts for a fixed-size type is accepted by
//! the CLI (through the core's `Dtype::parse_user`, which the Python package
//! shares) with numpy's meaning, checked against numpy itself; numpy's
//! refusals are refused; only the names numpy and Rust read differently
//! stay refused, with the reason.

#[path = "../../tests/common/mod.rs"]
mod common;

use sharray::Dtype;

/// Names to try: numpy's type names and aliases, its one-letter codes,
/// typestrs with and without a byte order, sized strings, and names
/// numpy 2 removed.
const NAMES: &[&str] = &[
    "float",
    "int",
    "double",
    "single",
    "half",
    "longlong",
    "ulonglong",
    "uint",
    "complex",
    "bool_",
    "bool",
    "byte",
    "ubyte",
    "short",
    "ushort",
    "intc",
    "uintc",
    "int_",
    "intp",
    "uintp",
    "long",
    "ulong",
    "longdouble",
    "clongdouble",
    "cdouble",
    "csingle",
    "float16",
    "float32",
    "float64",
    "float128",
    "complex64",
    "complex128",
    "complex256",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "?",
    "b",
    "B",
    "h",
    "H",
    "i",
    "I",
    "l",
    "L",
    "q",
    "Q",
    "p",
    "P",
    "e",
    "f",
    "d",
    "g",
    "F",
    "D",
    "G",
    "c",
    "S5",
    "U10",
    "V8",
    "b1",
    "i1",
    "u1",
    "i2",
    "u2",
    "i4",
    "u4",
    "f2",
    "f4",
    "f8",
    "c8",
    "c16",
    "=i4",
    "<f4",
    ">i8",
    "|u1",
    "<U3",
    ">U2",
    "|S7",
    "float_",
    "complex_",
    "longfloat",
    "unicode_",
    "string_",
    "bool8",
    "int0",
    "uint0",
    "cfloat",
    "singlecomplex",
    "Float64",
    "int 32",
];

/// numpy's own reading of each name: its `.str`, or None when it refuses
/// the name (or the name has no fixed size or holds objects).
fn numpy_readings() -> Vec<Option<String>> {
    let script = r#"
import sys, warnings, numpy
warnings.simplefilter("ignore")
for n in sys.argv[1:]:
    try:
        d = numpy.dtype(n)
        ok = d.itemsize > 0 and d.kind not in "OMm"
        print(d.str if ok else "-")
    except Exception:
        print("-")
"#;
    common::python(script, NAMES)
        .lines()
        .map(|l| (l != "-").then(|| l.to_string()))
        .collect()
}

#[test]
fn every_fixed_size_numpy_name_means_what_numpy_means() {
    if !common::python_numpy() {
        panic!("this test needs python3 with numpy (export PATH=/work/venv/bin:$PATH)");
    }
    let want = numpy_readings();
    assert_eq!(want.len(), NAMES.len());
    let mut wrong = Vec::new();
    for (name, want) in NAMES.iter().zip(&want) {
        let got = Dtype::parse_user(name);
        let ok = match (&got, want) {
            (Ok(d), Some(w)) => d.descr() == w,
            (Err(_), None) => true,
            _ => false,
        };
        if !ok {
            wrong.push(format!(
                "{name:?}: numpy {want:?}, sharray {:?}",
                got.map(|d| d.descr().to_string())
                    .map_err(|e| e.to_string())
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The names numpy and Rust read differently stay refused, saying why.
#[test]
fn ambiguous_names_are_refused_with_the_reason() {
    for (name, numpy) in [("i8", "int64"), ("u8", "uint64"), ("f16", "float128")] {
        let err = Dtype::parse_user(name).unwrap_err().to_string();
        assert!(
            err.contains("ambiguous") && err.contains(numpy),
            "{name}: {err}"
        );
    }
}

/// The CLI uses the same function: `float` makes a float64 array, `U10`
/// a `<U10` one.
#[test]
fn the_cli_takes_numpy_names() {
    let dir = tempfile::tempdir().unwrap();
    for (name, descr) in [
        ("float", "<f8"),
        ("longlong", "<i8"),
        ("U10", "<U10"),
        ("S5", "|S5"),
    ] {
        let p = dir.path().join(format!("{name}.npy"));
        let p = p.to_str().unwrap();
        let out = common::cli_run(&["create", p, "--dtype", name, "--shape", "2"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = common::cli_run(&["info", p, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["dtype"], descr, "{name}");
    }
    let x = dir.path().join("x.npy");
    let out = common::cli_run(&[
        "create",
        x.to_str().unwrap(),
        "--dtype",
        "i8",
        "--shape",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!x.exists());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ambiguous"));
}
