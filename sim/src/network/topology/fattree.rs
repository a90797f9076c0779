//! Three-level k-ary fat-tree (h = k/2): k pods of h edge and h aggregation switches, h^2
//! core switches, h nodes per edge switch, k^3/4 nodes. Node `n` is in pod `n / h^2` under
//! edge switch `n / h` (a global edge index, `pod * h + edge`).
//!
//! Links (N = k^3/4, and each class below has exactly N links):
//! `[0, N)` node to edge, `[N, 2N)` edge to node, `[2N, 3N)` edge `e` to aggregation `a` of
//! its pod (`2N + e*h + a`), `[3N, 4N)` aggregation `A` to edge `e` of its pod
//! (`3N + A*h + e`), `[4N, 5N)` aggregation `A` to its core `j` (`4N + A*h + j`),
//! `[5N, 6N)` core `c` to the aggregation of pod `p` (`5N + c*k + p`). Core `c = a*h + j`
//! connects to aggregation `a` of every pod. Node links have `link_gbps`; the rest
//! `link_gbps / oversubscription`.
//!
//! Routing is destination-based ("D-mod-k", what InfiniBand's ftree routing does): going up,
//! the edge switch takes aggregation `dst mod h` and the aggregation switch takes core
//! `(dst / h) mod h`. Distinct destinations under one switch therefore use distinct
//! up-links, and the down path to a node is always the same. Hops: same edge switch 1,
//! same pod 3, other pod 5.

use super::{bytes_per_ns, check_links, hop_latency};

/// A k-ary fat-tree.
#[derive(Clone, Debug)]
pub(crate) struct FatTree {
    k: u32,
    h: u32,
    n: u32,
    node_link: f64,
    trunk_link: f64,
    hop_ns: f64,
}

impl FatTree {
    /// A fat-tree of radix `k`, or why it cannot hold `nodes` nodes.
    pub fn new(k: u32, oversubscription: f64, link_gbps: f64, hop_ns: f64, nodes: u64) -> Result<FatTree, String> {
        if k < 2 || k & 1 == 1 {
            return Err(format!("topology fat-tree needs an even k >= 2, got k = {k}"));
        }
        if !(oversubscription.is_finite() && oversubscription > 0.0) {
            return Err(format!(
                "topology.oversubscription = {oversubscription}: must be a positive ratio (1 = full bisection, 2 = 2:1)"
            ));
        }
        let node_link = bytes_per_ns("topology.link_gbps", link_gbps)?;
        let hop_ns = hop_latency("topology.hop_ns", hop_ns)?;
        let holds = u64::from(k).pow(3) / 4;
        if holds < nodes {
            return Err(format!(
                "topology fat-tree with k = {k} holds {holds} nodes, the run needs {nodes} (raise topology.k or ranks_per_node)"
            ));
        }
        check_links("fat-tree", 6 * holds)?;
        Ok(FatTree { k, h: k / 2, n: holds as u32, node_link, trunk_link: node_link / oversubscription, hop_ns })
    }

    /// `k^3 / 4`.
    pub fn nodes(&self) -> u32 {
        self.n
    }

    /// Latency per switch hop.
    pub fn hop_ns(&self) -> f64 {
        self.hop_ns
    }

    /// Up to the lowest common level and down again (see the module docs).
    pub fn route(&self, src: u32, dst: u32, links: &mut Vec<u32>) -> u32 {
        let (h, n) = (self.h, self.n);
        let per_pod = h * h;
        let (src_pod, src_edge) = (src / per_pod, src / h);
        let (dst_pod, dst_edge) = (dst / per_pod, dst / h);
        links.push(src);
        if src_edge == dst_edge {
            links.push(n + dst);
            return 1;
        }
        let a = dst % h;
        links.push(2 * n + src_edge * h + a);
        if src_pod == dst_pod {
            links.push(3 * n + (src_pod * h + a) * h + dst_edge % h);
            links.push(n + dst);
            return 3;
        }
        let j = (dst / h) % h;
        links.push(4 * n + (src_pod * h + a) * h + j);
        links.push(5 * n + (a * h + j) * self.k + dst_pod);
        links.push(3 * n + (dst_pod * h + a) * h + dst_edge % h);
        links.push(n + dst);
        5
    }

    /// Node links at full bandwidth, switch-to-switch links oversubscribed.
    pub fn link_bytes_per_ns(&self, link: u32) -> f64 {
        if link < 2 * self.n { self.node_link } else { self.trunk_link }
    }
}
