//! The progress loop of one rank of a job driver (`mpi`, `libfabric`), written once.
//!
//! A job driver's rank runs one loop until its engine is done and its transport has
//! nothing in flight: take in the kernel workers' results, take in what the transport
//! finished, execute the engine's actions (communication first, then tasks: with inline
//! progress at most one kernel a pass, and what its outputs caused leaves at once,
//! stamped with the kernel's end), tell the engine when a deadline came, and back off
//! when a pass made no progress. What differs between drivers (how bytes move, what is
//! in flight) is the [`RankLoop`] trait's required part; the loop is its provided part.

use crate::drivers::kernels::{Finished, KernelRunner};
use crate::drivers::panics::{Handling, set_handling};
use crate::drivers::run::{IdleWait, RunError};
use crate::drivers::wire;
use crate::drivers::workers::Workers;
use crate::engine::{Action, Engine, EngineError};
use crossbeam_channel::Receiver;
use std::time::{Duration, Instant};

/// What the loop itself owns of a rank: its engine and kernel workers.
pub(crate) struct RankCore {
    /// The rank's engine.
    pub engine: Engine,
    /// The rank's kernel workers (thread progress), or `None` when kernels run inline.
    pub workers: Option<Workers>,
    /// Where the workers hand back finished tasks.
    pub done: Receiver<Finished>,
    /// How long the rank may make no progress before it fails with a diagnosis.
    pub timeout: Duration,
    /// How the loop waits when a pass made no progress.
    pub idle: IdleWait,
}

/// One rank of a job driver: its [`RankCore`] and its transport.
pub(crate) trait RankLoop {
    /// The rank's engine and workers.
    fn core(&mut self) -> &mut RankCore;
    /// Now on the job's common timeline, ns.
    fn now(&self) -> u64;
    /// Takes in everything the transport finished since the last poll; true when
    /// anything did.
    fn poll_network(&mut self) -> Result<bool, RunError>;
    /// Executes one communication action (a send, a collective join, a one-sided
    /// operation) stamped `now`.
    fn execute(&mut self, action: Action, now: u64) -> Result<(), RunError>;
    /// Work after each pass's actions (completing one-sided operations, reposting
    /// receives).
    fn after_actions(&mut self) -> Result<(), RunError> {
        Ok(())
    }
    /// Nothing of this rank's is left in flight in the transport.
    fn drained(&self) -> bool;
    /// A failure the transport's own state holds (a collective that failed).
    fn failure(&self) -> Option<RunError> {
        None
    }
    /// What the transport has in flight, for a stall's diagnosis (`; MPI: ...`).
    fn in_flight(&self) -> String;

    /// Runs until the engine is done and the transport drained; returns this rank's report.
    fn run_loop(&mut self, runner: KernelRunner<'_>) -> Result<wire::Report, RunError> {
        let now = self.now();
        let core = self.core();
        core.engine.set_stall_timeout(Some(core.timeout.as_nanos() as u64), now);
        set_handling(Handling::Start);
        core.engine.handle_start(now);
        let mut backoff = Backoff::new(self.core().idle);
        loop {
            let mut progressed = self.poll_workers();
            progressed |= self.poll_network()?;
            progressed |= self.act(runner)?;
            self.after_actions()?;
            // The clock is read for the engine's deadlines only when a strategy timer is
            // armed, or once the loop idles (the stall watch is minutes away).
            if self.core().engine.has_timer() {
                let now = self.now();
                self.timeouts(now);
            }
            if let Some(e) = self.core().engine.error() {
                let e = e.clone();
                return Err(self.stopped(e));
            }
            if let Some(e) = self.failure() {
                return Err(e);
            }
            if self.core().engine.is_done() && self.drained() {
                set_handling(Handling::Nothing);
                let end = self.now();
                let engine = &mut self.core().engine;
                return Ok((engine.take_trace(), engine.take_results(), end));
            }
            if progressed {
                backoff.reset();
            } else if backoff.idle() {
                let now = self.now();
                self.timeouts(now);
            }
        }
    }

    /// Takes in the workers' results, handing out what each made ready as it goes, so
    /// the workers stay busy meanwhile.
    fn poll_workers(&mut self) -> bool {
        if self.core().workers.is_none() {
            return false; // kernels ran on this thread and reported at once
        }
        let mut any = false;
        while let Ok(f) = self.core().done.try_recv() {
            // The clock is read only for a result that came in.
            let now = self.now();
            let RankCore { engine, workers, .. } = self.core();
            any = true;
            set_handling(Handling::TaskDone(f.task()));
            f.report(engine, now);
            let workers = workers.as_ref().expect("checked");
            while workers.has_room()
                && let Some(job) = engine.next_task()
            {
                workers.submit(job);
            }
        }
        any
    }

    /// Executes the engine's actions: communication first (stamped with one clock read),
    /// then tasks; with inline progress at most one kernel, and what its outputs caused
    /// leaves at once, stamped with the kernel's end (it is on the critical path).
    fn act(&mut self, runner: KernelRunner<'_>) -> Result<bool, RunError> {
        let mut any = false;
        if self.core().engine.has_communication() {
            set_handling(Handling::Actions);
            let now = self.now();
            any |= self.communicate(now)?;
        }
        loop {
            let RankCore { engine, workers, .. } = self.core();
            if !workers.as_ref().is_none_or(Workers::has_room) {
                break;
            }
            let Some(job) = engine.next_task() else { break };
            any = true;
            if let Some(workers) = workers {
                workers.submit(job);
                continue;
            }
            let f = runner.run(0, job);
            // The kernel just ended on this thread: its end is now, without another clock read.
            let now = match &f {
                Finished::Done(done) => done.end_ns,
                Finished::Failed { .. } => self.now(),
            };
            set_handling(Handling::TaskDone(f.task()));
            f.report(&mut self.core().engine, now);
            self.communicate(now)?;
            break;
        }
        Ok(any)
    }

    /// Hands every pending communication action to the transport, stamped `now`.
    fn communicate(&mut self, now: u64) -> Result<bool, RunError> {
        let mut any = false;
        while let Some(action) = self.core().engine.poll_communication(now) {
            any = true;
            self.execute(action, now)?;
        }
        Ok(any)
    }

    /// Tells the engine the time if one of its deadlines came.
    fn timeouts(&mut self, now: u64) {
        let engine = &mut self.core().engine;
        if engine.poll_timeout().is_some_and(|at| now >= at) {
            set_handling(Handling::Timers);
            engine.handle_timeout(now);
        }
    }

    /// The run error for an engine stopped with `e`: a stall names what the rank waits
    /// for and what the transport has in flight.
    fn stopped(&mut self, e: EngineError) -> RunError {
        match e {
            EngineError::Stalled { waiting, .. } => RunError::Stalled {
                timeout: self.core().timeout,
                ranks: vec![format!("{waiting}{}", self.in_flight())],
            },
            e => RunError::Engine(e),
        }
    }
}

/// Idle waiting: spin, then yield; with [`IdleWait::Backoff`], after a while sleep with
/// a growing pause (parked, so a kernel worker's result wakes the loop at once).
pub(crate) struct Backoff {
    wait: IdleWait,
    idle_polls: u32,
    since: Option<Instant>,
    sleep_us: u64,
}

impl Backoff {
    /// Polls without progress in a row that only spin.
    const SPIN_POLLS: u32 = 32;
    /// How long the loop keeps polling (yielding between polls) before it sleeps.
    const SPIN: Duration = Duration::from_micros(100);
    /// The longest pause between polls once idle.
    const MAX_SLEEP_US: u64 = 200;

    pub(crate) fn new(wait: IdleWait) -> Self {
        Backoff { wait, idle_polls: 0, since: None, sleep_us: 0 }
    }

    /// Progress was made: spin again next time.
    pub(crate) fn reset(&mut self) {
        *self = Backoff::new(self.wait);
    }

    /// One idle pass; true when it looked at the clock (so the caller may too).
    pub(crate) fn idle(&mut self) -> bool {
        self.idle_polls += 1;
        if self.idle_polls < Backoff::SPIN_POLLS {
            std::hint::spin_loop();
            return false;
        }
        let idle = self.since.get_or_insert_with(Instant::now).elapsed();
        if self.wait == IdleWait::Poll || idle < Backoff::SPIN {
            std::thread::yield_now();
        } else {
            self.sleep_us = (self.sleep_us * 2).clamp(5, Backoff::MAX_SLEEP_US);
            std::thread::park_timeout(Duration::from_micros(self.sleep_us));
        }
        true
    }
}
