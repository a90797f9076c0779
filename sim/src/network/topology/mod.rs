//! Topologies as link graphs with arithmetic routing: every directional link has a `u32`
//! index computed from the switch/router coordinates, and a route is the list of link
//! indices a node pair's traffic crosses, plus the number of switches (routers) traversed.
//! Nothing is searched and nothing is random: the same pair always takes the same path.
//!
//! The node-side NIC links are not part of a topology (the network adds them in the flow
//! fidelity). Node-to-switch cables are links here when the topology gives them a
//! bandwidth (crossbar, fat-tree); in the dragonfly and the torus a node's NIC is its link
//! to its router.

mod crossbar;
mod dragonfly;
mod fattree;
mod torus;

use crate::machine::Topology;
use crossbar::Crossbar;
use dragonfly::Dragonfly;
use fattree::FatTree;
use torus::Torus;

/// One of the four topologies, ready to route.
#[derive(Clone, Debug)]
pub(crate) enum Fabric {
    /// One switch.
    Crossbar(Crossbar),
    /// Three-level k-ary fat-tree.
    FatTree(FatTree),
    /// Dragonfly with minimal routing.
    Dragonfly(Dragonfly),
    /// 2D/3D torus with dimension-order routing.
    Torus(Torus),
}

impl Fabric {
    /// Builds `topology`, or explains why it cannot hold `nodes` nodes.
    pub fn build(topology: &Topology, nodes: u64) -> Result<Fabric, String> {
        Ok(match topology {
            Topology::Crossbar { link_gbps } => Fabric::Crossbar(Crossbar::new(*link_gbps, nodes)?),
            Topology::FatTree { k, oversubscription, link_gbps, hop_ns } => {
                Fabric::FatTree(FatTree::new(*k, *oversubscription, *link_gbps, *hop_ns, nodes)?)
            }
            Topology::Dragonfly {
                groups,
                routers_per_group,
                nodes_per_router,
                global_links_per_router,
                local_gbps,
                global_gbps,
                hop_ns,
            } => Fabric::Dragonfly(Dragonfly::new(
                dragonfly::Shape {
                    groups: *groups,
                    routers: *routers_per_group,
                    nodes_per_router: *nodes_per_router,
                    globals_per_router: *global_links_per_router,
                },
                *local_gbps,
                *global_gbps,
                *hop_ns,
                nodes,
            )?),
            Topology::Torus { dims, link_gbps, hop_ns } => Fabric::Torus(Torus::new(dims, *link_gbps, *hop_ns, nodes)?),
        })
    }

    /// Nodes the topology holds.
    pub fn nodes(&self) -> u32 {
        match self {
            Fabric::Crossbar(t) => t.nodes(),
            Fabric::FatTree(t) => t.nodes(),
            Fabric::Dragonfly(t) => t.nodes(),
            Fabric::Torus(t) => t.nodes(),
        }
    }

    /// Latency added per switch hop beyond the first, ns.
    pub fn hop_ns(&self) -> f64 {
        match self {
            Fabric::Crossbar(_) => 0.0,
            Fabric::FatTree(t) => t.hop_ns(),
            Fabric::Dragonfly(t) => t.hop_ns(),
            Fabric::Torus(t) => t.hop_ns(),
        }
    }

    /// Replaces `links` by the route from node `src` to node `dst` (distinct, both below
    /// [`Self::nodes`]) and returns the number of switches traversed.
    pub fn route(&self, src: u32, dst: u32, links: &mut Vec<u32>) -> u32 {
        debug_assert!(src != dst && src < self.nodes() && dst < self.nodes());
        links.clear();
        match self {
            Fabric::Crossbar(t) => t.route(src, dst, links),
            Fabric::FatTree(t) => t.route(src, dst, links),
            Fabric::Dragonfly(t) => t.route(src, dst, links),
            Fabric::Torus(t) => t.route(src, dst, links),
        }
    }

    /// Capacity of a link, bytes per ns.
    pub fn link_bytes_per_ns(&self, link: u32) -> f64 {
        match self {
            Fabric::Crossbar(t) => t.link_bytes_per_ns(link),
            Fabric::FatTree(t) => t.link_bytes_per_ns(link),
            Fabric::Dragonfly(t) => t.link_bytes_per_ns(link),
            Fabric::Torus(t) => t.link_bytes_per_ns(link),
        }
    }
}

/// Bytes per ns of `gbps` Gbit/s, or an error naming `key` if it is not a positive number.
pub(crate) fn bytes_per_ns(key: &str, gbps: f64) -> Result<f64, String> {
    if gbps.is_finite() && gbps > 0.0 {
        Ok(gbps / 8.0)
    } else {
        Err(format!("{key} = {gbps}: must be a positive number of Gbit/s"))
    }
}

/// `hop_ns`, or an error if it is negative or not finite.
pub(crate) fn hop_latency(key: &str, ns: f64) -> Result<f64, String> {
    if ns.is_finite() && ns >= 0.0 { Ok(ns) } else { Err(format!("{key} = {ns}: must be a finite number of ns >= 0")) }
}

/// Refuses topologies whose link indices would not fit a `u32`.
pub(crate) fn check_links(kind: &str, links: u64) -> Result<(), String> {
    if links <= u64::from(u32::MAX) {
        Ok(())
    } else {
        Err(format!("topology {kind} has {links} links, more than the simulator indexes (4294967295): make it smaller"))
    }
}
