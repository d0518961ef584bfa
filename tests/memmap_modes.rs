//! np.memmap's modes and raw files, with real processes: copy-on-write
//! handles against writers in other processes, raw headerless files shared
//! with `numpy.memmap` in python3, and the access hints (advise, prefault,
//! ranged flush, evict).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use sharray::{
    Advice, Advised, CopyOptions, Dtype, ErrorKind, FileKind, OpenOptions, Order, RawLayout,
    ReadOnlyArray, SharedArray,
};

const PAGE: usize = 4096;
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn child_entry() {
    common::child_entry(|role, arg| match role {
        // Write `value` into every byte of the array at `arg`'s path.
        "fill" => {
            let (path, value) = arg.split_once('=').unwrap();
            let a = SharedArray::<u8>::open(path).unwrap();
            a.write().unwrap().fill(value.parse().unwrap());
            println!("filled");
        }
        // Print the first byte of each page.
        "firsts" => {
            let a = SharedArray::<u8>::open_read_only(arg).unwrap();
            let r = a.read().unwrap();
            let firsts: Vec<String> = r.chunks(PAGE).map(|p| p[0].to_string()).collect();
            println!("{}", firsts.join(","));
        }
        _ => panic!("unknown role {role}"),
    });
}

fn firsts_in_child(path: &str) -> String {
    let out = common::finish(common::spawn_child("child_entry", "firsts", path), LIMIT);
    // The harness prints its own lines first; the child's answer is the last.
    out.lines().last().unwrap_or_default().trim().to_string()
}

#[test]
fn copy_on_write_keeps_writes_private_and_sees_others_on_untouched_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cow.npy");
    let ps = path.to_str().unwrap();
    SharedArray::<u8>::create(&path, &[3 * PAGE]).unwrap();
    let cow = OpenOptions::new()
        .copy_on_write(true)
        .open::<u8>(&path)
        .unwrap();
    assert!(cow.untyped().is_copy_on_write());
    {
        let mut w = cow.write().unwrap();
        w[0] = 9; // copies page 0 into this process
    }
    cow.flush().unwrap(); // a no-op: nothing reaches the file
    assert_eq!(cow.generation(), 0, "a private write bumps nothing");
    // Another process sees the file, not our private page.
    assert_eq!(firsts_in_child(ps), "0,0,0");
    // Another process writes every page of the file.
    common::finish(
        common::spawn_child("child_entry", "fill", &format!("{ps}=1")),
        LIMIT,
    );
    // Pages we never wrote show its write; the page we wrote stays ours.
    {
        let r = cow.read().unwrap();
        assert_eq!(r[0], 9);
        assert!(r[1..PAGE].iter().all(|&b| b == 0), "page 0 is our copy");
        assert!(
            r[PAGE..].iter().all(|&b| b == 1),
            "untouched pages follow the file"
        );
    }
    assert_eq!(cow.generation(), 1, "the generation is the file's");
    assert_eq!(firsts_in_child(ps), "1,1,1");
    // Writing page 2 now copies the file's current content of it.
    cow.write().unwrap()[2 * PAGE + 1] = 7;
    common::finish(
        common::spawn_child("child_entry", "fill", &format!("{ps}=2")),
        LIMIT,
    );
    let r = cow.read().unwrap();
    assert_eq!((r[0], r[PAGE], r[2 * PAGE], r[2 * PAGE + 1]), (9, 2, 1, 7));
    drop(r);
    assert_eq!(firsts_in_child(ps), "2,2,2");
}

#[test]
fn copy_on_write_works_on_a_file_we_may_only_read_and_excludes_other_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.npy");
    SharedArray::<u8>::builder()
        .shape(&[16])
        .fill(4)
        .create(&path)
        .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    if SharedArray::<u8>::open(&path).is_ok() {
        // Root ignores permission bits: nothing to learn here.
        return;
    }
    let cow = OpenOptions::new()
        .copy_on_write(true)
        .open::<u8>(&path)
        .unwrap();
    let mut w = cow.write().unwrap();
    w[3] = 5;
    // The write guard holds the shared lock: a writer elsewhere waits, a
    // reader does not.
    if common::python_numpy() {
        let script = r#"
import fcntl, sys
f = open(sys.argv[1], "rb")
fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
fcntl.flock(f.fileno(), fcntl.LOCK_UN)
try:
    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("exclusive granted")
except BlockingIOError:
    print("exclusive refused")
"#;
        let out = common::python(script, &[path.to_str().unwrap()]);
        assert_eq!(out.trim(), "exclusive refused");
    }
    drop(w);
    assert_eq!(cow.read().unwrap()[..4], [4, 4, 4, 5]);
    assert_eq!(std::fs::read(&path).unwrap()[4096 + 3], 4);
    let ro = ReadOnlyArray::<u8>::open(&path).unwrap();
    assert_eq!(ro.read().unwrap()[3], 4);
}

#[test]
fn raw_files_open_with_exact_sizes_and_say_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.dat");
    std::fs::write(&path, vec![0u8; 8 * 1000 * 1000]).unwrap();
    let f8 = Dtype::parse_user("float64").unwrap();
    let e = OpenOptions::new()
        .open_raw::<f64>(&path, &RawLayout::new(f8.clone(), &[1000, 1001]))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ShapeMismatch);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: 8000000 bytes, but float64 (1000, 1001) needs 8008000; the file holds 1000000 float64 values, e.g. shape (1000, 1000)",
            path.display()
        )
    );
    let a = OpenOptions::new()
        .open_raw::<f64>(&path, &RawLayout::new(f8.clone(), &[1000, 1000]))
        .unwrap();
    assert!(a.untyped().is_raw());
    assert_eq!(
        a.info().kind,
        FileKind::Npy,
        "no control block, as a plain .npy"
    );
    assert!(
        a.wait_changed(0, Duration::ZERO).is_err(),
        "no generation counter"
    );
    // An offset that breaks f64 alignment opens untyped only.
    let odd = RawLayout::new(Dtype::parse_user("uint8").unwrap(), &[7_999_999]).offset(1);
    assert_eq!(
        OpenOptions::new()
            .open_raw_untyped(&path, &odd)
            .unwrap()
            .nbytes(),
        7_999_999
    );
    let odd64 = RawLayout::new(f8, &[999_999]).offset(4);
    let e = OpenOptions::new()
        .open_raw::<f64>(&path, &odd64)
        .unwrap_err();
    assert!(e.to_string().contains("4 stray bytes"), "{e}");
}

#[test]
fn raw_file_is_shared_live_with_numpy_memmap() {
    if !common::python_numpy() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.dat");
    // numpy makes the file: a 32-byte foreign header, then int32 (6, 5) in F order.
    common::python(
        r#"
import numpy as np, sys
with open(sys.argv[1], "wb") as f:
    f.write(b"H" * 32)
m = np.memmap(sys.argv[1], dtype="<i4", mode="r+", shape=(6, 5), order="F", offset=32)
m[...] = np.arange(30, dtype="<i4").reshape(6, 5)
m.flush()
"#,
        &[path.to_str().unwrap()],
    );
    let layout = RawLayout::new(Dtype::parse_user("<i4").unwrap(), &[6, 5])
        .order(Order::F)
        .offset(32);
    let a = OpenOptions::new().open_raw::<i32>(&path, &layout).unwrap();
    #[cfg(feature = "ndarray")]
    {
        let r = a.read().unwrap();
        let v = r.view();
        assert_eq!((v[[0, 1]], v[[5, 4]], v[[2, 3]]), (1, 29, 13));
    }
    // A live numpy.memmap in another process sees our writes and we see its.
    let script = r#"
import fcntl, numpy as np, sys
m = np.memmap(sys.argv[1], dtype="<i4", mode="r+", shape=(6, 5), order="F", offset=32)
print("mapped", flush=True)
sys.stdin.readline()
with open(sys.argv[1], "rb") as f:
    fcntl.flock(f.fileno(), fcntl.LOCK_SH)
    assert (m == -7).all(), m
    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    m[2, 3] = 42
    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
print("written", flush=True)
"#;
    let mut py = Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "mapped");
    a.write().unwrap().fill(-7);
    writeln!(py.stdin.as_mut().unwrap()).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "written");
    assert!(common::wait_with_watchdog(&mut py, LIMIT).success());
    // F order: element (2, 3) is at flat index 3 * 6 + 2.
    assert_eq!(a.read().unwrap()[3 * 6 + 2], 42);
    assert_eq!(&std::fs::read(&path).unwrap()[..32], &[b'H'; 32]);

    // Import makes a sharray file numpy loads with the same values.
    let out = dir.path().join("frames.npy");
    sharray::import_raw(&path, &layout, &out, CopyOptions::new(), &mut |_, _| {}).unwrap();
    let got = common::python(
        r#"
import numpy as np, sys
m = np.load(sys.argv[1], mmap_mode="r")
print(m.dtype.str, m.shape, m.flags.f_contiguous, int(m[2, 3]), int(m[0, 0]))
"#,
        &[out.to_str().unwrap()],
    );
    assert_eq!(got.trim(), "<i4 (6, 5) True 42 -7");
}

#[test]
fn hints_apply_and_evict_drops_resident_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.npy");
    let n = 64 * PAGE;
    let a = SharedArray::<u8>::builder()
        .shape(&[n])
        .fill(3)
        .create(&path)
        .unwrap();
    for adv in [
        Advice::Normal,
        Advice::Sequential,
        Advice::Random,
        Advice::WillNeed,
        Advice::DontNeed,
    ] {
        assert_eq!(a.advise(.., adv).unwrap(), Advised::Applied, "{adv:?}");
        assert_eq!(Advice::parse(adv.name()).unwrap(), adv);
    }
    // On a disk file huge pages are never granted on request: the reason says so.
    match a.advise(.., Advice::HugePage).unwrap() {
        Advised::Fallback(why) => assert!(why.contains("pages"), "{why}"),
        Advised::Applied => {}
    }
    let e = a.advise(0..n + 1, Advice::Random).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(Advice::parse("fast").is_err());

    // Prefault maps the pages into this process; evict unmaps them again.
    a.evict(..).unwrap();
    let before = sharray::sys::resident_bytes().unwrap();
    a.prefault_read_range(..).unwrap();
    let faulted = sharray::sys::resident_bytes().unwrap();
    assert!(
        faulted >= before + (n as u64) / 2,
        "prefault_read mapped {} of {n} bytes",
        faulted.saturating_sub(before)
    );
    a.evict(..).unwrap();
    let evicted = sharray::sys::resident_bytes().unwrap();
    assert!(
        evicted + (n as u64) / 2 <= faulted,
        "evict unmapped only {} of {n} bytes",
        faulted.saturating_sub(evicted)
    );
    // Ranged and asynchronous flushes keep the data.
    a.write().unwrap()[..PAGE].fill(8);
    a.flush_async(..PAGE).unwrap();
    a.flush_range(..PAGE).unwrap();
    a.evict(..).unwrap();
    a.prefault_write_range(PAGE..).unwrap();
    let r = a.read().unwrap();
    assert!(r[..PAGE].iter().all(|&b| b == 8) && r[PAGE..].iter().all(|&b| b == 3));
    drop(r);
    // Read-only handles may read ahead but not prefault for writing.
    let ro = SharedArray::<u8>::open_read_only(&path).unwrap();
    assert_eq!(
        ro.prefault_write_range(..).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let ro = ro.into_read_only();
    ro.prefault_read_range(..).unwrap();
    assert!(ro.advise(.., Advice::Sequential).unwrap().is_applied());

    // Rings take the same hints over their slots.
    let ring = sharray::Ring::builder(Dtype::parse_user("uint8").unwrap(), &[PAGE])
        .slots(4)
        .create(dir.path().join("ring.npy"))
        .unwrap();
    assert!(ring.advise(Advice::WillNeed).unwrap().is_applied());
    assert!(ring.advise(Advice::Sequential).unwrap().is_applied());
}

#[test]
fn huge_pages_on_tmpfs_report_what_happened() {
    let dir = match tempfile::tempdir_in("/dev/shm") {
        Ok(d) => d,
        Err(_) => return, // no /dev/shm here
    };
    let a = SharedArray::<u8>::create(dir.path().join("huge.npy"), &[4 << 20]).unwrap();
    let got = a.advise(.., Advice::HugePage).unwrap();
    let setting = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
        .unwrap_or_default();
    if setting.contains("[never]") || setting.contains("[deny]") || setting.is_empty() {
        let Advised::Fallback(why) = got else {
            panic!("shmem THP is off ({setting:?}) but advise said applied")
        };
        assert!(why.contains("4 KiB"), "{why}");
    } else {
        assert_eq!(got, Advised::Applied, "shmem THP is {setting:?}");
    }
}
