//! The tile kernels (faer, sequential: parallelism comes from the DAG) and the
//! [`Kernels`] implementation that dispatches tasks to them.
//!
//! Tiles are column-major `f64` slices viewed in place by faer, never copied (a
//! finished tile that is also a result is copied once by the first update that
//! writes it, since the run keeps the result).

use super::matrix;
use super::plan::Kind;
use super::tiling::Tiling;
use dagwire_runtime::{Kernels, Payload, Task};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{LltError, cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::matmul::triangular::BlockStructure;
use faer::linalg::matmul::{matmul, triangular};
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Accum, MatMut, MatRef, Par};

/// POTRF: overwrites the lower triangle of the `b x b` tile `a` with its Cholesky
/// factor `L` and zeroes the strict upper triangle, so the tile holds exactly `L`.
///
/// # Errors
/// If the tile is not positive definite (a non-positive or NaN pivot).
pub fn potrf(a: &mut [f64], b: usize) -> Result<(), String> {
    let view = MatMut::from_column_major_slice_mut(a, b, b);
    let mut scratch = MemBuffer::new(cholesky_in_place_scratch::<f64>(b, Par::Seq, Default::default()));
    let stack = MemStack::new(&mut scratch);
    cholesky_in_place(view, Default::default(), Par::Seq, stack, Default::default()).map_err(
        |LltError::NonPositivePivot { index }| {
            format!("the {b}x{b} diagonal tile is not positive definite: pivot {index} is not positive (or NaN)")
        },
    )?;
    for c in 1..b {
        a[c * b..c * b + c].fill(0.0);
    }
    Ok(())
}

/// TRSM: `A := A L^-T` for the `m x b` tile `a` and the `b x b` lower triangular `l`
/// (only its lower triangle is read).
///
/// faer solves from the left only, so this solves `L X^T = A^T` on the transposed
/// view of `a` — a stride change, not a copy.
pub fn trsm(l: &[f64], b: usize, a: &mut [f64], m: usize) {
    let l = MatRef::from_column_major_slice(l, b, b);
    let a = MatMut::from_column_major_slice_mut(a, m, b);
    solve_lower_triangular_in_place(l, a.transpose_mut(), Par::Seq);
}

/// SYRK: `A := A - L L^T` on the lower triangle of the `m x m` tile `a`, with `l`
/// of `m x kk`. The strict upper triangle of `a` is not touched.
pub fn syrk(l: &[f64], m: usize, kk: usize, a: &mut [f64]) {
    let l = MatRef::from_column_major_slice(l, m, kk);
    let a = MatMut::from_column_major_slice_mut(a, m, m);
    let rect = BlockStructure::Rectangular;
    triangular::matmul(a, BlockStructure::TriangularLower, Accum::Add, l, rect, l.transpose(), rect, -1.0, Par::Seq);
}

/// GEMM: `A := A - Li Lj^T` for the `m x p` tile `a`, `li` of `m x kk`, `lj` of `p x kk`.
pub fn gemm(li: &[f64], lj: &[f64], m: usize, p: usize, kk: usize, a: &mut [f64]) {
    let li = MatRef::from_column_major_slice(li, m, kk);
    let lj = MatRef::from_column_major_slice(lj, p, kk);
    let a = MatMut::from_column_major_slice_mut(a, m, p);
    matmul(a, Accum::Add, li, lj.transpose(), -1.0, Par::Seq);
}

/// The kernels of one Cholesky instance: the tiling gives every tile's shape from
/// the task's `args = [i, j, k, 0]`, the seed drives GEN.
#[derive(Clone, Debug)]
pub struct CholeskyKernels {
    /// The tile grid.
    pub tiling: Tiling,
    /// Seed of the input matrix.
    pub seed: u64,
}

impl Kernels for CholeskyKernels {
    fn run(&self, task: &Task, mut inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        let kind = Kind::from_id(task.kernel).ok_or_else(|| format!("unknown cholesky kernel {:?}", task.kernel))?;
        let [i, j, k, _] = task.args.map(|a| a as usize);
        let want_inputs = kind.inputs();
        if inputs.len() != want_inputs {
            return Err(format!("{} ({i},{j}) k={k} got {} inputs, expected {want_inputs}", kind.name(), inputs.len()));
        }
        if kind == Kind::Gen {
            return Ok(vec![Payload::from_f64(matrix::tile(self.seed, &self.tiling, i, j))]);
        }
        // The tile being updated is always the last input: take it, in place when unshared.
        let mut a = inputs.pop().expect("counted above").into_f64();
        self.check_len("updated tile", &a, i, j)?;
        self.update(kind, [i, j, k], &inputs, &mut a)?;
        Ok(vec![Payload::from_f64(a)])
    }
}

impl CholeskyKernels {
    /// Applies one non-GEN kernel to tile `(i, j)` at step `k`; `l` holds the read-only inputs.
    fn update(&self, kind: Kind, [i, j, k]: [usize; 3], l: &[Payload], a: &mut [f64]) -> Result<(), String> {
        let t = &self.tiling;
        let (m, p, kk) = (t.rows(i), t.rows(j), t.rows(k));
        let l0 = l.first().map(|x| x.as_f64()).unwrap_or_default();
        match kind {
            Kind::Potrf => potrf(a, m).map_err(|e| format!("potrf of tile ({i},{i}): {e}"))?,
            Kind::Trsm => {
                self.check_len("L(k,k)", l0, k, k)?;
                trsm(l0, kk, a, m);
            }
            Kind::Syrk => {
                self.check_len("L(i,k)", l0, i, k)?;
                syrk(l0, m, kk, a);
            }
            Kind::Gemm => {
                let l1 = l[1].as_f64();
                self.check_len("L(i,k)", l0, i, k)?;
                self.check_len("L(j,k)", l1, j, k)?;
                gemm(l0, l1, m, p, kk, a);
            }
            Kind::Gen => unreachable!("GEN has no tile to update"),
        }
        Ok(())
    }

    /// A wrong input size is a bug or a broken transport: report it instead of panicking in faer.
    fn check_len(&self, what: &str, data: &[f64], i: usize, j: usize) -> Result<(), String> {
        let want = self.tiling.elements(i, j);
        if data.len() == want {
            Ok(())
        } else {
            Err(format!("{what} for tile ({i},{j}) has {} values, expected {want}", data.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small tile with distinct, non-symmetric values (column-major `rows x cols`).
    fn sample(rows: usize, cols: usize, salt: f64) -> Vec<f64> {
        (0..rows * cols).map(|x| ((x as f64 + salt) * 0.37).sin()).collect()
    }

    /// Naive `C[r][c] = sum_q A[r][q] B[c][q]` for column-major `A` (`m x kk`), `B` (`p x kk`).
    fn naive_abt(a: &[f64], b: &[f64], m: usize, p: usize, kk: usize) -> Vec<f64> {
        let mut out = vec![0.0; m * p];
        for c in 0..p {
            for r in 0..m {
                out[c * m + r] = (0..kk).map(|q| a[q * m + r] * b[q * p + c]).sum();
            }
        }
        out
    }

    fn assert_close(got: &[f64], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len());
        for (x, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{what}[{x}]: got {g}, want {w}");
        }
    }

    #[test]
    fn gemm_matches_naive() {
        let (m, p, kk) = (5, 3, 4);
        let (li, lj, mut a) = (sample(m, kk, 0.0), sample(p, kk, 9.0), sample(m, p, 2.0));
        let prod = naive_abt(&li, &lj, m, p, kk);
        let want: Vec<f64> = a.iter().zip(&prod).map(|(a, p)| a - p).collect();
        gemm(&li, &lj, m, p, kk, &mut a);
        assert_close(&a, &want, "gemm");
    }

    #[test]
    fn syrk_updates_only_the_lower_triangle() {
        let (m, kk) = (6, 3);
        let (l, mut a) = (sample(m, kk, 1.0), sample(m, m, 4.0));
        let before = a.clone();
        let prod = naive_abt(&l, &l, m, m, kk);
        syrk(&l, m, kk, &mut a);
        for c in 0..m {
            for r in 0..m {
                let x = c * m + r;
                let want = if r >= c { before[x] - prod[x] } else { before[x] };
                assert!((a[x] - want).abs() < 1e-12, "syrk at ({r}, {c}): got {}, want {want}", a[x]);
            }
        }
    }

    #[test]
    fn potrf_then_trsm_match_naive() {
        let b = 7;
        let a0 = matrix::tile(3, &Tiling::new(b, b), 0, 0);
        let mut l = a0.clone();
        potrf(&mut l, b).unwrap();
        assert_close(&naive_abt(&l, &l, b, b, b), &a0, "L L^T");
        assert!((0..b).all(|c| (0..c).all(|r| l[c * b + r] == 0.0)), "upper triangle not zeroed");
        // TRSM: X L^T must give back the right-hand side.
        let m = 4;
        let rhs = sample(m, b, 5.0);
        let mut x = rhs.clone();
        trsm(&l, b, &mut x, m);
        assert_close(&naive_abt(&x, &l, m, b, b), &rhs, "X L^T");
    }

    #[test]
    fn potrf_refuses_an_indefinite_tile() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0]; // eigenvalues 3 and -1
        let err = potrf(&mut a, 2).unwrap_err();
        assert!(err.contains("not positive definite"), "{err}");
        let mut nan = vec![f64::NAN];
        assert!(potrf(&mut nan, 1).is_err());
    }
}
