//! Generates the bindings from the installed libfabric headers (found with pkg-config)
//! and compiles C wrappers for libfabric's `static inline` calls (`fi_tsend`,
//! `fi_cq_read`, `fi_close`, ...), which have no symbol in the library.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    let lib = pkg_config::Config::new().atleast_version("1.10").probe("libfabric").unwrap_or_else(|e| {
        panic!(
            "libfabric (>= 1.10) not found by pkg-config: {e}\ninstall it (Debian: libfabric-dev, listed in \
             scripts/packages.txt), or point PKG_CONFIG_PATH at your libfabric's lib/pkgconfig"
        )
    });
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let wrappers = out.join("static_wrappers");
    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function("fi_.*")
        .allowlist_type("fi_.*|fid_.*|fid")
        .allowlist_var("FI_.*")
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers)
        .derive_default(true)
        .layout_tests(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &lib.include_paths {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    let bindings = builder.generate().expect("bindgen over the libfabric headers");
    bindings.write_to_file(out.join("bindings.rs")).expect("write bindings.rs");

    let mut cc = cc::Build::new();
    cc.file(wrappers.with_extension("c")).include(env!("CARGO_MANIFEST_DIR")).warnings(false);
    for dir in &lib.include_paths {
        cc.include(dir);
    }
    cc.compile("dagwire_fabric_wrappers");
}
