//! Row-region locks across processes and threads: overlapping exclusive
//! writers exclude each other (no lost updates, even when several regions are
//! requested in opposite orders), disjoint ones are admitted at the same
//! time, shared ones coexist, a dead holder's lock goes away, and a Python
//! peer taking the documented `fcntl` lock is respected.
//!
//! `SHARRAY_POOL_REGION_ROUNDS` sets the rounds per incrementing child
//! (default 300).

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Lines, Rng, env_or};
use sharray::{ErrorKind, RowMode, SharedArray};

const ROWS: usize = 64;
const COLS: usize = 16;

/// Read-modify-write of every element of the regions, with a pause between
/// the read and the write that makes lost updates likely without exclusion.
fn bump(a: &SharedArray<u64>, regions: &[std::ops::Range<usize>]) {
    let req: Vec<_> = regions
        .iter()
        .map(|r| (r.clone(), RowMode::Exclusive))
        .collect();
    let mut g = a
        .lock_rows_many(&req, Some(Duration::from_secs(60)))
        .unwrap();
    for k in 0..g.len() {
        let before: Vec<u64> = g.get(k).to_vec();
        std::thread::yield_now();
        for (x, b) in g.get_mut(k).unwrap().iter_mut().zip(before) {
            *x = b + 1;
        }
    }
}

/// Two disjoint regions of 4..12 rows, listed in random order.
fn pick(rng: &mut Rng) -> Vec<std::ops::Range<usize>> {
    loop {
        let a = rng.below((ROWS - 12) as u64) as usize;
        let b = rng.below((ROWS - 12) as u64) as usize;
        let (la, lb) = (4 + rng.below(8) as usize, 4 + rng.below(8) as usize);
        let (ra, rb) = (a..a + la, b..b + lb);
        if ra.end <= rb.start || rb.end <= ra.start {
            return vec![ra, rb];
        }
    }
}

#[test]
fn child_entry() {
    common::child_entry(|role, arg| {
        let parts: Vec<&str> = arg.split('|').collect();
        let a = SharedArray::<u64>::open(parts[0]).unwrap();
        match role {
            "incrementer" => {
                let rounds: usize = parts[1].parse().unwrap();
                let mut rng = Rng::new("incrementer");
                let mut counts = vec![0u64; ROWS];
                for _ in 0..rounds {
                    let regions = pick(&mut rng);
                    bump(&a, &regions);
                    for r in regions {
                        for row in r {
                            counts[row] += 1;
                        }
                    }
                }
                println!(
                    "COUNTS {}",
                    counts
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
            "holder" => {
                let mode = if parts[2] == "x" {
                    RowMode::Exclusive
                } else {
                    RowMode::Shared
                };
                let (s, e) = parts[1].split_once("..").unwrap();
                let _g = a
                    .lock_rows(s.parse().unwrap()..e.parse().unwrap(), mode)
                    .unwrap();
                println!("HELD");
                loop {
                    std::thread::sleep(Duration::from_secs(1)); // until SIGKILL
                }
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[test]
fn overlapping_writers_in_three_processes_lose_no_update() {
    let rounds = env_or("SHARRAY_POOL_REGION_ROUNDS", 300);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    let a = SharedArray::<u64>::create(&p, &[ROWS, COLS]).unwrap();
    let arg = format!("{}|{rounds}", p.display());
    let kids: Vec<_> = (0..3)
        .map(|_| common::spawn_child("child_entry", "incrementer", &arg))
        .collect();
    let mut expect = vec![0u64; ROWS];
    for k in kids {
        let out = common::finish(k, Duration::from_secs(120));
        let counts = out
            .lines()
            .find_map(|l| l.strip_prefix("COUNTS "))
            .expect("child reports counts");
        for (e, c) in expect.iter_mut().zip(counts.split(',')) {
            *e += c.parse::<u64>().unwrap();
        }
    }
    let r = a.read().unwrap();
    for row in 0..ROWS {
        assert!(
            r[row * COLS..(row + 1) * COLS]
                .iter()
                .all(|&v| v == expect[row]),
            "row {row}: expected {} everywhere, found {:?}",
            expect[row],
            &r[row * COLS..(row + 1) * COLS]
        );
    }
}

#[test]
fn threads_of_one_process_are_excluded_too() {
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(SharedArray::<u64>::create(dir.path().join("a.npy"), &[ROWS, COLS]).unwrap());
    let handles: Vec<_> = (0..3)
        .map(|t| {
            let a = a.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(&format!("thread {t}"));
                let mut counts = vec![0u64; ROWS];
                for _ in 0..300 {
                    let regions = pick(&mut rng);
                    bump(&a, &regions);
                    for r in regions {
                        for row in r {
                            counts[row] += 1;
                        }
                    }
                }
                counts
            })
        })
        .collect();
    let mut expect = vec![0u64; ROWS];
    common::with_watchdog(Duration::from_secs(120), || {
        for h in handles {
            for (e, c) in expect.iter_mut().zip(h.join().unwrap()) {
                *e += c;
            }
        }
    });
    let r = a.read().unwrap();
    for row in 0..ROWS {
        assert!(
            r[row * COLS..(row + 1) * COLS]
                .iter()
                .all(|&v| v == expect[row])
        );
    }
}

#[test]
fn disjoint_regions_are_admitted_while_held_and_a_dead_holder_releases() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    let a = SharedArray::<u64>::create(&p, &[ROWS, COLS]).unwrap();
    let mut excl =
        common::spawn_child("child_entry", "holder", &format!("{}|0..10|x", p.display()));
    let mut shared = common::spawn_child(
        "child_entry",
        "holder",
        &format!("{}|20..30|s", p.display()),
    );
    Lines::of(&mut excl).wait_for("HELD", Duration::from_secs(60));
    Lines::of(&mut shared).wait_for("HELD", Duration::from_secs(60));
    common::with_watchdog(Duration::from_secs(60), || {
        // Exclusive 0..10 held by another process.
        assert!(a.try_lock_rows(9..11, RowMode::Shared).unwrap().is_none());
        let e = a
            .lock_rows_timeout(0..1, RowMode::Exclusive, Duration::from_millis(100))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LockTimeout);
        // Disjoint rows are admitted at the same time.
        let mut g = a
            .try_lock_rows(10..20, RowMode::Exclusive)
            .unwrap()
            .unwrap();
        g.get_mut(0).unwrap().fill(5);
        drop(g);
        // Shared 20..30 held elsewhere: shared coexists, exclusive does not.
        assert!(a.try_lock_rows(25..35, RowMode::Shared).unwrap().is_some());
        assert!(
            a.try_lock_rows(29..30, RowMode::Exclusive)
                .unwrap()
                .is_none()
        );
        // All or nothing: a request with one busy region takes nothing.
        assert!(
            a.lock_rows_many(
                &[(40..50, RowMode::Exclusive), (5..6, RowMode::Shared)],
                Some(Duration::from_millis(50))
            )
            .is_err()
        );
        assert!(
            a.try_lock_rows(40..50, RowMode::Exclusive)
                .unwrap()
                .is_some()
        );
    });
    common::sigkill(&mut excl);
    common::sigkill(&mut shared);
    common::with_watchdog(Duration::from_secs(60), || {
        let g = a
            .lock_rows_timeout(0..30, RowMode::Exclusive, Duration::from_secs(10))
            .unwrap();
        assert_eq!(g.get(0)[10 * COLS], 5);
    });
}

#[test]
fn bad_requests_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let a = SharedArray::<u64>::create(dir.path().join("a.npy"), &[ROWS, COLS]).unwrap();
    let kind = |r: sharray::Result<sharray::RowsGuard<'_, u64>>| r.unwrap_err().kind();
    assert_eq!(
        kind(a.lock_rows(60..65, RowMode::Shared)),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(a.lock_rows_many(&[(0..5, RowMode::Shared), (4..6, RowMode::Shared)], None)),
        ErrorKind::InvalidInput
    );
    let ro = SharedArray::<u64>::open_read_only(a.path()).unwrap();
    assert_eq!(
        kind(ro.lock_rows(0..1, RowMode::Exclusive)),
        ErrorKind::PermissionDenied
    );
    assert!(ro.try_lock_rows(0..1, RowMode::Shared).unwrap().is_some());
    // A region lock and a whole-array write guard exclude each other in-process.
    let g = a.lock_rows(3..4, RowMode::Shared).unwrap();
    assert!(a.try_write().unwrap().is_none());
    drop(g);
    assert!(a.try_write().unwrap().is_some());
}

#[test]
fn a_python_peer_with_fcntl_ofd_locks_is_respected() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    let a = SharedArray::<u64>::create(&p, &[ROWS, COLS]).unwrap();
    // Rows 8..12 are bytes 4096 + 8*128 .. 4096 + 12*128 (FORMAT.md 8.6).
    let script = "import fcntl, struct, sys, os\n\
        F_OFD_SETLK = 37\n\
        fd = os.open(sys.argv[1], os.O_RDWR)\n\
        start, length = 4096 + 8 * 128, 4 * 128\n\
        fcntl.fcntl(fd, F_OFD_SETLK, struct.pack('hhxxxxqqixxxx', fcntl.F_WRLCK, 0, start, length, 0))\n\
        print('LOCKED', flush=True)\n\
        sys.stdin.read()\n";
    let mut py = Command::new("python3")
        .args(["-c", script, p.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    Lines::of(&mut py).wait_for("LOCKED", Duration::from_secs(60));
    assert!(a.try_lock_rows(11..12, RowMode::Shared).unwrap().is_none());
    assert!(
        a.try_lock_rows(12..13, RowMode::Exclusive)
            .unwrap()
            .is_some()
    );
    drop(py.stdin.take()); // Python exits, the kernel drops its lock
    common::wait_with_watchdog(&mut py, Duration::from_secs(60));
    assert!(
        a.try_lock_rows(8..12, RowMode::Exclusive)
            .unwrap()
            .is_some()
    );
}
