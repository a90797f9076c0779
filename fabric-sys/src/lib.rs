//! Raw bindings to the libfabric installed on this machine: bindgen over its headers
//! (`wrapper.h`), so struct layouts and constants are those of the library linked
//! against; its `static inline` calls (`fi_tsend`, `fi_trecv`, `fi_cq_read`, `fi_read`,
//! `fi_close`, ...) are reached through C wrappers compiled at build time (bindgen's
//! `wrap_static_fns`), under the same names.
//!
//! Everything here is `unsafe` and undocumented beyond libfabric's own man pages
//! (`fi_getinfo(3)`, `fi_endpoint(3)`, `fi_av(3)`, `fi_cq(3)`, `fi_tagged(3)`,
//! `fi_rma(3)`, `fi_mr(3)`); dagwire's safe wrapper is
//! `dagwire_runtime::drivers::fabric::raw`.

#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case, missing_docs, clippy::all)]
#![allow(unsafe_op_in_unsafe_fn, improper_ctypes)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// `FI_VERSION(major, minor)`, which bindgen cannot translate (a function-like macro).
pub const fn FI_VERSION(major: u32, minor: u32) -> u32 {
    (major << 16) | minor
}
