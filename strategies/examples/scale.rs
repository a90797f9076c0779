//! The scale target of the strategies: a cost-model tiled Cholesky (`kernels = "model"`,
//! `trace = "counts"`) on many simulated ranks, with any strategy and parameters.
//! Prints tasks, events, wall seconds and the strategy's plan time; measure peak
//! memory around it with `/usr/bin/time -v`.
//!
//! ```text
//! cargo run --release -p dagwire-strategies --example scale -- \
//!     --ranks 1024 --n 46080 --tile 256 --strategy batched exchange=neighbor
//! ```

use dagwire_runtime::{ParamValue, TraceLevel};
use dagwire_sim::driver::{SimConfig, SimKernels};
use std::time::Instant;

fn main() {
    let (mut ranks, mut n, mut tile) = (1024usize, 46080i64, 256i64);
    let (mut strategy, mut machine, mut fidelity) = ("batched".to_string(), "ib-hdr-fattree".to_string(), "analytic");
    let mut given: Vec<(String, ParamValue)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--ranks" => ranks = value().parse().unwrap(),
            "--n" => n = value().parse().unwrap(),
            "--tile" => tile = value().parse().unwrap(),
            "--strategy" => strategy = value(),
            "--machine" => machine = value(),
            "--flow" => fidelity = "flow",
            kv => {
                let (k, v) = kv.split_once('=').expect("strategy parameters as key=value");
                let v = v.parse::<i64>().map(ParamValue::Int).unwrap_or_else(|_| ParamValue::Str(v.into()));
                given.push((k.to_string(), v));
            }
        }
    }
    let sim_params = dagwire_runtime::Params::from_pairs(
        &dagwire_sim::registry::params(),
        &[("machine", ParamValue::Str(machine)), ("fidelity", ParamValue::Str(fidelity.into()))],
    )
    .unwrap();
    let machine = dagwire_sim::registry::machine(&sim_params).unwrap();
    let start = Instant::now();
    let w = dagwire_workloads::find("cholesky")
        .unwrap()
        .build(&[("n", ParamValue::Int(n)), ("tile", ParamValue::Int(tile))], ranks, 1)
        .unwrap();
    let built = start.elapsed().as_secs_f64();
    let given: Vec<(&str, ParamValue)> = given.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let plan_start = Instant::now();
    let factory = dagwire_strategies::find(&strategy).unwrap().factory_with(&given, w.dag(), 1).unwrap();
    let planned = plan_start.elapsed().as_secs_f64();
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks, workers: 1, run_kernels: false, seed: 1, trace: TraceLevel::Counts };
    let sim_start = Instant::now();
    let out = dagwire_sim::driver::run(w.dag(), &kernels, &factory, &machine, cfg).unwrap();
    let simulated = sim_start.elapsed().as_secs_f64();
    let totals = out.run.trace.message_totals();
    println!(
        "{strategy} {given:?}: {} tasks on {ranks} ranks; dag {built:.2} s, plan {planned:.2} s, sim {simulated:.2} s, \
         total {:.2} s; {} events; makespan {:.3} s; messages {} data + {} control",
        w.dag().task_count(),
        start.elapsed().as_secs_f64(),
        out.events,
        out.run.makespan_ns as f64 / 1e9,
        totals.data_messages,
        totals.control_messages,
    );
}
