//! Where the tiles of `A`, `B` and `C` live and where each partial product is
//! computed: the data distribution, a workload parameter (`gemm.layout`).
//!
//! - **1d-cyclic**: tile column `j` of `B` and `C` and tile column `l` of `A` on rank
//!   `j mod p` (resp. `l mod p`); `C(i,j)` is computed where it lives, so every tile
//!   of `A` goes to every other rank that owns a column of `C`.
//! - **2d-block-cyclic** (SUMMA): a `P x Q` grid; tile `(i,j)` of each matrix on grid
//!   position `(i mod P, j mod Q)`; step `l` sends the panel `A(:,l)` along grid rows
//!   and `B(l,:)` along grid columns (the strategies turn "one chunk, several readers"
//!   into sends or broadcasts).
//! - **3d** (2.5D, Solomonik and Demmel): `c` layers of a `P x Q` grid, `p = c P Q`.
//!   `A`, `B` and the final `C` live on layer 0 as in 2D; layer `l mod c` multiplies the
//!   `l`-th panels, so each input tile travels to the one layer that uses it (the
//!   replication, cut to what each layer reads), and the `c` partial `C`s are summed
//!   on layer 0 (the reduction across layers): memory and one reduction traded for
//!   `1/c` of the panel traffic per layer.

use crate::grid::parse_grid;
use dagwire_runtime::{BlockCyclic2D, ParamError, Rank};

/// The distributions, by name.
pub const NAMES: &[&str] = &["1d-cyclic", "2d-block-cyclic", "3d"];

/// A data distribution on a rank count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Tile columns dealt round-robin to `ranks` ranks.
    Cyclic1D {
        /// Ranks.
        ranks: u32,
    },
    /// SUMMA on a `rows x cols` grid.
    BlockCyclic2D {
        /// The grid.
        grid: BlockCyclic2D,
    },
    /// `layers` copies of a `rows x cols` grid.
    Layered3D {
        /// The grid of one layer.
        grid: BlockCyclic2D,
        /// Layers (`gemm.replicas`).
        layers: u32,
    },
}

impl Layout {
    /// Parses `layout`, `grid` (`auto` or `PxQ`) and `replicas` for `ranks` ranks;
    /// `replicas = 0` is automatic: 1 layer for 1D and 2D, and for 3D the most layers
    /// `c` that divide the ranks with `c^3 <= ranks` (2.5D's `c` up to `p^(1/3)`).
    ///
    /// # Errors
    /// Names the parameter (`layout`, `grid`, `replicas`, `ranks`) and what is allowed.
    ///
    /// ```
    /// use dagwire_workloads::gemm::Layout;
    /// let l = Layout::parse("2d-block-cyclic", "auto", 1, 6).unwrap();
    /// assert_eq!(l.grid(), (2, 3, 1));
    /// assert_eq!(Layout::parse("3d", "1x2", 2, 4).unwrap().grid(), (1, 2, 2));
    /// assert_eq!(Layout::parse("2d-block-cyclic", "2x2", 1, 6).unwrap_err().key, "grid");
    /// ```
    pub fn parse(layout: &str, grid: &str, replicas: i64, ranks: usize) -> Result<Layout, ParamError> {
        if ranks == 0 {
            return Err(ParamError::new("ranks", "0 ranks cannot run anything; use at least 1"));
        }
        if layout != "3d" && replicas > 1 {
            return Err(ParamError::new(
                "replicas",
                format!("replicas = {replicas} applies to layout = \"3d\" only; use replicas = 1 with {layout}"),
            ));
        }
        match layout {
            "1d-cyclic" => {
                if grid != "auto" {
                    return Err(ParamError::new(
                        "grid",
                        format!("grid = {grid:?} does not apply to 1d-cyclic (a 1 x p line); use grid = \"auto\""),
                    ));
                }
                Ok(Layout::Cyclic1D { ranks: ranks as u32 })
            }
            "2d-block-cyclic" => Ok(Layout::BlockCyclic2D { grid: parse_grid(grid, ranks, "ranks")? }),
            "3d" => {
                let replicas = if replicas == 0 { auto_replicas(ranks) as i64 } else { replicas };
                if replicas < 1 || !ranks.is_multiple_of(replicas as usize) {
                    return Err(ParamError::new(
                        "replicas",
                        format!("replicas = {replicas} must be at least 1 and divide the {ranks} ranks"),
                    ));
                }
                let per_layer = ranks / replicas as usize;
                let grid = parse_grid(grid, per_layer, "ranks / replicas")?;
                Ok(Layout::Layered3D { grid, layers: replicas as u32 })
            }
            other => Err(ParamError::new("layout", format!("unknown layout {other:?}; use one of {NAMES:?}"))),
        }
    }

    /// `(P, Q, c)`: grid rows, grid columns and layers (`(1, p, 1)` for 1D).
    pub fn grid(&self) -> (usize, usize, usize) {
        match *self {
            Layout::Cyclic1D { ranks } => (1, ranks as usize, 1),
            Layout::BlockCyclic2D { grid } => (grid.rows as usize, grid.cols as usize, 1),
            Layout::Layered3D { grid, layers } => (grid.rows as usize, grid.cols as usize, layers as usize),
        }
    }

    /// Ranks the layout spans.
    pub fn ranks(&self) -> usize {
        let (p, q, c) = self.grid();
        p * q * c
    }

    /// Its name in [`NAMES`].
    pub fn name(&self) -> &'static str {
        match self {
            Layout::Cyclic1D { .. } => NAMES[0],
            Layout::BlockCyclic2D { .. } => NAMES[1],
            Layout::Layered3D { .. } => NAMES[2],
        }
    }

    /// Home of tile `A(i, l)`.
    pub fn a_owner(&self, i: usize, l: usize) -> Rank {
        match *self {
            Layout::Cyclic1D { ranks } => Rank((l % ranks as usize) as u32),
            Layout::BlockCyclic2D { grid } | Layout::Layered3D { grid, .. } => grid.owner(i, l),
        }
    }

    /// Home of tile `B(l, j)`.
    pub fn b_owner(&self, l: usize, j: usize) -> Rank {
        match *self {
            Layout::Cyclic1D { ranks } => Rank((j % ranks as usize) as u32),
            Layout::BlockCyclic2D { grid } | Layout::Layered3D { grid, .. } => grid.owner(l, j),
        }
    }

    /// Home of the final tile `C(i, j)` (layer 0 for 3D).
    pub fn c_owner(&self, i: usize, j: usize) -> Rank {
        self.partial_owner(i, j, 0)
    }

    /// The layer that multiplies panel `l` (0 except for 3D).
    pub fn layer_of(&self, l: usize) -> usize {
        match *self {
            Layout::Layered3D { layers, .. } => l % layers as usize,
            _ => 0,
        }
    }

    /// The rank that accumulates layer `layer`'s partial `C(i, j)`.
    pub fn partial_owner(&self, i: usize, j: usize, layer: usize) -> Rank {
        match *self {
            Layout::Cyclic1D { ranks } => Rank((j % ranks as usize) as u32),
            Layout::BlockCyclic2D { grid } => grid.owner(i, j),
            Layout::Layered3D { grid, .. } => Rank(grid.owner(i, j).0 + (layer * grid.ranks()) as u32),
        }
    }
}

/// The most layers `c` dividing `ranks` with `c^3 <= ranks`.
///
/// ```
/// use dagwire_workloads::gemm::layout::auto_replicas;
/// assert_eq!([1, 4, 8, 12, 27, 64].map(auto_replicas), [1, 1, 2, 2, 3, 4]);
/// ```
pub fn auto_replicas(ranks: usize) -> usize {
    (1..=ranks).filter(|c| ranks.is_multiple_of(*c) && c * c * c <= ranks).max().unwrap_or(1)
}

/// The closed-form count of bytes SUMMA moves on a `P x Q` grid when every reader of
/// a tile gets it once (as eager, rendezvous and rma move it): tile `A(i,l)` goes to
/// the grid columns, other than its own, that hold a column of `C`, and `B(l,j)` to
/// the grid rows, other than its own, that hold a row of `C`. With at least `P` tile
/// rows and `Q` tile columns this is `8 ((Q - 1) m k + (P - 1) k n)`.
///
/// ```
/// use dagwire_workloads::gemm::layout::summa_bytes;
/// // 64 x 64 x 64 in tiles of 16 on 2 x 2: A and B each cross once.
/// assert_eq!(summa_bytes([64, 64, 64], 16, 2, 2), 8 * (64 * 64 + 64 * 64));
/// ```
pub fn summa_bytes([m, k, n]: [usize; 3], tile: usize, p: usize, q: usize) -> u64 {
    let (mt, kt, nt) = (m.div_ceil(tile), k.div_ceil(tile), n.div_ceil(tile));
    let size = |x: usize, len: usize| tile.min(len - x * tile);
    // Grid columns holding some tile column of C, and whether column `c` is one of them.
    let (cols, rows) = (nt.min(q), mt.min(p));
    let mut bytes = 0u64;
    for l in 0..kt {
        let a_readers = cols - usize::from(l % q < nt);
        let b_readers = rows - usize::from(l % p < mt);
        bytes += (m * size(l, k) * a_readers + size(l, k) * n * b_readers) as u64 * 8;
    }
    bytes
}

/// The memory-independent lower bound on the words some rank must receive to multiply
/// `m x k` by `k x n` on `p` ranks, each doing `1/p` of the multiplications and every
/// input held once at the start (Al Daas, Ballard, Grigori, Kumar and Rouse, "Tight
/// memory-independent parallel matrix multiplication communication lower bounds",
/// SPAA 2022, Theorem 3), with the dimensions sorted `d1 >= d2 >= d3`:
/// `d2 d3 (1 - 1/p)` for `p <= d1/d2`; `2 (d1 d2 d3^2 / p)^(1/2) - (d1 d3 + d2 d3)/p` up to
/// `d1 d2 / d3^2`; `3 (d1 d2 d3 / p)^(2/3) - (d1 d2 + d1 d3 + d2 d3)/p` beyond. In bytes
/// of `f64` here; 0 on one rank.
///
/// ```
/// use dagwire_workloads::gemm::layout::lower_bound_bytes;
/// assert_eq!(lower_bound_bytes([100, 100, 100], 1), 0.0);
/// let b = lower_bound_bytes([64, 64, 64], 8); // 3 (64^3/8)^(2/3) - 3 * 64^2 / 8 words
/// assert!((b - 8.0 * (3.0 * 1024.0 - 1536.0)).abs() < 1e-6);
/// ```
pub fn lower_bound_bytes(dims: [usize; 3], p: usize) -> f64 {
    let mut d = dims.map(|x| x as f64);
    d.sort_by(|a, b| b.total_cmp(a));
    let [d1, d2, d3] = d;
    let p = p as f64;
    let words = if p <= d1 / d2 {
        d2 * d3 * (1.0 - 1.0 / p)
    } else if p <= d1 * d2 / (d3 * d3) {
        2.0 * (d1 * d2 * d3 * d3 / p).sqrt() - (d1 * d3 + d2 * d3) / p
    } else {
        3.0 * (d1 * d2 * d3 / p).powf(2.0 / 3.0) - (d1 * d2 + d1 * d3 + d2 * d3) / p
    };
    8.0 * words.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rank_of_a_3d_layout_is_a_partial_owner() {
        let l = Layout::parse("3d", "auto", 2, 8).unwrap();
        assert_eq!(l.grid(), (2, 2, 2));
        let mut seen: Vec<u32> = (0..2)
            .flat_map(|z| (0..2).flat_map(move |i| (0..2).map(move |j| (i, j, z))))
            .map(|(i, j, z)| l.partial_owner(i, j, z).0)
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        assert_eq!((l.layer_of(3), l.c_owner(1, 1)), (1, Rank(3)));
    }

    #[test]
    fn parameter_errors() {
        assert_eq!(Layout::parse("3d", "auto", 3, 8).unwrap_err().key, "replicas");
        assert_eq!(Layout::parse("2d-block-cyclic", "auto", 2, 8).unwrap_err().key, "replicas");
        assert_eq!(Layout::parse("1d-cyclic", "2x2", 1, 4).unwrap_err().key, "grid");
        assert_eq!(Layout::parse("2d-block-cyclic", "two", 1, 4).unwrap_err().key, "grid");
        assert_eq!(Layout::parse("2d-block-cyclic", "4x1", 1, 4).unwrap().grid(), (4, 1, 1));
        assert_eq!(Layout::parse("2d-block-cyclic", "auto", 0, 8).unwrap().grid(), (2, 4, 1));
        assert_eq!(Layout::parse("3d", "auto", 0, 8).unwrap().grid(), (2, 2, 2));
    }

    #[test]
    fn bound_is_continuous_between_cases() {
        // d = (256, 64, 16): the cases change at p = d1/d2 = 4 and p = d1 d2 / d3^2 = 64.
        let words = |p: f64, case: u8| {
            let (d1, d2, d3) = (256.0f64, 64.0, 16.0);
            match case {
                1 => d2 * d3 * (1.0 - 1.0 / p),
                2 => 2.0 * (d1 * d2 * d3 * d3 / p).sqrt() - (d1 * d3 + d2 * d3) / p,
                _ => 3.0 * (d1 * d2 * d3 / p).powf(2.0 / 3.0) - (d1 * d2 + d1 * d3 + d2 * d3) / p,
            }
        };
        assert!((words(4.0, 1) - words(4.0, 2)).abs() < 1e-9);
        assert!((words(64.0, 2) - words(64.0, 3)).abs() < 1e-9);
        for (p, case) in [(2, 1), (4, 1), (16, 2), (64, 2), (128, 3)] {
            let got = lower_bound_bytes([16, 256, 64], p);
            assert!((got - 8.0 * words(p as f64, case)).abs() < 1e-6, "p = {p}");
        }
    }
}
