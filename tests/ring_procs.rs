//! Rings across real processes: delivery (queue: exactly once; broadcast: to
//! every subscriber), in order; streams end only when a producer closes them
//! (producers that exit, or are killed, leave consumers waiting, and a closed
//! stream takes a new producer only when asked to reopen); a killed
//! producer's half-written frame is never delivered; a killed consumer's
//! leases come back; timeouts; a blocked consumer stays idle.
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

/// Commit `n` frames, tag = 1000 + i, payload checked by consumers. `end`:
/// "close" closes the stream afterwards, "open" just exits, "reopen" attaches
/// with `producer_reopening` (and exits without closing).
fn produce(path: &str, n: u64, end: &str) {
    let ring = Ring::open(path).unwrap();
    let p = match end {
        "reopen" => ring.producer_reopening(),
        _ => ring.producer(),
    };
    let p = match p {
        Ok(p) => p,
        Err(e) => {
            println!("refused {:?}: {e}", e.kind());
            return;
        }
    };
    for i in 0..n {
        let mut loan = p.loan_timeout(Duration::from_secs(60)).unwrap();
        fill(loan.as_mut_slice::<u64>().unwrap(), 1000 + i);
        loan.set_tag(1000 + i);
        loan.commit().unwrap();
    }
    if end == "close" {
        p.close().unwrap();
    }
    println!("produced");
}

/// Receive until Disconnected (the stream was closed and drained); print
/// the sequence numbers.
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
            "produce" => produce(
                path,
                a.next().unwrap().parse().unwrap(),
                a.next().unwrap_or("close"),
            ),
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
fn a_killed_producer_does_not_end_the_stream_and_its_half_frame_is_never_delivered() {
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
    // The fourth frame was never committed, and the producer died without
    // closing: the consumer times out (it waits for the next producer),
    // it does not see the end of the stream.
    let e = common::with_watchdog(LIMIT, || {
        c.recv_timeout(Duration::from_millis(500)).unwrap_err()
    });
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(matches!(c.try_recv(), Err(TryRecvError::Empty)));
    let st = ring.stats();
    assert_eq!(st.free, 4, "the dead producer's slot came back: {st:?}");
    assert_eq!(st.producers_attached(), 0, "{st:?}");
    assert!(!st.closed);
    // A restarted producer (another process) continues the stream, and its
    // close ends it once drained.
    common::finish(
        common::spawn_child("child_entry", "produce", &format!("{path}|2|close")),
        LIMIT,
    );
    for seq in 3..5 {
        let f = c.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!((f.seq(), f.tag()), (seq, 1000 + seq - 3));
        assert!(check(f.as_slice::<u64>().unwrap(), f.tag()));
    }
    let e = c.recv_timeout(Duration::from_secs(30)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    assert!(ring.stats().closed);
}

#[test]
fn a_consumer_started_first_receives_across_producer_processes_until_close() {
    for broadcast in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (ring, path) = new_ring(&dir, 4, broadcast);
        let mut consumer = common::spawn_child("child_entry", "consume", &path);
        let mut rx = Lines::of(&mut consumer);
        rx.wait_for("attached", LIMIT);
        // No producer has ever attached: the consumer keeps waiting.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(ring.stats().participants.len(), 1);
        // Three producer processes one after the other, none closing; then a
        // fourth that closes.
        for end in ["open", "open", "open", "close"] {
            let out = common::finish(
                common::spawn_child("child_entry", "produce", &format!("{path}|5|{end}")),
                LIMIT,
            );
            assert!(out.contains("produced"), "{out}");
            assert_eq!(ring.stats().closed, end == "close");
        }
        let line = rx.wait_for("seqs", LIMIT);
        assert!(common::wait_with_watchdog(&mut consumer, LIMIT).success());
        assert_eq!(
            parse_seqs(&line),
            (0..20).collect::<Vec<_>>(),
            "broadcast={broadcast}"
        );
    }
}

#[test]
fn a_closed_stream_takes_a_new_producer_only_when_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, path) = new_ring(&dir, 4, false);
    let c = ring.consumer().unwrap();
    common::finish(
        common::spawn_child("child_entry", "produce", &format!("{path}|1|close")),
        LIMIT,
    );
    assert_eq!(c.recv_timeout(LIMIT).unwrap().seq(), 0);
    assert!(matches!(c.try_recv(), Err(TryRecvError::Disconnected)));
    // A plain producer (another process, then this one) is refused and says how to reopen.
    let out = common::finish(
        common::spawn_child("child_entry", "produce", &format!("{path}|1|open")),
        LIMIT,
    );
    assert!(out.contains("refused Disconnected"), "{out}");
    assert!(out.contains("producer_reopening"), "{out}");
    let e = ring.producer().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected);
    assert_eq!(ring.stats().committed, 1);
    assert!(ring.stats().closed);
    // Reopening: the stream goes on; the consumer receives again.
    let out = common::finish(
        common::spawn_child("child_entry", "produce", &format!("{path}|2|reopen")),
        LIMIT,
    );
    assert!(out.contains("produced"), "{out}");
    assert!(!ring.stats().closed);
    for seq in 1..3 {
        assert_eq!(c.recv_timeout(LIMIT).unwrap().seq(), seq);
    }
    let e = c.recv_timeout(Duration::from_millis(200)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
}

#[test]
fn closing_wakes_waiting_consumers_and_stops_other_producers() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, _) = new_ring(&dir, 1, false);
    let c = ring.consumer().unwrap();
    let (a, b) = (ring.producer().unwrap(), ring.producer().unwrap());
    a.loan().unwrap().commit().unwrap();
    std::thread::scope(|s| {
        // b waits for a free slot (the only one holds frame 0).
        let waiting = s.spawn(|| b.loan_timeout(LIMIT).map(|_| ()).unwrap_err());
        std::thread::sleep(Duration::from_millis(100));
        a.close().unwrap();
        let e = waiting.join().unwrap();
        assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    });
    assert_eq!(c.recv().unwrap().seq(), 0);
    std::thread::scope(|s| {
        let waiting = s.spawn(|| c.recv_timeout(LIMIT).map(|_| ()).unwrap_err());
        let e = waiting.join().unwrap();
        assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    });
    assert!(matches!(
        b.try_loan(),
        Err(sharray::TryLoanError::Error(e)) if e.kind() == ErrorKind::Disconnected
    ));
    // A loan taken before the close is not delivered after it.
    let r = ring.producer_reopening().unwrap();
    let loan = r.loan().unwrap();
    r.close().unwrap();
    let e = loan.commit().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    assert_eq!(ring.stats().free, 1, "the loan's slot came back");
    assert!(matches!(c.try_recv(), Err(TryRecvError::Disconnected)));
    drop(r);
    // Closing again does nothing.
    a.close().unwrap();
    assert_eq!(ring.stats().producers_attached(), 2);
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
    let (_ring, path) = new_ring(&dir, 2, false);
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

/// A lease held while more than K frames pass must not stall the producer
/// while other slots are free: a loan takes any free slot. (A fast path
/// that ties position n to slot n % K, as a plain Vyukov ring does, fails
/// this; issue 12.)
#[test]
fn a_held_lease_does_not_stall_the_producer_while_other_slots_are_free() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, _path) = new_ring(&dir, 4, false);
    let (p, c) = (ring.producer().unwrap(), ring.consumer().unwrap());
    p.loan().unwrap().commit().unwrap();
    let kept = c.try_recv().unwrap();
    for i in 0..12u64 {
        let loan = p
            .loan_timeout(Duration::from_millis(200))
            .unwrap_or_else(|e| panic!("frame {i}: {e} ({:?})", ring.stats()));
        loan.commit().unwrap();
        drop(c.try_recv().unwrap());
    }
    assert_eq!(kept.seq(), 0);
}
