//! What-ifs: changed machines rerun through the simulator.

use dagwire_runtime::{ParamValue, Rank, Strategy};
use dagwire_sim::driver::{SimConfig, SimKernels, run};
use dagwire_sim::machine::whatif::{apply, parse_set, sensitivity};
use dagwire_sim::machine::{Machine, load_machine};
use dagwire_strategies::eager::Eager;
use dagwire_workloads::Workload;

fn eager(_: Rank) -> Box<dyn Strategy> {
    Box::new(Eager)
}

fn micro(pattern: &str, size: i64, window: i64) -> Box<dyn Workload> {
    let given = [
        ("pattern", ParamValue::Str(pattern.into())),
        ("size", ParamValue::Int(size)),
        ("iterations", ParamValue::Int(50)),
        ("warmup", ParamValue::Int(5)),
        ("window", ParamValue::Int(window)),
    ];
    dagwire_workloads::find("micro").unwrap().build(&given, 2, 1).unwrap()
}

fn cholesky() -> Box<dyn Workload> {
    let given = [("n", ParamValue::Int(2048)), ("tile", ParamValue::Int(256))];
    dagwire_workloads::find("cholesky").unwrap().build(&given, 2, 1).unwrap()
}

/// Makespan (ns) and the workload's first figure of a modelled run.
fn simulate(w: &dyn Workload, m: &Machine) -> (u64, f64) {
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
    let out = run(w.dag(), &kernels, &eager, m, cfg).unwrap().run;
    let figure = w.figures(&out.trace).first().map_or(0.0, |f| f.1);
    (out.makespan_ns, figure)
}

#[test]
fn every_factor_one_reproduces_the_baseline_exactly() {
    let m = load_machine("eth-100g").unwrap();
    let all: Vec<_> = ["latency", "overhead", "gap", "bandwidth", "nic_bandwidth", "link_bandwidth", "hop_latency"]
        .iter()
        .chain(&["compute", "task_overhead", "control", "path_bandwidth"])
        .map(|k| parse_set(&format!("{k}=1x")).unwrap())
        .collect();
    let same = apply(&m, &all, 1).unwrap();
    assert_eq!(same, m);
    for w in [micro("pingpong", 8, 1), micro("bandwidth", 1 << 20, 16), cholesky()] {
        assert_eq!(simulate(w.as_ref(), &same), simulate(w.as_ref(), &m));
    }
}

/// Two ranks on one node: the intra-node path. Doubling L adds exactly L to each
/// one-way hop of a ping-pong (the closed form: T(k) = o_s + (k-1)G + L + o_r), and
/// leaves a bandwidth-bound stream within 0.1%.
#[test]
fn latency_moves_a_latency_bound_point_by_the_closed_form_and_not_a_bandwidth_bound_one() {
    let m = load_machine("eth-100g").unwrap();
    let l = m.intra_node.segments[0].l_ns;
    let doubled = apply(&m, &[parse_set("latency=2x").unwrap()], 1).unwrap();
    let pp = micro("pingpong", 8, 1);
    let (_, base_us) = simulate(pp.as_ref(), &m);
    let (_, what_us) = simulate(pp.as_ref(), &doubled);
    assert!((what_us - base_us - l / 1e3).abs() < 1e-9, "{base_us} -> {what_us}, L = {l} ns");
    let bw = micro("bandwidth", 4 << 20, 16);
    let (_, base_mbps) = simulate(bw.as_ref(), &m);
    let (_, what_mbps) = simulate(bw.as_ref(), &doubled);
    assert!(((what_mbps - base_mbps) / base_mbps).abs() < 1e-3, "{base_mbps} -> {what_mbps}");
    // An absolute latency sets every segment's L.
    let abs = apply(&m, &[parse_set("latency=1us").unwrap()], 1).unwrap();
    assert!(abs.intra_node.segments.iter().chain(&abs.inter_node.segments).all(|s| s.l_ns == 1000.0));
}

/// `control` sets or scales the control-message cost: an eager ping-pong (no control
/// message) keeps its makespan to the nanosecond, a rendezvous one (two control
/// messages a hop) grows by exactly 2 µs per hop at `control=1us`.
#[test]
fn control_moves_the_rendezvous_ping_pong_by_the_closed_form_and_not_the_eager_one() {
    let m = load_machine("eth-100g").unwrap();
    assert_eq!(m.compute.control_message_ns, 0.0);
    let set = apply(&m, &[parse_set("control=1us").unwrap()], 1).unwrap();
    assert_eq!(set.compute.control_message_ns, 1000.0);
    let doubled = apply(&set, &[parse_set("control=2x").unwrap()], 1).unwrap();
    assert_eq!(doubled.compute.control_message_ns, 2000.0);
    let pp = micro("pingpong", 8, 1);
    assert_eq!(simulate(pp.as_ref(), &set).0, simulate(pp.as_ref(), &m).0, "eager sends no control message");
    let rendezvous = |machine: &Machine| {
        let name = |k| pp.kernel_name(k);
        let kernels = SimKernels { kernels: pp.kernels(), name: &name };
        let factory = dagwire_strategies::find("rendezvous").unwrap().factory_with(&[], pp.dag(), 2).unwrap();
        let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
        run(pp.dag(), &kernels, &factory, machine, cfg).unwrap().run
    };
    let (base, more) = (rendezvous(&m), rendezvous(&set));
    let hops = more.trace.messages.iter().filter(|m| m.class == dagwire_runtime::MessageClass::Data).count() as u64;
    assert_eq!(more.makespan_ns - base.makespan_ns, hops * 2 * 1000, "{hops} hops");
    assert!(parse_set("control=-1us").unwrap_err().to_string().contains("negative"));
}

/// `collective_piece` scales both collective piece costs (per message and per byte)
/// by a factor and sets the per-message one to an absolute time (leaving the per-byte
/// one); an eager ping-pong (no collective) keeps its makespan, a batched one grows.
#[test]
fn collective_piece_scales_both_piece_costs_and_sets_the_message_cost() {
    let mut m = load_machine("eth-100g").unwrap();
    assert_eq!((m.compute.collective_message_ns, m.compute.collective_ns_per_byte), (0.0, 0.0));
    m.compute.collective_message_ns = 400.0;
    m.compute.collective_ns_per_byte = 0.5;
    let doubled = apply(&m, &[parse_set("collective_piece=2x").unwrap()], 1).unwrap();
    assert_eq!((doubled.compute.collective_message_ns, doubled.compute.collective_ns_per_byte), (800.0, 1.0));
    let set = apply(&m, &[parse_set("collective_piece=3us").unwrap()], 1).unwrap();
    assert_eq!((set.compute.collective_message_ns, set.compute.collective_ns_per_byte), (3000.0, 0.5));
    let pp = micro("pingpong", 4096, 1);
    assert_eq!(simulate(pp.as_ref(), &doubled).0, simulate(pp.as_ref(), &m).0, "eager runs no collective");
    let batched = |machine: &Machine| {
        let name = |k| pp.kernel_name(k);
        let kernels = SimKernels { kernels: pp.kernels(), name: &name };
        let factory = dagwire_strategies::find("batched").unwrap().factory_with(&[], pp.dag(), 2).unwrap();
        let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
        run(pp.dag(), &kernels, &factory, machine, cfg).unwrap().run.makespan_ns
    };
    assert!(batched(&doubled) > batched(&m), "a batched ping-pong pays its pieces");
    let e = parse_set("collective_piece=-1us").unwrap_err();
    assert_eq!(e.key, "collective_piece");
    let e = parse_set("collective_peice=2x").unwrap_err();
    assert!(e.reason.contains("collective_piece"), "{e}");
}

#[test]
fn sensitivity_ranks_the_parameter_that_bounds_the_run_first() {
    let m = load_machine("eth-100g").unwrap();
    let rank = |w: &dyn Workload| -> Vec<&'static str> {
        let s = sensitivity(&m, 0.2, 1, |m| Ok::<u64, String>(simulate(w, m).0)).unwrap();
        s.iter().map(|s| s.key).collect()
    };
    // 8-byte ping-pong on shared memory: o + L + o, overheads and latency alike (100 +
    // 150 + 100 ns) and the task overhead (1 us per hop) dominating.
    let pp = rank(micro("pingpong", 8, 1).as_ref());
    assert_eq!(pp[0], "task_overhead", "{pp:?}");
    // A 4 MiB stream: the per-byte cost.
    let bw = rank(micro("bandwidth", 4 << 20, 16).as_ref());
    assert!(bw[0] == "bandwidth" || bw[0] == "path_bandwidth", "{bw:?}");
    assert!(bw[..2].contains(&"path_bandwidth") && bw[..2].contains(&"bandwidth"), "{bw:?}");
    // Cholesky with 256-tiles: the kernels.
    let ch = rank(cholesky().as_ref());
    assert_eq!(ch[0], "compute", "{ch:?}");
}

#[test]
fn latency_ranks_first_when_latency_is_what_a_run_waits_for() {
    let mut m = load_machine("eth-100g").unwrap();
    m.compute.task_overhead_ns = 0.0;
    for s in m.intra_node.segments.iter_mut() {
        s.l_ns = 20_000.0;
    }
    let w = micro("pingpong", 8, 1);
    let s = sensitivity(&m, 0.2, 1, |m| Ok::<u64, String>(simulate(w.as_ref(), m).0)).unwrap();
    assert_eq!(s[0].key, "latency", "{s:?}");
    assert!(s[0].high_ns > s[0].base_ns && s[0].low_ns < s[0].base_ns);
}

#[test]
fn invalid_sets_are_refused_naming_the_key_and_what_is_allowed() {
    let e = parse_set("latencyy=2x").unwrap_err();
    assert_eq!(e.key, "latencyy");
    assert!(e.reason.contains("did you mean `latency`") && e.reason.contains("nic_bandwidth"), "{e}");
    let e = parse_set("nic_bandwidth=400parsecs").unwrap_err();
    assert_eq!(e.key, "nic_bandwidth");
    assert!(e.reason.contains("parsecs") && e.reason.contains("Gb/s"), "{e}");
    let e = parse_set("latency=-2x").unwrap_err();
    assert_eq!(e.key, "latency");
    assert!(e.reason.contains("negative") && e.reason.contains("0.5x"), "{e}");
    let e = parse_set("bandwidth=0x").unwrap_err();
    assert!(e.reason.contains("above zero"), "{e}");
    let e = parse_set("topology=hypercube").unwrap_err();
    assert_eq!(e.key, "topology");
    assert!(e.reason.contains("dragonfly") && e.reason.contains("hypercube"), "{e}");
    let e = parse_set("latency").unwrap_err();
    assert!(e.to_string().contains("KEY=VALUE"), "{e}");
}

#[test]
fn a_replaced_topology_holds_the_run_and_keeps_the_links() {
    let m = load_machine("ib-hdr-fattree").unwrap();
    for kind in ["crossbar", "fat-tree", "dragonfly", "torus"] {
        let w = apply(&m, &[parse_set(&format!("topology={kind}")).unwrap()], 1000).unwrap();
        assert!(w.node_capacity().is_none_or(|c| c >= 1000), "{kind}: {:?}", w.topology);
        let net = dagwire_sim::network::Network::new(&w, 1000 * w.ranks_per_node as usize);
        assert!(net.is_ok(), "{kind}: {:?}", net.err());
    }
}
