//! Calibration: fitting recovers known parameters from synthetic measurements, and a
//! fitted model reproduces the curves it was fitted to.

use dagwire_runtime::rng::{self, RngExt};
use dagwire_sim::machine::LogGpSegment;
use dagwire_sim::machine::fit::{
    Sample, fit_kernel_byte_costs, fit_kernel_curves, fit_kernel_rates, fit_loggp, fit_piecewise,
};

/// The true model: two segments, the protocol switch at 16 KiB.
fn truth() -> [LogGpSegment; 2] {
    [
        LogGpSegment {
            from_bytes: 0,
            o_s_ns: 150.0,
            o_r_ns: 150.0,
            g_ns: 150.0,
            l_ns: 400.0,
            g_per_byte_ns: 0.125,
            o_per_byte_ns: None,
        },
        LogGpSegment {
            from_bytes: 16384,
            o_s_ns: 400.0,
            o_r_ns: 400.0,
            g_ns: 400.0,
            l_ns: 1200.0,
            g_per_byte_ns: 0.05,
            o_per_byte_ns: None,
        },
    ]
}

fn segment_of(bytes: u64) -> LogGpSegment {
    let t = truth();
    if bytes >= t[1].from_bytes { t[1].clone() } else { t[0].clone() }
}

/// Sizes as a calibration measures them: powers of two from 8 B to 4 MiB, and the
/// midpoints between them, so a boundary can fall between any two neighbours.
fn sizes() -> Vec<u64> {
    let mut v = Vec::new();
    let mut k = 8u64;
    while k <= 4 << 20 {
        v.push(k);
        v.push(k + k / 2);
        k *= 2;
    }
    v
}

/// One-way times and streaming intervals of the true model, with `noise` relative
/// uniform error (seeded), three repetitions per size.
fn measure(noise: f64) -> (Vec<Sample>, Vec<Sample>) {
    let mut r = rng::rng(7, 0);
    let mut jitter = |x: f64| x * (1.0 + noise * (2.0 * r.random::<f64>() - 1.0));
    let (mut pp, mut st) = (Vec::new(), Vec::new());
    for k in sizes() {
        let s = segment_of(k);
        for _ in 0..3 {
            let one_way = s.o_s_ns + s.l_ns + s.o_r_ns + (k - 1) as f64 * s.g_per_byte_ns;
            let interval = s.g_ns.max(s.o_s_ns).max(k as f64 * s.g_per_byte_ns);
            pp.push(Sample { bytes: k, ns: jitter(one_way) });
            st.push(Sample { bytes: k, ns: jitter(interval) });
        }
    }
    (pp, st)
}

fn close(got: f64, want: f64, tol: f64) -> bool {
    ((got - want) / want).abs() <= tol
}

#[test]
fn exact_measurements_give_back_the_parameters_and_the_boundary() {
    let (pp, st) = measure(0.0);
    let fit = fit_loggp(&pp, &st, 3).unwrap();
    assert_eq!(fit.segments.len(), 2, "{fit:#?}");
    assert_eq!(fit.segments[0].segment.from_bytes, 0);
    assert_eq!(fit.segments[1].segment.from_bytes, 16384, "the boundary is the protocol switch");
    for (got, want) in fit.segments.iter().zip(truth()) {
        let g = &got.segment;
        assert!(close(g.g_per_byte_ns, want.g_per_byte_ns, 1e-6), "{g:?}");
        assert!(close(g.o_s_ns + g.l_ns + g.o_r_ns, want.o_s_ns + want.l_ns + want.o_r_ns, 1e-6), "{g:?}");
        assert!(got.latency.rms_rel_residual < 1e-9);
    }
    // Small messages stream gap-bound: the truth follows the convention o = g, so the
    // split is recovered too. Large ones stream bandwidth-bound at every size, where g
    // does not show; the streaming curve is reproduced all the same.
    let small = &fit.segments[0].segment;
    assert!(close(small.o_s_ns, 150.0, 1e-6) && close(small.g_ns, 150.0, 1e-6) && close(small.l_ns, 400.0, 1e-6));
    for k in sizes() {
        let s = segment_of(k);
        let want = s.g_ns.max(s.o_s_ns).max(k as f64 * s.g_per_byte_ns);
        assert!(close(fit.interval_ns(k), want, 1e-6), "{k}: {} vs {want}", fit.interval_ns(k));
    }
}

/// The stated tolerance: with ±2% uniform noise on every measurement, the boundary is
/// found exactly, `G` and `o_s + L + o_r` within 3%, the small messages' `g` within 4%,
/// and both curves are reproduced within 3% (one-way) and 4% (streaming).
#[test]
fn noisy_measurements_recover_the_parameters_within_tolerance() {
    let (pp, st) = measure(0.02);
    let fit = fit_loggp(&pp, &st, 3).unwrap();
    assert_eq!(fit.segments.len(), 2, "{fit:#?}");
    assert_eq!(fit.segments[1].segment.from_bytes, 16384);
    for (got, want) in fit.segments.iter().zip(truth()) {
        let g = &got.segment;
        assert!(close(g.g_per_byte_ns, want.g_per_byte_ns, 0.03), "G {g:?}");
        assert!(close(g.o_s_ns + g.l_ns + g.o_r_ns, want.o_s_ns + want.l_ns + want.o_r_ns, 0.03), "fixed {g:?}");
        assert!(got.latency.rms_rel_residual < 0.02, "{:?}", got.latency);
    }
    assert!(close(fit.segments[0].segment.g_ns, 150.0, 0.04), "{:?}", fit.segments[0]);
    // And the fitted model reproduces every size's one-way time within 3%.
    for k in sizes() {
        let s = segment_of(k);
        let want = s.o_s_ns + s.l_ns + s.o_r_ns + (k - 1) as f64 * s.g_per_byte_ns;
        assert!(close(fit.one_way_ns(k), want, 0.03), "{k}: {} vs {want}", fit.one_way_ns(k));
        let want = s.g_ns.max(s.o_s_ns).max(k as f64 * s.g_per_byte_ns);
        assert!(close(fit.interval_ns(k), want, 0.04), "{k}: {} vs {want}", fit.interval_ns(k));
    }
}

#[test]
fn a_straight_curve_stays_one_segment() {
    let pp: Vec<Sample> = sizes().iter().map(|&k| Sample { bytes: k, ns: 800.0 + 0.1 * k as f64 }).collect();
    let pieces = fit_piecewise(&pp, 3, 3).unwrap();
    assert_eq!(pieces.len(), 1, "{pieces:#?}");
}

#[test]
fn three_segments_are_found_when_the_data_has_them() {
    let f = |k: u64| match k {
        0..4096 => 300.0 + 0.2 * k as f64,
        4096..131072 => 2000.0 + 0.1 * k as f64,
        _ => 10000.0 + 0.04 * k as f64,
    };
    let pp: Vec<Sample> = sizes().iter().map(|&k| Sample { bytes: k, ns: f(k) }).collect();
    let pieces = fit_piecewise(&pp, 3, 3).unwrap();
    let starts: Vec<u64> = pieces.iter().map(|p| p.from_bytes).collect();
    assert_eq!(starts, [8, 4096, 131072]);
}

#[test]
fn too_few_sizes_are_refused_and_bad_times_too() {
    let two = [Sample { bytes: 8, ns: 1.0 }, Sample { bytes: 16, ns: 2.0 }];
    assert!(fit_piecewise(&two, 2, 3).unwrap_err().to_string().contains("at least 3 distinct"));
    let bad = [Sample { bytes: 8, ns: f64::NAN }, Sample { bytes: 16, ns: 2.0 }, Sample { bytes: 32, ns: 3.0 }];
    assert!(fit_piecewise(&bad, 2, 3).is_err());
}

#[test]
fn kernel_rates_come_back_from_task_timings() {
    let overhead = 2000.0;
    let tasks: Vec<(&str, f64, f64)> = (1..20)
        .flat_map(|i| {
            let f = i as f64 * 1e6;
            [("gemm", 2.0 * f, overhead + 2.0 * f / 40.0), ("potrf", f / 3.0, overhead + f / 3.0 / 10.0)]
        })
        .collect();
    let rates = fit_kernel_rates(tasks.iter().copied(), overhead);
    let get = |n: &str| rates.iter().find(|r| r.name == n).unwrap();
    assert!(close(get("gemm").gflops, 40.0, 1e-9) && close(get("potrf").gflops, 10.0, 1e-9), "{rates:?}");
    assert!(get("gemm").rms_rel_residual < 1e-9);
}

#[test]
fn kernel_curves_recover_rates_per_task_size_and_the_model_reproduces_each_duration() {
    use dagwire_sim::compute::ComputeModel;
    use dagwire_sim::machine::{Compute, ComputeMode};
    // A kernel that runs at 2, 5 and 9 GFLOP/s on tiles of 128, 256 and 512, timed with
    // +/-5 % noise, 12 tasks per size; a second kernel timed at one size only.
    let overhead = 1500.0;
    let truth = [(128f64, 2.0), (256.0, 5.0), (512.0, 9.0)];
    let mut r = rng::rng(7, 1);
    let mut tasks = Vec::new();
    for &(b, rate) in &truth {
        for _ in 0..12 {
            let flops = b * b * b;
            let noise = 1.0 + r.random_range(-0.05..0.05);
            tasks.push(("gemm", flops, overhead + flops / rate * noise));
        }
    }
    tasks.push(("potrf", 1e6, 1e6));
    let curves = fit_kernel_curves(tasks.iter().copied(), overhead);
    assert_eq!(curves.len(), 1, "potrf was measured at one size: {curves:?}");
    let c = &curves[0];
    assert_eq!(c.name, "gemm");
    assert_eq!(c.points.len(), 3);
    for (&(b, rate), &(flops, fitted, n)) in truth.iter().zip(&c.points) {
        assert_eq!((flops, n), (b * b * b, 12));
        assert!(close(fitted, rate, 0.05), "tile {b}: fitted {fitted} GFLOP/s, true {rate}");
    }
    assert!(c.rms_rel_residual < 0.05, "{c:?}");
    // One rate per name cannot hold the three sizes; the curve can, within the noise.
    let model = ComputeModel::new(&Compute {
        mode: ComputeMode::Model,
        cores_per_rank: 1,
        kernel_gflops: [("gemm".to_string(), fit_kernel_rates(tasks.iter().copied(), overhead)[0].gflops)].into(),
        default_gflops: 1.0,
        kernel_curves: [("gemm".to_string(), c.points.iter().map(|p| [p.0, p.1]).collect())].into(),
        kernel_ns_per_byte: Default::default(),
        task_overhead_ns: overhead,
        control_message_ns: 0.0,
        collective_call_ns: 0.0,
        collective_message_ns: 0.0,
        collective_ns_per_byte: 0.0,
        progress: Default::default(),
    });
    for &(b, rate) in &truth {
        let flops = b * b * b;
        let exact = overhead + flops / rate;
        assert!(close(model.modelled("gemm", flops, 0) as f64, exact, 0.06), "tile {b}");
    }
}

#[test]
fn kernel_curves_add_up_to_the_measured_time_of_skewed_kernels() {
    // Per size, most tasks fast and one in eight four times slower (small-tile trsm
    // here): the modelled durations must add up to the measured total, which a median
    // rate (the fast tasks' rate) would miss by a quarter.
    let overhead = 500.0;
    let mut tasks = Vec::new();
    for b in [128f64, 256.0] {
        for i in 0..16 {
            let flops = b * b * b;
            let slow = if i % 8 == 0 { 4.0 } else { 1.0 };
            tasks.push(("trsm", flops, overhead + flops / 3.0 * slow));
        }
    }
    let curves = fit_kernel_curves(tasks.iter().copied(), overhead);
    for &(flops, rate, n) in &curves[0].points {
        let measured: f64 = tasks.iter().filter(|t| t.1 == flops).map(|t| t.2).sum();
        let modelled = n as f64 * (overhead + flops / rate);
        assert!(close(modelled, measured, 1e-9), "{flops} flops: modelled {modelled}, measured {measured}");
    }
}

#[test]
fn byte_costs_recover_a_generator_and_the_model_charges_each_task_for_its_bytes() {
    use dagwire_sim::compute::ComputeModel;
    use dagwire_sim::machine::{Compute, ComputeMode};
    // A generator writing tiles of 128^2 and 512^2 doubles at 0.9 ns per byte (+/-5 %);
    // flop kernels are not its business.
    let overhead = 500.0;
    let mut r = rng::rng(9, 1);
    let mut tasks = Vec::new();
    for b in [128u64, 512] {
        for _ in 0..10 {
            let bytes = b * b * 8;
            tasks.push(("gen", 0.0, bytes, overhead + 0.9 * bytes as f64 * (1.0 + r.random_range(-0.05..0.05))));
        }
    }
    tasks.push(("gemm", 1e6, 8 * 128 * 128, 5e4));
    tasks.push(("noop", 0.0, 0, 600.0));
    let costs = fit_kernel_byte_costs(tasks.iter().copied(), overhead);
    assert_eq!(costs.len(), 1, "only the generator writes without flops: {costs:?}");
    assert_eq!((costs[0].name.as_str(), costs[0].tasks), ("gen", 20));
    assert!(close(costs[0].ns_per_byte, 0.9, 0.05) && costs[0].rms_rel_residual < 0.05, "{costs:?}");
    let model = ComputeModel::new(&Compute {
        mode: ComputeMode::Model,
        cores_per_rank: 1,
        kernel_gflops: Default::default(),
        default_gflops: 20.0,
        kernel_curves: Default::default(),
        kernel_ns_per_byte: [("gen".to_string(), costs[0].ns_per_byte)].into(),
        task_overhead_ns: overhead,
        control_message_ns: 0.0,
        collective_call_ns: 0.0,
        collective_message_ns: 0.0,
        collective_ns_per_byte: 0.0,
        progress: Default::default(),
    });
    assert!(model.charges_bytes());
    let tile = 512 * 512 * 8;
    assert_eq!(model.modelled("gen", 0.0, tile), (overhead + costs[0].ns_per_byte * tile as f64).ceil() as u64);
    // Other kernels pay for their flops only, however many bytes they write.
    assert_eq!(model.modelled("gemm", 2e6, tile), model.modelled("gemm", 2e6, 0));
}

/// Ping-pong hops of `strategy` on `machine` as `experiment calibrate` takes them: per
/// measured iteration, rank 0's send start to its receive end, halved; and the data
/// messages' one-way time (sent to received in the trace). Both are medians.
fn simulated_pingpong(
    machine: &dagwire_sim::machine::Machine,
    strategy: &str,
    params: &[(&str, dagwire_runtime::ParamValue)],
    size: i64,
) -> (f64, f64) {
    use dagwire_runtime::{MessageClass, ParamValue, Rank};
    use dagwire_sim::driver::{SimConfig, SimKernels, run};
    use dagwire_sim::machine::fit::median;
    let given = [
        ("pattern", ParamValue::Str("pingpong".into())),
        ("size", ParamValue::Int(size)),
        ("iterations", ParamValue::Int(20)),
        ("warmup", ParamValue::Int(2)),
        ("window", ParamValue::Int(1)),
    ];
    let w = dagwire_workloads::find("micro").unwrap().build(&given, 2, 1).unwrap();
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let factory = dagwire_strategies::find(strategy).unwrap().factory_with(params, w.dag(), 2).unwrap();
    let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
    let out = run(w.dag(), &kernels, &factory, machine, cfg).unwrap().run;
    let mut at: std::collections::BTreeMap<u32, (u64, u64)> = Default::default();
    for t in out.trace.tasks.iter().filter(|t| t.rank == Rank(0)) {
        let task = w.dag().task(t.task);
        if task.args[1] == 0 {
            continue; // warm-up
        }
        let slot = at.entry(task.args[0]).or_default();
        match w.kernel_name(t.kernel) {
            "send" => slot.0 = t.start_ns,
            "recv" => slot.1 = t.end_ns,
            _ => {}
        }
    }
    let spans: Vec<f64> = at.values().map(|&(s, e)| (e - s) as f64).collect();
    let wire: Vec<f64> = out
        .trace
        .messages
        .iter()
        .filter(|m| m.class == MessageClass::Data && m.bytes == size as u64)
        .map(|m| (m.recv_ns - m.sent_ns) as f64)
        .collect();
    (median(&spans) / 2.0, median(&wire))
}

/// One segment with a sizeable fixed cost (o, g, L) and 0.1 ns/byte: the machine the
/// control-message and collective-call fits are checked on.
fn fixed_cost_segment() -> LogGpSegment {
    LogGpSegment {
        from_bytes: 0,
        o_s_ns: 300.0,
        o_r_ns: 300.0,
        g_ns: 300.0,
        l_ns: 900.0,
        g_per_byte_ns: 0.1,
        o_per_byte_ns: None,
    }
}

/// The control-message cost comes back from simulated ping-pongs on a synthetic machine
/// with a known cost (1500 ns on top of o_r = 300 ns): eager at 8 B .. 64 KiB, rendezvous
/// with every message through the handshake at 8, 64 and 512 B, each hop and message
/// time with ±2% seeded noise, fitted the way `experiment calibrate` fits them (task
/// overhead from the smallest hop, LogGP from the rest, then `fit_control`): within 5%.
/// Without the cost in the machine the fit finds almost none.
#[test]
fn the_control_message_cost_comes_back_from_simulated_ping_pongs() {
    use dagwire_runtime::ParamValue;
    use dagwire_runtime::message::HEADER_BYTES;
    use dagwire_sim::machine::Machine;
    use dagwire_sim::machine::fit::fit_control;
    let seg = fixed_cost_segment();
    let recovered = |control: f64| {
        let mut machine = Machine::crossbar("synthetic", seg.clone(), 2, 1e4);
        machine.compute.task_overhead_ns = 800.0;
        machine.compute.control_message_ns = control;
        let mut r = rng::rng(11, 0);
        let mut noisy = |x: f64| x * (1.0 + 0.02 * (2.0 * r.random::<f64>() - 1.0));
        let (mut hops, mut wires) = (Vec::new(), Vec::new());
        for k in (3..=16).map(|p| 1u64 << p) {
            let (hop, wire) = simulated_pingpong(&machine, "eager", &[], k as i64);
            hops.push(Sample { bytes: k, ns: noisy(hop) });
            wires.push(noisy(wire));
        }
        let overhead = (hops[0].ns - wires[0]) / 2.0;
        let pp: Vec<Sample> = hops.iter().map(|h| Sample { bytes: h.bytes, ns: h.ns - 2.0 * overhead }).collect();
        let fit = fit_loggp(&pp, &[], 3).unwrap();
        let limit = [("eager_limit", ParamValue::Int(0))];
        let rendezvous: Vec<Sample> = [8u64, 64, 512]
            .iter()
            .map(|&k| Sample { bytes: k, ns: noisy(simulated_pingpong(&machine, "rendezvous", &limit, k as i64).0) })
            .collect();
        fit_control(&rendezvous, &fit, overhead, HEADER_BYTES).unwrap()
    };
    let c = recovered(1500.0);
    assert!(close(c.ns, 1500.0, 0.05), "{c:?}");
    assert!(c.rms_rel_residual < 0.03, "{c:?}");
    assert_eq!(c.estimates.iter().map(|e| e.0).collect::<Vec<_>>(), [8, 64, 512]);
    // The same machine without the cost: what is left is the noise (±2% of a ~5 µs hop).
    let none = recovered(0.0);
    assert!(none.ns < 0.05 * 1500.0, "{none:?}");
}

/// The median time, on rank 0, from a batched micro round's send task starting to its
/// receive task ending (`pattern` at `bytes`, simulated on `m`; warm-up rounds left out).
fn median_round_ns(m: &dagwire_sim::machine::Machine, pattern: &str, bytes: u64) -> f64 {
    let (w, out) = simulated_micro(m, "batched", pattern, bytes);
    let mut at: std::collections::BTreeMap<u32, (u64, u64)> = Default::default();
    for t in out.trace.tasks.iter().filter(|t| t.rank.0 == 0 && w.dag().task(t.task).args[1] != 0) {
        let slot = at.entry(w.dag().task(t.task).args[0]).or_default();
        match w.kernel_name(t.kernel) {
            "send" => slot.0 = t.start_ns,
            "recv" => slot.1 = t.end_ns,
            _ => {}
        }
    }
    dagwire_sim::machine::fit::median(&at.values().map(|&(s, e)| (e - s) as f64).collect::<Vec<_>>())
}

/// A simulated micro run on `machine` (20 measured iterations, 2 of warm-up).
fn simulated_micro(
    machine: &dagwire_sim::machine::Machine,
    strategy: &str,
    pattern: &str,
    size: u64,
) -> (Box<dyn dagwire_workloads::Workload>, dagwire_runtime::RunOutcome) {
    use dagwire_runtime::ParamValue;
    use dagwire_sim::driver::{SimConfig, SimKernels, run};
    let given = [
        ("pattern", ParamValue::Str(pattern.into())),
        ("size", ParamValue::Int(size as i64)),
        ("iterations", ParamValue::Int(20)),
        ("warmup", ParamValue::Int(2)),
        ("window", ParamValue::Int(16)),
    ];
    let w = dagwire_workloads::find("micro").unwrap().build(&given, 2, 1).unwrap();
    let out = {
        let name = |k| w.kernel_name(k);
        let kernels = SimKernels { kernels: w.kernels(), name: &name };
        let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&[], w.dag(), 1).unwrap();
        let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
        run(w.dag(), &kernels, &factory, machine, cfg).unwrap().run
    };
    (w, out)
}

/// LogGOPS's `O` comes back from streaming intervals of a machine with a known one
/// (0.3 ns per byte, G = 0.1: the copy is what a stream waits for, the case `experiment
/// calibrate` assumes on one node), ±2% seeded noise, sizes 8 B .. 4 MiB: within 5%, and
/// spread over the fitted ping-pong line, `G` comes back within 10% while the line
/// (`o_s + L + o_r + (k-1)(G + 2 O)`) stays the fitted one. A ping-pong slope below
/// twice the stream's is split the other way (see `LogGpFit::with_cpu_per_byte`).
#[test]
fn the_cpu_overhead_per_byte_comes_back_from_streaming_intervals() {
    use dagwire_sim::machine::fit::fit_cpu_per_byte;
    let (o, g, fixed) = (0.3, 0.1, 1500.0);
    let mut r = rng::rng(13, 0);
    let mut noisy = |x: f64| x * (1.0 + 0.02 * (2.0 * r.random::<f64>() - 1.0));
    let sizes: Vec<u64> = (3..=22).map(|p| 1u64 << p).collect();
    let stream: Vec<Sample> =
        sizes.iter().map(|&k| Sample { bytes: k, ns: noisy(300.0 + (k - 1) as f64 * o) }).collect();
    let pp: Vec<Sample> =
        sizes.iter().map(|&k| Sample { bytes: k, ns: noisy(fixed + (k - 1) as f64 * (g + 2.0 * o)) }).collect();
    let cpu = fit_cpu_per_byte(&stream, &stream).unwrap();
    assert!(close(cpu.ns_per_byte, o, 0.05), "{cpu:?}");
    let plain = fit_loggp(&pp, &stream, 1).unwrap();
    let with = plain.with_cpu_per_byte(&cpu);
    let s = &with.segments[0].segment;
    assert!(close(s.o_per_byte_ns.unwrap(), cpu.ns_per_byte, 1e-9) && close(s.g_per_byte_ns, g, 0.10), "{s:?}");
    for k in [8u64, 4096, 1 << 22] {
        assert!(close(with.one_way_ns(k), plain.one_way_ns(k), 1e-9), "{k}");
    }
    // A ping-pong slope under twice the stream's (one copy a message, the wire bounds
    // the stream): G = the stream's slope, O half the rest; under the stream's: no O.
    let slope = |p: f64| -> Vec<Sample> {
        sizes.iter().map(|&k| Sample { bytes: k, ns: fixed + (k - 1) as f64 * p }).collect()
    };
    let wire_bound = fit_loggp(&slope(0.45), &stream, 1).unwrap().with_cpu_per_byte(&cpu);
    let s = &wire_bound.segments[0].segment;
    let want_o = (0.45 - cpu.ns_per_byte) / 2.0;
    assert!(close(s.o_per_byte_ns.unwrap(), want_o, 0.02) && close(s.g_per_byte_ns, cpu.ns_per_byte, 0.02), "{s:?}");
    let flat = fit_loggp(&slope(0.2), &stream, 1).unwrap().with_cpu_per_byte(&cpu);
    let s = &flat.segments[0].segment;
    assert!(s.o_per_byte_ns == Some(0.0) && close(s.g_per_byte_ns, 0.2, 0.01), "{s:?}");
}

/// The collective costs (call, per message a piece carries, per payload byte) come back
/// from simulated batched ping-pongs and streams on a machine with known ones (4 µs,
/// 600 ns, 0.3 ns/B), fitted as `experiment calibrate` does (least squares over probe
/// simulations of the machine without them), ±1% seeded noise on the measurements:
/// each within 10% (the call within 5%), and the fit's rms residual under 2%. Without
/// the costs, all three come back near 0.
#[test]
fn the_collective_costs_come_back_from_simulated_batched_runs() {
    use dagwire_sim::machine::Machine;
    use dagwire_sim::machine::fit::{CollectiveCosts, CollectiveSample, fit_collective};
    let mut machine = Machine::crossbar("synthetic", fixed_cost_segment(), 2, 1e4);
    machine.compute.task_overhead_ns = 800.0;
    let time = |m: &Machine, s: &CollectiveSample| {
        let per = if s.pattern == "pingpong" { 2.0 } else { 16.0 };
        median_round_ns(m, s.pattern, s.bytes) / per
    };
    let with = |c: &CollectiveCosts| {
        let mut m = machine.clone();
        m.compute.collective_call_ns = c.call_ns;
        m.compute.collective_message_ns = c.message_ns;
        m.compute.collective_ns_per_byte = c.ns_per_byte;
        m
    };
    let truth = CollectiveCosts { call_ns: 4000.0, message_ns: 600.0, ns_per_byte: 0.3 };
    let runs: Vec<CollectiveSample> = ["pingpong", "bandwidth"]
        .into_iter()
        .flat_map(|p| [8u64, 512, 4096, 32768].map(|k| CollectiveSample { pattern: p, bytes: k, ns: 0.0 }))
        .collect();
    let mut r = rng::rng(23, 0);
    let mut noisy = |x: f64| x * (1.0 + 0.01 * (2.0 * r.random::<f64>() - 1.0));
    let measured: Vec<CollectiveSample> =
        runs.iter().map(|s| CollectiveSample { ns: noisy(time(&with(&truth), s)), ..s.clone() }).collect();
    let fit = fit_collective(&measured, &mut |c, s| time(&with(c), s)).unwrap();
    let c = fit.costs;
    assert!(close(c.call_ns, 4000.0, 0.05), "{fit:?}");
    assert!(close(c.message_ns, 600.0, 0.10) && close(c.ns_per_byte, 0.3, 0.10), "{fit:?}");
    assert!(fit.rms_rel_residual < 0.02, "{fit:?}");
    let exact: Vec<CollectiveSample> =
        runs.iter().map(|s| CollectiveSample { ns: time(&machine, s), ..s.clone() }).collect();
    let none = fit_collective(&exact, &mut |c, s| time(&with(c), s)).unwrap().costs;
    assert!(none.call_ns < 10.0 && none.message_ns < 10.0 && none.ns_per_byte < 1e-3, "{none:?}");
}
