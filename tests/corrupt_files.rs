//! Hand-corrupted files: every one must give an error (never a panic or a
//! signal) through the library, and `check` must name what is wrong. The
//! same files through the CLI: `cli/tests/corrupt_files_cli.rs`.

mod common;

use std::path::Path;

use common::corrupt::{CTRL_OFF, check_only, corrupted, set_u32, set_u64, valid_bytes, write};
use sharray::{OpenOptions, SharedArray, UntypedArray};

#[test]
fn library_refuses_every_corrupted_file_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, kind) in corrupted(dir.path()) {
        let p = write(dir.path(), name, &bytes);
        for read_only in [false, true] {
            let err = OpenOptions::new()
                .read_only(read_only)
                .open_untyped(&p)
                .expect_err(name);
            assert_eq!(err.kind(), kind, "{name}: {err}");
            let msg = err.to_string();
            assert!(!msg.contains('\n'), "{name}: multi-line error {msg:?}");
            assert!(
                msg.contains(&*p.to_string_lossy()),
                "{name}: no path in {msg:?}"
            );
        }
        assert!(SharedArray::<f32>::open(&p).is_err(), "{name}");
        assert!(sharray::inspect(&p).is_err(), "{name}");
        let problems = sharray::check(&p, None).unwrap();
        assert!(!problems.is_empty(), "{name}: check found nothing");
        // Importing a corrupt file fails too, and leaves nothing behind.
        let dst = dir.path().join(format!("{name}.imported"));
        assert!(sharray::import_npy(&p, &dst, 0o600, &mut |_, _| {}).is_err());
        assert!(!dst.exists(), "{name}: import left a file behind");
    }
}

#[test]
fn check_reports_damage_that_open_tolerates() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good", &valid_bytes(dir.path()));
    assert_eq!(sharray::check(&good, None).unwrap(), vec![]);
    for (name, bytes) in check_only(dir.path()) {
        let p = write(dir.path(), name, &bytes);
        let problems = sharray::check(&p, None).unwrap();
        assert!(!problems.is_empty(), "{name}: check found nothing");
    }
}

#[test]
fn check_lists_every_problem_not_just_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = valid_bytes(dir.path());
    set_u32(&mut b, CTRL_OFF + 56, 1); // flags
    set_u32(&mut b, CTRL_OFF + 60, 0); // state
    b[CTRL_OFF + 100] = 1; // reserved
    let p = write(dir.path(), "many", &b);
    let problems = sharray::check(&p, None).unwrap();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(problems.len() >= 3, "{text:?}");
    assert!(text.iter().any(|t| t.contains("flags")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("state")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("reserved")), "{text:?}");
}

#[test]
fn plain_npy_with_odd_shapes_and_trailing_bytes() {
    // A plain .npy (data offset 128) with bytes after the data is accepted
    // (numpy ignores them), and a 0-length array works.
    let dir = tempfile::tempdir().unwrap();
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    let dict = "{'descr': '<i2', 'fortran_order': False, 'shape': (0, 5), }";
    b.extend_from_slice(&118u16.to_le_bytes());
    b.extend_from_slice(dict.as_bytes());
    b.resize(127, b' ');
    b.push(b'\n');
    b.extend_from_slice(&[1, 2, 3]);
    let p = write(dir.path(), "empty_trailing", &b);
    let a = UntypedArray::open(&p).unwrap();
    assert_eq!(a.shape(), &[0, 5]);
    assert_eq!(a.read().unwrap().bytes().len(), 0);
    assert_eq!(sharray::check(&p, None).unwrap(), vec![]);
}

// ---- Rings and queues: `check` validates the kind section in depth ----

use sharray::format::{queue as q, ring as r};
use sharray::{Dtype, Ring, WorkQueue};

/// File offset of the kind section of these small test files (data < 60 KiB).
const SEC: u64 = CTRL_OFF as u64 + 256;

/// A queue-mode ring (4 slots of 4 u64) left with 3 committed frames, one
/// received and released: HEAD 1, TAIL 3, two READY slots.
fn ring_file(dir: &Path, broadcast: bool) -> Vec<u8> {
    let p = dir.join(format!("ring-{broadcast}.npy"));
    {
        let ring = Ring::builder(Dtype::parse_user("uint64").unwrap(), &[4])
            .slots(4)
            .max_participants(4)
            .broadcast(broadcast)
            .create(&p)
            .unwrap();
        let prod = ring.producer().unwrap();
        let cons = ring.consumer().unwrap();
        for _ in 0..3 {
            prod.try_loan().unwrap().commit().unwrap();
        }
        drop(cons.try_recv().unwrap());
        // A live snapshot with a loan and a lease outstanding is clean too.
        let loan = prod.try_loan().unwrap();
        let lease = cons.try_recv().unwrap();
        assert_eq!(sharray::check(&p, None).unwrap(), vec![], "live ring");
        drop((loan, lease));
        if broadcast {
            // Keep the subscriber's frames pending: leak nothing, but let
            // the file keep a registered subscriber for the tests below.
            drop(cons);
        }
    }
    assert_eq!(sharray::check(&p, None).unwrap(), vec![], "closed ring");
    std::fs::read(&p).unwrap()
}

/// A task queue of 8 chunks (4 workers, barrier of 2): chunk 0 done, chunk
/// 1 claimed by a worker that died (its entry is still LIVE).
fn queue_file(dir: &Path) -> Vec<u8> {
    let p = dir.join("queue.npy");
    {
        let wq = WorkQueue::builder()
            .tasks(8)
            .max_workers(4)
            .barrier(2)
            .create(&p)
            .unwrap();
        let w = wq.join().unwrap();
        w.try_claim().unwrap().unwrap().complete().unwrap();
        let c = w.try_claim().unwrap().unwrap();
        assert_eq!(sharray::check(&p, None).unwrap(), vec![], "live queue");
        std::mem::forget(c);
        w.simulate_death();
    }
    assert_eq!(
        sharray::check(&p, None).unwrap(),
        vec![],
        "queue with a dead worker"
    );
    std::fs::read(&p).unwrap()
}

fn put64(b: &mut [u8], off: u64, v: u64) {
    set_u64(b, off as usize, v);
}

fn put32(b: &mut [u8], off: u64, v: u32) {
    set_u32(b, off as usize, v);
}

/// `check` names the problem, and the library does not panic on the file:
/// opening fails, or a short non-blocking session ends in `Ok` or an error.
fn assert_reported(dir: &Path, name: &str, bytes: &[u8], needle: &str, is_ring: bool) {
    let p = write(dir, name, bytes);
    let problems = sharray::check(&p, None).unwrap();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter().any(|t| t.contains(needle)),
        "{name}: expected a problem containing {needle:?}, got {text:?}"
    );
    if is_ring {
        if let Ok(ring) = Ring::open(&p)
            && let (Ok(prod), Ok(cons)) = (ring.producer(), ring.consumer())
        {
            if let Ok(l) = prod.try_loan() {
                let _ = l.commit();
            }
            let _ = cons.try_recv();
        }
    } else if let Ok(wq) = WorkQueue::open(&p) {
        let _ = wq.progress();
        if let Ok(w) = wq.join()
            && let Ok(Some(c)) = w.try_claim()
        {
            let _ = c.complete();
        }
    }
}

#[test]
fn check_reports_ring_state_corruptions() {
    let dir = tempfile::tempdir().unwrap();
    let good = ring_file(dir.path(), false);
    let geo = r::Geometry::new(4, 4);
    let slot = move |k: u32| SEC + geo.slot(k);
    let word = |off: u64| u64::from_le_bytes(good[off as usize..][..8].try_into().unwrap());
    let head = word(SEC + r::lock::HEAD);
    assert!(
        head < word(SEC + r::lock::TAIL),
        "the fixture has a queued frame"
    );
    let head_slot = (word(SEC + geo.cell((head % 4) as u32)) & 0xffff) as u32;
    type Mutation = (&'static str, Box<dyn Fn(&mut Vec<u8>)>, &'static str);
    let cases: Vec<Mutation> = vec![
        (
            // A ring of the previous format (version 2: queue hand-off
            // under the lock, other offsets) is refused, not misread.
            "ring_version_2",
            Box::new(move |b| put32(b, SEC, 2)),
            "made by an older sharray",
        ),
        (
            "ring_version_4",
            Box::new(move |b| put32(b, SEC, 4)),
            "made by a newer sharray",
        ),
        (
            "slot_state_unknown",
            Box::new(move |b| put64(b, slot(0) + r::slot::STATE, 7)),
            "unknown state",
        ),
        (
            "slot_owner_out_of_table",
            Box::new(move |b| {
                put64(
                    b,
                    slot(0) + r::slot::STATE,
                    r::state_word(r::SlotState::Writing, 9),
                )
            }),
            "beyond the table",
        ),
        (
            "slot_writer_not_registered",
            Box::new(move |b| {
                put64(
                    b,
                    slot(0) + r::slot::STATE,
                    r::state_word(r::SlotState::Writing, 1),
                )
            }),
            "role is free",
        ),
        (
            "head_past_tail",
            Box::new(move |b| put64(b, SEC + r::lock::HEAD, 9)),
            "further apart",
        ),
        (
            "tail_too_far_ahead",
            Box::new(move |b| {
                put64(b, SEC + r::lock::TAIL, 40);
            }),
            "further apart",
        ),
        (
            "tail_at_max",
            Box::new(move |b| {
                put64(b, SEC + r::lock::TAIL, u64::MAX);
                put64(b, SEC + r::lock::HEAD, u64::MAX - 2);
            }),
            "too far from HEAD",
        ),
        (
            "log_cell_out_of_range",
            Box::new(move |b| put64(b, SEC + geo.cell(1), r::cell_full(0, 99))),
            "names slot 99",
        ),
        (
            "queued_slot_not_ready",
            Box::new(move |b| {
                put64(b, slot(head_slot) + r::slot::STATE, 0);
            }),
            "is FREE, but a log cell",
        ),
        (
            "ready_slot_not_queued",
            Box::new(move |b| put64(b, SEC + r::lock::HEAD, head + 1)),
            "behind HEAD",
        ),
        (
            "journal_too_long",
            Box::new(move |b| put64(b, SEC + r::lock::JOURNAL_LEN, 17)),
            "journal length",
        ),
        (
            "journal_entry_outside",
            Box::new(move |b| {
                put64(b, SEC + r::lock::JOURNAL_LEN, 1);
                put64(b, SEC + r::JOURNAL, 1 << 40);
            }),
            "journal entry 0",
        ),
        (
            "lock_word_garbage",
            Box::new(move |b| put32(b, SEC + r::lock::LOCK, 200)),
            "lock word",
        ),
        (
            "participant_role_unknown",
            Box::new(move |b| put64(b, SEC + geo.entry(2) + r::part::ROLE, 9)),
            "unknown role",
        ),
        (
            "subscriber_in_queue_mode",
            Box::new(move |b| put64(b, SEC + geo.entry(2) + r::part::ROLE, 3)),
            "not in broadcast mode",
        ),
    ];
    for (name, f, needle) in cases {
        let mut b = good.clone();
        f(&mut b);
        assert_reported(dir.path(), name, &b, needle, true);
    }
}

#[test]
fn check_reports_broadcast_ring_corruptions() {
    let dir = tempfile::tempdir().unwrap();
    let good = ring_file(dir.path(), true);
    let geo = r::Geometry::new(4, 4);
    let slot = move |k: u32| SEC + geo.slot(k);
    type Mutation = (&'static str, Box<dyn Fn(&mut Vec<u8>)>, &'static str);
    let cases: Vec<Mutation> = vec![
        (
            "ready_without_pending",
            Box::new(move |b| {
                put64(
                    b,
                    slot(0) + r::slot::STATE,
                    r::state_word(r::SlotState::Ready, 0),
                );
                put64(b, slot(0) + r::slot::PENDING, 0);
            }),
            "no pending subscriber",
        ),
        (
            "free_with_pending",
            Box::new(move |b| put64(b, slot(0) + r::slot::PENDING, 1)),
            "not READY but has PENDING",
        ),
        (
            "subscriber_bit_without_entry",
            Box::new(move |b| put64(b, SEC + r::lock::SUBSCRIBERS, 0b100)),
            "SUBSCRIBERS bit 2",
        ),
        (
            "subscriber_cursor_past_tail",
            Box::new(move |b| {
                put64(b, SEC + geo.entry(3) + r::part::ROLE, 3);
                put64(b, SEC + r::lock::SUBSCRIBERS, 0b1000);
                put64(b, SEC + geo.entry(3) + r::part::CURSOR, 1000);
            }),
            "cursor",
        ),
        (
            "reading_in_broadcast",
            Box::new(move |b| {
                put64(
                    b,
                    slot(0) + r::slot::STATE,
                    r::state_word(r::SlotState::Reading, 0),
                )
            }),
            "broadcast mode",
        ),
    ];
    for (name, f, needle) in cases {
        let mut b = good.clone();
        f(&mut b);
        assert_reported(dir.path(), name, &b, needle, true);
    }
}

#[test]
fn check_reports_queue_state_corruptions() {
    let dir = tempfile::tempdir().unwrap();
    let good = queue_file(dir.path());
    let rec = |i: u64| 4096 + i * q::RECORD_LEN;
    let entry = |i: u32| SEC + q::QueueHeader::entry_off(i);
    type Mutation = (&'static str, Box<dyn Fn(&mut Vec<u8>)>, &'static str);
    let cases: Vec<Mutation> = vec![
        (
            "chunk_state_unknown",
            Box::new(move |b| put64(b, rec(3), q::word(7, 0))),
            "unknown state 7",
        ),
        (
            "pending_with_owner",
            Box::new(move |b| put64(b, rec(3), q::word(q::PENDING, 5))),
            "could never be claimed",
        ),
        (
            "claimed_by_nobody",
            Box::new(move |b| put64(b, rec(3), q::word(q::CLAIMED, 12345))),
            "no live worker entry",
        ),
        (
            "done_hint_too_high",
            Box::new(move |b| put64(b, SEC + q::off::DONE, u64::MAX)),
            "done hint",
        ),
        (
            // Found by the queue_file fuzzer: a hint that already counts a
            // completion still in flight (a reaper would count it again).
            "done_hint_counts_a_completion_in_flight",
            Box::new(move |b| {
                put64(b, SEC + q::off::DONE, 2);
            }),
            "done hint",
        ),
        (
            // The defect of queue format 1: a chunk DONE whose count was
            // lost (the worker died between the two), so waiters never end.
            "completion_count_lost",
            Box::new(move |b| {
                put32(b, entry(0) + q::entry::STATE, q::ENTRY_FREE);
                for j in 0..u64::from(q::HELD_SLOTS) {
                    put64(b, entry(0) + q::entry::HELD + 8 * j, 0);
                }
                put64(b, rec(1), q::word(q::PENDING, 0));
                put64(b, entry(0) + q::entry::DONE_WORD, q::done_word(0, false));
            }),
            "completion counts add up",
        ),
        (
            // Found by the queue_file fuzzer: a lost count behind a worker
            // entry that is still registered (its process died).
            "completion_count_lost_behind_a_dead_worker",
            Box::new(move |b| {
                put64(b, entry(0) + q::entry::DONE_WORD, q::done_word(0, false));
            }),
            "completion counts add up",
        ),
        (
            "claimed_but_not_held",
            Box::new(move |b| {
                for j in 0..u64::from(q::HELD_SLOTS) {
                    put64(b, entry(0) + q::entry::HELD + 8 * j, 0);
                }
            }),
            "held slots do not list it",
        ),
        (
            "pending_chunk_nobody_finds",
            Box::new(move |b| {
                put64(b, rec(0), q::word(q::PENDING, 0));
                put64(b, SEC + q::off::SCAN, q::scan_word(2, 0));
            }),
            "no claimer would find it",
        ),
        (
            "held_chunk_beyond_the_table",
            Box::new(move |b| put64(b, entry(0) + q::entry::HELD + 8, 100)),
            "beyond the 8 chunks",
        ),
        (
            "worker_state_unknown",
            Box::new(move |b| put32(b, entry(2) + q::entry::STATE, 3)),
            "unknown state 3",
        ),
        (
            "worker_ids_shared",
            Box::new(move |b| {
                let id = u32::from_le_bytes(
                    b[(entry(0) + q::entry::ID) as usize..][..4]
                        .try_into()
                        .unwrap(),
                );
                put32(b, entry(1) + q::entry::STATE, q::ENTRY_LIVE);
                put32(b, entry(1) + q::entry::ID, id);
            }),
            "share the id",
        ),
        (
            "barrier_overfull",
            Box::new(move |b| put32(b, SEC + q::off::BARRIER, 5)),
            "barrier word",
        ),
        (
            "barrier_broken_garbage",
            Box::new(move |b| put32(b, SEC + q::off::BARRIER_BROKEN, 9)),
            "broken flag",
        ),
    ];
    for (name, f, needle) in cases {
        let mut b = good.clone();
        f(&mut b);
        assert_reported(dir.path(), name, &b, needle, false);
    }
}

/// States that are legal mid-operation are never reported: `check` runs
/// over rings and a queue while threads use them.
#[test]
fn check_reports_nothing_on_busy_rings_and_queues() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    for broadcast in [false, true] {
        let p = dir.path().join(format!("busy-{broadcast}.npy"));
        let ring = Ring::builder(Dtype::parse_user("uint64").unwrap(), &[2])
            .slots(4)
            .max_participants(8)
            .broadcast(broadcast)
            .overwrite(broadcast)
            .create(&p)
            .unwrap();
        stop.store(false, Ordering::Relaxed);
        std::thread::scope(|s| {
            for _ in 0..2 {
                let prod = ring.producer().unwrap();
                let stop = &stop;
                s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(l) = prod.try_loan() {
                            l.commit().unwrap();
                        }
                    }
                });
            }
            for _ in 0..2 {
                let cons = ring.consumer().unwrap();
                let stop = &stop;
                s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        drop(cons.try_recv());
                    }
                });
            }
            let until = Instant::now() + Duration::from_millis(400);
            while Instant::now() < until {
                let problems = sharray::check(&p, None).unwrap();
                if !problems.is_empty() {
                    stop.store(true, Ordering::Relaxed);
                    panic!("busy ring (broadcast {broadcast}): {problems:?}");
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    let p = dir.path().join("busy-queue.npy");
    let wq = WorkQueue::builder()
        .tasks(100_000)
        .max_workers(4)
        .create(&p)
        .unwrap();
    stop.store(false, Ordering::Relaxed);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let w = wq.join().unwrap();
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match w.try_claim().unwrap() {
                        Some(c) => c.complete().unwrap(),
                        None => break,
                    }
                }
            });
        }
        let until = Instant::now() + Duration::from_millis(400);
        while Instant::now() < until {
            let problems = sharray::check(&p, None).unwrap();
            if !problems.is_empty() {
                stop.store(true, Ordering::Relaxed);
                panic!("busy queue: {problems:?}");
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
}
