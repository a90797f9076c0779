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
pub mod eager;
pub mod rendezvous;
pub mod rma;

use dagwire_runtime::params::did_you_mean;
use dagwire_runtime::{ParamError, ParamSpec, ParamValue, Params, Rank, Strategy};

/// One registered strategy.
#[derive(Debug)]
pub struct StrategyInfo {
    /// Name used in sweep files.
    pub name: &'static str,
    /// One line on the protocol.
    pub summary: &'static str,
    /// Parameters a sweep may set (as `<name>.<param>`).
    pub params: fn() -> Vec<ParamSpec>,
    /// Builds the instance for one rank of a run with `ranks` ranks.
    pub build: fn(params: &Params, rank: Rank, ranks: usize) -> Box<dyn Strategy>,
}

impl StrategyInfo {
    /// The per-rank factory a driver takes, for checked `params` of a run with `ranks` ranks.
    pub fn factory(&'static self, params: Params, ranks: usize) -> impl Fn(Rank) -> Box<dyn Strategy> + Sync + use<> {
        move |rank| (self.build)(&params, rank, ranks)
    }

    /// [`StrategyInfo::factory`] for values written inline (defaults for the rest).
    ///
    /// ```
    /// use dagwire_runtime::{ParamValue, Rank};
    /// let rdv = dagwire_strategies::find("rendezvous").unwrap();
    /// let factory = rdv.factory_with(&[("eager_limit", ParamValue::Int(4096))], 2).unwrap();
    /// assert_eq!(factory(Rank(0)).name(), "rendezvous");
    /// ```
    pub fn factory_with(
        &'static self,
        given: &[(&str, ParamValue)],
        ranks: usize,
    ) -> Result<impl Fn(Rank) -> Box<dyn Strategy> + Sync + use<>, ParamError> {
        Ok(self.factory(Params::from_pairs(&(self.params)(), given)?, ranks))
    }
}

/// Every strategy, in the order `experiment list` shows them. Adding a strategy is one
/// file plus one line here.
pub static REGISTRY: &[StrategyInfo] = &[eager::INFO, rendezvous::INFO, batched::INFO, rma::INFO];

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
