//! SimGrid platform files as machines.

use dagwire_runtime::{ParamValue, Rank, Strategy};
use dagwire_sim::driver::{SimConfig, SimKernels, run};
use dagwire_sim::machine::{Machine, load_machine, parse_machine};
use dagwire_strategies::eager::Eager;

fn eager(_: Rank) -> Box<dyn Strategy> {
    Box::new(Eager)
}

const XML: &str = r#"<?xml version='1.0'?>
<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">
<platform version="4.1">
  <zone id="world" routing="Full">
    <cluster id="torus-cluster" prefix="node-" suffix=".simgrid.org" radical="0-7"
             speed="20Gf" core="1" bw="12.5GBps" lat="500ns"
             topology="TORUS" topo_parameters="2,2,2"/>
  </zone>
</platform>
"#;

/// The same machine written by hand, following the documented mapping.
const TOML: &str = r#"
name = "torus-cluster"
description = "hand-written equivalent of the SimGrid torus cluster"
fidelity = "flow"
ranks_per_node = 1
nic_gbps = 100.0

[[inter_node.segments]]
from_bytes = 0
o_s_ns = 0.0
o_r_ns = 0.0
g_ns = 0.0
l_ns = 1000.0
g_per_byte_ns = 0.08

[[intra_node.segments]]
from_bytes = 0
o_s_ns = 0.0
o_r_ns = 0.0
g_ns = 0.0
l_ns = 1000.0
g_per_byte_ns = 0.08

[topology]
kind = "torus"
dims = [2, 2, 2]
link_gbps = 100.0
hop_ns = 500.0

[compute]
mode = "model"
cores_per_rank = 1
default_gflops = 20.0
"#;

fn simulate(m: &Machine, ranks: usize) -> u64 {
    let given = [("n", ParamValue::Int(1024)), ("tile", ParamValue::Int(128))];
    let w = dagwire_workloads::find("cholesky").unwrap().build(&given, ranks, 1).unwrap();
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
    run(w.dag(), &kernels, &eager, m, cfg).unwrap().run.makespan_ns
}

#[test]
fn a_cluster_xml_and_the_equivalent_toml_simulate_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.xml");
    std::fs::write(&path, XML).unwrap();
    let from_xml = load_machine(path.to_str().unwrap()).unwrap();
    let from_toml = parse_machine("torus.toml", TOML).unwrap();
    assert_eq!(from_xml.topology, from_toml.topology);
    assert_eq!(from_xml.inter_node, from_toml.inter_node);
    let (a, b) = (simulate(&from_xml, 8), simulate(&from_toml, 8));
    assert!(a > 0);
    assert_eq!(a, b, "XML {a} ns vs TOML {b} ns");
}

#[test]
fn flat_fat_tree_and_dragonfly_clusters_map() {
    let flat = XML.replace("topology=\"TORUS\" topo_parameters=\"2,2,2\"", "bb_bw=\"1TBps\" bb_lat=\"200ns\"");
    let m = dagwire_sim::machine::simgrid::parse_simgrid("flat.xml", &flat).unwrap();
    assert_eq!(m.inter_node.segments[0].l_ns, 1200.0);
    assert!(matches!(m.topology, dagwire_sim::machine::Topology::Crossbar { .. }));
    let ft = XML
        .replace("radical=\"0-7\"", "radical=\"0-15\"")
        .replace("TORUS", "FAT_TREE")
        .replace("\"2,2,2\"", "\"3;2,2,4;1,2,2;1,1,1\"");
    let m = dagwire_sim::machine::simgrid::parse_simgrid("ft.xml", &ft).unwrap();
    assert!(matches!(m.topology, dagwire_sim::machine::Topology::FatTree { k: 4, .. }), "{:?}", m.topology);
    let df = XML.replace("TORUS", "DRAGONFLY").replace("\"2,2,2\"", "\"3,1;1,1;4,1;2\"");
    let m = dagwire_sim::machine::simgrid::parse_simgrid("df.xml", &df).unwrap();
    assert!(
        matches!(
            m.topology,
            dagwire_sim::machine::Topology::Dragonfly { groups: 3, routers_per_group: 4, nodes_per_router: 2, .. }
        ),
        "{:?}",
        m.topology
    );
}

#[test]
fn what_cannot_be_mapped_is_refused_by_name() {
    let parse = |x: &str| dagwire_sim::machine::simgrid::parse_simgrid("p.xml", x).unwrap_err();
    let e = parse(&XML.replace(
        "<zone id=\"world\" routing=\"Full\">",
        "<zone id=\"world\" routing=\"Full\"><host id=\"h\" speed=\"1Gf\"/>",
    ));
    assert_eq!(e.key, "host");
    assert_eq!(e.line, Some(4), "the <host> sits on the <zone> line");
    let e = parse(&XML.replace("core=\"1\"", "core=\"1\" loopback_bw=\"1GBps\""));
    assert_eq!(e.key, "cluster.loopback_bw");
    assert!(e.reason.contains("cannot be mapped"), "{e}");
    let e = parse(&XML.replace("TORUS", "DRAGONFLY").replace("\"2,2,2\"", "\"3,1;2,1;4,1;2\""));
    assert_eq!(e.key, "cluster.topo_parameters");
    assert!(e.reason.contains("chassis"), "{e}");
    let e = parse(&XML.replace("TORUS", "FAT_TREE").replace("\"2,2,2\"", "\"2;4,4;1,2;1,2\""));
    assert!(e.reason.contains("three-level"), "{e}");
    let e = parse(&XML.replace("TORUS", "HYPERCUBE"));
    assert_eq!(e.key, "cluster.topology");
    let e = parse(&XML.replace("12.5GBps", "12.5parsec"));
    assert_eq!(e.key, "cluster.bw");
    assert!(e.reason.contains("Gbps"), "{e}");
    let flat = XML.replace("topology=\"TORUS\" topo_parameters=\"2,2,2\"", "bb_bw=\"10GBps\"");
    let e = parse(&flat);
    assert_eq!(e.key, "cluster.bb_bw");
}
