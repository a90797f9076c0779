//! The kernels a workload provides. The runtime calls them; it never looks inside.

use crate::dag::Task;
use crate::payload::Payload;
use std::sync::Arc;

/// Runs the kernels of one workload.
///
/// Inputs arrive as shared chunks in the order the task declared them. A kernel that
/// updates a tile in place takes it with [`take`], which moves the bytes when no one
/// else holds the chunk and copies them otherwise, so in-place updates are safe.
///
/// ```
/// use dagwire_runtime::{kernel::take, Kernels, Payload, Task};
/// use std::sync::Arc;
/// struct Double;
/// impl Kernels for Double {
///     fn run(&self, _task: &Task, mut inputs: Vec<Arc<Payload>>) -> Result<Vec<Payload>, String> {
///         let mut p = take(inputs.pop().ok_or("no input")?);
///         p.as_f64_mut().iter_mut().for_each(|x| *x *= 2.0);
///         Ok(vec![p])
///     }
/// }
/// ```
pub trait Kernels: Send + Sync {
    /// Runs `task` on its inputs and returns its outputs, one per declared output chunk
    /// with exactly the declared size. An error names what went wrong (it fails the run).
    fn run(&self, task: &Task, inputs: Vec<Arc<Payload>>) -> Result<Vec<Payload>, String>;
}

/// The payload of a shared chunk, moved out if this is the last reference, copied otherwise.
pub fn take(chunk: Arc<Payload>) -> Payload {
    Arc::try_unwrap(chunk).unwrap_or_else(|shared| (*shared).clone())
}
