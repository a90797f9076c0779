//! Human-readable summaries of machines (`experiment list machines`) and derived
//! quantities such as how many nodes a topology holds.

use super::{LogGp, Machine, Topology};
use std::fmt::Write;

impl Machine {
    /// How many nodes the topology can hold: `None` for a crossbar (unlimited),
    /// k³/4 for a k-ary fat-tree, groups × routers × nodes per router for a dragonfly,
    /// the product of the dimensions for a torus (saturating at `u64::MAX`).
    /// A run needs `ceil(ranks / ranks_per_node)` nodes.
    ///
    /// ```
    /// use dagwire_sim::machine::load_machine;
    /// assert_eq!(load_machine("shm-node").unwrap().node_capacity(), None);
    /// assert_eq!(load_machine("ib-hdr-fattree").unwrap().node_capacity(), Some(16 * 16 * 16 / 4));
    /// ```
    pub fn node_capacity(&self) -> Option<u64> {
        let product = |xs: &[u32]| xs.iter().fold(1u128, |acc, &x| acc.saturating_mul(u128::from(x)));
        let nodes = match &self.topology {
            Topology::Crossbar { .. } => return None,
            Topology::FatTree { k, .. } => product(&[*k, *k, *k]) / 4,
            Topology::Dragonfly { groups, routers_per_group, nodes_per_router, .. } => {
                product(&[*groups, *routers_per_group, *nodes_per_router])
            }
            Topology::Torus { dims, .. } => product(dims),
        };
        Some(u64::try_from(nodes).unwrap_or(u64::MAX))
    }
}

/// A few lines on a machine for listings: name and description, fidelity and topology
/// (with its node capacity), ranks per node and NIC, the LogGP segments of both paths
/// (latency, overheads, bandwidth), and the compute rates.
///
/// ```
/// use dagwire_sim::machine::{describe, load_machine};
/// let text = describe(&load_machine("ib-hdr-fattree").unwrap());
/// assert!(text.starts_with("ib-hdr-fattree"));
/// assert!(text.contains("1024 nodes"), "{text}");
/// ```
pub fn describe(m: &Machine) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<24} {}", m.name, m.description);
    let fidelity = match m.fidelity {
        super::Fidelity::Analytic => "analytic (LogGP + NIC queues)",
        super::Fidelity::Flow => "flow (max-min link sharing)",
    };
    let capacity = match m.node_capacity() {
        None => "any number of nodes".to_string(),
        Some(n) => format!("{n} nodes = {} ranks", n.saturating_mul(u64::from(m.ranks_per_node))),
    };
    let _ = writeln!(out, "    fidelity {fidelity}; topology {}; holds {capacity}", topology(&m.topology));
    let _ = writeln!(
        out,
        "    {} ranks/node x {} cores/rank; NIC {} Gbit/s",
        m.ranks_per_node,
        m.compute.cores_per_rank,
        num(m.nic_gbps)
    );
    let _ = writeln!(out, "    inter-node: {}", loggp(&m.inter_node));
    let _ = writeln!(out, "    intra-node: {}", loggp(&m.intra_node));
    let c = &m.compute;
    let mut rates: Vec<String> = c
        .kernel_gflops
        .iter()
        .filter(|(k, _)| !c.kernel_curves.contains_key(*k))
        .map(|(k, v)| format!("{k} {}", num(*v)))
        .collect();
    rates.extend(c.kernel_curves.iter().map(|(k, curve)| {
        let lo = curve.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min);
        let hi = curve.iter().map(|p| p[1]).fold(0.0, f64::max);
        format!("{k} {}-{} by task size", num(lo), num(hi))
    }));
    rates.push(format!("other {}", num(c.default_gflops)));
    let writing: String =
        c.kernel_ns_per_byte.iter().map(|(k, ns)| format!("; {k} {} ns per byte written", num(*ns))).collect();
    let mode = match c.mode {
        super::ComputeMode::Model => "modelled",
        super::ComputeMode::Measure => "measured (rates unused)",
    };
    let _ = writeln!(
        out,
        "    compute {mode}: {} GFLOP/s per core{writing}; task overhead {} ns; control message {} ns; collective \
         call {} ns{}; {}",
        rates.join(", "),
        num(c.task_overhead_ns),
        num(c.control_message_ns),
        num(c.collective_call_ns),
        if c.collective_message_ns == 0.0 && c.collective_ns_per_byte == 0.0 {
            String::new()
        } else {
            format!(
                ", {} ns per message and {} ns per byte a collective piece carries",
                num(c.collective_message_ns),
                num(c.collective_ns_per_byte)
            )
        },
        match c.progress {
            super::ProgressModel::Thread => "communication progresses beside kernels",
            super::ProgressModel::Inline => "inline progress: messages wait for the running kernel",
        }
    );
    if let Some(a) = &m.accelerators {
        accelerators(&mut out, a, m.nic_gbps);
    }
    out
}

/// The `[accelerators]` lines: devices, streams and copy engines, links, NICs, rates.
fn accelerators(out: &mut String, a: &super::Accelerators, nic_gbps: f64) {
    let model = if a.model.is_empty() { String::new() } else { format!(" {}", a.model) };
    let _ = writeln!(
        out,
        "    accelerators: {} x{model}, {} GiB each, one rank per device; {} streams, {} copy engines; {}",
        a.devices,
        num(a.memory_gib),
        a.streams,
        a.copy_engines,
        if a.gpu_direct { "GPU-direct (NIC reads device memory)" } else { "staged through host memory" }
    );
    let h = &a.host_link;
    let peer = match &a.peer_link {
        Some(p) => format!("peer link {} Gbit/s per device, {} ns", num(p.gbps), num(p.latency_ns)),
        None => "no peer link (peer copies over PCIe)".to_string(),
    };
    let _ = writeln!(
        out,
        "    host link {} Gbit/s per direction, {} ns, {} device(s) per switch; {peer}",
        num(h.gbps),
        num(h.latency_ns),
        h.devices_per_switch
    );
    let nics = match a.nics {
        None => format!("NICs: one pool of {} Gbit/s per node, next to every device", num(nic_gbps)),
        Some(n) => {
            let per_nic = a.devices / n.max(1);
            let (far, at) = match a.nic_switch {
                super::NicSwitch::FirstDevice => (
                    (0..a.devices)
                        .filter(|d| {
                            d / h.devices_per_switch.max(1)
                                != d / per_nic.max(1) * per_nic / h.devices_per_switch.max(1)
                        })
                        .count() as u32,
                    "under its first device's switch (nic_switch = \"first-device\")",
                ),
                super::NicSwitch::Host => (a.devices, "on the host's root complex (nic_switch = \"host\")"),
            };
            format!(
                "NICs: {n} per node, {} Gbit/s each, {per_nic} device(s) each, {at}; {far} of {} devices cross the \
                 host to reach theirs (GPU-direct)",
                num(nic_gbps / f64::from(n.max(1))),
                a.devices
            )
        }
    };
    let _ = writeln!(out, "    {nics}");
    let mut rates: Vec<String> = a.kernel_gflops.iter().map(|(k, v)| format!("{k} {}", num(*v))).collect();
    rates.push(format!("other {}", num(a.default_gflops)));
    let _ =
        writeln!(out, "    device kernels: {} GFLOP/s per kernel; launch {} ns", rates.join(", "), num(a.launch_ns));
}

fn topology(t: &Topology) -> String {
    match t {
        Topology::Crossbar { link_gbps } => format!("crossbar, {} Gbit/s links", num(*link_gbps)),
        Topology::FatTree { k, oversubscription, link_gbps, hop_ns } => format!(
            "fat-tree k={k}, {} Gbit/s links, {}:1 oversubscription, {} ns/hop",
            num(*link_gbps),
            num(*oversubscription),
            num(*hop_ns)
        ),
        Topology::Dragonfly {
            groups,
            routers_per_group,
            nodes_per_router,
            global_links_per_router,
            local_gbps,
            global_gbps,
            hop_ns,
        } => format!(
            "dragonfly {groups} groups x {routers_per_group} routers x {nodes_per_router} nodes, \
             {global_links_per_router} global links/router, local {} / global {} Gbit/s, {} ns/hop",
            num(*local_gbps),
            num(*global_gbps),
            num(*hop_ns)
        ),
        Topology::Torus { dims, link_gbps, hop_ns } => format!(
            "torus {}, {} Gbit/s links, {} ns/hop",
            dims.iter().map(u32::to_string).collect::<Vec<_>>().join("x"),
            num(*link_gbps),
            num(*hop_ns)
        ),
    }
}

fn loggp(l: &LogGp) -> String {
    l.segments
        .iter()
        .map(|s| {
            format!(
                "from {}: L {} ns, o_s {} ns, o_r {} ns, g {} ns, {} GB/s{}",
                bytes(s.from_bytes),
                num(s.l_ns),
                num(s.o_s_ns),
                num(s.o_r_ns),
                num(s.g_ns),
                gbytes(1.0 / s.g_per_byte_ns),
                s.o_per_byte_ns.map_or(String::new(), |o| format!(", CPU {} ns per byte", num(o)))
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `0 B`, `8 KiB`, `4 MiB`, or plain bytes when not a round binary size.
fn bytes(b: u64) -> String {
    if b == 0 {
        "0 B".into()
    } else if b & ((1 << 20) - 1) == 0 {
        format!("{} MiB", b >> 20)
    } else if b & 1023 == 0 {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

/// A bandwidth in GB/s to one decimal, without a trailing `.0` (`24`, `12.5`).
fn gbytes(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_string)
}

/// A number without trailing zeros, at most 3 decimals (`200`, `0.5`, `23.81`).
fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
