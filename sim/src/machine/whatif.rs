//! What-ifs: changing a machine's parameters by name (`latency=0.5x`,
//! `nic_bandwidth=400Gb/s`, `topology=dragonfly`), validated before anything runs, and
//! the one-at-a-time perturbation behind a sensitivity ranking.
//!
//! A change is `KEY=VALUE` where VALUE is a factor (`0.5x`, applied to every number
//! the key covers) or an absolute value with a unit the key accepts (`2us`, `400Gb/s`,
//! `20GFLOP/s`), or for `topology` and `fidelity` a name. [`KEYS`] lists the keys.

use super::{Fidelity, LogGp, Machine, Topology};
use dagwire_runtime::params::did_you_mean;
use std::fmt;

/// What a key's absolute values are measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// Times: ns, us (µs), ms, s.
    Time,
    /// Bandwidths: b/s, Kb/s, Mb/s, Gb/s, Tb/s (bits), B/s, KB/s, MB/s, GB/s, TB/s (bytes).
    Bandwidth,
    /// Compute rates: MFLOP/s, GFLOP/s, TFLOP/s.
    Rate,
    /// A name from a list.
    Name(&'static [&'static str]),
}

/// A what-if key: its name, what it changes, and its unit.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// The key (`latency`).
    pub name: &'static str,
    /// What it changes, for `--help` and errors.
    pub help: &'static str,
    unit: Unit,
}

/// Every what-if key. The numeric ones (all but `topology` and `fidelity`) are the
/// parameters a sensitivity analysis perturbs.
pub const KEYS: &[Key] = &[
    Key { name: "latency", help: "L of every message segment, both paths", unit: Unit::Time },
    Key {
        name: "overhead",
        help: "o_s and o_r of every segment, both paths (a factor also scales the per-byte CPU overhead O)",
        unit: Unit::Time,
    },
    Key { name: "gap", help: "g (minimum gap between injections) of every segment", unit: Unit::Time },
    Key {
        name: "bandwidth",
        help: "every bandwidth: 1/G of every segment, the NIC and the topology's links",
        unit: Unit::Bandwidth,
    },
    Key { name: "path_bandwidth", help: "1/G of every segment, both paths (not NIC or links)", unit: Unit::Bandwidth },
    Key { name: "nic_bandwidth", help: "the per-node NIC injection bandwidth", unit: Unit::Bandwidth },
    Key { name: "link_bandwidth", help: "every topology link's bandwidth", unit: Unit::Bandwidth },
    Key { name: "hop_latency", help: "latency per switch hop (fat-tree, dragonfly, torus)", unit: Unit::Time },
    Key {
        name: "compute",
        help: "every kernel rate (default and per kernel; a factor also divides the per-byte costs of data-writing kernels)",
        unit: Unit::Rate,
    },
    Key { name: "task_overhead", help: "the fixed cost of every task", unit: Unit::Time },
    Key {
        name: "control",
        help: "the CPU cost of handling each control message (compute.control_message_ns)",
        unit: Unit::Time,
    },
    Key {
        name: "collective_call",
        help: "the CPU cost of each collective call (compute.collective_call_ns)",
        unit: Unit::Time,
    },
    Key {
        name: "collective_piece",
        help: "the CPU cost of each message a collective piece carries (compute.collective_message_ns; a factor \
               also scales its per-byte cost, compute.collective_ns_per_byte)",
        unit: Unit::Time,
    },
    Key {
        name: "topology",
        help: "replace the topology, sized for the run, keeping link bandwidth and hop latency",
        unit: Unit::Name(&["crossbar", "fat-tree", "dragonfly", "torus"]),
    },
    Key { name: "fidelity", help: "the network model", unit: Unit::Name(&["analytic", "flow"]) },
];

/// The keys a sensitivity analysis perturbs: the numeric ones.
pub fn numeric_keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter().filter(|k| !matches!(k.unit, Unit::Name(_))).map(|k| k.name)
}

/// A refused `--set`: the key (as given) and what is wrong and allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetError {
    /// The key as given (empty when the text has no `=`).
    pub key: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl fmt::Display for SetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "--set: {}", self.reason)
        } else {
            write!(f, "--set {}: {}", self.key, self.reason)
        }
    }
}

impl std::error::Error for SetError {}

/// The value of a change.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Multiply every number the key covers.
    Factor(f64),
    /// Set them, in the key's base unit: ns for times, Gbit/s for bandwidths, GFLOP/s
    /// for rates.
    Absolute(f64),
    /// A name (`dragonfly`).
    Name(&'static str),
}

/// One parsed `KEY=VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The key.
    pub key: &'static str,
    /// The value.
    pub value: Value,
    /// The text as given, for tables.
    pub text: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Change {
    /// A factor change (for sensitivity perturbations).
    pub fn factor(key: &'static str, factor: f64) -> Change {
        Change { key, value: Value::Factor(factor), text: format!("{key}={factor}x") }
    }
}

/// Parses `KEY=VALUE`, refusing unknown keys, units the key does not take, and
/// negative, zero (for bandwidths and rates) or non-finite numbers, naming the key and
/// what it allows.
///
/// ```
/// use dagwire_sim::machine::whatif::{Value, parse_set};
/// assert_eq!(parse_set("latency=0.5x").unwrap().value, Value::Factor(0.5));
/// assert_eq!(parse_set("latency=2us").unwrap().value, Value::Absolute(2000.0));
/// assert_eq!(parse_set("nic_bandwidth=400Gb/s").unwrap().value, Value::Absolute(400.0));
/// assert_eq!(parse_set("nic_bandwidth=25GB/s").unwrap().value, Value::Absolute(200.0));
/// let e = parse_set("latncy=2x").unwrap_err();
/// assert!(e.to_string().contains("did you mean `latency`"), "{e}");
/// let e = parse_set("latency=3Gb/s").unwrap_err();
/// assert!(e.to_string().contains("ns, us, ms, s"), "{e}");
/// ```
pub fn parse_set(text: &str) -> Result<Change, SetError> {
    let Some((raw_key, raw_value)) = text.split_once('=') else {
        return Err(SetError {
            key: String::new(),
            reason: format!("`{text}` is not KEY=VALUE; keys: {}", key_names()),
        });
    };
    let (raw_key, raw_value) = (raw_key.trim(), raw_value.trim());
    let Some(key) = KEYS.iter().find(|k| k.name == raw_key) else {
        let hint = did_you_mean(raw_key, KEYS.iter().map(|k| k.name))
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        return Err(SetError { key: raw_key.into(), reason: format!("unknown key{hint}; keys: {}", key_names()) });
    };
    let refuse = |reason: String| SetError { key: key.name.into(), reason };
    let allowed = allowed(key.unit);
    if let Unit::Name(names) = key.unit {
        return match names.iter().find(|n| **n == raw_value) {
            Some(n) => Ok(Change { key: key.name, value: Value::Name(n), text: text.trim().into() }),
            None => Err(refuse(format!("unknown value `{raw_value}`; allowed: {allowed}"))),
        };
    }
    let split = raw_value
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(raw_value.len());
    // `2e` is not a number, `e` could start no unit here; keep the split simple.
    let (number, unit) = raw_value.split_at(split);
    let Ok(x) = number.parse::<f64>() else {
        return Err(refuse(format!("`{raw_value}` is not a number with a unit; allowed: {allowed}")));
    };
    if !x.is_finite() || x < 0.0 {
        return Err(refuse(format!("`{raw_value}` is negative or not finite; allowed: {allowed}")));
    }
    let unit = unit.trim();
    let value = if unit == "x" {
        Value::Factor(x)
    } else {
        let Some(scale) = unit_scale(key.unit, unit) else {
            return Err(refuse(format!("unit `{unit}` does not fit this key; allowed: {allowed}")));
        };
        Value::Absolute(x * scale)
    };
    let zero_ok = key.unit == Unit::Time;
    if !zero_ok && matches!(value, Value::Factor(v) | Value::Absolute(v) if v == 0.0) {
        return Err(refuse(format!("`{raw_value}` must be above zero (a bandwidth or rate); allowed: {allowed}")));
    }
    Ok(Change { key: key.name, value, text: text.trim().into() })
}

fn key_names() -> String {
    KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

fn allowed(unit: Unit) -> String {
    match unit {
        Unit::Time => "a factor (`0.5x`) or a time (`500ns`; units ns, us, ms, s)".into(),
        Unit::Bandwidth => {
            "a factor (`2x`) or a bandwidth (`400Gb/s`; units b/s, Kb/s, Mb/s, Gb/s, Tb/s, B/s, KB/s, MB/s, GB/s, TB/s)"
                .into()
        }
        Unit::Rate => "a factor (`2x`) or a rate per core (`20GFLOP/s`; units MFLOP/s, GFLOP/s, TFLOP/s)".into(),
        Unit::Name(names) => names.join(", "),
    }
}

/// The multiplier from `unit` to the key's base unit (ns, Gbit/s, GFLOP/s).
fn unit_scale(kind: Unit, unit: &str) -> Option<f64> {
    Some(match (kind, unit) {
        (Unit::Time, "ns") => 1.0,
        (Unit::Time, "us" | "µs") => 1e3,
        (Unit::Time, "ms") => 1e6,
        (Unit::Time, "s") => 1e9,
        (Unit::Bandwidth, "b/s") => 1e-9,
        (Unit::Bandwidth, "Kb/s") => 1e-6,
        (Unit::Bandwidth, "Mb/s") => 1e-3,
        (Unit::Bandwidth, "Gb/s") => 1.0,
        (Unit::Bandwidth, "Tb/s") => 1e3,
        (Unit::Bandwidth, "B/s") => 8e-9,
        (Unit::Bandwidth, "KB/s") => 8e-6,
        (Unit::Bandwidth, "MB/s") => 8e-3,
        (Unit::Bandwidth, "GB/s") => 8.0,
        (Unit::Bandwidth, "TB/s") => 8e3,
        (Unit::Rate, "MFLOP/s") => 1e-3,
        (Unit::Rate, "GFLOP/s") => 1.0,
        (Unit::Rate, "TFLOP/s") => 1e3,
        _ => return None,
    })
}

/// `machine` with `changes` applied in order; `nodes` is how many nodes the run needs
/// (a replaced topology is sized for it). The result is validated, so a change that
/// leaves the machine unusable is refused naming the key.
///
/// ```
/// use dagwire_sim::machine::load_machine;
/// use dagwire_sim::machine::whatif::{apply, parse_set};
/// let m = load_machine("eth-100g").unwrap();
/// let half = apply(&m, &[parse_set("latency=0.5x").unwrap()], 2).unwrap();
/// assert_eq!(half.inter_node.segments[0].l_ns, m.inter_node.segments[0].l_ns / 2.0);
/// let same = apply(&m, &[parse_set("latency=1x").unwrap(), parse_set("bandwidth=1.0x").unwrap()], 2).unwrap();
/// assert_eq!(same, m);
/// ```
pub fn apply(machine: &Machine, changes: &[Change], nodes: u64) -> Result<Machine, SetError> {
    let mut m = machine.clone();
    for c in changes {
        apply_one(&mut m, c, nodes);
        super::validate_machine("what-if", &m).map_err(|e| SetError {
            key: c.key.into(),
            reason: format!("`{}` leaves the machine invalid: {}: {}", c.text, e.key, e.reason),
        })?;
    }
    if !changes.is_empty() {
        let names: Vec<&str> = changes.iter().map(|c| c.text.as_str()).collect();
        m.description = format!("{} [what-if: {}]", m.description, names.join(", "));
        if changes.iter().all(|c| c.value == Value::Factor(1.0)) {
            m.description = machine.description.clone();
        }
    }
    Ok(m)
}

/// Scales (factor) or sets (absolute) one number.
fn change(x: &mut f64, v: &Value) {
    match v {
        Value::Factor(f) => *x *= f,
        Value::Absolute(a) => *x = *a,
        Value::Name(_) => {}
    }
}

/// For a bandwidth kept as its inverse (`G`, ns per byte): a factor divides, an
/// absolute Gbit/s sets `G = 8 / gbps`.
fn change_inverse(g: &mut f64, v: &Value) {
    match v {
        Value::Factor(f) => *g /= f,
        Value::Absolute(gbps) => *g = 8.0 / gbps,
        Value::Name(_) => {}
    }
}

fn segments(m: &mut Machine) -> impl Iterator<Item = &mut super::LogGpSegment> {
    let Machine { inter_node, intra_node, .. } = m;
    let both: [&mut LogGp; 2] = [inter_node, intra_node];
    both.into_iter().flat_map(|l| l.segments.iter_mut())
}

fn links(t: &mut Topology) -> Vec<&mut f64> {
    match t {
        Topology::Crossbar { link_gbps } => vec![link_gbps],
        Topology::FatTree { link_gbps, .. } | Topology::Torus { link_gbps, .. } => vec![link_gbps],
        Topology::Dragonfly { local_gbps, global_gbps, .. } => vec![local_gbps, global_gbps],
    }
}

fn hop(t: &mut Topology) -> Option<&mut f64> {
    match t {
        Topology::Crossbar { .. } => None,
        Topology::FatTree { hop_ns, .. } | Topology::Dragonfly { hop_ns, .. } | Topology::Torus { hop_ns, .. } => {
            Some(hop_ns)
        }
    }
}

fn apply_one(m: &mut Machine, c: &Change, nodes: u64) {
    let v = &c.value;
    match c.key {
        "latency" => segments(m).for_each(|s| change(&mut s.l_ns, v)),
        "overhead" => segments(m).for_each(|s| {
            change(&mut s.o_s_ns, v);
            change(&mut s.o_r_ns, v);
            // O is per byte: a factor scales it, an absolute time says nothing about it.
            if let (Value::Factor(f), Some(o)) = (v, s.o_per_byte_ns.as_mut()) {
                *o *= f;
            }
        }),
        "gap" => segments(m).for_each(|s| change(&mut s.g_ns, v)),
        "path_bandwidth" => segments(m).for_each(|s| change_inverse(&mut s.g_per_byte_ns, v)),
        "bandwidth" => {
            segments(m).for_each(|s| change_inverse(&mut s.g_per_byte_ns, v));
            change(&mut m.nic_gbps, v);
            links(&mut m.topology).into_iter().for_each(|l| change(l, v));
        }
        "nic_bandwidth" => change(&mut m.nic_gbps, v),
        "link_bandwidth" => links(&mut m.topology).into_iter().for_each(|l| change(l, v)),
        "hop_latency" => {
            if let Some(h) = hop(&mut m.topology) {
                change(h, v);
            }
        }
        "compute" => {
            change(&mut m.compute.default_gflops, v);
            m.compute.kernel_gflops.values_mut().for_each(|r| change(r, v));
            m.compute.kernel_curves.values_mut().flatten().for_each(|p| change(&mut p[1], v));
            // A factor speeds data-writing kernels alike; an absolute rate in GFLOP/s says
            // nothing about them.
            if let Value::Factor(f) = v {
                m.compute.kernel_ns_per_byte.values_mut().for_each(|c| *c /= f);
            }
        }
        "task_overhead" => change(&mut m.compute.task_overhead_ns, v),
        "control" => change(&mut m.compute.control_message_ns, v),
        "collective_call" => change(&mut m.compute.collective_call_ns, v),
        "collective_piece" => {
            change(&mut m.compute.collective_message_ns, v);
            // Per byte: a factor scales it, an absolute time says nothing about it.
            if let Value::Factor(f) = v {
                m.compute.collective_ns_per_byte *= f;
            }
        }
        "fidelity" => {
            m.fidelity = if *v == Value::Name("flow") { Fidelity::Flow } else { Fidelity::Analytic };
        }
        "topology" => {
            if let Value::Name(kind) = v {
                m.topology = sized_topology(kind, &mut m.topology, nodes);
            }
        }
        other => unreachable!("parse_set admits only KEYS, got {other}"),
    }
}

/// A `kind` topology holding at least `nodes` nodes, with the link bandwidth (the
/// fastest of the old links) and hop latency (100 ns if the old one had none) kept.
pub fn sized_topology(kind: &str, old: &mut Topology, nodes: u64) -> Topology {
    let link_gbps = links(old).into_iter().map(|l| *l).fold(0.0, f64::max);
    let hop_ns = hop(old).map_or(100.0, |h| *h);
    let nodes = nodes.max(2);
    match kind {
        "crossbar" => Topology::Crossbar { link_gbps },
        "fat-tree" => {
            let mut k = 2u32;
            while u64::from(k).pow(3) / 4 < nodes {
                k += 2;
            }
            Topology::FatTree { k, oversubscription: 1.0, link_gbps, hop_ns }
        }
        "dragonfly" => {
            // Balanced (Kim et al. 2008): a = 2p routers per group, h = p global links
            // per router, up to a*h + 1 groups; the smallest p that holds the nodes.
            let mut p = 1u32;
            loop {
                let (a, h) = (2 * p, p);
                let per_group = u64::from(a) * u64::from(p);
                let groups = nodes.div_ceil(per_group).max(2);
                if groups <= u64::from(a) * u64::from(h) + 1 {
                    break Topology::Dragonfly {
                        groups: groups as u32,
                        routers_per_group: a,
                        nodes_per_router: p,
                        global_links_per_router: h,
                        local_gbps: link_gbps,
                        global_gbps: link_gbps,
                        hop_ns,
                    };
                }
                p += 1;
            }
        }
        _ => {
            let mut d = 2u32;
            while u64::from(d).pow(3) < nodes {
                d += 1;
            }
            Topology::Torus { dims: vec![d, d, d], link_gbps, hop_ns }
        }
    }
}

/// How one parameter moves a makespan: the makespans with it at `1 - p` and `1 + p`
/// times its value (everything else as it was).
#[derive(Clone, Debug, PartialEq)]
pub struct Sensitivity {
    /// The what-if key perturbed.
    pub key: &'static str,
    /// Makespan with the parameter lowered, ns.
    pub low_ns: u64,
    /// Makespan with the parameter raised, ns.
    pub high_ns: u64,
    /// The baseline makespan, ns.
    pub base_ns: u64,
}

impl Sensitivity {
    /// The larger relative change either way (the bar's reach in a tornado figure).
    pub fn swing(&self) -> f64 {
        let base = self.base_ns.max(1) as f64;
        ((self.low_ns as f64 - base).abs()).max((self.high_ns as f64 - base).abs()) / base
    }
}

/// Perturbs every numeric key by `±fraction` one at a time and runs `makespan` on each
/// machine; returns them sorted by [`Sensitivity::swing`], largest first (ties in key
/// order). `makespan` gets the changed machine; its errors stop the analysis.
///
/// ```
/// use dagwire_sim::machine::load_machine;
/// use dagwire_sim::machine::whatif::sensitivity;
/// let m = load_machine("eth-100g").unwrap();
/// // A "run" that only feels latency.
/// let ranked = sensitivity(&m, 0.2, 2, |m| Ok::<u64, String>(m.inter_node.segments[0].l_ns as u64)).unwrap();
/// assert_eq!(ranked[0].key, "latency");
/// ```
pub fn sensitivity<E>(
    machine: &Machine,
    fraction: f64,
    nodes: u64,
    mut makespan: impl FnMut(&Machine) -> Result<u64, E>,
) -> Result<Vec<Sensitivity>, E>
where
    E: From<String>,
{
    let base_ns = makespan(machine)?;
    let mut out = Vec::new();
    for key in numeric_keys() {
        let run = |f: f64, makespan: &mut dyn FnMut(&Machine) -> Result<u64, E>| {
            let m = apply(machine, &[Change::factor(key, f)], nodes).map_err(|e| E::from(e.to_string()))?;
            makespan(&m)
        };
        let low_ns = run(1.0 - fraction, &mut makespan)?;
        let high_ns = run(1.0 + fraction, &mut makespan)?;
        out.push(Sensitivity { key, low_ns, high_ns, base_ns });
    }
    out.sort_by(|a, b| b.swing().total_cmp(&a.swing()));
    Ok(out)
}
