//! Transports behind one interface, and the two drivers every transport runs
//! through: streaming throughput and ping-pong latency, always between this
//! process (pinned to CPU 0) and a child process (pinned to CPU 1).
//!
//! Every frame is written in full by its sender ([`fill`]) and read in full
//! by its receiver ([`check`]), whatever the transport.

#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use sharray::{Consumer, Dtype, Producer, Ring};

use super::mini::Mini;
use super::payload::{check, fill};
use super::{Budget, Samples, finish, read_line};

/// The sequence number that ends a ping-pong.
const STOP: u64 = u64::MAX;

/// No hand-off in a benchmark legitimately waits this long: a peer that
/// died or stopped taking frames turns into a panic, never a hang.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// One end of a transport: frames of `words` u64 go out, frames come in.
pub trait Link {
    /// Fill a frame with `seq` (every word) and hand it to the peer; waits
    /// for room.
    fn send(&mut self, seq: u64);
    /// Take the next frame from the peer and read every word: its sequence
    /// number and whether its checksum holds.
    fn recv(&mut self) -> (u64, bool);
}

/// The transports that run as two Rust processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A sharray ring (`Ring`, queue mode).
    Ring,
    /// The minimal hand-written shared-memory ring of `mini.rs`.
    Mini,
    /// A connected Unix domain stream socket.
    Socket,
    /// Two pipes (the child's stdin and stdout), 1 MiB pipe buffers.
    Pipe,
    /// iceoryx2 publish-subscribe of `[u64]` slices (feature `iceoryx2`).
    Iceoryx2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ring => "ring",
            Kind::Mini => "mini",
            Kind::Socket => "socket",
            Kind::Pipe => "pipe",
            Kind::Iceoryx2 => "iceoryx2",
        }
    }

    fn parse(s: &str) -> Kind {
        [
            Kind::Ring,
            Kind::Mini,
            Kind::Socket,
            Kind::Pipe,
            Kind::Iceoryx2,
        ]
        .into_iter()
        .find(|k| k.name() == s)
        .unwrap_or_else(|| panic!("unknown transport {s}"))
    }
}

/// What to measure: a transport, the frame size, the slot count (rings) and
/// how long a waiting side spins before it parks.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub kind: Kind,
    pub words: usize,
    pub slots: u32,
    pub spin: Duration,
}

impl Case {
    fn args(&self, n: u64, duplex: bool, a: &str, b: &str) -> Vec<String> {
        vec![
            self.kind.name().into(),
            self.words.to_string(),
            self.slots.to_string(),
            self.spin.as_nanos().to_string(),
            n.to_string(),
            (duplex as u8).to_string(),
            a.into(),
            b.into(),
        ]
    }

    fn parse(a: &[String]) -> (Case, u64, bool, String, String) {
        let case = Case {
            kind: Kind::parse(&a[0]),
            words: a[1].parse().unwrap(),
            slots: a[2].parse().unwrap(),
            spin: Duration::from_nanos(a[3].parse().unwrap()),
        };
        (
            case,
            a[4].parse().unwrap(),
            a[5] == "1",
            a[6].clone(),
            a[7].clone(),
        )
    }

    fn bytes(&self) -> u64 {
        self.words as u64 * 8
    }
}

// ------------------------------------------------------------- transports

/// A sharray ring end: a producer on one ring, a consumer on the other.
pub struct RingLink {
    tx: Option<Producer>,
    rx: Option<Consumer>,
}

impl RingLink {
    /// Create a ring of `case.slots` slots of `case.words` u64 at `path`.
    pub fn create(path: &Path, case: &Case) {
        Ring::builder(Dtype::parse_user("uint64").unwrap(), &[case.words])
            .slots(case.slots)
            .create(path)
            .unwrap();
    }

    /// Attach as producer of `tx` and/or consumer of `rx`.
    pub fn open(tx: Option<&str>, rx: Option<&str>, spin: Duration) -> RingLink {
        let tx = tx.map(|p| {
            let mut p = Ring::open(p).unwrap().producer().unwrap();
            p.set_spin(spin);
            p
        });
        let rx = rx.map(|p| {
            let mut c = Ring::open(p).unwrap().consumer().unwrap();
            c.set_spin(spin);
            c
        });
        RingLink { tx, rx }
    }
}

impl Link for RingLink {
    fn send(&mut self, seq: u64) {
        let tx = self.tx.as_ref().unwrap();
        let mut l = tx
            .loan_timeout(PEER_TIMEOUT)
            .expect("the consumer stopped taking frames");
        fill(l.as_mut_slice::<u64>().unwrap(), seq);
        l.set_tag(seq);
        l.commit().unwrap();
    }

    fn recv(&mut self) -> (u64, bool) {
        let rx = self.rx.as_ref().unwrap();
        let f = rx
            .recv_timeout(PEER_TIMEOUT)
            .expect("no frame from the producer");
        let (seq, ok) = check(f.as_slice::<u64>().unwrap());
        (seq, ok && f.tag() == seq)
    }
}

struct MiniLink {
    tx: Option<Mini>,
    rx: Option<Mini>,
}

impl Link for MiniLink {
    fn send(&mut self, seq: u64) {
        self.tx.as_mut().unwrap().push(seq);
    }

    fn recv(&mut self) -> (u64, bool) {
        self.rx.as_mut().unwrap().pop()
    }
}

/// Byte streams (socket, pipes) with one private frame buffer.
struct StreamLink {
    tx: Option<Box<dyn Write>>,
    rx: Option<Box<dyn Read>>,
    buf: Vec<u64>,
}

impl Link for StreamLink {
    fn send(&mut self, seq: u64) {
        fill(&mut self.buf, seq);
        let tx = self.tx.as_mut().unwrap();
        tx.write_all(bytemuck::cast_slice(&self.buf)).unwrap();
    }

    fn recv(&mut self) -> (u64, bool) {
        let rx = self.rx.as_mut().unwrap();
        rx.read_exact(bytemuck::cast_slice_mut(&mut self.buf))
            .unwrap();
        check(&self.buf)
    }
}

/// Give a pipe a 1 MiB buffer (`F_SETPIPE_SZ`).
fn big_pipe(fd: &impl AsFd) {
    // SAFETY: plain fcntl on a descriptor we own; no pointers.
    let r = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    assert!(r >= 1 << 20, "F_SETPIPE_SZ failed");
}

/// Our own descriptor for fd 0 or 1, unbuffered (std's stdout is line
/// buffered).
fn raw_std(fd: impl AsFd) -> std::fs::File {
    std::fs::File::from(fd.as_fd().try_clone_to_owned().unwrap())
}

// ------------------------------------------------------------ start / attach

/// Parent: set up the transport, spawn the child (`link_sink` for one-way
/// streaming, `link_echo` for ping-pong), attach, and wait for its `ready`.
fn start(dir: &Path, case: &Case, duplex: bool, n: u64) -> (Child, Box<dyn Link>) {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let a = dir.join(format!("{}-{id}-a", case.kind.name()));
    let b = dir.join(format!("{}-{id}-b", case.kind.name()));
    let (sa, sb) = (a.to_str().unwrap(), b.to_str().unwrap());
    let role = if duplex { "link_echo" } else { "link_sink" };
    let args = case.args(n, duplex, sa, sb);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let spawn = |stdin: bool| super::spawn_with(role, &args, stdin);
    // The pipe's link is built after `ready`: the child's stdout carries the
    // frames coming back after that line.
    let (mut child, link): (Child, Option<Box<dyn Link>>) = match case.kind {
        Kind::Ring => {
            RingLink::create(&a, case);
            if duplex {
                RingLink::create(&b, case);
            }
            let link = RingLink::open(Some(sa), duplex.then_some(sb), case.spin);
            (spawn(false), Some(Box::new(link)))
        }
        Kind::Mini => {
            let slots = u64::from(case.slots);
            Mini::create(&a, slots, case.words);
            if duplex {
                Mini::create(&b, slots, case.words);
            }
            let link = MiniLink {
                tx: Some(Mini::open(sa, slots, case.words, case.spin)),
                rx: duplex.then(|| Mini::open(sb, slots, case.words, case.spin)),
            };
            (spawn(false), Some(Box::new(link)))
        }
        Kind::Socket => {
            let listener = UnixListener::bind(&a).unwrap();
            let child = spawn(false);
            let (s, _) = listener.accept().unwrap();
            let link = StreamLink {
                tx: Some(Box::new(s.try_clone().unwrap())),
                rx: duplex.then(|| Box::new(s) as Box<dyn Read>),
                buf: vec![0; case.words],
            };
            (child, Some(Box::new(link)))
        }
        Kind::Pipe => {
            let child = spawn(true);
            big_pipe(child.stdin.as_ref().unwrap());
            big_pipe(child.stdout.as_ref().unwrap());
            (child, None)
        }
        Kind::Iceoryx2 => {
            let link = super::iceoryx::open(case, Some(sa), duplex.then_some(sb));
            (spawn(false), Some(link))
        }
    };
    assert_eq!(
        read_line(&mut child),
        "ready",
        "{case:?}: child did not start"
    );
    let link = link.unwrap_or_else(|| {
        Box::new(StreamLink {
            tx: Some(Box::new(child.stdin.take().unwrap())),
            rx: duplex.then(|| Box::new(child.stdout.take().unwrap()) as Box<dyn Read>),
            buf: vec![0; case.words],
        })
    });
    (child, link)
}

/// Child: attach to what the parent set up, then say `ready`.
fn attach(case: &Case, duplex: bool, a: &str, b: &str) -> Box<dyn Link> {
    let link: Box<dyn Link> = match case.kind {
        Kind::Ring => Box::new(RingLink::open(duplex.then_some(b), Some(a), case.spin)),
        Kind::Mini => {
            let slots = u64::from(case.slots);
            Box::new(MiniLink {
                tx: duplex.then(|| Mini::open(b, slots, case.words, case.spin)),
                rx: Some(Mini::open(a, slots, case.words, case.spin)),
            })
        }
        Kind::Socket => {
            let s = UnixStream::connect(a).unwrap();
            Box::new(StreamLink {
                tx: duplex.then(|| Box::new(s.try_clone().unwrap()) as Box<dyn Write>),
                rx: Some(Box::new(s)),
                buf: vec![0; case.words],
            })
        }
        Kind::Pipe => Box::new(StreamLink {
            tx: duplex.then(|| Box::new(raw_std(std::io::stdout())) as Box<dyn Write>),
            rx: Some(Box::new(raw_std(std::io::stdin()))),
            buf: vec![0; case.words],
        }),
        Kind::Iceoryx2 => super::iceoryx::open(case, duplex.then_some(b), Some(a)),
    };
    println!("ready");
    link
}

// ------------------------------------------------------------------ drivers

/// Streaming throughput in GB/s: the parent sends `n` frames as fast as the
/// transport takes them; the child times the frames after a warm-up lap
/// from its side (see [`warm_up`]).
pub fn throughput(dir: &Path, case: &Case, n: u64) -> f64 {
    let (mut child, mut link) = start(dir, case, false, n);
    for seq in 0..n {
        link.send(seq);
    }
    let line = read_line(&mut child);
    drop(link);
    finish(child);
    parse_sink(&line, n, case.bytes())
}

/// Parse a sink's `NANOS BAD [TIMED]` line into GB/s (TIMED frames, or
/// n - 1 if the sink does not say, in NANOS).
pub fn parse_sink(line: &str, n: u64, frame_bytes: u64) -> f64 {
    let mut it = line.split_whitespace();
    let nanos: u64 = it.next().and_then(|v| v.parse().ok()).expect(line);
    let bad: u64 = it.next().and_then(|v| v.parse().ok()).expect(line);
    assert_eq!(bad, 0, "checksum failures");
    let timed = it.next().map_or(n - 1, |v| v.parse().expect(line));
    super::gbps(timed * frame_bytes, Duration::from_nanos(nanos.max(1)))
}

/// Frames a sink reads before it starts the clock: a lap of every buffer
/// the transport may cycle through (at most half the run, at least one).
/// A transport that maps its memory lazily pays a page fault on the first
/// touch of every page of every buffer, and no transport is timed on it:
/// sharray and the hand-written ring fault their `slots` buffers in at
/// attach; iceoryx2's subscriber maps the publisher's data segment lazily,
/// and that segment holds `buffer + borrowed (2) + loaned (1)` samples per
/// subscriber, hence `2 * slots + 4`.
pub fn warm_up(slots: u32, n: u64) -> u64 {
    (2 * u64::from(slots) + 4).min(n / 2).max(1)
}

/// One-way latency samples (round trip / 2): the parent sends a frame, the
/// child reads it and sends one of the same size back, the parent reads it.
pub fn latency(dir: &Path, case: &Case, budget: Budget) -> Samples {
    let (child, mut link) = start(dir, case, true, 0);
    let s = budget.sample(|i| {
        let t0 = Instant::now();
        link.send(i);
        let (seq, ok) = link.recv();
        let rt = t0.elapsed();
        assert!(ok && seq == i, "{case:?}: bad echo");
        rt.as_nanos() as u64 / 2
    });
    link.send(STOP);
    finish(child);
    drop(link);
    s
}

/// Child role `link_sink`: receive n frames, print `NANOS BAD`.
pub fn sink(a: &[String]) {
    super::pin(1);
    let (case, n, duplex, pa, pb) = Case::parse(a);
    let mut link = attach(&case, duplex, &pa, &pb);
    let (mut t0, mut bad) = (None, 0u64);
    let warm = warm_up(case.slots, n);
    for seq in 0..n {
        let (got, ok) = link.recv();
        if !ok || got != seq {
            bad += 1;
        }
        if seq + 1 == warm {
            t0 = Some(Instant::now());
        }
    }
    let d = t0.map_or(Duration::ZERO, |t| t.elapsed());
    println!("{} {bad} {}", d.as_nanos(), n.saturating_sub(warm));
}

/// Child role `link_echo`: answer every frame with a frame of the same size
/// and sequence number, until the stop frame.
pub fn echo(a: &[String]) {
    super::pin(1);
    let (case, _, duplex, pa, pb) = Case::parse(a);
    let mut link = attach(&case, duplex, &pa, &pb);
    loop {
        let (seq, ok) = link.recv();
        assert!(ok, "{case:?}: bad frame in the echo child");
        if seq == STOP {
            break;
        }
        link.send(seq);
    }
}

// --------------------------------------------------------------- in process

/// The same writes and reads in one process on one reused buffer: GB/s.
pub fn inproc_throughput(words: usize, n: u64) -> f64 {
    let mut buf = vec![0u64; words];
    let mut bad = 0;
    let t0 = Instant::now();
    for seq in 0..n {
        fill(&mut buf, seq);
        if !check(&buf).1 {
            bad += 1;
        }
    }
    assert_eq!(bad, 0);
    super::gbps(n * words as u64 * 8, t0.elapsed())
}

/// In one process, the time of one write + read of a frame (a "hop" that
/// costs nothing but the payload discipline).
pub fn inproc_latency(words: usize, budget: Budget) -> Samples {
    let mut buf = vec![0u64; words];
    budget.sample(|i| {
        let t0 = Instant::now();
        fill(&mut buf, i);
        let ok = check(&buf).1;
        let d = t0.elapsed();
        assert!(ok);
        d.as_nanos() as u64
    })
}
