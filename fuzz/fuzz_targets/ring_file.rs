//! Differential fuzzing of whole ring files: a valid ring file (queue mode
//! or broadcast, with committed, received and dead participants' state) is
//! mutated by the input, then `sharray::check` runs. If it reports no
//! problem, `Ring::open` must succeed and a short non-blocking session
//! (attach, loan + commit, receive + release) must work. Nothing may panic
//! in any case.
//!
//! Input layout: 1 byte (bit 0: broadcast template), then records of 10
//! bytes: u16 offset into the control block (bit 15: write the u64, else
//! the low byte), u64 value. Files live in `/dev/shm`.
//! Run with `cargo +nightly fuzz run ring_file`.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sharray::{Dtype, Ring, TryLoanError, TryRecvError};

const CTRL_OFF: usize = 65536;
const CTRL_LEN: usize = 4096;

fn dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = PathBuf::from(format!("/dev/shm/sharray-fuzz-ring-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

/// The bytes of a valid ring file left with some state behind.
fn template(broadcast: bool) -> &'static [u8] {
    static T: [OnceLock<Vec<u8>>; 2] = [OnceLock::new(), OnceLock::new()];
    T[usize::from(broadcast)].get_or_init(|| {
        let p = dir().join(format!("template-{broadcast}.npy"));
        {
            let ring = Ring::builder(Dtype::parse_user("uint32").unwrap(), &[2])
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
            // Leave a lease and a loan behind, as a killed process would.
            std::mem::forget(cons.try_recv().unwrap());
            std::mem::forget(prod.try_loan().unwrap());
            std::mem::forget(prod);
            std::mem::forget(cons);
        }
        let b = std::fs::read(&p).unwrap();
        assert_eq!(b.len(), CTRL_OFF + CTRL_LEN);
        b
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, muts)) = data.split_first() else {
        return;
    };
    let mut b = template(mode & 1 != 0).to_vec();
    for m in muts.chunks_exact(10) {
        let off = u16::from_le_bytes([m[0], m[1]]);
        let v = u64::from_le_bytes(m[2..10].try_into().unwrap());
        if off & 0x8000 != 0 {
            let o = CTRL_OFF + (usize::from(off & 0x7fff) % CTRL_LEN) / 8 * 8;
            b[o..o + 8].copy_from_slice(&v.to_le_bytes());
        } else {
            b[CTRL_OFF + usize::from(off) % CTRL_LEN] = v as u8;
        }
    }
    let p = dir().join("case.npy");
    let _ = std::fs::remove_file(&p);
    std::fs::write(&p, &b).unwrap();
    let problems = sharray::check(&p, None).unwrap();
    // A flipped kind makes a valid file of another kind: then the
    // differential part does not apply (opening must still not panic).
    let kind = u32::from_le_bytes(b[CTRL_OFF + 12..CTRL_OFF + 16].try_into().unwrap());
    let clean = problems.is_empty() && kind == 2;
    let ring = match Ring::open(&p) {
        Ok(r) => r,
        Err(e) if clean => panic!("check found no problem but Ring::open failed: {e}"),
        Err(_) => return,
    };
    // A closed stream is a valid state in which a plain producer is refused
    // by design: attach reopening, which works in every valid state.
    let (prod, cons) = match (ring.producer_reopening(), ring.consumer()) {
        (Ok(p), Ok(c)) => (p, c),
        (Err(e), _) | (_, Err(e)) if clean => {
            panic!("check found no problem but attaching failed: {e}")
        }
        _ => return,
    };
    match prod.try_loan() {
        Ok(l) => match l.commit() {
            Ok(_) => {}
            Err(e) if clean => panic!("check found no problem but commit failed: {e}"),
            Err(_) => {}
        },
        Err(TryLoanError::Full) => {}
        Err(TryLoanError::Error(e)) if clean => {
            panic!("check found no problem but loan failed: {e}")
        }
        Err(_) => {}
    }
    match cons.try_recv() {
        Ok(lease) => drop(lease),
        Err(TryRecvError::Empty) => {}
        Err(e) if clean => panic!("check found no problem but receive failed: {e}"),
        Err(_) => {}
    }
    drop((prod, cons));
    if clean {
        // What the session left behind is a valid ring too.
        drop(ring);
        let after = sharray::check(&p, None).unwrap();
        assert!(after.is_empty(), "a clean ring became invalid: {after:?}");
    }
});
