//! `least-loaded`: longest-processing-time-first greedy over the reported loads. Slots
//! with one candidate go there first (their load counts for that rank); then the
//! others, heaviest first (ties: lower slot index), each to the candidate with the
//! least load so far (its reported base load plus the slots it already got; ties: the
//! candidate declared first). Deterministic, so every rank decides alike.

use super::{DecisionInput, PlacementPolicy};
use crate::ids::Rank;

/// LPT greedy: the heaviest slot first, each to its least-loaded candidate.
#[derive(Debug)]
pub struct LeastLoaded;

impl PlacementPolicy for LeastLoaded {
    fn name(&self) -> &'static str {
        "least-loaded"
    }
    fn summary(&self) -> &'static str {
        "heaviest slot first, each to the candidate with the least reported plus assigned load"
    }
    fn decide(&self, input: &DecisionInput<'_>, _rank: Rank, out: &mut Vec<Rank>) {
        let mut load: Vec<u64> = input.base.to_vec();
        load.resize(input.ranks, 0);
        let start = out.len();
        out.resize(start + input.slots.len(), Rank(0));
        for (i, slot) in input.slots.iter().enumerate().filter(|(_, s)| s.candidates.len() == 1) {
            load[slot.candidates[0].index()] += slot.load;
            out[start + i] = slot.candidates[0];
        }
        let mut order: Vec<usize> = (0..input.slots.len()).filter(|&i| input.slots[i].candidates.len() > 1).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(input.slots[i].load), i));
        for i in order {
            let slot = &input.slots[i];
            let pick = *slot.candidates.iter().min_by_key(|c| load[c.index()]).expect("a slot has candidates");
            load[pick.index()] += slot.load;
            out[start + i] = pick;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policies::SlotView;

    #[test]
    fn heavy_slots_spread_over_the_candidates_and_avoid_a_loaded_rank() {
        let c = [Rank(0), Rank(1), Rank(2)];
        let slot = |load| SlotView { report: 0, source: Rank(0), candidates: &c, load };
        let slots = [slot(10), slot(10), slot(1), slot(10)];
        let mut out = Vec::new();
        // Rank 2 already carries 15: the heavy slots (0, 1, 3) go to 0, 1, then 0 (0 and 1
        // tie at 10, below 2's 15); the light one to 1 (10, against 20 and 15).
        LeastLoaded.decide(&DecisionInput { ranks: 3, base: &[0, 0, 15], slots: &slots }, Rank(0), &mut out);
        assert_eq!(out, vec![Rank(0), Rank(1), Rank(1), Rank(0)]);
    }
}
