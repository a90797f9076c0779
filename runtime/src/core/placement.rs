//! Placement: which rank owns which tile. Owner-computes: a task runs on the rank
//! that owns the tile it writes.

use crate::ids::Rank;

/// A 2D block-cyclic distribution over a `rows x cols` process grid (ScaLAPACK style):
/// tile `(i, j)` lives on grid position `(i mod rows, j mod cols)`.
///
/// ```
/// use dagwire_runtime::{BlockCyclic2D, Rank};
/// let grid = BlockCyclic2D::for_ranks(6); // 2 x 3
/// assert_eq!((grid.rows, grid.cols), (2, 3));
/// assert_eq!(grid.owner(0, 0), Rank(0));
/// assert_eq!(grid.owner(1, 4), Rank(4)); // row 1, column 4 mod 3 = 1
/// assert_eq!(grid.owner(2, 3), Rank(0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockCyclic2D {
    /// Process grid rows.
    pub rows: u32,
    /// Process grid columns.
    pub cols: u32,
}

impl BlockCyclic2D {
    /// The most nearly square grid with `rows <= cols` and `rows * cols == ranks`
    /// (a prime rank count gives `1 x ranks`).
    ///
    /// # Panics
    /// If `ranks` is zero.
    pub fn for_ranks(ranks: usize) -> Self {
        assert!(ranks > 0, "a process grid needs at least one rank");
        let ranks = ranks as u32;
        let rows = (1..=ranks).filter(|r| ranks.is_multiple_of(*r) && r * r <= ranks).max().unwrap_or(1);
        BlockCyclic2D { rows, cols: ranks / rows }
    }

    /// Number of ranks in the grid.
    pub fn ranks(&self) -> usize {
        (self.rows * self.cols) as usize
    }

    /// The rank owning tile `(i, j)`.
    pub fn owner(&self, i: usize, j: usize) -> Rank {
        Rank((i as u32 % self.rows) * self.cols + (j as u32 % self.cols))
    }
}
