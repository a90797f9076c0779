//! The task DAG of right-looking tiled Cholesky, placed owner-computes on a 2D
//! block-cyclic grid.
//!
//! Every task writes a new version (chunk) of the tile it updates and reads the
//! previous version as its last input. The version a POTRF or TRSM writes is the
//! finished `L(i,k)`: it is marked as a result, so the run hands it back although
//! later updates still read it.

use super::tiling::Tiling;
use dagwire_runtime::{BlockCyclic2D, ChunkId, Dag, DagBuilder, KernelId, TaskSpec};

/// The five kernels, with their [`KernelId`] numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Generates a tile of the input matrix from the seed.
    Gen = 0,
    /// Factors a diagonal tile.
    Potrf = 1,
    /// Solves a tile below the diagonal against the factored diagonal tile.
    Trsm = 2,
    /// Updates a diagonal tile with a panel tile.
    Syrk = 3,
    /// Updates an off-diagonal tile with two panel tiles.
    Gemm = 4,
}

impl Kind {
    /// All kernels, in id order.
    pub const ALL: [Kind; 5] = [Kind::Gen, Kind::Potrf, Kind::Trsm, Kind::Syrk, Kind::Gemm];

    /// The id tasks carry.
    pub fn id(self) -> KernelId {
        KernelId(self as u16)
    }

    /// The kernel with this id, if any.
    ///
    /// ```
    /// use dagwire_workloads::cholesky::Kind;
    /// assert_eq!(Kind::from_id(Kind::Syrk.id()), Some(Kind::Syrk));
    /// assert_eq!(Kind::from_id(dagwire_runtime::KernelId(9)), None);
    /// ```
    pub fn from_id(id: KernelId) -> Option<Kind> {
        Kind::ALL.get(id.0 as usize).copied()
    }

    /// Names for traces, in id order: the workload's kernel kinds.
    pub const NAMES: [&'static str; 5] = ["gen", "potrf", "trsm", "syrk", "gemm"];

    /// Name for traces.
    pub fn name(self) -> &'static str {
        Kind::NAMES[self as usize]
    }

    /// Number of inputs a task of this kind reads.
    pub fn inputs(self) -> usize {
        [0, 1, 2, 2, 3][self as usize]
    }
}

/// The built DAG and where its results are.
pub struct Plan {
    /// The DAG.
    pub dag: Dag,
    /// For each lower tile `(i, j)`, the chunk holding its final `L(i,j)`, in
    /// column-major tile order.
    pub results: Vec<((usize, usize), ChunkId)>,
}

/// Builds the Cholesky DAG for `tiling` on `ranks` ranks.
pub fn build(tiling: Tiling, grid: BlockCyclic2D) -> Plan {
    let mut b = Builder::new(tiling, grid);
    let nt = tiling.tiles();
    for j in 0..nt {
        for i in j..nt {
            b.generate(i, j);
        }
    }
    for k in 0..nt {
        b.potrf(k);
        (k + 1..nt).for_each(|i| b.trsm(i, k));
        for j in k + 1..nt {
            b.syrk(j, k);
            (j + 1..nt).for_each(|i| b.gemm(i, j, k));
        }
    }
    let finished = std::mem::take(&mut b.results).into_iter().enumerate();
    let results = finished.map(|(x, c)| (b.tile_of(x), c.expect("every tile is finished"))).collect();
    Plan { dag: b.dag.finish(), results }
}

/// The DAG under construction and the latest version of every lower tile.
struct Builder {
    tiling: Tiling,
    grid: BlockCyclic2D,
    dag: DagBuilder,
    current: Vec<Option<ChunkId>>,
    results: Vec<Option<ChunkId>>,
}

impl Builder {
    fn new(tiling: Tiling, grid: BlockCyclic2D) -> Self {
        let tiles = tiling.lower_tiles();
        Builder {
            tiling,
            grid,
            dag: DagBuilder::new(grid.ranks()),
            current: vec![None; tiles],
            results: vec![None; tiles],
        }
    }

    /// Index of lower tile `(i, j)`, column by column.
    fn slot(&self, i: usize, j: usize) -> usize {
        let nt = self.tiling.tiles();
        j * nt - j * (j.saturating_sub(1)) / 2 + (i - j)
    }

    /// The inverse of [`Builder::slot`].
    fn tile_of(&self, slot: usize) -> (usize, usize) {
        let nt = self.tiling.tiles();
        let (mut j, mut first) = (0, 0);
        while first + (nt - j) <= slot {
            first += nt - j;
            j += 1;
        }
        (j + slot - first, j)
    }

    fn latest(&self, i: usize, j: usize) -> ChunkId {
        self.current[self.slot(i, j)].expect("tile generated before use")
    }

    /// Adds a task writing tile `(i, j)`; `finished` marks the version that is `L(i,j)`.
    fn add(&mut self, kind: Kind, [i, j, k]: [usize; 3], reads: &[ChunkId], flops: f64, finished: bool) {
        let t = self.tiling;
        let bytes = (t.elements(i, j) * 8) as u64;
        let outputs: &[u64] = &[bytes];
        let mut inputs = reads.to_vec();
        if kind != Kind::Gen {
            inputs.push(self.latest(i, j)); // the version being updated goes last
        }
        let spec = TaskSpec::new(kind.id(), self.grid.owner(i, j))
            .inputs(&inputs)
            .outputs(outputs)
            .flops(flops)
            .priority(priority(kind, j, t.tiles()))
            .args([i as u32, j as u32, k as u32, 0]);
        let added = self.dag.add(spec);
        let slot = self.slot(i, j);
        self.current[slot] = Some(added.output(0));
        if finished {
            self.results[slot] = Some(added.output(0));
            self.dag.mark_result(added.output(0));
        }
    }

    fn generate(&mut self, i: usize, j: usize) {
        self.add(Kind::Gen, [i, j, 0], &[], 0.0, false);
    }

    fn potrf(&mut self, k: usize) {
        let b = self.tiling.rows(k) as f64;
        self.add(Kind::Potrf, [k, k, k], &[], b * b * b / 3.0, true);
    }

    fn trsm(&mut self, i: usize, k: usize) {
        let (m, b) = (self.tiling.rows(i) as f64, self.tiling.rows(k) as f64);
        let l = self.latest(k, k);
        self.add(Kind::Trsm, [i, k, k], &[l], m * b * b, true);
    }

    fn syrk(&mut self, i: usize, k: usize) {
        let (m, kk) = (self.tiling.rows(i) as f64, self.tiling.rows(k) as f64);
        let l = self.latest(i, k);
        self.add(Kind::Syrk, [i, i, k], &[l], m * m * kk, false);
    }

    fn gemm(&mut self, i: usize, j: usize, k: usize) {
        let t = self.tiling;
        let (m, p, kk) = (t.rows(i) as f64, t.rows(j) as f64, t.rows(k) as f64);
        let reads = [self.latest(i, k), self.latest(j, k)];
        self.add(Kind::Gemm, [i, j, k], &reads, 2.0 * m * p * kk, false);
    }
}

/// Scheduling priority (larger first): generation first, then by the tile column
/// the task writes, earlier columns first — column `j` holds the next panel, so its
/// updates, POTRF and TRSMs are the critical path, and favouring them over updates
/// of later columns gives lookahead for free. Within a column, the order along the
/// chain: POTRF, TRSM, SYRK, GEMM.
fn priority(kind: Kind, column: usize, nt: usize) -> u32 {
    let bonus = match kind {
        Kind::Gen => return (nt as u32 + 1) * 4,
        Kind::Potrf => 3,
        Kind::Trsm => 2,
        Kind::Syrk => 1,
        Kind::Gemm => 0,
    };
    (nt - column) as u32 * 4 + bonus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_counts_and_results() {
        let nt = 4;
        let plan = build(Tiling::new(100, 32), BlockCyclic2D::for_ranks(3));
        let updates = (0..nt).map(|k| (nt - k - 1) * (nt - k) / 2).sum::<usize>();
        assert_eq!(plan.dag.task_count(), 10 + nt + 6 + updates); // gen, potrf, trsm, syrk + gemm
        assert_eq!(plan.results.len(), 10);
        let sinks: Vec<ChunkId> = plan.dag.results().to_vec();
        let mut results: Vec<ChunkId> = plan.results.iter().map(|&(_, c)| c).collect();
        results.sort_unstable();
        assert_eq!(sinks, results, "the results are exactly the finished tiles");
    }

    #[test]
    fn slots_round_trip() {
        let b = Builder::new(Tiling::new(50, 10), BlockCyclic2D::for_ranks(1));
        let tiles: Vec<_> = (0..5).flat_map(|j| (j..5).map(move |i| (i, j))).collect();
        for (x, &(i, j)) in tiles.iter().enumerate() {
            assert_eq!(b.slot(i, j), x);
            assert_eq!(b.tile_of(x), (i, j));
        }
    }

    #[test]
    fn owner_computes_and_flops() {
        let t = Tiling::new(64, 16);
        let plan = build(t, BlockCyclic2D::for_ranks(4));
        let grid = BlockCyclic2D::for_ranks(4);
        for id in plan.dag.task_ids() {
            let task = plan.dag.task(id);
            assert_eq!(task.owner, grid.owner(task.args[0] as usize, task.args[1] as usize));
        }
        let n = 64.0_f64;
        let total = plan.dag.total_flops();
        // With square tiles the per-task counts add up to exactly n^3/3.
        assert!((total - n * n * n / 3.0).abs() < 1e-9 * n * n * n, "{total}");
    }
}
