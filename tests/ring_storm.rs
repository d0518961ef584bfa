//! SIGKILL storms: producers killed at random points mid-frame (and inside
//! the ring's critical sections), consumers killed while holding leases. No
//! consumer ever accepts a torn frame, the ring keeps flowing, and no slot or
//! participant entry is lost.
//!
//! Default sizes finish in well under a minute on 2 cores. Set
//! `SHARRAY_STORM_ITERS` (default 200) for the full "hundreds of kills".

mod common;

use std::time::{Duration, Instant};

use common::ring::{STOP, check, fill};
use common::{Lines, Rng};
use sharray::{Dtype, Ring};

const LIMIT: Duration = Duration::from_secs(300);

fn iters() -> u64 {
    std::env::var("SHARRAY_STORM_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn create(dir: &tempfile::TempDir, words: usize, slots: u32, broadcast: bool) -> (Ring, String) {
    let path = dir.path().join("storm.npy");
    let ring = Ring::builder(Dtype::parse_user("uint64").unwrap(), &[words])
        .slots(slots)
        .broadcast(broadcast)
        .create(&path)
        .unwrap();
    (ring, path.to_str().unwrap().to_string())
}

/// Produce forever with random tags (until killed).
fn endless_producer(path: &str, seed: u64) {
    let ring = Ring::open(path).unwrap();
    let p = ring.producer().unwrap();
    let mut rng = Rng::from_seed(seed);
    println!("producing");
    loop {
        let mut loan = p.loan().unwrap();
        let tag = rng.next() % (u64::MAX - 1);
        fill(loan.as_mut_slice::<u64>().unwrap(), tag);
        loan.set_tag(tag);
        loan.commit().unwrap();
    }
}

/// Verify every frame until a STOP frame; print the count.
fn checking_consumer(path: &str) {
    let ring = Ring::open(path).unwrap();
    let c = ring.consumer().unwrap();
    println!("attached");
    let (mut n, mut last) = (0u64, None);
    loop {
        match c.recv_timeout(Duration::from_secs(120)) {
            Ok(f) if f.tag() == STOP => break,
            Ok(f) => {
                assert!(
                    check(f.as_slice::<u64>().unwrap(), f.tag()),
                    "TORN frame seq {} accepted",
                    f.seq()
                );
                assert!(last.is_none_or(|l| f.seq() > l), "out of order");
                last = Some(f.seq());
                n += 1;
            }
            // Producers come and go (and are killed) during the storm, but
            // nobody closes the stream: Disconnected would be a bug.
            Err(e) => panic!("{e}"),
        }
    }
    println!("checked {n}");
}

/// Receive frames and hold up to two leases, slowly, until killed.
fn hoarding_consumer(path: &str) {
    let ring = Ring::open(path).unwrap();
    let c = ring.consumer().unwrap();
    let mut held = std::collections::VecDeque::new();
    println!("hoarding");
    loop {
        if let Ok(f) = c.recv_timeout(Duration::from_millis(50)) {
            assert!(check(f.as_slice::<u64>().unwrap(), f.tag()));
            held.push_back(f);
            if held.len() > 2 {
                held.pop_front();
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn child_entry() {
    common::child_entry(|role, arg| {
        let mut a = arg.split('|');
        let path = a.next().unwrap();
        match role {
            "producer" => endless_producer(path, a.next().unwrap().parse().unwrap()),
            "checker" => checking_consumer(path),
            "hoarder" => hoarding_consumer(path),
            other => panic!("unknown role {other}"),
        }
    });
}

fn stop_all(ring: &Ring, n: usize) {
    let p = ring.producer().unwrap();
    for _ in 0..n {
        let mut loan = p.loan_timeout(Duration::from_secs(60)).unwrap();
        loan.set_tag(STOP);
        loan.commit().unwrap();
    }
}

fn assert_clean(ring: &Ring) {
    ring.reclaim().unwrap();
    let st = ring.stats();
    assert_eq!(st.free, st.slots, "slots lost: {st:?}");
    assert!(st.participants.is_empty(), "entries left: {st:?}");
}

/// Kill producers at random moments; `words` sets the frame size (large:
/// kills land mid-write; tiny: kills land inside critical sections).
fn producer_storm(words: usize, broadcast: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (ring, path) = create(&dir, words, 4, broadcast);
    let mut checkers: Vec<_> = (0..2)
        .map(|_| common::spawn_child("child_entry", "checker", &path))
        .collect();
    let mut rxs: Vec<_> = checkers.iter_mut().map(Lines::of).collect();
    for rx in &mut rxs {
        rx.wait_for("attached", LIMIT);
    }
    let mut rng = Rng::from_seed(words as u64 * 31 + broadcast as u64);
    let t0 = Instant::now();
    for i in 0..iters() {
        let mut p = common::spawn_child("child_entry", "producer", &format!("{path}|{i}"));
        let mut rx = Lines::of(&mut p);
        rx.wait_for("producing", LIMIT);
        std::thread::sleep(Duration::from_micros(500 + rng.below(30_000)));
        common::sigkill(&mut p);
    }
    let committed = ring.stats().committed;
    stop_all(&ring, if broadcast { 1 } else { 2 });
    for (mut rx, mut c) in rxs.into_iter().zip(checkers) {
        rx.wait_for("checked", LIMIT);
        assert!(common::wait_with_watchdog(&mut c, LIMIT).success());
    }
    eprintln!(
        "producer storm ({words} words, broadcast={broadcast}): {} kills, {committed} frames in {:?}",
        iters(),
        t0.elapsed()
    );
    assert_clean(&ring);
}

#[test]
fn killed_producers_never_deliver_torn_frames_large() {
    producer_storm(128 * 1024, false); // 1 MiB frames
}

#[test]
fn killed_producers_never_deliver_torn_frames_tiny() {
    producer_storm(8, false);
}

#[test]
fn killed_producers_broadcast() {
    producer_storm(4096, true);
}

/// Kill consumers holding leases while a producer keeps producing.
fn consumer_storm(broadcast: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (ring, path) = create(&dir, 1024, 4, broadcast);
    let mut checker = common::spawn_child("child_entry", "checker", &path);
    let mut crx = Lines::of(&mut checker);
    crx.wait_for("attached", LIMIT);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let ring = ring.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let p = ring.producer().unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // A lost slot would make this time out eventually.
                let mut loan = p.loan_timeout(Duration::from_secs(30)).unwrap();
                fill(loan.as_mut_slice::<u64>().unwrap(), n);
                loan.set_tag(n);
                loan.commit().unwrap();
                n += 1;
            }
            n
        })
    };
    let mut rng = Rng::from_seed(77 + broadcast as u64);
    for _ in 0..iters() {
        let mut h = common::spawn_child("child_entry", "hoarder", &path);
        let mut rx = Lines::of(&mut h);
        rx.wait_for("hoarding", LIMIT);
        std::thread::sleep(Duration::from_micros(1000 + rng.below(40_000)));
        common::sigkill(&mut h);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = common::with_watchdog(LIMIT, || producer.join().unwrap());
    stop_all(&ring, 1);
    crx.wait_for("checked", LIMIT);
    assert!(common::wait_with_watchdog(&mut checker, LIMIT).success());
    eprintln!(
        "consumer storm (broadcast={broadcast}): {} kills, {n} frames",
        iters()
    );
    assert!(n > 0);
    assert_clean(&ring);
}

#[test]
fn killed_consumers_give_slots_back_queue() {
    consumer_storm(false);
}

#[test]
fn killed_subscribers_give_slots_back_broadcast() {
    consumer_storm(true);
}
