//! Growable arrays with real processes: 4 appenders (some SIGKILLed, at
//! random instants and at named steps) and 2 readers at once; a dead
//! appender's reservation rolled back while a later one waits; numpy reading
//! the file in a loop while Rust appends (the header rewritten in place is
//! never seen ahead of the published rows); `check` on the result.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Lines, finish, sigkill, spawn_child, spawn_child_env, wait_with_watchdog};
use sharray::{Dtype, ErrorKind, GrowableArray, SharedArray};

const COLS: usize = 4;
const LIMIT: Duration = Duration::from_secs(120);

/// The self-checking row `seq` of appender `id`: any torn, unwritten
/// (zero) or misplaced row fails [`row_ok`].
fn row(id: u64, seq: u64) -> [u64; COLS] {
    let h = (id << 40 | seq)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17)
        | 1;
    [id, seq, h, !h]
}

fn row_ok(r: &[u64]) -> bool {
    r == row(r[0], r[1])
}

fn create(path: &Path, capacity: u64) -> GrowableArray {
    GrowableArray::builder(Dtype::parse_user("<u8").unwrap())
        .row_shape(&[COLS])
        .capacity(capacity)
        .create(path)
        .unwrap()
}

#[test]
fn child_entry() {
    common::child_entry(|role, arg| {
        let a: Vec<&str> = arg.split(',').collect();
        match role {
            // path,id,batches,batch_rows: append and report each batch
            "appender" => {
                let g = GrowableArray::open(a[0]).unwrap();
                let id: u64 = a[1].parse().unwrap();
                let batches: u64 = a[2].parse().unwrap();
                let per: u64 = a[3].parse().unwrap();
                println!("ready");
                for b in 0..batches {
                    let rows: Vec<u64> = (0..per).flat_map(|k| row(id, b * per + k)).collect();
                    let at = g.append(&rows).unwrap();
                    println!("appended {id} {} {per} {at}", b * per);
                }
                println!("done");
            }
            // path,target: follow the array until it has `target` rows or
            // every appender is gone (the parent closes us), checking every
            // published row each time
            "reader" => {
                let g = GrowableArray::open_read_only(a[0]).unwrap();
                let target: u64 = a[1].parse().unwrap();
                let mut gen_seen = g.generation();
                let mut checks = 0u64;
                let deadline = Instant::now() + LIMIT;
                loop {
                    {
                        let v = g.read().unwrap();
                        let rows = v.as_slice::<u64>().unwrap();
                        let mut seen = HashSet::new();
                        for r in rows.chunks_exact(COLS) {
                            assert!(row_ok(r), "reader saw a torn or unwritten row {r:?}");
                            assert!(seen.insert((r[0], r[1])), "row {r:?} twice");
                        }
                        checks += 1;
                        if v.rows() >= target {
                            break;
                        }
                    }
                    assert!(Instant::now() < deadline, "reader: no progress");
                    if let Ok(n) = g.wait_changed(gen_seen, Duration::from_millis(100)) {
                        gen_seen = n;
                    }
                }
                println!("reader ok {checks}");
            }
            _ => panic!("unknown role {role}"),
        }
    });
}

fn appended(lines: &mut Lines) -> Vec<(u64, u64, u64, u64)> {
    lines
        .rest()
        .iter()
        .filter_map(|l| {
            let v: Vec<u64> = l
                .strip_prefix("appended ")?
                .split(' ')
                .map(|x| x.parse().unwrap())
                .collect();
            Some((v[0], v[1], v[2], v[3]))
        })
        .collect()
}

/// Every published row intact and present once; the rows of one append
/// contiguous, at the index `append` returned; every append that returned
/// is there; a killed appender's batches are there whole or not at all.
fn verify(path: &Path, reported: &[(u64, u64, u64, u64)]) -> usize {
    let g = GrowableArray::open_read_only(path).unwrap();
    let v = g.read().unwrap();
    let rows = v.as_slice::<u64>().unwrap();
    let mut at: HashMap<(u64, u64), usize> = HashMap::new();
    for (i, r) in rows.chunks_exact(COLS).enumerate() {
        assert!(row_ok(r), "row {i} is torn or unwritten: {r:?}");
        assert!(
            at.insert((r[0], r[1]), i).is_none(),
            "row {r:?} appears twice"
        );
    }
    for &(id, seq, n, index) in reported {
        for k in 0..n {
            assert_eq!(
                at.get(&(id, seq + k)),
                Some(&((index + k) as usize)),
                "appender {id}'s row {} (returned index {index}) is not where append said",
                seq + k
            );
        }
    }
    // Batches are whole: a batch's first row present means all of it is,
    // consecutively (batches are 1..=5 rows; seq of a batch start is a
    // multiple of its size, so check runs by neighbours).
    for (i, r) in rows.chunks_exact(COLS).enumerate().skip(1) {
        let prev = &rows[(i - 1) * COLS..i * COLS];
        if r[0] == prev[0] {
            assert!(
                r[1] > prev[1],
                "appender {}'s rows out of order at row {i}",
                r[0]
            );
        }
    }
    let problems = sharray::check(path, None).unwrap();
    assert!(problems.is_empty(), "check: {problems:?}");
    rows.len() / COLS
}

#[test]
fn four_appenders_two_readers_some_killed() {
    // The kill step and the instant vary from run to run (the seed is
    // printed; SHARRAY_TEST_SEED replays a run); SHARRAY_GROW_ROUNDS for more.
    let mut rng = common::Rng::new("four_appenders_two_readers_some_killed");
    let rounds = common::env_or("SHARRAY_GROW_ROUNDS", 3);
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.npy");
        drop(create(&path, 100_000));
        let p = path.to_str().unwrap();
        // Survivors: ids 1 and 2 (200 batches of 3 rows); id 3 is SIGKILLed
        // at a random instant; id 4 dies at a named step mid-append.
        let step = [
            "grow.append.reserved",
            "grow.append.written",
            "grow.txn.store",
        ][(round % 3) as usize];
        let nth = 1 + rng.below(if step == "grow.txn.store" { 40 } else { 12 });
        let nap = rng.below(100);
        let mut a1 = spawn_child("child_entry", "appender", &format!("{p},1,200,3"));
        let mut a2 = spawn_child("child_entry", "appender", &format!("{p},2,150,4"));
        let mut a3 = spawn_child("child_entry", "appender", &format!("{p},3,100000,2"));
        let mut a4 = spawn_child_env(
            "child_entry",
            "appender",
            &format!("{p},4,100000,5"),
            &[("SHARRAY_FAILPOINTS", &format!("{step}=kill@{nth}"))],
        );
        let min_rows = 200 * 3 + 150 * 4;
        let r1 = spawn_child("child_entry", "reader", &format!("{p},{min_rows}"));
        let r2 = spawn_child("child_entry", "reader", &format!("{p},{min_rows}"));
        let mut l3 = Lines::of(&mut a3);
        l3.wait_for("appended", LIMIT);
        std::thread::sleep(Duration::from_millis(nap));
        sigkill(&mut a3);
        let st4 = wait_with_watchdog(&mut a4, LIMIT);
        assert!(!st4.success(), "appender 4 should have died at {step}");
        let mut l1 = Lines::of(&mut a1);
        let mut l2 = Lines::of(&mut a2);
        let mut l4 = Lines::of(&mut a4);
        l1.wait_for("done", LIMIT);
        l2.wait_for("done", LIMIT);
        assert!(wait_with_watchdog(&mut a1, LIMIT).success());
        assert!(wait_with_watchdog(&mut a2, LIMIT).success());
        for r in [r1, r2] {
            assert!(finish(r, LIMIT).contains("reader ok"));
        }
        let mut reported = appended(&mut l1);
        reported.extend(appended(&mut l2));
        assert_eq!(reported.len(), 350);
        let killed: Vec<_> = appended(&mut l3)
            .into_iter()
            .chain(appended(&mut l4))
            .collect();
        reported.extend(&killed);
        let rows = verify(&path, &reported);
        assert!(rows >= min_rows);
        // A dead appender's reservation at the end stays until the next
        // append rolls it back; the next row goes right after the published
        // ones, never after a hole.
        // (It may land after `len()` read now: a publication whose process
        // died mid-transaction takes effect when the next appender replays
        // the journal.)
        let g = GrowableArray::open(&path).unwrap();
        let before = g.len();
        let at = g.append(&row(5, 0)).unwrap();
        assert!(
            at >= before && at + 1 == g.len(),
            "{at} {before} {}",
            g.len()
        );
        let info = g.info();
        assert_eq!(info.reserved, info.rows, "{info:?}");
        verify(&path, &[(5, 0, 1, at)]);
        eprintln!(
            "round {round} ({step}@{nth}, SIGKILL after {nap} ms): {rows} rows, {} rollbacks, killed appenders got {} batches in",
            info.rollbacks,
            killed.len()
        );
    }
}

#[test]
fn a_dead_appenders_rows_are_rolled_back_and_a_later_append_moves_down() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.npy");
    let g = create(&path, 1000);
    g.append(&row(9, 0)).unwrap();
    let p = path.to_str().unwrap();
    // Appender 1 reserves rows 1..4 and stops there.
    let mut a1 = spawn_child_env(
        "child_entry",
        "appender",
        &format!("{p},1,1,3"),
        &[("SHARRAY_FAILPOINTS", "grow.append.reserved=stop")],
    );
    common::wait_stopped(a1.id(), LIMIT);
    assert_eq!(g.info().reserved, 4);
    // Appender 2 reserves after it, writes, and waits: rows are published
    // in order.
    let mut a2 = spawn_child("child_entry", "appender", &format!("{p},2,1,2"));
    let mut l2 = Lines::of(&mut a2);
    l2.wait_for("ready", LIMIT);
    let deadline = Instant::now() + LIMIT;
    while g.info().reserved != 6 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    l2.assert_none_within("appended", Duration::from_millis(300));
    assert_eq!(g.len(), 1, "nothing published past the stopped appender");
    // Appender 1 dies: its rows are rolled back, appender 2's move down to 1.
    sigkill(&mut a1);
    let line = l2.wait_for("appended", LIMIT);
    assert_eq!(line, "appended 2 0 2 1");
    assert!(wait_with_watchdog(&mut a2, LIMIT).success());
    assert_eq!(g.len(), 3);
    let info = g.info();
    assert_eq!((info.reserved, info.rollbacks), (3, 1));
    verify(&path, &[(9, 0, 1, 0), (2, 0, 2, 1)]);
    // The next append goes right after.
    assert_eq!(g.append(&row(9, 1)).unwrap(), 3);
}

#[test]
fn an_appender_killed_mid_transaction_is_replayed_then_rolled_back() {
    // Killed after the first store of its first reservation: its entry still
    // reads FREE until the next lock holder replays the journal. A new
    // appender must not take that entry (its rows would become a hole).
    for nth in 1..=5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.npy");
        drop(create(&path, 100));
        let p = path.to_str().unwrap();
        let mut a = spawn_child_env(
            "child_entry",
            "appender",
            &format!("{p},1,1,3"),
            &[("SHARRAY_FAILPOINTS", &format!("grow.txn.store=kill@{nth}"))],
        );
        assert!(!wait_with_watchdog(&mut a, LIMIT).success());
        let g = GrowableArray::open(&path).unwrap();
        let at = common::with_watchdog(LIMIT, || g.append(&row(2, 0)).unwrap());
        assert_eq!(
            at, 0,
            "killed at store {nth}: the dead reservation was not rolled back"
        );
        verify(&path, &[(2, 0, 1, 0)]);
    }
}

#[test]
fn numpy_never_sees_more_rows_than_are_published() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.npy");
    let total = 20_000u64;
    let g = create(&path, total + 10);
    let script = r#"
import sys, numpy as np
path, total = sys.argv[1], int(sys.argv[2])
print("ready", flush=True)
loads = bad_parse = 0
last = 0
while True:
    try:
        a = np.load(path, mmap_mode="r")
    except ValueError:
        bad_parse += 1
        continue
    loads += 1
    n = a.shape[0]
    assert a.shape[1:] == (4,), a.shape
    assert n >= last, (n, last)
    last = n
    rows = np.asarray(a)
    id_, seq, h, nh = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    assert (h == ~nh).all() and (h != 0).all(), "numpy saw an unwritten or torn row"
    assert (seq == np.arange(n, dtype=np.uint64)).all()
    del a, rows
    if n == total:
        break
print("numpy ok", loads, bad_parse, flush=True)
"#;
    let mut py = std::process::Command::new("python3")
        .args(["-c", script, path.to_str().unwrap(), &total.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = Lines::of(&mut py);
    lines.wait_for("ready", LIMIT);
    // A second reader parses only the header, as numpy does (`read` of the
    // header, Python's literal syntax), thousands of times more often, and
    // compares it with `published`, read from the control block after it:
    // the header must never be ahead.
    let header_script = r#"
import ast, os, struct, sys
path, total = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDONLY)
pub_at = os.fstat(fd).st_size - 65536 + 256 + 264
print("ready", flush=True)
reads = 0
while True:
    head = os.pread(fd, 4096, 0)
    d = ast.literal_eval(head[10:].decode("latin1"))
    n = d["shape"][0]
    published = struct.unpack("<Q", os.pread(fd, 8, pub_at))[0]
    assert n <= published, ("header ahead of published", n, published)
    reads += 1
    if n == total:
        break
print("header ok", reads, flush=True)
"#;
    let mut hp = std::process::Command::new("python3")
        .args([
            "-c",
            header_script,
            path.to_str().unwrap(),
            &total.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut hlines = Lines::of(&mut hp);
    hlines.wait_for("ready", LIMIT);
    // One row per append: as many header rewrites as possible, crossing
    // digit boundaries (9 -> 10, 99 -> 100, ..., 9999 -> 10000).
    common::with_watchdog(LIMIT, || {
        for seq in 0..total {
            assert_eq!(g.append(&row(0, seq)).unwrap(), seq);
        }
    });
    let ok = lines.wait_for("numpy ok", LIMIT);
    assert!(wait_with_watchdog(&mut py, LIMIT).success());
    let hok = hlines.wait_for("header ok", LIMIT);
    assert!(wait_with_watchdog(&mut hp, LIMIT).success());
    eprintln!("{ok}; {hok}");
    // numpy's own view at the end.
    let out = common::python(
        "import sys, numpy as np; a = np.load(sys.argv[1], mmap_mode='r'); print(a.shape, a.dtype)",
        &[path.to_str().unwrap()],
    );
    assert_eq!(out.trim(), format!("({total}, 4) uint64"));
}

#[test]
fn errors_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.npy");
    let g = create(&path, 3);
    let e = g.append(&[1.0f32; 4]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DtypeMismatch);
    let e = g.append(&[1u64; 3]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(g.append(&[row(1, 0), row(1, 1)].concat()).unwrap(), 0);
    let e = g.append(&[row(1, 2), row(1, 3)].concat()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Full);
    assert!(e.to_string().contains("capacity 3 rows"), "{e}");
    assert_eq!(g.len(), 2, "a refused append changes nothing");
    assert_eq!(g.append(&row(1, 2)).unwrap(), 2);
    // Other APIs refuse it with a pointer to the right one.
    let e = SharedArray::<u64>::open(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("growable"), "{e}");
    let ro = GrowableArray::open_read_only(&path).unwrap();
    assert_eq!(
        ro.append(&row(1, 3)).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    // A plain sharray array is not growable.
    let plain = dir.path().join("p.npy");
    SharedArray::<u64>::create(&plain, &[2, 4]).unwrap();
    assert_eq!(
        GrowableArray::open(&plain).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    // Bad builder arguments.
    let b = || GrowableArray::builder(Dtype::parse_user("<u8").unwrap());
    for bad in [
        b().capacity(0),
        b().capacity(100_000_000),
        b().rows(5).capacity(4),
        b().max_appenders(65),
    ] {
        assert_eq!(
            bad.create(dir.path().join("x.npy")).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}

#[test]
fn check_reports_a_damaged_growable_array() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.npy");
    let g = create(&path, 100);
    g.append(&[row(1, 0), row(1, 1)].concat()).unwrap();
    assert!(sharray::check(&path, None).unwrap().is_empty());
    let info = g.info();
    drop(g);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let ctrl_off = info.file_len - 65536;
    let sec = ctrl_off + 256;
    // published beyond reserved
    f.write_all_at(&5u64.to_le_bytes(), sec + 264).unwrap();
    let p = sharray::check(&path, None).unwrap();
    let text = format!("{p:?}");
    assert!(text.contains("published 5 <= reserved 2"), "{text}");
    f.write_all_at(&2u64.to_le_bytes(), sec + 264).unwrap();
    // a header ahead of the published rows (numpy would read unwritten rows)
    f.write_all_at(&1u64.to_le_bytes(), sec + 264).unwrap();
    let text = format!("{:?}", sharray::check(&path, None).unwrap());
    assert!(
        text.contains("header shows 2 rows but only 1 are published"),
        "{text}"
    );
    f.write_all_at(&2u64.to_le_bytes(), sec + 264).unwrap();
    // an unfinished transaction is judged as the next append will replay it
    f.write_all_at(&1u64.to_le_bytes(), sec + 280).unwrap(); // journal_len
    f.write_all_at(&(sec + 256).to_le_bytes(), sec + 512)
        .unwrap(); // reserved_rows :=
    f.write_all_at(&7u64.to_le_bytes(), sec + 520).unwrap(); //   7 (beyond the tiling)
    assert!(
        format!("{:?}", sharray::check(&path, None).unwrap())
            .contains("reservations end at row 2, but reserved is 7")
    );
    f.write_all_at(&0u64.to_le_bytes(), sec + 280).unwrap();
    // an entry with an unknown state
    f.write_all_at(&7u64.to_le_bytes(), sec + 4608).unwrap();
    assert!(format!("{:?}", sharray::check(&path, None).unwrap()).contains("unknown state 7"));
    f.write_all_at(&0u64.to_le_bytes(), sec + 4608).unwrap();
    // a capacity that does not match the data length: refused at open too
    f.write_all_at(&99u64.to_le_bytes(), sec + 8).unwrap();
    assert!(!sharray::check(&path, None).unwrap().is_empty());
    assert_eq!(
        GrowableArray::open(&path).unwrap_err().kind(),
        ErrorKind::Corrupt
    );
}
