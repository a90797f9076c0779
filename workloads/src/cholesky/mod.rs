//! **cholesky**: tiled right-looking Cholesky `A = L L^T` of a random SPD matrix.
//!
//! - [`tiling`]: how the matrix is cut into (possibly ragged) tiles;
//! - [`matrix`]: the input, regenerated anywhere from the seed;
//! - [`plan`]: the DAG (GEN, POTRF, TRSM, SYRK, GEMM), owner-computes on a 2D
//!   block-cyclic grid;
//! - [`kernels`]: the tile kernels, on faer;
//! - [`verify`]: the scaled-residual check;
//! - [`mod@reference`]: faer's dense Cholesky on the same matrix, the baseline to beat.
//!
//! ```
//! use dagwire_runtime::{ParamValue, Params};
//! let info = dagwire_workloads::find("cholesky").unwrap();
//! let given = [("n".to_string(), ParamValue::Int(64)), ("tile".to_string(), ParamValue::Int(16))];
//! let params = Params::resolve(&(info.params)(), given.into()).unwrap();
//! let w = (info.prepare)(&params, 4, 7).unwrap();
//! assert_eq!(w.dag().ranks(), 4);
//! assert_eq!(w.useful_flops(), 64.0 * 64.0 * 64.0 / 3.0);
//! ```

pub mod kernels;
pub mod matrix;
pub mod plan;
pub mod reference;
pub mod tiling;
pub mod verify;

pub use kernels::CholeskyKernels;
pub use matrix::element;
pub use plan::Kind;
pub use reference::{ReferenceRun, reference_cholesky};
pub use tiling::Tiling;
pub use verify::{RESIDUAL_BOUND, scaled_residual};

use crate::{Verification, Workload, WorkloadInfo};
use dagwire_runtime::{BlockCyclic2D, ChunkId, Dag, KernelId, Kernels, ParamError, ParamSpec, Params, Payload};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Registration.
pub const INFO: WorkloadInfo = WorkloadInfo {
    name: "cholesky",
    summary: "tiled right-looking Cholesky (POTRF/TRSM/SYRK/GEMM), 2D block-cyclic or 1D cyclic; verified by ||A - L L^T||_F / (||A||_F n eps)",
    params,
    prepare: |params, ranks, seed| Ok(Box::new(Cholesky::new(params, ranks, seed)?)),
    check: |params, ranks| Cholesky::checked(params, ranks).map(drop),
    kernel_kinds: &plan::Kind::NAMES,
};

/// Largest accepted matrix order and tile edge (tile indices travel as `u32`, and a
/// dense verification of a larger matrix would not fit in memory anyway).
pub const MAX_N: i64 = 1 << 20;

/// Largest DAG `prepare` builds: a tiny tile on a big matrix would otherwise ask for
/// billions of tasks (about `nt^3 / 6`) and exhaust memory before saying anything.
pub const MAX_TASKS: usize = 20_000_000;

/// The parameters a sweep may set.
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::int("n", 1, MAX_N, 1024, "matrix order"),
        ParamSpec::int("tile", 1, MAX_N, 256, "tile edge in elements (the last tile row/column may be smaller)"),
        ParamSpec::choice(
            "layout",
            &["2d-block-cyclic", "1d-cyclic"],
            "2d-block-cyclic",
            "tile distribution: 2d-block-cyclic (tile (i, j) on grid position (i mod P, j mod Q)) or 1d-cyclic \
             (tile column j on rank j mod p)",
        ),
        ParamSpec::text("grid", "auto", "2d-block-cyclic's process grid: auto (most nearly square) or \"PxQ\""),
    ]
}

/// The process grid `layout` and `grid` name for `ranks` ranks (1d-cyclic is the
/// `1 x p` grid: tile column `j` on rank `j mod p`).
fn layout_grid(layout: &str, grid: &str, ranks: usize) -> Result<BlockCyclic2D, ParamError> {
    if ranks == 0 {
        return Err(ParamError::new("ranks", "0 ranks cannot run anything; use at least 1"));
    }
    match layout {
        "1d-cyclic" if grid != "auto" => Err(ParamError::new(
            "grid",
            format!("grid = {grid:?} does not apply to 1d-cyclic (a 1 x p line); use grid = \"auto\""),
        )),
        "1d-cyclic" => Ok(BlockCyclic2D { rows: 1, cols: ranks as u32 }),
        _ => crate::grid::parse_grid(grid, ranks, "ranks"),
    }
}

/// One Cholesky instance: its DAG, its kernels, and where its result tiles are.
pub struct Cholesky {
    dag: Arc<Dag>,
    kernels: CholeskyKernels,
    results: Vec<((usize, usize), ChunkId)>,
}

impl Cholesky {
    /// Checks `n`, `tile` and the rank count, then builds the DAG.
    ///
    /// # Errors
    /// Names the parameter (`tile`, `ranks`) and says what is allowed.
    pub fn new(params: &Params, ranks: usize, seed: u64) -> Result<Self, ParamError> {
        let (tiling, grid) = Self::checked(params, ranks)?;
        let built = plan::build(tiling, grid);
        Ok(Cholesky { dag: Arc::new(built.dag), kernels: CholeskyKernels { tiling, seed }, results: built.results })
    }

    /// The checks of [`Cholesky::new`] without building: the tiling and the rank grid.
    ///
    /// # Errors
    /// As [`Cholesky::new`].
    pub fn checked(params: &Params, ranks: usize) -> Result<(Tiling, BlockCyclic2D), ParamError> {
        let (n, tile) = (params.int("n"), params.int("tile"));
        let layout = params.get("layout").map_or("2d-block-cyclic".to_string(), ToString::to_string);
        let grid = params.get("grid").map_or("auto".to_string(), ToString::to_string);
        let grid = layout_grid(&layout, &grid, ranks)?;
        Ok((check(n, tile, grid)?, grid))
    }

    /// The tile grid.
    pub fn tiling(&self) -> Tiling {
        self.kernels.tiling
    }

    /// Which chunk holds which final tile `L(i,j)`.
    pub fn result_tiles(&self) -> &[((usize, usize), ChunkId)] {
        &self.results
    }
}

/// Validates the parameters against each other and the rank count.
fn check(n: i64, tile: i64, grid: BlockCyclic2D) -> Result<Tiling, ParamError> {
    if !(1..=MAX_N).contains(&n) {
        return Err(ParamError::new("n", format!("n = {n} is outside 1..={MAX_N}")));
    }
    if tile < 1 || tile > n {
        return Err(ParamError::new("tile", format!("tile {tile} is larger than n = {n}; use a tile <= n")));
    }
    let tiling = Tiling::new(n as usize, tile as usize);
    let nt = tiling.tiles();
    let tasks = nt * (nt + 1) * (nt + 2) / 6 + tiling.lower_tiles();
    if tasks > MAX_TASKS {
        let why = format!(
            "n = {n} with tile {tile} gives {nt}x{nt} tiles and about {tasks} tasks, more than {MAX_TASKS}; use a larger tile"
        );
        return Err(ParamError::new("tile", why));
    }
    check_ranks(tiling, grid)?;
    Ok(tiling)
}

/// Refuses a rank count under which some rank would own no tile (and so run nothing).
///
/// More ranks than lower-triangle tiles always leaves one idle, but fewer is not
/// enough: on the `1 x 3` grid of 3 ranks, a `2 x 2` tile grid leaves column 2 empty.
fn check_ranks(tiling: Tiling, grid: BlockCyclic2D) -> Result<(), ParamError> {
    let ranks = grid.ranks();
    let (nt, owned) = (tiling.tiles(), tiling.lower_tiles());
    let Some(idle) = idle_rank(nt, grid) else {
        return Ok(());
    };
    // The most ranks that would all own a tile on a grid of the same kind.
    let same_kind =
        |r: usize| if grid.rows == 1 { BlockCyclic2D { rows: 1, cols: r as u32 } } else { BlockCyclic2D::for_ranks(r) };
    let most = (1..=ranks.min(owned)).rev().find(|&r| idle_rank(nt, same_kind(r)).is_none());
    let why = format!(
        "with {ranks} ranks ({}x{} grid), rank {idle} would own none of the {owned} lower-triangle tiles \
         (n = {}, tile = {}: {nt}x{nt} tiles); use at most {} ranks here, or a smaller tile",
        grid.rows,
        grid.cols,
        tiling.n,
        tiling.tile,
        most.unwrap_or(1)
    );
    Err(ParamError::new("ranks", why))
}

/// The first rank of `grid` owning no tile `(i, j)`, `i >= j`, of an `nt x nt` tile grid.
fn idle_rank(nt: usize, grid: BlockCyclic2D) -> Option<usize> {
    let (rows, cols) = (grid.rows as usize, grid.cols as usize);
    (0..rows * cols).find(|&r| {
        let (pr, pc) = (r / cols, r % cols);
        // The rank's best chance: its first column `pc` and the first row `i >= pc` in its grid row.
        let i = pc + (pr + rows - pc % rows) % rows;
        pc >= nt || i >= nt
    })
}

impl Workload for Cholesky {
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
        let n = self.kernels.tiling.n as f64;
        n * n * n / 3.0
    }

    fn verify(&self, results: &BTreeMap<ChunkId, Payload>) -> Verification {
        verify::verify(self.kernels.tiling, self.kernels.seed, &self.results, results)
    }
}

#[cfg(test)]
mod tests {
    use dagwire_runtime::ParamValue::Int;

    /// Three tiles a side: every kind (a GEMM update needs a third tile row).
    #[test]
    fn its_kernel_kinds_are_exactly_those_its_dag_runs() {
        let small: &[(&str, _)] = &[("n", Int(96)), ("tile", Int(32))];
        crate::testing::assert_kernel_kinds_are_the_dags(&super::INFO, &[(small, 2)]);
    }
}
