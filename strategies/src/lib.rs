//! # dagwire-strategies
//!
//! Transfer strategies: each is a protocol state machine, one file each, that moves
//! chunks from producer to reader ranks using only the engine's actions, so it runs
//! unchanged on every driver. [`REGISTRY`] lists them; it drives sweep validation,
//! `experiment list` and "did you mean" hints.
//!
//! ```
//! let eager = dagwire_strategies::find("eager").unwrap();
//! assert_eq!(eager.name, "eager");
//! assert!(dagwire_strategies::find("eagr").unwrap_err().to_string().contains("did you mean `eager`"));
//! ```

pub mod batched;
pub mod dagger;
pub mod eager;
pub mod fabric;
pub mod parsec;
pub mod rendezvous;
pub mod rma;
pub mod starpu;

use dagwire_runtime::params::did_you_mean;
use dagwire_runtime::rng::{self, SeededRng, stream};
use dagwire_runtime::{Capability, Dag, ParamError, ParamSpec, ParamValue, Params, Rank, Strategy};
use std::sync::Arc;

/// A strategy's plan of one run: what it derived from the whole DAG, computed once and
/// shared read-only (behind an `Arc`) by every rank's instance, which this builds for a
/// rank, with the rank's own random stream, in time and memory of the order of what
/// that rank owns and reads.
pub type Planned = Box<dyn Fn(Rank, SeededRng) -> Box<dyn Strategy> + Send + Sync>;

/// One registered strategy.
#[derive(Debug)]
pub struct StrategyInfo {
    /// Name used in sweep files.
    pub name: &'static str,
    /// One line on the protocol.
    pub summary: &'static str,
    /// Parameters a sweep may set (as `<name>.<param>`).
    pub params: fn() -> Vec<ParamSpec>,
    /// What the strategy needs from a driver with checked `params`: known without a DAG,
    /// so a sweep refuses a strategy a driver cannot serve before building anything.
    pub needs: fn(params: &Params) -> &'static [Capability],
    /// Plans a run of `dag` with checked `params`, once for all ranks. Call it through
    /// [`StrategyInfo::factory`], which also hands each rank its random stream.
    pub plan: fn(params: &Params, dag: &Arc<Dag>) -> Planned,
}

impl StrategyInfo {
    /// The per-rank factory a driver takes, for checked `params` and the run's `dag` and
    /// `seed`: plans once, here, and then builds rank `r`'s instance with the random
    /// stream [`stream::strategy`]`(r)` of `seed` ([`rank_rng`]).
    pub fn factory(
        &'static self,
        params: &Params,
        dag: &Arc<Dag>,
        seed: u64,
    ) -> impl Fn(Rank) -> Box<dyn Strategy> + Sync + use<> {
        let planned = (self.plan)(params, dag);
        move |rank| planned(rank, rank_rng(seed, rank))
    }

    /// [`StrategyInfo::factory`] for values written inline (defaults for the rest).
    ///
    /// ```
    /// use dagwire_runtime::{DagBuilder, KernelId, ParamValue, Rank, TaskSpec};
    /// use std::sync::Arc;
    /// let mut b = DagBuilder::new(2);
    /// b.add(TaskSpec::new(KernelId(0), Rank(1)).outputs(&[8]));
    /// let dag = Arc::new(b.finish());
    /// let rdv = dagwire_strategies::find("rendezvous").unwrap();
    /// let factory = rdv.factory_with(&[("eager_limit", ParamValue::Int(4096))], &dag, 1).unwrap();
    /// assert_eq!(factory(Rank(0)).name(), "rendezvous");
    /// ```
    pub fn factory_with(
        &'static self,
        given: &[(&str, ParamValue)],
        dag: &Arc<Dag>,
        seed: u64,
    ) -> Result<impl Fn(Rank) -> Box<dyn Strategy> + Sync + use<>, ParamError> {
        Ok(self.factory(&Params::from_pairs(&(self.params)(), given)?, dag, seed))
    }

    /// What the strategy needs with its parameters set by `given` (defaults for the rest).
    ///
    /// ```
    /// use dagwire_runtime::{Capability, ParamValue};
    /// let rma = dagwire_strategies::find("rma").unwrap();
    /// assert_eq!(rma.needs_with(&[("sync", ParamValue::Str("fence".into()))]).unwrap(), &[Capability::OneSidedFence]);
    /// ```
    pub fn needs_with(&self, given: &[(&str, ParamValue)]) -> Result<&'static [Capability], ParamError> {
        Ok((self.needs)(&Params::from_pairs(&(self.params)(), given)?))
    }
}

/// Rank `rank`'s random stream in a run seeded `seed`: the same in every run with that
/// seed, another for every rank.
pub fn rank_rng(seed: u64, rank: Rank) -> SeededRng {
    rng::rng(seed, stream::strategy(rank))
}

/// Every strategy, in the order `experiment list` shows them. Adding a strategy is one
/// file plus one line here.
pub static REGISTRY: &[StrategyInfo] =
    &[eager::INFO, rendezvous::INFO, batched::INFO, rma::INFO, fabric::INFO, dagger::INFO, parsec::INFO, starpu::INFO];

/// A strategy name that is not registered.
#[derive(Debug, thiserror::Error)]
#[error("unknown strategy `{given}`{}; known strategies: {}", .suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(), .known.join(", "))]
pub struct UnknownStrategy {
    /// What was asked for.
    pub given: String,
    /// The closest known name, if close.
    pub suggestion: Option<&'static str>,
    /// All names.
    pub known: Vec<&'static str>,
}

/// Looks a strategy up by name.
pub fn find(name: &str) -> Result<&'static StrategyInfo, UnknownStrategy> {
    REGISTRY.iter().find(|s| s.name == name).ok_or_else(|| UnknownStrategy {
        given: name.to_string(),
        suggestion: did_you_mean(name, REGISTRY.iter().map(|s| s.name)),
        known: REGISTRY.iter().map(|s| s.name).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagwire_runtime::rng::Rng;
    use dagwire_runtime::{DagBuilder, KernelId, TaskSpec};
    use std::sync::Mutex;

    /// First draw of every instance the test strategy below built.
    static DRAWS: Mutex<Vec<(Rank, u64)>> = Mutex::new(Vec::new());

    /// Eager's protocol, registered with a plan that records each rank's first draw.
    static DICE: StrategyInfo = StrategyInfo {
        name: "dice",
        summary: "eager, recording its random stream",
        params: Vec::new,
        needs: |_| Capability::POINT_TO_POINT,
        plan: |_, _| {
            Box::new(|rank, mut rng| {
                DRAWS.lock().unwrap().push((rank, rng.next_u64()));
                Box::new(eager::Eager)
            })
        },
    };

    #[test]
    fn each_rank_draws_its_own_stream_the_same_in_every_run_with_the_seed() {
        let mut b = DagBuilder::new(4);
        b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
        let dag = Arc::new(b.finish());
        let draws = |seed: u64| {
            DRAWS.lock().unwrap().clear();
            let factory = DICE.factory(&Params::default(), &dag, seed);
            (0..4).rev().for_each(|r| drop(factory(Rank(r))));
            let mut d = DRAWS.lock().unwrap().clone();
            d.sort_unstable();
            d
        };
        let (a, again, other) = (draws(7), draws(7), draws(8));
        assert_eq!(a, again, "same seed, same streams, whatever the order ranks are built in");
        assert_eq!(a.len(), 4);
        let firsts: std::collections::BTreeSet<u64> = a.iter().map(|&(_, x)| x).collect();
        assert_eq!(firsts.len(), 4, "every rank its own stream: {a:?}");
        assert!(a.iter().zip(&other).all(|(x, y)| x.1 != y.1), "another seed, other streams");
        assert_eq!(a[2].1, rank_rng(7, Rank(2)).next_u64());
    }
}
