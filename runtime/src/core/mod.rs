//! The sans-IO core: everything here is a deterministic function of its inputs. No
//! module reads a clock, touches a thread, a socket or MPI; time is an argument.
//!
//! - [`dag`], [`ids`], [`placement`], [`policies`]: the task DAG every rank builds alike,
//!   where its tasks run, and the policies that place tasks during the run;
//! - [`payload`], [`message`], [`kernel`]: the bytes that move, the messages that carry
//!   them, and the kernels a workload provides;
//! - [`engine`]: the per-rank state machine, fed events and answering with actions, and
//!   [`store`], the chunks it holds for its tasks;
//! - [`strategy`]: the interface transfer protocols implement;
//! - [`collective`], [`one_sided`]: what a strategy may ask every rank to do together,
//!   and one-sided windows;
//! - [`collectives`]: the collective algorithms as per-rank state machines that turn a
//!   join into point-to-point pieces (what the local driver, the simulator and the test
//!   harness run);
//! - [`params`]: typed, checked parameters of every registered component;
//! - [`rng`]: the run's one seeded random source (per-consumer streams, the counter hash);
//! - [`space`]: memory spaces (host, device), where chunks live and when they move between them;
//! - [`timer`]: timers strategies set, fired by the engine when the driver says the time came;
//! - [`trace`]: the records every run writes.
//!
//! The drivers that execute the engine's actions live apart, in [`crate::drivers`].

pub mod collective;
pub mod collectives;
pub mod dag;
pub mod engine;
pub mod ids;
pub mod kernel;
pub mod message;
pub mod one_sided;
pub mod params;
pub mod payload;
pub mod placement;
pub mod policies;
pub mod rng;
pub mod space;
pub mod store;
pub mod strategy;
pub mod timer;
pub mod trace;
