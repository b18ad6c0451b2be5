//! The committed header is exactly what cbindgen generates from the source (as rustls-ffi checks).
//! Regenerate with `make header`. Equivalent CLI: `cbindgen --config cbindgen.toml --output include/reliable_channel.h src/ffi/mod.rs`.

#[test]
fn committed_header_is_current() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).unwrap();
    let mut out = Vec::new();
    // Only src/ffi is the C API: parsing just that module keeps the crate's other public
    // constants out of the header.
    cbindgen::Builder::new().with_src(format!("{dir}/src/ffi/mod.rs")).with_config(config).generate().expect("cbindgen").write(&mut out);
    let generated = String::from_utf8(out).unwrap();
    let path = format!("{dir}/include/reliable_channel.h");
    if std::env::var_os("RC_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "include/reliable_channel.h is stale: run `make header` and commit it");
}
