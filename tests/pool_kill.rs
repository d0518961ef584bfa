//! Worker pools under SIGKILL: workers are killed at random moments (and one
//! deterministically in the middle of a chunk, after writing garbage into its
//! rows); replacements join; the job still finishes with every chunk
//! completed exactly once and the output correct.
//!
//! `SHARRAY_POOL_KILLS` sets the number of random kills (default 8),
//! `SHARRAY_POOL_KILL_ROWS` the rows of the array (default 16384, 256 f32
//! per row). `SHARRAY_TEST_SEED` replays a run (the seed is printed).

mod common;

use std::process::Child;
use std::time::Duration;

use common::{Lines, Rng, env_or};
use sharray::pool::ChunkState;
use sharray::{SharedArray, WorkQueue};

const COLS: usize = 256;
const CHUNK_ROWS: usize = 32;

fn input_value(i: usize) -> f32 {
    (i % 7919) as f32 * 0.25 - 3.0
}

/// Process one chunk slowly and in two halves with garbage in between, so a
/// kill inside a chunk leaves visibly wrong rows behind.
fn process(c: &sharray::Claim, src: &[f32], out: &SharedArray<f32>, stall: bool) {
    let r = c.rows();
    let x = &src[r.start * COLS..r.end * COLS];
    let mut y = c.rows_mut(out).unwrap();
    y.fill(f32::NAN);
    if stall {
        println!("STALLED {}", r.start / CHUNK_ROWS);
        loop {
            std::thread::sleep(Duration::from_secs(1)); // until SIGKILL
        }
    }
    let half = y.len() / 2;
    for (o, i) in y[..half].iter_mut().zip(x) {
        *o = 2.0 * i + 1.0;
    }
    std::thread::sleep(Duration::from_millis(3));
    for (o, i) in y[half..].iter_mut().zip(&x[half..]) {
        *o = 2.0 * i + 1.0;
    }
}

#[test]
fn child_entry() {
    common::child_entry(|role, arg| {
        let parts: Vec<&str> = arg.split('|').collect();
        let q = WorkQueue::open(parts[0]).unwrap();
        let input = SharedArray::<f32>::open_read_only(parts[1]).unwrap();
        let out = SharedArray::<f32>::open(parts[2]).unwrap();
        let src = input.read().unwrap();
        let w = q.join().unwrap();
        println!("JOINED {}", w.id());
        let mut stall = role == "staller";
        while let Some(c) = w.claim_timeout(Duration::from_secs(60)).unwrap() {
            process(&c, &src, &out, stall);
            stall = false;
            c.complete().unwrap();
        }
        println!("FINISHED");
    });
}

#[test]
fn killed_workers_chunks_are_requeued_and_the_output_is_right() {
    let rows = env_or("SHARRAY_POOL_KILL_ROWS", 16384) as usize;
    let kills = env_or("SHARRAY_POOL_KILLS", 8);
    let mut rng = Rng::new("pool_kill");
    let dir = tempfile::tempdir().unwrap();
    let (qp, ip, op) = (
        dir.path().join("q.npy"),
        dir.path().join("in.npy"),
        dir.path().join("out.npy"),
    );
    let input = SharedArray::<f32>::create(&ip, &[rows, COLS]).unwrap();
    {
        let mut w = input.write().unwrap();
        for (i, v) in w.iter_mut().enumerate() {
            *v = input_value(i);
        }
    }
    let out = SharedArray::<f32>::create(&op, &[rows, COLS]).unwrap();
    let q = WorkQueue::builder()
        .rows(rows)
        .chunk_rows(CHUNK_ROWS)
        .max_workers(8)
        .create(&qp)
        .unwrap();
    let arg = format!("{}|{}|{}", qp.display(), ip.display(), op.display());

    // The staller claims one chunk, fills it with NaN and hangs: kill it
    // there, deterministically mid-chunk.
    let mut staller = common::spawn_child("child_entry", "staller", &arg);
    let mut lines = Lines::of(&mut staller);
    let stalled = lines.wait_for("STALLED", Duration::from_secs(60));
    common::sigkill(&mut staller);
    eprintln!("killed the staller at {stalled}");

    let mut workers: Vec<Child> = (0..3)
        .map(|_| common::spawn_child("child_entry", "worker", &arg))
        .collect();
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(10 + rng.below(60)));
        if q.is_done() {
            eprintln!("job finished after {k} random kills");
            break;
        }
        let victim = rng.below(workers.len() as u64) as usize;
        common::sigkill(&mut workers[victim]);
        workers[victim] = common::spawn_child("child_entry", "worker", &arg);
    }
    let p = common::with_watchdog(Duration::from_secs(150), || {
        q.wait_all(Duration::from_secs(120)).unwrap()
    });
    for w in workers {
        common::finish(w, Duration::from_secs(120));
    }
    eprintln!("{p:?}");
    assert!(p.is_complete());
    assert!(p.requeued >= 1, "the staller's chunk was re-queued: {p:?}");
    for i in 0..q.chunks() {
        let c = q.chunk(i);
        assert!(matches!(c.state, ChunkState::Done(_)), "chunk {i}: {c:?}");
        assert_eq!(c.claims, c.requeues + 1, "chunk {i}: {c:?}");
    }
    let r = out.read().unwrap();
    let wrong: Vec<usize> = (0..r.len())
        .filter(|&i| r[i] != 2.0 * input_value(i) + 1.0)
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "wrong output elements (first ten): {wrong:?}"
    );
}

#[test]
fn the_parent_requeues_a_dead_workers_chunk_while_it_waits() {
    // Nobody else is left to claim: the parent's wait_all reaps, then a new
    // worker picks the chunk up.
    let dir = tempfile::tempdir().unwrap();
    let (qp, ip, op) = (
        dir.path().join("q.npy"),
        dir.path().join("in.npy"),
        dir.path().join("out.npy"),
    );
    let rows = CHUNK_ROWS * 4;
    SharedArray::<f32>::create(&ip, &[rows, COLS]).unwrap();
    let out = SharedArray::<f32>::create(&op, &[rows, COLS]).unwrap();
    let q = WorkQueue::builder()
        .rows(rows)
        .chunk_rows(CHUNK_ROWS)
        .create(&qp)
        .unwrap();
    let arg = format!("{}|{}|{}", qp.display(), ip.display(), op.display());
    let mut staller = common::spawn_child("child_entry", "staller", &arg);
    let mut lines = Lines::of(&mut staller);
    lines.wait_for("STALLED", Duration::from_secs(60));
    assert_eq!(q.progress().workers, 1);
    assert_eq!(q.progress().in_flight, 1);
    common::sigkill(&mut staller);
    // The dead worker is found by the parent's wait (which then times out).
    let e = q.wait_all(Duration::from_millis(200)).unwrap_err();
    assert_eq!(e.kind(), sharray::ErrorKind::Timeout);
    let p = q.progress();
    assert_eq!(
        (p.workers, p.in_flight, p.pending, p.requeued),
        (0, 0, 4, 1)
    );
    let w = common::spawn_child("child_entry", "worker", &arg);
    common::finish(w, Duration::from_secs(120));
    assert!(q.wait_all(Duration::from_secs(10)).unwrap().is_complete());
    assert!(out.read().unwrap().iter().all(|&v| v == 1.0));
}
