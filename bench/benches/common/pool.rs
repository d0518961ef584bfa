//! The worker-pool job shared by `benches/pool.rs` and `benches/compare.rs`:
//! a memory-bound transform (`out = 2 * in + 1` on f32) by N worker
//! *processes* claiming chunks from a sharray queue, beside the same transform
//! by N *threads* of one process over the same mapped arrays and the same
//! chunking; plus the latency of a claim + complete. The method is described
//! in `benches/pool.rs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sharray::{SharedArray, WorkQueue};

const COLS: usize = 1024; // f32 per row: 4 KiB rows
const ROLE: &str = "SHARRAY_POOL_BENCH_ROLE";

/// The job's size and shape.
#[derive(Clone, Debug)]
pub struct Job {
    pub mib: usize,
    pub workers: usize,
    pub rounds: usize,
    pub chunk_kib: usize,
    pub claims: usize,
}

/// What one job measured. GB/s count bytes read + written.
#[derive(Clone, Debug)]
pub struct PoolResult {
    pub threads_gbps_cold: f64,
    pub procs_gbps_cold: f64,
    pub threads_gbps_warm: f64,
    pub procs_gbps_warm: f64,
    /// Warm medians, processes / threads (> 1: processes faster).
    pub ratio_warm: f64,
    pub one_thread_gbps: f64,
    pub claim_ns: f64,
    pub claim_contended_ns: f64,
}

impl PoolResult {
    /// One JSON object (`{"bench":"pool",...}`).
    pub fn json(&self, job: &Job) -> String {
        format!(
            "{{\"bench\":\"pool\",\"mib\":{},\"workers\":{},\"rounds\":{},\"chunk_kib\":{},\"threads_gbps_cold\":{:.3},\"procs_gbps_cold\":{:.3},\"threads_gbps_warm\":{:.3},\"procs_gbps_warm\":{:.3},\"ratio_warm\":{:.4},\"one_thread_gbps\":{:.3},\"claim_ns\":{:.1},\"claim_contended_ns\":{:.1}}}",
            job.mib,
            job.workers,
            job.rounds,
            job.chunk_kib,
            self.threads_gbps_cold,
            self.procs_gbps_cold,
            self.threads_gbps_warm,
            self.procs_gbps_warm,
            self.ratio_warm,
            self.one_thread_gbps,
            self.claim_ns,
            self.claim_contended_ns
        )
    }
}

/// Is this process a pool worker (spawned by [`run`])?
pub fn is_worker() -> bool {
    std::env::var(ROLE).as_deref() == Ok("worker")
}

fn transform(y: &mut [f32], x: &[f32]) {
    for (o, i) in y.iter_mut().zip(x) {
        *o = 2.0 * i + 1.0;
    }
}

fn queue_path(dir: &Path, round: usize) -> PathBuf {
    dir.join(format!("q{round}.npy"))
}

/// The worker process: every round, join that round's queue, meet at the
/// barrier, claim until the queue is empty.
pub fn worker_main() {
    let dir = PathBuf::from(std::env::var("SHARRAY_POOL_BENCH_DIR").unwrap());
    let rounds: usize = std::env::var("SHARRAY_POOL_BENCH_ROUNDS")
        .unwrap()
        .parse()
        .unwrap();
    let input = SharedArray::<f32>::open_read_only(dir.join("in.npy")).unwrap();
    let out = SharedArray::<f32>::open(dir.join("out.npy")).unwrap();
    let src = input.read().unwrap();
    for r in 0..rounds {
        if r == 1 {
            // A persistent pool maps its arrays once: do it after the cold
            // round, outside the timed part, and tell the parent.
            input.prefault_read();
            out.prefault_write();
            let sync = WorkQueue::open(dir.join("sync.npy"))
                .unwrap()
                .join()
                .unwrap();
            sync.barrier_wait(Some(Duration::from_secs(300))).unwrap();
        }
        let q = WorkQueue::open(queue_path(&dir, r)).unwrap();
        let w = q.join().unwrap();
        w.barrier_wait(Some(Duration::from_secs(300))).unwrap();
        while let Some(c) = w.claim().unwrap() {
            let rows = c.rows();
            let mut y = c.rows_mut(&out).unwrap();
            transform(&mut y, &src[rows.start * COLS..rows.end * COLS]);
            drop(y);
            c.complete().unwrap();
        }
    }
}

/// One round with threads: the same chunks, handed out dynamically.
fn thread_round(
    input: &SharedArray<f32>,
    out: &SharedArray<f32>,
    threads: usize,
    chunk_elems: usize,
) -> f64 {
    let src = input.read().unwrap();
    let mut dst = out.write().unwrap();
    let t0 = Instant::now();
    let next = Mutex::new(dst.chunks_mut(chunk_elems).enumerate());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let Some((k, y)) = next.lock().unwrap().next() else {
                        break;
                    };
                    let x = &src[k * chunk_elems..k * chunk_elems + y.len()];
                    transform(y, x);
                }
            });
        }
    });
    t0.elapsed().as_secs_f64()
}

/// One round with the worker processes.
fn process_round(dir: &Path, round: usize) -> f64 {
    let q = WorkQueue::open(queue_path(dir, round)).unwrap();
    let me = q.join().unwrap();
    // Arrive last, so the clock starts when the barrier opens (a parent that
    // is woken late on a busy machine would start it after the work began).
    let parties = q.barrier_parties();
    let deadline = Instant::now() + Duration::from_secs(300);
    while q.progress().barrier_arrived + 1 < parties {
        assert!(Instant::now() < deadline, "workers did not arrive");
        std::thread::sleep(Duration::from_micros(100));
    }
    let t0 = Instant::now();
    let r = me.barrier_wait(Some(Duration::from_secs(300))).unwrap();
    assert!(r.is_leader, "the parent arrives last");
    q.wait_all(Duration::from_secs(600)).unwrap();
    t0.elapsed().as_secs_f64()
}

/// Untimed: poison the output so each round must really write all of it.
fn reset(out: &SharedArray<f32>) {
    out.write().unwrap().fill(f32::NAN);
}

/// Untimed: every element was written by the round.
fn verify(out: &SharedArray<f32>) {
    let r = out.read().unwrap();
    assert!(
        r.iter()
            .enumerate()
            .all(|(i, &v)| v == 2.0 * ((i % 1000) as f32) + 1.0),
        "wrong output"
    );
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// ns per claim + complete, one worker, no contention.
fn claim_latency(dir: &Path, n: usize) -> f64 {
    let q = WorkQueue::builder()
        .tasks(n)
        .create(dir.join("lat.npy"))
        .unwrap();
    let w = q.join().unwrap();
    let t0 = Instant::now();
    while let Some(c) = w.try_claim().unwrap() {
        c.complete().unwrap();
    }
    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
    assert!(q.is_done());
    ns
}

/// ns per claim + complete with `threads` workers claiming concurrently
/// (aggregate: total time / total claims).
fn claim_contended(dir: &Path, n: usize, threads: usize) -> f64 {
    let q = WorkQueue::builder()
        .tasks(n)
        .create(dir.join("lat2.npy"))
        .unwrap();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let q = q.clone();
            s.spawn(move || {
                let w = q.join().unwrap();
                while let Some(c) = w.try_claim().unwrap() {
                    c.complete().unwrap();
                }
            });
        }
    });
    assert!(q.is_done());
    t0.elapsed().as_nanos() as f64 / n as f64
}

/// Run the job: rounds alternate threads and processes; prints one line per
/// round when `verbose`.
pub fn run(o: &Job, verbose: bool) -> PoolResult {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("sharray-bench-pool-")
        .tempdir_in(base)
        .unwrap();
    let rows = (o.mib << 20) / (COLS * 4);
    let chunk_rows = ((o.chunk_kib << 10) / (COLS * 4)).max(1);
    let bytes = (rows * COLS * 4) as f64;
    if verbose {
        println!(
            "pool benchmark: out = 2*in+1 over {} MiB f32, chunks of {} KiB, {} workers, {} rounds (machine: {} CPUs)",
            o.mib,
            chunk_rows * COLS * 4 / 1024,
            o.workers,
            o.rounds,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
    let input = SharedArray::<f32>::create(dir.path().join("in.npy"), &[rows, COLS]).unwrap();
    {
        let mut w = input.write().unwrap();
        for (i, v) in w.iter_mut().enumerate() {
            *v = (i % 1000) as f32;
        }
    }
    let out = SharedArray::<f32>::create(dir.path().join("out.npy"), &[rows, COLS]).unwrap();
    for r in 0..o.rounds {
        WorkQueue::builder()
            .rows(rows)
            .chunk_rows(chunk_rows)
            .barrier(o.workers as u32 + 1)
            .max_workers(o.workers as u32 + 1)
            .create(queue_path(dir.path(), r))
            .unwrap();
    }
    WorkQueue::builder()
        .tasks(0)
        .barrier(o.workers as u32 + 1)
        .max_workers(o.workers as u32 + 1)
        .create(dir.path().join("sync.npy"))
        .unwrap();
    let sync = WorkQueue::open(dir.path().join("sync.npy")).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut kids: Vec<Child> = (0..o.workers)
        .map(|_| {
            Command::new(&exe)
                .env(ROLE, "worker")
                .env("SHARRAY_POOL_BENCH_DIR", dir.path())
                .env("SHARRAY_POOL_BENCH_ROUNDS", o.rounds.to_string())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();

    let (mut tt, mut tp) = (Vec::new(), Vec::new());
    if verbose {
        println!(
            "{:>6} {:>12} {:>12} {:>10}",
            "round", "threads GB/s", "procs GB/s", "procs/thr"
        );
    }
    for r in 0..o.rounds {
        reset(&out);
        let t = thread_round(&input, &out, o.workers, chunk_rows * COLS);
        verify(&out);
        reset(&out);
        let p = process_round(dir.path(), r);
        verify(&out);
        if r == 0 && o.rounds > 1 {
            // Wait (untimed) until the workers have mapped the arrays.
            let me = sync.join().unwrap();
            me.barrier_wait(Some(Duration::from_secs(300))).unwrap();
        }
        if verbose {
            println!(
                "{:>6} {:>12.2} {:>12.2} {:>10.3}{}",
                r + 1,
                2.0 * bytes / t / 1e9,
                2.0 * bytes / p / 1e9,
                t / p,
                if r == 0 {
                    "   (cold: workers fault pages in as they go)"
                } else {
                    ""
                }
            );
        }
        tt.push(t);
        tp.push(p);
    }
    for k in kids.iter_mut() {
        assert!(k.wait().unwrap().success(), "a worker process failed");
    }
    let one = thread_round(&input, &out, 1, chunk_rows * COLS);
    let (cold_t, cold_p) = (tt[0], tp[0]);
    let warm = |v: &[f64]| median(&mut v.get(1..).unwrap_or(v).to_vec());
    let (warm_t, warm_p) = if o.rounds > 1 {
        (warm(&tt), warm(&tp))
    } else {
        (cold_t, cold_p)
    };
    PoolResult {
        threads_gbps_cold: 2.0 * bytes / cold_t / 1e9,
        procs_gbps_cold: 2.0 * bytes / cold_p / 1e9,
        threads_gbps_warm: 2.0 * bytes / warm_t / 1e9,
        procs_gbps_warm: 2.0 * bytes / warm_p / 1e9,
        ratio_warm: warm_t / warm_p,
        one_thread_gbps: 2.0 * bytes / one / 1e9,
        claim_ns: claim_latency(dir.path(), o.claims),
        claim_contended_ns: claim_contended(dir.path(), o.claims, o.workers),
    }
}
