//! What every driver returns: the merged trace, the result chunks and the makespan,
//! or an error that says which rank failed and why.

use crate::collectives::CollectiveError;
use crate::engine::EngineError;
use crate::ids::{ChunkId, Rank};
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
    /// The run went on past its wall-time limit (the simulator, whose runs always
    /// progress but may be far larger than intended).
    #[error(
        "run stopped after {limit:?} of wall time (the sweep's timeout_s): {progress}; raise timeout_s if the run \
         is just large, or shrink the point"
    )]
    TimedOut {
        /// The limit that expired.
        limit: Duration,
        /// How far the run got.
        progress: String,
    },
    /// The configuration cannot run.
    #[error("invalid run configuration: {0}")]
    Config(String),
    /// Code running on a rank's thread (engine, strategy or driver) panicked.
    #[error("rank {rank} panicked while handling {handling}: {text}")]
    Panicked {
        /// The rank.
        rank: Rank,
        /// What it was handling ([`crate::drivers::panics::Handling`], described).
        handling: String,
        /// The panic's text.
        text: String,
    },
}

/// How ranks make progress on communication while kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Progress {
    /// [`Thread`](Progress::Thread) when every rank on the node can have its progress
    /// thread next to its workers without more threads than cores, else
    /// [`Inline`](Progress::Inline); see [`Progress::resolve`].
    #[default]
    Auto,
    /// Each rank has a progress thread that only handles messages; kernels run on
    /// separate worker threads.
    Thread,
    /// The rank's only thread runs kernels itself and polls for messages between tasks.
    Inline,
}

impl Progress {
    /// Names accepted in sweep files.
    pub const NAMES: &'static [&'static str] = &["auto", "thread", "inline"];

    /// Parses a name from [`Progress::NAMES`].
    ///
    /// ```
    /// use dagwire_runtime::Progress;
    /// assert_eq!(Progress::from_name("inline"), Some(Progress::Inline));
    /// assert_eq!(Progress::from_name("bogus"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Progress> {
        match name {
            "auto" => Some(Progress::Auto),
            "thread" => Some(Progress::Thread),
            "inline" => Some(Progress::Inline),
            _ => None,
        }
    }

    /// The mode a rank runs in, and why, for a node running `ranks_here` ranks with
    /// `workers` kernel workers each on `cores` cores. `Thread` and `Inline` stay as
    /// asked. `Auto` picks `Thread` when the node's ranks x (workers + 1 progress
    /// thread) fit in its cores, else `Inline` (a progress thread without a core of its
    /// own only takes turns with the kernels); with more than one worker a rank needs
    /// worker threads, so `Thread`.
    ///
    /// ```
    /// use dagwire_runtime::Progress;
    /// assert_eq!(Progress::Auto.resolve(1, 1, 2).0, Progress::Thread);
    /// assert_eq!(Progress::Auto.resolve(2, 1, 2).0, Progress::Inline);
    /// assert_eq!(
    ///     Progress::Auto.resolve(2, 1, 2).1,
    ///     "inline (auto: 2 rank(s) x (1 worker(s) + 1 progress thread) = 4 threads > 2 core(s))"
    /// );
    /// ```
    pub fn resolve(self, ranks_here: usize, workers: usize, cores: usize) -> (Progress, String) {
        match self {
            Progress::Thread => (Progress::Thread, "thread (as asked)".into()),
            Progress::Inline => (Progress::Inline, "inline (as asked)".into()),
            Progress::Auto if workers > 1 => {
                (Progress::Thread, format!("thread (auto: {workers} workers per rank need worker threads)"))
            }
            Progress::Auto => {
                let threads = Progress::Thread.threads(ranks_here, workers);
                let sum =
                    format!("{ranks_here} rank(s) x ({workers} worker(s) + 1 progress thread) = {threads} threads");
                if threads > cores {
                    (Progress::Inline, format!("inline (auto: {sum} > {cores} core(s))"))
                } else {
                    (Progress::Thread, format!("thread (auto: {sum} <= {cores} core(s))"))
                }
            }
        }
    }

    /// Threads a node running `ranks_here` ranks with `workers` kernel workers each runs
    /// in this mode: one per rank inline, else ranks x (workers + 1 progress thread).
    fn threads(self, ranks_here: usize, workers: usize) -> usize {
        match self {
            Progress::Inline => ranks_here,
            Progress::Thread | Progress::Auto => ranks_here.saturating_mul(workers.saturating_add(1)),
        }
    }
}

/// How a job driver's rank waits when a pass of its progress loop made no progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleWait {
    /// Poll without sleeping (spin, then yield the core between polls), as MPI's own
    /// blocking calls do: when every thread of the node has a core of its own, a sleep
    /// only delays noticing what arrived. Each sleep used to cost up to its 200 µs pause
    /// per protocol round (a rendezvous, each step of MPI's own all-to-all-v), which
    /// doubled the batched strategy's 256 KiB ping-pong hop on the mpi driver (issue 16).
    Poll,
    /// Spin, yield for 100 µs, then sleep with a growing pause (at most 200 µs; a kernel
    /// worker's result wakes the loop at once): when the node runs more threads than it
    /// has cores, so an idle rank leaves them to the ranks and workers with work.
    Backoff,
}

impl IdleWait {
    /// How a rank in `progress` mode (resolved: not `Auto`) waits, and why, on a node
    /// running `ranks_here` ranks with `workers` kernel workers each on `cores` cores: it
    /// polls when the node's threads in that mode (ranks x (workers + 1 progress thread)
    /// with thread progress, one per rank inline) fit in its cores, else it backs off.
    ///
    /// ```
    /// use dagwire_runtime::Progress;
    /// use dagwire_runtime::drivers::run::IdleWait;
    /// assert_eq!(IdleWait::of(Progress::Inline, 2, 1, 2).0, IdleWait::Poll);
    /// assert_eq!(IdleWait::of(Progress::Inline, 3, 1, 2).0, IdleWait::Backoff);
    /// assert_eq!(IdleWait::of(Progress::Thread, 2, 1, 2).1, "backs off (4 threads > 2 core(s))");
    /// assert_eq!(IdleWait::of(Progress::Thread, 1, 1, 2).1, "polls (2 threads <= 2 core(s))");
    /// ```
    pub fn of(progress: Progress, ranks_here: usize, workers: usize, cores: usize) -> (IdleWait, String) {
        let threads = progress.threads(ranks_here, workers);
        if threads <= cores {
            (IdleWait::Poll, format!("polls ({threads} threads <= {cores} core(s))"))
        } else {
            (IdleWait::Backoff, format!("backs off ({threads} threads > {cores} core(s))"))
        }
    }
}

/// How a line on stderr starts that says which mode [`Progress::Auto`] picked for a
/// point: `dagwire progress: DRIVER: MODE (auto: WHY)` (`experiment run` passes these on
/// from launched jobs).
pub const PROGRESS_NOTE: &str = "dagwire progress: ";

/// Prints a [`PROGRESS_NOTE`] line on stderr the first time this process sees its text:
/// a sweep of many points with the same choice says it once, a point that chose
/// differently says so.
///
/// ```
/// assert!(dagwire_runtime::drivers::note_progress("dagwire progress: local: inline (doc test)"));
/// assert!(!dagwire_runtime::drivers::note_progress("dagwire progress: local: inline (doc test)"));
/// ```
pub fn note_progress(line: &str) -> bool {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if said.iter().any(|s| s == line) {
        return false;
    }
    said.push(line.to_string());
    eprintln!("{line}");
    true
}

/// Cores this process may run on (its CPU affinity and cgroup quota), at least 1.
pub fn usable_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The cores a rank's threads share and with how many ranks (its own included), for a
/// node running `ranks_on_node` ranks: the usable cores with all of them, unless this
/// process may use fewer cores than the machine has online, i.e. its launcher bound it
/// to cores of its own (as `mpirun` binds each rank): then those, with no other rank.
/// Returns (ranks sharing, cores, bound).
pub fn cores_shared(ranks_on_node: usize) -> (usize, usize, bool) {
    let cores = usable_cores();
    let bound = cores < online_cores();
    (if bound { 1 } else { ranks_on_node }, cores, bound)
}

/// Cores the machine has online (Linux: `/sys/devices/system/cpu/online`), or
/// [`usable_cores`] where that cannot be read. A process that may use fewer than these is
/// bound to its own (as `mpirun` binds each rank).
pub fn online_cores() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|list| count_cpu_list(list.trim()))
        .unwrap_or_else(usable_cores)
}

/// Counts the CPUs of a kernel CPU list such as `0-3,8,10-11`.
fn count_cpu_list(list: &str) -> Option<usize> {
    list.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => Some(b.parse::<usize>().ok()?.checked_sub(a.parse::<usize>().ok()?)? + 1),
            None => part.parse::<usize>().ok().map(|_| 1),
        })
        .sum()
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

#[cfg(test)]
mod tests {
    use super::Progress::{self, Auto, Inline, Thread};

    #[test]
    fn auto_picks_a_progress_thread_only_when_every_rank_has_a_spare_core_for_it() {
        // (ranks on the node, workers per rank, cores) -> what auto picks
        let cases = [
            ((1, 1, 2), Thread), // 2 threads on 2 cores
            ((1, 1, 1), Inline), // the progress thread would share the worker's core
            ((2, 1, 2), Inline), // 4 threads on 2 cores
            ((2, 1, 4), Thread),
            ((4, 1, 7), Inline),
            ((4, 1, 8), Thread),
            ((3, 2, 2), Thread), // more than one worker needs worker threads, cores or not
            ((1, 3, 64), Thread),
        ];
        for ((ranks, workers, cores), picked) in cases {
            let (got, why) = Auto.resolve(ranks, workers, cores);
            assert_eq!(got, picked, "{ranks} ranks x {workers} workers on {cores} cores: {why}");
            assert!(
                why.starts_with(&format!("{} (auto: ", if picked == Thread { "thread" } else { "inline" })),
                "{why}"
            );
        }
        assert_eq!(
            Auto.resolve(1, 1, 2).1,
            "thread (auto: 1 rank(s) x (1 worker(s) + 1 progress thread) = 2 threads <= 2 core(s))"
        );
    }

    #[test]
    fn cpu_lists_count_every_cpu() {
        assert_eq!(super::count_cpu_list("0-1"), Some(2));
        assert_eq!(super::count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(super::count_cpu_list("5"), Some(1));
        assert_eq!(super::count_cpu_list("x"), None);
        assert!(super::online_cores() >= 1);
    }

    #[test]
    fn thread_and_inline_stay_as_asked() {
        for (ranks, workers, cores) in [(1, 1, 1), (8, 1, 2), (1, 1, 64)] {
            assert_eq!(Thread.resolve(ranks, workers, cores).0, Thread);
            assert_eq!(Inline.resolve(ranks, workers, cores).0, Inline);
        }
        let named: Vec<Option<Progress>> = Progress::NAMES.iter().map(|n| Progress::from_name(n)).collect();
        assert_eq!(named, [Some(Auto), Some(Thread), Some(Inline)]);
        assert_eq!(Progress::default(), Auto);
    }
}
