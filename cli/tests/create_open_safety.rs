//! Safe creation and opening: no clobbering, no symlinks, 0600 whatever the
//! umask, a full disk fails at creation leaving nothing behind, non-regular
//! files are refused, and opening never reads the data (a sparse 16 GiB
//! array costs no more resident memory to attach than a 1 MiB one).
//!
//! The umask and resident-memory checks run in child processes, because the
//! umask and the resident set are per process and other tests run in
//! parallel threads.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sharray::{Dtype, ErrorKind, SharedArray, UntypedArray};

use common::cli;

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn dir_entries(p: &Path) -> Vec<String> {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn child_entry() {
    common::child_entry(|role, arg| match role {
        "umask0" => umask_child(Path::new(arg)),
        "resident" => resident_child(Path::new(arg)),
        other => panic!("unknown role {other}"),
    });
}

fn umask_child(dir: &Path) {
    // SAFETY-free: umask(2) has no memory effects; this child is single-threaded here.
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(0);
    }
    let p = dir.join("default.npy");
    SharedArray::<u8>::create(&p, &[10]).unwrap();
    assert_eq!(mode_of(&p), 0o600, "library default");
    let p = dir.join("explicit.npy");
    SharedArray::<u8>::builder()
        .shape(&[3])
        .mode(0o640)
        .create(&p)
        .unwrap();
    assert_eq!(mode_of(&p), 0o640);
    let p = dir.join("cli.npy");
    let st = cli()
        .args([
            "create",
            p.to_str().unwrap(),
            "--dtype",
            "uint8",
            "--shape",
            "4",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(mode_of(&p), 0o600, "CLI default");
    let p2 = dir.join("cli_mode.npy");
    let st = cli()
        .args([
            "create",
            p2.to_str().unwrap(),
            "--dtype",
            "uint8",
            "--shape",
            "4",
            "--mode",
            "644",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(mode_of(&p2), 0o644);
    // Import and export apply the mode exactly too.
    let e = dir.join("exported.npy");
    sharray::export_npy(&p, &e, 0o600, &mut |_, _| {}).unwrap();
    assert_eq!(mode_of(&e), 0o600);
    let i = dir.join("imported.npy");
    sharray::import_npy(&e, &i, 0o660, &mut |_, _| {}).unwrap();
    assert_eq!(mode_of(&i), 0o660);
    // A restrictive umask does not narrow an explicit mode either.
    #[allow(unsafe_code)]
    // SAFETY: as above.
    unsafe {
        libc::umask(0o077);
    }
    let p = dir.join("umask077.npy");
    SharedArray::<u8>::builder()
        .shape(&[3])
        .mode(0o644)
        .create(&p)
        .unwrap();
    assert_eq!(mode_of(&p), 0o644);
    println!("umask ok");
}

#[test]
fn files_are_0600_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let child = common::spawn_child("child_entry", "umask0", dir.path().to_str().unwrap());
    let out = common::finish(child, Duration::from_secs(60));
    assert!(out.contains("umask ok"), "{out}");
}

#[test]
fn an_existing_path_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    std::fs::write(&p, b"precious").unwrap();
    let err = SharedArray::<f32>::create(&p, &[4]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(std::fs::read(&p).unwrap(), b"precious");
    // An existing sharray file is not replaced either.
    let q = dir.path().join("b.npy");
    let a = SharedArray::<u16>::builder()
        .shape(&[3])
        .fill(7)
        .create(&q)
        .unwrap();
    let err = SharedArray::<u16>::create(&q, &[3]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(&a.read().unwrap()[..], &[7, 7, 7]);
    // The CLI too, for create, import and export destinations.
    for args in [
        vec![
            "create",
            p.to_str().unwrap(),
            "--dtype",
            "f4",
            "--shape",
            "2",
        ],
        vec!["import", q.to_str().unwrap(), p.to_str().unwrap()],
        vec!["export", q.to_str().unwrap(), p.to_str().unwrap()],
    ] {
        let out = cli().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    }
    assert_eq!(std::fs::read(&p).unwrap(), b"precious");
    // No temporary files are left behind.
    let mut names = dir_entries(dir.path());
    names.sort();
    assert_eq!(names, vec!["a.npy", "b.npy"]);
}

#[test]
fn symlinks_are_refused_on_create_and_open() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.npy");
    SharedArray::<i32>::create(&real, &[4]).unwrap();
    let link = dir.path().join("link.npy");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = SharedArray::<i32>::open(&link).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotARegularFile, "{err}");
    assert!(err.to_string().contains("symlink"), "{err}");
    let err = UntypedArray::open_read_only(&link).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotARegularFile);
    assert!(sharray::inspect(&link).is_err());
    assert!(sharray::check(&link, None).is_err());
    // Creating at a symlink (dangling or not) never follows it.
    let dangling = dir.path().join("dangling.npy");
    let target = dir.path().join("target-does-not-exist.npy");
    std::os::unix::fs::symlink(&target, &dangling).unwrap();
    for l in [&link, &dangling] {
        let err = SharedArray::<i32>::create(l, &[4]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
        assert!(err.to_string().contains("symlink"), "{err}");
    }
    assert!(!target.exists(), "creation followed a dangling symlink");
    let out = cli()
        .args([
            "create",
            dangling.to_str().unwrap(),
            "--dtype",
            "u1",
            "--shape",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!target.exists());
    for cmd in ["info", "show", "check"] {
        let out = cli().args([cmd, link.to_str().unwrap()]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd}");
    }
    // A symlinked directory anywhere in the path is refused too (openat2
    // with RESOLVE_NO_SYMLINKS), for open and for create: a planted link
    // cannot redirect a file into or out of another directory.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    SharedArray::<i32>::create(elsewhere.join("a.npy"), &[4]).unwrap();
    let via = dir.path().join("via");
    std::os::unix::fs::symlink(&elsewhere, &via).unwrap();
    let err = SharedArray::<i32>::open(via.join("a.npy")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotARegularFile, "{err}");
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(sharray::check(via.join("a.npy"), None).is_err());
    let err = SharedArray::<i32>::create(via.join("new.npy"), &[4]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotARegularFile, "{err}");
    assert!(
        !elsewhere.join("new.npy").exists(),
        "creation went through a symlinked directory"
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        1,
        "nothing left behind"
    );
}

/// Files of another user are refused, for root too, unless the caller says
/// it trusts that user. (Needs root to give a file away; skipped otherwise.)
#[test]
fn files_of_another_user_are_refused_even_for_root() {
    if sharray::sys::euid() != 0 {
        eprintln!("skipped: giving a file to another user needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("planted.npy");
    SharedArray::<u8>::builder()
        .shape(&[4])
        .create(&path)
        .unwrap();
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let err = SharedArray::<u8>::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("allow_other_owner"), "{err}");
    let a = sharray::OpenOptions::new()
        .allow_other_owner(true)
        .open::<u8>(&path)
        .unwrap();
    assert_eq!(a.read().unwrap().len(), 4);
    // Rings too, in the library and the CLI.
    let ring = dir.path().join("ring.npy");
    sharray::Ring::builder(sharray::Dtype::parse_user("uint8").unwrap(), &[4])
        .create(&ring)
        .unwrap();
    std::os::unix::fs::chown(&ring, Some(65534), Some(65534)).unwrap();
    let err = sharray::Ring::open(&ring).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    let r = sharray::Ring::open_with_options(
        &ring,
        sharray::OpenOptions::new().allow_other_owner(true),
    )
    .unwrap();
    drop(r);
    let rp = ring.to_str().unwrap();
    let o = cli().args(["watch", rp, "--json"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--allow-other-owner"),
        "{o:?}"
    );
    let o = cli()
        .args(["watch", rp, "--json", "--allow-other-owner"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
}

/// A file truncated under an open handle (here: to exactly the end of its
/// data, which drops the control block) gives an error at the next guard or
/// wait, not SIGBUS.
#[test]
fn truncation_under_an_open_handle_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.npy");
    let a = SharedArray::<f64>::builder()
        .shape(&[1000])
        .create(&path)
        .unwrap();
    let g = a.generation();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096 + 8000)
        .unwrap();
    for err in [
        a.read().map(drop).unwrap_err(),
        a.write().map(drop).unwrap_err(),
        a.wait_changed(g, Duration::from_millis(10)).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("truncated"), "{err}");
    }
    drop(a);
    // What is left looks like a plain .npy; check and info say what it was.
    let problems = sharray::check(&path, None).unwrap();
    assert!(
        problems.len() == 1 && problems[0].message.contains("no control block"),
        "{problems:?}"
    );
    let o = common::cli_run(&["info", path.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("truncated to the end of its data"),
        "{o:?}"
    );
    // A file numpy wrote is not mistaken for one (its padding is short).
    if common::python_numpy() {
        let np = dir.path().join("np.npy");
        common::python(
            "import numpy as np, sys; np.save(sys.argv[1], np.zeros((1000, 3)))",
            &[np.to_str().unwrap()],
        );
        assert_eq!(sharray::check(&np, None).unwrap(), vec![]);
    }
}

#[test]
fn non_regular_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0);
    for p in [dir.path(), fifo.as_path(), Path::new("/dev/null")] {
        let err = UntypedArray::open_read_only(p).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::NotARegularFile | ErrorKind::PermissionDenied
            ),
            "{}: {err}",
            p.display()
        );
    }
    let err = UntypedArray::open(dir.path().join("missing.npy")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn a_full_disk_fails_at_create_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("tiny");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        println!("note: cannot mount a 1 MiB tmpfs here (needs root); full-disk test skipped");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mnt);
    let p = mnt.join("big.npy");
    let err = SharedArray::<f64>::create(&p, &[1 << 20]).unwrap_err(); // 8 MiB
    assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
    // How much was asked and how much is free, not a bare "full".
    let msg = err.to_string();
    assert!(msg.contains("too full"), "{err}");
    let number_after = |s: &str, key: &str| -> u64 {
        s.split(key)
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no byte count after {key:?} in {s}"))
    };
    assert!(number_after(&msg, "the file needs ") >= 8 << 20, "{msg}");
    assert!(number_after(&msg, "but only ") <= 1 << 20, "{msg}");
    assert!(
        dir_entries(&mnt).is_empty(),
        "left behind: {:?}",
        dir_entries(&mnt)
    );
    // The CLI says so in one line and exits 1.
    let out = cli()
        .args([
            "create",
            p.to_str().unwrap(),
            "--dtype",
            "f8",
            "--shape",
            "1048576",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1);
    assert!(
        stderr.contains("the file needs ") && stderr.contains("are free"),
        "{stderr}"
    );
    assert!(dir_entries(&mnt).is_empty());
    // Import of something too big fails the same way.
    let src = dir.path().join("src.npy");
    SharedArray::<u8>::create(&src, &[2 << 20]).unwrap();
    let err = sharray::import_npy(&src, &p, 0o600, &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoSpace);
    let err = sharray::export_npy(&src, &p, 0o600, &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoSpace);
    assert!(dir_entries(&mnt).is_empty());
    // A small array still fits and works.
    let a = SharedArray::<u8>::builder()
        .shape(&[1000])
        .fill(3)
        .create(&p)
        .unwrap();
    assert!(a.read().unwrap().iter().all(|&x| x == 3));
}

#[test]
fn shm_names() {
    let name = format!("sharray-test-{}", std::process::id());
    let path = sharray::resolve_location(&format!("shm:{name}")).unwrap();
    assert_eq!(path, Path::new("/dev/shm").join(&name));
    let _ = std::fs::remove_file(&path);
    let a = UntypedArray::builder(Dtype::parse_user("<u2").unwrap())
        .shape(&[5])
        .create(&path)
        .unwrap();
    assert_eq!(a.nbytes(), 10);
    let out = cli()
        .args(["info", "--json", &format!("shm:{name}")])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"<u2\""));
    std::fs::remove_file(&path).unwrap();
    // The library takes shm:NAME directly too.
    let loc = format!("shm:{name}");
    let b = SharedArray::<u8>::builder()
        .shape(&[3])
        .fill(4)
        .create(&loc)
        .unwrap();
    assert_eq!(b.path(), path);
    assert_eq!(
        &SharedArray::<u8>::open(&loc).unwrap().read().unwrap()[..],
        &[4, 4, 4]
    );
    assert!(sharray::check(&loc, None).unwrap().is_empty());
    std::fs::remove_file(&path).unwrap();
    for bad in ["shm:", "shm:a/b", "shm:..", "shm:."] {
        let err = sharray::resolve_location(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
    }
}

fn resident_child(dir: &Path) {
    let rss = || sharray::sys::resident_bytes().unwrap();
    let mut growth = Vec::new();
    for (name, len) in [("small.npy", 1usize << 20), ("huge.npy", 16usize << 30)] {
        let p = dir.join(name);
        match UntypedArray::builder(Dtype::parse_user("u1").unwrap())
            .shape(&[len])
            .preallocate(false)
            .create(&p)
        {
            Ok(a) => drop(a),
            Err(e) => {
                println!("note: cannot create a sparse {len}-byte file here ({e}); skipped");
                return;
            }
        }
        let before = rss();
        let a = SharedArray::<u8>::open(&p).unwrap();
        let info = a.info();
        assert_eq!(info.nbytes, len as u64);
        let g = a.generation();
        {
            // A guard locks; it does not touch the data either.
            let r = a.read().unwrap();
            assert_eq!(r.len(), len);
        }
        let _ = sharray::inspect(&p).unwrap();
        let after = rss();
        growth.push(after.saturating_sub(before));
        assert_eq!(g, 0);
        drop(a);
        std::fs::remove_file(&p).unwrap();
    }
    println!(
        "resident growth: 1 MiB array {} B, 16 GiB array {} B",
        growth[0], growth[1]
    );
    for g in growth {
        assert!(g < 4 << 20, "attaching grew the resident set by {g} bytes");
    }
    println!("resident ok");
}

#[test]
fn opening_a_16_gib_array_does_not_read_it() {
    // On disk (not /dev/shm): the target directory.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let free = fs_free(dir.path());
    if free < (64 << 20) {
        println!("note: not enough disk space for even a sparse 16 GiB file; skipped");
        return;
    }
    let child = common::spawn_child("child_entry", "resident", dir.path().to_str().unwrap());
    let out = common::finish(child, Duration::from_secs(120));
    println!("{out}");
    assert!(
        out.contains("resident ok") || out.contains("skipped"),
        "{out}"
    );
}

fn fs_free(p: &Path) -> u64 {
    let _ = std::fs::metadata(p).map(|m| m.dev());
    let out = Command::new("df").args(["-Pk"]).arg(p).output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(u64::MAX, |k| k * 1024)
}

/// Special permission bits and empty dimensions are refused, by the library
/// and the CLI, and nothing is created.
#[test]
fn special_mode_bits_and_empty_dimensions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.npy");
    let err = SharedArray::<u8>::builder()
        .shape(&[4])
        .mode(0o6777)
        .create(&p)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("setuid"), "{err}");
    assert!(!p.exists());
    let ps = p.to_str().unwrap();
    for args in [
        vec![
            "create", ps, "--dtype", "uint8", "--shape", "4", "--mode", "6777",
        ],
        vec!["create", ps, "--dtype", "uint8", "--shape", "1,,2"],
    ] {
        let o = common::cli_run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("setuid") || err.contains("empty dimension"),
            "{err}"
        );
        assert!(!p.exists(), "{args:?} created a file");
    }
}
