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
