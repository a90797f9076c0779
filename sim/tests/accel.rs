//! Accelerators in the simulator (`sim::device`): closed-form checks of the device paths
//! (staged, direct, peer), of streams against copies and of a shared PCIe switch; real
//! workloads verifying while their device timing is modelled; determinism.

use dagwire_runtime::space::Space;
use dagwire_runtime::{
    ChunkId, Dag, DagBuilder, KernelId, Kernels, ParamValue, Payload, Rank, RunOutcome, Strategy, Task, TaskSpec,
};
use dagwire_sim::device::Devices;
use dagwire_sim::driver::{SimConfig, SimKernels, run};
use dagwire_sim::machine::{Accelerators, HostLink, Machine, NicSwitch, PeerLink, load_machine};
use dagwire_strategies::eager::Eager;
use std::sync::Arc;

#[path = "common/toy.rs"]
mod toy;
use toy::toy_machine;

fn eager(_: Rank) -> Box<dyn Strategy> {
    Box::new(Eager)
}

/// Host link: 300 ns + 1 byte/ns. Peer link: 50 ns + 2 bytes/ns. Kernels: 1 flop/ns.
fn accelerators(devices: u32, streams: u32, gpu_direct: bool) -> Accelerators {
    Accelerators {
        model: "toy".into(),
        devices,
        memory_gib: 16.0,
        streams,
        copy_engines: 2,
        gpu_direct,
        launch_ns: 0.0,
        default_gflops: 1.0,
        kernel_gflops: Default::default(),
        host_link: HostLink { latency_ns: 300.0, gbps: 8.0, devices_per_switch: 1 },
        peer_link: Some(PeerLink { latency_ns: 50.0, gbps: 16.0 }),
        nics: None,
        nic_switch: NicSwitch::FirstDevice,
    }
}

/// The toy machine (`common/toy.rs`) with `ranks_per_node` devices per node.
fn toy(ranks_per_node: u32, accel: Option<Accelerators>) -> Machine {
    Machine { accelerators: accel, ..toy_machine(ranks_per_node) }
}

struct Zeros;
impl Kernels for Zeros {
    fn run(&self, task: &Task, _: Vec<Payload>) -> Result<Vec<Payload>, String> {
        Ok(task.outputs().map(|_| Payload::zeroed(4096)).collect())
    }
}

/// r0 computes 5000 flops and sends 4096 bytes to r1, which computes 3000 flops.
fn producer_and_reader() -> Arc<Dag> {
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[4096]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(3000.0).inputs(&[p.output(0)]).outputs(&[4096]));
    Arc::new(b.finish())
}

/// Runs `dag` with the kernels modelled (outputs are phantoms of the declared sizes).
fn simulate(dag: &Arc<Dag>, machine: &Machine, ranks: usize) -> RunOutcome {
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let cfg = SimConfig { ranks, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
    run(dag, &kernels, &eager, machine, cfg).unwrap().run
}

/// The network's time for the 4096-byte message: o_s + (k-1) G + L + o_r.
const MESSAGE: u64 = 100 + 2048 + 1000 + 200;
/// A host-device copy of 4096 bytes: latency + bytes at 1 byte/ns.
const COPY: u64 = 300 + 4096;

#[test]
fn a_staged_transfer_takes_the_sum_of_its_hops_and_a_direct_one_skips_the_host_hops() {
    let dag = producer_and_reader();
    let cpu = simulate(&dag, &toy(1, None), 2);
    assert_eq!(cpu.makespan_ns, 5000 + MESSAGE + 3000);
    let staged = simulate(&dag, &toy(1, Some(accelerators(1, 1, false))), 2);
    assert_eq!(staged.makespan_ns, 5000 + COPY + MESSAGE + COPY + 3000);
    // The strategy sent at the producer's end (the engine held the message for its
    // device-to-host copy) and it was received once in host memory: the engine then asked
    // for the host-to-device copy the reader waits for.
    let m = &staged.trace.messages[0];
    assert_eq!((m.sent_ns, m.recv_ns), (5000, 5000 + COPY + MESSAGE));
    let direct = simulate(&dag, &toy(1, Some(accelerators(1, 1, true))), 2);
    assert_eq!(direct.makespan_ns, 5000 + MESSAGE + 3000);
    // Kernels ran on the device at its rate, on stream 0.
    assert!(staged.trace.tasks.iter().all(|t| t.worker == 0));
    assert_eq!(staged.trace.tasks[0].end_ns - staged.trace.tasks[0].start_ns, 5000);
}

/// The copies of a run as (rank, kind, engine, stream, bytes, start, end).
fn copies(out: &RunOutcome) -> Vec<(u32, &'static str, u32, u32, u64, u64, u64)> {
    out.trace
        .copies
        .iter()
        .map(|c| (c.rank.0, c.kind.as_str(), c.engine, c.stream, c.bytes, c.start_ns, c.end_ns))
        .collect()
}

#[test]
fn a_staged_transfer_records_a_device_to_host_then_a_host_to_device_copy_and_cpu_or_direct_runs_none() {
    let dag = producer_and_reader();
    let staged = simulate(&dag, &toy(1, Some(accelerators(1, 1, false))), 2);
    let arrival = 5000 + COPY + MESSAGE;
    assert_eq!(
        copies(&staged),
        [(0, "d2h", 0, 0, 4096, 5000, 5000 + COPY), (1, "h2d", 0, 0, 4096, arrival, arrival + COPY)]
    );
    for c in &staged.trace.copies {
        assert_eq!((c.src, c.dst, c.chunk, c.carries), (Rank(0), Rank(1), Some(ChunkId(0)), "message"));
    }
    // Inside a node: one peer copy on the sender's engine, over NVLink.
    let peer = simulate(&dag, &toy(2, Some(accelerators(2, 1, false))), 2);
    assert_eq!(copies(&peer), [(0, "peer", 0, 0, 4096, 5000, 5000 + 50 + 2048)]);
    // GPU-direct between nodes, or no accelerators: no copy at all.
    assert!(simulate(&dag, &toy(1, Some(accelerators(1, 1, true))), 2).trace.copies.is_empty());
    let cpu = simulate(&dag, &toy(1, None), 2);
    assert!(cpu.trace.copies.is_empty() && cpu.trace.counted.copies == 0);
}

/// r0 computes 1000 flops into two 1000-byte chunks, each read on r1 (another node).
fn two_chunks_at_once() -> Arc<Dag> {
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(1000.0).outputs(&[1000, 1000]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(10.0).inputs(&[p.output(0)]).outputs(&[8]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(10.0).inputs(&[p.output(1)]).outputs(&[8]));
    Arc::new(b.finish())
}

#[test]
fn two_copies_on_one_copy_engine_do_not_overlap_in_the_records_and_on_two_they_do() {
    let dag = two_chunks_at_once();
    let run = |engines: u32| {
        let mut a = accelerators(1, 2, false);
        a.copy_engines = engines;
        let out = simulate(&dag, &toy(1, Some(a)), 2);
        copies(&out)
    };
    // A 1000-byte copy: 300 ns latency + 1000 ns on the switch's up direction. The first
    // takes the stream that was free (1; the producer ran on 0 until 1000).
    let one = run(1);
    assert_eq!(&one[..2], [(0, "d2h", 0, 1, 1000, 1000, 2300), (0, "d2h", 0, 0, 1000, 2300, 3600)]);
    // Two engines: the second copy starts once the first's bytes have left the shared
    // switch direction (1000 ns in), during the first's latency.
    let two = run(2);
    assert_eq!(&two[..2], [(0, "d2h", 0, 1, 1000, 1000, 2300), (0, "d2h", 1, 0, 1000, 2000, 3300)]);
    assert!(two[1].5 < two[0].6, "the copies overlap on two engines");
    // The receiver copies both to its device too, and no engine of any rank ever holds
    // two copies at once.
    for all in [one, two] {
        assert_eq!(all.iter().filter(|c| c.1 == "h2d" && c.0 == 1).count(), 2, "{all:?}");
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                let disjoint = a.0 != b.0 || a.2 != b.2 || a.6 <= b.5 || b.6 <= a.5;
                assert!(disjoint, "{a:?} and {b:?} overlap on one engine");
            }
        }
    }
}

#[test]
fn a_counts_trace_counts_the_copies_it_does_not_keep() {
    let dag = producer_and_reader();
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let machine = toy(1, Some(accelerators(1, 1, false)));
    let trace = dagwire_runtime::trace::TraceLevel::Counts;
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: false, seed: 1, trace };
    let out = run(&dag, &kernels, &eager, &machine, cfg).unwrap().run;
    assert!(out.trace.copies.is_empty());
    assert_eq!(out.trace.counted.copies, 2);
}

#[test]
fn inside_a_node_data_moves_device_to_device_over_the_peer_link_or_pcie() {
    let dag = producer_and_reader();
    let nvlink = simulate(&dag, &toy(2, Some(accelerators(2, 1, false))), 2);
    assert_eq!(nvlink.makespan_ns, 5000 + (50 + 2048) + 3000);
    let mut pcie = accelerators(2, 1, false);
    pcie.peer_link = None;
    let pcie = simulate(&dag, &toy(2, Some(pcie)), 2);
    assert_eq!(pcie.makespan_ns, 5000 + COPY + 3000);
}

/// r0 computes 1000 flops and sends 1000 bytes to r1; r1 runs a 10000-flop kernel from
/// the start and then a 1000-flop kernel on the bytes.
fn copy_beside_a_kernel() -> Arc<Dag> {
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(1000.0).outputs(&[1000]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(10_000.0).outputs(&[8]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(1000.0).inputs(&[p.output(0)]).outputs(&[8]));
    Arc::new(b.finish())
}

#[test]
fn with_one_stream_kernels_and_copies_serialise_and_with_two_they_overlap() {
    let dag = copy_beside_a_kernel();
    let copy = 300 + 1000;
    let message = 100 + 500 + 1000 + 200;
    // The bytes reach r1's host memory at 1000 + copy + message = 4100.
    let arrival = 1000 + copy + message;
    let one = simulate(&dag, &toy(1, Some(accelerators(1, 1, false))), 2);
    // One stream: the host-to-device copy waits for the long kernel, then the reader runs.
    assert_eq!(one.makespan_ns, 10_000 + copy + 1000);
    let two = simulate(&dag, &toy(1, Some(accelerators(1, 2, false))), 2);
    // Two streams: the copy runs beside the long kernel on the second stream, then the
    // reader, which shares the device's compute with the long kernel (each at half its
    // rate): the reader's 1000 ns of work take 2000 ns, during which the long kernel does
    // 1000 of its remaining 10_000 - (arrival + copy) = 4600 ns of work; it ends the
    // remaining 3600 alone at arrival + copy + 2000 + 3600 = 11_000 = 10_000 + 1000.
    assert_eq!(two.makespan_ns, 11_000);
    let reader = two.trace.tasks.iter().find(|t| t.rank == Rank(1) && t.end_ns < 10_000).expect("the reader");
    assert_eq!((reader.start_ns, reader.end_ns), (arrival + copy, arrival + copy + 2 * 1000));
    assert_eq!(reader.worker, 1, "the reader ran on the second stream");
    // The overlap is the copy: the kernels share one device, so the reader's work still
    // adds to the long kernel's.
    assert_eq!(one.makespan_ns - two.makespan_ns, copy);
}

/// `kernels` (flops each) on rank 0 (one device of `streams` streams), all ready at 0.
fn side_by_side(kernels: &[f64]) -> Arc<Dag> {
    let mut b = DagBuilder::new(1);
    for &flops in kernels {
        b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(flops).outputs(&[8]));
    }
    Arc::new(b.finish())
}

/// The (start, end) of rank 0's tasks, in task order.
fn spans(out: &RunOutcome) -> Vec<(u64, u64)> {
    let mut tasks: Vec<_> = out.trace.tasks.iter().map(|t| (t.task, t.start_ns, t.end_ns)).collect();
    tasks.sort();
    tasks.into_iter().map(|(_, s, e)| (s, e)).collect()
}

#[test]
fn kernels_on_two_streams_of_one_device_share_its_compute() {
    let two_streams = toy(1, Some(accelerators(1, 2, false)));
    // Two equal kernels of W = 4000 ns at once: each at half the rate, both end at 2W.
    let out = simulate(&side_by_side(&[4000.0, 4000.0]), &two_streams, 1);
    assert_eq!(spans(&out), [(0, 8000), (0, 8000)]);
    assert_eq!(out.makespan_ns, 2 * 4000);
    // A short S = 1000 and a long L = 5000: the short ends at 2S, the long at S + L.
    let out = simulate(&side_by_side(&[1000.0, 5000.0]), &two_streams, 1);
    assert_eq!(spans(&out), [(0, 2 * 1000), (0, 1000 + 5000)]);
    // Three kernels on three streams: 1000 each at a third of the rate: all end at 3000.
    let out = simulate(&side_by_side(&[1000.0, 1000.0, 1000.0]), &toy(1, Some(accelerators(1, 3, false))), 1);
    assert_eq!(spans(&out), [(0, 3000), (0, 3000), (0, 3000)]);
    // One stream: the kernels run one after the other at the whole rate, as always.
    let out = simulate(&side_by_side(&[1000.0, 5000.0]), &toy(1, Some(accelerators(1, 1, false))), 1);
    assert_eq!(spans(&out), [(0, 1000), (1000, 6000)]);
    // A kernel that starts later slows one already running from then on: A = 4000 from 0,
    // B = 1000 from 3000.
    let mut d = Devices::new(&accelerators(1, 2, false), 1);
    let a = d.kernel(0, 0, "k", 4000.0);
    assert_eq!(a.end, 4000);
    let b = d.kernel(0, 3000, "k", 1000.0);
    // From 3000 both run at half the rate: A's last 1000 and B's 1000 both end at 5000.
    assert_eq!((b.stream, b.start, b.end), (1, 3000, 5000));
    assert_eq!(d.moved(), [dagwire_sim::device::Moved { stream: 0, was: 4000, end: 5000 }]);
    // Once A and B ended, a kernel has the device to itself again.
    let c = d.kernel(0, 5000, "k", 1000.0);
    assert_eq!((c.start, c.end), (5000, 6000));
    assert!(d.moved().is_empty());
}

#[test]
fn two_devices_on_one_pcie_switch_halve_each_others_host_bandwidth() {
    let bytes = 1u64 << 20;
    for (per_switch, rounds) in [(1u32, 8u64), (2, 8)] {
        let mut a = accelerators(2, 1, false);
        a.host_link.devices_per_switch = per_switch;
        let mut d = Devices::new(&a, 4);
        // Devices 0 and 1 of node 0 each stage `rounds` transfers to node 1, all asked for at 0.
        let mut last = [0u64; 2];
        for _ in 0..rounds {
            for src in 0..2u32 {
                last[src as usize] = d.copy(0, Rank(src), Space::Host, bytes).end;
            }
        }
        // Each copy holds the stream for latency + bytes; the switch for the bytes alone.
        let alone = rounds * (300 + bytes);
        if per_switch == 1 {
            assert_eq!(last, [alone, alone]);
        } else {
            // Shared: the switch's up-link carries both devices' bytes, 2 * rounds * bytes
            // in all, so each device gets half of it.
            assert_eq!(last[1], 2 * rounds * bytes + 300);
            let rate = |end: u64| (rounds * bytes) as f64 / end as f64;
            assert!((rate(last[1]) - 0.5).abs() < 0.01, "{}", rate(last[1]));
        }
    }
}

#[test]
fn a_kernel_waits_for_a_free_stream_and_copies_for_a_free_copy_engine() {
    let mut a = accelerators(1, 2, false);
    a.copy_engines = 1;
    let mut d = Devices::new(&a, 2);
    let k = d.kernel(0, 0, "k", 1000.0);
    assert_eq!((k.stream, k.start, k.end), (0, 0, 1000));
    // Two staged copies: stream 1 is free, the one copy engine serialises them.
    let first = d.copy(0, Rank(0), Space::Host, 100).end;
    assert_eq!(first, 400);
    let second = d.copy(0, Rank(0), Space::Host, 100).end;
    // The second copy needs a stream (stream 1 frees at 400, stream 0 at 1000) and the engine (400).
    assert_eq!(second, 800);
    // Kernels after that take the earliest-free stream.
    let k = d.kernel(0, 0, "k", 10.0);
    assert_eq!((k.stream, k.start), (1, 800));
}

/// A registered workload at `given`, on `ranks`.
fn workload(name: &str, given: &[(&str, ParamValue)], ranks: usize) -> Box<dyn dagwire_workloads::Workload> {
    dagwire_workloads::find(name).unwrap().build(given, ranks, 5).unwrap()
}

fn run_workload(
    w: &dyn dagwire_workloads::Workload,
    strategy: &str,
    machine: &Machine,
    ranks: usize,
    run_kernels: bool,
) -> RunOutcome {
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&[], w.dag(), 1).unwrap();
    let cfg = SimConfig { ranks, workers: 1, run_kernels, seed: 3, trace: Default::default() };
    run(w.dag(), &kernels, &factory, machine, cfg).unwrap_or_else(|e| panic!("{} {strategy}: {e}", machine.name)).run
}

#[test]
fn cholesky_gemm_dp_train_and_moe_verify_with_kernels_on_the_host_and_device_timing_modelled() {
    let int = ParamValue::Int;
    let cases: Vec<(&str, Vec<(&str, ParamValue)>)> = vec![
        ("cholesky", vec![("n", int(256)), ("tile", int(32))]),
        ("gemm", vec![("n", int(128)), ("tile", int(32))]),
        ("dp-train", vec![("steps", int(3)), ("batch", int(8)), ("samples", int(256))]),
        ("moe", vec![("tokens", int(32)), ("d", int(16)), ("hidden", int(32)), ("experts", int(8))]),
    ];
    for preset in ["dgx-h100", "pcie-4gpu"] {
        let base = load_machine(preset).unwrap();
        // Two nodes: NVLink (or PCIe) inside each, the network between them.
        let ranks = 2 * base.ranks_per_node as usize;
        for (direct, streams) in [(false, 1), (true, 2)] {
            let mut m = base.clone();
            let a = m.accelerators.as_mut().unwrap();
            (a.gpu_direct, a.streams) = (direct, streams);
            for (name, given) in &cases {
                let w = workload(name, given, ranks);
                for strategy in ["eager", "rendezvous", "batched", "rma"] {
                    let out = run_workload(w.as_ref(), strategy, &m, ranks, true);
                    let check = w.verify(&out.results);
                    assert!(check.passed, "{preset} direct={direct} {name} {strategy}: {check:?}");
                    let lanes = out.trace.tasks.iter().filter(|t| t.end_ns > t.start_ns).map(|t| t.worker).max();
                    assert!(lanes.is_some_and(|l| l < streams), "kernels ran on the {streams} streams: {lanes:?}");
                }
            }
        }
    }
}

/// Each stream and each copy engine of a run's trace holds one kernel or copy at a time
/// (the recorded spans, kernels with their final ends).
fn assert_one_thing_at_a_time(out: &RunOutcome, what: &str) {
    let mut lanes: std::collections::BTreeMap<(Rank, bool, u32), Vec<(u64, u64)>> = Default::default();
    for t in &out.trace.tasks {
        lanes.entry((t.rank, false, t.worker)).or_default().push((t.start_ns, t.end_ns));
    }
    for c in &out.trace.copies {
        lanes.entry((c.rank, false, c.stream)).or_default().push((c.start_ns, c.end_ns));
        lanes.entry((c.rank, true, c.engine)).or_default().push((c.start_ns, c.end_ns));
    }
    for (lane, mut spans) in lanes {
        spans.sort();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{what}: {lane:?} holds two things at once: {spans:?}");
    }
}

/// A copy is timed when asked for, behind what holds the stream it takes; a kernel's end
/// moves when a later kernel starts beside it. A copy queued behind a kernel whose end
/// then moved would overlap it on its stream. That cannot happen in the driver: a rank
/// has as many workers as streams, so a kernel starts only on a stream running no other
/// kernel (one is free: at most `streams - 1` others run), no earlier than that stream's
/// next-free time; the copy took the stream that frees first, so every other stream frees
/// no earlier than the kernel it waits behind ends, and no kernel starts beside that one
/// after the copy was asked: its end is final. (With one stream no end ever moves.)
#[test]
fn a_copy_queued_behind_a_kernel_starts_at_its_final_end_and_later_kernels_move_only_others() {
    let mut d = Devices::new(&accelerators(1, 2, false), 1);
    // A = 3000 ns of work on stream 0 and B = 1000 on stream 1, both from 0: each at half
    // the rate, B ends at 2 x 1000 = 2000 with 1000 of A done; A's last 2000 alone end at
    // 4000 (moved from 3000).
    let a = d.kernel(0, 0, "k", 3000.0);
    let b = d.kernel(0, 0, "k", 1000.0);
    assert_eq!([(a.stream, a.end), (b.stream, b.end)], [(0, 3000), (1, 2000)]);
    assert_eq!(d.moved(), [dagwire_sim::device::Moved { stream: 0, was: 3000, end: 4000 }]);
    // A 1000-byte copy to host asked for at 0: both streams run kernels; it takes B's,
    // which frees first, for 300 + 1000 = 1300 ns from B's end: 2000 to 3300.
    let copy = d.copy(0, Rank(0), Space::Host, 1000);
    assert_eq!((copy.stream, copy.start, copy.end), (1, 2000, 3300));
    // The driver starts the next kernel once a worker frees, at B's end (2000): C = 1000 on
    // the stream running no kernel, B's, behind the copy: from 3300. A had 2000 left at
    // 2000, does 1300 alone until 3300, then its last 700 at half the rate with C: A ends
    // at 3300 + 1400 = 4700 (moved from 4000), C's last 300 alone end at 5000.
    let c = d.kernel(0, 2000, "k", 1000.0);
    assert_eq!((c.stream, c.start, c.end), (1, 3300, 5000));
    assert_eq!(d.moved(), [dagwire_sim::device::Moved { stream: 0, was: 4000, end: 4700 }]);
    // The kernel that moved is A, behind which nothing waits; B, which the copy waited
    // behind, ended at 2000 before anything started beside it.

    // The same on whole runs: staged (copies on the streams), 2 to 4 streams, point-to-point,
    // forwarding and collective strategies; every stream holds one thing at a time.
    let int = ParamValue::Int;
    let base = load_machine("dgx-h100").unwrap();
    let cases: [(&str, Vec<(&str, ParamValue)>); 2] = [
        ("cholesky", vec![("n", int(1024)), ("tile", int(128))]),
        ("moe", vec![("tokens", int(64)), ("d", int(16)), ("hidden", int(32)), ("experts", int(16))]),
    ];
    let mut behind_a_kernel = 0;
    for (name, given) in &cases {
        let w = workload(name, given, 16);
        for streams in [2, 3, 4] {
            let mut m = base.clone();
            let a = m.accelerators.as_mut().unwrap();
            (a.gpu_direct, a.streams) = (false, streams);
            for strategy in ["eager", "parsec", "batched"] {
                let out = run_workload(w.as_ref(), strategy, &m, 16, false);
                assert_one_thing_at_a_time(&out, &format!("{name} {strategy} {streams} streams"));
                let ends: std::collections::BTreeSet<_> =
                    out.trace.tasks.iter().map(|t| (t.rank, t.worker, t.end_ns)).collect();
                behind_a_kernel +=
                    out.trace.copies.iter().filter(|c| ends.contains(&(c.rank, c.stream, c.start_ns))).count();
            }
        }
    }
    // Not vacuous: copies did start as the kernel on their stream ended.
    assert!(behind_a_kernel > 0);
}

#[test]
fn device_timing_is_deterministic_and_gpu_direct_and_streams_change_it() {
    let w = workload("cholesky", &[("n", ParamValue::Int(2048)), ("tile", ParamValue::Int(256))], 16);
    let base = load_machine("dgx-h100").unwrap();
    let with = |direct: bool, streams: u32| {
        let mut m = base.clone();
        let a = m.accelerators.as_mut().unwrap();
        (a.gpu_direct, a.streams) = (direct, streams);
        m
    };
    let a = run_workload(w.as_ref(), "eager", &with(false, 2), 16, false);
    let b = run_workload(w.as_ref(), "eager", &with(false, 2), 16, false);
    assert!(a.trace == b.trace && a.makespan_ns == b.makespan_ns, "two identical runs differ");
    // Staged on two nodes: copies of every kind, each stream and copy engine holding one
    // kernel or copy at a time.
    let kinds: std::collections::BTreeSet<_> = a.trace.copies.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["d2h", "h2d", "peer"]);
    assert_one_thing_at_a_time(&a, "cholesky eager staged 2 streams");
    let direct = run_workload(w.as_ref(), "eager", &with(true, 2), 16, false);
    assert!(direct.makespan_ns < a.makespan_ns, "direct {} vs staged {}", direct.makespan_ns, a.makespan_ns);
    let one = run_workload(w.as_ref(), "eager", &with(false, 1), 16, false);
    assert!(one.makespan_ns > a.makespan_ns, "1 stream {} vs 2 {}", one.makespan_ns, a.makespan_ns);
}

#[test]
fn the_sim_parameters_override_the_machine_files_devices_and_refuse_cpu_machines() {
    use dagwire_runtime::Params;
    let specs = dagwire_sim::registry::params();
    let params = |given: &[(&str, ParamValue)]| {
        Params::resolve(&specs, given.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()).unwrap()
    };
    let m = dagwire_sim::registry::machine(&params(&[
        ("machine", ParamValue::Str("dgx-h100".into())),
        ("streams", ParamValue::Int(1)),
        ("copy_engines", ParamValue::Int(3)),
        ("gpu_direct", ParamValue::Str("off".into())),
    ]))
    .unwrap();
    let a = m.accelerators.unwrap();
    assert_eq!((a.streams, a.copy_engines, a.gpu_direct), (1, 3, false));
    let m = dagwire_sim::registry::machine(&params(&[("machine", ParamValue::Str("dgx-h100".into()))])).unwrap();
    assert_eq!(m, load_machine("dgx-h100").unwrap(), "defaults keep the machine file's values");
    let err = dagwire_sim::registry::machine(&params(&[
        ("machine", ParamValue::Str("ib-hdr-fattree".into())),
        ("streams", ParamValue::Int(2)),
    ]))
    .unwrap_err();
    assert!(err.contains("no [accelerators]"), "{err}");
}

#[test]
fn a_chunk_read_on_three_nodes_is_staged_once_and_copied_to_each_readers_device() {
    // r0 computes 4096 bytes that r1, r2 and r3 (one node each) read.
    let mut b = DagBuilder::new(4);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[4096]));
    for r in 1..4 {
        b.add(TaskSpec::new(KernelId(0), Rank(r)).flops(10.0).inputs(&[p.output(0)]).outputs(&[8]));
    }
    let dag = Arc::new(b.finish());
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let machine = toy(1, Some(accelerators(1, 1, false)));
    // Eager sends three messages, rma puts the chunk into r0's own window, which the
    // readers get from: either way one device-to-host copy, when the producer ends.
    for (strategy, carries) in [("eager", ("message", "message")), ("rma", ("put", "get"))] {
        let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&[], &dag, 1).unwrap();
        let cfg = SimConfig { ranks: 4, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
        let out = run(&dag, &kernels, &factory, &machine, cfg).unwrap().run;
        let mut got: Vec<_> = out.trace.copies.iter().map(|c| (c.rank.0, c.kind.as_str(), c.carries)).collect();
        got.sort();
        let expected = [(0, "d2h", carries.0), (1, "h2d", carries.1), (2, "h2d", carries.1), (3, "h2d", carries.1)];
        assert_eq!(got, expected, "{strategy}");
        let d2h = out.trace.copies.iter().find(|c| c.rank == Rank(0)).unwrap();
        assert_eq!((d2h.start_ns, d2h.end_ns, d2h.chunk), (5000, 5000 + COPY, Some(ChunkId(0))), "{strategy}");
        // Every reader's copy starts when its bytes arrived, and its kernel once it ended.
        for c in out.trace.copies.iter().filter(|c| c.rank != Rank(0)) {
            let reader = out.trace.tasks.iter().find(|t| t.rank == c.rank).unwrap();
            assert_eq!(reader.start_ns, c.end_ns, "{strategy}: {c:?}");
        }
    }
}

#[test]
fn a_batched_exchange_stages_its_whole_batch_between_nodes_and_peer_copies_inside_one() {
    let dag = two_chunks_at_once();
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let factory = dagwire_strategies::find("batched").unwrap().factory_with(&[], &dag, 1).unwrap();
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
    let simulate = |machine: &Machine| run(&dag, &kernels, &factory, machine, cfg).unwrap().run;
    // Two nodes, staged: both chunks to host memory before the all-to-all, both back to
    // r1's device after it.
    let staged = simulate(&toy(1, Some(accelerators(1, 2, false))));
    let mut kinds: Vec<_> =
        staged.trace.copies.iter().map(|c| (c.rank.0, c.kind.as_str(), c.carries, c.chunk)).collect();
    kinds.sort();
    let (c0, c1) = (Some(ChunkId(0)), Some(ChunkId(1)));
    let expected = [
        (0, "d2h", "collective", c0),
        (0, "d2h", "collective", c1),
        (1, "h2d", "collective", c0),
        (1, "h2d", "collective", c1),
    ];
    assert_eq!(kinds, expected);
    let last_d2h = staged.trace.copies.iter().filter(|c| c.rank == Rank(0)).map(|c| c.end_ns).max().unwrap();
    let first_h2d = staged.trace.copies.iter().filter(|c| c.rank == Rank(1)).map(|c| c.start_ns).min().unwrap();
    // The exchange (o_s + L + o_r at least) lies between the two.
    assert!(first_h2d >= last_d2h + 100 + 1000 + 200, "{:?}", staged.trace.copies);
    // One node: the pieces go device to device, no host copy.
    let peer = simulate(&toy(2, Some(accelerators(2, 2, false))));
    assert!(!peer.trace.copies.is_empty());
    assert!(
        peer.trace.copies.iter().all(|c| c.kind.as_str() == "peer" && c.carries == "collective" && c.chunk.is_none())
    );
    // GPU-direct: the NIC reads the device: none.
    assert!(simulate(&toy(1, Some(accelerators(1, 2, true)))).trace.copies.is_empty());
}

/// r0 makes three 4096-byte chunks in one 5000-flop task; r1, r2 and r3 each read one.
fn three_readers() -> Arc<Dag> {
    let mut b = DagBuilder::new(4);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[4096, 4096, 4096]));
    for r in 1..4u32 {
        b.add(TaskSpec::new(KernelId(0), Rank(r)).flops(1000.0).inputs(&[p.output(r as usize - 1)]).outputs(&[8]));
    }
    Arc::new(b.finish())
}

#[test]
fn a_staged_exchange_sends_each_piece_as_its_copy_to_host_ends() {
    let dag = three_readers();
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let factory = dagwire_strategies::find("batched").unwrap().factory_with(&[], &dag, 1).unwrap();
    let cfg = SimConfig { ranks: 4, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
    let out = run(&dag, &kernels, &factory, &toy(1, Some(accelerators(1, 2, false))), cfg).unwrap().run;
    // r0's three copies to host share its switch's up link: the i-th ends at
    // 5000 + i x 4096 + 300 (two copy engines overlap their latencies).
    let d2h: Vec<u64> = out.trace.copies.iter().filter(|c| c.kind.as_str() == "d2h").map(|c| c.end_ns).collect();
    assert_eq!(d2h, [5000 + 4096 + 300, 5000 + 2 * 4096 + 300, 5000 + 3 * 4096 + 300]);
    // Each reader's data leaves r0 when its own chunk is in host memory (the network,
    // 3348 ns a piece, is faster than a copy), not when the whole batch is: the k-piece
    // exchange takes copy(piece) + k x max(copy, network), the last piece arriving one
    // network time after the last copy.
    let data: Vec<(u32, u64, u64)> = out
        .trace
        .messages
        .iter()
        .filter(|m| m.src == Rank(0) && m.class == dagwire_runtime::MessageClass::Data)
        .map(|m| (m.dst.0, m.sent_ns, m.recv_ns))
        .collect();
    assert_eq!(data.len(), 3, "{data:?}");
    for (i, &(dst, sent, recv)) in data.iter().enumerate() {
        assert_eq!(dst, i as u32 + 1);
        assert_eq!(sent, d2h[i], "{data:?}");
        assert!(recv - sent >= MESSAGE && recv - sent < MESSAGE + 4096 / 2, "{data:?}");
    }
    assert!(data[0].2 < d2h[2], "the first piece arrives before the last copy ends: {data:?}");
}

/// Three ranks on three nodes: r0 makes chunk A (5000 flops) read on r1's device; r2
/// makes chunk B after 50,000 flops, read on r0's. In one epoch's all-to-all, A lands on
/// r1 long before the collective completes there (r1 also waits for r2's piece).
fn early_and_late() -> Arc<Dag> {
    let mut b = DagBuilder::new(3);
    let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(5000.0).outputs(&[4096]));
    let late = b.add(TaskSpec::new(KernelId(0), Rank(2)).flops(50_000.0).outputs(&[4096]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).flops(1000.0).inputs(&[a.output(0)]).outputs(&[8]));
    b.add(TaskSpec::new(KernelId(0), Rank(0)).flops(1000.0).inputs(&[late.output(0)]).outputs(&[8]));
    Arc::new(b.finish())
}

#[test]
fn a_staged_collective_copies_a_chunk_to_the_device_as_its_piece_lands() {
    let dag = early_and_late();
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let factory = dagwire_strategies::find("batched").unwrap().factory_with(&[], &dag, 1).unwrap();
    let cfg = SimConfig { ranks: 3, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
    let out = run(&dag, &kernels, &factory, &toy(1, Some(accelerators(1, 2, false))), cfg).unwrap().run;
    let data = |src: u32, dst: u32| {
        let m = out.trace.messages.iter().find(|m| (m.src.0, m.dst.0) == (src, dst)).unwrap();
        (m.sent_ns, m.recv_ns)
    };
    let h2d = |rank: u32| {
        let c = out.trace.copies.iter().find(|c| c.rank.0 == rank && c.kind.as_str() == "h2d").unwrap();
        (c.start_ns, c.end_ns)
    };
    let start = |rank: u32| out.trace.tasks.iter().find(|t| t.rank.0 == rank && t.start_ns > 0).unwrap().start_ns;
    // A leaves r0 when its copy to host ends; it lands on r1 one network time later.
    let (a_sent, a_landed) = data(0, 1);
    assert_eq!(a_sent, 5000 + COPY);
    // r1's collective completes when r2's (empty) piece arrives, after r2's 50,000 flops.
    let (_, complete) = data(2, 1);
    assert!(complete > 50_000 && a_landed + COPY < complete, "{:?}", out.trace.messages);
    // r1 copies A to its device as A lands, not at the completion: the reader starts as
    // the collective completes, the copy long done (before: completion + COPY).
    assert_eq!(h2d(1), (a_landed, a_landed + COPY), "{:?}", out.trace.copies);
    assert_eq!(start(1), complete);
    // B lands on r0 as r0's collective completes: its copy starts then, the reader after it.
    let (_, b_landed) = data(2, 0);
    assert_eq!(h2d(0), (b_landed, b_landed + COPY));
    assert_eq!(start(0), b_landed + COPY);
}

#[test]
fn a_run_whose_device_chunks_exceed_a_devices_memory_fails_naming_the_device_the_need_and_the_capacity() {
    let dag = producer_and_reader();
    let name = |_| "k";
    let kernels = SimKernels { kernels: &Zeros, name: &name };
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
    let with_memory = |bytes: u64, gpu_direct: bool| {
        let mut a = accelerators(1, 2, gpu_direct);
        a.memory_gib = bytes as f64 / (1u64 << 30) as f64;
        run(&dag, &kernels, &eager, &toy(1, Some(a)), cfg).map(|out| out.run.makespan_ns).map_err(|e| e.to_string())
    };
    // r1 holds the 4096-byte chunk it reads (from its copy to the device, or its direct
    // landing) while its task writes a 4096-byte output: 8192 bytes at once; r0 needs
    // only its 4096-byte output.
    for gpu_direct in [false, true] {
        assert!(with_memory(8192, gpu_direct).is_ok());
        let e = with_memory(8191, gpu_direct).unwrap_err();
        assert!(e.contains("rank r1's device 0 needs 8192 bytes") && e.contains("memory of 8191 bytes"), "{e}");
        let e = with_memory(4095, gpu_direct).unwrap_err();
        assert!(e.contains("rank r0's device 0 needs 4096 bytes") && e.contains("memory of 4095 bytes"), "{e}");
    }
}

/// `devices` per node and `nics` NICs (each `nic_gbps / nics`), devices on their own
/// switches, with the toy's costs; `g_per_byte_ns` 0.01 so the NICs are the bottleneck.
fn nic_machine(devices: u32, nics: Option<u32>, nic_gbps: f64, fidelity: dagwire_sim::machine::Fidelity) -> Machine {
    let mut a = accelerators(devices, 1, true);
    a.nics = nics;
    let mut m = toy(devices, Some(a));
    m.inter_node.segments[0].g_per_byte_ns = 0.01;
    m.nic_gbps = nic_gbps;
    m.fidelity = fidelity;
    m
}

/// Sends `bytes` from each of `srcs` to the matching `dsts` at 0; their delivery times.
fn deliveries(machine: &Machine, ranks: usize, pairs: &[(u32, u32)], bytes: u64) -> Vec<u64> {
    let mut net = dagwire_sim::network::Network::new(machine, ranks).unwrap();
    let ids: Vec<_> = pairs.iter().map(|&(s, d)| net.send(0, Rank(s), Rank(d), bytes)).collect();
    let mut got = Vec::new();
    while let Some(t) = net.next_delivery() {
        got.extend(net.deliver_until(t));
    }
    ids.iter().map(|id| got.iter().find(|(_, g)| g == id).unwrap().0).collect()
}

#[test]
fn two_devices_sharing_one_nic_each_get_half_its_bandwidth() {
    use dagwire_sim::machine::Fidelity;
    let bytes = 100_001u64;
    // Four devices a node, 16 Gbit/s a node: two NICs of 8 Gbit/s (1 byte/ns), NIC 0
    // serving devices 0 and 1, NIC 1 devices 2 and 3. Node 1's receivers are on
    // different NICs, so only the senders' NICs are shared.
    let two_nics = nic_machine(4, Some(2), 16.0, Fidelity::Flow);
    // Flow: o_s, then k-1 bytes at the flow's rate, then L and o_r.
    let at_rate = |bytes_per_ns: f64| 100 + ((bytes - 1) as f64 / bytes_per_ns).ceil() as u64 + 1000 + 200;
    // Devices 0 and 1 share NIC 0: half of 1 byte/ns each.
    assert_eq!(deliveries(&two_nics, 8, &[(0, 4), (1, 6)], bytes), [at_rate(0.5), at_rate(0.5)]);
    // Devices 0 and 2 each have their own NIC: all of it.
    assert_eq!(deliveries(&two_nics, 8, &[(0, 4), (2, 6)], bytes), [at_rate(1.0), at_rate(1.0)]);
    // Alone on a shared NIC: the whole NIC.
    assert_eq!(deliveries(&two_nics, 8, &[(1, 6)], bytes), [at_rate(1.0)]);
    // Without `nics` (as before) the node's 16 Gbit/s are one pool any two ranks share.
    let pooled = nic_machine(4, None, 16.0, Fidelity::Flow);
    assert_eq!(deliveries(&pooled, 8, &[(0, 4), (1, 6)], bytes), [at_rate(1.0), at_rate(1.0)]);
    // Analytic: a NIC injects one message at a time, each holding it for k bytes at the
    // NIC's rate: the second of two on one NIC waits for the first.
    let analytic = nic_machine(4, Some(2), 16.0, Fidelity::Analytic);
    // o_s + ceil((k-1) G) + L + o_r after the injection starts.
    let after = |start: u64| start + 100 + ((bytes - 1) as f64 * 0.01).ceil() as u64 + 1000 + 200;
    assert_eq!(deliveries(&analytic, 8, &[(0, 4), (1, 6)], bytes), [after(0), after(bytes)]);
    assert_eq!(deliveries(&analytic, 8, &[(0, 4), (2, 6)], bytes), [after(0), after(0)]);
    let pooled = nic_machine(4, None, 16.0, Fidelity::Analytic);
    assert_eq!(deliveries(&pooled, 8, &[(0, 4), (1, 6)], bytes), [after(0), after(bytes.div_ceil(2))]);
}

/// r`src` computes 5000 flops and sends 4096 bytes to r`dst`, which computes 3000 flops.
fn producer_and_reader_on(ranks: usize, src: u32, dst: u32) -> Arc<Dag> {
    let mut b = DagBuilder::new(ranks);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(src)).flops(5000.0).outputs(&[4096]));
    b.add(TaskSpec::new(KernelId(0), Rank(dst)).flops(3000.0).inputs(&[p.output(0)]).outputs(&[4096]));
    Arc::new(b.finish())
}

#[test]
fn a_gpu_direct_transfer_from_or_to_a_device_not_under_its_nics_switch_crosses_the_host() {
    // Two devices a node, each on its own switch; one NIC, under device 0's switch.
    let with_nics = |nics: Option<u32>, gpu_direct: bool| {
        let mut a = accelerators(2, 1, gpu_direct);
        a.nics = nics;
        toy(2, Some(a))
    };
    let one_nic = with_nics(Some(1), true);
    // r0, r2: device 0 of nodes 0 and 1 (next to the NIC); r1, r3: device 1 (across).
    // The hop is a host-link crossing: 300 ns + 4096 bytes at 1 byte/ns, as a copy.
    for (src, dst, hops) in [(0, 2, 0), (1, 2, 1), (0, 3, 1), (1, 3, 2)] {
        let out = simulate(&producer_and_reader_on(4, src, dst), &one_nic, 4);
        assert_eq!(out.makespan_ns, 5000 + hops * COPY + MESSAGE + 3000, "r{src} -> r{dst}");
        // The NIC moves the bytes: no copy engine records a copy.
        assert!(out.trace.copies.is_empty(), "{:?}", out.trace.copies);
    }
    // One NIC per device, or no `nics` (every device next to its NIC): no hop.
    for nics in [Some(2), None] {
        for (src, dst) in [(0, 2), (1, 2), (0, 3), (1, 3)] {
            let out = simulate(&producer_and_reader_on(4, src, dst), &with_nics(nics, true), 4);
            assert_eq!(out.makespan_ns, 5000 + MESSAGE + 3000, "nics {nics:?}: r{src} -> r{dst}");
        }
    }
    // Staged transfers are unchanged: the host copies at both ends, wherever the NIC is.
    for nics in [Some(1), None] {
        let out = simulate(&producer_and_reader_on(4, 1, 3), &with_nics(nics, false), 4);
        assert_eq!(out.makespan_ns, 5000 + COPY + MESSAGE + COPY + 3000, "nics {nics:?}");
    }
}

#[test]
fn a_hop_to_the_nic_holds_the_devices_switch_up_and_the_nics_switch_down() {
    let mut a = accelerators(2, 2, true);
    a.nics = Some(1);
    let mut d = Devices::new(&a, 2);
    assert!(!d.crosses_to_nic(Rank(0)) && d.crosses_to_nic(Rank(1)));
    assert_eq!(d.nic_hop(0, Rank(0), true, 1000), None, "device 0 is under its NIC's switch");
    // Device 1's data crosses to the NIC: 1000 bytes on its switch up and switch 0 down,
    // then the 300 ns latency.
    assert_eq!(d.nic_hop(0, Rank(1), true, 1000), Some(1300));
    // A copy to host on device 1 waits for its switch's up direction; one to device 0's
    // memory for switch 0's down direction; device 0's copy to host does not wait.
    assert_eq!(d.copy(0, Rank(1), Space::Host, 100).start, 1000);
    assert_eq!(d.copy(0, Rank(0), Space::Device(0), 100).start, 1000);
    assert_eq!(d.copy(0, Rank(0), Space::Host, 100).start, 0);
    // The way in takes the other directions: switch 0 up (free since 100), switch 1 down.
    assert_eq!(d.nic_hop(0, Rank(1), false, 1000), Some(100 + 1000 + 300));
}

#[test]
fn with_the_nic_on_the_host_every_gpu_direct_transfer_crosses_its_devices_switch_and_staged_ones_do_not() {
    // Two devices a node, each on its own switch, one NIC: under device 0's switch
    // (`first-device`) or on the host's root complex (`host`).
    let machine = |nic_switch: NicSwitch, gpu_direct: bool| {
        let mut a = accelerators(2, 1, gpu_direct);
        a.nics = Some(1);
        a.nic_switch = nic_switch;
        toy(2, Some(a))
    };
    // r0, r2: device 0 of nodes 0 and 1; r1, r3: device 1. A crossing is a host-link
    // hop, 300 ns + 4096 bytes at 1 byte/ns (= COPY), at each end that crosses.
    for (nic_switch, pairs) in [
        (NicSwitch::FirstDevice, [(0, 2, 0), (1, 2, 1), (0, 3, 1), (1, 3, 2)]),
        (NicSwitch::Host, [(0, 2, 2), (1, 2, 2), (0, 3, 2), (1, 3, 2)]),
    ] {
        for (src, dst, hops) in pairs {
            let out = simulate(&producer_and_reader_on(4, src, dst), &machine(nic_switch, true), 4);
            assert_eq!(out.makespan_ns, 5000 + hops * COPY + MESSAGE + 3000, "{nic_switch:?}: r{src} -> r{dst}");
        }
        // Staged: the host copies at both ends, wherever the NIC hangs.
        let out = simulate(&producer_and_reader_on(4, 1, 3), &machine(nic_switch, false), 4);
        assert_eq!(out.makespan_ns, 5000 + COPY + MESSAGE + COPY + 3000, "{nic_switch:?} staged");
    }
    // On the host, a hop holds only the device's own switch: device 0's data out holds
    // switch 0 up (a copy to host on device 0 waits for it), and no other switch.
    let mut a = accelerators(2, 2, true);
    (a.nics, a.nic_switch) = (Some(1), NicSwitch::Host);
    let mut d = Devices::new(&a, 2);
    assert!(d.crosses_to_nic(Rank(0)) && d.crosses_to_nic(Rank(1)));
    assert_eq!(d.nic_hop(0, Rank(0), true, 1000), Some(1000 + 300));
    assert_eq!(d.copy(0, Rank(0), Space::Host, 100).start, 1000);
    assert_eq!(d.copy(0, Rank(1), Space::Host, 100).start, 0);
    assert_eq!(d.copy(0, Rank(0), Space::Device(0), 100).start, 0, "switch 0 down is free");
    // The way in holds the device's switch down, which the copy to device 0 held for its
    // 100 bytes (a copy holds its link for the bytes only).
    assert_eq!(d.nic_hop(0, Rank(0), false, 1000), Some(100 + 1000 + 300));
}
