//! Tests of machine parsing, validation, presets and descriptions.

use super::*;

/// A small valid machine; tests edit it one key at a time.
const BASE: &str = r#"name = "test"
description = "a test machine"
fidelity = "flow"
ranks_per_node = 4
nic_gbps = 100.0

[inter_node]
[[inter_node.segments]]
from_bytes = 0
o_s_ns = 100.0
o_r_ns = 100.0
g_ns = 10.0
l_ns = 1000.0
g_per_byte_ns = 0.1

[[inter_node.segments]]
from_bytes = 8192
o_s_ns = 200.0
o_r_ns = 200.0
g_ns = 10.0
l_ns = 2000.0
g_per_byte_ns = 0.05

[intra_node]
segments = [{ from_bytes = 0, o_s_ns = 50.0, o_r_ns = 50.0, g_ns = 5.0, l_ns = 100.0, g_per_byte_ns = 0.1 }]

[topology]
kind = "fat-tree"
k = 4
oversubscription = 1.0
link_gbps = 100.0
hop_ns = 100.0

[compute]
mode = "model"
cores_per_rank = 2
default_gflops = 10.0
kernel_gflops = { gemm = 30.0, potrf = 5.0 }
"#;

/// `BASE` with the first occurrence of `from` replaced by `to` (which must exist).
fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "test bug: {from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

/// 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text.find(needle).unwrap_or_else(|| panic!("test bug: {needle:?} not found"));
    text[..at].matches('\n').count() + 1
}

/// The `n`-th (0-based) occurrence's line.
fn nth_line_of(text: &str, needle: &str, n: usize) -> usize {
    let at = text.match_indices(needle).nth(n).unwrap_or_else(|| panic!("test bug: {needle:?} #{n}")).0;
    text[..at].matches('\n').count() + 1
}

fn err(text: &str) -> MachineError {
    parse_machine("machines/x.toml", text).expect_err("should be rejected")
}

#[test]
fn base_machine_parses() {
    let m = parse_machine("x.toml", BASE).unwrap();
    assert_eq!(m.inter_node.segments.len(), 2);
    assert_eq!(m.compute.kernel_gflops["gemm"], 30.0);
    assert_eq!(m.node_capacity(), Some(16));
}

#[test]
fn every_preset_parses_validates_and_holds_1024_ranks() {
    assert_eq!(preset_names().len(), 9);
    for name in preset_names() {
        let m = load_machine(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.name, name, "a preset's name field must equal its preset name");
        assert!(!m.description.is_empty());
        if let Some(nodes) = m.node_capacity() {
            assert!(nodes * u64::from(m.ranks_per_node) >= 1024, "{name} holds only {nodes} nodes");
        }
        assert!(m.ranks_per_node > 1, "{name}");
        for kernel in ["gemm", "potrf", "trsm", "syrk", "moe-ffn"] {
            assert!(m.compute.kernel_gflops.contains_key(kernel), "{name} lacks a rate for {kernel}");
        }
        // The text on disk is the text embedded.
        let on_disk =
            std::fs::read_to_string(format!("{}/../machines/{name}.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(on_disk, preset_text(name).unwrap());
    }
}

#[test]
fn presets_pick_the_documented_fidelity_and_topology() {
    let kinds: Vec<(Fidelity, &str)> = preset_names()
        .into_iter()
        .map(|n| {
            let m = load_machine(n).unwrap();
            let kind = match m.topology {
                Topology::Crossbar { .. } => "crossbar",
                Topology::FatTree { .. } => "fat-tree",
                Topology::Dragonfly { .. } => "dragonfly",
                Topology::Torus { .. } => "torus",
            };
            (m.fidelity, kind)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (Fidelity::Analytic, "crossbar"),
            (Fidelity::Analytic, "fat-tree"),
            (Fidelity::Flow, "fat-tree"),
            (Fidelity::Flow, "dragonfly"),
            (Fidelity::Flow, "dragonfly"),
            (Fidelity::Flow, "crossbar"),
            (Fidelity::Flow, "crossbar"),
            (Fidelity::Flow, "fat-tree"),
            (Fidelity::Flow, "dragonfly"),
        ]
    );
    // The IB preset is the ~1 us machine, Slingshot ~2 us, TCP Ethernet ~10 us.
    let small = |n: &str| {
        let s = &load_machine(n).unwrap().inter_node.segments[0];
        s.o_s_ns + s.l_ns + s.o_r_ns
    };
    assert_eq!(small("ib-hdr-fattree"), 1000.0);
    assert_eq!(small("slingshot-11-dragonfly"), 2000.0);
    assert_eq!(small("eth-100g"), 10_000.0);
    // The Dagger evaluation's machines: Aurora's Slingshot as the other Slingshot preset,
    // EFA an order of magnitude slower.
    assert_eq!(small("aurora"), 2000.0);
    assert_eq!(small("aws-efa"), 15_000.0);
}

#[test]
fn aurora_is_the_published_dragonfly_and_aws_efa_a_full_bisection_crossbar() {
    let aurora = load_machine("aurora").unwrap();
    let Topology::Dragonfly { groups, routers_per_group, nodes_per_router, global_links_per_router, .. } =
        aurora.topology
    else {
        panic!("aurora is a dragonfly")
    };
    // 166 groups x 32 switches x 2 nodes = Aurora's 10,624 nodes, two global links per group pair.
    assert_eq!(u64::from(groups * routers_per_group * nodes_per_router), 10_624);
    assert_eq!(routers_per_group * global_links_per_router / (groups - 1), 2);
    assert_eq!((aurora.ranks_per_node, aurora.nic_gbps), (8, 8.0 * 200.0), "8 ranks, 8 NICs of 200 Gb/s");
    let efa = load_machine("aws-efa").unwrap();
    assert!(matches!(efa.topology, Topology::Crossbar { link_gbps } if link_gbps == 300.0));
    assert_eq!(efa.nic_gbps, 300.0);
}

#[test]
fn unknown_top_level_key_names_file_line_and_key() {
    let text = edit("nic_gbps = 100.0\n", "nic_gbps = 100.0\nnic_gbs = 3\n");
    let e = err(&text);
    assert_eq!(e.file, "machines/x.toml");
    assert_eq!(e.key, "nic_gbs");
    assert_eq!(e.line, Some(line_of(&text, "nic_gbs =")));
    assert!(e.reason.contains("unknown key (did you mean `nic_gbps`?)"), "{e}");
    assert!(e.reason.contains("ranks_per_node"), "lists the allowed keys: {e}");
    assert_eq!(e.to_string(), format!("machines/x.toml:6: key `nic_gbs`: {}", e.reason));
}

#[test]
fn unknown_key_in_a_segment_names_the_segment() {
    let text = edit("from_bytes = 8192\n", "from_bytes = 8192\nlatency = 3\n");
    let e = err(&text);
    assert_eq!(e.key, "inter_node.segments[1].latency");
    assert_eq!(e.line, Some(line_of(&text, "latency =")));
    // And inside an inline table.
    let text = edit("l_ns = 100.0, g_per", "l_ns = 100.0, l_nss = 1.0, g_per");
    let e = err(&text);
    assert_eq!(e.key, "intra_node.segments[0].l_nss");
    assert_eq!(e.line, Some(line_of(&text, "l_nss")));
    assert!(e.reason.contains("did you mean `l_ns`?"), "{e}");
}

#[test]
fn unknown_key_in_the_tagged_topology_table_is_found_by_name() {
    let text = edit("k = 4\n", "k = 4\nradix = 8\n");
    let e = err(&text);
    assert_eq!(e.key, "topology.radix");
    assert_eq!(e.line, Some(line_of(&text, "radix")));
    assert!(e.reason.contains("allowed here: k, oversubscription, link_gbps, hop_ns"), "{e}");
}

#[test]
fn type_errors_name_the_key() {
    // A plain struct: serde's span points at the value.
    let text = edit("cores_per_rank = 2", "cores_per_rank = 2.5");
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("compute.cores_per_rank", Some(line_of(&text, "cores_per_rank"))));
    assert!(e.reason.contains("expected a whole number"), "{e}");
    // Inside the internally tagged topology (serde only reports the table).
    let text = edit("k = 4", "k = \"four\"");
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("topology.k", Some(line_of(&text, "k = \"four\""))));
    let text = edit("k = 4", "k = -4");
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("topology.k", Some(line_of(&text, "k = -4"))));
    let text = edit("hop_ns = 100.0", "hop_ns = true");
    let e = err(&text);
    assert_eq!(e.key, "topology.hop_ns");
    // A rate that is not a number.
    let text = edit("gemm = 30.0", "gemm = \"fast\"");
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("compute.kernel_gflops.gemm", Some(line_of(&text, "gemm"))));
}

#[test]
fn kernel_byte_costs_read_back_and_bad_ones_name_their_key() {
    let k = "kernel_gflops = { gemm = 30.0, potrf = 5.0 }";
    let text = edit(k, &format!("{k}\nkernel_ns_per_byte = {{ gen = 0.85 }}"));
    let m = parse_machine("m.toml", &text).unwrap();
    assert_eq!(m.compute.kernel_ns_per_byte["gen"], 0.85);
    for (bad, why) in [("-1.0", "between 0 and"), ("1e300", "between 0 and"), ("nan", "between 0 and")] {
        let text = edit(k, &format!("{k}\nkernel_ns_per_byte = {{ gen = {bad} }}"));
        let e = err(&text);
        assert_eq!(e.key, "compute.kernel_ns_per_byte.gen", "{bad}: {e}");
        assert_eq!(e.line, Some(line_of(&text, "kernel_ns_per_byte")), "{bad}: {e}");
        assert!(e.reason.contains(why), "{bad}: {e}");
    }
    let text = edit(k, &format!("{k}\nkernel_ns_per_byte = {{ gen = \"slow\" }}"));
    assert_eq!(err(&text).key, "compute.kernel_ns_per_byte.gen");
}

#[test]
fn kernel_curves_read_back_and_bad_ones_name_their_key() {
    let text = edit(
        "kernel_gflops = { gemm = 30.0, potrf = 5.0 }",
        "kernel_gflops = { gemm = 30.0, potrf = 5.0 }\nkernel_curves = { gemm = [[1e6, 2.0], [8e6, 6.0]] }",
    );
    let m = parse_machine("m.toml", &text).unwrap();
    assert_eq!(m.compute.kernel_curves["gemm"], vec![[1e6, 2.0], [8e6, 6.0]]);
    for (bad, why) in [
        ("[[8e6, 2.0], [1e6, 6.0]]", "increasing"),
        ("[[1e6, 2.0], [1e6, 6.0]]", "increasing"),
        ("[[-1.0, 2.0]]", "increasing"),
        ("[[1e6, 0.0]]", "GFLOP/s"),
        ("[]", "at least one"),
    ] {
        let text = edit(
            "kernel_gflops = { gemm = 30.0, potrf = 5.0 }",
            &format!("kernel_gflops = {{ gemm = 30.0, potrf = 5.0 }}\nkernel_curves = {{ gemm = {bad} }}"),
        );
        let e = err(&text);
        assert_eq!(e.key, "compute.kernel_curves.gemm", "{bad}: {e}");
        assert_eq!(e.line, Some(line_of(&text, "kernel_curves")), "{bad}: {e}");
        assert!(e.reason.contains(why), "{bad}: {e}");
    }
    // Three numbers to a point is not a point.
    let text = edit(
        "kernel_gflops = { gemm = 30.0, potrf = 5.0 }",
        "kernel_gflops = { gemm = 30.0, potrf = 5.0 }\nkernel_curves = { gemm = [[1e6, 2.0, 3.0]] }",
    );
    let e = err(&text);
    assert!(e.key.starts_with("compute.kernel_curves"), "{e}");
    assert!(e.reason.contains("a point is [flops, GFLOP/s], got 3 number(s)"), "{e}");
    assert_eq!(e.line, Some(line_of(&text, "kernel_curves")), "{e}");
}

#[test]
fn unknown_enum_values_list_the_allowed_ones() {
    let text = edit("fidelity = \"flow\"", "fidelity = \"flwo\"");
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("fidelity", Some(3)));
    assert!(e.reason.contains("did you mean `flow`?") && e.reason.contains("analytic"), "{e}");
    let text = edit("kind = \"fat-tree\"", "kind = \"fattree\"");
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("topology.kind", Some(line_of(&text, "kind ="))));
    assert!(e.reason.contains("did you mean `fat-tree`?") && e.reason.contains("dragonfly"), "{e}");
}

#[test]
fn missing_keys_are_named() {
    let e = err(&edit("nic_gbps = 100.0\n", ""));
    assert_eq!(e.key, "nic_gbps");
    assert!(e.reason.contains("required"), "{e}");
    let text = edit("link_gbps = 100.0\n", "");
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("topology.link_gbps", Some(line_of(&text, "[topology]"))));
    let e = err(&edit("kind = \"fat-tree\"\n", ""));
    assert_eq!(e.key, "topology.kind");
    assert!(e.reason.contains("\"dragonfly\""), "{e}");
}

#[test]
fn syntax_errors_give_the_line() {
    let text = edit("[topology]", "[topology");
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "[topology")));
    assert!(e.reason.starts_with("not valid TOML"), "{e}");
    let text = edit("g_ns = 10.0\n", "g_ns = 10.0\ng_ns = 11.0\n");
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("g_ns", Some(line_of(&text, "g_ns = 11.0"))));
}

#[test]
fn negative_latency_names_key_and_reason() {
    let text = edit("l_ns = 2000.0", "l_ns = -5.0");
    let e = err(&text);
    assert_eq!(e.key, "inter_node.segments[1].l_ns");
    assert_eq!(e.line, Some(line_of(&text, "l_ns = -5.0")));
    assert_eq!(e.reason, "must be a time in ns between 0 and 1e10 (10 s), got -5");
}

#[test]
fn nan_and_zero_rates_are_rejected() {
    let text = edit("gemm = 30.0", "gemm = nan");
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("compute.kernel_gflops.gemm", Some(line_of(&text, "gemm"))));
    assert!(e.reason.contains("got NaN"), "{e}");
    let e = err(&edit("nic_gbps = 100.0", "nic_gbps = 0.0"));
    assert_eq!((e.key.as_str(), e.line), ("nic_gbps", Some(5)));
    let e = err(&edit("g_per_byte_ns = 0.1\n\n[[", "g_per_byte_ns = 0.0\n\n[["));
    assert_eq!(e.key, "inter_node.segments[0].g_per_byte_ns");
    let e = err(&edit("cores_per_rank = 2", "cores_per_rank = 0"));
    assert_eq!(e.key, "compute.cores_per_rank");
    let e = err(&edit("ranks_per_node = 4", "ranks_per_node = 0"));
    assert_eq!(e.key, "ranks_per_node");
    let e = err(&edit("hop_ns = 100.0", "hop_ns = -inf"));
    assert_eq!(e.key, "topology.hop_ns");
}

#[test]
fn unsorted_segments_are_rejected() {
    let text = edit("from_bytes = 8192", "from_bytes = 0");
    let e = err(&text);
    assert_eq!(e.key, "inter_node.segments[1].from_bytes");
    assert_eq!(e.line, Some(nth_line_of(&text, "from_bytes = 0", 1)));
    assert!(e.reason.contains("strictly increasing"), "{e}");
    let text = edit("from_bytes = 0\n", "from_bytes = 64\n");
    let e = err(&text);
    assert_eq!(e.key, "inter_node.segments[0].from_bytes");
    assert!(e.reason.contains("must start at 0"), "{e}");
    let e = err(&edit(
        "segments = [{ from_bytes = 0, o_s_ns = 50.0, o_r_ns = 50.0, g_ns = 5.0, l_ns = 100.0, g_per_byte_ns = 0.1 }]",
        "segments = []",
    ));
    assert_eq!(e.key, "intra_node.segments");
    assert!(e.reason.contains("at least one segment"), "{e}");
}

#[test]
fn odd_fat_tree_radix_is_rejected() {
    let text = edit("k = 4", "k = 5");
    let e = err(&text);
    let line = line_of(&text, "k = 5");
    assert_eq!(
        e.to_string(),
        format!(
            "machines/x.toml:{line}: key `topology.k`: must be an even number from 2 to 406 (the switch radix; k^3/4 \
             hosts), got 5"
        )
    );
    let e = err(&edit("oversubscription = 1.0", "oversubscription = 0.5"));
    assert_eq!(e.key, "topology.oversubscription");
}

#[test]
fn torus_needs_two_or_three_dimensions_of_at_least_two() {
    let torus = |dims: &str| {
        edit("kind = \"fat-tree\"\nk = 4\noversubscription = 1.0\n", &format!("kind = \"torus\"\ndims = {dims}\n"))
    };
    let text = torus("[4, 4, 4, 4]");
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("topology.dims", Some(line_of(&text, "dims"))));
    assert!(e.reason.contains("must have 2 or 3 entries") && e.reason.contains("got 4"), "{e}");
    let e = err(&torus("[4, 1]"));
    assert_eq!(e.key, "topology.dims[1]");
    let m = parse_machine("t.toml", &torus("[4, 4, 2]")).unwrap();
    assert_eq!(m.node_capacity(), Some(32));
    let e = err(&torus("[4, \"x\"]"));
    assert_eq!(e.key, "topology.dims[1]");
}

#[test]
fn dragonfly_counts_and_reach_are_checked() {
    let dragonfly = |groups: u32, routers: u32, globals: u32| {
        edit(
            "kind = \"fat-tree\"\nk = 4\noversubscription = 1.0\nlink_gbps = 100.0\n",
            &format!(
                "kind = \"dragonfly\"\ngroups = {groups}\nrouters_per_group = {routers}\nnodes_per_router = 4\n\
                 global_links_per_router = {globals}\nlocal_gbps = 200.0\nglobal_gbps = 100.0\n"
            ),
        )
    };
    let m = parse_machine("d.toml", &dragonfly(9, 4, 2)).unwrap();
    assert_eq!(m.node_capacity(), Some(9 * 4 * 4));
    let e = err(&dragonfly(10, 4, 2));
    assert_eq!(e.key, "topology.groups");
    assert!(e.reason.contains("= 9"), "{e}");
    let e = err(&dragonfly(2, 0, 2));
    assert_eq!(e.key, "topology.routers_per_group");
    assert_eq!(e.reason, "must be an integer >= 1, got 0");
}

#[test]
fn unknown_preset_suggests_the_nearest() {
    let e = load_machine("slingshot-dragonfly").unwrap_err();
    assert_eq!(e.file, "preset slingshot-dragonfly");
    assert!(e.reason.contains("did you mean `slingshot-11-dragonfly`?"), "{e}");
    for name in preset_names() {
        assert!(e.reason.contains(name), "lists every preset: {e}");
    }
    let e = load_machine("zzz").unwrap_err();
    assert!(!e.reason.contains("did you mean"), "{e}");
}

#[test]
fn loads_a_machine_from_a_file_path() {
    let dir = std::env::temp_dir().join(format!("dagwire-machine-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("custom.toml");
    std::fs::write(&path, edit("name = \"test\"", "name = \"custom\"")).unwrap();
    let spec = path.to_str().unwrap();
    let m = load_machine(spec).unwrap();
    assert_eq!(m.name, "custom");
    // Errors name the path as given.
    std::fs::write(&path, edit("k = 4", "k = 3")).unwrap();
    let e = load_machine(spec).unwrap_err();
    assert_eq!(e.file, spec);
    assert_eq!(e.key, "topology.k");
    // A missing file is an error about the file, not about presets.
    let missing = dir.join("missing.toml");
    let e = load_machine(missing.to_str().unwrap()).unwrap_err();
    assert!(e.reason.starts_with("cannot read the machine file"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn describe_mentions_the_key_numbers() {
    let text = describe(&load_machine("ib-hdr-fattree").unwrap());
    for needle in [
        "ib-hdr-fattree",
        "InfiniBand HDR",
        "flow",
        "fat-tree k=16",
        "1024 nodes = 8192 ranks",
        "8 ranks/node x 16 cores/rank",
        "NIC 200 Gbit/s",
        "from 0 B: L 600 ns, o_s 200 ns, o_r 200 ns, g 5 ns, 12.5 GB/s",
        "from 8 KiB: L 2000 ns",
        "g 5 ns, 24 GB/s",
        "130 ns/hop",
        "gemm 33",
        "potrf 12",
        "other 8",
        "task overhead 1000 ns",
        "control message 0 ns",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    let text = describe(&load_machine("shm-node").unwrap());
    assert!(text.contains("crossbar") && text.contains("any number of nodes"), "{text}");
    let text = describe(&load_machine("slingshot-11-dragonfly").unwrap());
    assert!(text.contains("dragonfly 4 groups x 32 routers x 16 nodes") && text.contains("2048 nodes"), "{text}");
}

/// `compute.control_message_ns`: optional (0 when absent, on every preset), read when
/// given and listed; a negative, non-numeric, too large or misspelt value is refused
/// naming file, line and key.
#[test]
fn the_control_message_cost_is_optional_read_listed_and_bad_values_name_their_key() {
    assert_eq!(parse_machine("x.toml", BASE).unwrap().compute.control_message_ns, 0.0);
    for name in preset_names() {
        assert_eq!(load_machine(name).unwrap().compute.control_message_ns, 0.0, "{name}");
    }
    let text = edit("[compute]\n", "[compute]\ncontrol_message_ns = 1250.5\n");
    let m = parse_machine("x.toml", &text).unwrap();
    assert_eq!(m.compute.control_message_ns, 1250.5);
    assert!(describe(&m).contains("control message 1250.5 ns"), "{}", describe(&m));
    for (value, reason) in [
        ("-1.0", "must be a time in ns between 0 and 1e10"),
        ("1e11", "must be a time in ns between 0 and 1e10"),
        ("\"fast\"", "expected a number"),
    ] {
        let text = edit("[compute]\n", &format!("[compute]\ncontrol_message_ns = {value}\n"));
        let e = err(&text);
        assert_eq!(
            (e.file.as_str(), e.key.as_str(), e.line),
            ("machines/x.toml", "compute.control_message_ns", Some(line_of(&text, "control_message_ns"))),
            "{e}"
        );
        assert!(e.reason.contains(reason), "{e}");
    }
    let text = edit("[compute]\n", "[compute]\ncontrol_mesage_ns = 100.0\n");
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("compute.control_mesage_ns", Some(line_of(&text, "control_mesage_ns"))));
    assert!(e.reason.contains("did you mean `control_message_ns`?"), "{e}");
}

#[test]
fn validate_machine_checks_built_machines() {
    let mut m = load_machine("ib-hdr-fattree").unwrap();
    validate_machine("x", &m).unwrap();
    m.topology = Topology::Torus { dims: vec![2, 2, 2, 2], link_gbps: 1.0, hop_ns: 1.0 };
    let e = validate_machine("x", &m).unwrap_err();
    assert_eq!((e.key.as_str(), e.line), ("topology.dims", None));
    assert_eq!(m.node_capacity(), Some(16));
}

#[test]
fn error_display_omits_unknown_parts() {
    let e = MachineError { file: "f.toml".into(), line: None, key: String::new(), reason: "r".into() };
    assert_eq!(e.to_string(), "f.toml: r");
}

#[test]
fn huge_but_finite_values_are_refused_with_their_unit_and_range() {
    // Each of these once reached the simulator and overflowed its time arithmetic.
    let cases = [
        (
            "l_ns = 2000.0",
            "l_ns = 1e20",
            "inter_node.segments[1].l_ns",
            "between 0 and 1e10 (10 s), got 100000000000000000000",
        ),
        ("o_s_ns = 100.0", "o_s_ns = 1e11", "inter_node.segments[0].o_s_ns", "between 0 and 1e10"),
        ("g_per_byte_ns = 0.05", "g_per_byte_ns = 1e20", "inter_node.segments[1].g_per_byte_ns", "(0, 1e6]"),
        ("nic_gbps = 100.0", "nic_gbps = 1e-30", "nic_gbps", "a bandwidth in Gbit/s between 1e-6 and 1e7"),
        ("link_gbps = 100.0", "link_gbps = 1e300", "topology.link_gbps", "between 1e-6 and 1e7"),
        ("default_gflops = 10.0", "default_gflops = 1e-9", "compute.default_gflops", "GFLOP/s per core between 1e-3"),
        ("hop_ns = 100.0", "hop_ns = 1e18", "topology.hop_ns", "between 0 and 1e10"),
    ];
    for (from, to, key, reason) in cases {
        let text = edit(from, to);
        let e = err(&text);
        assert_eq!((e.key.as_str(), e.line), (key, Some(line_of(&text, to))), "{to}: {e}");
        assert!(e.reason.contains(reason), "{to}: {e}");
    }
    let text = edit("[compute]\n", "[compute]\ntask_overhead_ns = 1e18\n");
    assert_eq!(err(&text).key, "compute.task_overhead_ns");
}

#[test]
fn topologies_too_large_to_count_are_refused_not_overflowed() {
    let torus = |dims: &str| {
        edit("kind = \"fat-tree\"\nk = 4\noversubscription = 1.0\n", &format!("kind = \"torus\"\ndims = {dims}\n"))
    };
    let e = err(&torus("[4294967295, 4294967295, 4294967295]"));
    assert_eq!(e.key, "topology.dims");
    assert!(e.reason.contains("product must be at most 16777216 nodes"), "{e}");
    let e = err(&edit("k = 4", "k = 65534"));
    assert_eq!(e.key, "topology.k");
    assert!(parse_machine("x.toml", &edit("k = 4", "k = 406")).is_ok(), "406^3/4 hosts is the largest fat-tree");
}

/// `BASE` with an `[accelerators]` section (4 devices for its 4 ranks per node).
fn with_accel() -> String {
    format!(
        "{BASE}\n[accelerators]\nmodel = \"test gpu\"\ndevices = 4\nmemory_gib = 80.0\nstreams = 2\n\
         copy_engines = 2\ngpu_direct = false\nlaunch_ns = 3000.0\ndefault_gflops = 1000.0\n\
         kernel_gflops = {{ gemm = 50000.0 }}\n\n[accelerators.host_link]\nlatency_ns = 2000.0\ngbps = 512.0\n\
         devices_per_switch = 2\n\n[accelerators.peer_link]\nlatency_ns = 2500.0\ngbps = 3600.0\n"
    )
}

#[test]
fn machines_without_accelerators_have_none_and_an_accelerators_section_parses() {
    assert_eq!(parse_machine("x.toml", BASE).unwrap().accelerators, None);
    let m = parse_machine("x.toml", &with_accel()).unwrap();
    let a = m.accelerators.as_ref().unwrap();
    assert_eq!((a.devices, a.streams, a.copy_engines, a.gpu_direct), (4, 2, 2, false));
    assert_eq!((a.host_link.devices_per_switch, a.host_link.gbps), (2, 512.0));
    assert_eq!(a.peer_link.as_ref().unwrap().gbps, 3600.0);
    assert_eq!(a.kernel_gflops["gemm"], 50000.0);
    let text = describe(&m);
    for needle in [
        "accelerators: 4 x test gpu, 80 GiB each, one rank per device; 2 streams, 2 copy engines; staged",
        "host link 512 Gbit/s per direction, 2000 ns, 2 device(s) per switch; peer link 3600 Gbit/s",
        "device kernels: gemm 50000, other 1000 GFLOP/s per kernel; launch 3000 ns",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    // Without a peer link the section still parses.
    let text = with_accel().replace("\n[accelerators.peer_link]\nlatency_ns = 2500.0\ngbps = 3600.0\n", "");
    let m = parse_machine("x.toml", &text).unwrap();
    assert!(m.accelerators.unwrap().peer_link.is_none());
}

#[test]
fn accelerator_errors_name_file_line_and_key() {
    let base = with_accel();
    let cases = [
        ("devices = 4", "devices = 3", "accelerators.devices", "must equal ranks_per_node = 4"),
        ("devices = 4", "devices = 0", "accelerators.devices", "from 1 to 1024"),
        ("streams = 2", "streams = 0", "accelerators.streams", "from 1 to 1024"),
        ("streams = 2", "streams = 4294967295", "accelerators.streams", "from 1 to 1024"),
        ("copy_engines = 2", "copy_engines = 5000", "accelerators.copy_engines", "from 1 to 1024"),
        ("memory_gib = 80.0", "memory_gib = -1.0", "accelerators.memory_gib", "GiB"),
        ("launch_ns = 3000.0", "launch_ns = 1e20", "accelerators.launch_ns", "between 0 and 1e10"),
        ("default_gflops = 1000.0", "default_gflops = nan", "accelerators.default_gflops", "GFLOP/s per kernel"),
        ("gemm = 50000.0", "gemm = 0.0", "accelerators.kernel_gflops.gemm", "GFLOP/s per kernel"),
        ("latency_ns = 2000.0", "latency_ns = -5.0", "accelerators.host_link.latency_ns", "time in ns"),
        ("gbps = 512.0", "gbps = 1e30", "accelerators.host_link.gbps", "Gbit/s"),
        (
            "devices_per_switch = 2",
            "devices_per_switch = 5",
            "accelerators.host_link.devices_per_switch",
            "1 to devices = 4",
        ),
        ("gbps = 3600.0", "gbps = 0.0", "accelerators.peer_link.gbps", "Gbit/s"),
        ("latency_ns = 2500.0", "latency_ns = inf", "accelerators.peer_link.latency_ns", "time in ns"),
    ];
    for (from, to, key, reason) in cases {
        assert!(base.contains(from), "test bug: {from}");
        let text = base.replacen(from, to, 1);
        let e = err(&text);
        assert_eq!((e.key.as_str(), e.line), (key, Some(line_of(&text, to))), "{to}: {e}");
        assert!(e.reason.contains(reason), "{to}: {e}");
        assert!(e.to_string().starts_with("machines/x.toml:"), "{e}");
    }
    // Unknown keys, wrong types and missing keys inside the section are located too.
    let text = base.replacen("streams = 2", "streems = 2", 1);
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("accelerators.streems", Some(line_of(&text, "streems"))), "{e}");
    assert!(e.reason.contains("did you mean `streams`?"), "{e}");
    let text = base.replacen("gpu_direct = false", "gpu_direct = \"yes\"", 1);
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("accelerators.gpu_direct", Some(line_of(&text, "gpu_direct"))), "{e}");
    let text = base.replacen("copy_engines = 2\n", "", 1);
    let e = err(&text);
    assert_eq!(e.key, "accelerators.copy_engines", "{e}");
    assert!(e.reason.contains("missing"), "{e}");
}

#[test]
fn the_gpu_presets_have_the_documented_devices_and_the_cpu_presets_none() {
    let devices = |n: &str| {
        let m = load_machine(n).unwrap();
        m.accelerators.map(|a| (a.devices, a.gpu_direct, a.peer_link.is_some(), a.host_link.devices_per_switch))
    };
    assert_eq!(devices("dgx-h100"), Some((8, true, true, 2)));
    assert_eq!(devices("pcie-4gpu"), Some((4, false, false, 2)));
    assert_eq!(devices("aurora-gpu"), Some((6, true, true, 1)));
    for cpu in ["shm-node", "eth-100g", "ib-hdr-fattree", "slingshot-11-dragonfly", "aurora", "aws-efa"] {
        assert_eq!(devices(cpu), None, "{cpu}");
    }
    // aurora-gpu is aurora's network with one rank per GPU.
    let (cpu, gpu) = (load_machine("aurora").unwrap(), load_machine("aurora-gpu").unwrap());
    assert_eq!((cpu.topology, cpu.inter_node, cpu.nic_gbps), (gpu.topology, gpu.inter_node, gpu.nic_gbps));
    assert_eq!(gpu.ranks_per_node, 6);
    // 8 x 400 Gb/s NICs and NVLink 4's 450 GB/s per direction.
    let dgx = load_machine("dgx-h100").unwrap();
    assert_eq!(dgx.nic_gbps, 3200.0);
    assert_eq!(dgx.accelerators.unwrap().peer_link.unwrap().gbps, 3600.0);
    // The NIC affinity: pcie-4gpu's one NIC for its 4 GPUs on the host's root port;
    // dgx-h100's one 400 Gb/s NIC per GPU under the GPU's switch; aurora-gpu pools its NICs.
    let nics = |n: &str| {
        let a = load_machine(n).unwrap().accelerators.unwrap();
        (a.nics, a.nic_switch)
    };
    assert_eq!(nics("pcie-4gpu"), (Some(1), NicSwitch::Host));
    assert_eq!(nics("dgx-h100"), (Some(8), NicSwitch::FirstDevice));
    assert_eq!(nics("aurora-gpu"), (None, NicSwitch::FirstDevice));
    let d = describe(&load_machine("dgx-h100").unwrap());
    assert!(d.contains("NICs: 8 per node, 400 Gbit/s each, 1 device(s) each, under its first device's switch"), "{d}");
    assert!(d.contains("0 of 8 devices cross the host"), "{d}");
}

/// A segment's `o_per_byte_ns` (LogGOPS's `O`): optional (absent on every preset), read
/// when given and listed; a negative, non-numeric or too large value is refused naming
/// file, line and key. `compute.collective_call_ns` likewise.
#[test]
fn the_cpu_overhead_per_byte_and_the_collective_call_are_optional_read_and_checked() {
    let m = parse_machine("x.toml", BASE).unwrap();
    assert!(m.inter_node.segments.iter().chain(&m.intra_node.segments).all(|s| s.o_per_byte_ns.is_none()));
    assert_eq!(m.compute.collective_call_ns, 0.0);
    for name in preset_names() {
        let p = load_machine(name).unwrap();
        assert!(p.intra_node.segments.iter().all(|s| s.o_per_byte_ns.is_none()), "{name}");
        assert_eq!(p.compute.collective_call_ns, 0.0, "{name}");
    }
    let text = edit("from_bytes = 8192\n", "from_bytes = 8192\no_per_byte_ns = 0.35\n");
    let text = text.replacen("[compute]\n", "[compute]\ncollective_call_ns = 21000.0\n", 1);
    let m = parse_machine("x.toml", &text).unwrap();
    assert_eq!(m.inter_node.segments[1].o_per_byte_ns, Some(0.35));
    assert_eq!(m.compute.collective_call_ns, 21000.0);
    let d = describe(&m);
    assert!(d.contains("CPU 0.35 ns per byte") && d.contains("collective call 21000 ns"), "{d}");
    for (value, reason) in [
        ("-0.5", "must be a CPU cost in ns per byte between 0 and 1000"),
        ("1e9", "must be a CPU cost in ns per byte between 0 and 1000"),
        ("nan", "must be a CPU cost in ns per byte"),
        ("\"fast\"", "expected"),
    ] {
        let text = edit("from_bytes = 8192\n", &format!("from_bytes = 8192\no_per_byte_ns = {value}\n"));
        let e = err(&text);
        assert_eq!(
            (e.file.as_str(), e.key.as_str(), e.line),
            ("machines/x.toml", "inter_node.segments[1].o_per_byte_ns", Some(line_of(&text, "o_per_byte_ns"))),
            "{e}"
        );
        assert!(e.reason.contains(reason), "{value}: {e}");
    }
    let text = edit("[compute]\n", "[compute]\ncollective_call_ns = -3.0\n");
    let e = err(&text);
    assert_eq!(
        (e.key.as_str(), e.line),
        ("compute.collective_call_ns", Some(line_of(&text, "collective_call_ns"))),
        "{e}"
    );
    assert!(e.reason.contains("must be a time in ns between 0 and 1e10"), "{e}");
}

/// `compute.collective_message_ns` and `collective_ns_per_byte`: optional (0 on every
/// preset), read when given and described; a negative or too large value is refused
/// naming the key and line.
#[test]
fn the_collective_piece_costs_are_optional_read_described_and_checked() {
    let m = parse_machine("x.toml", BASE).unwrap();
    assert_eq!((m.compute.collective_message_ns, m.compute.collective_ns_per_byte), (0.0, 0.0));
    assert!(!describe(&m).contains("collective piece"), "{}", describe(&m));
    for name in preset_names() {
        let p = load_machine(name).unwrap();
        assert_eq!((p.compute.collective_message_ns, p.compute.collective_ns_per_byte), (0.0, 0.0), "{name}");
    }
    let text =
        BASE.replacen("[compute]\n", "[compute]\ncollective_message_ns = 372.0\ncollective_ns_per_byte = 0.321\n", 1);
    let m = parse_machine("x.toml", &text).unwrap();
    assert_eq!((m.compute.collective_message_ns, m.compute.collective_ns_per_byte), (372.0, 0.321));
    let d = describe(&m);
    assert!(d.contains("372 ns per message and 0.321 ns per byte a collective piece carries"), "{d}");
    for (key, value, reason) in [
        ("collective_message_ns", "-1.0", "must be a time in ns"),
        ("collective_ns_per_byte", "-0.5", "must be a CPU cost in ns per byte between 0 and 1000"),
        ("collective_ns_per_byte", "5000.0", "must be a CPU cost in ns per byte between 0 and 1000"),
    ] {
        let text = edit("[compute]\n", &format!("[compute]\n{key} = {value}\n"));
        let e = err(&text);
        assert_eq!((e.key.as_str(), e.line), (format!("compute.{key}").as_str(), Some(line_of(&text, key))), "{e}");
        assert!(e.reason.contains(reason), "{key} = {value}: {e}");
    }
}

/// `[accelerators] nics`: optional (absent: one pool per node, as before), read and
/// listed when given; a count that is 0, does not divide `devices` or is not a number is
/// refused naming file, line and key.
#[test]
fn the_nic_count_is_optional_read_listed_and_must_divide_the_devices() {
    let m = parse_machine("x.toml", &with_accel()).unwrap();
    assert_eq!(m.accelerators.as_ref().unwrap().nics, None);
    assert!(describe(&m).contains("NICs: one pool of"), "{}", describe(&m));
    let text = with_accel().replacen("devices = 4\n", "devices = 4\nnics = 1\n", 1);
    let m = parse_machine("x.toml", &text).unwrap();
    assert_eq!(m.accelerators.as_ref().unwrap().nics, Some(1));
    // BASE's NIC is 100 Gbit/s; devices 2 and 3 are on the second switch, the NIC on the first.
    let d = describe(&m);
    let want = format!(
        "NICs: 1 per node, {} Gbit/s each, 4 device(s) each, under its first device's switch (nic_switch = \
         \"first-device\"); 2 of 4 devices",
        m.nic_gbps
    );
    assert!(d.contains(&want), "{want:?} missing from:\n{d}");
    for (value, reason) in [
        ("0", "must be a number of NICs per node from 1 to devices = 4 that divides it"),
        ("3", "must be a number of NICs per node from 1 to devices = 4 that divides it"),
        ("8", "must be a number of NICs per node from 1 to devices = 4 that divides it"),
        ("-1", "expected"),
        ("\"two\"", "expected"),
    ] {
        let text = with_accel().replacen("devices = 4\n", &format!("devices = 4\nnics = {value}\n"), 1);
        let e = err(&text);
        assert_eq!(
            (e.file.as_str(), e.key.as_str(), e.line),
            ("machines/x.toml", "accelerators.nics", Some(line_of(&text, "nics ="))),
            "{value}: {e}"
        );
        assert!(e.reason.contains(reason), "{value}: {e}");
    }
    // A NIC's share of the node's bandwidth must stay a usable bandwidth.
    let text = with_accel().replacen("devices = 4\n", "devices = 4\nnics = 4\n", 1);
    let mut m = parse_machine("x.toml", &text).unwrap();
    m.nic_gbps = 2e-6;
    let e = validate_machine("x (modified)", &m).unwrap_err();
    assert_eq!(e.key, "accelerators.nics", "{e}");
    assert!(e.reason.contains("nic_gbps / nics"), "{e}");
}

/// `[accelerators] nic_switch`: optional (`first-device`), read and listed when given;
/// `host` needs `nics`; a value that is not one of the two is refused naming file, line,
/// key and the allowed values.
#[test]
fn the_nic_switch_is_first_device_or_host_and_host_needs_nics() {
    let with = |extra: &str| with_accel().replacen("devices = 4\n", &format!("devices = 4\n{extra}"), 1);
    let m = parse_machine("x.toml", &with("nics = 1\n")).unwrap();
    assert_eq!(m.accelerators.as_ref().unwrap().nic_switch, NicSwitch::FirstDevice);
    let m = parse_machine("x.toml", &with("nics = 1\nnic_switch = \"first-device\"\n")).unwrap();
    assert_eq!(m.accelerators.as_ref().unwrap().nic_switch, NicSwitch::FirstDevice);
    let m = parse_machine("x.toml", &with("nics = 1\nnic_switch = \"host\"\n")).unwrap();
    assert_eq!(m.accelerators.as_ref().unwrap().nic_switch, NicSwitch::Host);
    let d = describe(&m);
    let want = "4 device(s) each, on the host's root complex (nic_switch = \"host\"); 4 of 4 devices cross the host";
    assert!(d.contains(want), "{want:?} missing from:\n{d}");
    // A machine written back keeps the value (and leaves the default out).
    let back = toml::to_string(&m).unwrap();
    assert!(back.contains("nic_switch = \"host\""), "{back}");
    assert!(!toml::to_string(&parse_machine("x.toml", &with("nics = 1\n")).unwrap()).unwrap().contains("nic_switch"));
    let text = with("nics = 1\nnic_switch = \"hots\"\n");
    let e = err(&text);
    assert_eq!(
        (e.file.as_str(), e.key.as_str(), e.line),
        ("machines/x.toml", "accelerators.nic_switch", Some(line_of(&text, "nic_switch ="))),
        "{e}"
    );
    assert!(e.reason.contains("did you mean `host`?") && e.reason.contains("first-device"), "{e}");
    let text = with("nic_switch = \"host\"\n");
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("accelerators.nic_switch", Some(line_of(&text, "nic_switch ="))), "{e}");
    assert!(e.reason.contains("needs `nics`") && e.reason.contains("\"first-device\""), "{e}");
}

/// A key of `[accelerators]` (or `[compute]`) written below its rate table's header lands
/// in that table as a kernel name; it is refused naming the key, with what to do.
#[test]
fn a_section_key_written_into_a_kernel_rate_table_is_refused() {
    // `nics = 8` meant for [accelerators], written after its rate table's header.
    let text = with_accel().replacen("kernel_gflops = { gemm = 50000.0 }\n", "", 1)
        + "\n[accelerators.kernel_gflops]\ngemm = 50000.0\nnics = 8\n";
    let e = err(&text);
    assert_eq!((e.key.as_str(), e.line), ("accelerators.kernel_gflops.nics", Some(line_of(&text, "nics = 8"))), "{e}");
    assert!(e.reason.contains("is a key of [accelerators], not a kernel name") && e.reason.contains("move it"), "{e}");
    let text =
        edit("kernel_gflops = { gemm = 30.0, potrf = 5.0 }", "kernel_gflops = { gemm = 30.0, cores_per_rank = 5.0 }");
    let e = err(&text);
    assert_eq!(e.key, "compute.kernel_gflops.cores_per_rank", "{e}");
    // Kernel names the simulator does not know are kept (they are the workloads').
    let m = parse_machine("x.toml", &edit("potrf = 5.0", "my-kernel = 5.0")).unwrap();
    assert_eq!(m.compute.kernel_gflops["my-kernel"], 5.0);
}
