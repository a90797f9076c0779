//! # dagwire-runtime
//!
//! The core of dagwire: a task DAG ([`Dag`]), its placement ([`BlockCyclic2D`]), the
//! per-rank [`Engine`] — a deterministic state machine with no I/O that is fed events
//! and answers with [`Action`]s — the [`Strategy`] interface that transfer protocols
//! implement, trace records, and the `local` driver (ranks as threads).
//!
//! Drivers are thin: they execute actions and feed results back. The same engine and
//! strategies run under threads, MPI, libfabric and the simulator.

pub mod collective;
pub mod dag;
pub mod driver;
pub mod engine;
pub mod ids;
pub mod kernel;
pub mod local;
pub mod message;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod one_sided;
pub mod params;
pub mod payload;
pub mod placement;
pub mod strategy;
pub mod testing;
pub mod trace;

pub use collective::{Capability, CollectiveJoin, CollectiveKind, Contribution};
pub use dag::{Added, Chunk, Dag, DagBuilder, Task, TaskSpec};
pub use driver::{Fault, Progress, RunError, RunOutcome};
pub use engine::{Action, Engine, EngineError};
pub use ids::{ChunkId, KernelId, Rank, TaskId};
pub use kernel::Kernels;
pub use message::{Message, MessageClass};
pub use one_sided::{WindowSpec, WindowSync};
pub use params::{ParamError, ParamKind, ParamSpec, ParamValue, Params};
pub use payload::Payload;
pub use placement::BlockCyclic2D;
pub use strategy::{Strategy, StrategyCtx, StrategyFactory};
pub use trace::{Trace, TraceLevel};
