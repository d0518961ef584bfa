//! Creation is atomic under SIGKILL and Ctrl-C: `sharray import` of a large
//! file and `sharray create` into /dev/shm are killed at random instants;
//! afterwards the destination is either absent or complete and correct, and
//! nothing else is left in the directory (no temporary file).
//!
//! Sizes: `SHARRAY_ATOMIC_BYTES` (default 256 MiB; e.g. 3221225472 for the
//! multi-GiB run), `SHARRAY_ATOMIC_KILLS` kills per kind (default 6).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Rng, cli, env_or};

/// The array size for a run in `dir`: `SHARRAY_ATOMIC_BYTES`, but at most a
/// quarter of the space free there (a source and a destination must fit,
/// with room to spare for other tests; CI machines have been seen with a
/// few hundred MiB free). Says so when it had to shrink.
fn bytes(dir: &Path) -> u64 {
    let want: u64 = env_or("SHARRAY_ATOMIC_BYTES", 256 << 20);
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: all-zero is a valid statvfs, which the kernel fills; `c` is a
    // NUL-terminated path that outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let free = if unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0 {
        st.f_bavail as u64 * st.f_frsize as u64
    } else {
        u64::MAX
    };
    let fits = (free / 4) & !((1 << 20) - 1);
    if fits < want {
        println!(
            "note: {} has {} MiB free; using {} MiB arrays instead of {} MiB",
            dir.display(),
            free >> 20,
            fits >> 20,
            want >> 20
        );
    }
    assert!(
        fits >= 8 << 20,
        "{}: only {} MiB free, too little for this test (needs 32 MiB)",
        dir.display(),
        free >> 20
    );
    want.min(fits)
}

/// Only the files named in `keep` are in `dir`.
fn only(dir: &Path, keep: &[&str]) {
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    left.sort();
    assert!(left.is_empty(), "{}: left behind {left:?}", dir.display());
}

/// Are the data bytes (from offset `a_off` / `b_off`) of two files equal?
fn same_data(a: &Path, a_off: u64, b: &Path, b_off: u64, len: u64) -> bool {
    use std::io::{Seek, SeekFrom};
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    fa.seek(SeekFrom::Start(a_off)).unwrap();
    fb.seek(SeekFrom::Start(b_off)).unwrap();
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut left = len;
    while left > 0 {
        let n = left.min(1 << 20) as usize;
        fa.read_exact(&mut ba[..n]).unwrap();
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
        left -= n as u64;
    }
    true
}

/// Run `args`, kill it with `sig` after `delay` (if still running); true if
/// it was killed rather than finished.
fn run_and_kill(args: &[&str], delay: Duration, sig: &str) -> bool {
    let mut child = cli()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let signo = if sig == "INT" {
        libc::SIGINT
    } else {
        libc::SIGKILL
    };
    // SAFETY: kill(2) on our own child's pid (not reaped yet).
    unsafe { libc::kill(child.id() as libc::pid_t, signo) };
    let st = common::wait_with_watchdog(&mut child, Duration::from_secs(120));
    !st.success()
}

/// Time an uninterrupted run of `args` (the faster of two, warm), then
/// remove what it made.
fn timed(args: &[&str], made: &Path) -> Duration {
    (0..2)
        .map(|_| {
            let t = Instant::now();
            let out = cli().args(args).stdout(Stdio::null()).output().unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let d = t.elapsed();
            std::fs::remove_file(made).unwrap();
            d
        })
        .min()
        .unwrap()
}

#[test]
fn import_killed_at_random_instants_publishes_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.npy");
    let n = bytes(dir.path()) / 8;
    // A plain .npy written the way numpy writes it, with varied data.
    let data: Vec<u8> = (0..n)
        .flat_map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes())
        .collect();
    sharray::write_npy(
        &src,
        &sharray::Dtype::parse_user("uint64").unwrap(),
        &[n as usize],
        sharray::Order::C,
        &data,
        0o600,
    )
    .unwrap();
    drop(data);
    let src_off = sharray::inspect(&src).unwrap().data_offset;
    let dst = dir.path().join("dst.npy");
    let (s, d) = (src.to_str().unwrap(), dst.to_str().unwrap());
    let args = ["import", s, d];
    let full = timed(&args, &dst);
    let mut rng = Rng::new("atomic_import");
    let (mut killed, mut complete) = (0, 0);
    for i in 0..env_or("SHARRAY_ATOMIC_KILLS", 6) {
        let delay = full.mul_f64(rng.below(1000) as f64 / 1000.0);
        let sig = if i % 2 == 0 { "KILL" } else { "INT" };
        killed += u32::from(run_and_kill(&args, delay, sig));
        if dst.exists() {
            // Complete and correct, never a full-size file of zeros.
            assert_eq!(sharray::check(&dst, None).unwrap(), vec![]);
            let off = sharray::inspect(&dst).unwrap().data_offset;
            assert!(
                same_data(&src, src_off, &dst, off, n * 8),
                "published with wrong data"
            );
            std::fs::remove_file(&dst).unwrap();
            complete += 1;
        }
        only(dir.path(), &["src.npy"]);
    }
    println!(
        "import: {killed} killed mid-way, {complete} complete (of {} MiB), full run {full:?}",
        (n * 8) >> 20
    );
    assert!(
        killed > 0,
        "no import was killed: the test did not test anything"
    );
}

#[test]
fn create_in_dev_shm_killed_at_random_instants_leaves_nothing_or_a_whole_file() {
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        println!("note: no /dev/shm here; skipped");
        return;
    };
    let path = dir.path().join("a.npy");
    let p = path.to_str().unwrap();
    let n = (bytes(dir.path()) / 4).to_string();
    let args = [
        "create", p, "--dtype", "float32", "--shape", &n, "--fill", "2.5",
    ];
    let full = timed(&args, &path);
    let mut rng = Rng::new("atomic_create");
    let (mut killed, mut complete) = (0, 0);
    for i in 0..env_or("SHARRAY_ATOMIC_KILLS", 6) {
        let delay = full.mul_f64(rng.below(1000) as f64 / 1000.0);
        killed += u32::from(run_and_kill(
            &args,
            delay,
            if i % 2 == 0 { "KILL" } else { "INT" },
        ));
        if path.exists() {
            assert_eq!(sharray::check(&path, None).unwrap(), vec![]);
            let a = sharray::SharedArray::<f32>::open(&path).unwrap();
            assert!(
                a.read().unwrap().iter().all(|&x| x == 2.5),
                "published half-filled"
            );
            drop(a);
            std::fs::remove_file(&path).unwrap();
            complete += 1;
        }
        only(dir.path(), &[]);
    }
    println!("create: {killed} killed mid-way, {complete} complete, full run {full:?}");
    assert!(
        killed > 0,
        "no create was killed: the test did not test anything"
    );
}

/// Where the filesystem has no O_TMPFILE (forced here with the switch
/// `file.tmpfile.unsupported`), creation goes through a named temporary
/// file; Ctrl-C during an import removes it, and the import publishes
/// nothing. Uninterrupted, the fallback publishes a complete file.
#[test]
fn ctrl_c_removes_the_fallback_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.npy");
    let n = bytes(dir.path()).min(64 << 20) / 8;
    let data: Vec<u8> = (0..n).flat_map(|i| (i * 3).to_le_bytes()).collect();
    sharray::write_npy(
        &src,
        &sharray::Dtype::parse_user("uint64").unwrap(),
        &[n as usize],
        sharray::Order::C,
        &data,
        0o600,
    )
    .unwrap();
    drop(data);
    let dst = dir.path().join("dst.npy");
    let (s, d) = (src.to_str().unwrap(), dst.to_str().unwrap());
    let fallback = [("SHARRAY_FAILPOINTS", "file.tmpfile.unsupported=on")];
    // Uninterrupted: a complete, clean file and no temporary name left.
    let st = cli()
        .args(["import", s, d])
        .envs(fallback)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(sharray::check(&dst, None).unwrap(), vec![]);
    only(dir.path(), &["src.npy", "dst.npy"]);
    std::fs::remove_file(&dst).unwrap();
    // Interrupted as soon as the temporary file exists.
    let mut interrupted = 0;
    for _ in 0..5 {
        let mut child = cli()
            .args(["import", s, d])
            .envs(fallback)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let tmp_seen = loop {
            let tmp = std::fs::read_dir(dir.path()).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".sharray-tmp-")
            });
            if tmp || child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break tmp;
            }
            std::thread::sleep(Duration::from_micros(300));
        };
        if tmp_seen {
            // SAFETY: kill(2) on our own child's pid (not reaped yet).
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        }
        let st = common::wait_with_watchdog(&mut child, Duration::from_secs(120));
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        if st.success() {
            // The copy won the race: a complete file.
            assert_eq!(sharray::check(&dst, None).unwrap(), vec![]);
            std::fs::remove_file(&dst).unwrap();
        } else {
            assert_eq!(st.code(), Some(130), "{err}");
            assert!(err.contains("interrupted"), "{err}");
            assert!(!dst.exists());
            interrupted += 1;
        }
        only(dir.path(), &["src.npy"]);
    }
    assert!(interrupted > 0, "no run was interrupted mid-copy");
}
