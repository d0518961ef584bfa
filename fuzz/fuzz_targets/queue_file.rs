//! Differential fuzzing of whole queue files: a valid queue file (a task
//! queue with a done chunk, a chunk claimed by a dead worker, a barrier) is
//! mutated by the input, then `sharray::check` runs. If it reports no
//! problem, `WorkQueue::open` must succeed, a worker must join, and a claim
//! (if any chunk is claimable) must complete. Nothing may panic in any case.
//!
//! Input layout: records of 10 bytes: u16 offset (bit 15: write the u64,
//! else the low byte) into the chunk table (first 128 bytes) followed by the
//! control block, u64 value. Files live in `/dev/shm`.
//! Run with `cargo +nightly fuzz run queue_file`.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sharray::WorkQueue;

const DATA_OFF: usize = 4096;
const TABLE_LEN: usize = 8 * 16;
const CTRL_OFF: usize = 65536;
const CTRL_LEN: usize = 4096;

fn dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = PathBuf::from(format!(
            "/dev/shm/sharray-fuzz-queue-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fn template() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| {
        let p = dir().join("template.npy");
        {
            let wq = WorkQueue::builder()
                .tasks(8)
                .max_workers(4)
                .barrier(2)
                .create(&p)
                .unwrap();
            let w = wq.join().unwrap();
            w.try_claim().unwrap().unwrap().complete().unwrap();
            std::mem::forget(w.try_claim().unwrap().unwrap());
            w.simulate_death();
        }
        let b = std::fs::read(&p).unwrap();
        assert_eq!(b.len(), CTRL_OFF + CTRL_LEN);
        b
    })
}

fn byte_at(o: usize) -> usize {
    let o = o % (TABLE_LEN + CTRL_LEN);
    if o < TABLE_LEN {
        DATA_OFF + o
    } else {
        CTRL_OFF + o - TABLE_LEN
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = template().to_vec();
    for m in data.chunks_exact(10) {
        let off = u16::from_le_bytes([m[0], m[1]]);
        let v = u64::from_le_bytes(m[2..10].try_into().unwrap());
        if off & 0x8000 != 0 {
            let o = byte_at(usize::from(off & 0x7fff)) / 8 * 8;
            b[o..o + 8].copy_from_slice(&v.to_le_bytes());
        } else {
            b[byte_at(usize::from(off))] = v as u8;
        }
    }
    let p = dir().join("case.npy");
    let _ = std::fs::remove_file(&p);
    std::fs::write(&p, &b).unwrap();
    let problems = sharray::check(&p, None).unwrap();
    // A flipped kind makes a valid file of another kind: then the
    // differential part does not apply (opening must still not panic).
    let kind = u32::from_le_bytes(b[CTRL_OFF + 12..CTRL_OFF + 16].try_into().unwrap());
    let clean = problems.is_empty() && kind == 3;
    let wq = match WorkQueue::open(&p) {
        Ok(q) => q,
        Err(e) if clean => panic!("check found no problem but WorkQueue::open failed: {e}"),
        Err(_) => return,
    };
    let _ = wq.progress();
    let _ = wq.is_done();
    let w = match wq.join() {
        Ok(w) => w,
        Err(e) if clean => panic!("check found no problem but join failed: {e}"),
        Err(_) => return,
    };
    match w.try_claim() {
        Ok(Some(c)) => {
            if let Err(e) = c.complete()
                && clean
            {
                panic!("check found no problem but complete failed: {e}");
            }
        }
        Ok(None) => {}
        Err(e) if clean => panic!("check found no problem but claim failed: {e}"),
        Err(_) => {}
    }
    if wq.barrier_parties() > 0 {
        let _ = w.barrier_wait(Some(Duration::ZERO));
    }
    drop(w);
    let _ = wq.wait_all(Duration::ZERO);
    if clean {
        drop(wq);
        let after = sharray::check(&p, None).unwrap();
        assert!(after.is_empty(), "a clean queue became invalid: {after:?}");
    }
});
