//! A minimal hand-written shared-memory ring: the fair ceiling for any ring.
//!
//! One mapped file: line 0 holds `head` (frames consumed, u64) with its futex
//! word and waiter flag, line 1 `tail` (frames published) likewise; K slots
//! of `words` u64 from offset 4096. One producer, one consumer, no lock, no
//! crash recovery: exactly what a careful engineer writes for one pipeline.
//! Waiting spins for `spin`, then parks on the futex.

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::link::PEER_TIMEOUT;
use super::payload::{check, fill};

const HEAD: usize = 0;
const HEAD_SEQ: usize = 8;
const HEAD_WAIT: usize = 12;
const TAIL: usize = 128;
const TAIL_SEQ: usize = 136;
const TAIL_WAIT: usize = 140;
const DATA: usize = 4096;

/// One end (producer or consumer) of a hand-written ring.
pub struct Mini {
    map: memmap2::MmapRaw,
    slots: u64,
    words: usize,
    spin: Duration,
    /// Frames this end has pushed (producer) or popped (consumer).
    pos: u64,
}

impl Mini {
    /// Create the file for `slots` slots of `words` u64.
    pub fn create(path: &std::path::Path, slots: u64, words: usize) {
        let f = std::fs::File::create(path).unwrap();
        f.set_len(DATA as u64 + slots * words as u64 * 8).unwrap();
    }

    /// Map an existing ring file and fault its pages in.
    pub fn open(path: &str, slots: u64, words: usize, spin: Duration) -> Mini {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let map = memmap2::MmapRaw::map_raw(&f).unwrap();
        // SAFETY: inside our mapping; populate never changes contents.
        let _ = unsafe { sharray::sys::populate_write(map.as_mut_ptr(), map.len()) };
        Mini {
            map,
            slots,
            words,
            spin,
            pos: 0,
        }
    }

    fn u64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: aligned, inside the mapping, accessed atomically.
        unsafe { &*(self.map.as_mut_ptr().add(off) as *const AtomicU64) }
    }

    fn u32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*(self.map.as_mut_ptr().add(off) as *const AtomicU32) }
    }

    #[allow(clippy::mut_from_ref)]
    fn slot(&self, k: u64) -> &mut [u64] {
        // SAFETY: the head/tail protocol gives one side exclusive use of a slot.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.map
                    .as_mut_ptr()
                    .add(DATA + (k as usize) * self.words * 8) as *mut u64,
                self.words,
            )
        }
    }

    /// Spin for `self.spin`, then park on `seq` until `ready()`.
    ///
    /// # Panics
    ///
    /// After [`PEER_TIMEOUT`] (the peer died or stopped).
    fn wait(&self, seq: usize, waiting: usize, ready: impl Fn() -> bool) {
        let t0 = Instant::now();
        while !ready() {
            assert!(
                t0.elapsed() < PEER_TIMEOUT,
                "the peer of a hand-written ring stopped"
            );
            if t0.elapsed() < self.spin {
                std::hint::spin_loop();
                continue;
            }
            let s = self.u32(seq).load(Ordering::SeqCst);
            self.u32(waiting).store(1, Ordering::SeqCst);
            if !ready() {
                sharray::sys::futex_wait(self.u32(seq), s, Some(Duration::from_millis(50)));
            }
            self.u32(waiting).store(0, Ordering::SeqCst);
        }
    }

    fn bump(&self, word: usize, seq: usize, waiting: usize, v: u64) {
        self.u64(word).store(v, Ordering::Release);
        self.u32(seq).fetch_add(1, Ordering::SeqCst);
        if self.u32(waiting).load(Ordering::SeqCst) != 0 {
            sharray::sys::futex_wake(self.u32(seq), 1);
        }
    }

    /// Producer: wait for a free slot, fill it with `seq`, publish it.
    pub fn push(&mut self, seq: u64) {
        let pos = self.pos;
        self.wait(HEAD_SEQ, HEAD_WAIT, || {
            pos - self.u64(HEAD).load(Ordering::Acquire) < self.slots
        });
        fill(self.slot(pos % self.slots), seq);
        self.bump(TAIL, TAIL_SEQ, TAIL_WAIT, pos + 1);
        self.pos += 1;
    }

    /// Consumer: wait for the next frame, read it, free its slot.
    pub fn pop(&mut self) -> (u64, bool) {
        let pos = self.pos;
        self.wait(TAIL_SEQ, TAIL_WAIT, || {
            self.u64(TAIL).load(Ordering::Acquire) > pos
        });
        let got = check(self.slot(pos % self.slots));
        self.bump(HEAD, HEAD_SEQ, HEAD_WAIT, pos + 1);
        self.pos += 1;
        got
    }
}
