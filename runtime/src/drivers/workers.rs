//! The kernel workers of one rank ([`Progress::Thread`](crate::Progress::Thread)): the
//! rank's progress loop hands them tasks, they run them with the [`KernelRunner`] and
//! hand each result back.
//!
//! A hand-off costs no sleep and wake while work is queued: the loop keeps a few tasks
//! queued per worker, so a worker that finishes one starts the next without waiting for
//! the loop, and the loop takes several results in one pass. How many depends on how
//! long kernels take (a running mean): enough that short tasks do not wait for
//! hand-offs, few enough that a task queued behind others waits at most about
//! [`QUEUE_BUDGET`] (one per worker once kernels take longer than that), so the
//! engine's priorities still decide what runs next.
//!
//! With nothing queued, a worker blocks at once (after the channel's own brief spin): on
//! cores shared with other threads, polling idle workers took turns with the busy
//! threads and doubled an 8-byte ping-pong's latency on the mpi driver. A progress loop
//! that waits for results polls for a while first ([`recv`]), because results come
//! while the workers have work.

use crate::drivers::kernels::{Finished, KernelRunner};
use crate::engine::RunTask;
use crate::ids::Rank;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, unbounded};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::Scope;
use std::time::{Duration, Instant};

/// The most tasks handed to the workers per worker (running and queued).
pub const MAX_DEPTH: usize = 8;
/// About how long a task may wait in the queue behind others.
pub const QUEUE_BUDGET: Duration = Duration::from_micros(20);
/// Polls [`recv`] makes before it reads the clock.
const SPIN_POLLS: u32 = 8;
/// How long [`recv`] polls, yielding in between, before it blocks: waking a blocked
/// thread costs tens of microseconds on a VM, more than most short tasks.
pub const PATIENCE: Duration = Duration::from_micros(20);

/// One rank's kernel worker threads. Dropping it lets them end once they finished the
/// tasks they hold (the scope they were started in waits for them).
#[derive(Debug)]
pub struct Workers {
    jobs: Sender<RunTask>,
    count: usize,
    load: Arc<Load>,
}

/// What the workers hold and how long their kernels take.
#[derive(Debug, Default)]
struct Load {
    /// Tasks handed out and not finished.
    outstanding: AtomicUsize,
    /// Running mean of kernel durations, ns (0: none finished yet).
    mean_ns: AtomicU64,
}

impl Workers {
    /// Tasks an engine whose rank has `workers` workers may hand out at once: the
    /// workers' queues included (see [`Workers::has_room`]).
    pub fn slots(workers: usize) -> usize {
        workers * MAX_DEPTH
    }

    /// Starts `count` workers named `rank-R-worker-W` in `scope`; each runs the tasks it
    /// is handed with `runner` and gives each result to `deliver`, stopping when
    /// `deliver` says the progress loop is gone (returns false).
    pub fn start<'scope, D>(
        scope: &'scope Scope<'scope, '_>,
        rank: Rank,
        count: usize,
        runner: KernelRunner<'scope>,
        deliver: D,
    ) -> Workers
    where
        D: Fn(Finished) -> bool + Clone + Send + 'scope,
    {
        Self::try_start(scope, rank, count, runner, deliver).expect("spawn a kernel worker thread")
    }

    /// [`Workers::start`], returning the error when the system refuses a thread (the
    /// workers already started stop when the returned handle's queue closes).
    pub fn try_start<'scope, D>(
        scope: &'scope Scope<'scope, '_>,
        rank: Rank,
        count: usize,
        runner: KernelRunner<'scope>,
        deliver: D,
    ) -> std::io::Result<Workers>
    where
        D: Fn(Finished) -> bool + Clone + Send + 'scope,
    {
        let (jobs, queue) = unbounded::<RunTask>();
        let load = Arc::new(Load::default());
        for w in 0..count {
            let (queue, deliver, load) = (queue.clone(), deliver.clone(), Arc::clone(&load));
            std::thread::Builder::new().name(format!("rank-{}-worker-{w}", rank.0)).spawn_scoped(scope, move || {
                while let Ok(job) = queue.recv() {
                    let finished = runner.run(w as u32, job);
                    if let Finished::Done(done) = &finished {
                        load.ran(done.end_ns.saturating_sub(done.start_ns));
                    }
                    load.outstanding.fetch_sub(1, Ordering::Relaxed);
                    if !deliver(finished) {
                        break;
                    }
                }
            })?;
        }
        Ok(Workers { jobs, count, load })
    }

    /// Whether the workers should be handed another task now: fewer than their depth
    /// are outstanding per worker (the depth follows the kernels' mean duration).
    pub fn has_room(&self) -> bool {
        self.load.outstanding.load(Ordering::Relaxed) < self.count * self.load.depth()
    }

    /// Hands `job` to the first free worker.
    pub fn submit(&self, job: RunTask) {
        self.load.outstanding.fetch_add(1, Ordering::Relaxed);
        self.jobs.send(job).expect("the workers live as long as this handle");
    }
}

impl Load {
    /// A kernel ran for `ns`.
    fn ran(&self, ns: u64) {
        // Workers race on this mean; losing an update now and then does not matter.
        let mean = self.mean_ns.load(Ordering::Relaxed);
        let mean = if mean == 0 { ns.max(1) } else { (mean * 7 + ns) / 8 };
        self.mean_ns.store(mean.max(1), Ordering::Relaxed);
    }

    /// Tasks per worker: 1 until a kernel finished, then as many as take
    /// [`QUEUE_BUDGET`], within 1..=[`MAX_DEPTH`].
    fn depth(&self) -> usize {
        match self.mean_ns.load(Ordering::Relaxed) {
            0 => 1,
            mean => (QUEUE_BUDGET.as_nanos() as u64 / mean).clamp(1, MAX_DEPTH as u64) as usize,
        }
    }
}

/// Receives from `rx`: polls a few times, then polls yielding its core in between (a
/// thread sharing the core runs meanwhile) for up to [`PATIENCE`], then blocks for what
/// is left of `timeout` (measured from the call).
pub fn recv<T>(rx: &Receiver<T>, timeout: Duration) -> Result<T, RecvTimeoutError> {
    let mut start = None;
    let mut polls = 0u32;
    loop {
        match rx.try_recv() {
            Ok(v) => return Ok(v),
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        if polls < SPIN_POLLS {
            polls += 1;
            std::hint::spin_loop();
            continue;
        }
        // The clock is read only once polling alone did not do.
        if start.get_or_insert_with(Instant::now).elapsed() >= PATIENCE.min(timeout) {
            break;
        }
        std::thread::yield_now();
    }
    let waited = start.map_or(Duration::ZERO, |s| s.elapsed());
    rx.recv_timeout(timeout.saturating_sub(waited))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_follows_the_kernels_mean_duration() {
        let load = Load::default();
        assert_eq!(load.depth(), 1, "nothing measured yet");
        load.ran(100);
        assert_eq!(load.depth(), MAX_DEPTH, "100 ns kernels");
        for _ in 0..64 {
            load.ran(5_000);
        }
        assert_eq!(load.depth(), 4, "5 us kernels: 4 fill the 20 us budget");
        for _ in 0..64 {
            load.ran(1_000_000);
        }
        assert_eq!(load.depth(), 1, "1 ms kernels");
    }
}
