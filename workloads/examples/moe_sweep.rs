//! The grid of `sweeps/moe.toml` (64 simulated ranks, modelled kernels) or, with
//! `local`, of `sweeps/moe-local.toml` (4 ranks, real kernels, verified), printed as a
//! table without the `experiment` command (and so without building polars):
//! `cargo run --release -p dagwire-workloads --example moe_sweep [local]`.

use dagwire_runtime::drivers::local::{LocalConfig, run};
use dagwire_runtime::{ParamValue, Params, Progress};
use dagwire_sim::driver::{SimConfig, SimKernels};
use dagwire_sim::machine::load_machine;
use dagwire_workloads::Workload;
use dagwire_workloads::moe::Moe;
use std::collections::BTreeMap;
use std::time::Duration;

fn main() {
    let local = std::env::args().any(|a| a == "local");
    let (ranks, tokens, d, hidden, replicas) = if local { (4, 256, 128, 256, 2) } else { (64, 512, 512, 2048, 4) };
    println!("policy,strategy,zipf,layer_us,imbalance,gini,dropped,dispatch_mb,combine_mb,a2a_share,verified");
    for zipf in [0.0, 0.8, 1.2] {
        for policy in ["static", "dropless", "replicate-hot", "dynamic"] {
            let given = [
                ("tokens", ParamValue::Int(tokens)),
                ("d", ParamValue::Int(d)),
                ("hidden", ParamValue::Int(hidden)),
                ("experts", ParamValue::Int(64)),
                ("top_k", ParamValue::Int(2)),
                ("zipf", ParamValue::Float(zipf)),
                ("policy", ParamValue::Str(policy.into())),
                ("capacity_factor", ParamValue::Float(1.25)),
                ("replicas", ParamValue::Int(replicas)),
                ("hot", ParamValue::Int(8)),
            ];
            let params = Params::from_pairs(&dagwire_workloads::moe::params(), &given).unwrap();
            let w = Moe::new(&params, ranks, 1).unwrap();
            for strategy in ["eager", "rendezvous", "batched", "rma"] {
                let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&[], w.dag(), 1).unwrap();
                let (out, verified) = if local {
                    let cfg = LocalConfig {
                        ranks,
                        workers: 1,
                        progress: Progress::Auto,
                        timeout: Duration::from_secs(300),
                        fault: None,
                    };
                    let out = run(w.dag(), w.kernels(), &factory, &cfg).unwrap();
                    let v = w.verify(&out.results).passed.to_string();
                    (out, v)
                } else {
                    let machine = load_machine("ib-hdr-fattree").unwrap();
                    let name = |k| w.kernel_name(k);
                    let kernels = SimKernels { kernels: w.kernels(), name: &name };
                    let cfg = SimConfig { ranks, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
                    let out = dagwire_sim::driver::run(w.dag(), &kernels, &factory, &machine, cfg).unwrap().run;
                    (out, "model".to_string())
                };
                let f: BTreeMap<&str, f64> = w.figures(&out.trace).into_iter().collect();
                println!(
                    "{policy},{strategy},{zipf},{:.1},{:.3},{:.3},{},{:.2},{:.2},{:.3},{verified}",
                    out.makespan_ns as f64 / 1e3,
                    f["imbalance"],
                    f["gini"],
                    f["dropped"],
                    f["dispatch_bytes"] / 1e6,
                    f["combine_bytes"] / 1e6,
                    f.get("a2a_share").copied().unwrap_or(f64::NAN),
                );
            }
        }
    }
}
