//! The kernels a workload provides. The runtime calls them; it never looks inside.

use crate::dag::Task;
use crate::payload::Payload;

/// Runs the kernels of one workload.
///
/// Inputs arrive in the order the task declared them. A [`Payload`] is shared
/// copy-on-write, so a kernel may update an input in place: its bytes are copied first
/// only if someone else still holds them (another reader, a message in flight).
///
/// ```
/// use dagwire_runtime::{Kernels, Payload, Task};
/// struct Double;
/// impl Kernels for Double {
///     fn run(&self, _task: &Task, mut inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
///         let mut p = inputs.pop().ok_or("no input")?;
///         p.as_f64_mut().iter_mut().for_each(|x| *x *= 2.0);
///         Ok(vec![p])
///     }
/// }
/// ```
pub trait Kernels: Send + Sync {
    /// Runs `task` on its inputs and returns its outputs, one per declared output chunk
    /// with exactly the declared size. An error names what went wrong (it fails the run).
    fn run(&self, task: &Task, inputs: Vec<Payload>) -> Result<Vec<Payload>, String>;

    /// The outputs of `task` when kernels are not run (a simulation with modelled
    /// compute), or `None` for phantoms of the declared sizes (the bounds, for outputs
    /// sized at run time). A workload whose run-time decisions or sizes depend on its
    /// data returns the small real outputs they need (a report of token counts, phantoms
    /// of the routed sizes) here; `inputs` may be phantoms. Default: `None`.
    fn modelled_outputs(&self, _task: &Task, _inputs: &[Payload]) -> Option<Vec<Payload>> {
        None
    }
}
