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
//! before any later fence), whatever the window's synchronisation. Exposed memory
//! ([`Access::Expose`]) is a table of shared payloads per rank behind a mutex: exposing
//! costs nothing and completes at once; a read copies the bytes under the owner's lock.

use crate::collective::{Capability, check_capabilities};
use crate::collectives::{Body, Collectives, Piece, Segmenting};
use crate::dag::Dag;
use crate::drivers::fault::Injector;
use crate::drivers::kernels::{Clock, Finished, KernelRunner};
use crate::drivers::panics::{self, Handling, set_handling};
use crate::drivers::registry::{self, DriverInfo, Executed, Launch, RunRequest};
use crate::drivers::run::{Fault, PROGRESS_NOTE, Progress, RunError, RunOutcome, note_progress, usable_cores};
use crate::drivers::workers::{self, Workers};
use crate::engine::{Action, Engine, EngineError};
use crate::ids::Rank;
use crate::kernel::Kernels;
use crate::message::Message;
use crate::one_sided::{Access, ExposedMemory, OneSided, WindowMemory};
use crate::payload::Payload;
use crate::strategy::StrategyFactory;
use crate::trace::Trace;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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
    /// How communication progresses ([`Progress::Auto`] decides from `ranks`, `workers`
    /// and the cores this process may use, and says so on stderr).
    pub progress: Progress,
    /// A run that makes no progress for this long fails with a diagnosis.
    pub timeout: Duration,
    /// An optional deliberate fault.
    pub fault: Option<Fault>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig { ranks: 1, workers: 1, progress: Progress::Auto, timeout: Duration::from_secs(600), fault: None }
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
    host: crate::drivers::registry::nothing_about_host,
    check,
    launch: Launch::InProcess(run_request),
};

/// The most threads one local run may start: a quarter of the kernel's
/// `threads-max` (the rest is for everything else on the machine), at most 8192.
pub fn thread_limit() -> usize {
    let max = std::fs::read_to_string("/proc/sys/kernel/threads-max")
        .ok()
        .and_then(|t| t.trim().parse::<usize>().ok())
        .unwrap_or(32_768);
    (max / 4).clamp(64, 8192)
}

/// Address space one thread maps: its stack (std's default of 2 MiB, or
/// `RUST_MIN_STACK`), its guard page and the alternate signal stack std maps as the
/// thread starts, rounded up.
fn thread_address_space() -> u64 {
    let stack = std::env::var("RUST_MIN_STACK").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(2 << 20);
    stack.saturating_add(128 << 10)
}

/// Bytes this process may still map under an address-space limit (`ulimit -v`:
/// `/proc/self/limits` less `VmSize` in `/proc/self/status`); `None` when unlimited or
/// unknown. Rank threads are counted against it before any starts: a thread whose stack
/// fits but whose signal stack does not aborts the whole process as it starts (std
/// cannot report that to the spawner), so running out part-way is not recoverable.
fn address_space_left() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max address space"))?;
    let soft = line.split_whitespace().nth(3)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let size = status.lines().find_map(|l| l.strip_prefix("VmSize:"))?;
    let kib = size.trim().trim_end_matches("kB").trim().parse::<u64>().ok()?;
    Some(soft.saturating_sub(kib.saturating_mul(1024)))
}

/// Refuses faults on one rank and more threads than [`thread_limit`]: a rank is a
/// thread, plus one per kernel worker when progress runs on its own thread.
fn check(c: &registry::DriverCheck<'_>) -> Result<(), registry::CheckError> {
    registry::faults_need_two_ranks(c)?;
    let threads = c.ranks.saturating_mul(c.workers.saturating_add(1));
    let limit = thread_limit();
    if threads > limit {
        return Err(registry::CheckError::axis(
            "ranks",
            format!(
                "the local driver runs each rank as a thread, plus one per kernel worker: {} ranks x (1 + {} workers) \
                 = {threads} threads, more than this machine allows one run ({limit}, a quarter of \
                 /proc/sys/kernel/threads-max, at most 8192); use fewer ranks, or the sim driver for large rank counts",
                c.ranks, c.workers
            ),
        ));
    }
    Ok(())
}

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
    /// A kernel worker's result.
    Finished(Finished),
    /// Another rank failed: stop.
    Abort,
}

impl Incoming {
    /// What the rank handles while it feeds this to the engine.
    fn handling(&self) -> Handling {
        match self {
            Incoming::Message { from, msg } => Handling::Message { from: *from, op: msg.op, chunk: msg.chunk },
            Incoming::Piece(piece) => Handling::Collective { id: piece.id, from: Some(piece.src) },
            Incoming::Finished(f) => Handling::TaskDone(f.task()),
            Incoming::Abort => Handling::Nothing,
        }
    }
}

/// Shared by all rank threads of one run.
struct Shared<'a> {
    dag: &'a Arc<Dag>,
    kernels: &'a dyn Kernels,
    cfg: &'a LocalConfig,
    start: Instant,
    abort: AtomicBool,
    faults: Injector,
    inboxes: Vec<Sender<Incoming>>,
    /// Every rank's one-sided window (empty when the strategy declares none).
    windows: Vec<Mutex<WindowMemory>>,
    /// Every rank's exposed memory.
    exposed: Vec<Mutex<ExposedMemory>>,
}

impl Clock for Shared<'_> {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

impl Shared<'_> {
    fn runner(&self) -> KernelRunner<'_> {
        KernelRunner::new(self.dag, self.kernels, self)
    }

    /// Tells every other rank to stop (this one failed), waking those that wait.
    fn abort_others(&self, me: Rank) {
        self.abort.store(true, Ordering::Relaxed);
        for (_, inbox) in self.inboxes.iter().enumerate().filter(|&(r, _)| r != me.index()) {
            // A closed inbox belongs to a rank that has already ended.
            let _ = inbox.send(Incoming::Abort);
        }
    }
}

/// What one rank thread hands back.
type RankResult = Result<(Trace, Vec<(crate::ChunkId, crate::Payload)>, u64), RankError>;

/// Why a rank thread ended without finishing.
enum RankError {
    /// It failed: the run's error.
    Failed(RunError),
    /// Another rank failed first; what this rank was still waiting for.
    Aborted(String),
}

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
    let (progress, why) = cfg.progress.resolve(cfg.ranks, cfg.workers, usable_cores());
    let threads = if progress == Progress::Thread { cfg.ranks.saturating_mul(cfg.workers + 1) } else { cfg.ranks };
    if let Some(left) = address_space_left() {
        let need = (threads as u64).saturating_mul(thread_address_space());
        if need > left {
            return Err(RunError::Config(format!(
                "could not start the threads of {} ranks: {threads} threads need about {} MiB of address space and \
                 this process may map only {} MiB more (ulimit -v); use fewer ranks or the sim driver",
                cfg.ranks,
                need >> 20,
                left >> 20
            )));
        }
    }
    if cfg.progress == Progress::Auto {
        note_progress(&format!("{PROGRESS_NOTE}local: {why}"));
    }
    let cfg = &LocalConfig { progress, ..cfg.clone() };
    let mut engines = Vec::with_capacity(cfg.ranks);
    for r in 0..cfg.ranks as u32 {
        let slots = if cfg.progress == Progress::Thread { Workers::slots(cfg.workers) } else { cfg.workers };
        let engine = Engine::new(Rank(r), Arc::clone(dag), strategy(Rank(r)), slots);
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
        faults: Injector::new(cfg.fault),
        inboxes: senders,
        windows,
        exposed: (0..cfg.ranks).map(|_| Mutex::default()).collect(),
    };
    let gate = Gate::default();
    let mut spawn_error = None;
    let outcomes: Vec<RankResult> = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(cfg.ranks);
        for (r, (inbox, engine)) in receivers.into_iter().zip(engines).enumerate() {
            let (shared, gate) = (&shared, &gate);
            let spawned = std::thread::Builder::new().name(format!("rank-{r}")).spawn_scoped(s, move || {
                if !gate.wait() {
                    return Err(RankError::Aborted(String::new()));
                }
                rank_thread(shared, engine, inbox)
            });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    spawn_error = Some(format!(
                        "could not start the thread of rank {r} of {} ({e}): this machine holds fewer threads; use \
                         fewer ranks or the sim driver",
                        cfg.ranks
                    ));
                    break;
                }
            }
        }
        // All ranks start together, or none starts.
        gate.open(spawn_error.is_none());
        let joined = handles.into_iter().enumerate().map(|(r, h)| {
            h.join().unwrap_or_else(|panic| {
                let handling = "its thread's end".to_string();
                Err(RankError::Failed(RunError::Panicked {
                    rank: Rank(r as u32),
                    handling,
                    text: panics::text(&*panic),
                }))
            })
        });
        joined.collect()
    });
    if let Some(e) = spawn_error {
        return Err(RunError::Config(e));
    }
    gather(outcomes)
}

/// Holds rank threads until every one is spawned, then lets them all start, or all
/// quit when one could not be spawned.
#[derive(Default)]
struct Gate {
    state: Mutex<Option<bool>>,
    opened: Condvar,
}

impl Gate {
    /// Waits for [`Gate::open`]; whether to run.
    fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(run) = *state {
                return run;
            }
            state = self.opened.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn open(&self, run: bool) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(run);
        self.opened.notify_all();
    }
}

/// Merges per-rank results; the first real error wins over the aborts it caused, and a
/// stall lists what every unfinished rank waited for.
fn gather(outcomes: Vec<RankResult>) -> Result<RunOutcome, RunError> {
    let mut parts = Vec::new();
    let mut results = std::collections::BTreeMap::new();
    let mut makespan_ns = 0;
    let (mut stalled, mut waiting) = (None, Vec::new());
    let mut first_error = None;
    for outcome in outcomes {
        match outcome {
            Ok((trace, chunks, end)) => {
                parts.push(trace);
                results.extend(chunks);
                makespan_ns = makespan_ns.max(end);
            }
            Err(RankError::Failed(RunError::Stalled { timeout, ranks })) => {
                stalled.get_or_insert(timeout);
                waiting.extend(ranks);
            }
            Err(RankError::Aborted(summary)) => waiting.push(summary),
            Err(RankError::Failed(e)) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if let Some(timeout) = stalled {
        return Err(RunError::Stalled { timeout, ranks: waiting });
    }
    Ok(RunOutcome { trace: Trace::merge(parts), results, makespan_ns })
}

/// A rank thread: runs the rank's loop; a panic anywhere in it (engine, strategy,
/// driver) fails the run with the rank, what it was handling and the panic's text, and
/// any failure stops the other ranks at once.
fn rank_thread(shared: &Shared<'_>, mut engine: Engine, inbox: Receiver<Incoming>) -> RankResult {
    let rank = engine.rank();
    let result = catch_unwind(AssertUnwindSafe(|| rank_main(shared, &mut engine, &inbox)));
    let result = result.unwrap_or_else(|panic| {
        let handling = panics::handling().describe(|op| engine.op_name(op));
        Err(RankError::Failed(RunError::Panicked { rank, handling, text: panics::text(&*panic) }))
    });
    set_handling(Handling::Nothing);
    if let Err(RankError::Failed(_)) = result {
        shared.abort_others(rank);
    }
    result
}

/// The longest a waiting rank blocks before it looks at the abort flag again.
const BLOCK: Duration = Duration::from_millis(50);

/// One rank's progress loop: drain the inbox, execute actions, block when idle.
fn rank_main(shared: &Shared<'_>, engine: &mut Engine, inbox: &Receiver<Incoming>) -> RankResult {
    let rank = engine.rank();
    std::thread::scope(|s| {
        let workers = (shared.cfg.progress == Progress::Thread).then(|| {
            let done = shared.inboxes[rank.index()].clone();
            let deliver = move |f: Finished| done.send(Incoming::Finished(f)).is_ok();
            Workers::try_start(s, rank, shared.cfg.workers, shared.runner(), deliver)
        });
        let workers = match workers.transpose() {
            Ok(w) => w,
            Err(e) => {
                return Err(RankError::Failed(RunError::Config(format!(
                    "rank {rank} could not start its {} kernel worker threads ({e}): this machine holds fewer \
                     threads; use fewer ranks or workers",
                    shared.cfg.workers
                ))));
            }
        };
        engine.set_stall_timeout(Some(shared.cfg.timeout.as_nanos() as u64), shared.now());
        set_handling(Handling::Start);
        engine.handle_start(shared.now());
        let mut collectives = Collectives::new(rank, shared.cfg.ranks, Segmenting::Whole);
        let aborted = |engine: &Engine, collectives: &Collectives| {
            Err(RankError::Aborted(waiting(engine.waiting_summary(), collectives)))
        };
        loop {
            while let Ok(incoming) = inbox.try_recv() {
                if let Incoming::Abort = incoming {
                    return aborted(engine, &collectives);
                }
                feed(shared, engine, &mut collectives, incoming);
                // Keep the workers busy while results are taken in (acting sends what a
                // result caused at once, too); inline, kernels wait until the inbox is empty.
                if workers.is_some() {
                    act(shared, engine, &mut collectives, workers.as_ref());
                }
            }
            let acted = act(shared, engine, &mut collectives, workers.as_ref());
            if let Some(at) = engine.poll_timeout()
                && shared.now() >= at
            {
                set_handling(Handling::Timers);
                engine.handle_timeout(shared.now());
            }
            if let Some(e) = engine.error() {
                return Err(RankError::Failed(stopped(shared, e, &collectives)));
            }
            if let Some(e) = collectives.error() {
                return Err(RankError::Failed(RunError::Collective(e.clone())));
            }
            if engine.is_done() {
                debug_assert!(collectives.is_idle(), "rank {rank} done with collectives pending");
                let end = shared.now();
                return Ok((engine.take_trace(), engine.take_results(), end));
            }
            if acted {
                continue;
            }
            // Wait no longer than the engine's next deadline (a strategy timer, the stall
            // watch), nor than BLOCK (the abort flag).
            let until = engine.poll_timeout().map(|at| Duration::from_nanos(at.saturating_sub(shared.now())));
            match workers::recv(inbox, until.map_or(BLOCK, |u| u.min(BLOCK))) {
                Ok(Incoming::Abort) => return aborted(engine, &collectives),
                Ok(incoming) => feed(shared, engine, &mut collectives, incoming),
                Err(RecvTimeoutError::Timeout) => {
                    if shared.abort.load(Ordering::Relaxed) {
                        return aborted(engine, &collectives);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    unreachable!("this rank holds a sender to its own inbox")
                }
            }
        }
        // `workers` drops here, so the workers end before the scope does (also when
        // this loop panics).
    })
}

/// The run error for a rank whose engine stopped with `e`: a stall names what the rank
/// waits for, with its open collectives.
fn stopped(shared: &Shared<'_>, e: &EngineError, collectives: &Collectives) -> RunError {
    match e {
        EngineError::Stalled { waiting: w, .. } => {
            RunError::Stalled { timeout: shared.cfg.timeout, ranks: vec![waiting(w.clone(), collectives)] }
        }
        e => RunError::Engine(e.clone()),
    }
}

/// What a rank waits for (`summary`, from its engine), with its open collectives.
fn waiting(mut summary: String, collectives: &Collectives) -> String {
    if !collectives.is_idle() {
        summary += &format!("; {}", collectives.summary());
    }
    summary
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

/// Executes the engine's pending actions: communication first, then tasks (handed to
/// the workers while they have room). With inline progress, runs at most one task,
/// sends what its outputs caused at once (it is on the critical path), and returns so
/// the inbox is drained between tasks.
fn act(shared: &Shared<'_>, engine: &mut Engine, collectives: &mut Collectives, workers: Option<&Workers>) -> bool {
    let mut acted = false;
    set_handling(Handling::Actions);
    loop {
        if engine.has_communication()
            && let Some(action) = engine.poll_communication(shared.now())
        {
            acted = true;
            communicate(shared, engine, collectives, action);
            continue;
        }
        if workers.is_some_and(|w| !w.has_room()) {
            return acted;
        }
        let Some(job) = engine.next_task() else {
            return acted;
        };
        acted = true;
        let Some(workers) = workers else {
            let finished = shared.runner().run(0, job);
            feed(shared, engine, collectives, Incoming::Finished(finished));
            while engine.has_communication()
                && let Some(action) = engine.poll_communication(shared.now())
            {
                communicate(shared, engine, collectives, action);
            }
            return acted;
        };
        workers.submit(job);
    }
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
            set_handling(Handling::Collective { id: join.id, from: None });
            collectives.join(shared.now(), join);
            collective_progress(shared, engine, collectives);
        }
        Action::OneSided(op) => {
            set_handling(Handling::OneSided { id: op.id, target: op.target });
            one_sided(shared, engine, op);
        }
        // No rank has a device here (see `space`): a copy within host memory is done at once.
        Action::Copy(copy) => engine.handle_copy_done(shared.now(), copy.id),
        Action::Run(_) => unreachable!("tasks are not communication"),
    }
}

/// Executes a put or get on the target's window, or an exposure, a read or a
/// withdrawal of exposed memory, now, and reports it complete.
fn one_sided(shared: &Shared<'_>, engine: &mut Engine, op: OneSided) {
    let exposed = || shared.exposed[op.target.index()].lock().unwrap_or_else(|e| e.into_inner());
    let failed = |why: String| format!("on {}'s exposed memory: {why}", op.target);
    match op.access {
        Access::Expose(data) => {
            let key = exposed().expose(data);
            engine.handle_exposed(shared.now(), op.id, key);
        }
        Access::Withdraw(key) => {
            if let Err(why) = exposed().withdraw(key) {
                engine.handle_one_sided_failed(op.id, failed(why));
            }
        }
        Access::Read { key, len } => {
            let read = exposed().read(key, op.offset, len);
            match read {
                Ok(mut data) => {
                    shared.faults.transfer(&mut data);
                    engine.handle_one_sided_done(shared.now(), op.id, Some(data));
                }
                Err(why) => engine.handle_one_sided_failed(op.id, failed(why)),
            }
        }
        access => window_op(shared, engine, OneSided { access, ..op }),
    }
}

/// A put or get on the target's window, now.
fn window_op(shared: &Shared<'_>, engine: &mut Engine, op: OneSided) {
    let remote = op.target != engine.rank();
    let mut window = shared.windows[op.target.index()].lock().unwrap_or_else(|e| e.into_inner());
    let result = match op.access {
        Access::Put(data) if remote => {
            let mut copy = Payload::clone(&data);
            shared.faults.transfer(&mut copy);
            window.put(op.offset, copy.as_bytes()).map(|()| None)
        }
        Access::Put(data) => window.put(op.offset, data.as_bytes()).map(|()| None),
        Access::Get { len } => window.get(op.offset, len).map(|mut data| {
            if remote {
                shared.faults.transfer(&mut data);
            }
            Some(data)
        }),
        Access::Expose(_) | Access::Read { .. } | Access::Withdraw(_) => unreachable!("one_sided handles these"),
    };
    drop(window);
    match result {
        Ok(data) => engine.handle_one_sided_done(shared.now(), op.id, data),
        Err(why) => engine.handle_one_sided_failed(op.id, format!("on {}'s window: {why}", op.target)),
    }
}

fn feed(shared: &Shared<'_>, engine: &mut Engine, collectives: &mut Collectives, incoming: Incoming) {
    let now = shared.now();
    set_handling(incoming.handling());
    match incoming {
        Incoming::Message { from, msg } => engine.handle_message(now, from, msg),
        Incoming::Piece(piece) => {
            collectives.handle_piece(now, piece);
            collective_progress(shared, engine, collectives);
        }
        Incoming::Finished(f) => f.report(engine, now),
        Incoming::Abort => unreachable!("the loop stops at an abort"),
    }
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
            shared.faults.transfer(values);
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
        shared.faults.transfer(payload);
    }
    msg
}

#[allow(dead_code)]
fn _assert_error_is_send(e: EngineError) -> impl Send {
    e
}
