//! Writes `target/<profile>/sharray.pc` (from `sharray.pc.in`), pointing at
//! this checkout's `include/` and at `target/<profile>/`, where cargo puts
//! `libsharray.so` and `libsharray.a`:
//! `PKG_CONFIG_PATH=target/release pkg-config --cflags --libs sharray`.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=sharray.pc.in");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let template = std::fs::read_to_string(manifest.join("sharray.pc.in")).unwrap();
    // OUT_DIR is target/<profile>/build/sharray-ffi-<hash>/out.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let Some(profile_dir) = out_dir.ancestors().nth(3).map(Path::to_path_buf) else {
        return;
    };
    let root = manifest.parent().unwrap();
    let pc: String = template
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            l.replace("@PREFIX@", &root.display().to_string())
                .replace("@INCLUDEDIR@", &root.join("include").display().to_string())
                .replace("@LIBDIR@", &profile_dir.display().to_string())
                .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
                + "\n"
        })
        .collect();
    // Best effort: a read-only target directory only loses the .pc file.
    let _ = std::fs::write(profile_dir.join("sharray.pc"), pc);
}
