//! The `sim` driver: every rank's [`Engine`] in one process, in virtual time.
//!
//! Task durations come from the [`ComputeModel`]; message times from the
//! [`Network`]. Kernels run for real when asked (so results verify), otherwise
//! outputs are [`Payload::phantom`]s of the declared size. With modelled compute the
//! run is a pure function of its inputs: the same DAG, strategy, machine and seed give
//! the same trace, bit for bit.
//!
//! Collectives are decomposed into their algorithm's point-to-point steps, each a
//! message through the [`Network`], so they share links and NICs with everything else:
//! all-to-all-v as a pairwise exchange, broadcast along a binomial tree or a pipelined
//! chain (see [`crate::collectives`]).

use crate::collectives::{Collectives, Piece};
use crate::compute::ComputeModel;
use crate::machine::Machine;
use crate::network::{MessageId, Network};
use crate::queue::{EventQueue, Time};
use dagwire_runtime::collective::check_capabilities;
use dagwire_runtime::engine::{Action, Engine, RunTask, TaskDone};
use dagwire_runtime::{
    Capability, ChunkId, Dag, KernelId, Kernels, Message, Payload, Rank, RunError, RunOutcome, StrategyFactory, TaskId,
    Trace,
};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// What the sim driver offers strategies.
pub const CAPABILITIES: &[Capability] = &[Capability::PointToPoint, Capability::AllToAllV, Capability::Broadcast];

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

/// What the network is carrying, by message id.
enum InFlight {
    /// A point-to-point message.
    Message { src: Rank, dst: Rank, msg: Message },
    /// One step of a collective.
    Piece(Piece),
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
    in_flight: FxHashMap<MessageId, InFlight>,
    pending: FxHashMap<(u32, TaskId), Pending>,
    /// Every rank's collectives in progress.
    collectives: Collectives,
    events: u64,
    trace: Trace,
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
    let engines: Vec<Engine> =
        (0..cfg.ranks as u32).map(|r| Engine::new(Rank(r), Arc::clone(dag), strategy(Rank(r)), workers)).collect();
    for e in &engines {
        check_capabilities("sim", CAPABILITIES, e.strategy_name(), e.needs())?;
    }
    let sim = Sim {
        dag,
        kernels,
        cfg,
        engines,
        free_workers: vec![(0..workers as u32).rev().collect(); cfg.ranks],
        queue: EventQueue::default(),
        network,
        compute: ComputeModel::new(&machine.compute),
        in_flight: FxHashMap::default(),
        pending: FxHashMap::default(),
        collectives: Collectives::new(cfg.ranks),
        events: 0,
        trace: Trace::default(),
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
            self.events += 1;
            match self.in_flight.remove(&id).expect("the network delivers only what was sent") {
                InFlight::Message { src, dst, msg } => {
                    self.engines[dst.index()].handle_message(t, src, msg);
                    self.pump(dst.index(), t)?;
                }
                InFlight::Piece(piece) => {
                    let dst = piece.dst.index();
                    self.collectives.arrive(piece, t);
                    self.pump(dst, t)?;
                }
            }
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

    /// Executes everything rank `r` wants to do at `now`, including collective steps
    /// that can go ahead and the completions they lead to.
    fn pump(&mut self, r: usize, now: Time) -> Result<(), RunError> {
        loop {
            while let Some(action) = self.engines[r].poll_action(now) {
                match action {
                    Action::Send(out) => {
                        let (src, dst) = (Rank(r as u32), out.to);
                        let id = self.network.send(now, src, dst, out.msg.wire_bytes());
                        self.in_flight.insert(id, InFlight::Message { src, dst, msg: out.msg });
                    }
                    Action::Run(job) => self.start_task(r, now, job)?,
                    Action::Collective(join) => {
                        let (network, in_flight) = (&mut self.network, &mut self.in_flight);
                        self.collectives.join(r, now, join, &mut |piece| send_piece(network, in_flight, now, piece));
                    }
                }
            }
            if let Some(e) = self.engines[r].error() {
                return Err(RunError::Engine(e.clone()));
            }
            let (network, in_flight) = (&mut self.network, &mut self.in_flight);
            let completed = self.collectives.advance(r, now, &mut |piece| send_piece(network, in_flight, now, piece));
            if completed.is_empty() {
                // Collect records as the run goes: no per-rank copies to merge at the end.
                self.engines[r].drain_trace_into(&mut self.trace);
                return Ok(());
            }
            for (id, received) in completed {
                self.engines[r].handle_collective_done(now, id, received);
            }
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
        let stuck: Vec<String> = self
            .engines
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.is_done())
            .map(|(r, e)| e.waiting_summary() + &self.collectives.summary(r))
            .collect();
        if !stuck.is_empty() {
            return Err(RunError::Config(format!(
                "simulation deadlocked at {end} ns: no event left but {} ranks unfinished\n{}",
                stuck.len(),
                stuck.join("\n")
            )));
        }
        debug_assert!(self.in_flight.is_empty() && self.pending.is_empty());
        debug_assert!(self.collectives.is_idle());
        let mut results: BTreeMap<ChunkId, Arc<Payload>> = BTreeMap::new();
        let mut trace = std::mem::take(&mut self.trace);
        for e in &mut self.engines {
            results.extend(e.take_results());
            e.drain_trace_into(&mut trace);
        }
        trace.sort();
        let run = RunOutcome { trace, results, makespan_ns: end };
        Ok(SimOutcome { run, events: self.events })
    }
}

/// Hands a collective's piece to the network at `now`.
fn send_piece(network: &mut Network, in_flight: &mut FxHashMap<MessageId, InFlight>, now: Time, piece: Piece) {
    let id = network.send(now, piece.src, piece.dst, piece.bytes);
    in_flight.insert(id, InFlight::Piece(piece));
}
