//! `first`: every slot on its first candidate (a static placement, decided at run time
//! only in form: the baseline the others are compared with).

use super::{DecisionInput, PlacementPolicy};
use crate::ids::Rank;

/// Every slot on its first candidate.
#[derive(Debug)]
pub struct First;

impl PlacementPolicy for First {
    fn name(&self) -> &'static str {
        "first"
    }
    fn summary(&self) -> &'static str {
        "every slot on its first candidate (static)"
    }
    fn decide(&self, input: &DecisionInput<'_>, _rank: Rank, out: &mut Vec<Rank>) {
        out.extend(input.slots.iter().map(|s| s.candidates[0]));
    }
}
