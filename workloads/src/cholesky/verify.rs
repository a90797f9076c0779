//! The self-check: gather `L` from the result tiles, regenerate `A` from the seed,
//! and bound the scaled residual `||A - L L^T||_F / (||A||_F n eps)`.

use super::matrix;
use super::tiling::Tiling;
use crate::Verification;
use dagwire_runtime::{ChunkId, Payload};
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatRef, Par};
use std::collections::BTreeMap;

/// Largest scaled residual that passes.
///
/// LAPACK's own tests (`dpot01` through `dchkpo`) compute
/// `||L L^T - A||_1 / (n ||A||_1 eps)` and flag a result when that ratio reaches
/// `THRESH`, 30 in the shipped `dtest.in`; a backward-stable Cholesky gives ratios of
/// order 1. We use the Frobenius norm and `f64::EPSILON` (`2^-52`, twice LAPACK's
/// `dlamch('E')`, which halves our ratio), and a stricter bound of 16: a healthy run
/// stays far below it, while a single wrong high-order bit in any tile lands far above.
pub const RESIDUAL_BOUND: f64 = 16.0;

/// The name under which the residual is reported.
pub const METRIC: &str = "scaled_residual";

/// `||A - L L^T||_F / (||A||_F n eps)` for symmetric `A` (`n x n`) and lower triangular
/// `L` (only its lower triangle is read; only `A`'s lower triangle matters).
///
/// Only the lower triangle of `L L^T` is computed (half the flops); the Frobenius norm
/// of the symmetric residual counts each strictly-lower entry twice, which equals the
/// norm of the full symmetric reconstruction.
///
/// ```
/// use dagwire_workloads::cholesky::scaled_residual;
/// let a = faer::mat![[4.0, 2.0], [2.0, 5.0]];
/// let l = faer::mat![[2.0, 0.0], [1.0, 2.0]];
/// assert_eq!(scaled_residual(a.as_ref(), l.as_ref(), faer::Par::Seq), 0.0);
/// ```
pub fn scaled_residual(a: MatRef<'_, f64>, l: MatRef<'_, f64>, par: Par) -> f64 {
    let n = a.nrows();
    let mut r = a.to_owned();
    let (lower, upper) = (BlockStructure::TriangularLower, BlockStructure::TriangularUpper);
    triangular::matmul(r.as_mut(), lower, Accum::Add, l, lower, l.transpose(), upper, -1.0, par);
    let strict_sq: f64 = (0..n).map(|c| r.col(c).subrows(c + 1, n - c - 1).squared_norm_l2()).sum();
    let diag_sq: f64 = (0..n).map(|c| r[(c, c)] * r[(c, c)]).sum();
    let residual = (2.0 * strict_sq + diag_sq).sqrt();
    residual / (a.norm_l2() * n as f64 * f64::EPSILON)
}

/// Checks the result tiles of a run: `table` says which chunk holds which `L(i,j)`.
pub fn verify(
    tiling: Tiling,
    seed: u64,
    table: &[((usize, usize), ChunkId)],
    results: &BTreeMap<ChunkId, Payload>,
) -> Verification {
    let failed =
        |detail: String| Verification { passed: false, metric: METRIC, value: f64::NAN, bound: RESIDUAL_BOUND, detail };
    let l = match assemble(tiling, table, results) {
        Ok(l) => l,
        Err(detail) => return failed(detail),
    };
    let a = matrix::dense(seed, tiling.n);
    let value = scaled_residual(a.as_ref(), l.as_ref(), Par::rayon(0));
    let (n, tile) = (tiling.n, tiling.tile);
    let passed = value < RESIDUAL_BOUND; // false for NaN too
    let detail = if !value.is_finite() {
        format!("the residual is {value} (n = {n}, tile = {tile})")
    } else if passed {
        format!("||A - L L^T||_F / (||A||_F n eps) = {value:.3} < {RESIDUAL_BOUND} (n = {n}, tile = {tile})")
    } else {
        format!(
            "||A - L L^T||_F / (||A||_F n eps) = {value:.3e} >= {RESIDUAL_BOUND}: L is wrong (n = {n}, tile = {tile})"
        )
    };
    Verification { passed, metric: METRIC, value, bound: RESIDUAL_BOUND, detail }
}

/// The dense lower triangular `L` from the result tiles; an error names the first
/// missing or misshapen tile.
fn assemble(
    tiling: Tiling,
    table: &[((usize, usize), ChunkId)],
    results: &BTreeMap<ChunkId, Payload>,
) -> Result<Mat<f64>, String> {
    let mut l = Mat::<f64>::zeros(tiling.n, tiling.n);
    for &((i, j), chunk) in table {
        let payload =
            results.get(&chunk).ok_or_else(|| format!("result tile L({i},{j}) (chunk {chunk}) is missing"))?;
        let (rows, cols) = (tiling.rows(i), tiling.rows(j));
        if payload.len() != rows * cols * 8 {
            return Err(format!("result tile L({i},{j}) has {} bytes, expected {rows}x{cols} f64", payload.len()));
        }
        let values = payload.as_f64();
        // Checked here because a NaN must fail even where a norm routine might skip it.
        if let Some(x) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!("result tile L({i},{j}) holds {} at row {}, column {}", values[x], x % rows, x / rows));
        }
        let tile = MatRef::from_column_major_slice(values, rows, cols);
        let mut dst = l.as_mut().submatrix_mut(tiling.offset(i), tiling.offset(j), rows, cols);
        if i == j {
            dst.copy_from_triangular_lower(tile);
        } else {
            dst.copy_from(tile);
        }
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_is_small_for_a_true_factor_and_large_for_a_perturbed_one() {
        let n = 20;
        let a = matrix::dense(5, n);
        let mut l = a.clone();
        let llt = a.as_ref().llt(faer::Side::Lower).expect("SPD");
        l.copy_from(llt.L());
        assert!(scaled_residual(a.as_ref(), l.as_ref(), Par::Seq) < 1.0);
        l[(7, 3)] += 1e-9;
        assert!(scaled_residual(a.as_ref(), l.as_ref(), Par::Seq) > RESIDUAL_BOUND);
    }

    #[test]
    fn missing_tile_is_named() {
        let table = [((0, 0), ChunkId(0)), ((1, 0), ChunkId(3))];
        let results = BTreeMap::from([(ChunkId(0), Payload::from_f64(vec![1.0; 4]))]);
        let v = verify(Tiling::new(4, 2), 1, &table, &results);
        assert!(!v.passed);
        assert!(v.detail.contains("L(1,0)") && v.detail.contains("missing"), "{}", v.detail);
    }

    #[test]
    fn nan_fails() {
        let table = [((0, 0), ChunkId(0)), ((1, 0), ChunkId(1)), ((1, 1), ChunkId(2))];
        let tile = |v: f64| Payload::from_f64(vec![v]);
        let results = BTreeMap::from([(ChunkId(0), tile(1.0)), (ChunkId(1), tile(f64::NAN)), (ChunkId(2), tile(1.0))]);
        let v = verify(Tiling::new(2, 1), 1, &table, &results);
        assert!(!v.passed && v.detail.contains("L(1,0) holds NaN"), "{}", v.detail);
    }

    #[test]
    fn residual_propagates_nan() {
        let a = matrix::dense(1, 3);
        let mut l = Mat::<f64>::identity(3, 3);
        l[(2, 0)] = f64::NAN;
        assert!(scaled_residual(a.as_ref(), l.as_ref(), Par::Seq).is_nan());
        l[(2, 0)] = 0.0;
        l[(1, 1)] = f64::NAN;
        assert!(scaled_residual(a.as_ref(), l.as_ref(), Par::Seq).is_nan());
    }
}
