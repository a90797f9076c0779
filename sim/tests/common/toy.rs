//! The toy machine the simulator's closed-form tests compute against: one node-local
//! crossbar, one LogGP segment (o_s 100 ns, L 1000 ns, o_r 200 ns, G 0.5 ns/byte, g 0)
//! and 1e6 Gbit/s links.

use dagwire_sim::machine::{LogGpSegment, Machine};

/// The toy machine with `ranks_per_node` ranks per node.
pub fn toy_machine(ranks_per_node: u32) -> Machine {
    let seg = LogGpSegment {
        from_bytes: 0,
        o_s_ns: 100.0,
        o_r_ns: 200.0,
        g_ns: 0.0,
        l_ns: 1000.0,
        g_per_byte_ns: 0.5,
        o_per_byte_ns: None,
    };
    Machine::crossbar("toy", seg, ranks_per_node, 1e6)
}
