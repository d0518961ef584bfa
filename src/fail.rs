//! Named fail points: where a test makes a process stop or die on purpose.
//!
//! Every multi-step change of shared state calls [`point`] with a name
//! between its steps. Without the `failpoints` feature a point compiles to
//! nothing. With it, the environment variable `SHARRAY_FAILPOINTS` arms
//! points for this process, read once at the first point reached:
//!
//! ```text
//! SHARRAY_FAILPOINTS="ring.lock.probed=stop;ring.commit.applied=kill@3"
//! ```
//!
//! Each entry is `NAME=ACTION[@N]`: the action runs at the `N`-th time the
//! point is reached (default 1) and only then. Actions:
//!
//! - `kill`: SIGKILL this process (a crash at exactly this step);
//! - `stop`: SIGSTOP this process; the test resumes it with SIGCONT (a
//!   process preempted at exactly this step, for as long as the test likes);
//! - `sleep(MS)`: sleep this thread for `MS` milliseconds;
//! - `on`: for a *switch* (see [`forced`]), take the other branch.
//!
//! [`NAMES`] lists every point, so a harness can try each one.

/// Every fail point of the crate, in the order of the protocols.
pub const NAMES: &[&str] = &[
    // switch: behave as on a filesystem without O_TMPFILE (the named
    // temporary file fallback of file creation)
    "file.tmpfile.unsupported",
    // file creation: the new file is complete but has no name yet
    "file.create.filled",
    // ring attach: the entry's OFD liveness lock taken, its epoch not bumped
    "ring.attach.entry_locked",
    // ring lock: after proving a holder dead, before swapping the lock word
    "ring.lock.probed",
    // ring lock: replaying a dead holder's journal, first entry re-applied
    "ring.recover.midway",
    // ring lock: just acquired (journal replayed)
    "ring.lock.acquired",
    // ring transaction: journal entries written, journal length still 0
    "ring.txn.journaled",
    // ring transaction: journal length set, no store applied yet
    "ring.txn.armed",
    // ring transaction: one more store applied (hit once per store: `@N`)
    "ring.txn.stored",
    // ring transaction: journal length cleared, lock still held
    "ring.txn.cleared",
    // ring reclaim of a dead entry: one more slot's transaction applied
    // (hit once per slot: `@N`)
    "ring.reclaim.slot",
    // ring reclaim: every slot done, entry (role, subscriber bit) not cleared
    "ring.reclaim.slots_done",
    // queue-ring loan (lock-free): slot WRITING, nothing else changed
    "ring.handoff.claimed",
    // queue-ring commit: log cell names the slot, slot still WRITING
    "ring.handoff.published",
    // queue-ring commit: slot READY, TAIL not moved
    "ring.handoff.ready",
    // queue-ring receive: slot READING, log cell not cleaned
    "ring.handoff.taken",
    // queue-ring receive: log cell cleaned, HEAD not moved
    "ring.handoff.cleaned",
    // queue-ring give back: slot READY again, log cell not restored
    "ring.handoff.given_ready",
    // queue-ring give back: log cell restored, HEAD not moved back
    "ring.handoff.given_cell",
    // broadcast-ring loan: lock held, nothing changed yet
    "ring.loan.locked",
    // broadcast-ring loan: slot WRITING (or none free), lock still held
    "ring.loan.applied",
    // ring commit: tag, length and timestamp written, lock not taken yet
    "ring.commit.written",
    // broadcast-ring commit: lock held, nothing changed yet
    "ring.commit.locked",
    // broadcast-ring commit: frame published, lock still held
    "ring.commit.applied",
    // broadcast-ring receive: lock held, nothing changed yet
    "ring.recv.locked",
    // broadcast-ring receive: frame leased (or none there), lock still held
    "ring.recv.applied",
    // broadcast-ring release: lock held, lease still taken
    "ring.release.locked",
    // broadcast-ring release: lease dropped, lock still held
    "ring.release.applied",
    // broadcast-ring give back: lock held, lease still taken
    "ring.give_back.locked",
    // broadcast-ring give back: frame back in line, lock still held
    "ring.give_back.applied",
    // pool claim: candidate named in a held slot, cursor moved past it,
    // chunk not taken yet
    "pool.claim.cursor_moved",
    // pool complete: completion announced in the entry, chunk still CLAIMED
    "pool.complete.announced",
    // pool complete: chunk DONE, not yet counted in the entry
    "pool.complete.chunk_done",
    // pool abandon/re-queue: chunk PENDING again, scan mark not lowered yet
    "pool.requeue.pending",
    // pool reap: a dead worker's completion in flight settled, its held
    // chunks not re-queued yet
    "pool.reap.settling",
    // pool barrier: arrival counted, the party has not seen the generation
    // complete
    "pool.barrier.arrived",
    // growable append: rows reserved, nothing written yet
    "grow.append.reserved",
    // growable append: rows written, not marked written yet
    "grow.append.written",
    // growable transaction: one more store applied (hit once per store: `@N`)
    "grow.txn.store",
];

/// Is the switch `name` armed with `on`? Always false without the
/// `failpoints` feature.
#[inline(always)]
pub(crate) fn forced(name: &'static str) -> bool {
    #[cfg(feature = "failpoints")]
    return armed::forced(name);
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        false
    }
}

/// Reach fail point `name` (see the module docs).
#[inline(always)]
pub(crate) fn point(name: &'static str) {
    #[cfg(feature = "failpoints")]
    armed::reach(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Action {
        Kill,
        Stop,
        Sleep(u64),
        On,
    }

    struct Armed {
        action: Action,
        at: u64,
        hits: AtomicU64,
    }

    fn table() -> &'static HashMap<&'static str, Armed> {
        static TABLE: OnceLock<HashMap<&'static str, Armed>> = OnceLock::new();
        TABLE.get_or_init(|| {
            let spec = std::env::var("SHARRAY_FAILPOINTS").unwrap_or_default();
            parse(&spec).unwrap_or_else(|e| {
                eprintln!("sharray: ignoring SHARRAY_FAILPOINTS: {e}");
                HashMap::new()
            })
        })
    }

    fn parse(spec: &str) -> Result<HashMap<&'static str, Armed>, String> {
        let mut out = HashMap::new();
        for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, rest) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not NAME=ACTION"))?;
            let name = super::NAMES
                .iter()
                .copied()
                .find(|n| *n == name.trim())
                .ok_or_else(|| format!("no fail point named `{name}`"))?;
            let (action, at) = match rest.split_once('@') {
                Some((a, n)) => (
                    a,
                    n.parse::<u64>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("`{n}` is not a positive count"))?,
                ),
                None => (rest, 1),
            };
            let action = match action.trim() {
                "kill" => Action::Kill,
                "stop" => Action::Stop,
                "on" => Action::On,
                a => a
                    .strip_prefix("sleep(")
                    .and_then(|a| a.strip_suffix(')'))
                    .and_then(|ms| ms.parse().ok())
                    .map(Action::Sleep)
                    .ok_or_else(|| format!("unknown action `{a}`"))?,
            };
            out.insert(
                name,
                Armed {
                    action,
                    at,
                    hits: AtomicU64::new(0),
                },
            );
        }
        Ok(out)
    }

    pub(super) fn forced(name: &'static str) -> bool {
        table().get(name).is_some_and(|a| a.action == Action::On)
    }

    pub(super) fn reach(name: &'static str) {
        let Some(a) = table().get(name) else { return };
        if a.hits.fetch_add(1, Ordering::Relaxed) + 1 != a.at {
            return;
        }
        match a.action {
            Action::Kill => {
                let _ = crate::sys::raise(libc::SIGKILL);
            }
            Action::Stop => {
                let _ = crate::sys::raise(libc::SIGSTOP);
            }
            Action::Sleep(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Action::On => {}
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_actions_and_counts() {
            let t = parse("ring.lock.probed=stop; ring.lock.acquired=sleep(5)@3").unwrap();
            assert_eq!(t["ring.lock.probed"].action, Action::Stop);
            assert_eq!(t["ring.lock.probed"].at, 1);
            assert_eq!(t["ring.lock.acquired"].action, Action::Sleep(5));
            assert_eq!(t["ring.lock.acquired"].at, 3);
            assert!(parse("nope=kill").is_err());
            assert!(parse("ring.lock.probed=explode").is_err());
            assert!(parse("ring.lock.probed=kill@0").is_err());
        }
    }
}
