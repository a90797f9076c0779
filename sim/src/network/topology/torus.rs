//! 2D/3D torus, one node per router. Node `n` sits at `x = n mod d0`, `y = (n / d0) mod
//! d1`, `z = n / (d0*d1)`. Each router has a `+` and a `-` link per dimension (wrapping
//! around): link `(n*dims + dim)*2 + dir`, `dir` 0 for `+`, 1 for `-`.
//!
//! Dimension-order routing: x first, then y, then z; in each dimension the shorter way
//! round, `+` on a tie (half-way round an even ring). Hops = routers traversed = links + 1.

use super::{bytes_per_ns, check_links, hop_latency};

/// A torus.
#[derive(Clone, Debug)]
pub(crate) struct Torus {
    dims: Vec<u32>,
    nodes: u32,
    bytes_per_ns: f64,
    hop_ns: f64,
}

impl Torus {
    /// A torus of `dims`, or why it cannot hold `nodes` nodes.
    pub fn new(dims: &[u32], link_gbps: f64, hop_ns: f64, nodes: u64) -> Result<Torus, String> {
        if !(2..=3).contains(&dims.len()) || dims.contains(&0) {
            return Err(format!("topology torus needs 2 or 3 dims, each at least 1, got dims = {dims:?}"));
        }
        let bytes_per_ns = bytes_per_ns("topology.link_gbps", link_gbps)?;
        let hop_ns = hop_latency("topology.hop_ns", hop_ns)?;
        let holds = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d))).unwrap_or(u64::MAX);
        if holds < nodes {
            return Err(format!(
                "topology torus with dims = {dims:?} holds {holds} nodes, the run needs {nodes} \
                 (raise topology.dims or ranks_per_node)"
            ));
        }
        check_links("torus", holds.saturating_mul(2 * dims.len() as u64))?;
        Ok(Torus { dims: dims.to_vec(), nodes: holds as u32, bytes_per_ns, hop_ns })
    }

    /// Product of the dims.
    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    /// Latency per router hop.
    pub fn hop_ns(&self) -> f64 {
        self.hop_ns
    }

    /// Dimension-order route (see the module docs).
    pub fn route(&self, src: u32, dst: u32, links: &mut Vec<u32>) -> u32 {
        let nd = self.dims.len() as u32;
        let mut cur = src;
        let mut stride = 1;
        for (dim, &size) in self.dims.iter().enumerate() {
            let from = (cur / stride) % size;
            let to = (dst / stride) % size;
            let ahead = (to + size - from) % size;
            let (dir, steps) = if ahead <= size - ahead { (0, ahead) } else { (1, size - ahead) };
            for _ in 0..steps {
                links.push((cur * nd + dim as u32) * 2 + dir);
                let pos = (cur / stride) % size;
                let next = if dir == 0 { (pos + 1) % size } else { (pos + size - 1) % size };
                cur = cur - pos * stride + next * stride;
            }
            stride *= size;
        }
        debug_assert_eq!(cur, dst);
        links.len() as u32 + 1
    }

    /// Every link has `link_gbps`.
    pub fn link_bytes_per_ns(&self, _link: u32) -> f64 {
        self.bytes_per_ns
    }
}
