//! Crash safety at named steps: child processes armed with fail points
//! (`SHARRAY_FAILPOINTS`, see `sharray::fail`) die or stop at exactly one
//! step of a protocol, and other processes must recover correctly.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Lines, child_entry, signal, spawn_child_env, wait_stopped, wait_with_watchdog};
use sharray::{Dtype, Ring};

const LIMIT: Duration = Duration::from_secs(60);
const SIGKILL: i32 = 9;

#[test]
fn child() {
    child_entry(|role, arg| {
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
    Ring::builder(Dtype::parse_user("uint64").unwrap(), &[8])
        .slots(2)
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
