//! `spread`: slots split evenly between their candidates by source, without looking at
//! loads (FasterMoE-style shadowing of replicated experts: each source rank's share
//! goes to one replica, in turn).

use super::{DecisionInput, PlacementPolicy};
use crate::ids::Rank;

/// Slot of source `s` on candidate `s mod candidates`.
#[derive(Debug)]
pub struct Spread;

impl PlacementPolicy for Spread {
    fn name(&self) -> &'static str {
        "spread"
    }
    fn summary(&self) -> &'static str {
        "each slot on candidate (source rank mod candidates): replicas share the sources evenly, loads unread"
    }
    fn decide(&self, input: &DecisionInput<'_>, _rank: Rank, out: &mut Vec<Rank>) {
        out.extend(input.slots.iter().map(|s| s.candidates[s.source.index() % s.candidates.len()]));
    }
}
