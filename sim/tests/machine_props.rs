//! Property tests of machine files: whatever a file holds, reading it never panics; a
//! rejected file is an error naming the key (or, for broken TOML, the line); an
//! accepted one builds a network that carries messages without overflowing.
//!
//! CI runs a bounded number of cases; for a longer run, raise them:
//! `PROPTEST_CASES=100000 cargo test -p dagwire-sim --test machine_props --release`.

use dagwire_runtime::Rank;
use dagwire_sim::machine::{parse_machine, preset_names, preset_text};
use dagwire_sim::network::Network;
use proptest::prelude::*;

#[path = "common/file_edits.rs"]
mod file_edits;
use file_edits::{apply, config, edit};

/// Values a hand-edited (or hostile) file may put in place of any value.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1e308".to_string()),
        Just("-1e308".to_string()),
        Just("1e-320".to_string()),
        Just("1e20".to_string()),
        Just("1e18".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("18446744073709551615".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("4294967295".to_string()),
        Just("\"\"".to_string()),
        Just("\"x\"".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("[4294967295, 4294967295, 4294967295]".to_string()),
        Just("{}".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:e}")),
        (0u32..70_000).prop_map(|v| v.to_string()),
    ]
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn any_edit_of_a_preset_is_read_without_panic_and_refused_by_key(
        preset in 0..preset_names().len(),
        edits in proptest::collection::vec(edit(value(), "[a-z_]{1,12} = [0-9a-z\"\\[\\]., -]{0,16}"), 1..4),
    ) {
        let name = preset_names()[preset];
        let text = apply(preset_text(name).unwrap(), &edits);
        match parse_machine("machines/edited.toml", &text) {
            Err(e) => {
                prop_assert!(e.file == "machines/edited.toml", "{e}");
                prop_assert!(!e.key.is_empty() || e.line.is_some() || e.reason.contains("TOML"), "names nothing: {e}");
                prop_assert!(!e.reason.is_empty());
            }
            Ok(machine) => {
                // Accepted: it must carry messages of any size without overflow.
                let capacity = machine.node_capacity().unwrap_or(4).clamp(1, 4) as usize;
                let ranks = (capacity * machine.ranks_per_node.min(2) as usize).clamp(2, 8);
                if let Ok(mut network) = Network::new(&machine, ranks) {
                    let last = Rank((ranks - 1) as u32);
                    for bytes in [0u64, 1, 1 << 20, 1 << 30] {
                        network.send(0, Rank(0), last, bytes);
                    }
                    let mut delivered = 0;
                    while let Some(t) = network.next_delivery() {
                        delivered += network.deliver_until(t).len();
                    }
                    prop_assert_eq!(delivered, 4);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_are_refused_without_panic(text in "\\PC{0,400}") {
        if let Err(e) = parse_machine("m.toml", &text) {
            prop_assert!(!e.reason.is_empty());
        }
    }
}
