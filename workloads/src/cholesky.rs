//! Tiled right-looking Cholesky (placeholder: being written).
use crate::WorkloadInfo;

/// Registration.
pub const INFO: WorkloadInfo = WorkloadInfo {
    name: "cholesky",
    summary: "tiled right-looking Cholesky (POTRF/TRSM/SYRK/GEMM), 2D block-cyclic; verified by ||A - L L^T||_F / (||A||_F n eps)",
    params: Vec::new,
    prepare: |_, _, _| Err(dagwire_runtime::ParamError::new("cholesky", "not implemented yet")),
};
