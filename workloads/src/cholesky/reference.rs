//! The baseline the DAG runtime is compared against: the same matrix factored by
//! faer's own dense, multithreaded Cholesky in one call.

use super::matrix;
use super::verify::scaled_residual;
use faer::Par;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use std::time::Instant;

/// The outcome of [`reference_cholesky`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReferenceRun {
    /// Wall time of the factorisation alone (not generation, not the check).
    pub seconds: f64,
    /// `||A - L L^T||_F / (||A||_F n eps)`, as the workload's verification computes it.
    pub scaled_residual: f64,
}

/// Factors the `n x n` Cholesky input for `seed` with faer's dense `cholesky_in_place`
/// on `threads` threads of the global rayon pool (0: all of them; 1: sequential).
///
/// # Errors
/// If the factorisation fails (it cannot for this matrix unless something is broken).
///
/// ```
/// let run = dagwire_workloads::cholesky::reference_cholesky(64, 1, 1).unwrap();
/// assert!(run.scaled_residual < dagwire_workloads::cholesky::RESIDUAL_BOUND);
/// ```
pub fn reference_cholesky(n: usize, seed: u64, threads: usize) -> Result<ReferenceRun, String> {
    let par = if threads == 1 { Par::Seq } else { Par::rayon(threads) };
    let a = matrix::dense(seed, n);
    let mut l = a.clone();
    let mut scratch = MemBuffer::new(cholesky_in_place_scratch::<f64>(n, par, Default::default()));
    let start = Instant::now();
    cholesky_in_place(l.as_mut(), Default::default(), par, MemStack::new(&mut scratch), Default::default())
        .map_err(|e| format!("faer's dense Cholesky failed on the {n}x{n} input: {e}"))?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(ReferenceRun { seconds, scaled_residual: scaled_residual(a.as_ref(), l.as_ref(), par) })
}
