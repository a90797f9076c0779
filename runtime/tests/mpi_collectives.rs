//! Collectives on the mpi driver under real MPI jobs of 2, 3 and 4 ranks (launched with
//! `--oversubscribe`; `DAGWIRE_MPI_LAUNCHER`, `DAGWIRE_MPI_LAUNCHER_ARGS` override):
//! - every collective kind and algorithm runs in both `collectives` modes and both
//!   progress modes, each completion checked by the probe strategy (a broadcast's
//!   contribution names the tree parent, a reduction's sum is exact, ...);
//! - native (MPI_Ialltoallv, MPI_Iallreduce) and runtime (the shared state machines over
//!   point-to-point pieces) give byte-identical results for all-to-all-v (both
//!   algorithms, contributions from empty to above the driver's inline limit) and
//!   all-reduce (every algorithm, integers stored in f64 and f32, so sums are exact),
//!   with every collective joined at once, so several are open together.

use dagwire_runtime::collective::{
    AllReduceAlgorithm, AllToAllAlgorithm, CollectiveKind, Contribution, DType, ReduceOp,
};
use dagwire_runtime::drivers::CollectivesMode;
use dagwire_runtime::drivers::mpi::{self, Mpi, MpiConfig};
use dagwire_runtime::drivers::probe::{CollectiveProbe, probe_dag};
use dagwire_runtime::message::NO_CHUNK;
use dagwire_runtime::{Capability, ChunkId, Kernels, Message, Payload, Progress, Rank, Strategy, StrategyCtx, Task};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn main() {
    if Mpi::launched() {
        return ranks_main();
    }
    for ranks in 2..=4 {
        let (ok, stderr) = launch(ranks);
        assert!(ok, "the collective checks failed on {ranks} ranks:\n{stderr}");
    }
}

/// Runs this program on `ranks` ranks; (success, stderr). Killed after two minutes.
fn launch(ranks: usize) -> (bool, String) {
    use std::os::unix::process::CommandExt;
    let launcher = std::env::var("DAGWIRE_MPI_LAUNCHER").unwrap_or_else(|_| "mpirun".into());
    let args = std::env::var("DAGWIRE_MPI_LAUNCHER_ARGS").unwrap_or_else(|_| "--oversubscribe".into());
    let log = std::env::temp_dir().join(format!("dagwire-mpi-collectives-{}-{ranks}.err", std::process::id()));
    let mut child = Command::new(&launcher)
        .args(["-n", &ranks.to_string()])
        .args(args.split_whitespace())
        .arg(std::env::current_exe().expect("own path"))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("a log file in the temp dir"))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{launcher}` ({e}); install Open MPI (scripts/packages.txt)"));
    let started = std::time::Instant::now();
    let mut status = None;
    while status.is_none() && started.elapsed() < Duration::from_secs(120) {
        status = child.try_wait().unwrap_or(None);
        std::thread::sleep(Duration::from_millis(50));
    }
    if status.is_none() {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
    }
    let _ = child.wait();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    (status.is_some_and(|s| s.success()), stderr)
}

struct Zeros;
impl Kernels for Zeros {
    fn run(&self, task: &Task, _: Vec<Payload>) -> Result<Vec<Payload>, String> {
        Ok(task.outputs().map(|_| Payload::zeroed(8)).collect())
    }
}

fn ranks_main() {
    let mpi = Mpi::init().expect("MPI initialises");
    let (me, n) = (mpi.rank(), mpi.size());
    let dag = Arc::new(probe_dag(n));
    for collectives in [CollectivesMode::Native, CollectivesMode::Runtime] {
        for progress in [Progress::Inline, Progress::Thread] {
            let probe = |r: Rank| -> Box<dyn Strategy> { Box::new(CollectiveProbe::new(r, n)) };
            let cfg = MpiConfig { progress, collectives, timeout: Duration::from_secs(60), ..MpiConfig::default() };
            let out = mpi::run(&mpi, &dag, &Zeros, &probe, &cfg);
            let out = out.unwrap_or_else(|e| panic!("rank {me}, {collectives:?} {progress:?}: the probe failed: {e}"));
            if let Some(out) = out {
                assert_eq!(out.trace.tasks.len(), n, "{collectives:?} {progress:?}");
            }
        }
    }

    let native = record(&mpi, &dag, CollectivesMode::Native);
    let runtime = record(&mpi, &dag, CollectivesMode::Runtime);
    assert_eq!(native.len(), recorded_kinds(n).len(), "rank {me}: every collective completed");
    for ((id, a), (_, b)) in native.iter().zip(&runtime) {
        assert!(a == b, "rank {me}: collective {id} differs between native and runtime");
    }
    assert_eq!(native, runtime, "rank {me}: the same collectives in the same order");
    // The all-reduces: every algorithm, and MPI's, gives the exact sum, byte for byte.
    let sum: Vec<f64> = (0..ELEMENTS).map(|i| (0..n).map(|r| value(r, i)).sum()).collect();
    for (id, got) in native.iter().chain(&runtime).filter(|(id, _)| *id >= 3) {
        let [c] = &got[..] else { panic!("rank {me}: all-reduce {id} brought {} contributions", got.len()) };
        let bytes = c.messages[0].payload.as_ref().expect("a vector").as_bytes();
        let expected = if *id == 6 { vector(&sum, DType::F32) } else { vector(&sum, DType::F64) };
        assert!(bytes == expected.as_bytes(), "rank {me}: all-reduce {id} is not the exact sum");
    }
    if me == 0 {
        eprintln!("{n} ranks: every collective in both modes; native and runtime byte-identical");
    }
    mpi.barrier();
}

/// Elements of each all-reduce's vector (above the driver's inline limit).
const ELEMENTS: usize = 5000;

/// Element `i` of rank `r`'s vector: a whole number below 2^20 (sums exact in f32 too).
fn value(r: usize, i: usize) -> f64 {
    ((r * 7919 + i * 104_729) % (1 << 20)) as f64 - (1 << 19) as f64
}

fn vector(values: &[f64], dtype: DType) -> Payload {
    match dtype {
        DType::F64 => Payload::from_f64(values.to_vec()),
        DType::F32 => {
            let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
            Payload::from_bytes(bytemuck::cast_slice(&v))
        }
    }
}

/// The collectives [`Recorder`] joins, ids 1, 2, ...: both all-to-all-v algorithms,
/// every all-reduce algorithm over f64, a ring all-reduce over f32.
fn recorded_kinds(_ranks: usize) -> Vec<CollectiveKind> {
    let sum = |dtype, algorithm| CollectiveKind::AllReduce { op: ReduceOp::Sum, dtype, algorithm };
    vec![
        CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Pairwise },
        CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Bruck },
        sum(DType::F64, AllReduceAlgorithm::Ring),
        sum(DType::F64, AllReduceAlgorithm::RecursiveDoubling),
        sum(DType::F64, AllReduceAlgorithm::BinomialTree),
        sum(DType::F32, AllReduceAlgorithm::Ring),
    ]
}

/// What rank `from` sends rank `to` in all-to-all-v `id`: nothing for one pair in
/// three, else a data message of 0 to ~40 KiB (across the inline limit) and a control one.
fn parts(id: u64, from: usize, to: usize) -> Vec<Message> {
    let k = id as usize * 5 + from * 3 + to;
    if k.is_multiple_of(3) {
        return Vec::new();
    }
    let len = [0, 17, 4096, 40_000][k % 4] + from;
    let bytes: Vec<u8> = (0..len).map(|i| (i * 31 + from * 7 + to * 13 + id as usize) as u8).collect();
    let mut data = Message::data(1, ChunkId(from as u32), Payload::from_bytes(&bytes));
    data.arg = (from * 100 + to) as u64;
    vec![data, Message::control(2, NO_CHUNK, id)]
}

type Log = Arc<Mutex<Vec<(u64, Vec<Contribution>)>>>;

/// Joins every collective of [`recorded_kinds`] at once and logs what each brought
/// (times zeroed: they differ from run to run).
struct Recorder {
    rank: Rank,
    ranks: usize,
    done: usize,
    log: Log,
}

impl Strategy for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn op_name(&self, _: u8) -> &'static str {
        "recorder"
    }
    fn needs(&self) -> &'static [Capability] {
        &[Capability::AllToAllV, Capability::AllReduce]
    }
    fn on_start(&mut self, ctx: &mut StrategyCtx<'_>) {
        let (r, p) = (self.rank.index(), self.ranks);
        for (i, kind) in recorded_kinds(p).into_iter().enumerate() {
            let id = i as u64 + 1;
            let sends = match &kind {
                CollectiveKind::AllReduce { dtype, .. } => {
                    let values: Vec<f64> = (0..ELEMENTS).map(|e| value(r, e)).collect();
                    vec![(self.rank, vec![Message::data(3, ChunkId(r as u32), vector(&values, *dtype))])]
                }
                _ => (0..p).filter(|&d| d != r).map(|d| (Rank(d as u32), parts(id, r, d))).collect(),
            };
            ctx.join_collective(id, kind, sends);
        }
    }
    fn on_chunk_ready(&mut self, _: &mut StrategyCtx<'_>, _: ChunkId, _: &Payload, _: &[Rank]) {}
    fn on_message(&mut self, _: &mut StrategyCtx<'_>, from: Rank, _: Message) -> Result<(), String> {
        Err(format!("a point-to-point message from {from}"))
    }
    fn on_collective_done(&mut self, _: &mut StrategyCtx<'_>, id: u64, got: Vec<Contribution>) -> Result<(), String> {
        let zeroed = got
            .into_iter()
            .map(|c| Contribution {
                sent_ns: 0,
                recv_ns: 0,
                messages: c.messages.into_iter().map(|m| Message { sent_ns: 0, ..m }).collect(),
                ..c
            })
            .collect();
        self.log.lock().unwrap().push((id, zeroed));
        self.done += 1;
        Ok(())
    }
    fn is_idle(&self) -> bool {
        self.done == recorded_kinds(self.ranks).len()
    }
}

/// Runs the recorder with `collectives`; what this rank received, by collective id.
fn record(mpi: &Mpi, dag: &Arc<dagwire_runtime::Dag>, collectives: CollectivesMode) -> Vec<(u64, Vec<Contribution>)> {
    let log: Log = Arc::default();
    let ranks = mpi.size();
    let factory = |rank: Rank| -> Box<dyn Strategy> { Box::new(Recorder { rank, ranks, done: 0, log: log.clone() }) };
    let cfg = MpiConfig { collectives, timeout: Duration::from_secs(60), ..MpiConfig::default() };
    if let Err(e) = mpi::run(mpi, dag, &Zeros, &factory, &cfg) {
        panic!("rank {}, {collectives:?}: the recorder failed: {e}", mpi.rank());
    }
    let mut got = std::mem::take(&mut *log.lock().unwrap());
    got.sort_by_key(|(id, _)| *id);
    got
}
