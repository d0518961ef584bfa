//! Ring commands: ring create/close/reopen, push, pop, subscribe, watch.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sharray::{Dtype, Error, ErrorKind, ReadLease, Ring, RingStats};

/// Commands on producer/consumer rings.
#[derive(Subcommand)]
pub enum RingCmd {
    /// Create a ring, or close or reopen its stream (`sharray info`,
    /// `watch` and `check` inspect one).
    Ring {
        #[command(subcommand)]
        cmd: RingSub,
    },
    /// Commit one frame from a .npy file into a ring.
    Push {
        /// The ring (path, or shm:NAME for /dev/shm/NAME).
        path: String,
        #[command(flatten)]
        owner: crate::array_cmds::OwnerArgs,
        /// A .npy file with the ring's dtype and frame shape.
        frame: PathBuf,
        /// Give up after this many seconds if no slot is free (exit code 3).
        #[arg(long, value_name = "S")]
        timeout: Option<f64>,
        /// User tag delivered with the frame.
        #[arg(long, default_value_t = 0)]
        tag: u64,
        /// Close the stream after this frame: consumers drain it, then end.
        #[arg(long)]
        close: bool,
        /// Reopen the stream if a producer had closed it (otherwise a
        /// closed ring refuses the frame).
        #[arg(long)]
        reopen: bool,
    },
    /// Receive one frame and write it to a new .npy file (never overwrites unless --force).
    ///
    /// Queue mode: the next frame. Broadcast mode: attaches as a one-shot
    /// subscriber and writes the next frame committed after that. Waits for
    /// a producer (until --timeout); fails at once if the stream was closed
    /// and is drained.
    Pop {
        /// The ring.
        path: String,
        #[command(flatten)]
        owner: crate::array_cmds::OwnerArgs,
        /// Output .npy file (must not exist, unless --force).
        out: PathBuf,
        /// Give up after this many seconds (exit code 3).
        #[arg(long, value_name = "S")]
        timeout: Option<f64>,
        /// Replace an existing OUT atomically (written under a temporary
        /// name and renamed over it; a process mapping the old file keeps it).
        #[arg(long)]
        force: bool,
    },
    /// Receive N frames as a subscriber and write them as DIR/frame_000000.npy, ...
    Subscribe {
        /// The ring.
        path: String,
        #[command(flatten)]
        owner: crate::array_cmds::OwnerArgs,
        /// Number of frames to write.
        #[arg(long)]
        count: u64,
        /// Directory for the frames (created if missing).
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
        /// Give up after this many seconds in total (exit code 3).
        #[arg(long, value_name = "S")]
        timeout: Option<f64>,
    },
    /// Live view of a ring: rates, occupancy, participants and lag.
    Watch {
        /// The ring.
        path: String,
        #[command(flatten)]
        owner: crate::array_cmds::OwnerArgs,
        /// Seconds between refreshes.
        #[arg(long, value_name = "S", default_value_t = 1.0)]
        interval: f64,
        /// Print one JSON snapshot and exit.
        #[arg(long)]
        json: bool,
    },
}

/// `sharray ring ...`
#[derive(Subcommand)]
pub enum RingSub {
    /// Create a ring file of K slots of one frame shape.
    Create(CreateArgs),
    /// End the stream: consumers receive what was committed, then stop.
    ///
    /// Producers that exit (or die) without closing do not end a stream.
    /// A closed ring refuses new producers until `sharray ring reopen`.
    Close {
        /// The ring (path, or shm:NAME for /dev/shm/NAME).
        path: String,
    },
    /// Reopen a closed stream, so producers may send again.
    Reopen {
        /// The ring (path, or shm:NAME for /dev/shm/NAME).
        path: String,
    },
}

/// Arguments of `sharray ring create`.
#[derive(Args)]
pub struct CreateArgs {
    /// Where to create it (path, or shm:NAME for /dev/shm/NAME).
    path: String,
    /// Element type: a numpy descr ('<f4', '|u1') or a name (float32, uint8).
    #[arg(long)]
    dtype: String,
    /// Frame shape, comma separated: 480,640,3.
    #[arg(long, value_name = "D0,D1,...")]
    frame_shape: String,
    /// Number of slots (default: as many frames as fit in 16 MiB, 4 to 64).
    #[arg(long, value_name = "K")]
    slots: Option<u32>,
    /// Broadcast mode: every subscriber gets every frame.
    #[arg(long)]
    broadcast: bool,
    /// Overwrite the oldest unread frame instead of waiting for a free slot.
    #[arg(long)]
    overwrite: bool,
    /// Size of the participant table (1..=64).
    #[arg(long, default_value_t = 64)]
    max_participants: u32,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

fn timeout_of(s: Option<f64>) -> sharray::Result<Option<Duration>> {
    match s {
        None => Ok(None),
        Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(Duration::from_secs_f64(v.min(1e9)))),
        Some(v) => Err(invalid(format!(
            "--timeout {v} must be a non-negative number of seconds"
        ))),
    }
}

fn parse_shape(s: &str) -> sharray::Result<Vec<usize>> {
    crate::args::parse_shape(s).map_err(|m| invalid(format!("invalid frame shape: {m}")))
}

/// `--allow-other-owner` of the running command (one command per process).
static OTHER_OWNER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Open a ring, accepting one of another user if the command says so.
fn open_ring(path: &Path) -> sharray::Result<Ring> {
    let allow = OTHER_OWNER.load(std::sync::atomic::Ordering::Relaxed);
    Ring::open_with_options(path, sharray::OpenOptions::new().allow_other_owner(allow))
}

/// Run a ring command.
pub fn run(cmd: RingCmd) -> sharray::Result<()> {
    if let RingCmd::Push { owner, .. }
    | RingCmd::Pop { owner, .. }
    | RingCmd::Subscribe { owner, .. }
    | RingCmd::Watch { owner, .. } = &cmd
    {
        OTHER_OWNER.store(
            owner.allow_other_owner,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    match cmd {
        RingCmd::Ring { cmd } => match cmd {
            RingSub::Create(a) => create(a),
            RingSub::Close { path } => close(&path),
            RingSub::Reopen { path } => reopen(&path),
        },
        RingCmd::Push {
            path,
            frame,
            timeout,
            tag,
            close,
            reopen,
            ..
        } => push(
            &path,
            &frame,
            timeout_of(timeout)?,
            tag,
            PushEnd { close, reopen },
        ),
        RingCmd::Pop {
            path,
            out,
            timeout,
            force,
            ..
        } => pop(&path, &out, timeout_of(timeout)?, force),
        RingCmd::Subscribe {
            path,
            count,
            out_dir,
            timeout,
            ..
        } => subscribe(&path, count, &out_dir, timeout_of(timeout)?),
        RingCmd::Watch {
            path,
            interval,
            json,
            ..
        } => watch(&path, interval, json),
    }
}

fn create(a: CreateArgs) -> sharray::Result<()> {
    let path = sharray::resolve_location(&a.path)?;
    let dtype = Dtype::parse_user(&a.dtype).map_err(|e| invalid(e.message().to_string()))?;
    let shape = parse_shape(&a.frame_shape)?;
    let mut b = Ring::builder(dtype, &shape)
        .broadcast(a.broadcast)
        .overwrite(a.overwrite)
        .max_participants(a.max_participants);
    if let Some(k) = a.slots {
        b = b.slots(k);
    }
    let ring = b.create(&path)?;
    println!(
        "created ring {}: {} slots of {} {:?} ({} bytes each), {}{}",
        path.display(),
        ring.slots(),
        ring.dtype().descr(),
        ring.frame_shape(),
        ring.slot_bytes(),
        if ring.is_broadcast() {
            "broadcast"
        } else {
            "queue"
        },
        if ring.is_overwrite() {
            ", overwrite-oldest"
        } else {
            ""
        }
    );
    Ok(())
}

/// `sharray ring close PATH`: attach a producer (reopening, so a closed ring
/// is no error), close, detach.
fn close(path: &str) -> sharray::Result<()> {
    let p = sharray::resolve_location(path)?;
    let ring = open_ring(&p)?;
    let was = ring.stats().closed;
    ring.producer_reopening()?.close()?;
    println!(
        "{} {}",
        if was { "already closed:" } else { "closed" },
        p.display()
    );
    Ok(())
}

/// `sharray ring reopen PATH`.
fn reopen(path: &str) -> sharray::Result<()> {
    let p = sharray::resolve_location(path)?;
    let ring = open_ring(&p)?;
    let was = ring.stats().closed;
    drop(ring.producer_reopening()?);
    println!(
        "{} {}",
        if was { "reopened" } else { "already open:" },
        p.display()
    );
    Ok(())
}

/// What `push` does about the end of the stream.
struct PushEnd {
    close: bool,
    reopen: bool,
}

fn push(
    path: &str,
    frame: &Path,
    timeout: Option<Duration>,
    tag: u64,
    end: PushEnd,
) -> sharray::Result<()> {
    let ring = open_ring(&sharray::resolve_location(path)?)?;
    let src = sharray::UntypedArray::open_read_only(frame)?;
    if src.dtype() != ring.dtype() || src.shape() != ring.frame_shape() {
        return Err(Error::new(
            ErrorKind::ShapeMismatch,
            format!(
                "the frame is {} {:?} but the ring holds {} {:?}; convert the frame to match",
                src.dtype().descr(),
                src.shape(),
                ring.dtype().descr(),
                ring.frame_shape()
            ),
        )
        .at(frame));
    }
    if src.order() == sharray::Order::F && src.shape().iter().filter(|&&d| d > 1).count() > 1 {
        return Err(invalid(
            "the frame is in Fortran order; rings hold C-order frames, save it with np.ascontiguousarray",
        )
        .at(frame));
    }
    let producer = if end.reopen {
        ring.producer_reopening()?
    } else {
        ring.producer().map_err(|e| {
            if e.kind() == ErrorKind::Disconnected {
                Error::new(
                    e.kind(),
                    "the ring's stream was closed; push --reopen (or `sharray ring reopen`) reopens it",
                )
                .at(ring.path())
            } else {
                e
            }
        })?
    };
    let mut loan = match timeout {
        Some(t) => producer.loan_timeout(t)?,
        None => producer.loan()?,
    };
    {
        let guard = src.read()?;
        loan.bytes_mut().copy_from_slice(guard.bytes());
    }
    loan.set_tag(tag);
    let seq = loan.commit()?;
    if end.close {
        producer.close()?;
    }
    println!("{seq}");
    Ok(())
}

/// Receive the next frame, waiting for producers (they may come and go)
/// until the deadline; a closed and drained stream ends at once.
fn next_frame(
    ring: &Ring,
    c: &sharray::Consumer,
    deadline: Option<Instant>,
) -> sharray::Result<ReadLease> {
    let r = match deadline {
        Some(d) => c.recv_timeout(d.saturating_duration_since(Instant::now())),
        None => c.recv(),
    };
    r.map_err(|e| match e.kind() {
        ErrorKind::Disconnected => Error::new(
            e.kind(),
            "the ring's stream was closed and every frame has been received: nothing left to pop (`sharray ring reopen` reopens it)",
        )
        .at(ring.path()),
        ErrorKind::Timeout if ring.stats().producers_attached() == 0 => Error::new(
            e.kind(),
            "no frame arrived before the timeout, and no producer is attached; start a producer",
        )
        .at(ring.path()),
        _ => e,
    })
}

fn exists(out: &Path) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        "a file already exists at this path; sharray never overwrites, remove it first or pick another path",
    )
    .at(out)
}

/// Write a plain .npy (numpy's own header) atomically, never overwriting
/// (unless `force`: then replacing an existing file atomically).
fn write_npy(
    out: &Path,
    dtype: &Dtype,
    shape: &[usize],
    data: &[u8],
    force: bool,
) -> sharray::Result<()> {
    if force {
        sharray::write_npy_replacing(out, dtype, shape, sharray::Order::C, data, 0o600)
    } else {
        sharray::write_npy(out, dtype, shape, sharray::Order::C, data, 0o600)
    }
}

/// Save the frame while its lease is held; if that fails (full disk, a path
/// that appeared meanwhile...), give the frame back unconsumed so the next
/// consumer gets it, and report the write error. Consumes the lease either
/// way (released only after the file is published).
fn save(ring: &Ring, f: ReadLease, out: &Path, force: bool) -> sharray::Result<()> {
    match write_npy(out, ring.dtype(), ring.frame_shape(), f.slot_bytes(), force) {
        Ok(()) => Ok(()),
        Err(e) => {
            let what = match f.give_back() {
                Ok(()) => "the frame stays in the ring for the next consumer".to_string(),
                Err(back) => format!("and the frame is lost: {}", back.message()),
            };
            Err(Error::new(e.kind(), format!("{e}; {what}")))
        }
    }
}

fn pop(path: &str, out: &Path, timeout: Option<Duration>, force: bool) -> sharray::Result<()> {
    let p = sharray::resolve_location(path)?;
    let ring = open_ring(&p)?;
    if !force && out.symlink_metadata().is_ok() {
        return Err(exists(out));
    }
    let c = ring.consumer()?;
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let f = next_frame(&ring, &c, deadline)?;
    let line = format!(
        "seq={} tag={} timestamp_ns={} valid_len={} lost={}",
        f.seq(),
        f.tag(),
        f.timestamp_ns(),
        f.valid_len(),
        f.lost()
    );
    save(&ring, f, out, force)?;
    println!("{line}");
    Ok(())
}

fn subscribe(path: &str, count: u64, dir: &Path, timeout: Option<Duration>) -> sharray::Result<()> {
    let p = sharray::resolve_location(path)?;
    let ring = open_ring(&p)?;
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot create the output directory: {e}"),
        )
        .at(dir)
    })?;
    let c = ring.consumer()?;
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    for i in 0..count {
        let f = next_frame(&ring, &c, deadline)?;
        if f.lost() > 0 {
            eprintln!("sharray: lost {} frames before seq {}", f.lost(), f.seq());
        }
        save(&ring, f, &dir.join(format!("frame_{i:06}.npy")), false)?;
    }
    Ok(())
}

/// The `"ring"` object of `sharray info --json` and `sharray watch --json`.
fn stats_json(ring: &Ring, st: &RingStats) -> Value {
    json!({
        "dtype": ring.dtype().descr(),
        "frame_shape": ring.frame_shape(),
        "slots": st.slots,
        "slot_bytes": st.slot_bytes,
        "mode": if st.broadcast { "broadcast" } else { "queue" },
        "overwrite": st.overwrite,
        "committed": st.committed,
        "received": st.received,
        "dropped": st.dropped,
        "head": st.head,
        "tail": st.tail,
        "slots_free": st.free,
        "slots_writing": st.writing,
        "slots_ready": st.ready,
        "slots_reading": st.reading,
        "slots_in_use": st.in_use(),
        "closed": st.closed,
        "producers_attached": st.producers_attached(),
        "participants_alive": st.alive(),
        "participants": st.participants.iter().map(|p| json!({
            "index": p.index,
            "role": p.role.name(),
            "pid": p.pid,
            "alive": p.alive,
            "count": p.count,
            "lost": p.lost,
            "lag": p.lag,
        })).collect::<Vec<_>>(),
    })
}

/// Hook for `sharray info --json`: the `"ring"` object for a ring file
/// (`kind: "ring"`), or `None` if the file is not a ring.
///
/// # Errors
///
/// Errors of opening the ring.
pub fn ring_info_json(path: &Path, allow_other_owner: bool) -> sharray::Result<Option<Value>> {
    if sharray::inspect(path)?.kind != sharray::FileKind::Ring {
        return Ok(None);
    }
    OTHER_OWNER.store(allow_other_owner, std::sync::atomic::Ordering::Relaxed);
    let ring = open_ring(path)?;
    Ok(Some(stats_json(&ring, &ring.stats())))
}

fn watch(path: &str, interval: f64, as_json: bool) -> sharray::Result<()> {
    let p = sharray::resolve_location(path)?;
    let ring = open_ring(&p)?;
    if as_json {
        let v = json!({ "path": p.display().to_string(), "kind": "ring", "ring": stats_json(&ring, &ring.stats()) });
        println!("{v}");
        return Ok(());
    }
    if !(interval.is_finite() && interval > 0.0) {
        return Err(invalid("--interval must be a positive number of seconds"));
    }
    let tty = std::io::stdout().is_terminal();
    let mut prev = ring.stats();
    let mut lines_drawn = 0;
    loop {
        std::thread::sleep(Duration::from_secs_f64(interval.min(1e6)));
        let st = ring.stats();
        let secs = (st.timestamp_ns.saturating_sub(prev.timestamp_ns)) as f64 / 1e9;
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs.max(1e-9);
        let fps = rate(st.committed, prev.committed);
        let mut out = vec![
            format!(
                "{}  {} {}  {} slots x {} B",
                p.display(),
                if st.broadcast { "broadcast" } else { "queue" },
                if st.overwrite {
                    "overwrite"
                } else {
                    "backpressure"
                },
                st.slots,
                st.slot_bytes
            ),
            format!(
                "commit {:>10.1}/s ({:.2} GB/s)   recv {:>10.1}/s   dropped {:>8.1}/s",
                fps,
                fps * st.slot_bytes as f64 / 1e9,
                rate(st.received, prev.received),
                rate(st.dropped, prev.dropped)
            ),
            format!(
                "slots: {} free, {} writing, {} ready, {} reading   totals: {} committed, {} received, {} dropped",
                st.free, st.writing, st.ready, st.reading, st.committed, st.received, st.dropped
            ),
            format!(
                "stream: {}   producers attached: {}",
                if st.closed { "CLOSED" } else { "open" },
                st.producers_attached()
            ),
            format!("participants ({} alive):", st.alive()),
        ];
        for q in &st.participants {
            out.push(format!(
                "  #{:<2} {:<10} pid {:<8} {:<5} count {:<12} lag {:<8} lost {}",
                q.index,
                q.role.name(),
                q.pid,
                if q.alive { "alive" } else { "DEAD" },
                q.count,
                q.lag,
                q.lost
            ));
        }
        let mut text = String::new();
        if tty {
            if lines_drawn > 0 {
                text += &format!("\x1b[{lines_drawn}A");
            }
            for l in &out {
                text += &format!("\x1b[2K{l}\n");
            }
            text += "\x1b[J";
            lines_drawn = out.len();
        } else {
            text += &format!("{}\n", out[1..3].join("   "));
        }
        let mut so = std::io::stdout().lock();
        if let Err(e) = so.write_all(text.as_bytes()).and_then(|()| so.flush()) {
            // The reader went away (`sharray watch R | head`): stop quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
        }
        prev = st;
    }
}
