//! What every driver returns: the merged trace, the result chunks and the makespan,
//! or an error that says which rank failed and why.

use crate::collectives::CollectiveError;
use crate::engine::EngineError;
use crate::ids::ChunkId;
use crate::payload::Payload;
use crate::trace::Trace;
use std::collections::BTreeMap;
use std::time::Duration;

/// A finished run.
#[derive(Debug)]
pub struct RunOutcome {
    /// All ranks' records, merged.
    pub trace: Trace,
    /// Every result chunk ([`crate::Dag::results`]), gathered from the ranks that made them.
    pub results: BTreeMap<ChunkId, Payload>,
    /// From the common start to the last rank finishing, ns.
    pub makespan_ns: u64,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An engine stopped with an error (kernel failure, protocol violation).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A rank's collectives met a malformed join or piece (ranks that disagree on a
    /// collective, a bug in a strategy or a driver).
    #[error("collective failed: {0}")]
    Collective(#[from] CollectiveError),
    /// No progress before the timeout; one line per unfinished rank says what it waits for.
    #[error("run stalled: no progress for {timeout:?} (raise the sweep's timeout_s if the run is just slow)\n{}", .ranks.join("\n"))]
    Stalled {
        /// The timeout that expired.
        timeout: Duration,
        /// Per unfinished rank, what it is waiting for.
        ranks: Vec<String>,
    },
    /// The configuration cannot run.
    #[error("invalid run configuration: {0}")]
    Config(String),
}

/// How ranks make progress on communication while kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Progress {
    /// Each rank has a progress thread that only handles messages; kernels run on
    /// separate worker threads.
    #[default]
    Thread,
    /// The rank's only thread runs kernels itself and polls for messages between tasks.
    Inline,
}

impl Progress {
    /// Names accepted in sweep files.
    pub const NAMES: &'static [&'static str] = &["thread", "inline"];

    /// Parses a name from [`Progress::NAMES`].
    ///
    /// ```
    /// use dagwire_runtime::Progress;
    /// assert_eq!(Progress::from_name("inline"), Some(Progress::Inline));
    /// assert_eq!(Progress::from_name("bogus"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Progress> {
        match name {
            "thread" => Some(Progress::Thread),
            "inline" => Some(Progress::Inline),
            _ => None,
        }
    }
}

/// A deliberate fault, for tests that prove verification catches corruption.
///
/// ```
/// use dagwire_runtime::Fault;
/// assert_eq!(Fault::from_name("corrupt-data"), Ok(Some(Fault::CorruptDataMessage { nth: 0 })));
/// assert_eq!(Fault::from_name("none"), Ok(None));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Flip one byte in the `nth` (0-based, counted over the run) data message sent.
    CorruptDataMessage {
        /// Which data message.
        nth: u64,
    },
}

impl Fault {
    /// Names accepted in sweep files (`grid.fault`).
    pub const NAMES: &'static [&'static str] = &["none", "corrupt-data"];

    /// Parses a name from [`Fault::NAMES`]: `none`, or `corrupt-data` (flip a bit of
    /// the first data message of the run).
    pub fn from_name(name: &str) -> Result<Option<Fault>, String> {
        match name {
            "none" => Ok(None),
            "corrupt-data" => Ok(Some(Fault::CorruptDataMessage { nth: 0 })),
            other => Err(format!("unknown fault `{other}`; known: {}", Fault::NAMES.join(", "))),
        }
    }
}
