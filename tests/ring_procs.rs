//! Rings across real processes: delivery (queue: exactly once; broadcast: to
//! every subscriber), in order; a killed producer's half-written frame is never
//! delivered and consumers see Disconnected; a killed consumer's leases come
//! back; timeouts; a blocked consumer stays idle.
//!
//! Sizes: `SHARRAY_RING_FRAMES` frames per delivery test (default 2000).

mod common;

use std::time::{Duration, Instant};

use common::Lines;
use common::ring::{check, cpu_time, fill};
use sharray::{Dtype, ErrorKind, Ring, TryRecvError};

const WORDS: usize = 512; // 4 KiB frames
const LIMIT: Duration = Duration::from_secs(120);

fn frames() -> u64 {
    std::env::var("SHARRAY_RING_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn new_ring(dir: &tempfile::TempDir, slots: u32, broadcast: bool) -> (Ring, String) {
    let path = dir.path().join("ring.npy");
    let ring = Ring::builder(Dtype::parse_user("uint64").unwrap(), &[WORDS])
        .slots(slots)
        .broadcast(broadcast)
        .create(&path)
        .unwrap();
    (ring, path.to_str().unwrap().to_string())
}

/// Commit `n` frames, tag = 1000 + i, payload checked by consumers.
fn produce(path: &str, n: u64) {
    let ring = Ring::open(path).unwrap();
    let p = ring.producer().unwrap();
    for i in 0..n {
        let mut loan = p.loan_timeout(Duration::from_secs(60)).unwrap();
        fill(loan.as_mut_slice::<u64>().unwrap(), 1000 + i);
        loan.set_tag(1000 + i);
        loan.commit().unwrap();
    }
}

/// Receive until Disconnected; print the sequence numbers.
fn consume(path: &str) {
    let ring = Ring::open(path).unwrap();
    let c = ring.consumer().unwrap();
    println!("attached");
    let mut seqs = Vec::new();
    loop {
        match c.recv_timeout(Duration::from_secs(60)) {
            Ok(f) => {
                assert!(
                    check(f.as_slice::<u64>().unwrap(), f.tag()),
                    "torn frame {}",
                    f.seq()
                );
                assert_eq!(f.lost(), 0);
                seqs.push(f.seq());
            }
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) => panic!("{e}"),
        }
    }
    let s: Vec<String> = seqs.iter().map(|s| s.to_string()).collect();
    println!("seqs {}", s.join(","));
}

fn parse_seqs(out: &str) -> Vec<u64> {
    let line = out
        .lines()
        .find(|l| l.starts_with("seqs"))
        .expect("seqs line");
    line[4..]
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn child_entry() {
    common::child_entry(|role, arg| {
        let mut a = arg.split('|');
        let path = a.next().unwrap();
        match role {
            "produce" => produce(path, a.next().unwrap().parse().unwrap()),
            "consume" => consume(path),
            "stuck_producer" => {
                let ring = Ring::open(path).unwrap();
                let p = ring.producer().unwrap();
                for i in 0..3u64 {
                    let mut loan = p.loan().unwrap();
                    fill(loan.as_mut_slice::<u64>().unwrap(), i);
                    loan.set_tag(i);
                    loan.commit().unwrap();
                }
                let mut loan = p.loan().unwrap();
                let w = loan.as_mut_slice::<u64>().unwrap();
                fill(w, 99);
                w[WORDS / 2] ^= 1; // half-written: wrong from here on
                println!("loaned");
                std::thread::sleep(Duration::from_secs(120));
            }
            "hoarder" => {
                let ring = Ring::open(path).unwrap();
                let c = ring.consumer().unwrap();
                let a = c.recv_timeout(Duration::from_secs(60)).unwrap();
                let b = c.recv_timeout(Duration::from_secs(60)).unwrap();
                println!("holding {} {}", a.seq(), b.seq());
                std::thread::sleep(Duration::from_secs(120));
            }
            "idle" => {
                let ring = Ring::open(path).unwrap();
                let c = ring.consumer().unwrap();
                let (cpu0, t0) = (cpu_time(), Instant::now());
                let e = c.recv_timeout(Duration::from_secs(3)).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Timeout);
                let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
                println!(
                    "idle cpu_ms={} wall_ms={}",
                    cpu.as_millis(),
                    wall.as_millis()
                );
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[test]
fn overwrite_keeps_the_latest_frames_and_counts_the_lost() {
    for broadcast in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latest.npy");
        let ring = Ring::builder(Dtype::parse_user("uint64").unwrap(), &[WORDS])
            .slots(4)
            .broadcast(broadcast)
            .overwrite(true)
            .create(&path)
            .unwrap();
        let c = ring.consumer().unwrap(); // a slow consumer: reads only at the end
        let p = path.to_str().unwrap();
        common::finish(
            common::spawn_child("child_entry", "produce", &format!("{p}|100")),
            LIMIT,
        );
        let (mut got, mut lost) = (Vec::new(), 0);
        while let Ok(f) = c.try_recv() {
            assert!(check(f.as_slice::<u64>().unwrap(), f.tag()));
            lost += f.lost();
            got.push(f.seq());
        }
        assert_eq!(got, (96..100).collect::<Vec<_>>(), "broadcast={broadcast}");
        assert_eq!(lost, 96);
        assert_eq!(ring.stats().dropped, 96);
    }
}

#[test]
fn queue_delivers_every_frame_exactly_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_ring, path) = new_ring(&dir, 4, false);
    let n = frames();
    let consumers: Vec<_> = (0..3)
        .map(|_| common::spawn_child("child_entry", "consume", &path))
        .collect();
    let producer = common::spawn_child("child_entry", "produce", &format!("{path}|{n}"));
    common::finish(producer, LIMIT);
    let mut all = Vec::new();
    for c in consumers {
        let seqs = parse_seqs(&common::finish(c, LIMIT));
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order");
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "lost or duplicated frames");
}

#[test]
fn broadcast_delivers_every_frame_to_every_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, path) = new_ring(&dir, 4, true);
    let n = frames();
    let mut subs: Vec<_> = (0..3)
        .map(|_| common::spawn_child("child_entry", "consume", &path))
        .collect();
    let mut rxs: Vec<_> = subs.iter_mut().map(Lines::of).collect();
    for rx in &mut rxs {
        rx.wait_for("attached", LIMIT);
    }
    assert_eq!(ring.stats().participants.len(), 3);
    let producer = common::spawn_child("child_entry", "produce", &format!("{path}|{n}"));
    common::finish(producer, LIMIT);
    for (mut rx, mut s) in rxs.into_iter().zip(subs) {
        let line = rx.wait_for("seqs", LIMIT);
        assert!(common::wait_with_watchdog(&mut s, LIMIT).success());
        assert_eq!(parse_seqs(&line), (0..n).collect::<Vec<_>>());
    }
    let st = ring.stats();
    assert_eq!((st.free, st.committed, st.received), (4, n, 3 * n));
}

#[test]
fn killed_producer_is_disconnected_and_its_half_frame_never_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, path) = new_ring(&dir, 4, false);
    let c = ring.consumer().unwrap();
    let mut child = common::spawn_child("child_entry", "stuck_producer", &path);
    let mut rx = Lines::of(&mut child);
    rx.wait_for("loaned", LIMIT);
    common::sigkill(&mut child);
    for i in 0..3 {
        let f = c.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!((f.seq(), f.tag()), (i, i));
        assert!(check(f.as_slice::<u64>().unwrap(), i));
    }
    // The fourth frame was never committed: Disconnected, not a hang.
    let e = common::with_watchdog(LIMIT, || {
        c.recv_timeout(Duration::from_secs(60)).unwrap_err()
    });
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    assert!(matches!(c.try_recv(), Err(TryRecvError::Disconnected)));
    let st = ring.stats();
    assert_eq!(st.free, 4, "the dead producer's slot came back: {st:?}");
    // A new producer attaches and goes on.
    let p = ring.producer().unwrap();
    let mut loan = p.loan().unwrap();
    fill(loan.as_mut_slice::<u64>().unwrap(), 7);
    loan.set_tag(7);
    assert_eq!(loan.commit().unwrap(), 3);
    let f = c.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!((f.seq(), f.tag()), (3, 7));
}

#[test]
fn killed_consumer_gives_its_leases_and_entry_back() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, path) = new_ring(&dir, 3, false);
    let p = ring.producer().unwrap();
    for i in 0..3 {
        let mut loan = p.loan().unwrap();
        fill(loan.as_mut_slice::<u64>().unwrap(), i);
        loan.set_tag(i);
        loan.commit().unwrap();
    }
    let mut child = common::spawn_child("child_entry", "hoarder", &path);
    let mut rx = Lines::of(&mut child);
    rx.wait_for("holding 0 1", LIMIT);
    common::sigkill(&mut child);
    // Slots 0 and 1 are leased by a dead process; the producer gets them back.
    let got = common::with_watchdog(LIMIT, || {
        let a = p.loan_timeout(Duration::from_secs(60)).unwrap();
        let b = p.loan_timeout(Duration::from_secs(60)).unwrap();
        (a.slot(), b.slot())
    });
    assert_ne!(got.0, got.1);
    let st = ring.stats();
    assert!(st.participants.iter().all(|p| p.alive), "{st:?}");
    assert_eq!(st.participants.len(), 1);
}

#[test]
fn timeouts_return_in_about_the_time_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, _) = new_ring(&dir, 2, false);
    let c = ring.consumer().unwrap();
    let p = ring.producer().unwrap();
    for t in [
        Duration::from_millis(1),
        Duration::from_millis(120),
        Duration::from_millis(700),
    ] {
        let t0 = Instant::now();
        let e = c.recv_timeout(t).unwrap_err();
        let el = t0.elapsed();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(
            el >= t && el < t + Duration::from_secs(2),
            "recv {t:?} took {el:?}"
        );
    }
    let _held: Vec<_> = (0..2).map(|_| p.loan().unwrap()).collect();
    for t in [Duration::from_millis(5), Duration::from_millis(300)] {
        let t0 = Instant::now();
        let e = p.loan_timeout(t).unwrap_err();
        let el = t0.elapsed();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(
            el >= t && el < t + Duration::from_secs(2),
            "loan {t:?} took {el:?}"
        );
    }
    assert!(matches!(p.try_loan(), Err(sharray::TryLoanError::Full)));
    assert!(matches!(c.try_recv(), Err(TryRecvError::Empty)));
}

#[test]
fn a_blocked_consumer_stays_idle() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, path) = new_ring(&dir, 2, false);
    let _p = ring.producer().unwrap(); // so the ring is not disconnected
    let child = common::spawn_child("child_entry", "idle", &path);
    let out = common::finish(child, LIMIT);
    let line = out.lines().find(|l| l.starts_with("idle")).unwrap();
    let num = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (cpu, wall) = (num("cpu_ms="), num("wall_ms="));
    assert!(wall >= 3000);
    assert!(
        cpu * 10 < wall,
        "a parked consumer used {cpu} ms CPU in {wall} ms"
    );
}
