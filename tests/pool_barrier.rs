//! The barrier with real processes: several generations with one leader
//! each; a killed participant breaks it for the others (an error in bounded
//! time instead of a hang); timeouts withdraw the arrival; reset.
//!
//! `SHARRAY_POOL_BARRIER_GENERATIONS` sets the generations (default 20).

mod common;

use std::time::Duration;

use common::{Lines, env_or};
use sharray::pool::Barrier;
use sharray::{ErrorKind, WorkQueue};

#[test]
fn child_entry() {
    common::child_entry(|role, arg| {
        let parts: Vec<&str> = arg.split('|').collect();
        let b = Barrier::join(parts[0]).unwrap();
        println!("JOINED");
        match role {
            "cycler" => {
                let n: u32 = parts[1].parse().unwrap();
                for _ in 0..n {
                    let r = b.wait(Some(Duration::from_secs(60))).unwrap();
                    println!("GEN {} {}", r.generation, r.is_leader);
                }
            }
            "waiter" => match b.wait(Some(Duration::from_secs(60))) {
                Err(e) if e.kind() == ErrorKind::Disconnected => println!("DISCONNECTED"),
                other => println!("UNEXPECTED {other:?}"),
            },
            "absent" => loop {
                std::thread::sleep(Duration::from_secs(1)); // joined, never arrives
            },
            other => panic!("unknown role {other}"),
        }
    });
}

#[test]
fn three_processes_pass_many_generations_with_one_leader_each() {
    let gens = env_or("SHARRAY_POOL_BARRIER_GENERATIONS", 20) as u32;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.npy");
    let q = Barrier::create(&p, 3).unwrap();
    let arg = format!("{}|{gens}", p.display());
    let mut kids: Vec<_> = (0..3)
        .map(|_| common::spawn_child("child_entry", "cycler", &arg))
        .collect();
    // Drain every child's stdout at once: a full pipe would stall a child
    // and with it the barrier.
    let mut lines: Vec<Lines> = kids.iter_mut().map(Lines::of).collect();
    let mut leaders = vec![0; gens as usize];
    for (k, l) in kids.iter_mut().zip(lines.iter_mut()) {
        let st = common::wait_with_watchdog(k, Duration::from_secs(120));
        assert!(st.success(), "child failed with {st}");
        let out = l.rest().join("\n");
        let seen: Vec<(u32, bool)> = out
            .lines()
            .filter_map(|l| l.strip_prefix("GEN "))
            .map(|l| {
                let (g, lead) = l.split_once(' ').unwrap();
                (g.parse().unwrap(), lead == "true")
            })
            .collect();
        assert_eq!(
            seen.iter().map(|s| s.0).collect::<Vec<_>>(),
            (0..gens).collect::<Vec<_>>()
        );
        for (g, lead) in seen {
            leaders[g as usize] += lead as u32;
        }
    }
    assert!(
        leaders.iter().all(|&l| l == 1),
        "leaders per generation: {leaders:?}"
    );
    let p = q.progress();
    assert_eq!(
        (p.barrier_generation, p.barrier_arrived, p.barrier_broken),
        (gens, 0, false)
    );
}

#[test]
fn a_killed_participant_breaks_the_barrier_for_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.npy");
    let q = Barrier::create(&p, 3).unwrap();
    let arg = p.display().to_string();
    let mut absent = common::spawn_child("child_entry", "absent", &arg);
    Lines::of(&mut absent).wait_for("JOINED", Duration::from_secs(60));
    let waiters: Vec<_> = (0..2)
        .map(|_| common::spawn_child("child_entry", "waiter", &arg))
        .collect();
    common::with_watchdog(Duration::from_secs(60), || {
        while q.progress().barrier_arrived < 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    common::sigkill(&mut absent);
    for w in waiters {
        // Bounded: the waiters notice within a 50 ms slice; the watchdog is
        // only a safety net, not a runtime assertion.
        let out = common::finish(w, Duration::from_secs(60));
        assert!(out.contains("DISCONNECTED"), "waiter said: {out}");
    }
    assert!(q.progress().barrier_broken);
    // A newcomer is refused at once, until the parent resets the barrier.
    let b = Barrier::join(&p).unwrap();
    assert_eq!(
        b.wait(Some(Duration::from_secs(5))).unwrap_err().kind(),
        ErrorKind::Disconnected
    );
    drop(b);
    q.reap().unwrap();
    q.reset_barrier().unwrap();
    assert!(!q.progress().barrier_broken);
}

#[test]
fn a_timed_out_wait_withdraws_its_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.npy");
    let q = Barrier::create(&p, 2).unwrap();
    let a = Barrier::join(&p).unwrap();
    let e = common::with_watchdog(Duration::from_secs(60), || {
        a.wait(Some(Duration::from_millis(100))).unwrap_err()
    });
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(q.progress().barrier_arrived, 0);
    // Two threads of one process are two participants.
    let b = Barrier::join(&p).unwrap();
    let t = std::thread::spawn(move || b.wait(Some(Duration::from_secs(30))).unwrap());
    let r1 = common::with_watchdog(Duration::from_secs(60), || {
        a.wait(Some(Duration::from_secs(30))).unwrap()
    });
    let r2 = t.join().unwrap();
    assert_eq!((r1.generation, r2.generation), (0, 0));
    assert!(r1.is_leader != r2.is_leader);
    // A queue without a barrier says so.
    let nob = WorkQueue::builder()
        .tasks(1)
        .create(dir.path().join("q.npy"))
        .unwrap();
    assert_eq!(
        nob.join().unwrap().barrier_wait(None).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}
