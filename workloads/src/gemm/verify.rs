//! The self-check: regenerate the inputs from the seed, multiply them on one rank
//! (faer's dense product, the reference), and bound the componentwise error of every
//! element of the distributed result.
//!
//! For a dot product of length `k` summed in any order, `|fl(s) - s| <= gamma_k sum
//! |a_q b_q|` with `gamma_k = k u / (1 - k u)` and `u = 2^-53` (Higham, *Accuracy and
//! Stability of Numerical Algorithms*, 2nd ed., eq. 3.5); adding the initial `C` is one
//! more rounding. The distributed result and the reference each stay within
//! `gamma_(k+1) (|A| |B| + |C0|)`, so they differ by at most about
//! `(k + 1) eps (|A| |B| + |C0|)` element by element (`eps = 2^-52 = 2 u`). The reported value is the largest
//! ratio of `|C - C_ref|` to that quantity; [`ERROR_BOUND`] is 2, twice the proven
//! bound to first order. Tile order, layers and faer's blocking change the rounding,
//! not the bound; a flipped mantissa bit anywhere lands orders of magnitude above it.

use super::matrix::{self, Input};
use super::plan::Shape;
use crate::Verification;
use dagwire_runtime::{ChunkId, Payload};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use std::collections::BTreeMap;

/// Largest accepted `max |C - C_ref| / ((k + 1) eps (|A| |B| + |C0|))`.
pub const ERROR_BOUND: f64 = 2.0;

/// The name under which the error is reported.
pub const METRIC: &str = "max_relative_error";

/// The reference `C0 + A B` (`C0 = 0` unless `accumulate`) and the scale
/// `(k + 1) eps (|A| |B| + |C0|)` of its rounding error, element by element.
pub fn reference(shape: Shape, seed: u64, accumulate: bool) -> (Mat<f64>, Mat<f64>) {
    let Shape { m, k, n, .. } = shape;
    let (a, b) = (matrix::dense(seed, Input::A, m, k), matrix::dense(seed, Input::B, k, n));
    let c0 = if accumulate { matrix::dense(seed, Input::C, m, n) } else { Mat::zeros(m, n) };
    let mut c = c0.clone();
    matmul(c.as_mut(), Accum::Add, a.as_ref(), b.as_ref(), 1.0, Par::rayon(0));
    let abs = |x: &Mat<f64>| Mat::from_fn(x.nrows(), x.ncols(), |r, c| x[(r, c)].abs());
    let mut scale = abs(&c0);
    matmul(scale.as_mut(), Accum::Add, abs(&a).as_ref(), abs(&b).as_ref(), 1.0, Par::rayon(0));
    let unit = (k + 1) as f64 * f64::EPSILON;
    (c, Mat::from_fn(m, n, |r, c| (scale[(r, c)] * unit).max(f64::MIN_POSITIVE)))
}

/// Checks the result tiles of a run: `table` says which chunk holds which `C(i,j)`.
pub fn verify(
    shape: Shape,
    seed: u64,
    accumulate: bool,
    table: &[((usize, usize), ChunkId)],
    results: &BTreeMap<ChunkId, Payload>,
) -> Verification {
    let failed = |detail| Verification { passed: false, metric: METRIC, value: f64::NAN, bound: ERROR_BOUND, detail };
    let (want, scale) = reference(shape, seed, accumulate);
    let mut worst = (0.0f64, 0, 0);
    for &((i, j), chunk) in table {
        let Some(payload) = results.get(&chunk) else {
            return failed(format!("result tile C({i},{j}) (chunk {chunk}) is missing"));
        };
        let (rows, cols) = (shape.rows(i), shape.cols(j));
        if payload.len() != rows * cols * 8 {
            return failed(format!("result tile C({i},{j}) has {} bytes, expected {rows}x{cols} f64", payload.len()));
        }
        for (x, &got) in payload.as_f64().iter().enumerate() {
            let (r, c) = (i * shape.tile + x % rows, j * shape.tile + x / rows);
            if !got.is_finite() {
                return failed(format!("C({r},{c}) is {got}"));
            }
            let ratio = (got - want[(r, c)]).abs() / scale[(r, c)];
            if ratio > worst.0 {
                worst = (ratio, r, c);
            }
        }
    }
    let (value, r, c) = worst;
    let Shape { m, k, n, tile } = shape;
    let passed = value <= ERROR_BOUND;
    let detail = if passed {
        format!(
            "max |C - C_ref| / ((k+1) eps (|A||B|+|C0|)) = {value:.3} <= {ERROR_BOUND} (m={m} k={k} n={n} tile={tile})"
        )
    } else {
        format!(
            "C({r},{c}) is off by {value:.3e} times its rounding bound (> {ERROR_BOUND}): C is wrong (m={m} k={k} n={n} tile={tile})"
        )
    };
    Verification { passed, metric: METRIC, value, bound: ERROR_BOUND, detail }
}
