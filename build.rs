//! Link settings for the shared library: a SONAME, and a version script so that only the
//! `rc_*` C API is exported.
fn main() {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libreliable_channel.so.{major}");
        let script = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("src/ffi/exports.map");
        println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", script.display());
        println!("cargo:rerun-if-changed=src/ffi/exports.map");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
