//! The sim driver end to end: real workloads and strategies in virtual time.

use dagwire_runtime::{
    Dag, DagBuilder, KernelId, Kernels, ParamValue, Payload, Rank, RunOutcome, Strategy, Task, TaskSpec, TraceLevel,
};
use dagwire_sim::driver::{SimConfig, SimKernels, run};
use dagwire_sim::machine::{Fidelity, Machine, Topology, load_machine};
use dagwire_strategies::eager::Eager;
use dagwire_workloads::Workload;
use std::sync::Arc;

#[path = "common/toy.rs"]
mod toy;
use toy::toy_machine;

fn eager(_: Rank) -> Box<dyn Strategy> {
    Box::new(Eager)
}

/// A registered strategy with parameters, as a sweep names it; planned against the DAG
/// of each run that uses it.
struct Pick(&'static str, Vec<(&'static str, ParamValue)>);

impl Pick {
    fn factory(&self, dag: &Arc<Dag>) -> impl Fn(Rank) -> Box<dyn Strategy> + Sync + use<> {
        dagwire_strategies::find(self.0).unwrap().factory_with(&self.1, dag, 1).unwrap()
    }
}

fn cholesky(n: i64, tile: i64, ranks: usize) -> Box<dyn Workload> {
    let given = [("n", ParamValue::Int(n)), ("tile", ParamValue::Int(tile))];
    dagwire_workloads::find("cholesky").unwrap().build(&given, ranks, 7).unwrap()
}

/// Simulates Cholesky(`n`, tile 32) with real kernels on `ranks` ranks of the IB
/// fat-tree at `fidelity`, and checks that it verifies.
fn verified_cholesky(
    n: i64,
    ranks: usize,
    fidelity: Fidelity,
    strategy: &Pick,
    label: &str,
) -> dagwire_sim::driver::SimOutcome {
    let mut machine = load_machine("ib-hdr-fattree").unwrap();
    machine.fidelity = fidelity;
    let w = cholesky(n, 32, ranks);
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
    let out =
        run(w.dag(), &kernels, &strategy.factory(w.dag()), &machine, cfg).unwrap_or_else(|e| panic!("{label}: {e}"));
    let check = w.verify(&out.run.results);
    assert!(check.passed, "{label}: {check:?}");
    out
}

fn simulate(w: &dyn Workload, machine: &Machine, ranks: usize, run_kernels: bool) -> RunOutcome {
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks, workers: 1, run_kernels, seed: 1, trace: Default::default() };
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
fn the_dagger_evaluation_presets_run_a_modelled_cholesky_on_64_ranks_with_each_runtime_protocol() {
    let w = cholesky(8192, 512, 64);
    let mut makespans = Vec::new();
    for preset in ["aurora", "aws-efa"] {
        let machine = load_machine(preset).unwrap();
        for strategy in ["eager", "dagger", "parsec", "starpu"] {
            let name = |k| w.kernel_name(k);
            let kernels = SimKernels { kernels: w.kernels(), name: &name };
            let cfg = SimConfig { ranks: 64, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
            let factory = Pick(strategy, vec![]).factory(w.dag());
            let out = run(w.dag(), &kernels, &factory, &machine, cfg).unwrap_or_else(|e| panic!("{preset}: {e}"));
            assert_eq!(out.run.trace.tasks.len(), w.dag().task_count(), "{preset} {strategy}");
            makespans.push(out.run.makespan_ns);
        }
    }
    // EFA's 15 us latency and slower cores cost time against Aurora, protocol by protocol.
    for i in 0..4 {
        assert!(makespans[4 + i] > makespans[i], "{makespans:?}");
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

struct Zeros;
impl Kernels for Zeros {
    fn run(&self, task: &Task, _: Vec<Payload>) -> Result<Vec<Payload>, String> {
        Ok(task.outputs().map(|_| Payload::zeroed(4096)).collect())
    }
}

/// r0 computes 5000 flops and sends 4096 bytes to r1, which computes 3000 flops.
fn producer_and_reader() -> Arc<dagwire_runtime::Dag> {
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[4096]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(3000.0).inputs(&[p.output(0)]).outputs(&[4096]));
    Arc::new(b.finish())
}

#[test]
fn a_two_rank_chain_takes_compute_plus_the_loggp_message_time() {
    let dag = producer_and_reader();
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let out = run(
        &dag,
        &kernels,
        &eager,
        &toy_machine(1),
        SimConfig { ranks: 2, workers: 1, run_kernels: true, seed: 1, trace: Default::default() },
    )
    .unwrap()
    .run;
    // 5000 flop at 1 GFLOP/s = 5000 ns; message o_s + (k-1) G + L + o_r = 100 + 4095*0.5 + 1000 + 200.
    let message = 100 + (4095.0f64 * 0.5).ceil() as u64 + 1000 + 200;
    assert_eq!(out.makespan_ns, 5000 + message + 3000);
    assert_eq!(out.trace.messages.len(), 1);
    assert_eq!(out.trace.messages[0].recv_ns - out.trace.messages[0].sent_ns, message);
}

#[test]
fn a_strategy_timer_fires_at_its_virtual_time() {
    use dagwire_runtime::drivers::testing::Delayed;
    let dag = producer_and_reader();
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
    let message = 100 + (4095.0f64 * 0.5).ceil() as u64 + 1000 + 200;
    for delay in [0, 1, 12_345] {
        let strategy = move |_: Rank| -> Box<dyn Strategy> { Box::new(Delayed::new(delay)) };
        let out = run(&dag, &kernels, &strategy, &toy_machine(1), cfg).unwrap().run;
        // The chunk waits `delay` after its producer, then moves as in the chain above.
        assert_eq!(out.makespan_ns, 5000 + delay + message + 3000, "delay {delay}");
        assert_eq!(out.trace.messages[0].sent_ns, 5000 + delay);
    }
}

#[test]
fn a_machine_too_small_for_the_ranks_is_refused() {
    let mut machine = toy_machine(1);
    machine.topology = Topology::Torus { dims: vec![2, 2], link_gbps: 100.0, hop_ns: 10.0 };
    let w = cholesky(256, 32, 8);
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let err = run(
        w.dag(),
        &kernels,
        &eager,
        &machine,
        SimConfig { ranks: 8, workers: 1, run_kernels: false, seed: 1, trace: Default::default() },
    )
    .expect_err("8 nodes do not fit a 2x2 torus");
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
        let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: false, seed, trace: Default::default() };
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
    let dag = producer_and_reader();
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let factory = Pick("rendezvous", vec![]).factory(&dag);
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
    let out = run(&dag, &kernels, &factory, &toy_machine(1), cfg).unwrap().run;
    // T(k) = o_s + ceil((k-1) G) + L + o_r; RTS and CTS are 32-byte headers.
    let t = |k: u64| 100 + ((k - 1) as f64 * 0.5).ceil() as u64 + 1000 + 200;
    assert_eq!(out.trace.messages.len(), 3);
    assert_eq!(out.makespan_ns, 5000 + t(32) + t(32) + t(4096) + 3000, "RTS, CTS and data each cost a message");
}

/// The control-message cost, closed form: a rendezvous transfer takes exactly the eager
/// one plus two control messages, each `T(32)` and the cost on its receiver; eager (no
/// control message) does not change; a ping-pong's control messages queue on the
/// receiver's CPU like `o_r`. Zero cost gives the trace of a machine without the key.
#[test]
fn a_control_message_costs_its_receiver_the_machines_control_cost() {
    let dag = producer_and_reader();
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
    let t = |k: u64| 100 + ((k - 1) as f64 * 0.5).ceil() as u64 + 1000 + 200;
    let factory = Pick("rendezvous", vec![]).factory(&dag);
    let with = |control: f64, fidelity: Fidelity| {
        let mut m = toy_machine(1);
        m.fidelity = fidelity;
        m.compute.control_message_ns = control;
        let eager = run(&dag, &kernels, &eager, &m, cfg).unwrap().run;
        let rendezvous = run(&dag, &kernels, &factory, &m, cfg).unwrap().run;
        (eager, rendezvous)
    };
    for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
        let (eager0, rendezvous0) = with(0.0, fidelity);
        // 2499.5 ns rounds up, as every term does.
        let (eager, rendezvous) = with(2499.5, fidelity);
        assert_eq!(eager.makespan_ns, 5000 + t(4096) + 3000, "{fidelity:?}");
        assert_eq!(eager.trace, eager0.trace, "eager sends no control message");
        assert_eq!(rendezvous0.makespan_ns, eager.makespan_ns + 2 * t(32));
        assert_eq!(rendezvous.makespan_ns, eager.makespan_ns + 2 * (t(32) + 2500), "{fidelity:?}");
        // Each control message's one-way time includes the cost; the data's does not.
        let times: Vec<u64> = rendezvous.trace.messages.iter().map(|m| m.recv_ns - m.sent_ns).collect();
        assert_eq!(times, [t(32) + 2500, t(32) + 2500, t(4096)], "{fidelity:?}");
    }
}

/// r0's 5000-flop producer sends 4096 bytes to r1's 3000-flop reader while r1 runs an
/// independent 20000-flop kernel.
fn reader_busy_in_a_kernel() -> Arc<dagwire_runtime::Dag> {
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[4096]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(20000.0).outputs(&[4096]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(3000.0).inputs(&[p.output(0)]).outputs(&[4096]));
    Arc::new(b.finish())
}

#[test]
fn with_inline_progress_a_message_to_a_rank_in_a_kernel_waits_for_the_kernel_to_end() {
    use dagwire_sim::machine::ProgressModel;
    let dag = reader_busy_in_a_kernel();
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
    let t = |k: u64| 100 + ((k - 1) as f64 * 0.5).ceil() as u64 + 1000 + 200;
    let machine = |progress| {
        let mut m = toy_machine(1);
        m.compute.progress = progress;
        m
    };
    let eager_on = |progress| run(&dag, &kernels, &eager, &machine(progress), cfg).unwrap().run;
    // Eager: handled on arrival beside the kernel, or when the kernel ends at 20000; the
    // reader waits for r1's one core either way.
    let (thread, inline) = (eager_on(ProgressModel::Thread), eager_on(ProgressModel::Inline));
    assert_eq!(thread.trace.messages[0].recv_ns, 5000 + t(4096));
    assert_eq!(inline.trace.messages[0].recv_ns, 20000);
    assert_eq!((thread.makespan_ns, inline.makespan_ns), (23000, 23000));
    // Rendezvous: the ready-to-send waits for the kernel too, so the clear-to-send and
    // the data leave r1's side only at 20000.
    let factory = Pick("rendezvous", vec![]).factory(&dag);
    let rendezvous_on = |progress| run(&dag, &kernels, &factory, &machine(progress), cfg).unwrap().run;
    assert_eq!(rendezvous_on(ProgressModel::Thread).makespan_ns, 23000, "the handshake hides under the kernel");
    assert_eq!(rendezvous_on(ProgressModel::Inline).makespan_ns, 20000 + t(32) + t(4096) + 3000);
    // The same inputs give the same trace.
    assert_eq!(rendezvous_on(ProgressModel::Inline).trace, rendezvous_on(ProgressModel::Inline).trace);
}

/// A batched factory through the registry, as a sweep would build it.
fn batched(epochs: &str, epoch_tasks: i64) -> Pick {
    Pick("batched", vec![("epochs", ParamValue::Str(epochs.into())), ("epoch_tasks", ParamValue::Int(epoch_tasks))])
}

#[test]
fn a_batched_cholesky_verifies_in_both_epoch_modes_with_every_step_through_the_network() {
    for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
        for ranks in [2, 3, 4] {
            for (mode, k) in [("level", 1), ("tasks", 1), ("tasks", 6)] {
                let label = format!("{fidelity:?} {ranks} ranks {mode}/{k}");
                let out = verified_cholesky(160, ranks, fidelity, &batched(mode, k), &label);
                let trace = &out.run.trace;
                assert!(trace.messages.iter().all(|m| m.kind.starts_with("batch-") || m.kind == "empty"), "{label}");
                // Every pairwise step is one network message: p (p - 1) per collective,
                // and the simulator's events are exactly the tasks and those messages.
                let per_collective = ranks * (ranks - 1);
                assert_eq!(trace.messages.len() % per_collective, 0, "{label}");
                assert_eq!(out.events as usize, trace.tasks.len() + trace.messages.len(), "{label}");
                for m in &trace.messages {
                    assert!(m.recv_ns > m.sent_ns, "{label}: {m:?}");
                }
            }
        }
    }
}

#[test]
fn a_batched_all_to_all_v_is_a_pairwise_exchange_in_virtual_time() {
    // r0 produces one 4096-byte chunk that r1 and r2 read: one collective, two data and
    // four header steps. Step i: r sends to r+i, receives from r-i, then moves on.
    let mut b = DagBuilder::new(3);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[4096]));
    for r in [1, 2] {
        b.add(TaskSpec::new(KernelId(0), Rank(r)).flops(3000.0).inputs(&[p.output(0)]).outputs(&[4096]));
    }
    let dag = Arc::new(b.finish());
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let cfg = SimConfig { ranks: 3, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
    let out = run(&dag, &kernels, &batched("level", 1).factory(&dag), &toy_machine(1), cfg).unwrap().run;
    let steps: Vec<(u32, u32, &str, u64, u64)> =
        out.trace.messages.iter().map(|m| (m.src.0, m.dst.0, m.kind, m.sent_ns, m.recv_ns)).collect();
    // T(k) = o_s + ceil((k-1) G) + L + o_r on an idle path.
    let t = |k: u64| 100 + ((k - 1) as f64 * 0.5).ceil() as u64 + 1000 + 200;
    let (h, d) = (t(32), t(4096));
    // r1 and r2 produce nothing in epoch 0 and join at once; r0 joins when its task ends
    // at 5000 and, holding r2's step-1 header already, sends both data steps back to back:
    // the second waits for the first's o_s and then for the NIC (k G = 2048 ns apart).
    // `second` is when its injection starts; the rest of T(4096) after o_s follows.
    let second = 5000 + 100 + 2048;
    assert_eq!(
        steps,
        [
            (1, 2, "empty", 0, h),
            (2, 0, "empty", 0, h),
            (2, 1, "empty", h, 2 * h),
            (0, 1, "batch-data", 5000, 5000 + d),
            (0, 2, "batch-data", 5000, second + d - 100),
            (1, 0, "empty", 5000 + d, 5000 + d + h),
        ]
    );
    assert_eq!(out.makespan_ns, second + d - 100 + 3000);
}

#[test]
fn both_built_in_drivers_offer_collectives_and_a_driver_without_them_refuses_batched() {
    use dagwire_runtime::collective::{Capability, check_capabilities};
    for offers in [dagwire_sim::driver::CAPABILITIES, dagwire_runtime::drivers::local::CAPABILITIES] {
        assert!(offers.contains(&Capability::AllToAllV) && offers.contains(&Capability::PointToPoint));
    }
    let s = batched("level", 1).factory(&cholesky(64, 32, 2).dag().clone())(Rank(0));
    let err = check_capabilities("p2p-only", Capability::POINT_TO_POINT, s.name(), s.needs()).unwrap_err();
    assert!(err.to_string().contains("strategy batched needs collectives (all-to-all-v), which driver p2p-only"));
}

/// Batched with broadcasts for chunks read on more than `threshold` other ranks.
fn batched_trees(threshold: i64, tree: &str, segment_bytes: i64) -> Pick {
    let given = vec![
        ("bcast_threshold", ParamValue::Int(threshold)),
        ("tree", ParamValue::Str(tree.into())),
        ("segment_bytes", ParamValue::Int(segment_bytes)),
    ];
    Pick("batched", given)
}

#[test]
fn a_batched_cholesky_with_broadcast_trees_verifies() {
    for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
        for (threshold, tree) in [(1, "binomial"), (2, "chain")] {
            let label = format!("{fidelity:?} bcast>{threshold} {tree}");
            let out = verified_cholesky(192, 6, fidelity, &batched_trees(threshold, tree, 2048), &label);
            assert!(out.run.trace.messages.iter().any(|m| m.kind == "batch-bcast"), "{label}");
        }
    }
}

/// Rank 0 produces one chunk of `bytes` that every other of `ranks` ranks reads.
fn one_to_all(ranks: u32, bytes: u64) -> Arc<dagwire_runtime::Dag> {
    let mut b = DagBuilder::new(ranks as usize);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[bytes]));
    for r in 1..ranks {
        b.add(TaskSpec::new(KernelId(0), Rank(r)).flops(1000.0).inputs(&[p.output(0)]).outputs(&[8]));
    }
    Arc::new(b.finish())
}

fn simulate_dag(dag: &Arc<Dag>, strategy: &Pick) -> (RunOutcome, u64) {
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let cfg = SimConfig { ranks: dag.ranks(), workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
    let out = run(dag, &kernels, &strategy.factory(dag), &toy_machine(1), cfg).unwrap();
    (out.run, out.events)
}

#[test]
fn a_binomial_broadcast_forwards_along_the_tree_after_each_arrival() {
    use dagwire_runtime::collective::Tree;
    let dag = one_to_all(8, 4096);
    let (out, events) = simulate_dag(&dag, &batched_trees(1, "binomial", 1));
    // One record and one network message per tree edge; nothing else moves.
    let mut got: Vec<(u32, u32)> = out.trace.messages.iter().map(|m| (m.src.0, m.dst.0)).collect();
    let mut want: Vec<(u32, u32)> = (1..8).map(|v| (Tree::Binomial.parent(v).unwrap() as u32, v as u32)).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(events as usize, dag.task_count() + 7);
    // A member forwards only after its own copy arrived: r4 -> r6 -> r7 is three hops.
    let at = |src: u32, dst: u32| out.trace.messages.iter().find(|m| (m.src.0, m.dst.0) == (src, dst)).unwrap();
    assert!(at(4, 6).sent_ns >= at(0, 4).recv_ns && at(6, 7).sent_ns >= at(4, 6).recv_ns);
    // The root sends to the farthest subtree first.
    assert!(at(0, 4).sent_ns <= at(0, 2).sent_ns && at(0, 2).sent_ns <= at(0, 1).sent_ns);
    let t = |k: u64| 100 + ((k - 1) as f64 * 0.5).ceil() as u64 + 1000 + 200;
    assert_eq!(at(0, 4).recv_ns, 5000 + t(4096), "the first edge is an idle path");
}

#[test]
fn a_pipelined_chain_beats_an_unpipelined_one_and_sends_every_segment_on_each_edge() {
    let dag = one_to_all(5, 64 * 1024);
    let (whole, whole_events) = simulate_dag(&dag, &batched_trees(1, "chain", 64 * 1024));
    let (piped, piped_events) = simulate_dag(&dag, &batched_trees(1, "chain", 8 * 1024));
    let chain: Vec<(u32, u32)> = (0..4).map(|r| (r, r + 1)).collect();
    for out in [&whole, &piped] {
        let mut edges: Vec<(u32, u32)> = out.trace.messages.iter().map(|m| (m.src.0, m.dst.0)).collect();
        edges.sort_unstable();
        assert_eq!(edges, chain, "one record per chain edge");
    }
    assert_eq!(whole_events as usize, dag.task_count() + 4);
    assert_eq!(piped_events as usize, dag.task_count() + 8 * 4, "8 segments on each of 4 edges");
    assert!(
        piped.makespan_ns < whole.makespan_ns,
        "pipelining should pay off: {} vs {}",
        piped.makespan_ns,
        whole.makespan_ns
    );
}

/// An rma factory through the registry, as a sweep would build it.
fn rma(mode: &str, sync: &str) -> Pick {
    Pick("rma", vec![("mode", ParamValue::Str(mode.into())), ("sync", ParamValue::Str(sync.into()))])
}

#[test]
fn an_rma_cholesky_verifies_in_every_mode_and_sync() {
    for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
        for ranks in [2, 3, 4] {
            for (mode, sync) in [("get", "passive"), ("put", "passive"), ("get", "fence"), ("put", "fence")] {
                let label = format!("{fidelity:?} {ranks} ranks {mode}/{sync}");
                let out = verified_cholesky(160, ranks, fidelity, &rma(mode, sync), &label);
                let kind = if mode == "get" { "rma-get" } else { "rma-put" };
                assert!(out.run.trace.messages.iter().any(|m| m.kind == kind), "{label}");
            }
        }
    }
}

#[test]
fn rma_pays_request_data_and_acknowledgement_legs_in_virtual_time() {
    let dag = producer_and_reader();
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
    // T(k) = o_s + ceil((k-1) G) + L + o_r; notifications, requests, acks and fence
    // steps are 32-byte headers.
    let t = |k: u64| 100 + ((k - 1) as f64 * 0.5).ceil() as u64 + 1000 + 200;
    // get/passive: notify, request, data. put/passive: data, ack, notify. put/fence:
    // data, ack, then r0's barrier header to r1 (r1 joined at once). get/fence: r0's
    // barrier header, then r1's request and the data (the second fence finishes sooner).
    for (mode, sync) in [("get", "passive"), ("put", "passive"), ("put", "fence"), ("get", "fence")] {
        let out = run(&dag, &kernels, &rma(mode, sync).factory(&dag), &toy_machine(1), cfg).unwrap().run;
        assert_eq!(out.makespan_ns, 5000 + t(32) + t(32) + t(4096) + 3000, "{mode}/{sync}");
        assert_eq!(
            out.trace.messages.iter().filter(|m| m.kind.starts_with("rma-")).count(),
            1 + (sync == "passive") as usize
        );
    }
}

#[test]
fn a_counts_only_trace_keeps_the_totals_and_the_timeline_but_no_records() {
    let w = cholesky(640, 64, 16);
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let machine = load_machine("ib-hdr-fattree").unwrap();
    let simulate = |trace| {
        let cfg = SimConfig { ranks: 16, workers: 1, run_kernels: false, seed: 1, trace };
        run(w.dag(), &kernels, &eager, &machine, cfg).unwrap()
    };
    let (full, counts) = (simulate(TraceLevel::Full), simulate(TraceLevel::Counts));
    assert_eq!(full.run.makespan_ns, counts.run.makespan_ns, "what is kept does not change what happens");
    assert_eq!(full.events, counts.events);
    let (f, c) = (&full.run.trace, &counts.run.trace);
    assert!(c.tasks.is_empty() && c.messages.is_empty() && c.transfer_events.is_empty());
    assert_eq!((c.task_count(), f.task_count()), (w.dag().task_count() as u64, w.dag().task_count() as u64));
    assert_eq!(c.message_totals(), f.message_totals());
    assert_eq!(c.counted.transfer_events, f.transfer_events.len() as u64);
}

#[test]
fn every_collective_runs_on_the_sim_driver_through_its_network() {
    use dagwire_runtime::drivers::probe::{CollectiveProbe, probe_dag};
    for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
        let mut machine = load_machine("ib-hdr-fattree").unwrap();
        machine.fidelity = fidelity;
        for ranks in 2..=4 {
            let dag = Arc::new(probe_dag(ranks));
            let factory = move |r: Rank| -> Box<dyn Strategy> { Box::new(CollectiveProbe::new(r, ranks)) };
            let name = |_| "k";
            let kernels = SimKernels { kernels: &Zeros, name: &name };
            // The probe's own contributions are real bytes; the tasks' outputs need not be.
            let cfg = SimConfig { ranks, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
            let out =
                run(&dag, &kernels, &factory, &machine, cfg).unwrap_or_else(|e| panic!("{fidelity:?} {ranks}: {e}"));
            // Every piece is a network event: far more than the tasks.
            assert!(out.events as usize > 10 * ranks, "{fidelity:?} {ranks}: {} events", out.events);
            assert!(out.run.makespan_ns > 0);
        }
    }
}

#[test]
fn a_bruck_all_to_all_v_sends_fewer_larger_network_messages_than_pairwise() {
    // 8 ranks: per collective and rank, pairwise sends p - 1 = 7 pieces, Bruck log2 p = 3.
    let run_with = |alltoall: &str| {
        let strategy = Pick("batched", vec![("alltoall", ParamValue::Str(alltoall.into()))]);
        verified_cholesky(256, 8, Fidelity::Analytic, &strategy, alltoall)
    };
    let (pairwise, bruck) = (run_with("pairwise"), run_with("bruck"));
    let tasks = pairwise.run.trace.tasks.len() as u64;
    let collectives = pairwise.run.trace.messages.len() as u64 / (8 * 7);
    assert_eq!(pairwise.events - tasks, collectives * 8 * 7, "one network message per pairwise step");
    assert_eq!(bruck.events - tasks, collectives * 8 * 3, "one network message per Bruck round");
    let records = |out: &dagwire_sim::driver::SimOutcome| {
        let mut v: Vec<_> = out.run.trace.messages.iter().map(|m| (m.src, m.dst, m.bytes, m.chunk)).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(records(&pairwise), records(&bruck), "the same contributions reach the same ranks");
}

/// r0's 5000-flop producer sends 4096 bytes to r1's 3000-flop reader and feeds r0's own
/// 2000-flop follower.
fn producer_follower_and_reader() -> Arc<dagwire_runtime::Dag> {
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[4096]));
    b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(2000.0).inputs(&[p.output(0)]).outputs(&[4096]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(3000.0).inputs(&[p.output(0)]).outputs(&[4096]));
    Arc::new(b.finish())
}

/// LogGOPS: a message's CPU time `o + ceil((k-1)·O)` holds its sender's next kernel and
/// is paid again at the receiver, in series with the wire; with `O` absent the CPU
/// overheads run beside the kernels, as before.
#[test]
fn a_messages_cpu_overhead_delays_the_next_kernel_on_its_rank_by_exactly_the_model() {
    use dagwire_sim::machine::ProgressModel;
    let dag = producer_follower_and_reader();
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
    let on = |o: Option<f64>, fidelity: Fidelity| {
        let mut m = toy_machine(1);
        m.fidelity = fidelity;
        m.intra_node.segments[0].o_per_byte_ns = o;
        m.inter_node.segments[0].o_per_byte_ns = o;
        run(&dag, &kernels, &eager, &m, cfg).unwrap().run
    };
    let follower_start =
        |out: &RunOutcome| out.trace.tasks.iter().find(|t| t.rank == Rank(0) && t.start_ns > 0).unwrap().start_ns;
    // 4095 bytes after the first at 0.25 ns: 1023.75, rounded up.
    let copy = 1024;
    let wire = 100 + 2048 + 1000 + 200;
    for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
        let plain = on(None, fidelity);
        assert_eq!(follower_start(&plain), 5000, "{fidelity:?}: o_s beside the kernels");
        assert_eq!(plain.makespan_ns, 5000 + wire + 3000);
        let zero = on(Some(0.0), fidelity);
        assert_eq!(follower_start(&zero), 5000 + 100, "{fidelity:?}: o_s holds the CPU");
        let with = on(Some(0.25), fidelity);
        assert_eq!(follower_start(&with), 5000 + 100 + copy, "{fidelity:?}");
        let m = &with.trace.messages[0];
        assert_eq!(m.recv_ns - m.sent_ns, wire + 2 * copy, "{fidelity:?}: O at both ends");
        assert_eq!(with.makespan_ns, 5000 + wire + 2 * copy + 3000, "{fidelity:?}");
    }
    // Inline progress: a message reaching a rank in a kernel costs its CPU after the kernel.
    let dag = reader_busy_in_a_kernel();
    let machine = |progress, o| {
        let mut m = toy_machine(1);
        m.compute.progress = progress;
        m.inter_node.segments[0].o_per_byte_ns = o;
        m
    };
    let out = |progress, o| run(&dag, &kernels, &eager, &machine(progress, o), cfg).unwrap().run;
    assert_eq!(out(ProgressModel::Inline, None).makespan_ns, 23000);
    assert_eq!(out(ProgressModel::Inline, Some(0.25)).makespan_ns, 20000 + 200 + copy + 3000);
    assert_eq!(out(ProgressModel::Thread, Some(0.25)).makespan_ns, 23000, "copied beside the kernel");
}

/// A collective piece costs both ends' CPU `ceil(messages * collective_message_ns +
/// payload * collective_ns_per_byte)`: a 2-rank level epoch whose one piece with data
/// carries one message of 4096 B ends exactly twice that later than with both at 0
/// (the sender's share before it leaves, the receiver's before it is handled); the
/// other piece carries no message and costs nothing. The results stay the same.
#[test]
fn a_collective_piece_costs_both_ends_per_message_and_per_byte() {
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[4096]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(3000.0).inputs(&[p.output(0)]).outputs(&[4096]));
    let dag = Arc::new(b.finish());
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
    let with = |fidelity, message: f64, per_byte: f64| {
        let mut m = toy_machine(1);
        m.fidelity = fidelity;
        m.compute.collective_message_ns = message;
        m.compute.collective_ns_per_byte = per_byte;
        run(&dag, &kernels, &batched("level", 1).factory(&dag), &m, cfg).unwrap().run
    };
    let data =
        |out: &RunOutcome| out.trace.messages.iter().find(|m| m.kind == "batch-data").map(|m| m.recv_ns - m.sent_ns);
    for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
        let base = with(fidelity, 0.0, 0.0);
        // 1250 + 4096 x 1.2 = 6165.2, rounded up once.
        let piece = 6166;
        let costly = with(fidelity, 1250.0, 1.2);
        assert_eq!(costly.makespan_ns, base.makespan_ns + 2 * piece, "{fidelity:?}");
        assert_eq!(data(&costly), data(&base).map(|t| t + 2 * piece), "{fidelity:?}");
        assert_eq!(costly.results, base.results, "{fidelity:?}");
        let message_only = with(fidelity, 1250.0, 0.0);
        assert_eq!(message_only.makespan_ns, base.makespan_ns + 2 * 1250, "{fidelity:?}");
    }
}

/// Joining a collective costs each rank `collective_call_ns` of CPU before its pieces
/// leave: the pairwise exchange above ends exactly that much later.
#[test]
fn a_collective_call_costs_each_joining_rank_its_cpu_time() {
    let mut b = DagBuilder::new(3);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[4096]));
    for r in [1, 2] {
        b.add(TaskSpec::new(KernelId(0), Rank(r)).flops(3000.0).inputs(&[p.output(0)]).outputs(&[4096]));
    }
    let dag = Arc::new(b.finish());
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let cfg = SimConfig { ranks: 3, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
    let with = |call: f64| {
        let mut m = toy_machine(1);
        m.compute.collective_call_ns = call;
        run(&dag, &kernels, &batched("level", 1).factory(&dag), &m, cfg).unwrap().run
    };
    let (base, costly) = (with(0.0), with(7000.0));
    assert_eq!(costly.makespan_ns, base.makespan_ns + 7000);
    let data =
        |out: &RunOutcome| out.trace.messages.iter().find(|m| m.kind == "batch-data").map(|m| m.recv_ns - m.sent_ns);
    assert_eq!(data(&costly), data(&base).map(|t| t + 7000), "r0's data leaves after its call");
}
