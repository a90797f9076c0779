//! The `local` driver: every rank is a thread of this process, messages move through
//! in-process channels (the payload is copied, as a shared-memory transport would),
//! and kernels really run on worker threads.
//!
//! Collectives run the shared algorithms of [`crate::collectives`] (one
//! [`Collectives`] per rank thread); their pieces travel through the same channels as
//! messages, payloads copied the same way, and a chain broadcast moves its data whole
//! ([`Segmenting::Whole`]).
//!
//! One-sided windows are byte buffers behind a mutex each; a put or get copies under
//! the target's lock when the origin executes it, so it is complete at once (and so
//! before any later fence), whatever the window's synchronisation.

use crate::collective::{Capability, check_capabilities};
use crate::collectives::{Body, Collectives, Piece, Segmenting};
use crate::dag::Dag;
use crate::drivers::registry::{self, DriverInfo, Executed, Launch, RunRequest};
use crate::drivers::run::{Fault, Progress, RunError, RunOutcome};
use crate::engine::{Action, Engine, EngineError, RunTask, TaskDone};
use crate::ids::{Rank, TaskId};
use crate::kernel::Kernels;
use crate::message::Message;
use crate::one_sided::{Access, OneSided, WindowMemory};
use crate::payload::Payload;
use crate::strategy::StrategyFactory;
use crate::trace::Trace;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// Settings of a local run.
///
/// ```
/// use dagwire_runtime::drivers::local::LocalConfig;
/// let cfg = LocalConfig { ranks: 4, ..LocalConfig::default() };
/// assert_eq!(cfg.workers, 1);
/// ```
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// Number of rank threads (must match the DAG).
    pub ranks: usize,
    /// Kernel worker threads per rank (with [`Progress::Inline`], the rank thread is the one worker).
    pub workers: usize,
    /// How communication progresses.
    pub progress: Progress,
    /// A run that makes no progress for this long fails with a diagnosis.
    pub timeout: Duration,
    /// An optional deliberate fault.
    pub fault: Option<Fault>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig { ranks: 1, workers: 1, progress: Progress::Thread, timeout: Duration::from_secs(600), fault: None }
    }
}

/// What the local driver offers strategies.
pub const CAPABILITIES: &[Capability] = Capability::ALL;

/// The local driver's registry entry.
pub const DRIVER: DriverInfo = DriverInfo {
    name: "local",
    summary: "ranks are threads of this process, messages move through in-process channels, kernels run for real; \
              needs nothing installed",
    params: Vec::new,
    offers: CAPABILITIES,
    check: registry::faults_need_two_ranks,
    launch: Launch::InProcess(run_request),
};

/// Runs a point from the registry's request.
fn run_request(req: &RunRequest<'_>) -> Result<Executed, RunError> {
    let cfg = LocalConfig {
        ranks: req.ranks,
        workers: req.workers,
        progress: req.progress,
        timeout: req.timeout,
        fault: req.fault,
    };
    Ok(Executed { outcome: run(req.dag, req.kernels, req.strategy, &cfg)?, kernels_ran: true })
}

/// What reaches a rank thread.
enum Incoming {
    Message {
        from: Rank,
        msg: Message,
    },
    /// A step of a collective, from a peer.
    Piece(Piece),
    Done(TaskDone),
    Failed {
        task: TaskId,
        reason: String,
    },
}

/// Shared by all rank threads of one run.
struct Shared<'a> {
    dag: &'a Arc<Dag>,
    kernels: &'a dyn Kernels,
    cfg: &'a LocalConfig,
    start: Instant,
    abort: AtomicBool,
    data_sent: AtomicU64,
    inboxes: Vec<Sender<Incoming>>,
    /// Every rank's one-sided window (empty when the strategy declares none).
    windows: Vec<Mutex<WindowMemory>>,
}

impl Shared<'_> {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// What one rank thread hands back.
type RankResult = Result<(Trace, Vec<(crate::ChunkId, crate::Payload)>, u64), RunError>;

/// Runs `dag` on `cfg.ranks` threads with one strategy instance per rank.
///
/// ```
/// use dagwire_runtime::drivers::local::{run, LocalConfig};
/// use dagwire_runtime::{DagBuilder, KernelId, Kernels, Payload, Rank, Strategy, Task, TaskSpec};
/// use std::sync::Arc;
/// struct Zeros;
/// impl Kernels for Zeros {
///     fn run(&self, _: &Task, _: Vec<Payload>) -> Result<Vec<Payload>, String> {
///         Ok(vec![Payload::zeroed(8)])
///     }
/// }
/// let mut b = DagBuilder::new(1);
/// b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
/// # struct NoStrategy;
/// # impl Strategy for NoStrategy {
/// #     fn name(&self) -> &'static str { "none" }
/// #     fn op_name(&self, _: u8) -> &'static str { "none" }
/// #     fn on_chunk_ready(&mut self, _: &mut dagwire_runtime::StrategyCtx<'_>, _: dagwire_runtime::ChunkId,
/// #         _: &Payload, _: &[Rank]) {}
/// #     fn on_message(&mut self, _: &mut dagwire_runtime::StrategyCtx<'_>, _: Rank,
/// #         _: dagwire_runtime::Message) -> Result<(), String> { Ok(()) }
/// # }
/// let factory = |_rank: Rank| -> Box<dyn Strategy> { Box::new(NoStrategy) };
/// let out = run(&Arc::new(b.finish()), &Zeros, &factory, &LocalConfig::default()).unwrap();
/// assert_eq!(out.results.len(), 1);
/// ```
pub fn run(
    dag: &Arc<Dag>,
    kernels: &dyn Kernels,
    strategy: StrategyFactory<'_>,
    cfg: &LocalConfig,
) -> Result<RunOutcome, RunError> {
    if cfg.ranks != dag.ranks() {
        return Err(RunError::Config(format!(
            "the DAG was placed on {} ranks, the run has {}",
            dag.ranks(),
            cfg.ranks
        )));
    }
    if cfg.workers == 0 {
        return Err(RunError::Config("workers must be at least 1".into()));
    }
    let mut engines = Vec::with_capacity(cfg.ranks);
    for r in 0..cfg.ranks as u32 {
        let engine = Engine::new(Rank(r), Arc::clone(dag), strategy(Rank(r)), cfg.workers);
        check_capabilities("local", CAPABILITIES, engine.strategy_name(), engine.needs())?;
        engines.push(engine);
    }
    let windows = engines.iter().map(|e| Mutex::new(WindowMemory::new(e.window().map_or(0, |w| w.bytes)))).collect();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..cfg.ranks).map(|_| unbounded()).unzip();
    let shared = Shared {
        dag,
        kernels,
        cfg,
        start: Instant::now(),
        abort: AtomicBool::new(false),
        data_sent: AtomicU64::new(0),
        inboxes: senders,
        windows,
    };
    let barrier = Barrier::new(cfg.ranks);
    let outcomes: Vec<RankResult> = std::thread::scope(|s| {
        let handles: Vec<_> = receivers
            .into_iter()
            .zip(engines)
            .enumerate()
            .map(|(r, (inbox, engine))| {
                let (shared, barrier) = (&shared, &barrier);
                std::thread::Builder::new()
                    .name(format!("rank-{r}"))
                    .spawn_scoped(s, move || {
                        barrier.wait();
                        rank_main(shared, engine, inbox)
                    })
                    .expect("spawn rank thread")
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("rank thread panicked")).collect()
    });
    gather(outcomes)
}

/// Merges per-rank results; the first real error wins over the aborts it caused.
fn gather(outcomes: Vec<RankResult>) -> Result<RunOutcome, RunError> {
    let mut parts = Vec::new();
    let mut results = std::collections::BTreeMap::new();
    let mut makespan_ns = 0;
    let mut stalled = Vec::new();
    let mut first_error = None;
    for outcome in outcomes {
        match outcome {
            Ok((trace, chunks, end)) => {
                parts.push(trace);
                results.extend(chunks);
                makespan_ns = makespan_ns.max(end);
            }
            Err(RunError::Stalled { timeout, ranks }) => stalled.push((timeout, ranks)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if let Some((timeout, _)) = stalled.first() {
        let timeout = *timeout;
        return Err(RunError::Stalled { timeout, ranks: stalled.into_iter().flat_map(|(_, r)| r).collect() });
    }
    Ok(RunOutcome { trace: Trace::merge(parts), results, makespan_ns })
}

/// One rank's progress loop: drain the inbox, execute actions, block when idle.
fn rank_main(shared: &Shared<'_>, mut engine: Engine, inbox: Receiver<Incoming>) -> RankResult {
    let rank = engine.rank();
    std::thread::scope(|s| {
        let (jobs_tx, jobs_rx) = unbounded::<RunTask>();
        if shared.cfg.progress == Progress::Thread {
            for w in 0..shared.cfg.workers {
                let (jobs, done) = (jobs_rx.clone(), shared.inboxes[rank.index()].clone());
                std::thread::Builder::new()
                    .name(format!("rank-{}-worker-{w}", rank.0))
                    .spawn_scoped(s, move || worker_main(shared, w as u32, jobs, done))
                    .expect("spawn worker thread");
            }
        }
        engine.set_stall_timeout(Some(shared.cfg.timeout.as_nanos() as u64), shared.now());
        engine.handle_start(shared.now());
        let mut collectives = Collectives::new(rank, shared.cfg.ranks, Segmenting::Whole);
        loop {
            while let Ok(incoming) = inbox.try_recv() {
                feed(shared, &mut engine, &mut collectives, incoming);
            }
            let acted = act(shared, &mut engine, &mut collectives, &jobs_tx);
            if let Some(at) = engine.poll_timeout()
                && shared.now() >= at
            {
                engine.handle_timeout(shared.now());
            }
            if let Some(e) = engine.error() {
                shared.abort.store(true, Ordering::Relaxed);
                return Err(stopped(shared, e, &collectives));
            }
            if let Some(e) = collectives.error() {
                shared.abort.store(true, Ordering::Relaxed);
                return Err(RunError::Collective(e.clone()));
            }
            if engine.is_done() {
                debug_assert!(collectives.is_idle(), "rank {rank} done with collectives pending");
                let end = shared.now();
                return Ok((engine.take_trace(), engine.take_results(), end));
            }
            if acted {
                continue;
            }
            // Sleep no longer than the engine's next deadline (a strategy timer, the stall watch).
            let until = engine.poll_timeout().map(|at| Duration::from_nanos(at.saturating_sub(shared.now())));
            match wait(&inbox, until) {
                Ok(incoming) => feed(shared, &mut engine, &mut collectives, incoming),
                Err(RecvTimeoutError::Timeout) => {
                    if shared.abort.load(Ordering::Relaxed) {
                        return Err(RunError::Config(format!("rank {rank} aborted because another rank failed")));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    unreachable!("this rank holds a sender to its own inbox")
                }
            }
        }
        // jobs_tx drops here, so the workers exit before the scope ends.
    })
}

/// The run error for a rank whose engine stopped with `e`: a stall names what the rank
/// waits for, with its open collectives.
fn stopped(shared: &Shared<'_>, e: &EngineError, collectives: &Collectives) -> RunError {
    match e {
        EngineError::Stalled { waiting, .. } => {
            let mut summary = waiting.clone();
            if !collectives.is_idle() {
                summary += &format!("; {}", collectives.summary());
            }
            RunError::Stalled { timeout: shared.cfg.timeout, ranks: vec![summary] }
        }
        e => RunError::Engine(e.clone()),
    }
}

/// Hands the pieces `collectives` has to send to their ranks' inboxes, then reports
/// the collectives that completed to `engine`.
fn collective_progress(shared: &Shared<'_>, engine: &mut Engine, collectives: &mut Collectives) {
    while let Some(piece) = collectives.poll_send() {
        send_piece(shared, piece);
    }
    while let Some((id, received)) = collectives.poll_done() {
        engine.handle_collective_done(shared.now(), id, received);
    }
}

/// Executes the engine's pending actions. With inline progress, runs at most one
/// task, sends what its outputs caused at once (it is on the critical path), and
/// returns so the inbox is drained between tasks.
fn act(shared: &Shared<'_>, engine: &mut Engine, collectives: &mut Collectives, jobs: &Sender<RunTask>) -> bool {
    let mut acted = false;
    while let Some(action) = engine.poll_action(shared.now()) {
        acted = true;
        match action {
            Action::Run(job) if shared.cfg.progress == Progress::Inline => {
                let incoming = execute(shared, 0, job);
                feed(shared, engine, collectives, incoming);
                while engine.has_communication()
                    && let Some(action) = engine.poll_communication(shared.now())
                {
                    communicate(shared, engine, collectives, action);
                }
                break;
            }
            Action::Run(job) => jobs.send(job).expect("workers live as long as the rank"),
            action => communicate(shared, engine, collectives, action),
        }
    }
    acted
}

/// Executes one communication action: a message, a collective join or a one-sided operation.
fn communicate(shared: &Shared<'_>, engine: &mut Engine, collectives: &mut Collectives, action: Action) {
    match action {
        Action::Send(out) => {
            let msg = on_the_wire(shared, out.msg);
            // A closed inbox means that rank already failed; the abort flag reports it.
            let _ = shared.inboxes[out.to.index()].send(Incoming::Message { from: engine.rank(), msg });
        }
        Action::Collective(join) => {
            collectives.join(shared.now(), join);
            collective_progress(shared, engine, collectives);
        }
        Action::OneSided(op) => one_sided(shared, engine, op),
        Action::Run(_) => unreachable!("tasks are not communication"),
    }
}

/// Executes a put or get on the target's window now and reports it complete.
fn one_sided(shared: &Shared<'_>, engine: &mut Engine, op: OneSided) {
    let remote = op.target != engine.rank();
    let mut window = shared.windows[op.target.index()].lock().unwrap_or_else(|e| e.into_inner());
    let result = match op.access {
        Access::Put(data) if remote => {
            let mut copy = Payload::clone(&data);
            corrupt(shared, &mut copy);
            window.put(op.offset, copy.as_bytes()).map(|()| None)
        }
        Access::Put(data) => window.put(op.offset, data.as_bytes()).map(|()| None),
        Access::Get { len } => window.get(op.offset, len).map(|mut data| {
            if remote {
                corrupt(shared, &mut data);
            }
            Some(data)
        }),
    };
    drop(window);
    match result {
        Ok(data) => engine.handle_one_sided_done(shared.now(), op.id, data),
        Err(why) => engine.handle_one_sided_failed(op.id, format!("on {}'s window: {why}", op.target)),
    }
}

fn feed(shared: &Shared<'_>, engine: &mut Engine, collectives: &mut Collectives, incoming: Incoming) {
    let now = shared.now();
    match incoming {
        Incoming::Message { from, msg } => engine.handle_message(now, from, msg),
        Incoming::Piece(piece) => {
            collectives.handle_piece(now, piece);
            collective_progress(shared, engine, collectives);
        }
        Incoming::Done(done) => engine.handle_task_done(now, done),
        Incoming::Failed { task, reason } => engine.handle_task_failed(task, reason),
    }
}

fn worker_main(shared: &Shared<'_>, worker: u32, jobs: Receiver<RunTask>, done: Sender<Incoming>) {
    while let Ok(job) = wait(&jobs, None).or_else(|e| match e {
        RecvTimeoutError::Timeout => jobs.recv().map_err(|_| RecvTimeoutError::Disconnected),
        e => Err(e),
    }) {
        let _ = done.send(execute(shared, worker, job));
    }
}

/// How long a thread polls before it sleeps: waking a sleeping thread costs tens of
/// microseconds on a VM, more than most short tasks.
const SPIN: Duration = Duration::from_micros(50);

/// Receives with a short spin first, then blocks for up to 50 ms (less if `until` says
/// the caller must look again sooner).
fn wait<T>(rx: &Receiver<T>, until: Option<Duration>) -> Result<T, RecvTimeoutError> {
    let start = Instant::now();
    let block = until.map_or(BLOCK, |u| u.min(BLOCK));
    while start.elapsed() < SPIN.min(block) {
        match rx.try_recv() {
            Ok(v) => return Ok(v),
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                return Err(RecvTimeoutError::Disconnected);
            }
            Err(crossbeam_channel::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    rx.recv_timeout(block.saturating_sub(start.elapsed()))
}

/// The longest a waiting thread blocks before it looks at the abort flag again.
const BLOCK: Duration = Duration::from_millis(50);

/// Runs one kernel, turning a panic into a failure report.
fn execute(shared: &Shared<'_>, worker: u32, job: RunTask) -> Incoming {
    let task = shared.dag.task(job.task);
    let start_ns = shared.now();
    let result = catch_unwind(AssertUnwindSafe(|| shared.kernels.run(task, job.inputs)));
    let end_ns = shared.now();
    match result {
        Ok(Ok(outputs)) => Incoming::Done(TaskDone { task: job.task, worker, start_ns, end_ns, outputs }),
        Ok(Err(reason)) => Incoming::Failed { task: job.task, reason },
        Err(panic) => Incoming::Failed { task: job.task, reason: format!("kernel panicked: {}", panic_text(&panic)) },
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Sends a collective's piece to its receiver, its bytes as they travel (copied, and
/// corrupted if it carries the run's faulty transfer).
fn send_piece(shared: &Shared<'_>, mut piece: Piece) {
    let travel = |messages: &mut Vec<Message>| {
        *messages = std::mem::take(messages).into_iter().map(|m| on_the_wire(shared, m)).collect();
    };
    match &mut piece.body {
        Body::Header => {}
        Body::Messages(messages) | Body::Segment { messages: Some(messages), .. } => travel(messages),
        Body::Segment { messages: None, .. } => {}
        Body::Blocks(blocks) => blocks.iter_mut().for_each(|b| travel(&mut b.messages)),
        Body::Values(values) => {
            *values = values.copied();
            corrupt(shared, values);
        }
    }
    // A closed inbox means that rank already failed; the abort flag reports it.
    let _ = shared.inboxes[piece.dst.index()].send(Incoming::Piece(piece));
}

/// A message as it reaches its receiver: its bytes copied into a buffer of their own, as
/// a shared-memory transport copies them (payloads are shared copy-on-write in the
/// process), and corrupted if this is the run's faulty transfer.
fn on_the_wire(shared: &Shared<'_>, mut msg: Message) -> Message {
    if let Some(payload) = msg.payload.as_mut() {
        *payload = payload.copied();
        corrupt(shared, payload);
    }
    msg
}

/// Applies the run's [`Fault::CorruptDataMessage`] to `payload`, if it is the nth data
/// transfer (message or one-sided) between ranks.
fn corrupt(shared: &Shared<'_>, payload: &mut Payload) {
    let Some(Fault::CorruptDataMessage { nth }) = shared.cfg.fault else {
        return;
    };
    if shared.data_sent.fetch_add(1, Ordering::Relaxed) == nth && !payload.is_empty() {
        // Byte 6 of an 8-byte word holds high mantissa bits of an f64, so the flip
        // changes a value visibly whatever the workload's element type.
        let at = ((payload.len() / 2) & !7) + 6;
        let at = if at < payload.len() { at } else { payload.len() / 2 };
        payload.as_bytes_mut()[at] ^= 0x40;
    }
}

#[allow(dead_code)]
fn _assert_error_is_send(e: EngineError) -> impl Send {
    e
}
