//! Run-time placement policies: how a decision made during the run picks, for each of
//! its slots, one rank among the slot's candidates.
//!
//! # How run-time placement works
//! A workload declares a decision with [`crate::DagBuilder::add_decision`]: a policy, a
//! list of *report* chunks (small chunks ordinary tasks produce during the run, for
//! example each rank's token counts) and *slots*, each with the report that carries its
//! load and its candidate ranks. On every rank that needs the outcome it adds a
//! *decide* task ([`crate::DagBuilder::add_decide`]) that reads every report: the
//! strategy in use moves the reports (the small counts exchange every MoE system does
//! before its dispatch), and once they are all present the engine itself runs the
//! policy (no kernel, no worker: the same code on every driver) and produces the
//! decision chunk, one little-endian `u32` rank per slot ([`read_decision`]).
//!
//! A task placed at run time exists once per candidate (a *shadow*, owned by that
//! candidate, declared with [`crate::TaskSpec::placed`]); the engine runs the shadow
//! the decision picked and completes the others at once with empty outputs, without
//! their kernel. Producers route each slot's data to the picked shadow (a kernel reads
//! the decision chunk) and send empty run-time-sized chunks to the others. Every
//! strategy and driver runs this unchanged, as the DAG's owners stay fixed.
//!
//! Decisions are checked, not trusted: [`crate::DagBuilder::add_decision_check`] adds,
//! on every rank, a task comparing its decision with the next rank's, and an inactive
//! shadow that receives data fails; either way a policy that decides differently on two
//! ranks stops the run with [`crate::EngineError::Placement`], naming both.
//!
//! # Reports
//! Report `i` holds little-endian `u64`s: first its producer rank's *base load* (work
//! already assigned to it, in any unit the slots use), then the load of each slot whose
//! report is `i`, in slot order. The engine checks the length.
//!
//! # Adding a policy
//! One file implementing [`PlacementPolicy`] and one line in [`REGISTRY`].

mod first;
mod least_loaded;
mod spread;

pub use first::First;
pub use least_loaded::LeastLoaded;
pub use spread::Spread;

use crate::ids::Rank;
use crate::params::did_you_mean;
use crate::payload::Payload;
use std::fmt;

/// One slot of a decision as a policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotView<'a> {
    /// Index of the report that carries this slot's load.
    pub report: u32,
    /// The rank that produced that report.
    pub source: Rank,
    /// Ranks that may run the slot, in declared order (never empty).
    pub candidates: &'a [Rank],
    /// The slot's load, from its report.
    pub load: u64,
}

/// Everything a policy may base a decision on; the same on every rank.
#[derive(Debug)]
pub struct DecisionInput<'a> {
    /// Ranks in the run.
    pub ranks: usize,
    /// Base load of each rank (the sum of the base loads its reports carry).
    pub base: &'a [u64],
    /// The slots, in declared order.
    pub slots: &'a [SlotView<'a>],
}

/// A run-time placement policy: a pure function from what the ranks reported to one
/// candidate per slot. It must decide the same on every rank from the same input;
/// the run checks that it did.
pub trait PlacementPolicy: Send + Sync {
    /// The registered name.
    fn name(&self) -> &'static str;
    /// One line on what it decides.
    fn summary(&self) -> &'static str;
    /// Pushes one rank per slot of `input`, in slot order, each one of the slot's
    /// candidates. `rank` is the rank deciding: a correct policy ignores it (it is
    /// there so tests can build a policy that decides differently on each rank).
    fn decide(&self, input: &DecisionInput<'_>, rank: Rank, out: &mut Vec<Rank>);
}

/// A policy as a DAG holds it: compared and printed by name.
#[derive(Clone, Copy)]
pub struct Policy(pub &'static dyn PlacementPolicy);

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl PartialEq for Policy {
    fn eq(&self, other: &Policy) -> bool {
        self.0.name() == other.0.name()
    }
}

/// Every registered policy. Adding one is a file plus one line here.
pub static REGISTRY: &[&dyn PlacementPolicy] = &[&First, &Spread, &LeastLoaded];

/// Looks a policy up by name; the error lists the known ones (and the closest).
///
/// ```
/// assert_eq!(dagwire_runtime::policies::find("least-loaded").unwrap().name(), "least-loaded");
/// let err = dagwire_runtime::policies::find("least-load").err().unwrap();
/// assert!(err.contains("did you mean `least-loaded`"), "{err}");
/// ```
pub fn find(name: &str) -> Result<&'static dyn PlacementPolicy, String> {
    REGISTRY.iter().copied().find(|p| p.name() == name).ok_or_else(|| {
        let hint = did_you_mean(name, REGISTRY.iter().map(|p| p.name()))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let known: Vec<&str> = REGISTRY.iter().map(|p| p.name()).collect();
        format!("unknown placement policy `{name}`{hint}; known policies: {}", known.join(", "))
    })
}

/// The ranks a decision chunk holds, one per slot.
///
/// ```
/// use dagwire_runtime::{Payload, Rank};
/// let chunk = Payload::from_bytes(&[1, 0, 0, 0, 0, 0, 0, 0]);
/// assert_eq!(dagwire_runtime::policies::read_decision(&chunk), vec![Rank(1), Rank(0)]);
/// ```
pub fn read_decision(chunk: &Payload) -> Vec<Rank> {
    chunk.as_bytes().chunks_exact(4).map(|b| Rank(u32::from_le_bytes(b.try_into().expect("4 bytes")))).collect()
}

/// A decision as its chunk holds it.
pub fn write_decision(ranks: &[Rank]) -> Payload {
    let bytes: Vec<u8> = ranks.iter().flat_map(|r| r.0.to_le_bytes()).collect();
    Payload::from_bytes(&bytes)
}

/// A report chunk: `base` load, then each slot's load.
///
/// ```
/// use dagwire_runtime::policies::{read_report, write_report};
/// assert_eq!(read_report(&write_report(3, &[5, 7])), vec![3, 5, 7]);
/// ```
pub fn write_report(base: u64, loads: &[u64]) -> Payload {
    let bytes: Vec<u8> = std::iter::once(base).chain(loads.iter().copied()).flat_map(u64::to_le_bytes).collect();
    Payload::from_bytes(&bytes)
}

/// The `u64`s of a report chunk.
pub fn read_report(chunk: &Payload) -> Vec<u64> {
    chunk.as_bytes().chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(base: &'a [u64], slots: &'a [SlotView<'a>]) -> DecisionInput<'a> {
        DecisionInput { ranks: base.len(), base, slots }
    }

    #[test]
    fn every_policy_picks_a_candidate_per_slot() {
        let c = [Rank(1), Rank(2)];
        let slots: Vec<SlotView> =
            (0..6).map(|i| SlotView { report: i % 3, source: Rank(i % 3), candidates: &c, load: i as u64 }).collect();
        for p in REGISTRY {
            let mut out = Vec::new();
            p.decide(&input(&[0, 0, 0], &slots), Rank(0), &mut out);
            assert_eq!(out.len(), slots.len(), "{}", p.name());
            assert!(out.iter().all(|r| c.contains(r)), "{}: {out:?}", p.name());
            let mut again = Vec::new();
            p.decide(&input(&[0, 0, 0], &slots), Rank(2), &mut again);
            assert_eq!(out, again, "{} decides the same on every rank", p.name());
        }
    }
}
