//! End-to-end: the micro workload through the local driver with the eager, rendezvous and
//! other runtimes' (dagger, parsec, starpu) strategies.

use dagwire_runtime::drivers::local::{LocalConfig, run};
use dagwire_runtime::{Fault, KernelId, ParamError, ParamValue, Params, Progress, Rank, RunOutcome, Strategy};
use dagwire_strategies::eager::Eager;
use dagwire_workloads::micro::{Micro, Pattern};
use dagwire_workloads::{Workload, find};
use std::time::Duration;

const STRATEGIES: [&str; 5] = ["eager", "rendezvous", "dagger", "parsec", "starpu"];

/// Parameters of one micro run.
#[derive(Clone, Copy, Debug)]
struct Point {
    pattern: &'static str,
    size: i64,
    iterations: i64,
    warmup: i64,
    window: i64,
    ranks: usize,
}

impl Point {
    fn new(pattern: &'static str, size: i64, ranks: usize) -> Self {
        Point { pattern, size, iterations: 2, warmup: 1, window: 4, ranks }
    }
}

fn prepare(p: Point) -> Result<Box<dyn Workload>, ParamError> {
    let given = [
        ("pattern", ParamValue::Str(p.pattern.into())),
        ("size", ParamValue::Int(p.size)),
        ("iterations", ParamValue::Int(p.iterations)),
        ("warmup", ParamValue::Int(p.warmup)),
        ("window", ParamValue::Int(p.window)),
    ];
    find("micro").unwrap().build(&given, p.ranks, 1)
}

fn cfg(ranks: usize, progress: Progress, fault: Option<Fault>) -> LocalConfig {
    LocalConfig { ranks, workers: 1, progress, timeout: Duration::from_secs(60), fault }
}

fn run_point(p: Point, strategy: &str, cfg: LocalConfig) -> (Box<dyn Workload>, RunOutcome) {
    let w = prepare(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    let out = match strategy {
        "eager" => run(w.dag(), w.kernels(), &|_r: Rank| Box::new(Eager) as Box<dyn Strategy>, &cfg),
        name => {
            let info = dagwire_strategies::find(name).unwrap();
            let params = Params::resolve(&(info.params)(), Default::default()).unwrap();
            run(w.dag(), w.kernels(), &info.factory(&params, w.dag(), 1), &cfg)
        }
    };
    let out = out.unwrap_or_else(|e| panic!("{p:?} with {strategy}: the run failed: {e}"));
    (w, out)
}

#[test]
fn every_pattern_verifies_with_eager_and_rendezvous() {
    for pattern in Pattern::NAMES {
        for ranks in 2..=4 {
            for size in [1, 8, 4096, 100_000] {
                for strategy in STRATEGIES {
                    let p = Point::new(pattern, size, ranks);
                    let (w, out) = run_point(p, strategy, cfg(ranks, Progress::Thread, None));
                    let v = w.verify(&out.results);
                    assert!(v.passed, "{p:?} with {strategy}: {}", v.detail);
                    assert_eq!(v.value, 0.0, "{p:?} with {strategy}: {v:?}");
                    assert!(!out.trace.messages.is_empty(), "{p:?}: nothing was sent");
                }
            }
        }
    }
}

#[test]
fn verifies_with_inline_progress_and_more_workers() {
    for pattern in Pattern::NAMES {
        for strategy in STRATEGIES {
            let p = Point { window: 16, iterations: 3, ..Point::new(pattern, 1000, 3) };
            let (w, out) = run_point(p, strategy, cfg(3, Progress::Inline, None));
            assert!(w.verify(&out.results).passed, "{p:?} inline with {strategy}");
            let c = LocalConfig { workers: 3, ..cfg(3, Progress::Thread, None) };
            let (w, out) = run_point(p, strategy, c);
            assert!(w.verify(&out.results).passed, "{p:?} with 3 workers and {strategy}");
        }
    }
}

#[test]
fn a_corrupted_transfer_fails_verification_for_every_pattern() {
    for pattern in Pattern::NAMES {
        for strategy in STRATEGIES {
            for (size, ranks) in [(1, 2), (4096, 3), (100_000, 4)] {
                let p = Point::new(pattern, size, ranks);
                let fault = Some(Fault::CorruptDataMessage { nth: 0 });
                let (w, out) = run_point(p, strategy, cfg(ranks, Progress::Thread, fault));
                let v = w.verify(&out.results);
                assert!(!v.passed, "{p:?} with {strategy}: corruption went unnoticed: {v:?}");
                if strategy == "parsec" {
                    // PaRSEC's chain forwards the flipped byte through readers to their children.
                    assert!(v.value >= 1.0, "{p:?} with {strategy}: {v:?}");
                } else {
                    assert_eq!(v.value, 1.0, "{p:?} with {strategy}: one flipped byte: {v:?}");
                }
                assert!(v.detail.contains("wrong"), "{}", v.detail);
            }
        }
    }
}

#[test]
fn lost_counts_fail_verification() {
    let (w, mut out) = run_point(Point::new("halo", 64, 4), "eager", cfg(4, Progress::Thread, None));
    assert!(w.verify(&out.results).passed);
    let last = *out.results.keys().last().unwrap();
    out.results.remove(&last);
    let v = w.verify(&out.results);
    assert!(!v.passed && v.detail.contains("missing"), "{v:?}");
    assert!(!w.verify(&Default::default()).passed);
}

#[test]
fn figures_are_positive_and_finite() {
    let expected: [(&str, &[&str]); 5] = [
        ("pingpong", &["latency_us"]),
        ("bandwidth", &["bandwidth_mbps"]),
        ("alltoall", &["avg_us", "min_us", "max_us"]),
        ("broadcast", &["avg_us", "min_us", "max_us"]),
        ("halo", &["avg_us", "min_us", "max_us"]),
    ];
    for (pattern, names) in expected {
        for strategy in STRATEGIES {
            let p = Point { iterations: 4, warmup: 2, ..Point::new(pattern, 512, 4) };
            let (w, out) = run_point(p, strategy, cfg(4, Progress::Thread, None));
            let figures = w.figures(&out.trace);
            let got: Vec<&str> = figures.iter().map(|f| f.0).collect();
            assert_eq!(got, names, "{p:?} with {strategy}");
            for (name, value) in figures {
                assert!(value.is_finite() && value > 0.0, "{p:?} with {strategy}: {name} = {value}");
            }
            if names.len() == 3 {
                let f = w.figures(&out.trace);
                assert!(f[1].1 <= f[0].1 && f[0].1 <= f[2].1, "min <= avg <= max: {f:?}");
            }
        }
    }
}

fn figure(p: Point, strategy: &str) -> f64 {
    let (w, out) = run_point(p, strategy, cfg(p.ranks, Progress::Thread, None));
    assert!(w.verify(&out.results).passed);
    w.figures(&out.trace)[0].1
}

#[test]
fn pingpong_latency_and_bandwidth_grow_with_size() {
    for strategy in STRATEGIES {
        // One 4 MiB message is filled, copied and checked byte by byte: milliseconds.
        // A 1-byte round trip is engine overhead: tens of microseconds. The best of
        // three small runs keeps a scheduling hiccup from closing that gap.
        let small = Point { iterations: 20, warmup: 2, ..Point::new("pingpong", 1, 2) };
        let large = Point { iterations: 10, warmup: 5, ..Point::new("pingpong", 4 << 20, 2) };
        let best_small = (0..3).map(|_| figure(small, strategy)).fold(f64::INFINITY, f64::min);
        let big = figure(large, strategy);
        assert!(big > 2.0 * best_small, "{strategy}: latency of 4 MiB {big} us vs 1 B {best_small} us");

        let small = Point { iterations: 10, warmup: 1, window: 4, ..Point::new("bandwidth", 1, 2) };
        let large = Point { iterations: 10, warmup: 5, window: 4, ..Point::new("bandwidth", 1 << 20, 2) };
        let worst_small = (0..3).map(|_| figure(small, strategy)).fold(0.0, f64::max);
        let big = figure(large, strategy);
        assert!(big > 10.0 * worst_small, "{strategy}: bandwidth of 1 MiB {big} MB/s vs 1 B {worst_small} MB/s");
    }
}

#[test]
fn large_messages_run_fewer_iterations() {
    let info = find("micro").unwrap();
    let resolve = |size: i64| {
        let given = [("size".to_string(), ParamValue::Int(size))];
        Micro::new(&Params::resolve(&(info.params)(), given.into()).unwrap(), 2).unwrap()
    };
    let small = resolve(8192);
    assert_eq!((small.measured_iterations(), small.warmup_iterations()), (100, 10));
    let large = resolve(8193);
    assert_eq!((large.measured_iterations(), large.warmup_iterations()), (10, 2));
    // pingpong: 4 tasks per iteration.
    assert_eq!(large.dag().task_count(), 12 * 4);
}

#[test]
fn parameter_errors_name_the_key() {
    for pattern in Pattern::NAMES {
        let err = prepare(Point::new(pattern, 8, 1)).err().expect("one rank is refused");
        assert_eq!(err.key, "ranks", "{pattern}: {err}");
        assert!(err.reason.contains("at least 2 ranks"), "{err}");
    }
    let err = prepare(Point { window: 4096, ..Point::new("bandwidth", 1 << 20, 2) }).err().unwrap();
    assert_eq!(err.key, "window", "{err}");
    // 17 ranks send 16 x 64 MiB = 1 GiB each per iteration, the most allowed.
    let err = prepare(Point::new("alltoall", 64 << 20, 18)).err().unwrap();
    assert_eq!(err.key, "size", "{err}");
    assert!(err.reason.contains("18 ranks"), "{err}");
    assert!(prepare(Point::new("alltoall", 64 << 20, 17)).is_ok());
    let err = prepare(Point::new("ring", 8, 2)).err().unwrap();
    assert_eq!(err.key, "pattern", "{err}");
    let err = prepare(Point::new("pingpong", 0, 2)).err().unwrap();
    assert_eq!(err.key, "size", "{err}");
    let err = prepare(Point::new("pingpong", (64 << 20) + 1, 2)).err().unwrap();
    assert_eq!(err.key, "size", "{err}");
    let err = prepare(Point { iterations: 1_000_000, warmup: 1_000_000, ..Point::new("alltoall", 8, 16) }).err();
    assert_eq!(err.unwrap().key, "iterations");
    let err = prepare(Point { iterations: 0, ..Point::new("pingpong", 8, 2) }).err().unwrap();
    assert_eq!(err.key, "iterations", "{err}");
}

#[test]
fn names_flops_defaults_and_registry() {
    let w = prepare(Point::new("halo", 8, 4)).unwrap();
    let names: Vec<_> = (0..3).map(|k| w.kernel_name(KernelId(k))).collect();
    assert_eq!(names, ["send", "recv", "unknown"]);
    assert_eq!(w.useful_flops(), 0.0);
    let info = find("micro").unwrap();
    let d = Params::resolve(&(info.params)(), Default::default()).unwrap();
    assert_eq!(d.str("pattern"), "pingpong");
    assert_eq!((d.int("size"), d.int("iterations"), d.int("warmup"), d.int("window")), (8, 100, 10, 64));
    assert!(dagwire_workloads::REGISTRY.iter().any(|w| w.name == "micro"));
}
