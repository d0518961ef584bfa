//! Test helpers: build the C library and the C programs (under
//! AddressSanitizer when the compiler has it, else under valgrind when it is
//! installed, else plain, with a printed note; `SHARRAY_C_CHECKER=valgrind`
//! or `plain` forces a fallback) and run them as real child processes under
//! a watchdog.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Generous: the machine is shared with other builds; this only stops hangs.
pub const WATCHDOG: Duration = Duration::from_secs(120);

/// How the C programs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checker {
    AddressSanitizer,
    Valgrind,
    Plain,
}

pub struct CPrograms {
    pub dir: PathBuf,
    pub checker: Checker,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// target/<profile>/libsharray.a, built by `cargo build -p sharray-ffi`
/// (cargo test does not build a library that is not an rlib for the
/// integration tests).
/// target/<profile> of this test binary (target/<profile>/deps/this_test).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn static_lib() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile_dir = profile_dir();
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo())
        .args(["build", "--quiet", "-p", "sharray-ffi"]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let st = cmd.status().expect("run cargo build -p sharray-ffi");
    assert!(st.success(), "cargo build -p sharray-ffi failed");
    let lib = profile_dir.join("libsharray.a");
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

fn compile(
    src: &Path,
    out: &Path,
    lib: &Path,
    asan: bool,
) -> std::io::Result<std::process::Output> {
    let cpp = src.extension().is_some_and(|e| e == "cpp");
    let mut cmd = if cpp {
        let mut c = Command::new(std::env::var("CXX").unwrap_or_else(|_| "c++".into()));
        c.arg("-std=c++17");
        c
    } else {
        let mut c = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
        c.arg("-std=c11");
        c
    };
    cmd.args(["-O1", "-g", "-Wall", "-Wextra", "-Werror"])
        .arg("-D_POSIX_C_SOURCE=200809L")
        .arg(format!("-I{}", repo().join("include").display()))
        .arg(format!("-I{}", repo().join("examples/c").display()));
    if asan {
        cmd.args(["-fsanitize=address", "-fno-omit-frame-pointer"]);
    }
    cmd.arg("-o")
        .arg(out)
        .arg(src)
        .arg(lib)
        .args(["-lpthread", "-ldl", "-lm"]);
    cmd.output()
}

fn tool_works(prog: &str, arg: &str) -> bool {
    Command::new(prog)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The C examples and test programs, built once per test binary.
pub fn c_programs() -> &'static CPrograms {
    static BUILT: OnceLock<CPrograms> = OnceLock::new();
    BUILT.get_or_init(|| {
        let lib = static_lib();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ffi-c-programs");
        std::fs::create_dir_all(&dir).unwrap();
        let sources = [
            repo().join("examples/c/ring_producer.c"),
            repo().join("examples/c/ring_consumer.c"),
            repo().join("examples/c/array_demo.c"),
            repo().join("examples/c/pool_worker.c"),
            repo().join("ffi/tests/c/api_test.c"),
            repo().join("ffi/tests/c/cpp_test.cpp"),
        ];
        // AddressSanitizer if a probe program links and runs with it.
        let probe = compile(&sources[2], &dir.join("asan_probe"), &lib, true);
        let asan = probe.as_ref().is_ok_and(|o| o.status.success())
            && Command::new(dir.join("asan_probe"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.code() == Some(2)); // usage error: ran to main
        // SHARRAY_C_CHECKER=valgrind|plain forces another checker (to try
        // the fallbacks on a machine that has AddressSanitizer).
        let forced = std::env::var("SHARRAY_C_CHECKER").unwrap_or_default();
        let asan = asan && forced.is_empty();
        let checker = if forced == "plain" {
            Checker::Plain
        } else if asan {
            Checker::AddressSanitizer
        } else if tool_works("valgrind", "--version") {
            if forced.is_empty() {
                eprintln!("note: cc cannot link with -fsanitize=address here; running the C programs under valgrind");
            }
            Checker::Valgrind
        } else {
            eprintln!("note: neither AddressSanitizer nor valgrind is available; running the C programs without a memory checker");
            Checker::Plain
        };
        for src in &sources {
            let name = src.file_stem().unwrap();
            let out = compile(src, &dir.join(name), &lib, asan).expect("run cc");
            assert!(
                out.status.success(),
                "cc failed for {}:\n{}",
                src.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        CPrograms { dir, checker }
    })
}

/// A command running the C program `name` under the memory checker.
pub fn c_command(name: &str) -> Command {
    let progs = c_programs();
    let exe = progs.dir.join(name);
    let mut cmd = match progs.checker {
        Checker::Valgrind => {
            let mut c = Command::new("valgrind");
            c.args([
                "--quiet",
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
            ])
            .arg(exe);
            c
        }
        _ => Command::new(exe),
    };
    // Any ASan report (leaks included) fails the program with exit 99.
    cmd.env(
        "ASAN_OPTIONS",
        "exitcode=99:detect_leaks=1:abort_on_error=0",
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// Wait for `child` at most [`WATCHDOG`]; kill it and fail after that.
/// Returns its status, stdout and stderr.
pub fn finish(mut child: Child) -> (ExitStatus, String, String) {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child hung for more than {WATCHDOG:?}; killed by the watchdog");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (status, out_t.join().unwrap(), err_t.join().unwrap())
}

/// Read one line of a child's stdout, with the watchdog: the child is
/// killed if no line comes in time.
pub fn read_line(child: &mut Child, stdout: &mut BufReader<ChildStdout>) -> String {
    let pid = child.id() as libc::pid_t;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let dog = std::thread::spawn(move || {
        let t0 = Instant::now();
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            if t0.elapsed() > WATCHDOG {
                // SAFETY: kill(2) on our own child's pid (not yet reaped: the
                // test holds the Child and waits for it later).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    dog.join().unwrap();
    line.trim_end().to_string()
}

/// The JSON report of a ring peer.
pub fn report(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON report in {stdout:?}"));
    serde_json::from_str(line).unwrap()
}

/// Frame `n`'s pattern (examples/ring_peer.rs).
pub fn fill(words: &mut [u64], n: u64) {
    for (i, w) in words.iter_mut().enumerate() {
        *w = n.wrapping_add(i as u64);
    }
}

pub fn is_frame(words: &[u64], n: u64) -> bool {
    words
        .iter()
        .enumerate()
        .all(|(i, &w)| w == n.wrapping_add(i as u64))
}
