//! Dragonfly: `groups` groups of `routers` routers, `nodes_per_router` nodes on each router,
//! all-to-all local links inside a group, and `globals_per_router` global ports per router.
//!
//! Node `n` is on router `R = n / nodes_per_router`, in group `R / routers`, local index
//! `R % routers`. Between every pair of groups there are `m = floor(routers *
//! globals_per_router / (groups - 1))` global links (the rest of the ports stay unused).
//! Instance `i` of the link from group `g` to the group `d` ahead of it (`d` in
//! `1..groups`, wrapping) uses port `q = i*(groups-1) + d - 1` of `g`, on router `q /
//! globals_per_router`.
//!
//! Links: `[0, groups*routers^2)` local, `(g*routers + r)*routers + r2` from router `r` to
//! `r2` of group `g`; then global, `groups*routers^2 + g*routers*globals + q` out of port
//! `q` of group `g`. Routing is minimal, local-global-local, the global link instance chosen
//! as `(src + dst) mod m`. Hops (routers traversed): same router 1, same group 2, other
//! group 2 to 4.

use super::{bytes_per_ns, check_links, hop_latency};

/// The sizes of a dragonfly.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// Number of groups.
    pub groups: u32,
    /// Routers per group.
    pub routers: u32,
    /// Nodes per router.
    pub nodes_per_router: u32,
    /// Global ports per router.
    pub globals_per_router: u32,
}

/// A dragonfly with minimal routing.
#[derive(Clone, Debug)]
pub(crate) struct Dragonfly {
    s: Shape,
    nodes: u32,
    per_pair: u32,
    global_base: u32,
    local: f64,
    global: f64,
    hop_ns: f64,
}

impl Dragonfly {
    /// A dragonfly of shape `s`, or why it cannot hold `nodes` nodes or route between groups.
    pub fn new(s: Shape, local_gbps: f64, global_gbps: f64, hop_ns: f64, nodes: u64) -> Result<Dragonfly, String> {
        let local = bytes_per_ns("topology.local_gbps", local_gbps)?;
        let global = bytes_per_ns("topology.global_gbps", global_gbps)?;
        let hop_ns = hop_latency("topology.hop_ns", hop_ns)?;
        let holds = u64::from(s.groups) * u64::from(s.routers) * u64::from(s.nodes_per_router);
        if holds < nodes {
            return Err(format!(
                "topology dragonfly with groups = {}, routers_per_group = {}, nodes_per_router = {} holds {holds} nodes, \
                 the run needs {nodes} (raise topology.groups, topology.routers_per_group or topology.nodes_per_router, \
                 or ranks_per_node)",
                s.groups, s.routers, s.nodes_per_router
            ));
        }
        let ports = u64::from(s.routers) * u64::from(s.globals_per_router);
        let per_pair = if s.groups > 1 { ports / u64::from(s.groups - 1) } else { 1 };
        if per_pair == 0 {
            return Err(format!(
                "topology dragonfly with groups = {} needs at least {} global links per group to reach every other group, \
                 it has routers_per_group * global_links_per_router = {ports} (raise topology.global_links_per_router)",
                s.groups,
                s.groups - 1
            ));
        }
        let local_links = u64::from(s.groups) * u64::from(s.routers) * u64::from(s.routers);
        check_links("dragonfly", local_links + u64::from(s.groups) * ports)?;
        Ok(Dragonfly {
            s,
            nodes: holds as u32,
            per_pair: per_pair as u32,
            global_base: local_links as u32,
            local,
            global,
            hop_ns,
        })
    }

    /// `groups * routers_per_group * nodes_per_router`.
    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    /// Latency per router hop.
    pub fn hop_ns(&self) -> f64 {
        self.hop_ns
    }

    fn local_link(&self, group: u32, from: u32, to: u32) -> u32 {
        (group * self.s.routers + from) * self.s.routers + to
    }

    /// Minimal route: local hop to the gateway router, global link, local hop to the
    /// destination router (either local hop left out when not needed).
    pub fn route(&self, src: u32, dst: u32, links: &mut Vec<u32>) -> u32 {
        let s = &self.s;
        let (src_router, dst_router) = (src / s.nodes_per_router, dst / s.nodes_per_router);
        let (sg, sr) = (src_router / s.routers, src_router % s.routers);
        let (dg, dr) = (dst_router / s.routers, dst_router % s.routers);
        if src_router == dst_router {
            return 1;
        }
        if sg == dg {
            links.push(self.local_link(sg, sr, dr));
            return 2;
        }
        let i = ((u64::from(src) + u64::from(dst)) % u64::from(self.per_pair)) as u32;
        let ahead = (dg + s.groups - sg) % s.groups;
        let out_port = i * (s.groups - 1) + ahead - 1;
        let in_port = i * (s.groups - 1) + (s.groups - ahead) - 1;
        let (gateway, landing) = (out_port / s.globals_per_router, in_port / s.globals_per_router);
        if sr != gateway {
            links.push(self.local_link(sg, sr, gateway));
        }
        links.push(self.global_base + sg * s.routers * s.globals_per_router + out_port);
        if landing != dr {
            links.push(self.local_link(dg, landing, dr));
        }
        links.len() as u32 + 1
    }

    /// Local or global bandwidth by the link's range.
    pub fn link_bytes_per_ns(&self, link: u32) -> f64 {
        if link < self.global_base { self.local } else { self.global }
    }
}
