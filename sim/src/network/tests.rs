//! Network tests against closed-form answers.

use super::*;
use crate::machine::{LogGp, LogGpSegment, Topology};

fn seg(from_bytes: u64, o_s: f64, o_r: f64, g: f64, l: f64, per_byte: f64) -> LogGpSegment {
    LogGpSegment {
        from_bytes,
        o_s_ns: o_s,
        o_r_ns: o_r,
        g_ns: g,
        l_ns: l,
        g_per_byte_ns: per_byte,
        o_per_byte_ns: None,
    }
}

fn machine(
    fidelity: Fidelity,
    ranks_per_node: u32,
    nic_gbps: f64,
    topology: Topology,
    inter: Vec<LogGpSegment>,
    intra: Vec<LogGpSegment>,
) -> Machine {
    let base = Machine::crossbar("test", intra[0].clone(), ranks_per_node, nic_gbps);
    Machine { fidelity, inter_node: LogGp { segments: inter }, intra_node: LogGp { segments: intra }, topology, ..base }
}

/// Two inter-node segments (boundary 8192) and two intra-node ones (boundary 4096).
fn piecewise_inter() -> Vec<LogGpSegment> {
    vec![seg(0, 100.0, 150.0, 50.0, 1000.0, 0.125), seg(8192, 300.0, 350.0, 50.0, 2000.0, 0.0625)]
}
fn piecewise_intra() -> Vec<LogGpSegment> {
    vec![seg(0, 20.0, 30.0, 10.0, 200.0, 0.03125), seg(4096, 40.0, 60.0, 10.0, 400.0, 0.015625)]
}

/// One inter-node segment: o_s 100, o_r 150, g 50, L 1000, G 1/64 (a 64 B/ns path cap).
fn flat_inter() -> Vec<LogGpSegment> {
    vec![seg(0, 100.0, 150.0, 50.0, 1000.0, 0.015625)]
}

fn crossbar(gbps: f64) -> Topology {
    Topology::Crossbar { link_gbps: gbps }
}

fn fat_tree(k: u32, oversubscription: f64, hop_ns: f64) -> Topology {
    Topology::FatTree { k, oversubscription, link_gbps: 100.0, hop_ns }
}

/// The closed form of an isolated message, written out independently of the model code.
fn t_iso(s: &LogGpSegment, k: u64, hops: u32, hop_ns: f64) -> Time {
    let k = k.max(1);
    (s.o_s_ns.ceil()
        + ((k - 1) as f64 * s.g_per_byte_ns).ceil()
        + (s.l_ns + hops.saturating_sub(1) as f64 * hop_ns).ceil()
        + s.o_r_ns.ceil()) as Time
}

/// Delivers everything pending.
fn drain(net: &mut Network) -> Vec<(Time, MessageId)> {
    let mut out = Vec::new();
    while let Some(t) = net.next_delivery() {
        out.extend(net.deliver_until(t));
    }
    assert_eq!(net.in_flight(), 0);
    out
}

/// A→B at 0, B→A when that is delivered; returns the round-trip time.
fn ping_pong(net: &mut Network, a: u32, b: u32, bytes: u64) -> Time {
    let first = net.send(0, Rank(a), Rank(b), bytes);
    let got = drain(net);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, first);
    let t1 = got[0].0;
    let second = net.send(t1, Rank(b), Rank(a), bytes);
    let got = drain(net);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, second);
    got[0].0
}

#[test]
fn ping_pong_is_two_isolated_messages_with_the_right_segment() {
    let inter = piecewise_inter();
    let intra = piecewise_intra();
    for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
        let m = machine(fidelity, 2, 800.0, crossbar(800.0), inter.clone(), intra.clone());
        for (bytes, s) in [(0, &inter[0]), (1, &inter[0]), (8191, &inter[0]), (8192, &inter[1]), (100_001, &inter[1])] {
            let mut net = Network::new(&m, 4).unwrap();
            // ranks 0 and 2 are on nodes 0 and 1
            assert_eq!(ping_pong(&mut net, 0, 2, bytes), 2 * t_iso(s, bytes, 1, 0.0), "{fidelity:?} inter {bytes} B");
        }
        for (bytes, s) in [(0, &intra[0]), (4095, &intra[0]), (4096, &intra[1]), (50_000, &intra[1])] {
            let mut net = Network::new(&m, 4).unwrap();
            assert_eq!(ping_pong(&mut net, 0, 1, bytes), 2 * t_iso(s, bytes, 0, 0.0), "{fidelity:?} intra {bytes} B");
        }
    }
    // The numbers behind the formula, by hand, for two sizes either side of the boundary.
    let m = machine(Fidelity::Analytic, 2, 800.0, crossbar(800.0), inter, intra);
    let mut net = Network::new(&m, 4).unwrap();
    assert_eq!(ping_pong(&mut net, 0, 2, 8191), 2 * (100 + 1024 + 1000 + 150));
    let mut net = Network::new(&m, 4).unwrap();
    assert_eq!(ping_pong(&mut net, 0, 2, 8192), 2 * (300 + 512 + 2000 + 350));
}

#[test]
fn fractional_costs_round_up_term_by_term() {
    let inter = vec![seg(0, 100.5, 10.25, 0.0, 999.1, 0.1)];
    let m = machine(Fidelity::Analytic, 1, 800.0, crossbar(800.0), inter, piecewise_intra());
    let mut net = Network::new(&m, 2).unwrap();
    // 101 + ceil(8190 * 0.1 = 819) + 1000 + 11
    assert_eq!(ping_pong(&mut net, 0, 1, 8191), 2 * (101 + 819 + 1000 + 11));
}

#[test]
fn hop_latency_counts_switches_beyond_the_first() {
    let inter = piecewise_inter();
    for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
        let m = machine(fidelity, 1, 800.0, fat_tree(4, 1.0, 30.0), inter.clone(), piecewise_intra());
        for (dst, hops) in [(1, 1), (2, 3), (4, 5)] {
            let mut net = Network::new(&m, 16).unwrap();
            assert_eq!(net.route_len(0, dst).hops, hops);
            assert_eq!(ping_pong(&mut net, 0, dst, 1000), 2 * t_iso(&inter[0], 1000, hops, 30.0), "{fidelity:?}");
        }
        let torus = Topology::Torus { dims: vec![4, 4, 4], link_gbps: 800.0, hop_ns: 25.0 };
        let m = machine(fidelity, 1, 800.0, torus, inter.clone(), piecewise_intra());
        let mut net = Network::new(&m, 64).unwrap();
        // (0,0,0) -> (2,2,2): 6 links, 7 routers
        assert_eq!(ping_pong(&mut net, 0, 42, 20_000), 2 * t_iso(&inter[1], 20_000, 7, 25.0), "{fidelity:?}");
    }
}

/// Rank 0 sends `n` messages of `bytes` at time 0 to ranks 1..=n (one per node).
fn burst(inter: LogGpSegment, nic_gbps: f64, bytes: u64, n: u32) -> Vec<Time> {
    let m = machine(Fidelity::Analytic, 1, nic_gbps, crossbar(800.0), vec![inter], piecewise_intra());
    let mut net = Network::new(&m, n as usize + 1).unwrap();
    for d in 1..=n {
        net.send(0, Rank(0), Rank(d), bytes);
    }
    drain(&mut net).into_iter().map(|(t, _)| t).collect()
}

#[test]
fn analytic_back_to_back_sends_are_spaced_by_o_s_g_or_nic_bandwidth() {
    // o_s dominates (500 > g 100 > k*G 100.125 -> 101): delivery i at (i+1)*o_s + data + L + o_r.
    let got = burst(seg(0, 500.0, 10.0, 100.0, 1000.0, 0.125), 8000.0, 801, 4);
    assert_eq!(got, (0..4).map(|i| (i + 1) * 500 + 100 + 1000 + 10).collect::<Vec<_>>());
    // g dominates: injections o_s + i*g.
    let got = burst(seg(0, 10.0, 10.0, 1000.0, 1000.0, 0.125), 8000.0, 801, 4);
    assert_eq!(got, (0..4).map(|i| 10 + i * 1000 + 100 + 1000 + 10).collect::<Vec<_>>());
    // NIC bandwidth dominates: 8 Gbit/s = 1 B/ns, so 10001 B keep the NIC 10001 ns.
    let got = burst(seg(0, 10.0, 10.0, 100.0, 1000.0, 0.125), 8.0, 10_001, 4);
    assert_eq!(got, (0..4).map(|i| 10 + i * 10_001 + 1250 + 1000 + 10).collect::<Vec<_>>());
    // k*G dominates: ceil(10001 * 0.125) = 1251.
    let got = burst(seg(0, 10.0, 10.0, 100.0, 1000.0, 0.125), 8000.0, 10_001, 4);
    assert_eq!(got, (0..4).map(|i| 10 + i * 1251 + 1250 + 1000 + 10).collect::<Vec<_>>());
}

#[test]
fn analytic_nic_is_shared_by_a_nodes_ranks_but_cpus_are_not() {
    let inter = vec![seg(0, 10.0, 10.0, 100.0, 1000.0, 0.125)];
    let m = machine(Fidelity::Analytic, 2, 8.0, crossbar(800.0), inter, piecewise_intra());
    let mut net = Network::new(&m, 6).unwrap();
    net.send(0, Rank(0), Rank(2), 10_001);
    net.send(0, Rank(1), Rank(4), 10_001);
    let got: Vec<Time> = drain(&mut net).into_iter().map(|(t, _)| t).collect();
    // Both o_s end at 10 (two CPUs); the second injection waits for the NIC (10001 ns).
    assert_eq!(got, vec![10 + 1250 + 1000 + 10, 10 + 10_001 + 1250 + 1000 + 10]);
}

#[test]
fn receives_are_serialised_by_o_r_in_arrival_order() {
    let inter = vec![seg(0, 10.0, 500.0, 0.0, 1000.0, 0.125)];
    for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
        let m = machine(fidelity, 1, 800.0, crossbar(800.0), inter.clone(), piecewise_intra());
        let mut net = Network::new(&m, 5).unwrap();
        let ids: Vec<MessageId> = (1..5).map(|s| net.send(0, Rank(s), Rank(0), 1)).collect();
        let got = drain(&mut net);
        let arrive = 10 + 1000;
        assert_eq!(
            got,
            ids.iter().enumerate().map(|(i, &id)| (arrive + 500 * (i as Time + 1), id)).collect::<Vec<_>>()
        );
    }
}

#[test]
fn intra_node_sends_are_spaced_by_g_and_k_times_g() {
    let intra = vec![seg(0, 10.0, 10.0, 500.0, 200.0, 0.125)];
    for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
        let m = machine(fidelity, 2, 800.0, crossbar(800.0), flat_inter(), intra.clone());
        let mut net = Network::new(&m, 2).unwrap();
        for _ in 0..3 {
            net.send(0, Rank(0), Rank(1), 801);
        }
        let got: Vec<Time> = drain(&mut net).into_iter().map(|(t, _)| t).collect();
        assert_eq!(got, (0..3).map(|i| 10 + 500 * i + 100 + 200 + 10).collect::<Vec<_>>());
        // k*G above g: 8001 B -> ceil(1000.125) = 1001 apart.
        let mut net = Network::new(&m, 2).unwrap();
        for _ in 0..3 {
            net.send(0, Rank(0), Rank(1), 8001);
        }
        let got: Vec<Time> = drain(&mut net).into_iter().map(|(t, _)| t).collect();
        assert_eq!(got, (0..3).map(|i| 10 + 1001 * i + 1000 + 200 + 10).collect::<Vec<_>>());
        assert_eq!(net.active_flows(), 0);
    }
}

/// Flow-fidelity machine: crossbar of 100 Gbit/s (12.5 B/ns) node links, 800 Gbit/s NICs,
/// 4 ranks per node, the flat segment (64 B/ns cap, so links are the bottleneck).
fn flow_crossbar() -> Machine {
    machine(Fidelity::Flow, 4, 800.0, crossbar(100.0), flat_inter(), piecewise_intra())
}

/// Fixed part of a delivery on `flow_crossbar`: o_s + L + o_r.
const FIXED: Time = 100 + 1000 + 150;

#[test]
fn flows_through_one_shared_link_take_k_times_as_long() {
    // 12501 B: 12500 B of flow, 1000 ns alone at 12.5 B/ns.
    let mut net = Network::new(&flow_crossbar(), 20).unwrap();
    let id = net.send(0, Rank(4), Rank(0), 12_501);
    assert_eq!(drain(&mut net), vec![(FIXED + 1000, id)]);
    for k in [2u32, 4] {
        // Sources on nodes 1..=k, all to ranks of node 0: they share node 0's down-link.
        let mut net = Network::new(&flow_crossbar(), 20).unwrap();
        let ids: Vec<MessageId> = (0..k).map(|i| net.send(0, Rank(4 * (i + 1)), Rank(i), 12_501)).collect();
        assert_eq!(net.in_flight(), k as usize);
        let got = drain(&mut net);
        assert_eq!(got, ids.iter().map(|&id| (FIXED + 1000 * k as Time, id)).collect::<Vec<_>>(), "k = {k}");
    }
}

#[test]
fn flows_on_disjoint_links_do_not_slow_each_other() {
    let mut net = Network::new(&flow_crossbar(), 36).unwrap();
    // nodes 1..=4 send to nodes 5..=8: no link in common
    let ids: Vec<MessageId> = (1..=4).map(|i| net.send(0, Rank(4 * i), Rank(4 * (i + 4)), 12_501)).collect();
    assert_eq!(drain(&mut net), ids.iter().map(|&id| (FIXED + 1000, id)).collect::<Vec<_>>());
}

#[test]
fn rates_are_recomputed_when_flows_start_and_end() {
    let mut net = Network::new(&flow_crossbar(), 20).unwrap();
    // A starts at 100 alone; B starts at 700 on the same down-link.
    let a = net.send(0, Rank(4), Rank(0), 12_501);
    assert_eq!(net.deliver_until(600), vec![]);
    let b = net.send(600, Rank(8), Rank(1), 12_501);
    // At 700 A has 5000 B left; both at 6.25 B/ns: A ends at 1500. B has 7500 B left, alone
    // at 12.5 B/ns: ends at 2100.
    assert_eq!(drain(&mut net), vec![(1500 + 1000 + 150, a), (2100 + 1000 + 150, b)]);
}

#[test]
fn a_slower_nic_is_the_bottleneck_of_its_flows() {
    // 50 Gbit/s NICs (6.25 B/ns) under 100 Gbit/s links: one node's two flows share its NIC.
    let m = machine(Fidelity::Flow, 4, 50.0, crossbar(100.0), flat_inter(), piecewise_intra());
    let mut net = Network::new(&m, 12).unwrap();
    let a = net.send(0, Rank(0), Rank(4), 6251);
    let b = net.send(0, Rank(1), Rank(8), 6251);
    // 6250 B each at 3.125 B/ns = 2000 ns, the second flow starting 50 ns (g) later: A runs
    // alone 100..150 (312.5 B), then both share; A ends at 150 + (6250-312.5)/3.125 = 2050,
    // B has 6250 - 5937.5 = 312.5 B left at 6.25 B/ns: ends at 2100.
    assert_eq!(drain(&mut net), vec![(2050 + 1150, a), (2100 + 1150, b)]);
}

/// Every node `n` of a k = 4 fat-tree sends 12501 B to `partner(n)` at once; returns the
/// data time of each message (delivery minus o_s, L + hops, o_r).
fn fat_tree_round(oversubscription: f64, partner: impl Fn(u32) -> u32, hops: u32) -> Vec<Time> {
    let m = machine(Fidelity::Flow, 1, 800.0, fat_tree(4, oversubscription, 50.0), flat_inter(), piecewise_intra());
    let mut net = Network::new(&m, 16).unwrap();
    for n in 0..16 {
        net.send(0, Rank(n), Rank(partner(n)), 12_501);
    }
    let fixed = 100 + 1000 + 50 * (hops as Time - 1) + 150;
    drain(&mut net).into_iter().map(|(t, _)| t - fixed).collect()
}

#[test]
fn fat_tree_oversubscription_halves_cross_pod_bandwidth_only() {
    let cross_pod = |n: u32| (n + 4) % 16;
    let full = fat_tree_round(1.0, cross_pod, 5);
    let half = fat_tree_round(2.0, cross_pod, 5);
    // 16 flows, one per up-link: each at 12.5 B/ns (1:1) or 6.25 B/ns (2:1).
    assert_eq!(full, vec![1000; 16]);
    assert_eq!(half, vec![2000; 16]);
    let bytes = 16.0 * 12_500.0;
    let bandwidth = |times: &[Time]| bytes / *times.iter().max().unwrap() as f64;
    assert_eq!(bandwidth(&full) / bandwidth(&half), 2.0);
    // Pairs under one edge switch never leave it.
    let same_edge = |n: u32| n ^ 1;
    assert_eq!(fat_tree_round(1.0, same_edge, 1), vec![1000; 16]);
    assert_eq!(fat_tree_round(2.0, same_edge, 1), vec![1000; 16]);
}

fn net_on(topology: Topology, ranks: usize) -> Network {
    Network::new(&machine(Fidelity::Flow, 1, 800.0, topology, flat_inter(), piecewise_intra()), ranks).unwrap()
}

#[test]
fn torus_routes_take_the_shorter_way_round_each_dimension() {
    let net = net_on(Topology::Torus { dims: vec![4, 4, 4], link_gbps: 100.0, hop_ns: 10.0 }, 64);
    let node = |x: u32, y: u32, z: u32| x + 4 * y + 16 * z;
    let r = |links, hops| RouteInfo { links, hops };
    assert_eq!(net.route_len(node(0, 0, 0), node(0, 0, 0)), r(0, 0));
    assert_eq!(net.route_len(node(0, 0, 0), node(1, 0, 0)), r(1, 2));
    assert_eq!(net.route_len(node(0, 0, 0), node(3, 0, 0)), r(1, 2)); // wraparound
    assert_eq!(net.route_len(node(0, 0, 0), node(2, 2, 2)), r(6, 7)); // half-way in every dim
    assert_eq!(net.route_len(node(1, 0, 0), node(3, 3, 1)), r(4, 5)); // +2, -1, +1
    assert_eq!(net.route_len(node(3, 3, 3), node(0, 0, 0)), r(3, 4));
    // Every pair: hops = 1 + sum over dims of the ring distance.
    let ring = |a: u32, b: u32| {
        let d = a.abs_diff(b);
        d.min(4 - d)
    };
    for s in 0..64 {
        for d in (0..64).filter(|&d| d != s) {
            let dist = ring(s % 4, d % 4) + ring(s / 4 % 4, d / 4 % 4) + ring(s / 16, d / 16);
            assert_eq!(net.route_len(s, d), r(dist as usize, dist + 1), "{s} -> {d}");
        }
    }
    let net = net_on(Topology::Torus { dims: vec![4, 6], link_gbps: 100.0, hop_ns: 10.0 }, 24);
    assert_eq!(net.route_len(0, 3 + 4 * 5), r(2, 3));
    assert_eq!(net.route_len(0, 2 + 4 * 3), r(5, 6));
}

#[test]
fn dragonfly_routes_are_local_global_local() {
    // 5 groups of 4 routers with 2 nodes and 1 global link each: one link per group pair.
    let topology = Topology::Dragonfly {
        groups: 5,
        routers_per_group: 4,
        nodes_per_router: 2,
        global_links_per_router: 1,
        local_gbps: 100.0,
        global_gbps: 100.0,
        hop_ns: 10.0,
    };
    let net = net_on(topology, 40);
    let r = |links, hops| RouteInfo { links, hops };
    assert_eq!(net.route_len(0, 1), r(0, 1)); // same router
    assert_eq!(net.route_len(0, 2), r(1, 2)); // same group
    // Group 0 reaches group 1 through its router 0 (port 0), landing on group 1's router 3.
    assert_eq!(net.route_len(0, 14), r(1, 2)); // gateway to landing router
    assert_eq!(net.route_len(0, 8), r(2, 3)); // global, then local
    assert_eq!(net.route_len(2, 8), r(3, 4)); // local, global, local
    for s in 0..40 {
        for d in (0..40).filter(|&d| d != s) {
            let info = net.route_len(s, d);
            assert!(info.links <= 3 && info.hops == info.links as u32 + 1, "{s} -> {d}: {info:?}");
        }
    }
}

#[test]
fn fat_tree_routes_go_up_to_the_lowest_common_level() {
    let net = net_on(fat_tree(4, 1.0, 10.0), 16);
    let r = |links, hops| RouteInfo { links, hops };
    assert_eq!(net.route_len(0, 1), r(2, 1)); // same edge switch
    assert_eq!(net.route_len(0, 2), r(4, 3)); // same pod
    assert_eq!(net.route_len(0, 4), r(6, 5)); // other pod
    assert_eq!(net.route_len(15, 0), r(6, 5));
    let net = net_on(fat_tree(8, 1.0, 10.0), 128);
    assert_eq!(net.route_len(0, 3), r(2, 1));
    assert_eq!(net.route_len(0, 15), r(4, 3));
    assert_eq!(net.route_len(0, 16), r(6, 5));
    let net = net_on(crossbar(100.0), 3);
    assert_eq!(net.route_len(0, 2), r(2, 1));
}

#[test]
fn every_route_is_usable_by_flows() {
    // Flow mode over every pair of small topologies: no panic, everything delivered once.
    let topologies = vec![
        (crossbar(100.0), 6),
        (fat_tree(4, 2.0, 10.0), 16),
        (
            Topology::Dragonfly {
                groups: 3,
                routers_per_group: 2,
                nodes_per_router: 2,
                global_links_per_router: 2,
                local_gbps: 100.0,
                global_gbps: 50.0,
                hop_ns: 10.0,
            },
            12,
        ),
        (Topology::Torus { dims: vec![3, 2, 2], link_gbps: 100.0, hop_ns: 10.0 }, 12),
    ];
    for (topology, n) in topologies {
        let mut net = net_on(topology.clone(), n);
        let mut sent = 0;
        for s in 0..n as u32 {
            for d in (0..n as u32).filter(|&d| d != s) {
                net.send(0, Rank(s), Rank(d), 5000 + 100 * d as u64);
                sent += 1;
            }
        }
        let got = drain(&mut net);
        let mut ids: Vec<MessageId> = got.iter().map(|g| g.1).collect();
        ids.sort();
        assert_eq!(ids, (0..sent).collect::<Vec<_>>(), "{topology:?}");
        assert_eq!(net.active_flows(), 0);
    }
}

fn new_err(topology: Topology, ranks_per_node: u32, ranks: usize) -> String {
    let m = machine(Fidelity::Analytic, ranks_per_node, 100.0, topology, flat_inter(), piecewise_intra());
    Network::new(&m, ranks).unwrap_err()
}

#[test]
fn capacity_errors_name_the_topology_and_the_numbers() {
    assert_eq!(
        new_err(fat_tree(4, 1.0, 10.0), 1, 32),
        "topology fat-tree with k = 4 holds 16 nodes, the run needs 32 (raise topology.k or ranks_per_node)"
    );
    assert!(
        Network::new(&machine(Fidelity::Flow, 2, 100.0, fat_tree(4, 1.0, 10.0), flat_inter(), flat_inter()), 32)
            .is_ok()
    );
    let err = new_err(fat_tree(5, 1.0, 10.0), 1, 2);
    assert!(err.contains("even k") && err.contains("k = 5"), "{err}");
    let dragonfly = |global_links_per_router| Topology::Dragonfly {
        groups: 5,
        routers_per_group: 4,
        nodes_per_router: 2,
        global_links_per_router,
        local_gbps: 100.0,
        global_gbps: 100.0,
        hop_ns: 10.0,
    };
    let err = new_err(dragonfly(1), 1, 41);
    assert!(
        err.starts_with("topology dragonfly with groups = 5, routers_per_group = 4, nodes_per_router = 2 holds 40 nodes, the run needs 41"),
        "{err}"
    );
    let err = new_err(dragonfly(0), 1, 4);
    assert!(
        err.contains("needs at least 4 global links per group") && err.contains("global_links_per_router"),
        "{err}"
    );
    let torus = |dims: Vec<u32>| Topology::Torus { dims, link_gbps: 100.0, hop_ns: 10.0 };
    assert_eq!(
        new_err(torus(vec![4, 4]), 2, 33),
        "topology torus with dims = [4, 4] holds 16 nodes, the run needs 17 (raise topology.dims or ranks_per_node)"
    );
    assert!(new_err(torus(vec![4]), 1, 2).contains("2 or 3 dims"));
    assert!(new_err(crossbar(0.0), 1, 2).contains("topology.link_gbps = 0"));
    assert!(new_err(crossbar(100.0), 0, 2).contains("ranks_per_node"));
}

#[test]
fn same_time_deliveries_come_out_by_id() {
    let m = machine(Fidelity::Analytic, 1, 800.0, crossbar(800.0), flat_inter(), piecewise_intra());
    let mut net = Network::new(&m, 6).unwrap();
    assert_eq!(net.next_delivery(), None);
    let b = net.send(0, Rank(2), Rank(3), 100);
    let a = net.send(0, Rank(0), Rank(1), 100);
    let c = net.send(0, Rank(4), Rank(5), 5000);
    // Jump past all of them: one sorted list.
    let t = t_iso(&flat_inter()[0], 100, 1, 0.0);
    let t_c = t_iso(&flat_inter()[0], 5000, 1, 0.0);
    assert_eq!(net.deliver_until(1_000_000), vec![(t, b), (t, a), (t_c, c)]);
    assert!(b < a);
    assert_eq!((net.in_flight(), net.next_delivery()), (0, None));
}

/// A deterministic mixed workload: bursts of sends at increasing times, and every delivery
/// answered by a reply from its receiver (a driver-like loop). Returns all deliveries.
fn workload(fidelity: Fidelity) -> Vec<(Time, MessageId)> {
    let m = machine(fidelity, 2, 200.0, fat_tree(4, 2.0, 40.0), piecewise_inter(), piecewise_intra());
    let ranks = 32u32;
    let mut net = Network::new(&m, ranks as usize).unwrap();
    let mut who: Vec<(Rank, Rank, u64)> = Vec::new();
    let mut x: u64 = 12345;
    let mut rand = move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        x >> 33
    };
    let mut out = Vec::new();
    let mut now = 0;
    for _ in 0..200 {
        now += rand() % 3000;
        while let Some(t) = net.next_delivery().filter(|&t| t <= now) {
            for (t, id) in net.deliver_until(t) {
                out.push((t, id));
                let (src, dst, bytes) = who[id as usize];
                if id % 3 != 0 {
                    who.push((dst, src, bytes / 2 + 1));
                    net.send(t, dst, src, bytes / 2 + 1);
                }
            }
        }
        for _ in 0..rand() % 8 {
            let src = Rank(rand() as u32 % ranks);
            let dst = Rank(rand() as u32 % ranks);
            let bytes = rand() % 200_000;
            who.push((src, dst, bytes));
            net.send(now, src, dst, bytes);
        }
    }
    while let Some(t) = net.next_delivery() {
        for (t, id) in net.deliver_until(t) {
            out.push((t, id));
        }
    }
    assert_eq!(out.len(), who.len());
    assert_eq!(net.in_flight(), 0);
    out
}

#[test]
fn the_same_sends_give_the_same_deliveries() {
    for fidelity in [Fidelity::Analytic, Fidelity::Flow] {
        let first = workload(fidelity);
        assert!(first.len() > 500);
        assert_eq!(first, workload(fidelity), "{fidelity:?}");
        // Deliveries come out in time order.
        assert!(first.windows(2).all(|w| w[0] <= w[1]));
    }
}
