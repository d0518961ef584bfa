//! Real child processes sharing one array: writers take turns under the
//! write guard while readers check, under the read guard, that they never see
//! a half-done update; a writer killed with SIGKILL in the middle of its work
//! frees the lock; `wait_changed` wakes across processes.
//!
//! Sizes: `SHARRAY_SOAK_ROUNDS` (default 60) rounds per writer and
//! `SHARRAY_SOAK_PROCS` (default 3) writers and as many readers.

mod common;

use std::io::{BufRead, BufReader};
use std::process::ChildStdout;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use sharray::{ErrorKind, SharedArray};

const LIMIT: Duration = Duration::from_secs(120);
/// 2 MiB of u64: big enough that an unguarded update would be seen torn.
const LEN: usize = 256 * 1024;

/// Lines of a child's stdout, read on a thread so waits can time out.
fn lines(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Wait for a line starting with `want` (the test harness prints its own
/// lines first); return it.
fn expect(rx: &Receiver<String>, want: &str) -> String {
    loop {
        let line = rx
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("no {want:?} line from the child within {LIMIT:?}"));
        if line.trim().starts_with(want) {
            return line.trim().to_string();
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn child_entry() {
    common::child_entry(|role, arg| {
        let (path, param) = arg.split_once('|').unwrap_or((arg, ""));
        let a = SharedArray::<u64>::open(path).unwrap();
        match role {
            "writer" => {
                let (id, rounds) = param.split_once(',').unwrap();
                let id: u64 = id.parse().unwrap();
                let rounds: u64 = rounds.parse().unwrap();
                for round in 0..rounds {
                    let mut w = a.write().unwrap();
                    let v = id * 1_000_000 + round;
                    for x in w.iter_mut() {
                        *x = v;
                    }
                }
                println!("writer done");
            }
            "reader" => {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut reads = 0u64;
                let mut distinct = std::collections::HashSet::new();
                // Read until the writers are done (the parent sets element 0
                // of the flag array... here: until the generation stops at the
                // expected total) or the deadline.
                let total: u64 = param.parse().unwrap();
                while Instant::now() < deadline {
                    let r = a.read().unwrap();
                    let first = r[0];
                    if let Some(i) = r.iter().position(|&x| x != first) {
                        panic!("half-done update seen: [0]={first} [{i}]={}", r[i]);
                    }
                    distinct.insert(first);
                    reads += 1;
                    drop(r);
                    if a.generation() >= total {
                        break;
                    }
                }
                println!(
                    "reader done: {reads} reads, {} distinct states",
                    distinct.len()
                );
            }
            "storm_writer" => {
                // Writes until killed (bounded by a deadline, never unbounded).
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut v = 0u64;
                println!("started");
                while Instant::now() < deadline {
                    let mut w = a.write().unwrap();
                    v += 1;
                    for x in w.iter_mut() {
                        *x = v;
                    }
                }
            }
            "waiter" => {
                let since: u64 = param.parse().unwrap();
                println!("waiting");
                match a.wait_changed(since, Duration::from_secs(60)) {
                    Ok(g) => println!("changed {g}"),
                    Err(e) => println!("error {:?}", e.kind()),
                }
            }
            "short_waiter" => {
                let since: u64 = param.parse().unwrap();
                let e = a
                    .wait_changed(since, Duration::from_millis(200))
                    .unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Timeout);
                println!("timed out");
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[test]
fn writers_take_turns_and_readers_never_see_half_done_updates() {
    let procs = env_usize("SHARRAY_SOAK_PROCS", 3);
    let rounds = env_usize("SHARRAY_SOAK_ROUNDS", 60);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.npy");
    let a = SharedArray::<u64>::create(&path, &[LEN]).unwrap();
    let p = path.to_str().unwrap();
    let total = (procs * rounds) as u64;
    let mut kids = Vec::new();
    for id in 0..procs {
        kids.push(common::spawn_child(
            "child_entry",
            "writer",
            &format!("{p}|{},{rounds}", id + 1),
        ));
        kids.push(common::spawn_child(
            "child_entry",
            "reader",
            &format!("{p}|{total}"),
        ));
    }
    for k in kids {
        let out = common::finish(k, LIMIT);
        assert!(out.contains("done"), "{out}");
        print!("{out}");
    }
    assert_eq!(a.generation(), total);
    let r = a.read().unwrap();
    let last = r[0];
    assert!(r.iter().all(|&x| x == last));
    assert_eq!(
        last % 1_000_000,
        rounds as u64 - 1,
        "the last write was a final round"
    );
}

#[test]
fn killing_a_writer_mid_update_frees_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("storm.npy");
    let a = SharedArray::<u64>::create(&path, &[LEN]).unwrap();
    let p = path.to_str().unwrap();
    for attempt in 0..3u64 {
        let mut child = common::spawn_child("child_entry", "storm_writer", p);
        let rx = lines(child.stdout.take().unwrap());
        expect(&rx, "started");
        // Let it get going, then kill it wherever it is (most likely inside
        // the write guard, since it holds it almost all the time).
        std::thread::sleep(Duration::from_millis(30 + 40 * attempt));
        common::sigkill(&mut child);
        common::with_watchdog(LIMIT, || {
            let mut w = a
                .write_timeout(Duration::from_secs(30))
                .expect("lock freed by the kernel when the writer died");
            // The crash model: the data may be half-updated; we can repair it.
            let v = w[0];
            w.iter_mut().for_each(|x| *x = v);
        });
    }
    assert!(a.generation() > 3);
}

#[test]
fn wait_changed_wakes_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gen.npy");
    let a = SharedArray::<u64>::create(&path, &[8]).unwrap();
    let p = path.to_str().unwrap();
    let g0 = a.generation();
    let arg = format!("{p}|{g0}");
    // A waiter killed while parked leaves the waiter count high; harmless.
    let mut dead = common::spawn_child("child_entry", "waiter", &arg);
    let rx = lines(dead.stdout.take().unwrap());
    expect(&rx, "waiting");
    std::thread::sleep(Duration::from_millis(50));
    common::sigkill(&mut dead);

    let short = common::spawn_child("child_entry", "short_waiter", &arg);
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let mut c = common::spawn_child("child_entry", "waiter", &arg);
            let rx = lines(c.stdout.take().unwrap());
            expect(&rx, "waiting");
            (c, rx)
        })
        .collect();
    assert!(common::finish(short, LIMIT).contains("timed out"));
    std::thread::sleep(Duration::from_millis(100));
    // Taking a write guard without changing anything does not bump.
    drop(a.write().unwrap());
    assert_eq!(a.generation(), g0);
    a.write().unwrap()[0] = 42;
    for (mut c, rx) in waiters {
        assert_eq!(expect(&rx, "changed"), format!("changed {}", g0 + 1));
        assert!(common::wait_with_watchdog(&mut c, LIMIT).success());
    }
}
