//! **gemm**: tiled `C = A B` (or `C += A B`) for `m x k` times `k x n`, with the data
//! distribution as a parameter.
//!
//! - [`layout`]: the distributions (`1d-cyclic`, `2d-block-cyclic` = SUMMA on a `P x Q`
//!   grid, `3d` = 2.5D with `replicas` layers), SUMMA's closed-form byte count and the
//!   memory-independent communication lower bound;
//! - [`matrix`]: the seeded inputs, regenerated anywhere;
//! - [`plan`]: the DAG (generate, multiply chains per `C` tile, adds across layers);
//! - [`kernels`]: faer's tile product;
//! - [`verify`](mod@verify): the componentwise error against a one-rank faer product.
//!
//! Parameters: `n` (and `m`, `k`: 0 means `n`), `tile`, `layout`, `grid` (`auto` or
//! `PxQ`, per layer for `3d`), `replicas` (layers, `3d` only; 0: automatic), `accumulate`
//! (`C += A B` with a seeded initial `C`). Figures per run: `bytes_per_rank` (the most
//! data bytes any rank received, from the trace), `model_bytes_per_rank` (the same if
//! every remote reader gets each tile once, from the DAG) and `bound_bytes_per_rank`
//! (the lower bound of [`layout::lower_bound_bytes`]).
//!
//! ```
//! use dagwire_runtime::ParamValue;
//! let info = dagwire_workloads::find("gemm").unwrap();
//! let w = info.build(&[("n", ParamValue::Int(64)), ("tile", ParamValue::Int(16))], 4, 7).unwrap();
//! assert_eq!(w.dag().ranks(), 4);
//! assert_eq!(w.useful_flops(), 2.0 * 64.0 * 64.0 * 64.0);
//! ```

pub mod kernels;
pub mod layout;
pub mod matrix;
pub mod plan;
pub mod verify;

pub use kernels::GemmKernels;
pub use layout::Layout;
pub use plan::{Kind, Shape};
pub use verify::ERROR_BOUND;

use crate::{Verification, Workload, WorkloadInfo};
use dagwire_runtime::{ChunkId, Dag, KernelId, Kernels, MessageClass, ParamError, ParamSpec, Params, Payload, Trace};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Registration.
pub const INFO: WorkloadInfo = WorkloadInfo {
    name: "gemm",
    summary: "tiled C = A B (or C += A B), layout 1d-cyclic | 2d-block-cyclic (SUMMA) | 3d (2.5D); verified \
              element by element against a one-rank faer product",
    params,
    prepare: |params, ranks, seed| Ok(Box::new(Gemm::new(params, ranks, seed)?)),
    check: |params, ranks| Gemm::checked(params, ranks).map(drop),
    kernel_kinds: &plan::Kind::NAMES,
};

/// Largest accepted dimension (tile indices travel as `u32`; the dense reference must fit).
pub const MAX_DIM: i64 = 1 << 17;

/// Largest DAG `prepare` builds.
pub const MAX_TASKS: usize = 20_000_000;

/// The parameters a sweep may set.
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::int("n", 1, MAX_DIM, 1024, "columns of B and C (and m, k when those are 0)"),
        ParamSpec::int("m", 0, MAX_DIM, 0, "rows of A and C; 0: n"),
        ParamSpec::int("k", 0, MAX_DIM, 0, "columns of A, rows of B; 0: n"),
        ParamSpec::int("tile", 1, MAX_DIM, 256, "tile edge in elements (the last tiles may be smaller)"),
        ParamSpec::choice("layout", layout::NAMES, "2d-block-cyclic", "data distribution"),
        ParamSpec::text("grid", "auto", "process grid \"auto\" or \"PxQ\" (per layer for 3d; not for 1d-cyclic)"),
        ParamSpec::int(
            "replicas",
            0,
            64,
            0,
            "layers c of the 3d layout (must divide the ranks); 0: auto (3d: largest c with c^3 <= ranks; else 1)",
        ),
        ParamSpec::boolean("accumulate", false, "C += A B with a seeded initial C, instead of C = A B"),
    ]
}

/// One GEMM instance: its DAG, kernels and where its result tiles are.
pub struct Gemm {
    dag: Arc<Dag>,
    kernels: GemmKernels,
    layout: Layout,
    accumulate: bool,
    results: Vec<((usize, usize), ChunkId)>,
}

impl Gemm {
    /// Checks the parameters against each other and the rank count, then builds the DAG.
    ///
    /// # Errors
    /// Names the parameter (`tile`, `grid`, `replicas`, `ranks`) and says what is allowed.
    pub fn new(params: &Params, ranks: usize, seed: u64) -> Result<Self, ParamError> {
        let (shape, layout, accumulate) = Self::checked(params, ranks)?;
        let built = plan::build(shape, layout, accumulate);
        Ok(Gemm {
            dag: Arc::new(built.dag),
            kernels: GemmKernels { shape, seed },
            layout,
            accumulate,
            results: built.results,
        })
    }

    /// The checks of [`Gemm::new`] without building: shape, layout, accumulate.
    ///
    /// # Errors
    /// As [`Gemm::new`].
    pub fn checked(params: &Params, ranks: usize) -> Result<(Shape, Layout, bool), ParamError> {
        let n = params.int("n");
        let or_n = |key| match params.int(key) {
            0 => n,
            v => v,
        };
        let (m, k, tile) = (or_n("m"), or_n("k"), params.int("tile"));
        if tile > m.max(k).max(n) {
            return Err(ParamError::new(
                "tile",
                format!(
                    "tile {tile} is larger than every dimension (m={m} k={k} n={n}); use a tile <= {}",
                    m.max(k).max(n)
                ),
            ));
        }
        let layout = Layout::parse(params.str("layout"), params.str("grid"), params.int("replicas"), ranks)?;
        let shape = Shape { m: m as usize, k: k as usize, n: n as usize, tile: tile as usize };
        let accumulate = params.bool("accumulate");
        let tasks = plan::task_count(shape, layout, accumulate);
        if tasks > MAX_TASKS {
            return Err(ParamError::new(
                "tile",
                format!(
                    "m={m} k={k} n={n} with tile {tile} gives {tasks} tasks, more than {MAX_TASKS}; use a larger tile"
                ),
            ));
        }
        Ok((shape, layout, accumulate))
    }

    /// Sizes and tile edge.
    pub fn shape(&self) -> Shape {
        self.kernels.shape
    }

    /// The distribution.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Which chunk holds which final tile `C(i,j)`.
    pub fn result_tiles(&self) -> &[((usize, usize), ChunkId)] {
        &self.results
    }

    /// Bytes each rank receives if every remote reader of a chunk gets it once (what
    /// eager, rendezvous and rma move), from the DAG.
    pub fn model_received(&self) -> Vec<u64> {
        let dag = &self.dag;
        let mut per_rank = vec![0u64; dag.ranks()];
        for c in (0..dag.chunk_count() as u32).map(ChunkId) {
            for r in dag.remote_readers(c) {
                per_rank[r.index()] += dag.chunk(c).bytes;
            }
        }
        per_rank
    }
}

impl Workload for Gemm {
    fn dag(&self) -> &Arc<Dag> {
        &self.dag
    }

    fn kernels(&self) -> &dyn Kernels {
        &self.kernels
    }

    fn kernel_name(&self, kernel: KernelId) -> &'static str {
        Kind::from_id(kernel).map_or("unknown", Kind::name)
    }

    fn useful_flops(&self) -> f64 {
        self.kernels.shape.flops()
    }

    fn verify(&self, results: &BTreeMap<ChunkId, Payload>) -> Verification {
        verify::verify(self.kernels.shape, self.kernels.seed, self.accumulate, &self.results, results)
    }

    fn figures(&self, trace: &Trace) -> Vec<(&'static str, f64)> {
        let s = self.kernels.shape;
        let model = self.model_received().into_iter().max().unwrap_or(0);
        let bound = layout::lower_bound_bytes([s.m, s.k, s.n], self.dag.ranks());
        let mut out = vec![("model_bytes_per_rank", model as f64), ("bound_bytes_per_rank", bound)];
        if !trace.messages.is_empty() || self.dag.ranks() == 1 {
            let mut received = vec![0u64; self.dag.ranks()];
            for m in trace.messages.iter().filter(|m| m.class == MessageClass::Data) {
                received[m.dst.index()] += m.bytes;
            }
            out.push(("bytes_per_rank", received.into_iter().max().unwrap_or(0) as f64));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use dagwire_runtime::ParamValue::{Bool, Int, Str};

    /// `gen_c` only with `accumulate`, `add` only in 3D.
    #[test]
    fn its_kernel_kinds_are_exactly_those_its_dag_runs() {
        let plain: &[(&str, _)] = &[("n", Int(32)), ("tile", Int(16))];
        let layered: &[(&str, _)] = &[
            ("n", Int(32)),
            ("tile", Int(16)),
            ("layout", Str("3d".into())),
            ("replicas", Int(2)),
            ("accumulate", Bool(true)),
        ];
        crate::testing::assert_kernel_kinds_are_the_dags(&super::INFO, &[(plain, 4), (layered, 4)]);
    }
}
