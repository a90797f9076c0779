//! How an `n x n` matrix is cut into square tiles, the last row and column of
//! tiles being smaller when `tile` does not divide `n`.

/// The tile grid of an `n x n` matrix.
///
/// ```
/// use dagwire_workloads::cholesky::Tiling;
/// let t = Tiling::new(100, 32);
/// assert_eq!(t.tiles(), 4);
/// assert_eq!((t.rows(0), t.rows(3)), (32, 4)); // the last tile is ragged
/// assert_eq!(t.offset(3), 96);
/// assert_eq!(t.lower_tiles(), 10);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    /// Matrix order.
    pub n: usize,
    /// Tile edge (the last tile may be smaller).
    pub tile: usize,
}

impl Tiling {
    /// The tiling of an `n x n` matrix into `tile x tile` tiles.
    ///
    /// # Panics
    /// If `n` or `tile` is zero.
    pub fn new(n: usize, tile: usize) -> Self {
        assert!(n > 0 && tile > 0, "a tiling needs n >= 1 and tile >= 1, got n = {n}, tile = {tile}");
        Tiling { n, tile }
    }

    /// Tiles per side: `ceil(n / tile)`.
    pub fn tiles(&self) -> usize {
        self.n.div_ceil(self.tile)
    }

    /// Tiles in the lower triangle (diagonal included): the tiles that exist.
    pub fn lower_tiles(&self) -> usize {
        let nt = self.tiles();
        nt * (nt + 1) / 2
    }

    /// Rows of tile row `i` (equally, columns of tile column `i`).
    pub fn rows(&self, i: usize) -> usize {
        self.tile.min(self.n - self.offset(i))
    }

    /// First global row (or column) of tile row (or column) `i`.
    pub fn offset(&self, i: usize) -> usize {
        i * self.tile
    }

    /// Number of `f64` in tile `(i, j)`.
    pub fn elements(&self, i: usize, j: usize) -> usize {
        self.rows(i) * self.rows(j)
    }
}
