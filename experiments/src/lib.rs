//! # dagwire-experiments
//!
//! The library behind the `experiment` command: sweep files ([`sweep`]), their
//! expansion into run points ([`plan`]), running them ([`runner`]) into a results
//! directory ([`results`]), the summary table ([`summary`]), the report
//! ([`report`]) and trace export ([`trace_export`]), listings ([`list`]),
//! benchmarks ([`bench`]), calibration ([`calibrate`]) and what-ifs ([`whatif`]). `main.rs` only parses the command line.

pub mod bench;
pub mod bench_collectives;
pub mod bench_fabric;
pub mod bench_mpi;
pub mod bench_sim;
pub mod calibrate;
pub mod drivers;
pub mod inputs;
pub mod launcher;
pub mod list;
pub mod plan;
pub mod point;
pub mod process;
pub mod progress;
pub mod report;
pub mod results;
pub mod runner;
pub mod summary;
pub mod sweep;
pub mod trace_export;
pub mod whatif;
