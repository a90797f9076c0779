//! The machine presets: the TOML files in `machines/`, embedded in the binary so a
//! preset name works from any directory.

/// Every preset, name → TOML text (the file `machines/NAME.toml`). Each file's `name`
/// equals its preset name, and each parses and validates (tested).
///
/// ```
/// use dagwire_sim::machine::PRESETS;
/// assert!(PRESETS.iter().any(|(name, text)| *name == "shm-node" && text.contains("kind = \"crossbar\"")));
/// ```
pub const PRESETS: &[(&str, &str)] = &[
    ("shm-node", include_str!("../../../machines/shm-node.toml")),
    ("eth-100g", include_str!("../../../machines/eth-100g.toml")),
    ("ib-hdr-fattree", include_str!("../../../machines/ib-hdr-fattree.toml")),
    ("slingshot-11-dragonfly", include_str!("../../../machines/slingshot-11-dragonfly.toml")),
    ("aurora", include_str!("../../../machines/aurora.toml")),
    ("aws-efa", include_str!("../../../machines/aws-efa.toml")),
    ("dgx-h100", include_str!("../../../machines/dgx-h100.toml")),
    ("pcie-4gpu", include_str!("../../../machines/pcie-4gpu.toml")),
    ("aurora-gpu", include_str!("../../../machines/aurora-gpu.toml")),
];

/// The preset names, in listing order.
///
/// ```
/// use dagwire_sim::machine::preset_names;
/// assert_eq!(
///     preset_names(),
///     [
///         "shm-node",
///         "eth-100g",
///         "ib-hdr-fattree",
///         "slingshot-11-dragonfly",
///         "aurora",
///         "aws-efa",
///         "dgx-h100",
///         "pcie-4gpu",
///         "aurora-gpu"
///     ]
/// );
/// ```
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(name, _)| *name).collect()
}

/// The TOML text of preset `name`, if there is one (a starting point for a custom
/// machine file: copy it and edit).
///
/// ```
/// use dagwire_sim::machine::preset_text;
/// assert!(preset_text("eth-100g").unwrap().contains("name = \"eth-100g\""));
/// assert!(preset_text("nope").is_none());
/// ```
pub fn preset_text(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}
