//! Whose collective algorithms a driver with native collectives runs: its transport's
//! own (MPI's `MPI_Ialltoallv`, `MPI_Iallreduce`, barrier) or the runtime's shared
//! state machines of [`crate::collectives`] over its point-to-point messages — the
//! `mpi` driver's `collectives` parameter, so "MPI's algorithm vs ours" is a sweep axis.
//!
//! It lives outside the feature-gated `mpi` module so that a binary built without MPI
//! still knows (and lists) the `mpi` driver's parameters.

use crate::drivers::registry::JobDriver;
use crate::params::{ParamSpec, Params};

/// Whose collective algorithms run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CollectivesMode {
    /// The transport's own collectives where it has them (MPI: all-to-all-v, all-reduce,
    /// fence); the kinds it has none for still run the runtime's algorithms.
    #[default]
    Native,
    /// Every collective runs the runtime's algorithms, piece by piece over point-to-point
    /// messages, as on the `local` driver and in the simulator.
    Runtime,
}

impl CollectivesMode {
    /// Names accepted by the `collectives` parameter.
    pub const NAMES: &'static [&'static str] = &["native", "runtime"];

    /// Its name in [`CollectivesMode::NAMES`].
    pub fn name(self) -> &'static str {
        match self {
            CollectivesMode::Native => "native",
            CollectivesMode::Runtime => "runtime",
        }
    }

    /// Parses a name from [`CollectivesMode::NAMES`].
    ///
    /// ```
    /// use dagwire_runtime::drivers::CollectivesMode;
    /// assert_eq!(CollectivesMode::from_name("runtime"), Some(CollectivesMode::Runtime));
    /// assert_eq!(CollectivesMode::from_name("mpi"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "native" => Some(CollectivesMode::Native),
            "runtime" => Some(CollectivesMode::Runtime),
            _ => None,
        }
    }

    /// The mode a driver's checked parameters ask for (`collectives`; native when the
    /// driver declares no such parameter).
    ///
    /// ```
    /// use dagwire_runtime::drivers::{CollectivesMode, collectives_mode::mpi_params};
    /// use dagwire_runtime::{ParamValue, Params};
    /// let p = Params::from_pairs(&mpi_params(), &[("collectives", ParamValue::Str("runtime".into()))]).unwrap();
    /// assert_eq!(CollectivesMode::of(&p), CollectivesMode::Runtime);
    /// assert_eq!(CollectivesMode::of(&Params::default()), CollectivesMode::Native);
    /// let bad = Params::from_pairs(&mpi_params(), &[("collectives", ParamValue::Str("ours".into()))]);
    /// assert!(bad.unwrap_err().to_string().contains("native"));
    /// ```
    pub fn of(params: &Params) -> Self {
        match params.get("collectives") {
            Some(crate::params::ParamValue::Str(name)) => CollectivesMode::from_name(name).unwrap_or_default(),
            _ => CollectivesMode::Native,
        }
    }

    /// The `collectives` parameter of a driver that offers both.
    pub fn param() -> ParamSpec {
        ParamSpec::choice(
            "collectives",
            CollectivesMode::NAMES,
            "native",
            "whose collective algorithms run: native = MPI's own (MPI_Ialltoall(v) for all-to-all-v, whatever the \
             strategy's algorithm; MPI_Iallreduce for all-reduce; a barrier for fences), the other kinds by the \
             runtime's algorithms; runtime = every collective by the runtime's algorithms over point-to-point \
             messages, as on local and sim",
        )
    }
}

/// The `mpi` driver's parameters: the launcher's ([`JobDriver::launcher_params`]) and
/// `collectives` ([`CollectivesMode::param`]).
pub fn mpi_params() -> Vec<ParamSpec> {
    let mut params = JobDriver::launcher_params();
    params.push(CollectivesMode::param());
    params
}
