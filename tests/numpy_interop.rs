//! Interop with numpy in a real python3 process, both ways, for every
//! supported dtype (plus big-endian, Fortran order, structured, strings and
//! datetimes): the crate writes and numpy reads (`np.load`, also with
//! `mmap_mode="r+"`), numpy writes (`np.save`) and the crate reads, writes
//! through numpy's memmap and through our guards are seen live by the other
//! side. The CLI's import/export and `show` against numpy:
//! cli/tests/numpy_cli.rs.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use sharray::{Dtype, Order, SharedArray, UntypedArray};

/// (user dtype, descr numpy reports via `dtype.str` or `dtype.descr`).
const DTYPES: &[&str] = &[
    "|b1",
    "|i1",
    "|u1",
    "<i2",
    "<u2",
    "<i4",
    "<u4",
    "<i8",
    "<u8",
    "<f2",
    "<f4",
    "<f8",
    "<c8",
    "<c16",
    ">i2",
    ">i4",
    ">u8",
    ">f4",
    ">f8",
    ">c16",
    "|S5",
    "<U3",
    "|V6",
    "<M8[ns]",
    "<m8[s]",
    "[('x', '<i4'), ('y', '<f8'), ('tag', '|S3')]",
    "[('a', '>u2', (2,)), ('b', [('c', '|i1'), ('d', '<f4')])]",
];

/// The byte pattern both sides agree on: byte `i` of the data in memory
/// order. Bools get 0/1 only.
fn pattern(n: usize, seed: u8, bool_dtype: bool) -> Vec<u8> {
    (0..n)
        .map(|i| {
            if bool_dtype {
                ((i + seed as usize) % 2) as u8
            } else {
                ((i * 31 + seed as usize * 7) % 251) as u8
            }
        })
        .collect()
}

const PY_PATTERN: &str = r#"
import numpy as np, sys
def pattern(n, seed, is_bool):
    i = np.arange(n)
    return (((i + seed) % 2) if is_bool else ((i * 31 + seed * 7) % 251)).astype(np.uint8)
def raw(a):
    # The data bytes in memory order, as a writable uint8 view if possible.
    c = a if a.flags.c_contiguous else a.T
    return c.reshape(-1).view(np.uint8)
def descr(dt):
    return np.lib.format.dtype_to_descr(dt)
"#;

#[test]
fn crate_writes_numpy_reads_and_writes_back() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "{PY_PATTERN}
for p, want_descr, order, is_bool in zip(sys.argv[1::4], sys.argv[2::4], sys.argv[3::4], sys.argv[4::4]):
    is_bool = is_bool == '1'
    a = np.load(p)
    assert str(descr(a.dtype)) == want_descr, (p, descr(a.dtype), want_descr)
    assert a.shape == (3, 4), a.shape
    assert (order == 'F') == (a.flags.f_contiguous and not a.flags.c_contiguous), (p, a.flags)
    assert raw(a).tobytes() == pattern(a.nbytes, 1, is_bool).tobytes(), p
    m = np.load(p, mmap_mode='r+')
    raw(m)[:] = pattern(m.nbytes, 2, is_bool)
    m.flush()
    del m
print('ok')
"
    );
    let mut args = Vec::new();
    let mut made = Vec::new();
    for (k, d) in DTYPES.iter().enumerate() {
        let dtype = Dtype::parse_user(d).unwrap();
        let order = if k % 3 == 0 { Order::F } else { Order::C };
        let p = dir.path().join(format!("{k}.npy"));
        let a = UntypedArray::builder(dtype.clone())
            .shape(&[3, 4])
            .order(order)
            .create(&p)
            .unwrap();
        let is_bool = dtype.kind() == Some('b');
        a.write()
            .unwrap()
            .bytes_mut()
            .copy_from_slice(&pattern(a.nbytes(), 1, is_bool));
        args.extend([
            p.to_str().unwrap().to_string(),
            dtype.descr().to_string(),
            order.as_str().to_string(),
            if is_bool { "1" } else { "0" }.to_string(),
        ]);
        made.push((a, is_bool));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(common::python(&script, &argv).trim(), "ok");
    for (a, is_bool) in made {
        let r = a.read().unwrap();
        assert_eq!(
            r.bytes(),
            &pattern(a.nbytes(), 2, is_bool)[..],
            "{}",
            a.dtype()
        );
        drop(r);
        // numpy's writes through the memmap did not disturb the control block.
        assert!(sharray::check(a.path(), None).unwrap().is_empty());
    }
}

#[test]
fn numpy_writes_crate_reads_every_dtype() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "{PY_PATTERN}
out = []
for k, (p, d) in enumerate(zip(sys.argv[1::2], sys.argv[2::2])):
    dt = np.lib.format.descr_to_dtype(eval(d) if d.startswith('[') else d)
    is_bool = dt.kind == 'b'
    flat = np.frombuffer(pattern(12 * dt.itemsize, 3, is_bool).tobytes(), dtype=dt)
    a = flat.reshape(4, 3).T if k % 2 else flat.reshape(3, 4)
    np.save(p, a)
    print(descr(dt))
"
    );
    let mut args = Vec::new();
    for (k, d) in DTYPES.iter().enumerate() {
        args.push(
            dir.path()
                .join(format!("{k}.npy"))
                .to_str()
                .unwrap()
                .to_string(),
        );
        args.push(d.to_string());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let descrs = common::python(&script, &argv);
    for (k, (d, numpy_descr)) in DTYPES.iter().zip(descrs.lines()).enumerate() {
        let p = dir.path().join(format!("{k}.npy"));
        let want = Dtype::parse_user(d).unwrap();
        assert_eq!(want.descr(), numpy_descr, "canonical spelling of {d}");
        for read_only in [true, false] {
            let a = sharray::OpenOptions::new()
                .read_only(read_only)
                .open_untyped(&p)
                .unwrap();
            assert_eq!(a.dtype(), &want);
            assert_eq!(a.shape(), &[3, 4]);
            assert_eq!(a.order(), if k % 2 == 1 { Order::F } else { Order::C });
            assert_eq!(a.kind(), sharray::FileKind::Npy);
            let r = a.read().unwrap();
            let is_bool = want.kind() == Some('b');
            assert_eq!(r.bytes(), &pattern(a.nbytes(), 3, is_bool)[..], "{d}");
        }
        assert!(sharray::check(&p, None).unwrap().is_empty(), "{d}");
    }
}

#[test]
fn typed_views_match_numpy_indexing_in_both_orders() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // numpy writes a Fortran-ordered array; our view indexes it like numpy.
    let pf = dir.path().join("f.npy");
    common::python(
        "import numpy as np, sys; np.save(sys.argv[1], np.asfortranarray(np.arange(12.).reshape(3, 4)))",
        &[pf.to_str().unwrap()],
    );
    let a = SharedArray::<f64>::open(&pf).unwrap();
    assert_eq!(a.order(), Order::F);
    {
        let r = a.read().unwrap();
        let v = r.view();
        for i in 0..3 {
            for j in 0..4 {
                assert_eq!(v[[i, j]], (i * 4 + j) as f64);
            }
        }
    }
    // We write both orders through views; numpy reads the same values.
    for order in [Order::C, Order::F] {
        let p = dir.path().join(format!("ours_{}.npy", order.as_str()));
        let a = SharedArray::<i32>::builder()
            .shape(&[2, 3, 4])
            .order(order)
            .create(&p)
            .unwrap();
        {
            let mut w = a.write().unwrap();
            let mut v = w.view_mut();
            for ((i, j, k), x) in v
                .indexed_iter_mut()
                .map(|(ix, x)| ((ix[0], ix[1], ix[2]), x))
            {
                *x = (i * 100 + j * 10 + k) as i32;
            }
        }
        let out = common::python(
            "import numpy as np, sys
a = np.load(sys.argv[1])
i, j, k = np.indices(a.shape)
assert (a == i * 100 + j * 10 + k).all()
print('F' if a.flags.f_contiguous and not a.flags.c_contiguous else 'C')",
            &[p.to_str().unwrap()],
        );
        assert_eq!(out.trim(), order.as_str());
    }
    // Dtype mismatch names both dtypes.
    let e = SharedArray::<f32>::open(&pf).unwrap_err();
    assert_eq!(e.kind(), sharray::ErrorKind::DtypeMismatch);
    assert!(
        e.to_string().contains("<f8") && e.to_string().contains("<f4"),
        "{e}"
    );
}

#[test]
fn live_writes_are_seen_both_ways() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("live.npy");
    let a = SharedArray::<f32>::create(&p, &[64, 64]).unwrap();
    // python maps the file, then waits for us to write, checks, writes back.
    let script = r#"
import fcntl, numpy as np, sys
m = np.load(sys.argv[1], mmap_mode="r+")
print("mapped", flush=True)
sys.stdin.readline()
with open(sys.argv[1], "rb") as f:
    fcntl.flock(f.fileno(), fcntl.LOCK_SH)
    assert (m == 7.5).all(), m[:2, :4]
    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    m[:] = -1.25
    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
print("written", flush=True)
"#;
    let mut py = Command::new("python3")
        .args(["-c", script, p.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "mapped");
    a.write().unwrap().iter_mut().for_each(|x| *x = 7.5);
    writeln!(py.stdin.as_mut().unwrap()).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "written");
    assert!(common::wait_with_watchdog(&mut py, Duration::from_secs(60)).success());
    assert!(a.read().unwrap().iter().all(|&x| x == -1.25));
}

#[test]
fn plain_npy_read_write_then_import_and_export_round_trip() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("np.npy");
    common::python(
        "import numpy as np, sys; np.save(sys.argv[1], np.arange(10, dtype=np.int64))",
        &[src.to_str().unwrap()],
    );
    // Read-write through our guards on numpy's own file.
    let a = SharedArray::<i64>::open(&src).unwrap();
    a.write().unwrap()[9] = -9;
    assert_eq!(a.generation(), 0, "a plain .npy has no generation counter");
    let e = a.wait_changed(0, Duration::from_millis(10)).unwrap_err();
    assert_eq!(e.kind(), sharray::ErrorKind::Unsupported);
    let got = common::python(
        "import numpy as np, sys; print(np.load(sys.argv[1])[-1])",
        &[src.to_str().unwrap()],
    );
    assert_eq!(got.trim(), "-9");
    // Import: a full sharray file with the same contents.
    let imported = dir.path().join("imported.npy");
    let b = sharray::import_npy(&src, &imported, 0o600, &mut |_, _| {}).unwrap();
    assert_eq!(b.kind(), sharray::FileKind::Array);
    assert_eq!(b.generation(), 1);
    let b = b.typed::<i64>().unwrap();
    assert_eq!(&b.read().unwrap()[..], &[0, 1, 2, 3, 4, 5, 6, 7, 8, -9]);
    // Export: numpy's own bytes back.
    let exported = dir.path().join("exported.npy");
    sharray::export_npy(&imported, &exported, 0o600, &mut |_, _| {}).unwrap();
    assert_eq!(
        std::fs::read(&exported).unwrap(),
        std::fs::read(&src).unwrap()
    );
}

/// The Python peer in FORMAT.md (section 3, "Generation counter"), run as
/// written: its write under `flock` is seen, and its futex wake ends our
/// `wait_changed` (which would otherwise time out and fail the test).
#[test]
fn format_md_python_peer_bumps_the_generation_and_wakes_waiters() {
    if !common::python_numpy() {
        return;
    }
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/FORMAT.md")).unwrap();
    let start = doc.find("A Python peer that changes data").unwrap();
    let code_start = doc[start..].find("```python\n").unwrap() + start + 10;
    let code_end = doc[code_start..].find("```").unwrap() + code_start;
    let snippet = &doc[code_start..code_end];
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("peer.npy");
    let a = SharedArray::<u16>::create(&p, &[100, 7]).unwrap();
    let g0 = a.generation();
    let script =
        format!("{snippet}\nimport sys\nwrite_and_bump(sys.argv[1], lambda a: a.fill(321))\n");
    let path = p.to_str().unwrap().to_string();
    common::with_watchdog(Duration::from_secs(120), || {
        std::thread::scope(|s| {
            let waiter = s.spawn(|| a.wait_changed(g0, Duration::from_secs(60)));
            // Give the waiter time to park and register (not needed for
            // correctness: an early change is seen without parking).
            std::thread::sleep(Duration::from_millis(200));
            common::python(&script, &[&path]);
            assert_eq!(waiter.join().unwrap().unwrap(), g0 + 1);
        });
    });
    assert!(a.read().unwrap().iter().all(|&x| x == 321));
    assert!(sharray::check(&p, None).unwrap().is_empty());
}

/// The fixed-size arrays of numpy's own `lib/tests/test_format.py`, ported
/// (`basic_arrays`, `record_arrays`, the padded dtypes of
/// `test_load_padded_dtype`, the dtypes of `test_descr_to_dtype`), plus the
/// field names `np.save` writes in Latin-1 (version 1.0) and in UTF-8
/// (version 3.0). Each `np.save` file is opened and checked as it is, then
/// imported, opened, checked and exported back byte-exact; numpy loads the
/// imported file equal to the original. (A version 3.0 file cannot be
/// imported: a sharray file's header is version 1.0; that is refused.)
const NUMPY_TEST_FORMAT_CASES: &str = r#"
import sys, warnings
import numpy as np
out = sys.argv[1]
scalars = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64,
           np.int64, np.float32, np.float64, np.complex64, np.complex128]
arrays = []
for scalar in scalars:
    for endian in '<>':
        dtype = np.dtype(scalar).newbyteorder(endian)
        basic = np.arange(1500).astype(dtype)
        arrays.extend([np.array([], dtype=dtype), np.array(10, dtype=dtype), basic,
                       basic.reshape((30, 50)), basic.reshape((30, 50)).T,
                       basic.reshape((30, 50))[::-1, ::2]])
Pdescr = [('x', 'i4', (2,)), ('y', 'f8', (2, 2)), ('z', 'u1')]
PbufferT = [([3, 2], [[6., 4.], [6., 4.]], 8), ([4, 3], [[7., 5.], [7., 5.]], 9)]
Ndescr = [('x', 'i4', (2,)),
          ('Info', [('value', 'c16'), ('y2', 'f8'),
                    ('Info2', [('name', 'S2'), ('value', 'c16', (2,)), ('y3', 'f8', (2,)),
                               ('z3', 'u4', (2,))]),
                    ('name', 'S2'), ('z2', 'b1')]),
          ('color', 'S2'), ('info', [('Name', 'U8'), ('Value', 'c16')]),
          ('y', 'f8', (2, 2)), ('z', 'u1')]
NbufferT = [([3, 2], (6j, 6., ('nn', [6j, 4j], [6., 4.], [1, 2]), 'NN', True),
             'cc', ('NN', 6j), [[6., 4.], [6., 4.]], 8),
            ([4, 3], (7j, 7., ('oo', [7j, 5j], [7., 5.], [2, 1]), 'OO', False),
             'dd', ('OO', 7j), [[7., 5.], [7., 5.]], 9)]
arrays += [np.array(PbufferT, dtype=np.dtype(Pdescr).newbyteorder('<')),
           np.array(NbufferT, dtype=np.dtype(Ndescr).newbyteorder('<')),
           np.array(PbufferT, dtype=np.dtype(Pdescr).newbyteorder('>')),
           np.array(NbufferT, dtype=np.dtype(Ndescr).newbyteorder('>')),
           np.zeros(1, dtype=[('c', ('<f8', (5,)), (2,))])]
# test_load_padded_dtype (dt6 has no fields: not a fixed-size array of data)
padded = [np.dtype('i1, i4, i1', align=True),
          np.dtype({'names': ['a', 'b'], 'formats': ['i4', 'i4'], 'offsets': [1, 6]}),
          np.dtype({'names': ['c', 'd'], 'formats': ['i4', np.dtype(
              {'names': ['a', 'b'], 'formats': ['i4', 'i4'], 'offsets': [1, 6]})]}),
          np.dtype({'names': ['a', '', 'b'], 'formats': ['i4'] * 3}),
          np.dtype({'names': ['a', 'b'], 'formats': ['i4', 'i4'], 'offsets': [1, 6],
                    'titles': ['aa', 'bb']})]
for dt in padded:
    a = np.zeros(3, dt)
    for i in range(3):
        a[i] = i + 5
    arrays.append(a)
# test_descr_to_dtype
s8 = np.dtype({'names': ['a', 'b'], 'formats': ['i1', 'i1'], 'offsets': [0, 4], 'itemsize': 8})
for dt in [np.dtype([('a', np.int8), ('b', np.int16), ('c', np.int32)], align=True),
           np.dtype([('x', np.dtype((s8, (3,))), (4,))]),
           np.dtype([('x', ('<f8', (5,)), (2,))]),
           np.dtype([('x', np.dtype((np.dtype((s8, (3,))), (4,))))]),
           np.dtype([('a', np.dtype((np.dtype((np.dtype((np.dtype(
               [('a', int), ('b', s8)]), (3,))), (4,))), (5,))))])]:
    assert np.lib.format.descr_to_dtype(dt.descr) == dt
    a = np.zeros(3, dt)
    a.view(np.uint8)[:] = np.arange(a.nbytes) % 251
    arrays.append(a)
# Field names np.save writes in Latin-1 (1.0) and, beyond Latin-1, UTF-8 (3.0).
for dt in [[('\xe9t\xe9', '<i4'), ('\xff', '>f8')], [('\u0416', '<i2')]]:
    a = np.zeros(4, dt)
    a.view(np.uint8)[:] = np.arange(a.nbytes) % 251
    arrays.append(a)
with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    for k, a in enumerate(arrays):
        np.save(f'{out}/{k}.npy', a)
print(len(arrays))
"#;

#[test]
fn numpy_test_format_arrays_round_trip_byte_exact() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let n: usize = common::python(NUMPY_TEST_FORMAT_CASES, &[dir.path().to_str().unwrap()])
        .trim()
        .parse()
        .unwrap();
    assert!(n > 150, "{n} cases");
    for k in 0..n {
        let src = dir.path().join(format!("{k}.npy"));
        let what = format!(
            "case {k}: {}",
            sharray::inspect(&src)
                .map(|i| i.dtype.descr().to_string())
                .unwrap_or_else(|e| e.to_string())
        );
        let plain = UntypedArray::open(&src).unwrap_or_else(|e| panic!("{what}: {e}"));
        drop(plain);
        assert!(sharray::check(&src, None).unwrap().is_empty(), "{what}");
        let imported = dir.path().join(format!("{k}.imported.npy"));
        let a = sharray::import_npy(&src, &imported, 0o600, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{what}: import: {e}"));
        drop(a);
        let a = UntypedArray::open(&imported).unwrap_or_else(|e| panic!("{what}: {e}"));
        drop(a);
        assert!(
            sharray::check(&imported, None).unwrap().is_empty(),
            "{what}"
        );
        let exported = dir.path().join(format!("{k}.exported.npy"));
        sharray::export_npy(&imported, &exported, 0o600, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{what}: export: {e}"));
        assert!(
            std::fs::read(&exported).unwrap() == std::fs::read(&src).unwrap(),
            "{what}: the export is not np.save's bytes"
        );
    }
    let bad = common::python(
        "import os, sys, numpy as np
d = sys.argv[1]
for k in range(int(sys.argv[2])):
    a, b = np.load(f'{d}/{k}.npy'), np.load(f'{d}/{k}.imported.npy')
    if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
        print(k, a.dtype, b.dtype)",
        &[dir.path().to_str().unwrap(), &n.to_string()],
    );
    assert!(
        bad.trim().is_empty(),
        "numpy loads these imports differently:\n{bad}"
    );
}
