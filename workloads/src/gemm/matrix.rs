//! The inputs `A` (`m x k`), `B` (`k x n`) and, for `C += A B`, the initial `C`
//! (`m x n`): uniform in `[-0.5, 0.5)`, each element the runtime's counter hash of
//! `(seed, matrix, row, column)`, so any tile is generated alone on the rank that
//! owns it, and the verifier regenerates the same matrices whole.

use dagwire_runtime::rng;
use faer::Mat;

/// Which input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The left factor, `m x k`.
    A = 0,
    /// The right factor, `k x n`.
    B = 1,
    /// The initial `C` of `C += A B`, `m x n`.
    C = 2,
}

/// Element `(r, c)` of `input` for `seed`.
///
/// ```
/// use dagwire_workloads::gemm::matrix::{Input, element};
/// assert_eq!(element(3, Input::A, 2, 5), element(3, Input::A, 2, 5));
/// assert_ne!(element(3, Input::A, 2, 5), element(3, Input::B, 2, 5));
/// assert!((-0.5..0.5).contains(&element(3, Input::C, 7, 1)));
/// ```
pub fn element(seed: u64, input: Input, r: usize, c: usize) -> f64 {
    let stream = rng::derive(seed, rng::stream::user(0x6e6d_0000 | input as u32));
    rng::unit(rng::hash(rng::derive(stream, r as u64) ^ c as u64)) - 0.5
}

/// The `rows x cols` block of `input` whose first element is `(r0, c0)`, column-major.
pub fn block(seed: u64, input: Input, (r0, c0): (usize, usize), (rows, cols): (usize, usize)) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * cols);
    for c in c0..c0 + cols {
        out.extend((r0..r0 + rows).map(|r| element(seed, input, r, c)));
    }
    out
}

/// The whole `rows x cols` input, for the reference product.
pub fn dense(seed: u64, input: Input, rows: usize, cols: usize) -> Mat<f64> {
    Mat::from_fn(rows, cols, |r, c| element(seed, input, r, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_match_the_dense_matrix() {
        let a = dense(9, Input::B, 10, 7);
        let blk = block(9, Input::B, (4, 3), (6, 4));
        let view = faer::MatRef::from_column_major_slice(&blk, 6, 4);
        assert_eq!(view, a.submatrix(4, 3, 6, 4));
        assert_ne!(dense(10, Input::B, 10, 7), a, "the seed must change the matrix");
    }
}
