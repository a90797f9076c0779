//! The simulator at scale, without the `experiment` binary (no polars to build):
//!
//! - `scale alltoall RANKS [STRATEGY] [FIDELITY] [FROM-TO bytes] [counts|full]`: the
//!   micro `alltoall` workload (10 iterations per size, a tenth of that above 8 KiB, no
//!   warm-up, sizes doubling from FROM to TO, 8-8192 by default) on a zero-overhead
//!   crossbar, counts-only trace unless `full`; prints, per size and in all, the wall
//!   time of DAG build, setup, event loop and trace finish, and each per simulated message.
//! - `scale cholesky RANKS TILES [FIDELITY] [STRATEGY] [MACHINE]`: the cost-model tiled
//!   Cholesky (tile 256) with the full trace; prints DAG build, plan, event loop and
//!   trace-finish times separately, and events/s over the event loop alone. Without a
//!   MACHINE it runs on `ib-hdr-fattree` (8192 ranks at most), or on
//!   `slingshot-11-dragonfly` (16,384) when the ranks do not fit, and says so.
//! - `scale digest`: a fixed set of small runs (cholesky, gemm, micro x strategies x
//!   rank counts x fidelities) with the full trace, one line each with a hash of the
//!   whole outcome (trace records, results' ids and sizes, makespan, event count): run it
//!   before and after a change to the simulator and `diff` the outputs.
//!
//! Run with `cargo run --release -p dagwire-sim --example sim_scale -- ...` (or the dev
//! profile, which optimises the simulator crates).

use dagwire_runtime::{ParamValue, TraceLevel};
use dagwire_sim::driver::{SimConfig, SimKernels, SimOutcome, run};
use dagwire_sim::machine::{Fidelity, LogGpSegment, Machine, load_machine};
use dagwire_workloads::Workload;
use std::hash::{Hash, Hasher};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match arg(0) {
        Some("alltoall") => {
            let ranks: usize = arg(1).expect("RANKS").parse().expect("RANKS is a number");
            let strategy = arg(2).unwrap_or("eager");
            let fidelity = fidelity(arg(3).unwrap_or("analytic"));
            let (from, to) = arg(4).map_or((8, 8192), |r| {
                let (a, b) = r.split_once('-').expect("FROM-TO");
                (a.parse().expect("FROM"), b.parse().expect("TO"))
            });
            let trace = match arg(5).unwrap_or("counts") {
                "counts" => TraceLevel::Counts,
                "full" => TraceLevel::Full,
                other => panic!("trace {other}: counts or full"),
            };
            alltoall(ranks, strategy, fidelity, from, to, trace);
        }
        Some("cholesky") => {
            let ranks: usize = arg(1).expect("RANKS").parse().expect("RANKS is a number");
            let tiles: usize = arg(2).expect("TILES").parse().expect("TILES is a number");
            let fidelity = fidelity(arg(3).unwrap_or("analytic"));
            let strategy = arg(4).unwrap_or("eager");
            let machine = match arg(5) {
                Some(name) => name,
                None => default_machine(ranks),
            };
            cholesky(ranks, tiles, fidelity, strategy, machine);
        }
        Some("digest") => digest(),
        _ => eprintln!(
            "usage: scale alltoall RANKS [STRATEGY] [FIDELITY] [FROM-TO] [counts|full] \
             | cholesky RANKS TILES [FIDELITY] [STRATEGY] [MACHINE] | digest\n\
             cholesky's MACHINE: ib-hdr-fattree (up to 8192 ranks), else slingshot-11-dragonfly (up to 16,384)"
        ),
    }
}

/// Presets `cholesky` runs on without a MACHINE, the first that holds the ranks.
const DEFAULT_MACHINES: [&str; 2] = ["ib-hdr-fattree", "slingshot-11-dragonfly"];

/// The first of [`DEFAULT_MACHINES`] that holds `ranks`; says on stderr when that is not
/// the first. When none does, the first, whose capacity error names the numbers.
fn default_machine(ranks: usize) -> &'static str {
    let holds = |name: &str| {
        let m = load_machine(name).unwrap();
        m.node_capacity().is_none_or(|nodes| nodes * u64::from(m.ranks_per_node) >= ranks as u64)
    };
    match DEFAULT_MACHINES.iter().position(|name| holds(name)) {
        Some(0) | None => DEFAULT_MACHINES[0],
        Some(i) => {
            eprintln!("{} cannot hold {ranks} ranks: running on {}", DEFAULT_MACHINES[0], DEFAULT_MACHINES[i]);
            DEFAULT_MACHINES[i]
        }
    }
}

/// CPU time this thread has used, seconds (the machine is shared: wall time is not ours alone).
fn cpu_s() -> f64 {
    dagwire_sim::driver::thread_cpu_time().map_or(0.0, |d| d.as_secs_f64())
}

fn fidelity(name: &str) -> Fidelity {
    match name {
        "analytic" => Fidelity::Analytic,
        "flow" => Fidelity::Flow,
        other => panic!("fidelity {other}: analytic or flow"),
    }
}

/// A crossbar of single-rank nodes with no CPU overheads: 1 us latency, 12.5 GB/s.
fn zero_overhead_crossbar(fidelity: Fidelity) -> Machine {
    let seg = LogGpSegment {
        from_bytes: 0,
        o_s_ns: 0.0,
        o_r_ns: 0.0,
        g_ns: 0.0,
        l_ns: 1000.0,
        g_per_byte_ns: 0.08,
        o_per_byte_ns: None,
    };
    Machine { fidelity, ..Machine::crossbar("zero-overhead-crossbar", seg, 1, 100.0) }
}

fn micro(ranks: usize, pattern: &str, size: i64, iterations: i64) -> Box<dyn Workload> {
    let given = [
        ("pattern", ParamValue::Str(pattern.into())),
        ("size", ParamValue::Int(size)),
        ("iterations", ParamValue::Int(iterations)),
        ("warmup", ParamValue::Int(0)),
    ];
    dagwire_workloads::find("micro").unwrap().build(&given, ranks, 1).unwrap()
}

fn simulate(w: &dyn Workload, strategy: &str, machine: &Machine, ranks: usize, trace: TraceLevel) -> SimOutcome {
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&[], w.dag(), 1).unwrap();
    let cfg = SimConfig { ranks, workers: 1, run_kernels: false, seed: 1, trace };
    run(w.dag(), &kernels, &factory, machine, cfg).unwrap_or_else(|e| panic!("{strategy} on {ranks} ranks: {e}"))
}

fn alltoall(ranks: usize, strategy: &str, fidelity: Fidelity, from: i64, to: i64, trace: TraceLevel) {
    let machine = zero_overhead_crossbar(fidelity);
    // Wall seconds of each phase over all sizes: DAG build, setup, event loop, finish.
    let mut phases = [0.0f64; 4];
    let (mut cpu, mut loop_cpu, mut messages, mut events) = (0.0, 0.0, 0u64, 0u64);
    let started = Instant::now();
    let mut size = from;
    while size <= to {
        let t = Instant::now();
        let w = micro(ranks, "alltoall", size, 10);
        let build = t.elapsed().as_secs_f64();
        let c = cpu_s();
        let out = simulate(w.as_ref(), strategy, &machine, ranks, trace);
        let s = cpu_s() - c;
        let m = out.run.trace.message_totals();
        let msgs = m.data_messages + m.control_messages;
        let tm = &out.timing;
        let split = [build, tm.setup.as_secs_f64(), tm.event_loop.as_secs_f64(), tm.finish.as_secs_f64()];
        phases.iter_mut().zip(split).for_each(|(p, x)| *p += x);
        cpu += s;
        loop_cpu += tm.event_loop_cpu.unwrap_or_default().as_secs_f64();
        messages += msgs;
        events += out.events;
        println!(
            "  size {size:>6} B: {msgs:>10} messages, {:>10} events, build {:.3} s, setup {:.3} s, loop {:.3} s, \
             finish {:.3} s (wall); run {s:.3} s CPU, {:.3} us CPU/message, makespan {} ns",
            out.events,
            split[0],
            split[1],
            split[2],
            split[3],
            s * 1e6 / msgs as f64,
            out.run.makespan_ns
        );
        drop(out);
        drop(w);
        size *= 2;
    }
    let total = started.elapsed().as_secs_f64();
    let per = |x: f64| x * 1e6 / messages as f64;
    println!(
        "alltoall {ranks} ranks {strategy} {fidelity:?} trace {trace:?}: {messages} messages, {events} events, {total:.2} s \
         wall in all: DAG build {:.2} s, setup {:.2} s, event loop {:.2} s, finish {:.2} s; per message (us): total \
         {:.3}, build {:.3}, setup {:.3}, loop {:.3}, finish {:.3}; run {cpu:.2} s CPU, {:.2} M events/s over the loop (wall), {:.2} M over its CPU time",
        phases[0],
        phases[1],
        phases[2],
        phases[3],
        per(total),
        per(phases[0]),
        per(phases[1]),
        per(phases[2]),
        per(phases[3]),
        events as f64 / phases[2] / 1e6,
        events as f64 / loop_cpu / 1e6
    );
}

fn cholesky(ranks: usize, tiles: usize, fidelity: Fidelity, strategy: &str, machine: &str) {
    let mut machine = load_machine(machine).unwrap();
    machine.fidelity = fidelity;
    let t = Instant::now();
    let given = [("n", ParamValue::Int((tiles * 256) as i64)), ("tile", ParamValue::Int(256))];
    let w = dagwire_workloads::find("cholesky").unwrap().build(&given, ranks, 1).unwrap();
    let build = t.elapsed().as_secs_f64();
    let (t, c) = (Instant::now(), cpu_s());
    let out = simulate(w.as_ref(), strategy, &machine, ranks, TraceLevel::Full);
    let (sim, cpu) = (t.elapsed().as_secs_f64(), cpu_s() - c);
    let t = out.timing;
    println!(
        "cholesky {tiles} tiles ({} tasks) on {ranks} ranks, {strategy}, {fidelity:?}: DAG build {build:.2} s, \
         run {sim:.2} s wall {cpu:.2} s CPU (setup {:.2} s, event loop {:.2} s, finish {:.2} s wall), {} events, \
         {:.2} M events/s over the event loop (wall), {:.2} M over its CPU time, makespan {} ns",
        w.dag().task_count(),
        t.setup.as_secs_f64(),
        t.event_loop.as_secs_f64(),
        t.finish.as_secs_f64(),
        out.events,
        out.events as f64 / t.event_loop.as_secs_f64() / 1e6,
        out.events as f64 / t.event_loop_cpu.unwrap_or_default().as_secs_f64() / 1e6,
        out.run.makespan_ns
    );
}

/// Hashes everything a run's outcome holds that the trace tables show.
fn outcome_hash(out: &SimOutcome) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    format!("{:?}", out.run.trace).hash(&mut h);
    for (id, p) in &out.run.results {
        (id, p.len()).hash(&mut h);
    }
    (out.run.makespan_ns, out.events).hash(&mut h);
    h.finish()
}

fn digest() {
    let mut runs: Vec<(String, Box<dyn Workload>, usize)> = Vec::new();
    for ranks in [4, 16, 64] {
        let nt = if ranks == 64 { 24 } else { 12 };
        let chol = [("n", ParamValue::Int(nt * 64)), ("tile", ParamValue::Int(64))];
        runs.push((
            format!("cholesky nt={nt}"),
            dagwire_workloads::find("cholesky").unwrap().build(&chol, ranks, 1).unwrap(),
            ranks,
        ));
        let gemm = [("n", ParamValue::Int(8 * 64)), ("tile", ParamValue::Int(64))];
        runs.push((
            "gemm nt=8".into(),
            dagwire_workloads::find("gemm").unwrap().build(&gemm, ranks, 1).unwrap(),
            ranks,
        ));
        for (pattern, size) in [("alltoall", 1024), ("alltoall", 65536), ("broadcast", 4096), ("halo", 512)] {
            runs.push((format!("micro {pattern} {size}"), micro(ranks, pattern, size, 3), ranks));
        }
    }
    let mut machines = vec![
        ("crossbar0", zero_overhead_crossbar(Fidelity::Analytic)),
        ("crossbar0", zero_overhead_crossbar(Fidelity::Flow)),
    ];
    for (preset, fid) in [("ib-hdr-fattree", Fidelity::Analytic), ("ib-hdr-fattree", Fidelity::Flow)] {
        let mut m = load_machine(preset).unwrap();
        m.fidelity = fid;
        machines.push((preset, m));
    }
    let mut jittery = load_machine("slingshot-11-dragonfly").unwrap();
    jittery.latency_jitter = 0.3;
    jittery.fidelity = Fidelity::Flow;
    machines.push(("dragonfly+jitter", jittery));
    let strategies: Vec<&str> = dagwire_strategies::REGISTRY.iter().map(|s| s.name).collect();
    for (label, w, ranks) in &runs {
        for (mname, machine) in &machines {
            for strategy in &strategies {
                let name = |k| w.kernel_name(k);
                let kernels = SimKernels { kernels: w.kernels(), name: &name };
                let info = dagwire_strategies::find(strategy).unwrap();
                let factory = info.factory_with(&[], w.dag(), 1).unwrap();
                let cfg = SimConfig { ranks: *ranks, workers: 2, run_kernels: false, seed: 3, trace: TraceLevel::Full };
                let line = match run(w.dag(), &kernels, &factory, machine, cfg) {
                    Ok(out) => {
                        format!("{:016x} makespan {} events {}", outcome_hash(&out), out.run.makespan_ns, out.events)
                    }
                    Err(e) => format!("error {}", e.to_string().lines().next().unwrap_or_default()),
                };
                println!("{label:22} {ranks:3} {mname:16} {:?} {strategy:10} {line}", machine.fidelity);
            }
        }
    }
}
