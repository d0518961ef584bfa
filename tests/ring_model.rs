//! Property test: the ring's slot state machine against a simple model
//! (a `VecDeque` per mode), in one process and one thread, with random
//! sequences of loan / commit / drop-loan / recv / release.
//!
//! Cases: 256 by default; set `PROPTEST_CASES` for more.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;
use sharray::{Dtype, ReadLease, Ring, TryLoanError, TryRecvError, WriteLoan};

#[derive(Debug, Clone)]
enum Op {
    Loan,
    Commit(usize, u64),
    DropLoan(usize),
    Recv(usize),
    Release(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Loan),
        3 => (any::<usize>(), any::<u64>()).prop_map(|(i, t)| Op::Commit(i, t)),
        1 => any::<usize>().prop_map(Op::DropLoan),
        3 => any::<usize>().prop_map(Op::Recv),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(c, i)| Op::Release(c, i)),
    ]
}

/// What the model expects of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expect {
    seq: u64,
    tag: u64,
}

/// Broadcast frame bookkeeping: subscribers that still need / hold it.
#[derive(Debug, Default)]
struct Pending {
    tag: u64,
    pending: u32,
    leased: u32,
}

fn run(k: u32, broadcast: bool, overwrite: bool, nsubs: usize, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.npy");
    let ring = Ring::builder(Dtype::parse_user("uint64").unwrap(), &[4])
        .slots(k)
        .broadcast(broadcast)
        .overwrite(overwrite)
        .max_participants(8)
        .create(&path)
        .unwrap();
    let producer = ring.producer().unwrap();
    let consumers: Vec<_> = (0..nsubs).map(|_| ring.consumer().unwrap()).collect();
    let mut loans: Vec<WriteLoan> = Vec::new();
    let mut leases: Vec<Vec<ReadLease>> = (0..nsubs).map(|_| Vec::new()).collect();
    // Model state.
    let mut next_seq = 0u64;
    let mut queue: VecDeque<Expect> = VecDeque::new(); // queue mode: committed, unreceived
    let mut reading = 0usize; // queue mode: leased slots
    let mut frames: BTreeMap<u64, Pending> = BTreeMap::new(); // broadcast
    let mut cursor = vec![0u64; nsubs];
    let all: u32 = (1u32 << nsubs) - 1;
    for op in ops {
        let used = if broadcast {
            loans.len() + frames.len()
        } else {
            loans.len() + queue.len() + reading
        };
        let free = k as usize - used;
        match op {
            Op::Loan => {
                let got = producer.try_loan();
                let expect_ok = free > 0
                    || (overwrite
                        && if broadcast {
                            frames.values().any(|f| f.leased == 0)
                        } else {
                            !queue.is_empty()
                        });
                match got {
                    Ok(l) => {
                        assert!(expect_ok, "loan succeeded with no free slot");
                        assert_eq!(l.dropped_oldest(), free == 0);
                        if free == 0 {
                            if broadcast {
                                let victim = *frames
                                    .iter()
                                    .find(|(_, f)| f.leased == 0)
                                    .map(|(s, _)| s)
                                    .unwrap();
                                frames.remove(&victim);
                            } else {
                                queue.pop_front();
                            }
                        }
                        loans.push(l);
                    }
                    Err(TryLoanError::Full) => assert!(!expect_ok, "loan failed with {free} free"),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::Commit(i, tag) => {
                if loans.is_empty() {
                    continue;
                }
                let mut l = loans.swap_remove(i % loans.len());
                l.as_mut_slice::<u64>().unwrap().fill(tag);
                l.set_tag(tag);
                let seq = l.commit().unwrap();
                assert_eq!(seq, next_seq);
                next_seq += 1;
                if broadcast {
                    if nsubs > 0 {
                        frames.insert(
                            seq,
                            Pending {
                                tag,
                                pending: all,
                                leased: 0,
                            },
                        );
                    }
                } else {
                    queue.push_back(Expect { seq, tag });
                }
            }
            Op::DropLoan(i) => {
                if !loans.is_empty() {
                    drop(loans.swap_remove(i % loans.len()));
                }
            }
            Op::Recv(c) => {
                if nsubs == 0 {
                    continue;
                }
                let c = c % nsubs;
                let got = consumers[c].try_recv();
                let expect = if broadcast {
                    frames
                        .range(cursor[c]..)
                        .find(|(_, f)| f.pending & (1 << c) != 0)
                        .map(|(&seq, f)| Expect { seq, tag: f.tag })
                } else {
                    queue.front().copied()
                };
                match (got, expect) {
                    (Ok(lease), Some(e)) => {
                        assert_eq!((lease.seq(), lease.tag()), (e.seq, e.tag));
                        assert!(lease.as_slice::<u64>().unwrap().iter().all(|&x| x == e.tag));
                        if broadcast {
                            assert_eq!(lease.lost(), e.seq - cursor[c]);
                            cursor[c] = e.seq + 1;
                            frames.get_mut(&e.seq).unwrap().leased |= 1 << c;
                        } else {
                            queue.pop_front();
                            reading += 1;
                        }
                        leases[c].push(lease);
                    }
                    (Err(TryRecvError::Empty), None) => {}
                    (got, e) => panic!("recv: got {got:?}, model expected {e:?}"),
                }
            }
            Op::Release(c, i) => {
                if nsubs == 0 {
                    continue;
                }
                let c = c % nsubs;
                if leases[c].is_empty() {
                    continue;
                }
                let n = leases[c].len();
                let lease = leases[c].swap_remove(i % n);
                let seq = lease.seq();
                drop(lease);
                if broadcast {
                    let f = frames.get_mut(&seq).unwrap();
                    f.pending &= !(1 << c);
                    f.leased &= !(1 << c);
                    if f.pending == 0 {
                        frames.remove(&seq);
                    }
                } else {
                    reading -= 1;
                }
            }
        }
        let st = ring.stats();
        assert_eq!(st.committed, next_seq);
        let used = if broadcast {
            loans.len() + frames.len()
        } else {
            loans.len() + queue.len() + reading
        };
        assert_eq!(st.in_use(), used, "slots in use");
    }
    drop(loans);
    drop(leases);
    drop(consumers);
    drop(producer);
    let st = ring.stats();
    assert!(st.participants.is_empty(), "{st:?}");
    if !broadcast {
        assert_eq!(st.free, k as usize - queue.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)))]

    #[test]
    fn queue_matches_model(k in 1u32..6, overwrite in any::<bool>(), ops in proptest::collection::vec(op(), 0..120)) {
        run(k, false, overwrite, 1, ops);
    }

    #[test]
    fn queue_with_two_consumers_matches_model(k in 1u32..6, ops in proptest::collection::vec(op(), 0..120)) {
        run(k, false, false, 2, ops);
    }

    #[test]
    fn broadcast_matches_model(k in 1u32..6, overwrite in any::<bool>(), nsubs in 0usize..4, ops in proptest::collection::vec(op(), 0..120)) {
        run(k, true, overwrite, nsubs, ops);
    }
}
