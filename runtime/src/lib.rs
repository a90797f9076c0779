//! # dagwire-runtime
//!
//! The core of dagwire and the drivers that run it, kept visibly apart:
//!
//! - [`core`] (sans-IO): a task DAG ([`Dag`]), its placement ([`BlockCyclic2D`]), the
//!   per-rank [`Engine`] — a deterministic state machine with no I/O that is fed events
//!   and answers with [`Action`]s — the [`Strategy`] interface that transfer protocols
//!   implement, collectives, one-sided windows and trace records. Its modules are
//!   re-exported here (`dagwire_runtime::engine`, `dagwire_runtime::dag`, ...).
//! - [`drivers`]: thin adapters that execute the engine's actions: `local` (ranks as
//!   threads), `mpi` (cargo feature `mpi`) and the in-memory test harness.
//!
//! The same engine and strategies run under threads, MPI, libfabric and the simulator.

pub mod core;
pub mod drivers;

pub use crate::core::{
    collective, collectives, dag, engine, ids, kernel, message, one_sided, params, payload, placement, policies, rng,
    space, store, strategy, timer, trace,
};

pub use collective::{Capability, CollectiveJoin, CollectiveKind, Contribution};
pub use dag::{Added, Chunk, Dag, DagBuilder, Decision, DecisionId, Reader, Role, SlotSpec, Task, TaskSpec};
pub use drivers::{Fault, Progress, RunError, RunOutcome};
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
