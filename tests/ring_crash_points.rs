//! Rings crashed and paused at every named step (`sharray::fail::NAMES`,
//! the `ring.*` points).
//!
//! - Kills: for every ring point and for the N-th time it is reached (1, 2,
//!   3, 17; `SHARRAY_CRASH_N=M` tries every N from 1 to M), a child running
//!   a fixed producer + consumer workload is armed with `POINT=kill@N`. It
//!   starts behind a holder that died inside a transaction (so takeover and
//!   journal replay are on its path too). The parent then checks the file
//!   (`sharray::check` clean), attaches fresh participants and verifies that
//!   no frame is torn or delivered twice, no slot leaked (the ring fills to
//!   capacity), the ring flows and the stats add up.
//! - Pauses: for every pair (A, B) of lock and reclaim points, one child is
//!   stopped at A while a second one runs to B, then both go on; the same
//!   checks follow.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::ring::{check, fill};
use common::{
    Lines, child_entry, env_or, signal, spawn_child_env, wait_stopped, wait_with_watchdog,
};
use sharray::{Dtype, Ring, TryLoanError, TryRecvError};

const LIMIT: Duration = Duration::from_secs(60);
const SIGKILL: i32 = 9;
/// Slots of every test ring.
const K: usize = 4;
/// u64 words per frame (the last one is the checksum).
const WORDS: usize = 8;
/// Frames the kill workload commits and receives.
const FRAMES: u64 = 20;
/// Where the first holder dies: inside a journaled transaction, journal
/// length set, nothing applied; everyone after it takes the lock over and
/// replays the journal. Broadcast: its second one (its first loan); queue
/// (loans are lock-free): its first one (its attach).
fn dier(broadcast: bool) -> &'static str {
    if broadcast {
        "ring.txn.armed=kill@2"
    } else {
        "ring.txn.armed=kill@1"
    }
}

#[test]
fn child() {
    child_entry(|role, arg| {
        let ring = Ring::open(arg).unwrap();
        match role {
            "dier" => {
                let p = ring.producer().unwrap();
                let _loan = p.loan_timeout(LIMIT).unwrap();
                println!("survived");
            }
            "work" => work(&ring),
            "pause_worker" => {
                let tag: u64 = std::env::var("PAUSE_TAG").unwrap().parse().unwrap();
                let p = ring.producer().unwrap();
                send(&p, tag);
                drop(p);
                println!("done");
            }
            other => panic!("unknown role {other}"),
        }
    });
}

fn send(p: &sharray::Producer, tag: u64) -> u64 {
    let mut loan = p.loan_timeout(LIMIT).unwrap();
    fill(loan.as_mut_slice::<u64>().unwrap(), tag);
    loan.set_tag(tag);
    loan.commit().unwrap()
}

/// Is the lease an intact frame (its checksum matches its tag)?
fn intact(f: &sharray::ReadLease) -> bool {
    check(f.as_slice::<u64>().unwrap(), f.tag())
}

/// The kill workload: a consumer (subscriber on a broadcast ring) and a
/// producer; one frame ahead, commit the next, receive one (every third
/// one is given back and received again), release it; at the end a loan
/// dropped uncommitted, then detach. Every ring point is on this path.
fn work(ring: &Ring) {
    let c = ring.consumer().unwrap();
    let p = ring.producer().unwrap();
    assert_eq!(send(&p, 0), 0);
    for i in 0..FRAMES {
        if i + 1 < FRAMES {
            assert_eq!(send(&p, i + 1), i + 1);
        }
        let mut f = c.recv_timeout(LIMIT).unwrap();
        assert!(
            intact(&f) && f.tag() == f.seq() && f.seq() == i,
            "frame {i}"
        );
        if i % 3 == 1 {
            f.give_back().unwrap();
            f = c.recv_timeout(LIMIT).unwrap();
            assert!(intact(&f) && f.seq() == i, "frame {i} given back");
        }
        let seq = f.seq();
        drop(f);
        println!("consumed {seq}");
    }
    drop(p.loan_timeout(LIMIT).unwrap());
    drop(p);
    drop(c);
    println!("finished");
}

fn create(path: &Path, broadcast: bool) {
    Ring::builder(Dtype::parse_user("uint64").unwrap(), &[WORDS])
        .slots(K as u32)
        .broadcast(broadcast)
        .max_participants(8)
        .create(path)
        .unwrap();
}

/// A holder that dies inside a transaction, holding the lock.
fn kill_first_holder(p: &str, broadcast: bool) {
    let at = dier(broadcast);
    let mut dier = spawn_child_env("child", "dier", p, &[("SHARRAY_FAILPOINTS", at)]);
    let st = wait_with_watchdog(&mut dier, LIMIT);
    assert_eq!(
        st.signal(),
        Some(SIGKILL),
        "the first holder must die at {at}"
    );
}

/// The checks after a crash or pause. `consumed`: sequence numbers the
/// workload released (queue mode: must never come again). Returns the
/// frames left over for a fresh consumer.
fn verify(path: &Path, broadcast: bool, consumed: &HashSet<u64>, what: &str) -> Vec<u64> {
    let problems = sharray::check(path, Some(Duration::from_secs(5))).unwrap();
    assert!(problems.is_empty(), "{what}: check: {problems:?}");
    let ring = Ring::open(path).unwrap();
    // Attaching takes the lock over from a dead holder, replays its
    // journal and reclaims every dead participant.
    let c = ring.consumer().unwrap();
    let p = ring.producer().unwrap();
    let tail0 = ring.stats().tail;
    let mut seen = HashSet::new();
    let mut left = Vec::new();
    loop {
        match c.try_recv() {
            Ok(f) => {
                assert!(!broadcast, "{what}: a new subscriber got an old frame");
                assert!(intact(&f), "{what}: torn frame {}", f.seq());
                assert!(
                    !consumed.contains(&f.seq()),
                    "{what}: frame {} delivered again",
                    f.seq()
                );
                assert!(seen.insert(f.seq()), "{what}: frame {} twice", f.seq());
                left.push(f.seq());
            }
            Err(TryRecvError::Empty) => break,
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
    // No slot leaked: every slot can be loaned at once.
    let loans: Vec<_> = (0..K)
        .map(|i| {
            p.try_loan()
                .unwrap_or_else(|e| panic!("{what}: slot {i} of {K} not free: {e:?}"))
        })
        .collect();
    assert!(
        matches!(p.try_loan(), Err(TryLoanError::Full)),
        "{what}: more than {K} slots"
    );
    assert_eq!(ring.stats().writing, K, "{what}");
    for (j, mut loan) in loans.into_iter().enumerate() {
        fill(loan.as_mut_slice::<u64>().unwrap(), 1000 + j as u64);
        loan.set_tag(1000 + j as u64);
        loan.commit()
            .unwrap_or_else(|e| panic!("{what}: commit of slot {j}: {e}"));
    }
    let mut got = Vec::new();
    for _ in 0..K {
        let f = c.try_recv().unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert!(
            intact(&f) && seen.insert(f.seq()),
            "{what}: frame {}",
            f.seq()
        );
        got.push(f.tag());
    }
    assert_eq!(got, (1000..1000 + K as u64).collect::<Vec<_>>(), "{what}");
    // The ring flows.
    for i in 0..3 * K as u64 {
        let seq = send(&p, 2000 + i);
        let f = c.recv_timeout(LIMIT).unwrap();
        assert!(
            intact(&f) && f.seq() == seq && f.tag() == 2000 + i,
            "{what}"
        );
        assert!(seen.insert(seq), "{what}: frame {seq} twice");
    }
    let st = ring.stats();
    assert_eq!(
        st.free + st.writing + st.ready + st.reading,
        K,
        "{what}: {st:?}"
    );
    assert_eq!(st.free, K, "{what}: {st:?}");
    assert_eq!(st.tail, tail0 + 4 * K as u64, "{what}: {st:?}");
    if !broadcast {
        assert_eq!(st.head, st.tail, "{what}: {st:?}");
    }
    assert!(
        st.participants.iter().all(|q| q.alive) && st.participants.len() == 2,
        "{what}: dead participants left: {st:?}"
    );
    drop((c, p));
    let problems = sharray::check(path, Some(Duration::from_secs(5))).unwrap();
    assert!(
        problems.is_empty(),
        "{what}: check at the end: {problems:?}"
    );
    left
}

/// The hits of `point` to kill at. The transaction points are hit by every
/// operation, so their first hits all fall in the attach: for them a run of
/// consecutive hits in the steady state (about three frames: loans,
/// commits, receives, releases and a give back) is tried too.
fn crash_ns(point: &str) -> Vec<u64> {
    let mut ns = match env_or("SHARRAY_CRASH_N", 0) {
        0 => vec![1, 2, 3, 17],
        n => return (1..=n).collect(),
    };
    match point {
        "ring.txn.stored" => ns.extend(30..=80),
        "ring.txn.journaled" | "ring.txn.armed" | "ring.txn.cleared" => ns.extend(6..=20),
        _ => {}
    }
    ns.sort_unstable();
    ns.dedup();
    ns
}

/// The ring points on the path of a ring of this mode: queue rings hand
/// frames over lock-free (`ring.handoff.*`), broadcast rings under the lock
/// (`ring.loan.*`, `ring.recv.*`, ...); attach, the lock, transactions and
/// reclaim are common.
fn ring_points(broadcast: bool) -> Vec<&'static str> {
    const LOCKED_ONLY: &[&str] = &[
        "ring.loan.",
        "ring.commit.locked",
        "ring.commit.applied",
        "ring.recv.",
        "ring.release.",
        "ring.give_back.",
    ];
    sharray::fail::NAMES
        .iter()
        .copied()
        .filter(|n| n.starts_with("ring."))
        .filter(|n| {
            if broadcast {
                !n.starts_with("ring.handoff.")
            } else {
                !LOCKED_ONLY.iter().any(|p| n.starts_with(p))
            }
        })
        .collect()
}

fn kill_everywhere(broadcast: bool) {
    let mode = if broadcast { "broadcast" } else { "queue" };
    let mut outcome: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for point in ring_points(broadcast) {
        for n in crash_ns(point) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ring.npy");
            create(&path, broadcast);
            let p = path.to_str().unwrap();
            kill_first_holder(p, broadcast);
            let spec = format!("{point}=kill@{n}");
            let what = format!("{mode} {spec}");
            let mut child = spawn_child_env("child", "work", p, &[("SHARRAY_FAILPOINTS", &spec)]);
            let mut lines = Lines::of(&mut child);
            let st = wait_with_watchdog(&mut child, LIMIT);
            let out = lines.rest();
            let killed = st.signal() == Some(SIGKILL);
            if !killed {
                assert!(
                    st.success() && out.iter().any(|l| l == "finished"),
                    "{what}: child failed ({st}): {out:?}"
                );
            }
            let consumed: HashSet<u64> = out
                .iter()
                .filter_map(|l| l.strip_prefix("consumed ")?.parse().ok())
                .collect();
            let left = verify(&path, broadcast, &consumed, &what);
            if !broadcast {
                // At most once, and at most the one lease the child held
                // lost: every committed frame was consumed, is delivered
                // now, or was that lease.
                let committed = consumed.len() + left.len();
                let ring_tail = Ring::open(&path).unwrap().stats().tail - 4 * K as u64;
                assert!(
                    ring_tail as usize - committed <= 1,
                    "{what}: {} frames lost (tail {ring_tail}, consumed {consumed:?}, left {left:?})",
                    ring_tail as usize - committed
                );
            }
            outcome.entry(point).or_default().push(format!(
                "{n}:{}",
                if killed { "killed" } else { "finished" }
            ));
            if !killed {
                assert!(n > 1, "{what}: the point is not on the workload's path");
            }
        }
    }
    for (point, runs) in &outcome {
        eprintln!("ring_crash_points {mode}: {point}: {}", runs.join(" "));
    }
    eprintln!(
        "ring_crash_points {mode}: {} points, {} runs",
        outcome.len(),
        outcome.values().map(Vec::len).sum::<usize>()
    );
}

/// Every ring point, killed at its N-th hit, on a queue ring.
#[test]
fn queue_killed_at_every_ring_point() {
    kill_everywhere(false);
}

/// Every ring point, killed at its N-th hit, on a broadcast ring.
#[test]
fn broadcast_killed_at_every_ring_point() {
    kill_everywhere(true);
}

/// Stopped (`T` in /proc) or exited within `limit`? `None`: neither (still
/// running or blocked).
fn stopped_or_exited(child: &mut Child, limit: Duration) -> Option<bool> {
    let deadline = Instant::now() + limit;
    loop {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        if matches!(
            stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()),
            Some('T') | Some('t')
        ) {
            return Some(true);
        }
        if child.try_wait().unwrap().is_some() {
            return Some(false);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn pause_worker(p: &str, tag: &str, stop_at: &str) -> (Child, Lines) {
    let arm = format!("{stop_at}=stop");
    let mut c = spawn_child_env(
        "child",
        "pause_worker",
        p,
        &[("SHARRAY_FAILPOINTS", &arm), ("PAUSE_TAG", tag)],
    );
    let lines = Lines::of(&mut c);
    (c, lines)
}

/// Lock and reclaim points, in protocol order.
const PAUSE_POINTS: &[&str] = &[
    "ring.attach.entry_locked",
    "ring.lock.probed",
    "ring.recover.midway",
    "ring.lock.acquired",
    "ring.reclaim.slot",
    "ring.reclaim.slots_done",
];

/// For every pair (A, B) of lock and reclaim points: behind a holder that
/// died inside a transaction, X attaches and is stopped at A (every point
/// is on its path: it takes the lock over, replays the journal and
/// reclaims the dead entry, which it re-uses). Y then attaches armed to
/// stop at B. Either Y reaches B while X is stopped (both paused), or Y is
/// blocked behind X (A holds what Y needs: the lock, or the entry whose
/// epoch is not bumped yet) and reaches B once X goes on, or B is not on
/// Y's path after X went on (a takeover or replay that X already did): Y
/// finishes. Then both finish, and each one's frame arrives once, intact.
#[test]
fn paused_at_every_pair_of_lock_and_reclaim_points() {
    let mut both = 0;
    let mut after = 0;
    let mut off_path = Vec::new();
    for &a in PAUSE_POINTS {
        for &b in PAUSE_POINTS {
            let what = format!("X stopped at {a}, Y at {b}");
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ring.npy");
            create(&path, false);
            let p = path.to_str().unwrap();
            kill_first_holder(p, false);
            let (mut x, mut x_lines) = pause_worker(p, "1", a);
            wait_stopped(x.id(), LIMIT);
            let (mut y, mut y_lines) = pause_worker(p, "2", b);
            // Shorter than the 1 s a blocked commit waits for the lock.
            match stopped_or_exited(&mut y, Duration::from_millis(500)) {
                Some(true) => {
                    both += 1;
                    signal(y.id(), "CONT");
                    std::thread::sleep(Duration::from_millis(20));
                    signal(x.id(), "CONT");
                }
                Some(false) => panic!("{what}: Y finished past a stopped X"),
                None => {
                    signal(x.id(), "CONT");
                    match stopped_or_exited(&mut y, LIMIT) {
                        Some(true) => {
                            after += 1;
                            signal(y.id(), "CONT");
                        }
                        Some(false) => off_path.push(format!("({a}, {b})")),
                        None => panic!("{what}: Y hung"),
                    }
                }
            }
            for (c, l, who) in [(&mut x, &mut x_lines, "X"), (&mut y, &mut y_lines, "Y")] {
                let st = wait_with_watchdog(c, LIMIT);
                let out = l.rest();
                assert!(
                    st.success() && out.iter().any(|l| l == "done"),
                    "{what}: {who} failed ({st}): {out:?}"
                );
            }
            let left = verify(&path, false, &HashSet::new(), &what);
            assert_eq!(left.len(), 2, "{what}: frames of X and Y: {left:?}");
        }
    }
    eprintln!(
        "ring_crash_points pauses: {} pairs: {both} with both stopped at once, {after} with Y at B after X resumed, {} with B off Y's path: {}",
        PAUSE_POINTS.len() * PAUSE_POINTS.len(),
        off_path.len(),
        off_path.join(" ")
    );
}
