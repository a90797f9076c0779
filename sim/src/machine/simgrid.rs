//! Reading a SimGrid platform file (`sim.machine = "platform.xml"`): one `<cluster>`
//! mapped onto a [`Machine`], so users bring the platforms they already have. What has
//! no counterpart in dagwire's model is refused by name (an element, an attribute, a
//! topology shape), never silently dropped.
//!
//! # Mapping
//!
//! One rank per host (SMPI's default): `ranks_per_node = 1`, `cores_per_rank = core`,
//! `compute.default_gflops = speed`. `bw` is every host link and topology link, and the
//! NIC; `lat` is every link's latency. A message crosses its two host links, so
//! `L = 2·lat` (plus `bb_lat` through a flat cluster's backbone) and `hop_ns = lat` per
//! further switch or router; `G = 1/bw`; the CPU overheads and gap are 0 (a platform
//! file has none). Topologies: `FLAT` is a crossbar (its backbone `bb_bw` must not be a
//! bottleneck: at least `bw` times the hosts, as a crossbar shares nothing);
//! `FAT_TREE` must be a three-level k-ary tree (`3;k/2,k/2,k;1,k/2,k/2;1,1,1`);
//! `DRAGONFLY` (`groups,links;chassis,links;routers,links;nodes`) must have one chassis
//! per group; `TORUS` takes 2 or 3 dimensions. SimGrid's own network-model corrections
//! (the LV08 latency and bandwidth factors, TCP's window limit) are not platform data
//! and are not applied.

use super::{Compute, ComputeMode, Fidelity, LogGp, LogGpSegment, Machine, MachineError, Topology};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use std::collections::BTreeMap;

/// Attributes of `<cluster>` that are mapped.
const CLUSTER_ATTRIBUTES: &[&str] = &[
    "id",
    "prefix",
    "suffix",
    "radical",
    "speed",
    "core",
    "bw",
    "lat",
    "bb_bw",
    "bb_lat",
    "topology",
    "topo_parameters",
    "sharing_policy",
    "bb_sharing_policy",
];

/// Elements that may surround the cluster.
const WRAPPERS: &[&str] = &["platform", "zone", "AS"];

/// Parses SimGrid platform `text`; `origin` names it in errors (which carry the line).
///
/// ```
/// use dagwire_sim::machine::simgrid::parse_simgrid;
/// let xml = r#"<?xml version="1.0"?>
/// <platform version="4.1">
///   <cluster id="c" prefix="n-" suffix="" radical="0-15" speed="10Gf" bw="10Gbps" lat="1us"/>
/// </platform>"#;
/// let m = parse_simgrid("p.xml", xml).unwrap();
/// assert_eq!(m.inter_node.segments[0].l_ns, 2000.0);
/// assert_eq!(m.compute.default_gflops, 10.0);
/// let err = parse_simgrid("p.xml", &xml.replace("lat=", "limiter_link=\"1Gbps\" lat=")).unwrap_err();
/// assert_eq!(err.key, "cluster.limiter_link");
/// ```
pub fn parse_simgrid(origin: &str, text: &str) -> Result<Machine, MachineError> {
    let err = |pos: u64, key: &str, reason: String| MachineError {
        file: origin.to_string(),
        line: Some(text[..(pos as usize).min(text.len())].matches('\n').count() + 1),
        key: key.to_string(),
        reason,
    };
    let mut reader = Reader::from_str(text);
    let mut cluster: Option<(u64, BTreeMap<String, String>)> = None;
    loop {
        let pos = reader.buffer_position();
        let event = reader.read_event().map_err(|e| err(pos, "", format!("not valid XML: {e}")))?;
        match event {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let name = element_name(&e);
                if WRAPPERS.contains(&name.as_str()) {
                    continue;
                }
                if name != "cluster" {
                    return Err(err(
                        pos,
                        &name,
                        format!(
                            "element <{name}> cannot be mapped onto a dagwire machine; a platform file here holds one \
                             <cluster> (inside <platform> and optionally one <zone>)"
                        ),
                    ));
                }
                if cluster.is_some() {
                    return Err(err(pos, "cluster", "a second <cluster>: dagwire machines have one cluster".into()));
                }
                let mut attrs = BTreeMap::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| err(pos, "cluster", format!("bad attribute: {e}")))?;
                    let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                    let value = a.unescape_value().map_err(|e| err(pos, &key, format!("bad value: {e}")))?;
                    if !CLUSTER_ATTRIBUTES.contains(&key.as_str()) {
                        return Err(err(
                            pos,
                            &format!("cluster.{key}"),
                            format!("attribute cannot be mapped; mapped: {}", CLUSTER_ATTRIBUTES.join(", ")),
                        ));
                    }
                    attrs.insert(key, value.into_owned());
                }
                cluster = Some((pos, attrs));
            }
            _ => {}
        }
    }
    let Some((pos, attrs)) = cluster else {
        return Err(MachineError {
            file: origin.into(),
            line: None,
            key: String::new(),
            reason: "no <cluster> element: dagwire maps one SimGrid cluster onto a machine".into(),
        });
    };
    let machine = map_cluster(&attrs).map_err(|(key, reason)| err(pos, &format!("cluster.{key}"), reason))?;
    super::validate_machine(origin, &machine)?;
    Ok(machine)
}

fn element_name(e: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

type Refusal = (String, String);

fn map_cluster(a: &BTreeMap<String, String>) -> Result<Machine, Refusal> {
    let get = |k: &str| a.get(k).map(String::as_str);
    let need = |k: &str| get(k).ok_or_else(|| (k.to_string(), "missing; this attribute is required".to_string()));
    for policy in ["sharing_policy", "bb_sharing_policy"] {
        if let Some(p) = get(policy).filter(|p| !matches!(*p, "SPLITDUPLEX" | "SHARED" | "FULLDUPLEX")) {
            return Err((policy.into(), format!("`{p}` cannot be mapped; allowed: SPLITDUPLEX, SHARED")));
        }
    }
    let hosts = radical_count(need("radical")?).map_err(|r| ("radical".to_string(), r))?;
    let gflops = quantity(need("speed")?, FLOPS).map_err(|r| ("speed".to_string(), r))? / 1e9;
    let cores: u32 = match get("core") {
        None => 1,
        Some(c) => c.parse().map_err(|_| ("core".to_string(), format!("`{c}` is not a whole number")))?,
    };
    let bytes_per_s = quantity(need("bw")?, BANDWIDTH).map_err(|r| ("bw".to_string(), r))?;
    let lat_ns = quantity(need("lat")?, TIME).map_err(|r| ("lat".to_string(), r))?;
    let gbps = bytes_per_s * 8.0 / 1e9;
    let kind = get("topology").unwrap_or("FLAT");
    let params = get("topo_parameters").unwrap_or("");
    let numbers = |s: &str| -> Result<Vec<u32>, Refusal> {
        s.split(',')
            .map(|x| x.trim().parse::<u32>())
            .collect::<Result<Vec<u32>, _>>()
            .map_err(|_| ("topo_parameters".to_string(), format!("`{s}` is not a list of whole numbers")))
    };
    let mut l_ns = 2.0 * lat_ns;
    let topology = match kind {
        "FLAT" => {
            if let Some(bb) = get("bb_bw") {
                let bb = quantity(bb, BANDWIDTH).map_err(|r| ("bb_bw".to_string(), r))?;
                if bb < bytes_per_s * hosts as f64 {
                    return Err((
                        "bb_bw".into(),
                        format!(
                            "a backbone below the hosts' total injection ({hosts} x bw) is a shared bottleneck a \
                             crossbar cannot model; give bb_bw >= {} Bps or leave it out",
                            bytes_per_s * hosts as f64
                        ),
                    ));
                }
            }
            if let Some(bb_lat) = get("bb_lat") {
                l_ns += quantity(bb_lat, TIME).map_err(|r| ("bb_lat".to_string(), r))?;
            }
            Topology::Crossbar { link_gbps: gbps }
        }
        "FAT_TREE" => {
            let parts: Vec<&str> = params.split(';').collect();
            let shape = (parts.len() == 4)
                .then(|| (numbers(parts[0]), numbers(parts[1]), numbers(parts[2]), numbers(parts[3])));
            let Some((Ok(h), Ok(down), Ok(up), Ok(parallel))) = shape else {
                return Err((
                    "topo_parameters".into(),
                    format!("`{params}` is not `levels;down,...;up,...;parallel,...`"),
                ));
            };
            let k = down.get(2).copied().unwrap_or(0);
            if h != [3] || down != [k / 2, k / 2, k] || up != [1, k / 2, k / 2] || parallel != [1, 1, 1] || k % 2 != 0 {
                return Err((
                    "topo_parameters".into(),
                    format!(
                        "`{params}` cannot be mapped: dagwire's fat-tree is the three-level k-ary tree `3;k/2,k/2,k;1,k/2,k/2;1,1,1` (k even)"
                    ),
                ));
            }
            no_backbone(get)?;
            Topology::FatTree { k, oversubscription: 1.0, link_gbps: gbps, hop_ns: lat_ns }
        }
        "DRAGONFLY" => {
            let parts: Vec<&str> = params.split(';').collect();
            let levels: Result<Vec<Vec<u32>>, Refusal> = parts.iter().map(|p| numbers(p)).collect();
            let levels = levels?;
            let ok = levels.len() == 4 && levels[..3].iter().all(|l| l.len() == 2) && levels[3].len() == 1;
            if !ok {
                return Err((
                    "topo_parameters".into(),
                    format!("`{params}` is not `groups,links;chassis,links;routers,links;nodes`"),
                ));
            }
            if levels[1][0] != 1 {
                return Err((
                    "topo_parameters".into(),
                    format!(
                        "{} chassis per group cannot be mapped: dagwire's dragonfly has one level of routers per group (chassis = 1)",
                        levels[1][0]
                    ),
                ));
            }
            let (groups, routers, nodes) = (levels[0][0], levels[2][0], levels[3][0]);
            no_backbone(get)?;
            Topology::Dragonfly {
                groups,
                routers_per_group: routers,
                nodes_per_router: nodes,
                global_links_per_router: groups.saturating_sub(1).div_ceil(routers.max(1)).max(1),
                local_gbps: gbps * f64::from(levels[2][1].max(1)),
                global_gbps: gbps * f64::from(levels[0][1].max(1)),
                hop_ns: lat_ns,
            }
        }
        "TORUS" => {
            no_backbone(get)?;
            Topology::Torus { dims: numbers(params)?, link_gbps: gbps, hop_ns: lat_ns }
        }
        other => {
            return Err((
                "topology".into(),
                format!("`{other}` cannot be mapped; allowed: FLAT, FAT_TREE, DRAGONFLY, TORUS"),
            ));
        }
    };
    let segment = LogGpSegment {
        from_bytes: 0,
        o_s_ns: 0.0,
        o_r_ns: 0.0,
        g_ns: 0.0,
        l_ns,
        g_per_byte_ns: 1e9 / bytes_per_s,
        o_per_byte_ns: None,
    };
    let id = get("id").unwrap_or("simgrid-cluster");
    Ok(Machine {
        name: id.to_string(),
        description: format!("SimGrid cluster `{id}`: {hosts} hosts, {kind}, bw {gbps} Gbit/s, lat {lat_ns} ns"),
        fidelity: if kind == "FLAT" { Fidelity::Analytic } else { Fidelity::Flow },
        ranks_per_node: 1,
        nic_gbps: gbps,
        inter_node: LogGp { segments: vec![segment.clone()] },
        intra_node: LogGp { segments: vec![segment] },
        topology,
        compute: Compute {
            mode: ComputeMode::Model,
            cores_per_rank: cores.max(1),
            kernel_gflops: BTreeMap::new(),
            default_gflops: gflops,
            kernel_curves: Default::default(),
            kernel_ns_per_byte: Default::default(),
            task_overhead_ns: 0.0,
            control_message_ns: 0.0,
            collective_call_ns: 0.0,
            collective_message_ns: 0.0,
            collective_ns_per_byte: 0.0,
            progress: Default::default(),
        },
        latency_jitter: 0.0,
        registration: Default::default(),
        accelerators: None,
    })
}

/// A backbone belongs to flat clusters only.
fn no_backbone<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<(), Refusal> {
    for k in ["bb_bw", "bb_lat"] {
        if get(k).is_some() {
            return Err((k.into(), "a backbone cannot be mapped on a FAT_TREE, DRAGONFLY or TORUS cluster".into()));
        }
    }
    Ok(())
}

/// How many hosts a radical (`0-15`, `0-3,8,10-11`) names.
fn radical_count(r: &str) -> Result<u64, String> {
    let mut n = 0u64;
    for part in r.split(',') {
        let part = part.trim();
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u64>(), hi.trim().parse::<u64>()) else {
            return Err(format!("`{r}` is not a list of numbers and ranges (`0-15`, `0-3,8`)"));
        };
        if hi < lo {
            return Err(format!("range `{part}` ends before it starts"));
        }
        n += hi - lo + 1;
    }
    Ok(n)
}

const FLOPS: &[(&str, f64)] =
    &[("f", 1.0), ("kf", 1e3), ("Mf", 1e6), ("Gf", 1e9), ("Tf", 1e12), ("Pf", 1e15), ("flops", 1.0)];
const BANDWIDTH: &[(&str, f64)] = &[
    ("Bps", 1.0),
    ("kBps", 1e3),
    ("KBps", 1e3),
    ("MBps", 1e6),
    ("GBps", 1e9),
    ("TBps", 1e12),
    ("KiBps", 1024.0),
    ("MiBps", 1048576.0),
    ("GiBps", 1073741824.0),
    ("bps", 0.125),
    ("kbps", 125.0),
    ("Kbps", 125.0),
    ("Mbps", 1.25e5),
    ("Gbps", 1.25e8),
    ("Tbps", 1.25e11),
];
/// Times in ns (so `500ns` stays exactly 500).
const TIME: &[(&str, f64)] = &[("s", 1e9), ("ms", 1e6), ("us", 1e3), ("ns", 1.0), ("ps", 1e-3)];

/// A SimGrid quantity (`10Gbps`, `50us`, `1Gf`) in the table's base unit (flop/s,
/// bytes/s, ns); a bare number is taken in SimGrid's base unit (flop/s, bytes/s, s).
fn quantity(text: &str, units: &[(&str, f64)]) -> Result<f64, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let x: f64 =
        number.trim().parse().map_err(|_| format!("`{text}` is not a number with a unit ({})", unit_list(units)))?;
    let scale = if unit.is_empty() {
        units[0].1
    } else {
        units
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, s)| *s)
            .ok_or_else(|| format!("unit `{unit}` is not known here; allowed: {}", unit_list(units)))?
    };
    if !(x.is_finite() && x > 0.0 || x == 0.0 && units == TIME) {
        return Err(format!("`{text}` must be positive"));
    }
    Ok(x * scale)
}

fn unit_list(units: &[(&str, f64)]) -> String {
    units.iter().map(|(u, _)| *u).collect::<Vec<_>>().join(", ")
}
