//! End to end on the libfabric driver with real providers (`tcp`, run by libfabric as
//! `tcp;ofi_rxm`, and `shm`), ranks as processes started by the driver's local
//! launcher: tiled Cholesky and the micro workload verify with the eager and the
//! rendezvous strategies (below and above rendezvous' eager limit) and with the other
//! runtimes' protocols (dagger, parsec, starpu, each in two configurations) on 2 and 3 ranks,
//! Cholesky verifies with batched (collectives run by the shared layer over the driver;
//! all-to-all-v and neighbour exchanges; pieces above the inline limit) and with rma
//! (windows as registered memory: get and put, passive and fence) and with fabric
//! (below and above `rdv_limit`, registration cache on and off), and
//! a corrupted transfer (a message, or one inside a collective) fails Cholesky's
//! verification. Run by `cargo test` (feature `fabric`), this program starts itself as
//! the ranks; each job runs every point in turn.

use dagwire_runtime::drivers::JobRank;
use dagwire_runtime::drivers::fabric::{self, FabricConfig, FabricJob};
use dagwire_runtime::drivers::launch;
use dagwire_runtime::{Fault, ParamValue, Progress};
use dagwire_workloads::Workload;
use std::process::{Command, Stdio};
use std::time::Duration;

const PROVIDER: &str = "DAGWIRE_TEST_FABRIC_PROVIDER";

/// One point: a workload with its parameters, a strategy with its parameters, a fault.
struct Point {
    workload: &'static str,
    params: Vec<(&'static str, ParamValue)>,
    strategy: &'static str,
    strategy_params: Vec<(&'static str, ParamValue)>,
    fault: Option<Fault>,
}

fn points(ranks: usize) -> Vec<Point> {
    let int = ParamValue::Int;
    let cholesky = || vec![("n", int(192)), ("tile", int(32))];
    let micro = |pattern: &str, size: i64| {
        vec![
            ("pattern", ParamValue::Str(pattern.into())),
            ("size", int(size)),
            ("iterations", int(3)),
            ("warmup", int(1)),
            ("window", int(4)),
        ]
    };
    let eager = || (Vec::new(), "eager");
    let mut out = Vec::new();
    for (strategy, strategy_params) in [
        ("eager", Vec::new()),
        ("rendezvous", vec![("eager_limit", int(0))]),
        ("rendezvous", vec![("eager_limit", int(1 << 30))]),
    ] {
        out.push(Point {
            workload: "cholesky",
            params: cholesky(),
            strategy,
            strategy_params: strategy_params.clone(),
            fault: None,
        });
        let patterns: &[(&str, i64)] = if ranks == 2 {
            &[("pingpong", 8), ("pingpong", 1 << 20), ("bandwidth", 64 << 10)]
        } else {
            &[("alltoall", 40 << 10), ("halo", 1000)]
        };
        for &(pattern, size) in patterns {
            out.push(Point {
                workload: "micro",
                params: micro(pattern, size),
                strategy,
                strategy_params: strategy_params.clone(),
                fault: None,
            });
        }
    }
    // Collectives from the shared layer, as pieces over tagged messages: batched with
    // the default all-to-all-v exchange and with the neighbour exchange.
    for strategy_params in [Vec::new(), vec![("exchange", ParamValue::Str("neighbor".into()))]] {
        out.push(Point { workload: "cholesky", params: cholesky(), strategy: "batched", strategy_params, fault: None });
    }
    // 64 x 64 tiles (32 KiB): pieces above the inline limit travel apart after a go-ahead.
    let big_tiles = || vec![("n", int(192)), ("tile", int(64))];
    out.push(Point {
        workload: "cholesky",
        params: big_tiles(),
        strategy: "batched",
        strategy_params: Vec::new(),
        fault: None,
    });
    // rma: windows as registered memory, fi_read/fi_writemsg; passive with and without
    // inline notifications, and fences through the shared layer's barrier.
    let s = |v: &str| ParamValue::Str(v.into());
    for (mode, sync, inline) in [
        ("get", "passive", 0),
        ("put", "passive", 0),
        ("get", "passive", 4096),
        ("get", "fence", 0),
        ("put", "fence", 0),
    ] {
        out.push(Point {
            workload: "cholesky",
            params: cholesky(),
            strategy: "rma",
            strategy_params: vec![("mode", s(mode)), ("sync", s(sync)), ("inline_limit", int(inline))],
            fault: None,
        });
    }
    // fabric: tagged messages below rdv_limit (32 x 32 tiles are 8 KiB), registered
    // chunks pulled with fi_read above it, with and without the registration cache.
    for (rdv_limit, cache) in [(1 << 20, "on"), (0, "on"), (0, "off")] {
        out.push(Point {
            workload: "cholesky",
            params: cholesky(),
            strategy: "fabric",
            strategy_params: vec![("rdv_limit", int(rdv_limit)), ("mr_cache", s(cache))],
            fault: None,
        });
    }
    out.push(Point {
        workload: "cholesky",
        params: cholesky(),
        strategy: "fabric",
        strategy_params: vec![("rdv_limit", int(0))],
        fault: Some(Fault::CorruptDataMessage { nth: 0 }),
    });
    // A corrupted one-sided read fails verification.
    out.push(Point {
        workload: "cholesky",
        params: cholesky(),
        strategy: "rma",
        strategy_params: Vec::new(),
        fault: Some(Fault::CorruptDataMessage { nth: 0 }),
    });
    // A corrupted transfer inside a collective fails verification.
    out.push(Point {
        workload: "cholesky",
        params: cholesky(),
        strategy: "batched",
        strategy_params: Vec::new(),
        fault: Some(Fault::CorruptDataMessage { nth: 0 }),
    });
    // The other runtimes' protocols: Cholesky and one micro pattern verify, a corrupted
    // transfer fails.
    let s = |v: &str| ParamValue::Str(v.into());
    for (strategy, strategy_params) in [
        ("dagger", Vec::new()),
        ("dagger", vec![("metadata", s("readers")), ("header", s("inline")), ("tag_bound", int(1))]),
        ("parsec", vec![("short_limit", int(0))]),
        ("parsec", vec![("propagation", s("binomial"))]),
        ("starpu", vec![("cache", s("off")), ("eager_limit", int(0))]),
        ("starpu", Vec::new()),
    ] {
        out.push(Point {
            workload: "cholesky",
            params: cholesky(),
            strategy,
            strategy_params: strategy_params.clone(),
            fault: None,
        });
        let (pattern, size) = if ranks == 2 { ("pingpong", 1 << 20) } else { ("alltoall", 40 << 10) };
        out.push(Point {
            workload: "micro",
            params: micro(pattern, size),
            strategy,
            strategy_params: strategy_params.clone(),
            fault: None,
        });
    }
    for strategy in ["dagger", "parsec", "starpu"] {
        out.push(Point {
            workload: "cholesky",
            params: cholesky(),
            strategy,
            strategy_params: Vec::new(),
            fault: Some(Fault::CorruptDataMessage { nth: 0 }),
        });
    }
    let (strategy_params, strategy) = eager();
    out.push(Point {
        workload: "cholesky",
        params: cholesky(),
        strategy,
        strategy_params,
        fault: Some(Fault::CorruptDataMessage { nth: 0 }),
    });
    out
}

fn main() {
    if let Ok(provider) = std::env::var(PROVIDER) {
        return rank_main(&provider);
    }
    for provider in ["tcp", "shm"] {
        for ranks in [2, 3] {
            let dir = std::env::temp_dir()
                .join(format!("dagwire-fabric-workloads-{}-{provider}-{ranks}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a log directory");
            let log = |r: usize| dir.join(format!("rank-{r}.err"));
            let exe = std::env::current_exe().expect("own path");
            let job = launch::run(
                ranks,
                |r| {
                    let mut cmd = Command::new(&exe);
                    cmd.env(PROVIDER, provider)
                        .stdout(Stdio::null())
                        .stderr(std::fs::File::create(log(r)).expect("a log file"));
                    cmd
                },
                Duration::from_secs(300),
            )
            .expect("the ranks start");
            let stderr: String = (0..ranks).map(|r| std::fs::read_to_string(log(r)).unwrap_or_default()).collect();
            let _ = std::fs::remove_dir_all(&dir);
            assert!(job.success(), "{provider}, {ranks} ranks: {:?}\n{stderr}", job.failure());
            let verified = stderr.lines().filter(|l| l.starts_with("verified ")).count();
            assert_eq!(verified, points(ranks).len(), "{provider}, {ranks} ranks: rank 0 reported\n{stderr}");
        }
    }
}

/// Runs every point as this rank; rank 0 checks each outcome and says so on stderr.
fn rank_main(provider: &str) {
    let job = FabricJob::from_env().expect("started by the local launcher");
    let boot = std::path::PathBuf::from(std::env::var(fabric::JOB_DIR_ENV).expect("the launcher sets it"));
    for (i, p) in points(job.size()).into_iter().enumerate() {
        let label = format!(
            "{} {:?} with {} {:?}, fault {:?}, {} ranks over {provider}",
            p.workload,
            p.params,
            p.strategy,
            p.strategy_params,
            p.fault,
            job.size()
        );
        // Each point bootstraps afresh, in a directory of its own.
        let dir = boot.join(format!("point-{i}"));
        std::fs::create_dir_all(&dir).expect("a bootstrap directory");
        let point_job = FabricJob::new(job.rank(), job.size(), dir);
        let w: Box<dyn Workload> = dagwire_workloads::find(p.workload)
            .unwrap()
            .build(&p.params, job.size(), 7)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let factory =
            dagwire_strategies::find(p.strategy).unwrap().factory_with(&p.strategy_params, w.dag(), 7).unwrap();
        let cfg = FabricConfig {
            provider: provider.into(),
            workers: 1,
            progress: Progress::Auto,
            timeout: Duration::from_secs(60),
            fault: p.fault,
        };
        let out =
            fabric::run(&point_job, w.dag(), w.kernels(), &factory, &cfg).unwrap_or_else(|e| panic!("{label}: {e}"));
        let Some(out) = out else { continue };
        let v = w.verify(&out.results);
        let moved = out.trace.message_totals().data_messages;
        assert!(moved > 0, "{label}: nothing moved");
        match p.fault {
            None => assert!(v.passed, "{label}: {v:?}"),
            Some(_) => assert!(!v.passed, "{label}: a corrupted transfer verified: {v:?}"),
        }
        eprintln!("verified {label}: {} = {:.3e} (bound {:.1e}), {moved} data messages", v.metric, v.value, v.bound);
    }
}
