//! The input matrix: a random symmetric positive definite matrix that any rank can
//! regenerate piece by piece from the seed alone, so no rank ever holds it whole and
//! the DAG and the verifier agree on it without sharing data.

use super::tiling::Tiling;
use dagwire_runtime::rng;
use faer::Mat;

/// Element `(r, c)` of the `n x n` input matrix for `seed`.
///
/// Off the diagonal it is the runtime's counter hash ([`rng::hash`]) of `(seed,
/// min(r, c), max(r, c))`, so any tile is generated alone and in any order, mapped to
/// `[-0.5, 0.5)`, so the matrix is symmetric by construction. The diagonal adds `n`,
/// which makes every row strictly diagonally dominant (off-diagonal sum < `(n-1)/2`),
/// and a symmetric strictly diagonally dominant matrix with a positive diagonal is
/// positive definite.
///
/// ```
/// use dagwire_workloads::cholesky::element;
/// assert_eq!(element(7, 10, 3, 5), element(7, 10, 5, 3));
/// assert!(element(7, 10, 4, 4) >= 9.5);
/// ```
pub fn element(seed: u64, n: usize, r: usize, c: usize) -> f64 {
    let (lo, hi) = (r.min(c) as u64, r.max(c) as u64);
    let h = rng::hash(rng::derive(seed, lo) ^ hi);
    let diagonal = if r == c { n as f64 } else { 0.0 };
    rng::unit(h) - 0.5 + diagonal
}

/// Tile `(i, j)` of the input matrix, column-major, `rows(i) x rows(j)`.
///
/// A diagonal tile is generated whole (both triangles); POTRF only reads its lower half.
pub fn tile(seed: u64, tiling: &Tiling, i: usize, j: usize) -> Vec<f64> {
    let (r0, c0) = (tiling.offset(i), tiling.offset(j));
    let (rows, cols) = (tiling.rows(i), tiling.rows(j));
    let mut out = Vec::with_capacity(rows * cols);
    for c in c0..c0 + cols {
        out.extend((r0..r0 + rows).map(|r| element(seed, tiling.n, r, c)));
    }
    out
}

/// The whole `n x n` input matrix (both triangles), for verification and the
/// dense reference.
pub fn dense(seed: u64, n: usize) -> Mat<f64> {
    Mat::from_fn(n, n, |r, c| element(seed, n, r, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_deterministic() {
        let a = dense(42, 37);
        for r in 0..37 {
            for c in 0..37 {
                assert_eq!(a[(r, c)], a[(c, r)], "not symmetric at ({r}, {c})");
                assert_eq!(a[(r, c)], element(42, 37, r, c), "not deterministic at ({r}, {c})");
            }
        }
        assert_ne!(dense(43, 37), a, "the seed must change the matrix");
    }

    #[test]
    fn off_diagonal_in_range_and_diagonally_dominant() {
        let n = 50;
        let a = dense(1, n);
        for r in 0..n {
            let off: f64 = (0..n).filter(|&c| c != r).map(|c| a[(r, c)].abs()).sum();
            assert!(off < a[(r, r)], "row {r} is not diagonally dominant");
            for c in (0..n).filter(|&c| c != r) {
                assert!((-0.5..0.5).contains(&a[(r, c)]));
            }
        }
    }

    #[test]
    fn tiles_match_the_dense_matrix_including_ragged_ones() {
        let tiling = Tiling::new(10, 4); // tiles of 4, 4, 2
        let a = dense(9, 10);
        for i in 0..3 {
            for j in 0..=i {
                let t = tile(9, &tiling, i, j);
                let view = faer::MatRef::from_column_major_slice(&t, tiling.rows(i), tiling.rows(j));
                let want = a.submatrix(tiling.offset(i), tiling.offset(j), tiling.rows(i), tiling.rows(j));
                assert_eq!(view, want, "tile ({i}, {j})");
            }
        }
    }
}
