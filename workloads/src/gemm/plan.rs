//! The task DAG of tiled `C = A B` (or `C += A B`) for a [`Layout`].
//!
//! Generation tasks write every input tile on its home rank. `C(i,j)` is a chain of
//! multiply tasks, one per panel `l`, each writing a new version of the tile and
//! reading the previous one as its last input (the first reads none, or the initial
//! `C` for `C += A B`); on a 3D layout each layer runs the chain of its own panels and
//! add tasks on layer 0 sum the partial tiles. The last version of `C(i,j)` is read
//! by nobody, so it is a result.

use super::layout::Layout;
use dagwire_runtime::{ChunkId, Dag, DagBuilder, KernelId, TaskSpec};

/// Sizes of one product: `A` is `m x k`, `B` is `k x n`, all cut into `tile x tile`
/// tiles (the last row and column of tiles smaller when `tile` does not divide).
///
/// ```
/// use dagwire_workloads::gemm::Shape;
/// let s = Shape { m: 100, k: 40, n: 64, tile: 32 };
/// assert_eq!((s.mt(), s.kt(), s.nt()), (4, 2, 2));
/// assert_eq!((s.rows(3), s.depth(1), s.cols(1)), (4, 8, 32));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `A`, rows of `B`.
    pub k: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
    /// Tile edge.
    pub tile: usize,
}

impl Shape {
    /// Tile rows of `A` and `C`.
    pub fn mt(&self) -> usize {
        self.m.div_ceil(self.tile)
    }
    /// Panels: tile columns of `A`, tile rows of `B`.
    pub fn kt(&self) -> usize {
        self.k.div_ceil(self.tile)
    }
    /// Tile columns of `B` and `C`.
    pub fn nt(&self) -> usize {
        self.n.div_ceil(self.tile)
    }
    /// Rows of tile row `i` of `A` and `C`.
    pub fn rows(&self, i: usize) -> usize {
        self.tile.min(self.m - i * self.tile)
    }
    /// Width of panel `l`.
    pub fn depth(&self, l: usize) -> usize {
        self.tile.min(self.k - l * self.tile)
    }
    /// Columns of tile column `j` of `B` and `C`.
    pub fn cols(&self, j: usize) -> usize {
        self.tile.min(self.n - j * self.tile)
    }
    /// `2 m k n`.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }
}

/// The kernels, with their [`KernelId`] numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Generates a tile of `A`.
    GenA = 0,
    /// Generates a tile of `B`.
    GenB = 1,
    /// Generates a tile of the initial `C` (`C += A B` only).
    GenC = 2,
    /// `C(i,j) (+)= A(i,l) B(l,j)`.
    Multiply = 3,
    /// Adds one layer's partial `C(i,j)` into layer 0's (3D only).
    Add = 4,
}

impl Kind {
    /// All kernels, in id order.
    pub const ALL: [Kind; 5] = [Kind::GenA, Kind::GenB, Kind::GenC, Kind::Multiply, Kind::Add];

    /// The id tasks carry.
    pub fn id(self) -> KernelId {
        KernelId(self as u16)
    }

    /// The kernel with this id, if any.
    pub fn from_id(id: KernelId) -> Option<Kind> {
        Kind::ALL.get(id.0 as usize).copied()
    }

    /// Names for traces, in id order: the workload's kernel kinds (the multiply is `gemm`,
    /// so machine files' `gemm` rate applies).
    pub const NAMES: [&'static str; 5] = ["gen_a", "gen_b", "gen_c", "gemm", "add"];

    /// Name for traces.
    pub fn name(self) -> &'static str {
        Kind::NAMES[self as usize]
    }

    /// Inputs a task reads; `acc`: a multiply that updates an existing `C`.
    pub fn inputs(self, acc: bool) -> usize {
        match self {
            Kind::GenA | Kind::GenB | Kind::GenC => 0,
            Kind::Multiply => 2 + usize::from(acc),
            Kind::Add => 2,
        }
    }
}

/// The built DAG and where its results are.
pub struct Plan {
    /// The DAG.
    pub dag: Dag,
    /// For each tile `(i, j)` of `C`, the chunk holding it at the end, row by row.
    pub results: Vec<((usize, usize), ChunkId)>,
}

/// Tasks [`build`] adds for `shape` on `layout` (to refuse oversized DAGs before building).
pub fn task_count(shape: Shape, layout: Layout, accumulate: bool) -> usize {
    let (mt, kt, nt) = (shape.mt(), shape.kt(), shape.nt());
    let layers = layout.grid().2.min(kt);
    mt * kt + kt * nt + mt * nt * (kt + usize::from(accumulate) + layers - 1)
}

/// Builds the DAG of `shape` on `layout`; `accumulate` computes `C += A B`.
pub fn build(shape: Shape, layout: Layout, accumulate: bool) -> Plan {
    let (mt, kt, nt) = (shape.mt(), shape.kt(), shape.nt());
    let layers = layout.grid().2;
    let mut dag = DagBuilder::new(layout.ranks());
    let top = kt as u32 + 2;
    let bytes = |rows: usize, cols: usize| [(rows * cols * 8) as u64];
    let mut a = Vec::with_capacity(mt * kt);
    for i in 0..mt {
        for l in 0..kt {
            let spec = TaskSpec::new(Kind::GenA.id(), layout.a_owner(i, l)).args([i as u32, 0, l as u32, 0]);
            a.push(dag.add(spec.outputs(&bytes(shape.rows(i), shape.depth(l))).priority(top)).output(0));
        }
    }
    let mut b = Vec::with_capacity(kt * nt);
    for l in 0..kt {
        for j in 0..nt {
            let spec = TaskSpec::new(Kind::GenB.id(), layout.b_owner(l, j)).args([0, j as u32, l as u32, 0]);
            b.push(dag.add(spec.outputs(&bytes(shape.depth(l), shape.cols(j))).priority(top)).output(0));
        }
    }
    let mut results = Vec::with_capacity(mt * nt);
    let mut partial: Vec<Option<ChunkId>> = vec![None; layers];
    for i in 0..mt {
        for j in 0..nt {
            let (rows, cols) = (shape.rows(i), shape.cols(j));
            let out = bytes(rows, cols);
            let ij = [i as u32, j as u32];
            partial.fill(None);
            if accumulate {
                let spec = TaskSpec::new(Kind::GenC.id(), layout.c_owner(i, j)).args([ij[0], ij[1], 0, 0]);
                partial[0] = Some(dag.add(spec.outputs(&out).priority(top)).output(0));
            }
            for l in 0..kt {
                let z = layout.layer_of(l);
                let mut inputs = vec![a[i * kt + l], b[l * nt + j]];
                inputs.extend(partial[z]);
                let flops = 2.0 * (rows * shape.depth(l) * cols) as f64;
                let spec = TaskSpec::new(Kind::Multiply.id(), layout.partial_owner(i, j, z))
                    .inputs(&inputs)
                    .outputs(&out)
                    .flops(flops)
                    .priority(top - 1 - l as u32) // earlier panels first, as SUMMA's steps
                    .args([ij[0], ij[1], l as u32, u32::from(partial[z].is_some())]);
                partial[z] = Some(dag.add(spec).output(0));
            }
            let mut total = partial[0].expect("layer 0 multiplies panel 0");
            for p in partial[1..].iter().flatten() {
                let inputs = [total, *p];
                let spec = TaskSpec::new(Kind::Add.id(), layout.c_owner(i, j))
                    .inputs(&inputs)
                    .outputs(&out)
                    .flops((rows * cols) as f64)
                    .args([ij[0], ij[1], 0, 0]);
                total = dag.add(spec).output(0);
            }
            results.push(((i, j), total));
        }
    }
    Plan { dag: dag.finish(), results }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_results_and_flops() {
        let shape = Shape { m: 100, k: 70, n: 40, tile: 32 }; // 4 x 3 x 2 tiles
        for (layout, acc) in [
            (Layout::parse("2d-block-cyclic", "auto", 1, 4).unwrap(), false),
            (Layout::parse("1d-cyclic", "auto", 1, 3).unwrap(), true),
            (Layout::parse("3d", "auto", 2, 4).unwrap(), true),
        ] {
            let plan = build(shape, layout, acc);
            assert_eq!(plan.dag.task_count(), task_count(shape, layout, acc), "{layout:?}");
            let mut results: Vec<ChunkId> = plan.results.iter().map(|&(_, c)| c).collect();
            results.sort_unstable();
            assert_eq!(plan.dag.results(), &results[..], "{layout:?}");
            let multiplies: f64 = plan
                .dag
                .task_ids()
                .map(|t| plan.dag.task(t))
                .filter(|t| t.kernel == Kind::Multiply.id())
                .map(|t| t.flops)
                .sum();
            assert_eq!(multiplies, shape.flops(), "{layout:?}");
        }
    }

    #[test]
    fn multiplies_run_where_their_partial_lives() {
        let shape = Shape { m: 64, k: 64, n: 64, tile: 16 };
        let layout = Layout::parse("3d", "1x2", 2, 4).unwrap();
        let plan = build(shape, layout, false);
        for t in plan.dag.task_ids().map(|t| plan.dag.task(t)) {
            let [i, j, l, _] = t.args.map(|a| a as usize);
            match Kind::from_id(t.kernel).unwrap() {
                Kind::Multiply => assert_eq!(t.owner, layout.partial_owner(i, j, l % 2)),
                Kind::Add => assert_eq!(t.owner, layout.c_owner(i, j)),
                _ => {}
            }
        }
    }
}
