//! # dagwire-sim
//!
//! The discrete-event simulator: one event queue in virtual nanoseconds, a LogGP-family
//! network model over real topologies, a compute model, machine files, and the `sim`
//! driver that runs every rank's [`dagwire_runtime::Engine`] in virtual time, registered
//! as [`DRIVER`].

pub mod compute;
pub mod device;
pub mod driver;
pub mod machine;
pub mod network;
pub mod queue;
pub mod registry;

pub use registry::DRIVER;
