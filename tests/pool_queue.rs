//! Worker pools with real processes, normal runs: every chunk is processed
//! exactly once, the output is right, the parent's wait and progress work;
//! plus the in-process rules of claim views.
//!
//! `SHARRAY_POOL_TASKS` raises the task count of the exactly-once test
//! (default 3000).

mod common;

use std::time::Duration;

use sharray::pool::ChunkState;
use sharray::{ErrorKind, Order, SharedArray, WorkQueue};

const COLS: usize = 256;

fn input_value(i: usize) -> f32 {
    (i % 1009) as f32 * 0.5 - 100.0
}

#[test]
fn child_entry() {
    common::child_entry(|role, arg| {
        let parts: Vec<&str> = arg.split('|').collect();
        match role {
            // Count each task's processing in a side array (exactly once?).
            "counter" => {
                let q = WorkQueue::open(parts[0]).unwrap();
                let side = SharedArray::<u32>::open(parts[1]).unwrap();
                let w = q.join().unwrap();
                let mut n = 0;
                while let Some(c) = w.claim_timeout(Duration::from_secs(60)).unwrap() {
                    {
                        let mut r = c.rows_mut(&side).unwrap();
                        r[0] += 1;
                    }
                    c.complete().unwrap();
                    n += 1;
                }
                println!("completed {n}");
            }
            // out = 2 * in + 1, chunk by chunk.
            "transform" => {
                let q = WorkQueue::open(parts[0]).unwrap();
                let input = SharedArray::<f32>::open_read_only(parts[1]).unwrap();
                let out = SharedArray::<f32>::open(parts[2]).unwrap();
                let src = input.read().unwrap();
                let w = q.join().unwrap();
                while let Some(c) = w.claim_timeout(Duration::from_secs(60)).unwrap() {
                    let r = c.rows();
                    let x = &src[r.start * COLS..r.end * COLS];
                    let mut y = c.rows_mut(&out).unwrap();
                    for (o, i) in y.iter_mut().zip(x) {
                        *o = 2.0 * i + 1.0;
                    }
                    drop(y);
                    c.complete().unwrap();
                }
                println!("done");
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[test]
fn every_task_is_processed_exactly_once_by_three_processes() {
    let tasks = common::env_or("SHARRAY_POOL_TASKS", 3000) as usize;
    let dir = tempfile::tempdir().unwrap();
    let qp = dir.path().join("q.npy");
    let sp = dir.path().join("side.npy");
    let q = WorkQueue::builder().tasks(tasks).create(&qp).unwrap();
    let side = SharedArray::<u32>::create(&sp, &[tasks]).unwrap();
    let arg = format!("{}|{}", qp.display(), sp.display());
    let kids: Vec<_> = (0..3)
        .map(|_| common::spawn_child("child_entry", "counter", &arg))
        .collect();
    let p = q.wait_all(Duration::from_secs(120)).unwrap();
    let mut total = 0;
    for k in kids {
        let out = common::finish(k, Duration::from_secs(120));
        let n: usize = out
            .lines()
            .find_map(|l| l.strip_prefix("completed "))
            .expect("child reports its count")
            .parse()
            .unwrap();
        total += n;
    }
    assert_eq!(total, tasks);
    assert_eq!(
        (p.done, p.in_flight, p.pending, p.requeued),
        (tasks as u64, 0, 0, 0)
    );
    let r = side.read().unwrap();
    let bad: Vec<usize> = (0..tasks).filter(|&i| r[i] != 1).collect();
    assert!(bad.is_empty(), "tasks not processed exactly once: {bad:?}");
    for i in 0..tasks {
        let c = q.chunk(i);
        assert!(matches!(c.state, ChunkState::Done(_)));
        assert_eq!((c.claims, c.requeues), (1, 0));
    }
}

#[test]
fn processes_transform_an_array_in_place() {
    let rows = 4096;
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
    let out = SharedArray::<f32>::builder()
        .shape(&[rows, COLS])
        .fill(f32::NAN)
        .create(&op)
        .unwrap();
    let q = WorkQueue::builder()
        .rows(rows)
        .chunk_rows(37) // a ragged last chunk
        .create(&qp)
        .unwrap();
    assert_eq!(q.chunks(), rows.div_ceil(37));
    let arg = format!("{}|{}|{}", qp.display(), ip.display(), op.display());
    let kids: Vec<_> = (0..2)
        .map(|_| common::spawn_child("child_entry", "transform", &arg))
        .collect();
    let p = q.wait_all(Duration::from_secs(120)).unwrap();
    assert!(p.is_complete());
    for k in kids {
        common::finish(k, Duration::from_secs(120));
    }
    let r = out.read().unwrap();
    for (i, v) in r.iter().enumerate() {
        assert_eq!(*v, 2.0 * input_value(i) + 1.0, "element {i}");
    }
    // Workers bumped the output's generation once per chunk.
    assert_eq!(out.generation(), q.chunks() as u64);
}

#[test]
fn wait_all_times_out_with_progress_when_nobody_works() {
    let dir = tempfile::tempdir().unwrap();
    let q = WorkQueue::builder()
        .tasks(5)
        .create(dir.path().join("q.npy"))
        .unwrap();
    let w = q.join().unwrap();
    let held: Vec<_> = (0..5).map(|_| w.try_claim().unwrap().unwrap()).collect();
    let e = common::with_watchdog(Duration::from_secs(60), || {
        q.wait_all(Duration::from_millis(150)).unwrap_err()
    });
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(
        e.to_string().contains("0 of 5 chunks done, 5 in flight"),
        "{e}"
    );
    // A live worker of our own process is not taken for dead.
    assert_eq!(q.reap().unwrap(), 0);
    let e = common::with_watchdog(Duration::from_secs(60), || {
        w.claim_timeout(Duration::from_millis(50)).unwrap_err()
    });
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // Dropped claims go back to the queue.
    drop(held);
    assert_eq!(q.progress().pending, 5);
    assert_eq!(q.progress().requeued, 5);
}

#[test]
fn claim_views_check_the_array_and_exclude_threads() {
    let dir = tempfile::tempdir().unwrap();
    let q = WorkQueue::builder()
        .rows(10)
        .chunk_rows(5)
        .create(dir.path().join("q.npy"))
        .unwrap();
    let out = SharedArray::<u16>::create(dir.path().join("o.npy"), &[10, 3]).unwrap();
    let wrong = SharedArray::<u16>::create(dir.path().join("w.npy"), &[11, 3]).unwrap();
    let fortran = SharedArray::<u16>::builder()
        .shape(&[10, 3])
        .order(Order::F)
        .create(dir.path().join("f.npy"))
        .unwrap();
    let w = q.join().unwrap();
    let c = w.try_claim().unwrap().unwrap();
    assert_eq!(c.rows(), 0..5);
    assert_eq!(
        c.rows_mut(&wrong).unwrap_err().kind(),
        ErrorKind::ShapeMismatch
    );
    assert_eq!(
        c.rows_mut(&fortran).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    // A whole-array read guard of another thread excludes the claim view...
    let reader = out.read().unwrap();
    assert_eq!(c.rows_mut(&out).unwrap_err().kind(), ErrorKind::LockTimeout);
    drop(reader);
    // ...and a claim view excludes a whole-array writer and overlapping row locks.
    let mut rows = c.rows_mut(&out).unwrap();
    rows.fill(9);
    // One view per claim at a time.
    assert_eq!(c.rows_mut(&out).unwrap_err().kind(), ErrorKind::LockTimeout);
    assert!(out.try_write().unwrap().is_none());
    assert!(
        out.try_lock_rows(4..6, sharray::RowMode::Shared)
            .unwrap()
            .is_none()
    );
    assert!(
        out.try_lock_rows(5..6, sharray::RowMode::Exclusive)
            .unwrap()
            .is_some()
    );
    #[cfg(feature = "ndarray")]
    assert_eq!(rows.view().shape(), &[5, 3]);
    drop(rows);
    c.complete().unwrap();
    assert_eq!(out.read().unwrap()[..15], [9u16; 15]);
    assert_eq!(out.read().unwrap()[15], 0);
}

#[test]
fn queue_file_is_a_numpy_readable_chunk_table() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let qp = dir.path().join("q.npy");
    let q = WorkQueue::builder().tasks(4).create(&qp).unwrap();
    let w = q.join().unwrap();
    let a = w.try_claim().unwrap().unwrap();
    let b = w.try_claim().unwrap().unwrap();
    a.complete().unwrap();
    let out = common::python(
        "import numpy as np, sys\n\
         q = np.load(sys.argv[1], mmap_mode='r')\n\
         print(q.dtype.names, [int(x) for x in q['state']], [int(x) for x in q['claims']], int((q['owner'] > 0).sum()))",
        &[qp.to_str().unwrap()],
    );
    assert_eq!(
        out.trim(),
        "('state', 'owner', 'claims', 'requeues') [2, 1, 0, 0] [1, 1, 0, 0] 2"
    );
    drop(b);
}

#[test]
fn a_python_peer_finds_the_header_and_liveness_bytes_where_format_md_says() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let qp = dir.path().join("q.npy");
    let q = WorkQueue::builder()
        .rows(1000)
        .chunk_rows(64)
        .max_workers(4)
        .barrier(2)
        .create(&qp)
        .unwrap();
    let w0 = q.join().unwrap();
    let w1 = q.join().unwrap();
    drop(w0); // entry 0 free again, entry 1 live
    let c = w1.try_claim().unwrap().unwrap();
    // FORMAT.md 8: CTRL_OFF = align_up(4096 + 16 * chunks, 65536),
    // SEC = CTRL_OFF + 256, entry i at SEC + 640 + 128 i, liveness byte = its
    // first byte, held slots at +64; F_OFD_GETLK = 36.
    let script = r#"
import fcntl, struct, sys, os
chunks = 16
ctrl = (4096 + 16 * chunks + 65535) // 65536 * 65536
sec = ctrl + 256
b = open(sys.argv[1], 'rb').read()
assert b[ctrl:ctrl + 8] == b'SHARRAY\0'
ver, mode, n, rows, crow, maxw, parties = struct.unpack_from('<IIQQQII', b, sec)
claimed, done, requeued = struct.unpack_from('<QQQ', b, sec + 256)
fd = os.open(sys.argv[1], os.O_RDONLY)
def probe(i):
    fl = struct.pack('hhxxxxqqixxxx', fcntl.F_WRLCK, 0, sec + 640 + 128 * i, 1, 0)
    return struct.unpack('hhxxxxqqixxxx', fcntl.fcntl(fd, 36, fl))[0] != fcntl.F_UNLCK
states = [struct.unpack_from('<I', b, sec + 640 + 128 * i)[0] for i in range(maxw)]
held = [x for x in struct.unpack_from('<8Q', b, sec + 640 + 128 + 64) if x]
word = struct.unpack_from('<Q', b, 4096)[0]
owner = struct.unpack_from('<I', b, sec + 640 + 128 + 4)[0]
print(ver, mode, n, rows, crow, maxw, parties, claimed, done, requeued, states,
      [probe(i) for i in range(maxw)], word & 0xffffffff, (word >> 32) == owner, held)
"#;
    let out = common::python(script, &[qp.to_str().unwrap()]);
    assert_eq!(
        out.trim(),
        "2 1 16 1000 64 4 2 1 0 0 [0, 1, 0, 0] [False, True, False, False] 1 True [1]"
    );
    drop(c);
}
