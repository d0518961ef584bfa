//! Property test: the queue's state machine against a simple model.
//!
//! One process drives up to four workers through join / claim / complete /
//! abandon / death / reap / leave in random order and compares every result
//! and the progress counters with a model. Deaths are simulated with
//! `Worker::simulate_death`, which releases the liveness lock exactly as the
//! kernel does for a killed process (real kills are tested in pool_kill.rs).
//!
//! `SHARRAY_POOL_MODEL_CASES` raises the number of cases (default 48).

use proptest::prelude::*;
use sharray::pool::ChunkState;
use sharray::{Claim, ErrorKind, WorkQueue, Worker};

const WORKERS: usize = 4;
const SLOTS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Join(usize),
    Claim(usize),
    Complete(usize, usize),
    Abandon(usize, usize),
    Die(usize),
    Leave(usize),
    Reap,
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WORKERS;
    prop_oneof![
        2 => w.clone().prop_map(Op::Join),
        5 => w.clone().prop_map(Op::Claim),
        4 => (w.clone(), 0..3usize).prop_map(|(a, b)| Op::Complete(a, b)),
        1 => (w.clone(), 0..3usize).prop_map(|(a, b)| Op::Abandon(a, b)),
        1 => w.clone().prop_map(Op::Die),
        1 => w.prop_map(Op::Leave),
        1 => Just(Op::Reap),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum M {
    Pending,
    Claimed(usize),
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Free,
    Live(usize),
    Dead(usize),
}

struct Model {
    chunks: Vec<M>,
    cursor: usize,
    slots: [Slot; SLOTS],
    requeued: u64,
}

impl Model {
    fn requeue_of(&mut self, w: usize) -> u64 {
        let mut n = 0;
        for c in self.chunks.iter_mut() {
            if *c == M::Claimed(w) {
                *c = M::Pending;
                n += 1;
            }
        }
        self.requeued += n;
        n
    }

    fn next_claim(&mut self) -> Option<usize> {
        if self.cursor < self.chunks.len() {
            self.cursor += 1;
            return Some(self.cursor - 1);
        }
        self.chunks.iter().position(|c| *c == M::Pending)
    }
}

struct Live {
    worker: Worker,
    claims: Vec<Claim>,
}

fn check(q: &WorkQueue, m: &Model, ids: &[Option<u32>; WORKERS]) {
    let p = q.progress();
    let done = m.chunks.iter().filter(|c| **c == M::Done).count() as u64;
    let in_flight = m
        .chunks
        .iter()
        .filter(|c| matches!(c, M::Claimed(_)))
        .count() as u64;
    assert_eq!(p.done, done, "done");
    assert_eq!(p.in_flight, in_flight, "in flight");
    assert_eq!(
        p.pending,
        m.chunks.len() as u64 - done - in_flight,
        "pending"
    );
    assert_eq!(p.requeued, m.requeued, "requeued");
    let live = m
        .slots
        .iter()
        .filter(|s| matches!(s, Slot::Live(_)))
        .count() as u32;
    assert_eq!(p.workers, live, "live workers");
    for (i, c) in m.chunks.iter().enumerate() {
        let got = q.chunk(i).state;
        match c {
            M::Pending => assert_eq!(got, ChunkState::Pending, "chunk {i}"),
            M::Done => assert!(matches!(got, ChunkState::Done(_)), "chunk {i}: {got:?}"),
            M::Claimed(w) => {
                // Owner ids of dead workers are remembered by the model too.
                if let Some(id) = ids[*w] {
                    assert_eq!(got, ChunkState::Claimed(id), "chunk {i}");
                } else {
                    assert!(matches!(got, ChunkState::Claimed(_)), "chunk {i}");
                }
            }
        }
    }
}

fn run(n: usize, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let q = WorkQueue::builder()
        .tasks(n)
        .max_workers(SLOTS as u32)
        .create(dir.path().join("q.npy"))
        .unwrap();
    let mut m = Model {
        chunks: vec![M::Pending; n],
        cursor: 0,
        slots: [Slot::Free; SLOTS],
        requeued: 0,
    };
    let mut workers: Vec<Option<Live>> = (0..WORKERS).map(|_| None).collect();
    // The id each model worker had (kept after death to check owners).
    let mut ids: [Option<u32>; WORKERS] = [None; WORKERS];
    for op in ops {
        match op {
            Op::Join(w) => {
                if workers[w].is_some() {
                    continue;
                }
                // A worker that died keeps its model identity until it rejoins.
                if m.slots.contains(&Slot::Dead(w)) {
                    continue;
                }
                let free = m.slots.iter().position(|s| !matches!(s, Slot::Live(_)));
                match (q.join(), free) {
                    (Ok(worker), Some(s)) => {
                        assert_eq!(worker.slot() as usize, s);
                        if let Slot::Dead(old) = m.slots[s] {
                            m.requeue_of(old);
                        }
                        m.slots[s] = Slot::Live(w);
                        ids[w] = Some(worker.id());
                        workers[w] = Some(Live {
                            worker,
                            claims: Vec::new(),
                        });
                    }
                    (Err(e), None) => assert_eq!(e.kind(), ErrorKind::Full),
                    (r, f) => panic!("join: got {:?}, model free slot {f:?}", r.map(|_| ())),
                }
            }
            Op::Claim(w) => {
                let Some(l) = workers[w].as_mut() else {
                    continue;
                };
                let got = l.worker.try_claim().unwrap();
                let want = m.next_claim();
                assert_eq!(got.as_ref().map(|c| c.index()), want);
                if let Some(c) = got {
                    m.chunks[c.index()] = M::Claimed(w);
                    l.claims.push(c);
                }
            }
            Op::Complete(w, k) | Op::Abandon(w, k) => {
                let Some(l) = workers[w].as_mut() else {
                    continue;
                };
                if l.claims.is_empty() {
                    continue;
                }
                let c = l.claims.remove(k % l.claims.len());
                let i = c.index();
                if matches!(op, Op::Complete(..)) {
                    c.complete().unwrap();
                    m.chunks[i] = M::Done;
                } else {
                    c.abandon().unwrap();
                    m.chunks[i] = M::Pending;
                    m.requeued += 1;
                }
            }
            Op::Die(w) => {
                let Some(l) = workers[w].take() else { continue };
                let s = l.worker.slot() as usize;
                l.worker.simulate_death();
                drop(l.claims); // a dead worker's claims do nothing when dropped
                m.slots[s] = Slot::Dead(w);
            }
            Op::Leave(w) => {
                let Some(l) = workers[w].take() else { continue };
                let s = l.worker.slot() as usize;
                for c in l.claims {
                    m.chunks[c.index()] = M::Pending;
                    m.requeued += 1;
                    drop(c); // dropping an unfinished claim gives it back
                }
                drop(l.worker);
                m.slots[s] = Slot::Free;
            }
            Op::Reap => {
                let mut want = 0;
                for s in 0..SLOTS {
                    if let Slot::Dead(old) = m.slots[s] {
                        want += m.requeue_of(old);
                        m.slots[s] = Slot::Free;
                    }
                }
                assert_eq!(q.reap().unwrap(), want);
            }
        }
        check(&q, &m, &ids);
    }
    // Drain: everyone leaves, the dead are reaped, one worker finishes the job.
    for l in workers.iter_mut() {
        if let Some(l) = l.take() {
            drop(l.claims);
        }
    }
    q.reap().unwrap();
    let w = q.join().unwrap();
    let mut completed = 0;
    while let Some(c) = w.try_claim().unwrap() {
        c.complete().unwrap();
        completed += 1;
    }
    let p = q.progress();
    assert!(p.is_complete(), "{p:?}");
    assert_eq!(
        completed + m.chunks.iter().filter(|c| **c == M::Done).count(),
        n
    );
    for i in 0..n {
        assert!(matches!(q.chunk(i).state, ChunkState::Done(_)));
    }
}

fn cases() -> u32 {
    std::env::var("SHARRAY_POOL_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn queue_matches_model(n in 0usize..24, ops in proptest::collection::vec(op(), 0..80)) {
        run(n, ops);
    }
}
