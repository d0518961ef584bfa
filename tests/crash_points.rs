//! Crash safety at named steps: child processes armed with fail points
//! (`SHARRAY_FAILPOINTS`, see `sharray::fail`) die or stop at exactly one
//! step of a protocol, and other processes must recover correctly.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Lines, child_entry, signal, spawn_child_env, wait_stopped, wait_with_watchdog};
use sharray::pool::ChunkState;
use sharray::{Dtype, Ring, WorkQueue};

const LIMIT: Duration = Duration::from_secs(60);
const SIGKILL: i32 = 9;

#[test]
fn child() {
    child_entry(|role, arg| {
        if role == "pool_worker" {
            return pool_worker(arg);
        }
        if role == "pool_finisher" {
            // Join (reaping a dead worker's entry on the way), then work until
            // the queue is empty.
            let q = WorkQueue::open(arg).unwrap();
            let w = q.join().unwrap();
            println!("joined");
            while let Some(c) = w.claim_timeout(LIMIT).unwrap() {
                c.complete().unwrap();
            }
            println!("finished");
            return;
        }
        if role == "barrier_party" {
            let b = sharray::pool::Barrier::join(arg).unwrap();
            let _ = b.wait(Some(LIMIT));
            println!("passed");
            return;
        }
        if role == "creator" {
            sharray::SharedArray::<u8>::create(arg, &[1 << 20]).unwrap();
            println!("created");
            return;
        }
        let ring = Ring::open(arg).unwrap();
        match role {
            // Attaches as a producer; armed to die while holding the lock.
            "dier" => {
                let _p = ring.producer().unwrap();
                println!("survived");
            }
            // Attaches first, then (once told) loans a slot.
            "waiter" => {
                let p = ring.producer().unwrap();
                println!("attached");
                let go = Path::new(arg).with_extension("go");
                let deadline = Instant::now() + LIMIT;
                while !go.exists() {
                    assert!(Instant::now() < deadline, "never told to go");
                    std::thread::sleep(Duration::from_millis(2));
                }
                let loan = p.loan_timeout(LIMIT).unwrap();
                println!("loaned");
                loan.commit().unwrap();
            }
            // Re-attaches the dead holder's entry; armed to stop holding the lock.
            "taker" => {
                let _c = ring.consumer().unwrap();
                println!("attached");
            }
            other => panic!("unknown role {other}"),
        }
    });
}

/// Defect: when the lock word named a dead participant's entry, a process
/// re-attaching that entry took the lock without a compare-and-swap, while a
/// waiter that had just proved the holder dead swapped the unchanged word
/// and entered too: two holders. Now the word carries the entry's attach
/// epoch and every takeover is one CAS from the dead holder's word.
///
/// The waiter is stopped right after proving the holder dead; the taker
/// re-attaches the entry, takes the lock over and is stopped holding it;
/// the waiter resumes and must not get the lock until the taker goes on.
#[test]
fn lock_takeover_has_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.npy");
    // Broadcast: its loans take the ring lock (a queue ring's do not).
    Ring::builder(Dtype::parse_user("uint64").unwrap(), &[8])
        .slots(2)
        .broadcast(true)
        .create(&path)
        .unwrap();
    let p = path.to_str().unwrap();

    let mut waiter = spawn_child_env(
        "child",
        "waiter",
        p,
        &[("SHARRAY_FAILPOINTS", "ring.lock.probed=stop")],
    );
    let mut waiter_lines = Lines::of(&mut waiter);
    waiter_lines.wait_for("attached", LIMIT);

    // The holder dies inside its first critical section (its attach).
    let mut dier = spawn_child_env(
        "child",
        "dier",
        p,
        &[("SHARRAY_FAILPOINTS", "ring.lock.acquired=kill")],
    );
    let st = wait_with_watchdog(&mut dier, LIMIT);
    assert_eq!(
        st.signal(),
        Some(SIGKILL),
        "the holder must die holding the lock"
    );

    // The waiter proves it dead and is stopped before it swaps the word.
    std::fs::write(path.with_extension("go"), b"").unwrap();
    wait_stopped(waiter.id(), LIMIT);

    // The taker re-attaches the dead entry and stops holding the lock.
    let mut taker = spawn_child_env(
        "child",
        "taker",
        p,
        &[("SHARRAY_FAILPOINTS", "ring.lock.acquired=stop")],
    );
    let mut taker_lines = Lines::of(&mut taker);
    wait_stopped(taker.id(), LIMIT);

    // The waiter goes on: its swap must fail, and it must wait for the
    // taker, however long the taker is stopped.
    signal(waiter.id(), "CONT");
    waiter_lines.assert_none_within("loaned", Duration::from_millis(500));
    signal(taker.id(), "CONT");
    taker_lines.wait_for("attached", LIMIT);
    waiter_lines.wait_for("loaned", LIMIT);
    assert!(wait_with_watchdog(&mut taker, LIMIT).success());
    assert!(wait_with_watchdog(&mut waiter, LIMIT).success());

    // The ring is consistent and still flows.
    let problems = sharray::check(&path, Some(Duration::from_secs(5))).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let ring = Ring::open(&path).unwrap();
    assert_eq!(ring.stats().committed, 1);
    let c = ring.consumer().unwrap();
    let prod = ring.producer().unwrap();
    prod.loan().unwrap().commit().unwrap();
    assert!(c.try_recv().is_ok());
}

/// Claims three chunks, completes two, gives one back, then works until
/// the queue is empty: every step of claim, complete and re-queue runs, so
/// a fail point armed at any of them fires.
fn pool_worker(path: &str) {
    let q = WorkQueue::open(path).unwrap();
    let w = q.join().unwrap();
    let a = w.try_claim().unwrap().unwrap();
    let b = w.try_claim().unwrap().unwrap();
    let c = w.try_claim().unwrap().unwrap();
    b.complete().unwrap();
    c.complete().unwrap();
    a.abandon().unwrap();
    while let Some(c) = w.claim_timeout(LIMIT).unwrap() {
        c.complete().unwrap();
    }
    println!("finished");
}

/// Defects of queue format 1 and the steps of format 2: a worker SIGKILLed
/// at each step of claim, complete and re-queue. Format 1 lost a completion
/// killed between "chunk DONE" and "done += 1" forever: `wait_all`, `claim`
/// and `sharray queue wait` then waited for ever, and `check` called the
/// queue fine. Now the queue is consistent (`check` clean) right after the
/// kill, and another worker finishes the job: every chunk done exactly once,
/// the exact done count equals the chunk count, `wait_all` returns.
#[test]
fn a_worker_killed_at_any_step_leaves_a_queue_that_finishes() {
    const TASKS: usize = 12;
    let mut runs = 0;
    // Every pool point, at every hit N of the workload (until the worker
    // finishes without reaching the N-th hit).
    for point in sharray::fail::NAMES.iter().filter(|n| {
        n.starts_with("pool.") && !["pool.barrier.arrived", "pool.reap.settling"].contains(n)
    }) {
        for nth in 1..=2 * TASKS {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("q.npy");
            let q = WorkQueue::builder()
                .tasks(TASKS)
                .max_workers(4)
                .create(&path)
                .unwrap();
            let spec = format!("{point}=kill@{nth}");
            let mut child = spawn_child_env(
                "child",
                "pool_worker",
                path.to_str().unwrap(),
                &[("SHARRAY_FAILPOINTS", spec.as_str())],
            );
            let st = wait_with_watchdog(&mut child, LIMIT);
            if st.success() {
                assert!(nth > 1, "{spec}: the point is never reached");
                break;
            }
            assert_eq!(
                st.signal(),
                Some(SIGKILL),
                "{spec}: the worker must die there"
            );
            runs += 1;

            let problems = sharray::check(&path, Some(Duration::from_secs(5))).unwrap();
            assert!(
                problems.is_empty(),
                "{spec}: right after the kill: {problems:?}"
            );

            let w = q.join().unwrap();
            while let Some(c) = w.claim_timeout(LIMIT).unwrap() {
                c.complete().unwrap();
            }
            let p = q.wait_all(LIMIT).unwrap();
            assert_eq!(
                (p.done, p.in_flight, p.pending),
                (TASKS as u64, 0, 0),
                "{spec}"
            );
            for i in 0..TASKS {
                assert!(
                    matches!(q.chunk(i).state, ChunkState::Done(_)),
                    "{spec}: chunk {i} is {:?}",
                    q.chunk(i).state
                );
            }
            drop(w);
            let problems = sharray::check(&path, Some(Duration::from_secs(5))).unwrap();
            assert!(problems.is_empty(), "{spec}: after the job: {problems:?}");
        }
    }
    println!("pool crash points: {runs} kills, every one recovered");
}

/// A creator killed when its file is complete but not yet named leaves
/// nothing behind (an unnamed O_TMPFILE file vanishes with the process), on
/// a disk directory and in /dev/shm.
#[test]
fn a_creator_killed_before_publishing_leaves_nothing() {
    let shm = tempfile::tempdir_in("/dev/shm").ok();
    let disk = tempfile::tempdir().unwrap();
    for dir in std::iter::once(disk.path()).chain(shm.as_ref().map(|d| d.path())) {
        let path = dir.join("a.npy");
        let mut child = spawn_child_env(
            "child",
            "creator",
            path.to_str().unwrap(),
            &[("SHARRAY_FAILPOINTS", "file.create.filled=kill")],
        );
        let st = wait_with_watchdog(&mut child, LIMIT);
        assert_eq!(st.signal(), Some(SIGKILL), "the creator must die there");
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{}: left {left:?}", dir.display());
    }
}

/// A barrier party killed right after its arrival was counted: the other
/// parties see the barrier broken (`Disconnected`), they neither hang nor
/// pass a barrier that one of them never left.
#[test]
fn a_barrier_party_killed_after_arriving_breaks_the_barrier() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.npy");
    let _q = sharray::pool::Barrier::create(&path, 3).unwrap();
    let mut child = spawn_child_env(
        "child",
        "barrier_party",
        path.to_str().unwrap(),
        &[("SHARRAY_FAILPOINTS", "pool.barrier.arrived=kill")],
    );
    let st = wait_with_watchdog(&mut child, LIMIT);
    assert_eq!(
        st.signal(),
        Some(SIGKILL),
        "the party must die after arriving"
    );
    let b = sharray::pool::Barrier::join(&path).unwrap();
    let err = b.wait(Some(LIMIT)).unwrap_err();
    assert_eq!(err.kind(), sharray::ErrorKind::Disconnected, "{err}");
}

/// Pause in the reclaim path of a queue: a reaper stopped half-way through
/// settling a dead worker's entry (it holds the entry's liveness lock)
/// while another worker claims, completes and looks for dead workers. The
/// other worker must neither re-queue the dead worker's chunks a second time
/// nor see the job as finished; once the reaper goes on, the job finishes
/// with every chunk done exactly once.
#[test]
fn a_reaper_paused_mid_settle_leaves_nothing_to_a_second_reaper() {
    const TASKS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.npy");
    let q = WorkQueue::builder()
        .tasks(TASKS)
        .max_workers(4)
        .create(&path)
        .unwrap();
    let p = path.to_str().unwrap();
    // A worker dies holding chunks, with a completion in flight.
    let mut dead = spawn_child_env(
        "child",
        "pool_worker",
        p,
        &[("SHARRAY_FAILPOINTS", "pool.complete.announced=kill@3")],
    );
    assert_eq!(wait_with_watchdog(&mut dead, LIMIT).signal(), Some(SIGKILL));
    // The reaper takes the dead entry and stops half-way.
    let mut reaper = spawn_child_env(
        "child",
        "pool_finisher",
        p,
        &[("SHARRAY_FAILPOINTS", "pool.reap.settling=stop")],
    );
    wait_stopped(reaper.id(), LIMIT);
    // Another worker does what it can meanwhile.
    let w = q.join().unwrap();
    loop {
        match w.claim_timeout(Duration::from_millis(300)) {
            Ok(Some(c)) => c.complete().unwrap(),
            Ok(None) => {
                panic!("the job cannot be over while the dead worker's chunks are unsettled")
            }
            Err(e) => {
                assert_eq!(e.kind(), sharray::ErrorKind::Timeout, "{e}");
                break;
            }
        }
    }
    assert!(q.progress().done < TASKS as u64);
    signal(reaper.id(), "CONT");
    let mut lines = Lines::of(&mut reaper);
    lines.wait_for("finished", LIMIT);
    assert!(wait_with_watchdog(&mut reaper, LIMIT).success());
    while let Some(c) = w.claim_timeout(LIMIT).unwrap() {
        c.complete().unwrap();
    }
    let prog = q.wait_all(LIMIT).unwrap();
    assert_eq!((prog.done, prog.in_flight), (TASKS as u64, 0));
    for i in 0..TASKS {
        assert!(matches!(q.chunk(i).state, ChunkState::Done(_)), "chunk {i}");
    }
    drop(w);
    assert_eq!(
        sharray::check(&path, Some(Duration::from_secs(5))).unwrap(),
        vec![]
    );
}
