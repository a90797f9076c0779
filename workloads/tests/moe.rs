//! End to end: the MoE layer under every placement policy and strategy on the local
//! driver and in the simulator at 2-4 ranks, verified against the one-rank layer; its
//! histogram and dropped count match a direct count of the routing; a replayed routing
//! file gives the same layer; a corrupted transfer fails verification.

use dagwire_runtime::drivers::local::{LocalConfig, run};
use dagwire_runtime::{Fault, ParamValue, Params, Progress, RunOutcome};
use dagwire_sim::driver::{SimConfig, SimKernels};
use dagwire_sim::machine::load_machine;
use dagwire_workloads::moe::{Moe, Routing};
use dagwire_workloads::{Workload, find};
use std::collections::BTreeMap;
use std::time::Duration;

const STRATEGIES: [&str; 4] = ["eager", "rendezvous", "batched", "rma"];
const POLICIES: [&str; 4] = ["static", "dropless", "replicate-hot", "dynamic"];

fn moe(policy: &str, ranks: usize, extra: &[(&str, ParamValue)]) -> Moe {
    let mut given = vec![
        ("tokens", ParamValue::Int(24)),
        ("d", ParamValue::Int(8)),
        ("hidden", ParamValue::Int(12)),
        ("experts", ParamValue::Int(6)),
        ("zipf", ParamValue::Float(1.0)),
        ("hot", ParamValue::Int(2)),
        ("capacity_factor", ParamValue::Float(1.0)),
        ("policy", ParamValue::Str(policy.into())),
    ];
    // Later pairs override earlier ones.
    for (k, v) in extra {
        given.retain(|(g, _)| g != k);
        given.push((k, v.clone()));
    }
    Moe::new(&Params::from_pairs(&dagwire_workloads::moe::params(), &given).unwrap(), ranks, 11).unwrap()
}

fn local(w: &dyn Workload, strategy: &str, ranks: usize, fault: Option<Fault>) -> Result<RunOutcome, String> {
    let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&[], w.dag(), 1).unwrap();
    let cfg = LocalConfig { ranks, workers: 2, progress: Progress::Thread, timeout: Duration::from_secs(60), fault };
    run(w.dag(), w.kernels(), &factory, &cfg).map_err(|e| e.to_string())
}

fn sim(w: &dyn Workload, strategy: &str, ranks: usize, run_kernels: bool) -> RunOutcome {
    let machine = load_machine("ib-hdr-fattree").unwrap();
    let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&[], w.dag(), 1).unwrap();
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks, workers: 1, run_kernels, seed: 1, trace: Default::default() };
    dagwire_sim::driver::run(w.dag(), &kernels, &factory, &machine, cfg)
        .unwrap_or_else(|e| panic!("{strategy}: {e}"))
        .run
}

fn figures(w: &dyn Workload, out: &RunOutcome) -> BTreeMap<&'static str, f64> {
    w.figures(&out.trace).into_iter().collect()
}

#[test]
fn every_policy_and_strategy_verifies_on_local_and_sim() {
    for policy in POLICIES {
        for ranks in [2, 3, 4] {
            let w = moe(policy, ranks, &[]);
            for strategy in STRATEGIES {
                let label = format!("{policy} {strategy} on {ranks}");
                let out = local(&w, strategy, ranks, None).unwrap_or_else(|e| panic!("{label}: {e}"));
                let v = w.verify(&out.results);
                assert!(v.passed, "local {label}: {v:?}");
                let simulated = sim(&w, strategy, ranks, true);
                let v = w.verify(&simulated.results);
                assert!(v.passed, "sim {label}: {v:?}");
                let (a, b) = (figures(&w, &out), figures(&w, &simulated));
                for key in ["imbalance", "dispatch_bytes", "combine_bytes", "dropped"] {
                    assert_eq!(a[key], b[key], "{label}: {key} differs between local and sim");
                }
            }
        }
    }
}

/// Tokens per (rank, expert) counted straight from the routing.
fn direct_counts(r: &Routing) -> Vec<Vec<u64>> {
    (0..r.ranks)
        .map(|rank| {
            let mut c = vec![0u64; r.experts];
            r.of_rank(rank).0.iter().for_each(|&e| c[e as usize] += 1);
            c
        })
        .collect()
}

#[test]
fn histogram_and_dropped_counts_match_a_direct_count() {
    for (policy, factor) in [("static", 1.0), ("static", 0.5), ("dropless", 1.0)] {
        let w = moe(policy, 3, &[("capacity_factor", ParamValue::Float(factor))]);
        let out = local(&w, "eager", 3, None).unwrap();
        assert!(w.verify(&out.results).passed);
        let f = figures(&w, &out);
        let m = &w;
        let k = m.moe_kernels();
        let counts = direct_counts(&k.routing);
        for e in 0..6 {
            let direct: u64 = counts.iter().map(|c| c[e]).sum();
            assert_eq!(f[format!("tokens_e{e}").as_str()], direct as f64, "{policy}: expert {e}");
        }
        let capacity = k.shape.capacity;
        let dropped: u64 = counts.iter().flatten().map(|&n| capacity.map_or(0, |c| n.saturating_sub(c as u64))).sum();
        assert_eq!(f["dropped"], dropped as f64, "{policy} x{factor}");
        let processed: u64 = m.processed(&out.trace).iter().sum();
        assert_eq!(processed, 3 * 24 * 2 - dropped, "{policy} x{factor}: every kept assignment processed once");
        if policy == "static" && factor < 1.0 {
            assert!(dropped > 0, "a capacity factor of 0.5 drops tokens");
        }
    }
}

#[test]
fn a_replayed_routing_file_gives_the_same_layer() {
    let w = moe("dynamic", 3, &[]);
    let m = &w;
    let path = std::env::temp_dir().join(format!("dagwire-moe-replay-{}.txt", std::process::id()));
    m.moe_kernels().routing.write(&path).unwrap();
    // Another seed for tokens and weights, but the routing from the file.
    let given = [("routing_file", ParamValue::Str(path.display().to_string()))];
    let replay = moe("dynamic", 3, &given);
    let r = &replay;
    assert_eq!(r.moe_kernels().routing, m.moe_kernels().routing);
    let out = local(&replay, "rendezvous", 3, None).unwrap();
    assert!(replay.verify(&out.results).passed);
    std::fs::write(&path, "0 1 0.5 0.5\nnonsense\n").unwrap();
    let err = find("moe").unwrap().build(&given, 3, 11).err().unwrap().to_string();
    std::fs::remove_file(&path).unwrap();
    assert!(err.contains(&format!("{}:2: 1 fields", path.display())), "{err}");
}

#[test]
fn the_backward_pass_verifies_on_every_policy_and_strategy_on_local_and_sim() {
    let on = [("backward", ParamValue::Bool(true))];
    for policy in POLICIES {
        for ranks in [2, 3, 4] {
            let w = moe(policy, ranks, &on);
            let forward_only = moe(policy, ranks, &[]);
            assert!(w.dag().task_count() > forward_only.dag().task_count());
            for strategy in STRATEGIES {
                let label = format!("backward {policy} {strategy} on {ranks}");
                let out = local(&w, strategy, ranks, None).unwrap_or_else(|e| panic!("{label}: {e}"));
                let v = w.verify(&out.results);
                assert!(v.passed, "local {label}: {v:?}");
                let simulated = sim(&w, strategy, ranks, true);
                let v = w.verify(&simulated.results);
                assert!(v.passed, "sim {label}: {v:?}");
                let (a, b) = (figures(&w, &out), figures(&w, &simulated));
                for key in ["backward_to_experts_bytes", "backward_to_tokens_bytes"] {
                    assert_eq!(a[key], b[key], "{label}: {key} differs between local and sim");
                }
                // The reverse all-to-alls move what the forward ones did: every kept row
                // goes back to its expert as a gradient, and comes back to its token.
                assert_eq!(a["backward_to_experts_bytes"], a["combine_bytes"], "{label}");
                assert_eq!(a["backward_to_tokens_bytes"], a["dispatch_bytes"], "{label}");
            }
            // Modelled kernels run the same DAG with the real batch sizes.
            let modelled = sim(&w, "eager", ranks, false);
            assert_eq!(
                figures(&w, &modelled)["backward_to_tokens_bytes"],
                figures(&w, &local(&w, "eager", ranks, None).unwrap())["backward_to_tokens_bytes"]
            );
        }
    }
}

#[test]
fn a_corrupted_backward_transfer_fails_verification() {
    let w = moe(
        "static",
        2,
        &[("zipf", ParamValue::Float(0.0)), ("experts", ParamValue::Int(2)), ("backward", ParamValue::Bool(true))],
    );
    let forward = moe("static", 2, &[("zipf", ParamValue::Float(0.0)), ("experts", ParamValue::Int(2))]);
    // Every data message, the backward pass's included, is checked by the verification.
    let forward_messages = local(&forward, "eager", 2, None).unwrap().trace.message_totals().data_messages;
    let all = local(&w, "eager", 2, None).unwrap().trace.message_totals().data_messages;
    assert!(all > forward_messages);
    for nth in 0..all {
        match local(&w, "eager", 2, Some(Fault::CorruptDataMessage { nth })) {
            Ok(out) => assert!(!w.verify(&out.results).passed, "corrupted transfer {nth} verified"),
            Err(e) => panic!("transfer {nth}: the run failed instead of verifying wrong: {e}"),
        }
    }
}

#[test]
fn a_corrupted_transfer_fails_verification() {
    let w = moe("static", 2, &[("zipf", ParamValue::Float(0.0)), ("experts", ParamValue::Int(2))]);
    for nth in 0..3 {
        match local(&w, "eager", 2, Some(Fault::CorruptDataMessage { nth })) {
            Ok(out) => assert!(!w.verify(&out.results).passed, "corrupted transfer {nth} verified"),
            Err(e) => panic!("transfer {nth}: the run failed instead of verifying wrong: {e}"),
        }
    }
}

#[test]
fn the_simulated_layer_is_the_same_from_run_to_run_and_modelled_batches_are_real_sizes() {
    for policy in POLICIES {
        let w = moe(policy, 4, &[]);
        let a = sim(&w, "eager", 4, false);
        let b = sim(&w, "eager", 4, false);
        assert_eq!(a.trace, b.trace, "{policy}");
        let real = sim(&w, "eager", 4, true);
        let (fa, fr) = (figures(&w, &a), figures(&w, &real));
        for key in ["imbalance", "gini", "dispatch_bytes", "combine_bytes"] {
            assert_eq!(fa[key], fr[key], "{policy}: {key}, modelled vs run");
        }
    }
}

#[test]
fn dynamic_placement_evens_out_a_skewed_load() {
    let given = [("zipf", ParamValue::Float(1.5)), ("tokens", ParamValue::Int(64)), ("experts", ParamValue::Int(8))];
    let imbalance = |policy| {
        let w = moe(policy, 4, &given);
        figures(&w, &sim(&w, "eager", 4, false))["imbalance"]
    };
    let (dropless, dynamic) = (imbalance("dropless"), imbalance("dynamic"));
    assert!(dynamic < dropless, "dynamic {dynamic} vs dropless {dropless}");
}

#[test]
fn a_machine_file_states_the_modelled_expert_ffn_rate() {
    use dagwire_workloads::moe::plan::kernel;
    let preset = dagwire_sim::machine::preset_text("ib-hdr-fattree").unwrap();
    assert!(preset.contains("\nmoe-ffn = 30.0\n"), "the preset states the FFN's rate");
    let w = moe("dropless", 3, &[("d", ParamValue::Int(64)), ("hidden", ParamValue::Int(256))]);
    let ffn_times = |text: &str| -> BTreeMap<dagwire_runtime::TaskId, (f64, u64)> {
        let machine = dagwire_sim::machine::parse_machine("test.toml", text).unwrap();
        let factory = dagwire_strategies::find("eager").unwrap().factory_with(&[], w.dag(), 1).unwrap();
        let name = |k| w.kernel_name(k);
        let kernels = SimKernels { kernels: w.kernels(), name: &name };
        let cfg = SimConfig { ranks: 3, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
        let out = dagwire_sim::driver::run(w.dag(), &kernels, &factory, &machine, cfg).unwrap().run;
        let ffn = out.trace.tasks.iter().filter(|t| t.kernel == kernel::FFN && t.flops > 0.0);
        ffn.map(|t| (t.task, (t.flops, t.end_ns - t.start_ns))).collect()
    };
    let (at30, at60) = (ffn_times(preset), ffn_times(&preset.replace("\nmoe-ffn = 30.0\n", "\nmoe-ffn = 60.0\n")));
    assert!(!at30.is_empty() && at30.keys().eq(at60.keys()));
    let overhead = 1000.0; // the preset's task_overhead_ns
    for ((flops, t30), (_, t60)) in at30.values().zip(at60.values()) {
        assert_eq!(*t30, (overhead + flops / 30.0).ceil() as u64, "{flops} flops at 30 GFLOP/s");
        assert_eq!(*t60, (overhead + flops / 60.0).ceil() as u64, "{flops} flops at 60 GFLOP/s");
    }
}
