//! End to end: dp-train through the local driver and the simulator with each
//! registered strategy, verified bit for bit against one-process training.

use dagwire_runtime::drivers::local::{LocalConfig, run};
use dagwire_runtime::{ChunkId, Fault, ParamError, ParamValue, Progress, RunOutcome};
use dagwire_sim::driver::{SimConfig, SimKernels};
use dagwire_sim::machine::load_machine;
use dagwire_workloads::dp::{self, Config, DpTrain, Kind, reference};
use dagwire_workloads::{Verification, Workload, find};
use std::time::Duration;

const STRATEGIES: [&str; 7] = ["eager", "rendezvous", "batched", "rma", "dagger", "parsec", "starpu"];

fn train(given: &[(&str, ParamValue)], ranks: usize) -> Result<Box<dyn Workload>, ParamError> {
    find("dp-train").unwrap().build(given, ranks, 2024)
}

fn local(w: &dyn Workload, strategy: &str, ranks: usize, fault: Option<Fault>) -> (RunOutcome, Verification) {
    let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&[], w.dag(), 1).unwrap();
    let cfg = LocalConfig { ranks, workers: 2, progress: Progress::Thread, timeout: Duration::from_secs(60), fault };
    let out = run(w.dag(), w.kernels(), &factory, &cfg).unwrap_or_else(|e| panic!("{strategy} on {ranks}: {e}"));
    let v = w.verify(&out.results);
    (out, v)
}

/// Small and quick: 3 layers, buckets of about one layer (`bucket_mb` 0.02 = 20 KiB).
fn small(steps: i64, bucket_mb: f64) -> Vec<(&'static str, ParamValue)> {
    vec![("steps", ParamValue::Int(steps)), ("batch", ParamValue::Int(16)), ("bucket_mb", ParamValue::Float(bucket_mb))]
}

#[test]
fn every_strategy_trains_identical_replicas_locally_and_in_the_simulator() {
    let machine = load_machine("ib-hdr-fattree").unwrap();
    for strategy in STRATEGIES {
        for ranks in [2, 3, 4] {
            let w = train(&small(12, 0.02), ranks).unwrap();
            let (out, v) = local(&*w, strategy, ranks, None);
            assert!(v.passed && v.value == 0.0, "{strategy} on {ranks}: {v:?}");
            let figures = w.figures(&out.trace);
            assert!(figures.iter().any(|f| f.0 == "busbw_gbps" && f.1 > 0.0), "{figures:?}");

            let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&[], w.dag(), 1).unwrap();
            let name = |k| w.kernel_name(k);
            let kernels = SimKernels { kernels: w.kernels(), name: &name };
            let cfg = SimConfig { ranks, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
            let out = dagwire_sim::driver::run(w.dag(), &kernels, &factory, &machine, cfg).unwrap();
            let v = w.verify(&out.run.results);
            assert!(v.passed, "sim {strategy} on {ranks}: {v:?}");
        }
    }
}

#[test]
fn one_rank_equals_plain_training_and_the_loss_falls() {
    let w = train(&[("steps", ParamValue::Int(30))], 1).unwrap();
    let (_, v) = local(&*w, "eager", 1, None);
    assert!(v.passed && v.detail.contains("last quarter"), "{v:?}");
    // Plain training, written out here without buckets or blocks: forward, backward, step.
    let c =
        Config { widths: vec![32, 64, 64, 10], batch: 32, samples: 4096, ranks: 1, lr: 0.3, momentum: 0.9, seed: 2024 };
    let mut states: Vec<Vec<f64>> = (0..3).map(|l| dp::model::init_state(&c, l)).collect();
    let mut first_last = (0.0, 0.0);
    for s in 0..30 {
        let views: Vec<&[f64]> = states.iter().map(Vec::as_slice).collect();
        let (acts, loss) = dp::model::forward(&c, s, 0, &views);
        let mut delta = None;
        let mut grads = vec![Vec::new(); 3];
        for l in (0..3).rev() {
            let (g, prev) = dp::model::backward(&c, l, &acts, &states[l], delta.as_deref());
            grads[l] = g;
            delta = prev;
        }
        for l in 0..3 {
            dp::model::sgd_step(&c, &mut states[l], &grads[l]);
        }
        if s == 0 { first_last.0 = loss } else { first_last.1 = loss }
    }
    assert_eq!(reference(&c, 30, &[vec![2, 1, 0]]).states, states, "bit for bit");
    assert!(first_last.1 < 0.8 * first_last.0, "{first_last:?}");
}

#[test]
fn bucketing_sets_the_number_of_all_reduces() {
    // mlp-small: layers of 2112, 4160 and 650 parameters (16896, 33280 and 5200 bytes).
    let mb = |b: f64| b / (1 << 20) as f64;
    for (bucket_mb, want) in [
        (25.0, vec![vec![2, 1, 0]]),
        (mb(1.0), vec![vec![2], vec![1], vec![0]]),
        (mb(30_000.0), vec![vec![2, 1], vec![0]]),
    ] {
        let params = dagwire_runtime::Params::from_pairs(&dp::params(), &small(2, bucket_mb)).unwrap();
        let w = DpTrain::new(&params, 3, 1).unwrap();
        assert_eq!(w.buckets(), &want[..], "bucket_mb {bucket_mb}");
        // One reduce-scatter ring (3 steps on each of 3 ranks) per bucket and step.
        let reduces = w.dag().task_ids().filter(|&t| w.dag().task(t).kernel == Kind::Reduce.id()).count();
        assert_eq!(reduces, want.len() * 2 * 3 * 3);
        let (out, v) = local(&w, "eager", 3, None);
        assert!(v.passed, "{v:?}");
        assert_eq!(w.figures(&out.trace)[0], ("bucket_count", want.len() as f64));
    }
}

#[test]
fn defaults_learn_on_two_ranks() {
    let w = train(&[], 2).unwrap();
    let (_, v) = local(&*w, "eager", 2, None);
    assert!(v.passed, "{v:?}");
}

#[test]
fn a_corrupted_transfer_fails_verification() {
    for strategy in ["eager", "dagger", "parsec", "starpu"] {
        for ranks in [2, 4] {
            let w = train(&small(3, 0.02), ranks).unwrap();
            let (_, v) = local(&*w, strategy, ranks, Some(Fault::CorruptDataMessage { nth: 0 }));
            assert!(!v.passed && v.value > 0.0, "{strategy} on {ranks}: corruption went unnoticed: {v:?}");
        }
    }
}

#[test]
fn parameter_errors_and_modelled_presets() {
    let err = train(&[("model", ParamValue::Str("32".into()))], 2).err().unwrap();
    assert_eq!(err.key, "model");
    assert_eq!(train(&[], 0).err().unwrap().key, "ranks");
    // The transformer-sized preset builds and costs its flops in the simulator without running.
    let w = train(&[("model", ParamValue::Str("transformer-block-like".into())), ("steps", ParamValue::Int(2))], 4)
        .unwrap();
    let machine = load_machine("ib-hdr-fattree").unwrap();
    let factory = dagwire_strategies::find("eager").unwrap().factory_with(&[], w.dag(), 1).unwrap();
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks: 4, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
    let out = dagwire_sim::driver::run(w.dag(), &kernels, &factory, &machine, cfg).unwrap();
    let figures = w.figures(&out.run.trace);
    let get = |k| figures.iter().find(|f| f.0 == k).unwrap().1;
    assert!(get("step_us") > 0.0 && (0.0..1.0).contains(&get("exposed_comm_share")), "{figures:?}");
    assert!(get("bucket_count") >= 1.0);
}

/// `small` with the all-reduce of `allreduce`.
fn collective(steps: i64, allreduce: &str) -> Vec<(&'static str, ParamValue)> {
    let mut p = small(steps, 0.02);
    p.push(("allreduce", ParamValue::Str(allreduce.into())));
    p
}

#[test]
fn collective_all_reduces_train_identical_replicas_locally_and_in_the_simulator() {
    let machine = load_machine("ib-hdr-fattree").unwrap();
    for algorithm in ["ring", "recursive-doubling", "tree", "native"] {
        for ranks in [1, 2, 3, 4] {
            let w = train(&collective(12, algorithm), ranks).unwrap();
            let dag = w.dag();
            // One collective task per bucket, step and rank; no chunk crosses ranks.
            let buckets = w.figures(&Default::default())[0].1 as usize;
            assert_eq!(dag.collective_tasks().len(), buckets * 12 * ranks, "{algorithm}");
            let remote = |t| dag.output_range(t).any(|c| dag.is_read_remotely(ChunkId(c)));
            assert!(!dag.task_ids().any(remote), "{algorithm} moves chunks");
            for strategy in ["eager", "batched"] {
                let (out, v) = local(&*w, strategy, ranks, None);
                assert!(v.passed && v.bound == dp::COLLECTIVE_TOLERANCE, "{algorithm} {strategy} on {ranks}: {v:?}");
                // With one rank the collective hands the vector back: plain training, bit for bit.
                assert!(ranks > 1 || v.value == 0.0, "{v:?}");
                // Collective tasks sit on a lane of their own, past the workers.
                let lane = out.trace.tasks.iter().filter(|t| t.kernel == Kind::AllReduce.id());
                let workers = out.trace.tasks.iter().filter(|t| t.kernel != Kind::AllReduce.id()).map(|t| t.worker);
                let past = workers.max().unwrap() + 1;
                assert!(lane.clone().all(|t| t.worker >= past && t.end_ns >= t.start_ns), "lane below {past}");
                assert_eq!(lane.count(), buckets * 12 * ranks);
            }
            let factory = dagwire_strategies::find("eager").unwrap().factory_with(&[], w.dag(), 1).unwrap();
            let name = |k| w.kernel_name(k);
            let kernels = SimKernels { kernels: w.kernels(), name: &name };
            let cfg = SimConfig { ranks, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
            let out = dagwire_sim::driver::run(w.dag(), &kernels, &factory, &machine, cfg).unwrap();
            let v = w.verify(&out.run.results);
            assert!(v.passed, "sim {algorithm} on {ranks}: {v:?}");
        }
    }
}

#[test]
fn a_corrupted_collective_contribution_fails_verification() {
    for algorithm in ["ring", "recursive-doubling", "tree"] {
        let w = train(&collective(3, algorithm), 3).unwrap();
        let (_, v) = local(&*w, "eager", 3, Some(Fault::CorruptDataMessage { nth: 0 }));
        assert!(!v.passed && v.value > dp::COLLECTIVE_TOLERANCE, "{algorithm}: corruption went unnoticed: {v:?}");
    }
}
