//! The `sim` driver: every rank's [`Engine`] in one process, in virtual time.
//!
//! Task durations come from the [`ComputeModel`]; message times from the
//! [`Network`]. Kernels run for real when asked (so results verify), otherwise
//! outputs are [`Payload::phantom`]s of the declared size. With modelled compute the
//! run is a pure function of its inputs: the same DAG, strategy, machine and seed give
//! the same trace, bit for bit.

use crate::compute::ComputeModel;
use crate::machine::Machine;
use crate::network::{MessageId, Network};
use crate::queue::{EventQueue, Time};
use dagwire_runtime::engine::{Action, Engine, RunTask, TaskDone};
use dagwire_runtime::{
    ChunkId, Dag, KernelId, Kernels, Message, Payload, Rank, RunError, RunOutcome, StrategyFactory, TaskId, Trace,
};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Settings of a simulated run.
#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    /// Ranks simulated.
    pub ranks: usize,
    /// Concurrent tasks per rank (capped by the machine's cores per rank).
    pub workers: usize,
    /// Run the kernels for real (results can be verified) or only model their time.
    pub run_kernels: bool,
    /// Seed of everything random in the model (latency jitter).
    pub seed: u64,
}

/// What the kernels are and what they are called (rates are per kernel name).
pub struct SimKernels<'a> {
    /// The kernels, needed when [`SimConfig::run_kernels`] is set.
    pub kernels: &'a dyn Kernels,
    /// Names of kernels, for the compute model's rates.
    pub name: &'a dyn Fn(KernelId) -> &'static str,
}

/// A simulated run's outcome plus simulator statistics.
#[derive(Debug)]
pub struct SimOutcome {
    /// Trace, results, makespan (virtual).
    pub run: RunOutcome,
    /// Events processed (task completions and message deliveries).
    pub events: u64,
}

/// The only event kept in the queue: a task finishing. Small on purpose; outputs wait
/// in a side table. Message deliveries live in the network's own timeline.
#[derive(Clone, Copy, Debug)]
struct TaskFinished {
    rank: u32,
    task: TaskId,
}

/// A running task's results and timing, until its completion event fires.
struct Pending {
    outputs: Vec<Payload>,
    worker: u32,
    start: Time,
}

/// The whole simulated machine.
struct Sim<'a> {
    dag: &'a Arc<Dag>,
    kernels: &'a SimKernels<'a>,
    cfg: SimConfig,
    engines: Vec<Engine>,
    free_workers: Vec<Vec<u32>>,
    queue: EventQueue<TaskFinished>,
    network: Network,
    compute: ComputeModel,
    in_flight: FxHashMap<MessageId, (Rank, Rank, Message)>,
    pending: FxHashMap<(u32, TaskId), Pending>,
    events: u64,
}

/// Simulates `dag` on `machine`.
pub fn run(
    dag: &Arc<Dag>,
    kernels: &SimKernels<'_>,
    strategy: StrategyFactory<'_>,
    machine: &Machine,
    cfg: SimConfig,
) -> Result<SimOutcome, RunError> {
    if cfg.ranks != dag.ranks() {
        return Err(RunError::Config(format!(
            "the DAG was placed on {} ranks, the run has {}",
            dag.ranks(),
            cfg.ranks
        )));
    }
    if machine.compute.mode == crate::machine::ComputeMode::Measure && !cfg.run_kernels {
        return Err(RunError::Config(
            "machine compute mode `measure` needs kernels to run: set kernels = \"run\" or use mode = \"model\"".into(),
        ));
    }
    let mut network = Network::new(machine, cfg.ranks).map_err(RunError::Config)?;
    network.seed(cfg.seed);
    let workers = cfg.workers.clamp(1, machine.compute.cores_per_rank.max(1) as usize);
    let sim = Sim {
        dag,
        kernels,
        cfg,
        engines: (0..cfg.ranks as u32)
            .map(|r| Engine::new(Rank(r), Arc::clone(dag), strategy(Rank(r)), workers))
            .collect(),
        free_workers: vec![(0..workers as u32).rev().collect(); cfg.ranks],
        queue: EventQueue::default(),
        network,
        compute: ComputeModel::new(&machine.compute),
        in_flight: FxHashMap::default(),
        pending: FxHashMap::default(),
        events: 0,
    };
    sim.run()
}

impl Sim<'_> {
    fn run(mut self) -> Result<SimOutcome, RunError> {
        for r in 0..self.engines.len() {
            self.engines[r].handle_start(0);
            self.pump(r, 0)?;
        }
        let mut now = 0;
        loop {
            let next_task = self.queue.peek_time();
            let next_msg = self.network.next_delivery();
            match (next_task, next_msg) {
                (None, None) => break,
                // At equal times messages go first: a fixed rule keeps runs deterministic.
                (Some(t), Some(m)) if m <= t => now = self.deliver(m)?,
                (None, Some(m)) => now = self.deliver(m)?,
                (Some(_), _) => now = self.finish_task()?,
            }
        }
        self.finish(now)
    }

    /// Delivers every message due at `at`.
    fn deliver(&mut self, at: Time) -> Result<Time, RunError> {
        for (t, id) in self.network.deliver_until(at) {
            let (src, dst, msg) = self.in_flight.remove(&id).expect("the network delivers only what was sent");
            self.events += 1;
            self.engines[dst.index()].handle_message(t, src, msg);
            self.pump(dst.index(), t)?;
        }
        Ok(at)
    }

    /// Completes the earliest running task.
    fn finish_task(&mut self) -> Result<Time, RunError> {
        let (now, ev) = self.queue.pop().expect("peeked");
        self.events += 1;
        let p = self.pending.remove(&(ev.rank, ev.task)).expect("a finishing task was started");
        self.free_workers[ev.rank as usize].push(p.worker);
        let done = TaskDone { task: ev.task, worker: p.worker, start_ns: p.start, end_ns: now, outputs: p.outputs };
        self.engines[ev.rank as usize].handle_task_done(now, done);
        self.pump(ev.rank as usize, now)?;
        Ok(now)
    }

    /// Executes everything rank `r` wants to do at `now`.
    fn pump(&mut self, r: usize, now: Time) -> Result<(), RunError> {
        while let Some(action) = self.engines[r].poll_action(now) {
            match action {
                Action::Send(out) => {
                    let id = self.network.send(now, Rank(r as u32), out.to, out.msg.wire_bytes());
                    self.in_flight.insert(id, (Rank(r as u32), out.to, out.msg));
                }
                Action::Run(job) => self.start_task(r, now, job)?,
            }
        }
        match self.engines[r].error() {
            Some(e) => Err(RunError::Engine(e.clone())),
            None => Ok(()),
        }
    }

    /// Starts a task: runs its kernel now if asked, and schedules its end.
    fn start_task(&mut self, r: usize, now: Time, job: RunTask) -> Result<(), RunError> {
        let task = self.dag.task(job.task);
        let worker = self.free_workers[r].pop().expect("the engine never exceeds its workers");
        let name = (self.kernels.name)(task.kernel);
        let (outputs, duration) = if self.cfg.run_kernels {
            let started = Instant::now();
            let outputs = self.kernels.kernels.run(task, job.inputs).map_err(|reason| {
                RunError::Engine(dagwire_runtime::EngineError::Kernel {
                    task: job.task,
                    kernel: task.kernel.0,
                    rank: Rank(r as u32),
                    reason,
                })
            })?;
            let duration = if self.compute.measures() {
                self.compute.record(task.kernel.0, task.flops, started.elapsed().as_nanos() as Time)
            } else {
                self.compute.modelled(name, task.flops)
            };
            (outputs, duration)
        } else {
            let outputs = task.outputs().map(|c| Payload::phantom(self.dag.chunk(c).bytes as usize)).collect();
            (outputs, self.compute.modelled(name, task.flops))
        };
        self.pending.insert((r as u32, job.task), Pending { outputs, worker, start: now });
        self.queue.push(now + duration, TaskFinished { rank: r as u32, task: job.task });
        Ok(())
    }

    /// Checks every rank finished and gathers the outcome.
    fn finish(mut self, end: Time) -> Result<SimOutcome, RunError> {
        let stuck: Vec<String> = self.engines.iter().filter(|e| !e.is_done()).map(|e| e.waiting_summary()).collect();
        if !stuck.is_empty() {
            return Err(RunError::Config(format!(
                "simulation deadlocked at {end} ns: no event left but {} ranks unfinished\n{}",
                stuck.len(),
                stuck.join("\n")
            )));
        }
        debug_assert!(self.in_flight.is_empty() && self.pending.is_empty());
        let mut results: BTreeMap<ChunkId, Arc<Payload>> = BTreeMap::new();
        let mut parts = Vec::with_capacity(self.engines.len());
        for e in &mut self.engines {
            results.extend(e.take_results());
            parts.push(e.take_trace());
        }
        let run = RunOutcome { trace: Trace::merge(parts), results, makespan_ns: end };
        Ok(SimOutcome { run, events: self.events })
    }
}
