//! The sim driver end to end: real workloads and strategies in virtual time.

use dagwire_runtime::{
    DagBuilder, KernelId, Kernels, ParamValue, Params, Payload, Rank, RunOutcome, Strategy, Task, TaskSpec,
};
use dagwire_sim::driver::{SimConfig, SimKernels, run};
use dagwire_sim::machine::{Compute, ComputeMode, Fidelity, LogGp, LogGpSegment, Machine, Topology, load_machine};
use dagwire_strategies::eager::Eager;
use dagwire_workloads::Workload;
use std::sync::Arc;

fn eager(_: Rank) -> Box<dyn Strategy> {
    Box::new(Eager)
}

fn cholesky(n: i64, tile: i64, ranks: usize) -> Box<dyn Workload> {
    let info = dagwire_workloads::find("cholesky").unwrap();
    let params = Params::resolve(
        &(info.params)(),
        [("n".to_string(), ParamValue::Int(n)), ("tile".to_string(), ParamValue::Int(tile))].into(),
    )
    .unwrap();
    (info.prepare)(&params, ranks, 7).unwrap()
}

fn simulate(w: &dyn Workload, machine: &Machine, ranks: usize, run_kernels: bool) -> RunOutcome {
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks, workers: 1, run_kernels, seed: 1 };
    run(w.dag(), &kernels, &eager, machine, cfg).unwrap().run
}

#[test]
fn a_simulated_cholesky_with_real_kernels_verifies_on_every_preset_and_fidelity() {
    for preset in dagwire_sim::machine::preset_names() {
        for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
            let mut machine = load_machine(preset).unwrap();
            machine.fidelity = fidelity;
            for ranks in [2, 3, 4] {
                let w = cholesky(160, 32, ranks);
                let out = simulate(w.as_ref(), &machine, ranks, true);
                let check = w.verify(&out.results);
                assert!(check.passed, "{preset} {fidelity:?} {ranks} ranks: {check:?}");
                assert!(out.makespan_ns > 0);
            }
        }
    }
}

#[test]
fn the_same_point_twice_gives_an_identical_trace() {
    let machine = load_machine("ib-hdr-fattree").unwrap();
    let w = cholesky(512, 64, 16);
    let a = simulate(w.as_ref(), &machine, 16, false);
    let b = simulate(w.as_ref(), &machine, 16, false);
    assert_eq!(a.makespan_ns, b.makespan_ns);
    assert!(a.trace == b.trace, "traces differ between two identical runs");
    assert!(!a.trace.messages.is_empty());
}

#[test]
fn cost_model_runs_scale_to_many_ranks_without_kernels() {
    let machine = load_machine("ib-hdr-fattree").unwrap();
    let ranks = 256;
    let w = cholesky(64 * 40, 64, ranks);
    let out = simulate(w.as_ref(), &machine, ranks, false);
    assert_eq!(out.trace.tasks.len(), w.dag().task_count());
    let busy_ranks: std::collections::BTreeSet<_> = out.trace.tasks.iter().map(|t| t.rank).collect();
    assert_eq!(busy_ranks.len(), ranks, "every rank ran tasks");
}

/// One node-local crossbar machine with a single LogGP segment and fixed compute rate.
fn toy_machine(ranks_per_node: u32) -> Machine {
    let seg = LogGpSegment { from_bytes: 0, o_s_ns: 100.0, o_r_ns: 200.0, g_ns: 0.0, l_ns: 1000.0, g_per_byte_ns: 0.5 };
    Machine {
        name: "toy".into(),
        description: "test".into(),
        fidelity: Fidelity::Analytic,
        ranks_per_node,
        nic_gbps: 1e6,
        inter_node: LogGp { segments: vec![seg.clone()] },
        intra_node: LogGp { segments: vec![seg] },
        topology: Topology::Crossbar { link_gbps: 1e6 },
        compute: Compute {
            mode: ComputeMode::Model,
            cores_per_rank: 1,
            kernel_gflops: Default::default(),
            default_gflops: 1.0,
            task_overhead_ns: 0.0,
        },
        latency_jitter: 0.0,
    }
}

struct Zeros;
impl Kernels for Zeros {
    fn run(&self, task: &Task, _: Vec<Arc<Payload>>) -> Result<Vec<Payload>, String> {
        Ok(task.outputs().map(|_| Payload::zeroed(4096)).collect())
    }
}

#[test]
fn a_two_rank_chain_takes_compute_plus_the_loggp_message_time() {
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[4096]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(3000.0).inputs(&[p.output(0)]).outputs(&[4096]));
    let dag = Arc::new(b.finish());
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let out =
        run(&dag, &kernels, &eager, &toy_machine(1), SimConfig { ranks: 2, workers: 1, run_kernels: true, seed: 1 })
            .unwrap()
            .run;
    // 5000 flop at 1 GFLOP/s = 5000 ns; message o_s + (k-1) G + L + o_r = 100 + 4095*0.5 + 1000 + 200.
    let message = 100 + (4095.0f64 * 0.5).ceil() as u64 + 1000 + 200;
    assert_eq!(out.makespan_ns, 5000 + message + 3000);
    assert_eq!(out.trace.messages.len(), 1);
    assert_eq!(out.trace.messages[0].recv_ns - out.trace.messages[0].sent_ns, message);
}

#[test]
fn a_machine_too_small_for_the_ranks_is_refused() {
    let mut machine = toy_machine(1);
    machine.topology = Topology::Torus { dims: vec![2, 2], link_gbps: 100.0, hop_ns: 10.0 };
    let w = cholesky(256, 32, 8);
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let err = run(w.dag(), &kernels, &eager, &machine, SimConfig { ranks: 8, workers: 1, run_kernels: false, seed: 1 })
        .err()
        .expect("8 nodes do not fit a 2x2 torus");
    assert!(err.to_string().contains("torus"), "{err}");
}

/// A chain of `n` tasks alternating between two ranks: n-1 messages.
fn ping_chain(n: usize) -> Arc<dagwire_runtime::Dag> {
    let mut b = DagBuilder::new(2);
    let mut prev = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[4096])).output(0);
    for i in 1..n {
        let inputs = [prev];
        prev = b.add(TaskSpec::new(KernelId(0), Rank((i % 2) as u32)).inputs(&inputs).outputs(&[4096])).output(0);
    }
    Arc::new(b.finish())
}

#[test]
fn latency_jitter_is_bounded_and_reproducible_from_the_seed() {
    let dag = ping_chain(40);
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let mut machine = toy_machine(1);
    let simulate = |machine: &Machine, seed| {
        let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: false, seed };
        run(&dag, &kernels, &eager, machine, cfg).unwrap().run
    };
    let plain = simulate(&machine, 1);
    machine.latency_jitter = 0.5;
    let (a, b, c) = (simulate(&machine, 1), simulate(&machine, 1), simulate(&machine, 2));
    assert!(a.trace == b.trace, "the same seed must give the same trace");
    assert_ne!(a.makespan_ns, c.makespan_ns, "another seed draws other jitter");
    let base = plain.trace.messages[0].recv_ns - plain.trace.messages[0].sent_ns;
    for m in &a.trace.messages {
        let t = m.recv_ns - m.sent_ns;
        assert!(t >= base && t <= base + 500, "message took {t} ns, outside [{base}, {base} + L/2]");
    }
    assert!(a.trace.messages.iter().any(|m| m.recv_ns - m.sent_ns > base), "jitter never applied");
}

#[test]
fn rendezvous_pays_its_full_handshake_in_virtual_time() {
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[4096]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(3000.0).inputs(&[p.output(0)]).outputs(&[4096]));
    let dag = Arc::new(b.finish());
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let info = dagwire_strategies::find("rendezvous").unwrap();
    let params = Params::resolve(&(info.params)(), Default::default()).unwrap();
    let factory = |r: Rank| (info.build)(&params, r, 2);
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: true, seed: 1 };
    let out = run(&dag, &kernels, &factory, &toy_machine(1), cfg).unwrap().run;
    // T(k) = o_s + ceil((k-1) G) + L + o_r; RTS and CTS are 32-byte headers.
    let t = |k: u64| 100 + ((k - 1) as f64 * 0.5).ceil() as u64 + 1000 + 200;
    assert_eq!(out.trace.messages.len(), 3);
    assert_eq!(out.makespan_ns, 5000 + t(32) + t(32) + t(4096) + 3000, "RTS, CTS and data each cost a message");
}
