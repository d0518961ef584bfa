//! `include/sharray.h` is generated from `ffi/src` by cbindgen and checked
//! in; this test regenerates it and fails if the checked-in copy differs.
//! `SHARRAY_BLESS=1` writes the new header instead.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("ffi/cbindgen.toml parses");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("the header is UTF-8");
    let path = crate_dir.join("../include/sharray.h");
    if std::env::var_os("SHARRAY_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/sharray.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "include/sharray.h is out of date with ffi/src; regenerate it with \
         `SHARRAY_BLESS=1 cargo test -p sharray-ffi --test header` and commit it"
    );
}
