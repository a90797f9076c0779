//! The tile kernels (faer, sequential: parallelism comes from the DAG) and the
//! [`Kernels`] implementation that dispatches tasks to them.

use super::matrix::{self, Input};
use super::plan::{Kind, Shape};
use dagwire_runtime::{Kernels, Payload, Task};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// `C := A B` (`acc = false`) or `C := C + A B` for column-major `a` (`rows x depth`),
/// `b` (`depth x cols`) and `c` (`rows x cols`).
pub fn multiply(a: &[f64], b: &[f64], c: &mut [f64], (rows, depth, cols): (usize, usize, usize), acc: bool) {
    let a = MatRef::from_column_major_slice(a, rows, depth);
    let b = MatRef::from_column_major_slice(b, depth, cols);
    let c = MatMut::from_column_major_slice_mut(c, rows, cols);
    matmul(c, if acc { Accum::Add } else { Accum::Replace }, a, b, 1.0, Par::Seq);
}

/// The kernels of one GEMM instance: the shape gives every tile's size from the
/// task's `args = [i, j, l, accumulate]`, the seed drives generation.
#[derive(Clone, Debug)]
pub struct GemmKernels {
    /// Sizes and tile edge.
    pub shape: Shape,
    /// Seed of the inputs.
    pub seed: u64,
}

impl Kernels for GemmKernels {
    fn run(&self, task: &Task, mut inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        let kind = Kind::from_id(task.kernel).ok_or_else(|| format!("unknown gemm kernel {:?}", task.kernel))?;
        let [i, j, l, acc] = task.args.map(|a| a as usize);
        let s = &self.shape;
        let want = kind.inputs(acc == 1);
        if inputs.len() != want {
            return Err(format!("{} ({i},{j}) l={l} got {} inputs, expected {want}", kind.name(), inputs.len()));
        }
        let generate = |input, (r, c): (usize, usize), (rows, cols)| {
            Ok(vec![Payload::from_f64(matrix::block(self.seed, input, (r * s.tile, c * s.tile), (rows, cols)))])
        };
        let (rows, depth, cols) = (s.rows(i), s.depth(l), s.cols(j));
        match kind {
            Kind::GenA => generate(Input::A, (i, l), (rows, depth)),
            Kind::GenB => generate(Input::B, (l, j), (depth, cols)),
            Kind::GenC => generate(Input::C, (i, j), (rows, cols)),
            Kind::Multiply => {
                let mut c = if acc == 1 { inputs.pop().expect("counted").into_f64() } else { vec![0.0; rows * cols] };
                check(&c, rows * cols, "C", (i, j))?;
                let (a, b) = (inputs[0].as_f64(), inputs[1].as_f64());
                check(a, rows * depth, "A", (i, l))?;
                check(b, depth * cols, "B", (l, j))?;
                multiply(a, b, &mut c, (rows, depth, cols), acc == 1);
                Ok(vec![Payload::from_f64(c)])
            }
            Kind::Add => {
                let partial = inputs.pop().expect("counted");
                let mut c = inputs.pop().expect("counted").into_f64();
                check(&c, rows * cols, "C", (i, j))?;
                check(partial.as_f64(), rows * cols, "partial C", (i, j))?;
                c.iter_mut().zip(partial.as_f64()).for_each(|(x, y)| *x += y);
                Ok(vec![Payload::from_f64(c)])
            }
        }
    }
}

/// A wrong input size is a bug or a broken transport: report it instead of panicking in faer.
fn check(data: &[f64], want: usize, what: &str, (r, c): (usize, usize)) -> Result<(), String> {
    if data.len() == want { Ok(()) } else { Err(format!("{what}({r},{c}) has {} values, expected {want}", data.len())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiply_matches_naive_and_accumulates() {
        let (m, k, n) = (3, 4, 2);
        let a: Vec<f64> = (0..m * k).map(|x| x as f64 * 0.5 - 1.0).collect();
        let b: Vec<f64> = (0..k * n).map(|x| (x as f64).sin()).collect();
        let naive: Vec<f64> = (0..m * n).map(|x| (0..k).map(|q| a[q * m + x % m] * b[(x / m) * k + q]).sum()).collect();
        let mut c = vec![7.0; m * n];
        multiply(&a, &b, &mut c, (m, k, n), false);
        c.iter().zip(&naive).for_each(|(g, w)| assert!((g - w).abs() < 1e-12));
        multiply(&a, &b, &mut c, (m, k, n), true);
        c.iter().zip(&naive).for_each(|(g, w)| assert!((g - 2.0 * w).abs() < 1e-12));
    }
}
