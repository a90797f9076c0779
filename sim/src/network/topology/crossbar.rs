//! Crossbar: every node has an up and a down link to one non-blocking switch.
//! Links: `node` (node to switch) and `nodes + node` (switch to node). Every route crosses
//! one switch.

use super::{bytes_per_ns, check_links};

/// A one-switch network sized for the run (it holds any number of nodes).
#[derive(Clone, Debug)]
pub(crate) struct Crossbar {
    nodes: u32,
    bytes_per_ns: f64,
}

impl Crossbar {
    /// A crossbar of `nodes` nodes with `link_gbps` node links.
    pub fn new(link_gbps: f64, nodes: u64) -> Result<Crossbar, String> {
        let bytes_per_ns = bytes_per_ns("topology.link_gbps", link_gbps)?;
        check_links("crossbar", 2 * nodes)?;
        Ok(Crossbar { nodes: nodes.max(1) as u32, bytes_per_ns })
    }

    /// Nodes attached.
    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    /// Up-link of `src`, down-link of `dst`; one switch.
    pub fn route(&self, src: u32, dst: u32, links: &mut Vec<u32>) -> u32 {
        links.push(src);
        links.push(self.nodes + dst);
        1
    }

    /// All links have the node-link bandwidth.
    pub fn link_bytes_per_ns(&self, _link: u32) -> f64 {
        self.bytes_per_ns
    }
}
