//! Queue commands: `sharray queue create | status | wait | reap`.

use std::path::Path;
use std::time::Duration;

use clap::{ArgGroup, Subcommand};
use serde_json::{Value, json};
use sharray::QueueProgress;
use sharray::WorkQueue;

/// Worker-pool commands.
#[derive(Subcommand)]
pub enum PoolCmd {
    /// Worker-pool chunk queues: create one, show its progress, wait for it,
    /// re-queue the chunks of dead workers.
    #[command(subcommand)]
    Queue(QueueCmd),
}

fn positive(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{s:?} is not a positive integer"))
}

/// `sharray queue ...`
#[derive(Subcommand)]
pub enum QueueCmd {
    /// Create a queue file that splits N rows of axis 0 into chunks of R
    /// rows (`--rows N --chunk R`), or holds N tasks (`--tasks N`).
    #[command(
        group(ArgGroup::new("size").required(true).args(["rows", "tasks"])),
        override_usage = "sharray queue create <PATH> --rows <N> --chunk <R> [OPTIONS]\n       \
                          sharray queue create <PATH> --tasks <N> [OPTIONS]"
    )]
    Create {
        /// Path of the new queue file, or shm:NAME for /dev/shm/NAME.
        path: String,
        /// Rows along axis 0 of the arrays the workers process.
        #[arg(long, requires = "chunk")]
        rows: Option<usize>,
        /// Rows per chunk (with --rows).
        #[arg(long, value_parser = positive)]
        chunk: Option<usize>,
        /// Number of independent tasks (instead of --rows).
        #[arg(long)]
        tasks: Option<usize>,
        /// Size of the worker table.
        #[arg(long, default_value_t = sharray::pool::DEFAULT_MAX_WORKERS)]
        max_workers: u32,
        /// Give the queue a barrier of this many participants.
        #[arg(long, default_value_t = 0)]
        barrier: u32,
        /// Permission bits, octal.
        #[arg(long, default_value = "600", value_parser = crate::args::parse_mode)]
        mode: u32,
    },
    /// Show a queue's progress: chunks done, in flight, pending, re-queued,
    /// live workers, barrier state.
    Status {
        /// Path, or shm:NAME.
        path: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Accept a queue file owned by another user.
        #[arg(long)]
        allow_other_owner: bool,
    },
    /// Wait until every chunk is done, re-queueing the chunks of dead
    /// workers meanwhile. Exits 3 on timeout.
    Wait {
        /// Path, or shm:NAME.
        path: String,
        /// Seconds to wait at most.
        #[arg(long, default_value = "60", value_parser = crate::args::parse_seconds)]
        timeout: Duration,
        /// Print the final progress as JSON.
        #[arg(long)]
        json: bool,
        /// Accept a queue file owned by another user.
        #[arg(long)]
        allow_other_owner: bool,
    },
    /// Re-queue the chunks of dead workers now and print how many.
    Reap {
        /// Path, or shm:NAME.
        path: String,
        /// Accept a queue file owned by another user.
        #[arg(long)]
        allow_other_owner: bool,
    },
}

/// A queue's progress as a JSON object.
pub fn progress_json(p: &QueueProgress) -> Value {
    json!({
        "mode": if p.tasks { "tasks" } else { "rows" },
        "chunks": p.chunks,
        "rows": p.rows,
        "chunk_rows": p.chunk_rows,
        "done": p.done,
        "in_flight": p.in_flight,
        "pending": p.pending,
        "requeued": p.requeued,
        "workers": p.workers,
        "complete": p.is_complete(),
        "barrier": {
            "parties": p.barrier_parties,
            "generation": p.barrier_generation,
            "arrived": p.barrier_arrived,
            "broken": p.barrier_broken,
        },
    })
}

/// The `"queue"` object for `sharray info --json` of a queue file (opens it
/// read-only; probes the liveness of its workers).
///
/// # Errors
///
/// As [`WorkQueue::open_read_only`] (for example, the file is not a queue).
pub fn queue_info_json(path: &Path) -> sharray::Result<Value> {
    let q = WorkQueue::open_read_only(path)?;
    let mut v = progress_json(&q.progress());
    v["max_workers"] = json!(q.max_workers());
    Ok(v)
}

/// The text `sharray queue status` prints, for `sharray info` of a queue
/// file (opens it read-only).
///
/// # Errors
///
/// As [`WorkQueue::open_read_only`].
pub fn queue_info_text(path: &Path) -> sharray::Result<String> {
    let q = WorkQueue::open_read_only(path)?;
    Ok(progress_text(path, &q, &q.progress()))
}

fn print_progress(path: &Path, q: &WorkQueue, p: &QueueProgress) {
    print!("{}", progress_text(path, q, p));
}

fn progress_text(path: &Path, q: &WorkQueue, p: &QueueProgress) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if p.tasks {
        let _ = writeln!(s, "queue {}: {} tasks", path.display(), p.chunks);
    } else {
        let _ = writeln!(
            s,
            "queue {}: {} chunks of {} rows ({} rows)",
            path.display(),
            p.chunks,
            p.chunk_rows,
            p.rows
        );
    }
    let _ = writeln!(
        s,
        "  done {}, in flight {}, pending {}, re-queued {}{}",
        p.done,
        p.in_flight,
        p.pending,
        p.requeued,
        if p.is_complete() { " (complete)" } else { "" }
    );
    let _ = writeln!(
        s,
        "  workers {} live (table of {})",
        p.workers,
        q.max_workers()
    );
    if p.barrier_parties > 0 {
        let _ = writeln!(
            s,
            "  barrier {} parties, generation {}, {} arrived{}",
            p.barrier_parties,
            p.barrier_generation,
            p.barrier_arrived,
            if p.barrier_broken {
                ", BROKEN (a participant died)"
            } else {
                ""
            }
        );
    }
    s
}

fn open(path: &Path, read_only: bool, allow_other_owner: bool) -> sharray::Result<WorkQueue> {
    let options = sharray::OpenOptions::new()
        .read_only(read_only)
        .allow_other_owner(allow_other_owner);
    WorkQueue::open_with_options(path, options)
}

/// Run a queue command.
pub fn run(cmd: PoolCmd) -> sharray::Result<()> {
    let PoolCmd::Queue(cmd) = cmd;
    match cmd {
        QueueCmd::Create {
            path,
            rows,
            chunk,
            tasks,
            max_workers,
            barrier,
            mode,
        } => {
            let path = sharray::resolve_location(&path)?;
            let mut b = WorkQueue::builder()
                .max_workers(max_workers)
                .barrier(barrier)
                .mode(mode);
            b = match (rows, tasks) {
                (Some(r), _) => b.rows(r).chunk_rows(chunk.unwrap_or(0)),
                (None, Some(t)) => b.tasks(t),
                (None, None) => b, // clap requires one; the builder says so too
            };
            let q = b.create(&path)?;
            println!("created {} with {} chunks", path.display(), q.chunks());
            Ok(())
        }
        QueueCmd::Status {
            path,
            json,
            allow_other_owner,
        } => {
            let path = sharray::resolve_location(&path)?;
            let q = open(&path, true, allow_other_owner)?;
            let p = q.progress();
            if json {
                let mut v = progress_json(&p);
                v["path"] = json!(path.display().to_string());
                v["max_workers"] = json!(q.max_workers());
                println!("{v}");
            } else {
                print_progress(&path, &q, &p);
            }
            Ok(())
        }
        QueueCmd::Wait {
            path,
            timeout,
            json,
            allow_other_owner,
        } => {
            let path = sharray::resolve_location(&path)?;
            let q = open(&path, false, allow_other_owner)?;
            let p = q.wait_all(timeout)?;
            if json {
                println!("{}", progress_json(&p));
            } else {
                print_progress(&path, &q, &p);
            }
            Ok(())
        }
        QueueCmd::Reap {
            path,
            allow_other_owner,
        } => {
            let path = sharray::resolve_location(&path)?;
            let n = open(&path, false, allow_other_owner)?.reap()?;
            println!("re-queued {n} chunks of dead workers");
            Ok(())
        }
    }
}
