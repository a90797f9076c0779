//! The flow fidelity: an inter-node message's bytes (all but the first, whose time is part
//! of `L`) move as a flow over the source rank's NIC's up-link, the topology route and the
//! destination rank's NIC's down-link, sharing every link max-min fairly with the other flows
//! ([`super::maxmin`]), its own rate capped at `1/G`.
//!
//! Links get dense indices on first use, looked up in one table per kind (NIC up-links and
//! down-links by NIC, topology links by their index): a large topology costs the flow
//! model's per-link state only for the links traffic actually crosses, and 4 bytes per
//! node or topology link up to the largest one used.

use super::MessageId;
use super::maxmin::FlowNet;
use super::topology::Fabric;
use crate::queue::Time;

/// What a message needs once its flow is through.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    /// The message.
    pub id: MessageId,
    /// Receiving rank.
    pub dst: u32,
    /// Its segment (for `o_r`).
    pub seg: u32,
    /// A control message (its receiver also pays the control-message cost).
    pub control: bool,
    /// `ceil((k-1)*O)`: its bytes' CPU time at the receiver (LogGOPS; 0 without `O`).
    pub copy: u32,
    /// `ceil(L + (hops-1)*hop_ns)` of its route.
    pub latency: Time,
}

/// Flows, their links and their messages.
#[derive(Debug)]
pub(crate) struct Flows {
    net: FlowNet,
    /// Dense link index of each NIC's up-link and down-link and of each topology
    /// link ([`UNSEEN`] until traffic first crosses it).
    nic_up: Vec<u32>,
    nic_down: Vec<u32>,
    topology: Vec<u32>,
    meta: Vec<Meta>,
    route: Vec<u32>,
    nic_bytes_per_ns: f64,
}

/// A link no flow has crossed yet.
const UNSEEN: u32 = u32::MAX;

/// The dense index of link `key` in `table`, added to `net` on first use.
fn dense(table: &mut Vec<u32>, net: &mut FlowNet, key: u32, bytes_per_ns: impl FnOnce() -> f64) -> u32 {
    let k = key as usize;
    if k >= table.len() {
        table.resize(k + 1, UNSEEN);
    }
    if table[k] == UNSEEN {
        table[k] = net.add_link(bytes_per_ns());
    }
    table[k]
}

impl Flows {
    /// No flows yet; NIC links run at `nic_bytes_per_ns`.
    pub fn new(nic_bytes_per_ns: f64) -> Flows {
        Flows {
            net: FlowNet::default(),
            nic_up: Vec::new(),
            nic_down: Vec::new(),
            topology: Vec::new(),
            meta: Vec::new(),
            route: Vec::new(),
            nic_bytes_per_ns,
        }
    }

    /// Prepares the flow of a message from NIC `src_nic` to NIC `dst_nic` over
    /// `topology_links` (`bytes` > 0, rate capped at `cap`). Returns its slot; it starts
    /// with [`Self::start`].
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(
        &mut self,
        fabric: &Fabric,
        topology_links: &[u32],
        src_nic: u32,
        dst_nic: u32,
        bytes: f64,
        cap: f64,
        meta: Meta,
    ) -> u32 {
        let nic = self.nic_bytes_per_ns;
        let mut route = std::mem::take(&mut self.route);
        route.clear();
        route.push(dense(&mut self.nic_up, &mut self.net, src_nic, || nic));
        for &l in topology_links {
            route.push(dense(&mut self.topology, &mut self.net, l, || fabric.link_bytes_per_ns(l)));
        }
        route.push(dense(&mut self.nic_down, &mut self.net, dst_nic, || nic));
        let slot = self.net.insert(&route, bytes, cap);
        self.route = route;
        let s = slot as usize;
        if s == self.meta.len() {
            self.meta.push(meta);
        } else {
            self.meta[s] = meta;
        }
        slot
    }

    /// The flow in `slot` starts at `t`.
    pub fn start(&mut self, slot: u32, t: Time) {
        self.net.start(slot, t);
    }

    /// The earliest predicted flow end, `(time, slot)`.
    pub fn next_end(&self) -> Option<(Time, u32)> {
        self.net.next_end()
    }

    /// The flow in `slot` is through; returns its message.
    pub fn finish(&mut self, slot: u32) -> Meta {
        self.net.finish(slot);
        self.meta[slot as usize]
    }

    /// New rates and predicted ends after this instant's starts and ends.
    pub fn recompute(&mut self, t: Time) {
        self.net.recompute(t);
    }

    /// Flows sharing links now.
    pub fn active(&self) -> usize {
        self.net.active()
    }
}
