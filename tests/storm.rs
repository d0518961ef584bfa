//! The SIGKILL storm: real child processes (this test binary re-run in a
//! role) killed at random instants, in rounds, across every kind of sharray
//! participant, with counts of what survived:
//!
//! - rings (queue and broadcast, small and large frames): producers and
//!   consumers killed; every frame carries a checksum pattern and a unique
//!   tag; frames committed, delivered, torn, duplicated, lost, and in flight
//!   at a kill (queue mode: leased by a consumer that was killed before it
//!   could report the frame);
//! - pools: workers killed mid-chunk; every job still ends with each chunk
//!   done exactly once, the output right and `wait_all` returning;
//! - arrays: writers killed inside the write guard while readers check an
//!   invariant under the read guard;
//! - creators: `SharedArray` builders and `import_npy` killed mid-way; a
//!   path is then absent or complete, and nothing else is left behind.
//!
//! After every round `sharray::check` is clean on every file and the
//! structures still flow. One summary line at the end gives the counts.
//!
//! `SHARRAY_STORM_KILLS` sets the number of kills (default 200, about a
//! minute on 2 cores); the full storm is
//! `SHARRAY_STORM_KILLS=10000 cargo test --release -p sharray --test storm -- --nocapture`.
//! `SHARRAY_TEST_SEED` replays a run (the seed is printed).

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::ring::{STOP, check, fill};
use common::{Lines, Rng, env_or};
use sharray::pool::ChunkState;
use sharray::{Dtype, ErrorKind, Order, Ring, SharedArray, WorkQueue};

/// Longest any single step may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(60);
/// Kinds of participant killed in each round (kills are spread evenly).
const KINDS: u64 = 5;
/// Kills per kind per round.
const PER_KIND: u64 = 8;

// ---------------------------------------------------------------- counts

#[derive(Default, Debug)]
struct Counts {
    kills: u64,
    frames: u64,
    delivered: u64,
    torn_frames: u64,
    dup: u64,
    lost_frames: u64,
    in_flight_at_kill: u64,
    chunks: u64,
    jobs: u64,
    twice: u64,
    lost_chunks: u64,
    reads: u64,
    torn_reads: u64,
    dirty_seen: u64,
    created: u64,
    partial: u64,
    leftovers: u64,
    hung: u64,
    problems: u64,
}

impl Counts {
    fn summary(&self) -> String {
        format!(
            "storm: kills={} rings: frames={} delivered={} torn={} dup={} lost={} \
             in_flight_at_kill={}; pool: jobs={} chunks={} twice={} lost={}; \
             arrays: reads={} torn={} dead_writer_seen={}; creators: created={} partial={} \
             leftovers={}; check_problems={}; hung={}",
            self.kills,
            self.frames,
            self.delivered,
            self.torn_frames,
            self.dup,
            self.lost_frames,
            self.in_flight_at_kill,
            self.jobs,
            self.chunks,
            self.twice,
            self.lost_chunks,
            self.reads,
            self.torn_reads,
            self.dirty_seen,
            self.created,
            self.partial,
            self.leftovers,
            self.problems,
            self.hung
        )
    }

    /// Wait for a child's line; a timeout counts as a hang.
    fn wait_line(&mut self, lines: &mut Lines, prefix: &str) -> bool {
        let ok = lines.try_wait_for(prefix, LIMIT).is_some();
        if !ok {
            eprintln!("hung: no {prefix:?} line; saw {:?}", lines.seen);
            self.hung += 1;
        }
        ok
    }

    /// Wait for a child to exit by itself; a watchdog expiry counts as a hang.
    fn finish(&mut self, child: &mut Child) {
        let deadline = Instant::now() + LIMIT;
        loop {
            match child.try_wait().expect("try_wait") {
                Some(st) => {
                    assert!(st.success(), "child {} failed: {st}", child.id());
                    return;
                }
                None if Instant::now() > deadline => {
                    eprintln!("hung: child {} did not finish", child.id());
                    self.hung += 1;
                    common::sigkill(child);
                    return;
                }
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    fn kill(&mut self, child: &mut Child) {
        common::sigkill(child);
        self.kills += 1;
    }

    /// `sharray::check` on a file; every problem is counted (and printed).
    fn check_file(&mut self, path: &Path) {
        let problems = sharray::check(path, Some(LIMIT)).unwrap();
        if !problems.is_empty() {
            eprintln!("check {}: {problems:?}", path.display());
            self.problems += problems.len() as u64;
        }
    }
}

/// A random pause before a kill: from a fraction of a millisecond (kills
/// land inside critical sections and mid-frame) to `max_ms`.
fn pause(rng: &mut Rng, max_ms: u64) {
    std::thread::sleep(Duration::from_micros(100 + rng.below(max_ms * 1000)));
}

fn spawn(role: &str, arg: &str) -> (Child, Lines) {
    let mut c = common::spawn_child("child_entry", role, arg);
    let l = Lines::of(&mut c);
    (c, l)
}

// ---------------------------------------------------------------- children

#[test]
fn child_entry() {
    common::child_entry(|role, arg| {
        let a: Vec<&str> = arg.split('|').collect();
        match role {
            "ring_producer" => ring_producer(a[0], a[1].parse().unwrap()),
            "ring_checker" => ring_consumer(a[0], false),
            "ring_hoarder" => ring_consumer(a[0], true),
            "pool_worker" => pool_worker(a[0], a[1], a[2]),
            "array_writer" => array_writer(a[0]),
            "array_reader" => array_reader(a[0], a[1]),
            "creator" => creator(a[0], a[1], a[2].parse().unwrap()),
            other => panic!("unknown role {other}"),
        }
    });
}

/// Produce frames tagged `id << 32 | n` until killed.
fn ring_producer(path: &str, id: u64) {
    let ring = Ring::open(path).unwrap();
    let p = ring.producer().unwrap();
    println!("producing");
    for n in 0.. {
        let Ok(mut loan) = p.loan_timeout(LIMIT) else {
            println!("hung");
            return;
        };
        let tag = id << 32 | n;
        fill(loan.as_mut_slice::<u64>().unwrap(), tag);
        loan.set_tag(tag);
        loan.commit().unwrap();
    }
}

/// Report every frame as `f SEQ TAG OK` (OK: the checksum pattern holds)
/// until a STOP frame (the checker) or a kill (the hoarder, which holds up
/// to two leases and reads slowly).
fn ring_consumer(path: &str, hoard: bool) {
    let ring = Ring::open(path).unwrap();
    let c = ring.consumer().unwrap();
    println!("attached");
    let mut held = std::collections::VecDeque::new();
    loop {
        match c.recv_timeout(LIMIT) {
            Ok(f) if f.tag() == STOP => break,
            Ok(f) => {
                let ok = check(f.as_slice::<u64>().unwrap(), f.tag());
                println!("f {} {} {}", f.seq(), f.tag(), ok as u8);
                if hoard {
                    held.push_back(f);
                    if held.len() > 2 {
                        held.pop_front();
                    }
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
            // Producers come and go (and are killed) during the storm, but
            // nobody closes the stream: Disconnected would be a bug.
            Err(e) if e.kind() == ErrorKind::Timeout => {
                println!("hung");
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
    println!("checked");
}

const POOL_COLS: usize = 64;
const POOL_CHUNK_ROWS: usize = 8;
const POOL_ROWS: usize = 128 * POOL_CHUNK_ROWS;

fn pool_input(i: usize) -> f32 {
    (i % 4099) as f32 * 0.5 - 7.0
}

/// Claim chunks, write them in place in two halves with NaN in between (a
/// kill mid-chunk leaves visibly wrong rows), complete, report `done I`.
fn pool_worker(queue: &str, input: &str, output: &str) {
    let q = WorkQueue::open(queue).unwrap();
    let input = SharedArray::<f32>::open_read_only(input).unwrap();
    let out = SharedArray::<f32>::open(output).unwrap();
    let src = input.read().unwrap();
    let w = q.join().unwrap();
    println!("joined");
    loop {
        match w.claim_timeout(LIMIT) {
            Ok(Some(c)) => {
                let r = c.rows();
                let x = &src[r.start * POOL_COLS..r.end * POOL_COLS];
                let mut y = c.rows_mut(&out).unwrap();
                y.fill(f32::NAN);
                let half = y.len() / 2;
                for (o, i) in y[..half].iter_mut().zip(x) {
                    *o = 2.0 * i + 1.0;
                }
                std::thread::sleep(Duration::from_micros(200));
                for (o, i) in y[half..].iter_mut().zip(&x[half..]) {
                    *o = 2.0 * i + 1.0;
                }
                drop(y);
                let i = c.index();
                c.complete().unwrap();
                println!("done {i}");
            }
            Ok(None) => break,
            Err(e) if e.kind() == ErrorKind::Timeout => {
                println!("hung");
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
    println!("finished");
}

/// Element 0 of the storm array: a writer's pid with this bit while it is
/// updating, the value every other element holds when it is not.
const DIRTY: u64 = 1 << 63;
const ARRAY_LEN: usize = 64 * 1024;

/// Update the array under the write guard until killed: mark it dirty with
/// this pid, set every element to a new value, mark it clean.
fn array_writer(path: &str) {
    let a = SharedArray::<u64>::open(path).unwrap();
    let pid = std::process::id() as u64;
    println!("writing");
    let deadline = Instant::now() + LIMIT;
    let mut n = 0u64;
    while Instant::now() < deadline {
        let Ok(mut w) = a.write_timeout(LIMIT) else {
            println!("hung");
            return;
        };
        n += 1;
        let v = pid << 24 | (n & 0xff_ffff);
        w[0] = DIRTY | pid;
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        w[1..].fill(v);
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        w[0] = v;
        drop(w);
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Is process `pid` gone (or a zombie, i.e. dead but not yet reaped)?
fn dead(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    matches!(
        stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()),
        None | Some('Z') | Some('X')
    )
}

/// Read under the read guard until `stop` exists. A torn read is one that
/// is neither clean (every element equal to element 0) nor left dirty by a
/// writer that is dead (a live writer's mark means the guard did not
/// exclude it). Reports `reads N torn T dirty D`.
fn array_reader(path: &str, stop: &str) {
    let a = SharedArray::<u64>::open_read_only(path).unwrap();
    println!("reading");
    let (mut reads, mut torn, mut dirty) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + 10 * LIMIT;
    while !Path::new(stop).exists() && Instant::now() < deadline {
        let Ok(r) = a.read_timeout(LIMIT) else {
            println!("hung");
            return;
        };
        let head = r[0];
        if head & DIRTY != 0 {
            // The kernel drops a killed writer's lock while the process is
            // still exiting: give it a moment to become a zombie. A live
            // writer inside the guard (the lock failed) stays alive.
            let pid = (head & !DIRTY) as u32;
            let t = Instant::now();
            while !dead(pid) && t.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(1));
            }
            if dead(pid) {
                dirty += 1;
            } else {
                torn += 1;
            }
        } else if r[1..].iter().any(|&x| x != head) {
            torn += 1;
        }
        reads += 1;
        drop(r);
        std::thread::sleep(Duration::from_micros(200));
    }
    println!("reads {reads} torn {torn} dirty {dirty}");
}

/// Elements of a created array (8 MiB).
const CREATE_LEN: usize = 1 << 20;
const CREATE_FILL: u64 = 0x5A5A_0001;

/// Create arrays at fresh paths `c{id}_{j}.npy` until killed: odd ids by
/// importing the plain .npy `src`, even ids with the builder.
fn creator(dir: &str, src: &str, id: u64) {
    println!("creating");
    for j in 0.. {
        let path = Path::new(dir).join(format!("c{id}_{j}.npy"));
        if id % 2 == 1 {
            sharray::import_npy(src, &path, 0o600, &mut |_, _| {}).unwrap();
        } else {
            SharedArray::<u64>::builder()
                .shape(&[CREATE_LEN])
                .fill(CREATE_FILL)
                .create(&path)
                .unwrap();
        }
    }
}

// ---------------------------------------------------------------- rounds

/// Parse `f SEQ TAG OK` lines into (seq, tag, ok).
fn frames(lines: &[String]) -> impl Iterator<Item = (u64, u64, bool)> + '_ {
    lines.iter().filter_map(|l| {
        let mut w = l.strip_prefix("f ")?.split(' ');
        let seq = w.next()?.parse().ok()?;
        let tag = w.next()?.parse().ok()?;
        Some((seq, tag, w.next()? == "1"))
    })
}

/// Kill producers and consumers of one ring while the parent produces too;
/// then stop, account for every committed frame, check the file.
fn ring_round(c: &mut Counts, rng: &mut Rng, dir: &Path, id: u64, words: usize, broadcast: bool) {
    let path = dir.join(format!("ring{id}.npy"));
    let ring = Ring::builder(Dtype::parse_user("uint64").unwrap(), &[words])
        .slots(4)
        .broadcast(broadcast)
        .create(&path)
        .unwrap();
    let p = path.to_str().unwrap().to_string();
    let (mut checker, mut crx) = spawn("ring_checker", &p);
    c.wait_line(&mut crx, "attached");
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (ring, stop) = (ring.clone(), stop.clone());
        std::thread::spawn(move || {
            let p = ring.producer().unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut loan) = p.loan_timeout(LIMIT) else {
                    return false;
                };
                fill(loan.as_mut_slice::<u64>().unwrap(), n);
                loan.set_tag(n);
                loan.commit().unwrap();
                n += 1;
                // Leave room for the children's frames.
                std::thread::sleep(Duration::from_micros(50));
            }
            true
        })
    };
    let mut hoarded = Vec::new();
    let mut consumer_kills = 0;
    for k in 0..PER_KIND {
        let kill_consumer = rng.below(2) == 0;
        let (mut child, mut rx) = if kill_consumer {
            spawn("ring_hoarder", &p)
        } else {
            spawn("ring_producer", &format!("{p}|{}", id << 8 | (k + 1)))
        };
        if c.wait_line(
            &mut rx,
            if kill_consumer {
                "attached"
            } else {
                "producing"
            },
        ) {
            pause(rng, 8);
        }
        c.kill(&mut child);
        if kill_consumer {
            consumer_kills += 1;
            hoarded.extend(rx.rest());
        }
    }
    stop.store(true, Ordering::Relaxed);
    if !producer.join().unwrap() {
        eprintln!("hung: the parent's producer got no slot");
        c.hung += 1;
    }
    let stopper = ring.producer().unwrap();
    match stopper.loan_timeout(LIMIT) {
        Ok(mut loan) => {
            loan.set_tag(STOP);
            loan.commit().unwrap();
        }
        Err(_) => c.hung += 1,
    }
    drop(stopper);
    c.wait_line(&mut crx, "checked");
    c.finish(&mut checker);
    let checked = crx.rest();
    // Every frame but the STOP frame.
    let committed = ring.stats().committed - 1;
    c.frames += committed;

    let mut seqs = HashSet::new();
    let mut tags = HashSet::new();
    let mut delivered = 0u64;
    let others: &[String] = if broadcast { &[] } else { &hoarded };
    for (seq, tag, ok) in frames(&checked).chain(frames(others)) {
        delivered += 1;
        c.torn_frames += !ok as u64;
        if !seqs.insert(seq) || !tags.insert(tag) {
            c.dup += 1;
        }
    }
    // Subscribers killed in broadcast mode saw copies; only torn counts.
    if broadcast {
        c.torn_frames += frames(&hoarded).filter(|f| !f.2).count() as u64;
    }
    c.delivered += delivered;
    let missing = committed.saturating_sub(seqs.len() as u64);
    if broadcast {
        // The checker subscribed before the first frame: it gets them all.
        c.lost_frames += missing;
    } else {
        // A killed consumer takes at most one frame with it unreported: the
        // one it was receiving or had received but not yet printed.
        let in_flight = missing.min(consumer_kills);
        c.in_flight_at_kill += in_flight;
        c.lost_frames += missing - in_flight;
    }
    ring.reclaim().unwrap();
    let st = ring.stats();
    if st.free != st.slots || !st.participants.is_empty() {
        eprintln!("ring left slots or entries behind: {st:?}");
        c.problems += 1;
    }
    c.check_file(&path);
}

/// Kill pool workers mid-job (starting new jobs as they finish); every job
/// must end with each chunk done exactly once and the output right.
fn pool_round(c: &mut Counts, rng: &mut Rng, dir: &Path, id: u64) {
    let mut kills_left = PER_KIND;
    let mut job = 0;
    while kills_left > 0 {
        let base = dir.join(format!("pool{id}_{job}"));
        job += 1;
        let (qp, ip, op) = (
            base.with_extension("queue.npy"),
            base.with_extension("in.npy"),
            base.with_extension("out.npy"),
        );
        let input = SharedArray::<f32>::create(&ip, &[POOL_ROWS, POOL_COLS]).unwrap();
        {
            let mut w = input.write().unwrap();
            for (i, v) in w.iter_mut().enumerate() {
                *v = pool_input(i);
            }
        }
        let out = SharedArray::<f32>::create(&op, &[POOL_ROWS, POOL_COLS]).unwrap();
        let q = WorkQueue::builder()
            .rows(POOL_ROWS)
            .chunk_rows(POOL_CHUNK_ROWS)
            .max_workers(8)
            .create(&qp)
            .unwrap();
        let arg = format!("{}|{}|{}", qp.display(), ip.display(), op.display());
        let worker = |c: &mut Counts| {
            let (w, mut rx) = spawn("pool_worker", &arg);
            c.wait_line(&mut rx, "joined");
            (w, rx)
        };
        let mut workers: Vec<(Child, Lines)> = (0..2).map(|_| worker(c)).collect();
        let mut reports = Vec::new();
        while kills_left > 0 && !q.is_done() {
            let v = rng.below(2) as usize;
            pause(rng, 6);
            c.kill(&mut workers[v].0);
            kills_left -= 1;
            let (_, mut rx) = std::mem::replace(&mut workers[v], worker(c));
            reports.extend(rx.rest());
        }
        match q.wait_all(LIMIT) {
            Ok(p) if p.is_complete() => {}
            other => {
                eprintln!("hung: pool job {qp:?} did not finish: {other:?}");
                c.hung += 1;
            }
        }
        for (mut w, mut rx) in workers {
            c.finish(&mut w);
            reports.extend(rx.rest());
        }
        let mut done: HashMap<usize, u32> = HashMap::new();
        for r in &reports {
            if let Some(i) = r.strip_prefix("done ") {
                *done.entry(i.parse().unwrap()).or_default() += 1;
            }
        }
        c.jobs += 1;
        let r = out.read().unwrap();
        for i in 0..q.chunks() {
            let info = q.chunk(i);
            c.chunks += 1;
            let rows = q.chunk_range(i);
            let right = (rows.start * POOL_COLS..rows.end * POOL_COLS)
                .all(|k| r[k] == 2.0 * pool_input(k) + 1.0);
            if !matches!(info.state, ChunkState::Done(_)) || !right {
                eprintln!("chunk {i} lost: {info:?}, output right: {right}");
                c.lost_chunks += 1;
            } else if info.claims != info.requeues + 1 || done.get(&i).copied().unwrap_or(0) > 1 {
                eprintln!("chunk {i} done twice: {info:?}");
                c.twice += 1;
            }
        }
        drop(r);
        for f in [&qp, &ip, &op] {
            c.check_file(f);
            std::fs::remove_file(f).unwrap();
        }
    }
}

/// Kill writers inside the write guard while two readers check the array.
fn array_round(c: &mut Counts, rng: &mut Rng, dir: &Path, id: u64) {
    let path = dir.join(format!("array{id}.npy"));
    let stop = dir.join(format!("array{id}.stop"));
    let a = SharedArray::<u64>::create(&path, &[ARRAY_LEN]).unwrap();
    let rarg = format!("{}|{}", path.display(), stop.display());
    let mut readers: Vec<(Child, Lines)> = (0..2).map(|_| spawn("array_reader", &rarg)).collect();
    for (_, rx) in &mut readers {
        c.wait_line(rx, "reading");
    }
    for _ in 0..PER_KIND {
        let (mut w, mut rx) = spawn("array_writer", path.to_str().unwrap());
        if c.wait_line(&mut rx, "writing") {
            pause(rng, 4);
        }
        c.kill(&mut w);
    }
    std::fs::write(&stop, b"").unwrap();
    for (mut r, mut rx) in readers {
        if c.wait_line(&mut rx, "reads ") {
            let line = rx.seen.last().unwrap();
            let n: Vec<u64> = line.split(' ').filter_map(|w| w.parse().ok()).collect();
            c.reads += n[0];
            c.torn_reads += n[1];
            c.dirty_seen += n[2];
        }
        c.finish(&mut r);
    }
    // The lock is free again and the data can be repaired.
    match a.write_timeout(LIMIT) {
        Ok(mut w) => w.fill(7),
        Err(_) => c.hung += 1,
    }
    assert!(a.read().unwrap().iter().all(|&x| x == 7));
    drop(a);
    c.check_file(&path);
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&stop).unwrap();
}

/// Kill creators mid-way; every path is then absent or a complete, clean
/// file, and the directory holds nothing else.
fn creator_round(c: &mut Counts, rng: &mut Rng, dir: &Path, src: &Path, id: u64) {
    let cdir = dir.join(format!("create{id}"));
    std::fs::create_dir(&cdir).unwrap();
    for k in 0..PER_KIND {
        let arg = format!("{}|{}|{}", cdir.display(), src.display(), id * 100 + k);
        let (mut child, mut rx) = spawn("creator", &arg);
        if c.wait_line(&mut rx, "creating") {
            pause(rng, 30);
        }
        c.kill(&mut child);
    }
    for e in std::fs::read_dir(&cdir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with('c') && name.ends_with(".npy") && name.contains('_')) {
            eprintln!("leftover: {}", path.display());
            c.leftovers += 1;
            continue;
        }
        c.created += 1;
        let complete = sharray::check(&path, Some(LIMIT)).is_ok_and(|p| p.is_empty())
            && SharedArray::<u64>::open(&path).is_ok_and(|a| {
                a.shape() == [CREATE_LEN] && a.read().unwrap().iter().all(|&x| x == CREATE_FILL)
            });
        if !complete {
            eprintln!("partial: {}", path.display());
            c.partial += 1;
        }
    }
    std::fs::remove_dir_all(&cdir).unwrap();
}

#[test]
fn sigkill_storm_across_rings_pools_writers_and_creators() {
    let target = env_or("SHARRAY_STORM_KILLS", 200);
    let mut rng = Rng::new("storm");
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let src: PathBuf = dir.join("source.npy");
    let data: Vec<u8> = (0..CREATE_LEN)
        .flat_map(|_| CREATE_FILL.to_le_bytes())
        .collect();
    sharray::write_npy(
        &src,
        &Dtype::parse_user("uint64").unwrap(),
        &[CREATE_LEN],
        Order::C,
        &data,
        0o600,
    )
    .unwrap();
    drop(data);
    let t0 = Instant::now();
    let mut c = Counts::default();
    let mut round = 0;
    while c.kills < target {
        let words = if round % 2 == 0 { 8 } else { 64 * 1024 };
        ring_round(&mut c, &mut rng, dir, 2 * round, words, false);
        ring_round(&mut c, &mut rng, dir, 2 * round + 1, 4096, true);
        pool_round(&mut c, &mut rng, dir, round);
        array_round(&mut c, &mut rng, dir, round);
        creator_round(&mut c, &mut rng, dir, &src, round);
        for k in 0..2 {
            let _ = std::fs::remove_file(dir.join(format!("ring{}.npy", 2 * round + k)));
        }
        round += 1;
        if round % 10 == 0 {
            eprintln!("{} after {:?}", c.summary(), t0.elapsed());
        }
    }
    debug_assert_eq!(c.kills % (KINDS * PER_KIND), 0);
    println!("{} ({:?})", c.summary(), t0.elapsed());
    assert_eq!(
        (c.torn_frames, c.dup, c.lost_frames),
        (0, 0, 0),
        "{}",
        c.summary()
    );
    assert_eq!((c.twice, c.lost_chunks), (0, 0), "{}", c.summary());
    assert_eq!(c.torn_reads, 0, "{}", c.summary());
    assert_eq!((c.partial, c.leftovers), (0, 0), "{}", c.summary());
    assert_eq!((c.problems, c.hung), (0, 0), "{}", c.summary());
    assert!(c.frames > 0 && c.delivered > 0 && c.chunks > 0 && c.reads > 0);
}

/// Regression (found by the creator storm): `import_npy` published the new
/// file first and copied into it afterwards, so a kill mid-copy left a
/// complete-looking file of zeros. The path must not exist until the copy
/// is done.
#[test]
fn import_npy_publishes_only_a_complete_file() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("plain.npy"), dir.path().join("shared.npy"));
    let data: Vec<u8> = (0..1u64 << 18).flat_map(|x| x.to_le_bytes()).collect();
    let u64s = Dtype::parse_user("uint64").unwrap();
    sharray::write_npy(&src, &u64s, &[1 << 18], Order::C, &data, 0o600).unwrap();
    let mut calls = 0;
    sharray::import_npy(&src, &dst, 0o600, &mut |_, _| {
        calls += 1;
        assert!(
            !dst.exists(),
            "the destination appeared before the copy ended"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    })
    .unwrap();
    assert!(calls > 1);
    let a = SharedArray::<u64>::open(&dst).unwrap();
    assert!(
        a.read()
            .unwrap()
            .iter()
            .enumerate()
            .all(|(i, &x)| x == i as u64)
    );
}
