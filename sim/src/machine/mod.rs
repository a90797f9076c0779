//! Machine models: what the simulator knows about a machine. Read from TOML files in
//! `machines/` (presets are embedded) and validated before any run.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod calibrated;
mod describe;
pub mod fit;
mod parse;
mod presets;
pub mod simgrid;
#[cfg(test)]
mod tests;
pub mod whatif;

pub use describe::describe;
pub use parse::{KERNEL_TABLES, MachineError, check_kernel_kinds, load_machine, parse_machine, validate_machine};
pub use presets::{PRESETS, preset_names, preset_text};

/// A whole machine model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// Short name (`ib-hdr-fattree`).
    pub name: String,
    /// One line on what it models, with its sources.
    pub description: String,
    /// `analytic`: LogGP per message with NIC queues, no link contention (fastest);
    /// `flow`: messages are flows over topology links shared max-min fairly.
    pub fidelity: Fidelity,
    /// Ranks placed on one node (consecutive ranks share a node).
    pub ranks_per_node: u32,
    /// Per-node NIC injection bandwidth, Gbit/s: one NIC the node's ranks share, or, with
    /// [`Accelerators::nics`], split evenly between the node's NICs.
    pub nic_gbps: f64,
    /// Message costs between nodes.
    pub inter_node: LogGp,
    /// Message costs within a node (shared memory).
    pub intra_node: LogGp,
    /// How nodes are connected.
    pub topology: Topology,
    /// How long kernels take.
    pub compute: Compute,
    /// Random extra latency per message, as a fraction of its `L` (0 = off, the
    /// default): each message waits `L * jitter * u` more, `u` uniform in [0, 1) drawn
    /// from the run's seed, so runs stay reproducible.
    #[serde(default)]
    pub latency_jitter: f64,
    /// What registering memory for remote reads costs (the `fabric` strategy's
    /// exposures); optional, defaults to [`Registration::default`].
    #[serde(default)]
    pub registration: Registration,
    /// Accelerators on every node (GPUs): optional; without it ranks run on host cores
    /// and the model is exactly the CPU one. With it, ranks are placed one per device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerators: Option<Accelerators>,
}

/// The accelerators of one node (the `[accelerators]` section): one rank per device,
/// kernels on the device's compute streams, copies on its copy engines over its host
/// link (a PCIe switch shared by `devices_per_switch` devices) or over the device-device
/// link inside the node, and the node's NICs and which devices each serves (`nics`); the
/// simulator's `device` module gives the timing rules, its `network` module the NICs'.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accelerators {
    /// What the device is (`NVIDIA H100 SXM5 80GB`), for listings.
    #[serde(default)]
    pub model: String,
    /// Devices per node; must equal `ranks_per_node` (one rank per device).
    pub devices: u32,
    /// Device memory per device, GiB: a run whose device tasks need more at once fails
    /// (chunks are not evicted; see `dagwire_runtime::space`).
    pub memory_gib: f64,
    /// Compute streams per device: kernels and copies each hold one while they run.
    pub streams: u32,
    /// Copy engines (DMA engines) per device: a copy holds one while it runs.
    pub copy_engines: u32,
    /// Whether the NIC reads and writes device memory itself (GPU-direct RDMA); if not,
    /// inter-node data is staged through host memory with a copy at each end.
    pub gpu_direct: bool,
    /// Fixed cost of every kernel launch, ns.
    #[serde(default)]
    pub launch_ns: f64,
    /// Rate of kernels not listed in `kernel_gflops`, GFLOP/s per kernel.
    pub default_gflops: f64,
    /// Sustained rate per kernel name (`gemm`, `potrf`...), GFLOP/s per kernel (kernels on
    /// different streams run side by side, each at its rate).
    #[serde(default)]
    pub kernel_gflops: BTreeMap<String, f64>,
    /// The link between a device and host memory (and the NIC when staged).
    pub host_link: HostLink,
    /// The device-device link inside a node (NVLink, xGMI, Xe Link); absent: peer copies
    /// go device to device over the host links (PCIe peer-to-peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_link: Option<PeerLink>,
    /// NICs per node and which devices each serves (the NIC-to-device affinity): NIC `i`
    /// serves the `devices / nics` consecutive devices from `i * devices / nics` on, sits
    /// under the PCIe switch of the first of them (or on the host, [`Self::nic_switch`]), and has `nic_gbps / nics` of the node's
    /// injection bandwidth, shared by the ranks of the devices it serves. A GPU-direct
    /// transfer of a device under another switch than its NIC's crosses the host (its
    /// switch's up-link and the NIC's switch's down-link, the other way when receiving).
    /// Must divide `devices`. Absent (the default): the node's NIC bandwidth is one pool
    /// every rank of the node shares (as multi-rail striping does) and every device reaches
    /// it without crossing a switch (the model before this key existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nics: Option<u32>,
    /// Which PCIe switch each NIC hangs off: `first-device` (the default), the switch of
    /// the first device it serves, so that device and its switch-mates reach it without
    /// crossing the host; `host`, the host's root complex (a CPU root port), so every
    /// device's GPU-direct data crosses its own switch to reach it. Staged transfers are
    /// the same under both (the NIC reads host memory; that read is not modelled on any
    /// switch). `host` needs `nics`.
    #[serde(default, skip_serializing_if = "NicSwitch::is_first_device")]
    pub nic_switch: NicSwitch,
}

/// Where a node's NICs sit on its PCIe tree ([`Accelerators::nic_switch`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NicSwitch {
    /// Under the PCIe switch of the first device each NIC serves.
    #[default]
    FirstDevice,
    /// On the host's root complex, under no device's switch.
    Host,
}

impl NicSwitch {
    /// The value as written in a machine file.
    pub fn name(self) -> &'static str {
        match self {
            NicSwitch::FirstDevice => "first-device",
            NicSwitch::Host => "host",
        }
    }

    /// Whether it is the default, `first-device` (left out when a machine is written).
    pub fn is_first_device(&self) -> bool {
        *self == NicSwitch::FirstDevice
    }
}

/// A device's host link: PCIe lanes behind a switch shared by `devices_per_switch`
/// consecutive devices of a node (each direction a separate resource).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostLink {
    /// Latency of one copy (launch to last byte, beyond the bytes' time), ns.
    pub latency_ns: f64,
    /// Bandwidth per direction of the switch's up-link, Gbit/s.
    pub gbps: f64,
    /// Consecutive devices of a node that share one switch (and its bandwidth).
    pub devices_per_switch: u32,
}

/// The device-device link inside a node: every device has its own port of `gbps` per
/// direction into a full crossbar (NVSwitch) or point-to-point mesh (xGMI, Xe Link).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerLink {
    /// Latency of one peer copy, ns.
    pub latency_ns: f64,
    /// Bandwidth per direction of one device's port, Gbit/s.
    pub gbps: f64,
}

/// The cost of one memory registration (as `ibv_reg_mr` / `fi_mr_reg` pin and map
/// pages): `base_us + per_mib_us * MiB`. Withdrawing a registration is taken as free.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Fixed cost per registration, µs.
    pub base_us: f64,
    /// Cost per MiB registered (page pinning), µs.
    pub per_mib_us: f64,
}

impl Default for Registration {
    /// 2 µs plus 60 µs per MiB: the order InfiniBand verbs registration costs on x86
    /// nodes (pinning about 0.25 µs per 4 KiB page).
    fn default() -> Self {
        Registration { base_us: 2.0, per_mib_us: 60.0 }
    }
}

impl Registration {
    /// Nanoseconds to register `bytes`.
    ///
    /// ```
    /// let r = dagwire_sim::machine::Registration { base_us: 2.0, per_mib_us: 60.0 };
    /// assert_eq!(r.ns(1 << 20), 62_000);
    /// ```
    pub fn ns(&self, bytes: u64) -> u64 {
        ((self.base_us + self.per_mib_us * bytes as f64 / (1u64 << 20) as f64) * 1e3).round() as u64
    }
}

/// Simulation fidelity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fidelity {
    /// LogGP per message, NIC queues only.
    Analytic,
    /// Flow-level max-min link sharing on the topology.
    Flow,
}

/// LogGP-family message costs, piecewise in message size (MPI libraries switch
/// protocols at their eager limit, so small and large messages follow different lines).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogGp {
    /// Segments sorted by `from_bytes`, the first starting at 0; a message uses the
    /// last segment whose `from_bytes` is at most its size.
    pub segments: Vec<LogGpSegment>,
}

/// One size range of [`LogGp`]. Times in nanoseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogGpSegment {
    /// Smallest message size (bytes) this segment applies to.
    pub from_bytes: u64,
    /// Sender CPU overhead per message (`o_s`).
    pub o_s_ns: f64,
    /// Receiver CPU overhead per message (`o_r`).
    pub o_r_ns: f64,
    /// Minimum gap between consecutive message injections of one NIC (`g`).
    pub g_ns: f64,
    /// Latency from injection of the last byte to arrival (`L`), end to end.
    pub l_ns: f64,
    /// Gap per byte (`G`): the inverse of the path bandwidth, ns/byte.
    pub g_per_byte_ns: f64,
    /// CPU overhead per byte (LogGOPS's `O`), ns/byte: the sending and the receiving
    /// rank's CPU each spend `o + (k-1)·O` on a `k`-byte message (copying it into and out
    /// of the transport), in series with the wire, and that CPU time holds the rank's
    /// kernels (a kernel starting while the rank's CPU is busy with a message waits for
    /// it). Optional: absent, the model is plain LogGP (`o_s` / `o_r` run beside the
    /// kernels, the bytes cost the wire only); given (even 0) on any segment of a
    /// machine, the rank's sends and receives share one CPU with its kernels. See the
    /// `network` module docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o_per_byte_ns: Option<f64>,
}

/// The interconnect topology. Link bandwidths in Gbit/s, per-hop latency in ns (added
/// to `L` for every switch traversed beyond the first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Topology {
    /// Every node reaches every other through one non-blocking switch.
    Crossbar {
        /// Node-to-switch link bandwidth.
        link_gbps: f64,
    },
    /// A three-level k-ary fat-tree (k pods of k/2 edge and k/2 aggregation switches,
    /// (k/2)^2 core switches, k^3/4 nodes), with optional oversubscription of the
    /// edge-to-aggregation and aggregation-to-core links.
    FatTree {
        /// Switch radix (even).
        k: u32,
        /// Down-to-up bandwidth ratio at the edge and aggregation levels (1 = full bisection, 2 = 2:1).
        oversubscription: f64,
        /// Link bandwidth before oversubscription.
        link_gbps: f64,
        /// Latency per switch hop.
        hop_ns: f64,
    },
    /// Dragonfly: groups of routers, all-to-all local links in a group, global links
    /// between groups, minimal routing (local, global, local).
    Dragonfly {
        /// Number of groups.
        groups: u32,
        /// Routers per group.
        routers_per_group: u32,
        /// Nodes per router.
        nodes_per_router: u32,
        /// Global links per router.
        global_links_per_router: u32,
        /// Local (intra-group) link bandwidth.
        local_gbps: f64,
        /// Global link bandwidth.
        global_gbps: f64,
        /// Latency per router hop.
        hop_ns: f64,
    },
    /// A 2D or 3D torus with one node per router and dimension-order routing.
    Torus {
        /// Size of each dimension (2 or 3 entries).
        dims: Vec<u32>,
        /// Link bandwidth (each direction).
        link_gbps: f64,
        /// Latency per router hop.
        hop_ns: f64,
    },
}

impl Machine {
    /// A one-segment machine on a crossbar for closed-form tests and examples: every path
    /// (within and between nodes) is `segment`, the NIC and links run at `link_gbps`,
    /// kernels are modelled at 1 GFLOP/s on one core with no task overhead, no jitter, no
    /// accelerators. Change fields with struct update syntax.
    ///
    /// ```
    /// use dagwire_sim::machine::{Fidelity, LogGpSegment, Machine};
    /// let seg = LogGpSegment { from_bytes: 0, o_s_ns: 0.0, o_r_ns: 0.0, g_ns: 0.0, l_ns: 1000.0, g_per_byte_ns: 0.1, o_per_byte_ns: None };
    /// let m = Machine { fidelity: Fidelity::Flow, ..Machine::crossbar("toy", seg, 4, 100.0) };
    /// dagwire_sim::machine::validate_machine("toy", &m).unwrap();
    /// assert_eq!((m.ranks_per_node, m.nic_gbps), (4, 100.0));
    /// ```
    pub fn crossbar(name: &str, segment: LogGpSegment, ranks_per_node: u32, link_gbps: f64) -> Machine {
        Machine {
            name: name.into(),
            description: format!("{name}: a one-segment crossbar"),
            fidelity: Fidelity::Analytic,
            ranks_per_node,
            nic_gbps: link_gbps,
            inter_node: LogGp { segments: vec![segment.clone()] },
            intra_node: LogGp { segments: vec![segment] },
            topology: Topology::Crossbar { link_gbps },
            compute: Compute {
                mode: ComputeMode::Model,
                cores_per_rank: 1,
                kernel_gflops: BTreeMap::new(),
                default_gflops: 1.0,
                kernel_curves: BTreeMap::new(),
                kernel_ns_per_byte: BTreeMap::new(),
                task_overhead_ns: 0.0,
                control_message_ns: 0.0,
                collective_call_ns: 0.0,
                collective_message_ns: 0.0,
                collective_ns_per_byte: 0.0,
                progress: ProgressModel::Thread,
            },
            latency_jitter: 0.0,
            registration: Default::default(),
            accelerators: None,
        }
    }
}

/// How long kernels take in the simulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compute {
    /// `model`: duration = flops / rate; `measure`: run each kernel shape once for real
    /// and reuse its time.
    pub mode: ComputeMode,
    /// Cores per rank (a rank's workers run in parallel up to this count).
    pub cores_per_rank: u32,
    /// Sustained rate per core, GFLOP/s, by kernel name (`gemm`, `potrf`...).
    #[serde(default)]
    pub kernel_gflops: BTreeMap<String, f64>,
    /// Rate for kernels not listed.
    pub default_gflops: f64,
    /// Rates that depend on the task's size, by kernel name: `[flops, GFLOP/s]` points
    /// in increasing flops (a kernel's rate on small tiles is far below its rate on
    /// large ones). A task's rate is interpolated linearly in log(flops) between the
    /// points and clamped to the end points outside them. A kernel listed here ignores
    /// its `kernel_gflops` entry.
    #[serde(default, deserialize_with = "curves")]
    pub kernel_curves: BTreeMap<String, Vec<[f64; 2]>>,
    /// Cost per byte a task writes (the sum of its outputs' sizes), ns, by kernel name,
    /// added to its flop time: for kernels that generate or move data rather than
    /// compute (Cholesky's `gen` tiles have no flops, yet fill n^2/2 numbers).
    #[serde(default)]
    pub kernel_ns_per_byte: BTreeMap<String, f64>,
    /// Fixed cost of every task (scheduling, launch), ns.
    #[serde(default)]
    pub task_overhead_ns: f64,
    /// CPU cost of handling one control message (a strategy's message without payload:
    /// ready-to-send, clear-to-send, requests, acknowledgements), ns, beyond the `o_r` of
    /// its segment: charged on the receiving rank's receive CPU after `o_r`, so it
    /// delays the message's handling and every receive queued behind it. Optional, 0 by
    /// default. Collective pieces and one-sided operations' legs are not charged (see
    /// [`fit::fit_control`] for why the receiver, and how it is measured).
    #[serde(default)]
    pub control_message_ns: f64,
    /// CPU cost of one collective call (joining a collective: an `MPI_Ialltoallv` and its
    /// set-up on the real drivers), ns: the rank's CPU is busy for it at the join, so the
    /// collective's first pieces leave after it and a kernel starting meanwhile waits.
    /// Optional, 0 by default (see [`fit::fit_collective`] for how it is measured).
    #[serde(default)]
    pub collective_call_ns: f64,
    /// CPU cost of each message a collective piece carries (on the real drivers:
    /// packing it into the collective's send buffer, and unpacking it at the receiver),
    /// ns: charged on the sender's CPU before the piece leaves (after its `o_s`) and on
    /// the receiver's after it arrives (after its `o_r`), per message in the piece.
    /// Optional, 0 by default (see [`fit::fit_collective`] for how it is measured).
    #[serde(default)]
    pub collective_message_ns: f64,
    /// CPU cost of each payload byte a collective piece carries (the copies into and
    /// out of the collective's buffers), ns per byte, charged where
    /// `collective_message_ns` is. Optional, 0 by default.
    #[serde(default)]
    pub collective_ns_per_byte: f64,
    /// Who progresses communication while kernels run (`thread`, the default: it goes on
    /// beside them; `inline`: the rank's one thread runs kernels and communication in
    /// turn, as the real drivers do when the cores are fewer than their threads).
    #[serde(default)]
    pub progress: ProgressModel,
}

/// Whether communication progresses while a rank runs a kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressModel {
    /// A progress thread handles messages at once, beside the kernels.
    #[default]
    Thread,
    /// The rank's thread runs a kernel, then handles what arrived meanwhile: a message
    /// (or collective piece) that reaches a rank busy in a kernel is handled when the
    /// kernel ends, before the rank starts another. One-sided operations land without
    /// the target's CPU; ranks on devices are not held (their kernels run on streams).
    Inline,
}

/// Reads `kernel_curves`, refusing a point that is not exactly `[flops, GFLOP/s]` (serde
/// alone would read the first two numbers of a longer list and drop the rest).
fn curves<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<[f64; 2]>>, D::Error> {
    let raw = BTreeMap::<String, Vec<Vec<f64>>>::deserialize(d)?;
    raw.into_iter()
        .map(|(name, points)| {
            let points = points
                .into_iter()
                .map(|p| {
                    <[f64; 2]>::try_from(p.as_slice()).map_err(|_| {
                        serde::de::Error::custom(format!(
                            "kernel `{name}`: a point is [flops, GFLOP/s], got {} number(s)",
                            p.len()
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((name, points))
        })
        .collect()
}

/// Where kernel durations come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeMode {
    /// From the cost hint and a rate.
    Model,
    /// From running the kernel once per shape.
    Measure,
}
