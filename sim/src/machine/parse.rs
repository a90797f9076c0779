//! Reading machine files: TOML parsing with file/line/key errors, then semantic
//! validation (units, ranges, topology shapes) before any simulation runs.

use super::{Accelerators, LogGp, Machine, NicSwitch, Topology};
use dagwire_runtime::params::did_you_mean;
use std::fmt;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A machine file that cannot be used, located as precisely as possible.
///
/// Displays as `FILE:LINE: key `KEY`: REASON` (the line and key are left out when unknown):
///
/// ```
/// use dagwire_sim::machine::MachineError;
/// let e = MachineError {
///     file: "machines/x.toml".into(),
///     line: Some(12),
///     key: "topology.k".into(),
///     reason: "must be an even number >= 2, got 5".into(),
/// };
/// assert_eq!(e.to_string(), "machines/x.toml:12: key `topology.k`: must be an even number >= 2, got 5");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineError {
    /// The file's path as given, or `preset NAME` for an embedded preset.
    pub file: String,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// Dotted key path (`inter_node.segments[1].l_ns`, `topology.k`); empty when the
    /// error concerns the whole file (unreadable, not TOML, unknown preset).
    pub key: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl fmt::Display for MachineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", self.key)?;
        }
        write!(f, "{}", self.reason)
    }
}

impl std::error::Error for MachineError {}

/// Loads a machine: `spec` is a preset name (see [`preset_names`](super::preset_names)),
/// the path of a TOML file, or the path of a SimGrid platform file ending in `.xml`
/// (see [`super::simgrid`]). Presets win over files of the same name; anything that
/// is neither gets an error listing the presets, with a did-you-mean.
///
/// ```
/// use dagwire_sim::machine::load_machine;
/// let m = load_machine("ib-hdr-fattree").unwrap();
/// assert_eq!(m.name, "ib-hdr-fattree");
/// let err = load_machine("ib-hdr-fatree").unwrap_err();
/// assert!(err.to_string().contains("did you mean `ib-hdr-fattree`?"), "{err}");
/// ```
pub fn load_machine(spec: &str) -> Result<Machine, MachineError> {
    match source(spec)? {
        Source::Toml { origin, text } => parse_machine(&origin, &text),
        Source::SimGrid { text } => super::simgrid::parse_simgrid(spec, &text),
    }
}

/// A machine's text, as [`load_machine`] finds it.
enum Source {
    /// A TOML machine file or preset; `origin` names it in errors.
    Toml { origin: String, text: std::borrow::Cow<'static, str> },
    /// A SimGrid platform file.
    SimGrid { text: String },
}

/// Finds the text of machine `spec` (see [`load_machine`]).
fn source(spec: &str) -> Result<Source, MachineError> {
    if let Some(text) = super::presets::preset_text(spec) {
        return Ok(Source::Toml { origin: format!("preset {spec}"), text: text.into() });
    }
    let path = std::path::Path::new(spec);
    let is_xml = spec.ends_with(".xml");
    let looks_like_path = spec.contains('/') || spec.contains('\\') || spec.ends_with(".toml") || is_xml;
    if looks_like_path || path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| MachineError {
            file: spec.to_string(),
            line: None,
            key: String::new(),
            reason: format!(
                "cannot read the machine file: {e} (`experiment calibrate --out FILE` measures this host into one; \
                 `experiment list machines` lists the presets)"
            ),
        })?;
        return Ok(if is_xml {
            Source::SimGrid { text }
        } else {
            Source::Toml { origin: spec.into(), text: text.into() }
        });
    }
    let names = super::presets::preset_names();
    let hint = did_you_mean(spec, names.iter().copied()).map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default();
    Err(MachineError {
        file: format!("preset {spec}"),
        line: None,
        key: String::new(),
        reason: format!(
            "no such machine preset{hint} and no such file; presets: {}; or give the path of a TOML file \
             (e.g. machines/{}.toml)",
            names.join(", "),
            names.first().copied().unwrap_or("NAME"),
        ),
    })
}

/// The tables of a machine file keyed by kernel kind (rates, rate curves, costs per byte).
pub const KERNEL_TABLES: [[&str; 2]; 4] = [
    ["compute", "kernel_gflops"],
    ["compute", "kernel_curves"],
    ["compute", "kernel_ns_per_byte"],
    ["accelerators", "kernel_gflops"],
];

/// Refuses a kernel kind in machine `spec`'s [`KERNEL_TABLES`] that is not in `known`: a
/// kind no kernel has (a typo, `gemn = 50.0`) would leave the kernels it was meant for at
/// `default_gflops` without a word. The error names the file, the line and the key, lists
/// `known`, and suggests the closest. Which kinds are known is the caller's: the
/// simulator does not know the workloads (`experiment` passes every registered
/// workload's). A SimGrid platform file keys no kernel kinds; `spec` is found as
/// [`load_machine`] finds it.
///
/// ```
/// use dagwire_sim::machine::check_kernel_kinds;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("m.toml");
/// let text = dagwire_sim::machine::preset_text("shm-node").unwrap().replacen("gemm = ", "gemn = ", 1);
/// std::fs::write(&path, &text).unwrap();
/// let known = ["gemm", "potrf", "syrk", "trsm", "moe-ffn"];
/// let err = check_kernel_kinds(path.to_str().unwrap(), &known).unwrap_err();
/// assert_eq!(err.key, "compute.kernel_gflops.gemn");
/// assert!(err.reason.contains("did you mean `gemm`?"), "{err}");
/// assert!(check_kernel_kinds("shm-node", &known).is_ok());
/// ```
pub fn check_kernel_kinds(spec: &str, known: &[&str]) -> Result<(), MachineError> {
    let Source::Toml { origin, text } = source(spec)? else { return Ok(()) };
    let tree = DeTable::parse(&text).map_err(|e| syntax_error(&origin, &text, &e))?;
    let root = tree.get_ref();
    for [section, table] in KERNEL_TABLES {
        let Some(DeValue::Table(kinds)) = node_at(root, &[key(section), key(table)]) else { continue };
        for (kind, _) in kinds.iter() {
            let name: &str = kind.get_ref();
            if known.contains(&name) {
                continue;
            }
            let hint = did_you_mean(name, known.iter().copied())
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            return Err(MachineError {
                file: origin.clone(),
                line: Some(line_at(&text, kind.span().start)),
                key: render_path(&[key(section), key(table), key(name)]),
                reason: format!(
                    "unknown kernel kind{hint}: no workload runs a kernel of this kind, so this entry would never \
                     be used and the kernels it was meant for would run at default_gflops; kinds the workloads \
                     run: {}",
                    known.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// Parses and validates machine `text`; `origin` names it in errors (a path, or
/// `preset NAME`).
///
/// ```
/// use dagwire_sim::machine::{parse_machine, preset_text};
/// let text = preset_text("shm-node").unwrap();
/// let bad = text.replacen("ranks_per_node = 64", "ranks_per_node = 0", 1);
/// let err = parse_machine("my.toml", &bad).unwrap_err();
/// assert_eq!(err.key, "ranks_per_node");
/// assert!(err.line.is_some());
/// ```
pub fn parse_machine(origin: &str, text: &str) -> Result<Machine, MachineError> {
    let tree = DeTable::parse(text).map_err(|e| syntax_error(origin, text, &e))?;
    let tree = tree.get_ref();
    let machine: Machine = toml::from_str(text).map_err(|e| serde_error(origin, text, tree, &e))?;
    validate(&machine).map_err(|(path, reason)| {
        let line = span_of_path(tree, &path).map(|s| line_at(text, s.start));
        MachineError { file: origin.to_string(), line, key: render_path(&path), reason }
    })?;
    Ok(machine)
}

/// Checks the meaning of an already-built machine (ranges, units, topology shapes):
/// what [`parse_machine`] runs after parsing, for machines changed in code (what-ifs).
/// Errors carry no line.
///
/// ```
/// use dagwire_sim::machine::{load_machine, validate_machine};
/// let mut m = load_machine("eth-100g").unwrap();
/// m.inter_node.segments[0].l_ns = -1.0;
/// let err = validate_machine("eth-100g (modified)", &m).unwrap_err();
/// assert_eq!(err.key, "inter_node.segments[0].l_ns");
/// ```
pub fn validate_machine(origin: &str, machine: &Machine) -> Result<(), MachineError> {
    validate(machine).map_err(|(path, reason)| MachineError {
        file: origin.to_string(),
        line: None,
        key: render_path(&path),
        reason,
    })
}

// ---------------------------------------------------------------------------------
// Key paths

/// One step of a key path.
#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

type Path = Vec<Seg>;

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The span of the deepest node on `path` that exists in the document: the key's value
/// (a table header for `[table]`s), falling back to the nearest existing ancestor.
fn span_of_path(root: &DeTable<'_>, path: &[Seg]) -> Option<Range<usize>> {
    let mut best: Option<Range<usize>> = None;
    let mut node: Option<&DeValue<'_>> = None;
    for seg in path {
        let next: Option<&Spanned<DeValue<'_>>> = match (seg, node) {
            (Seg::Key(k), None) => root.get(k.as_str()),
            (Seg::Key(k), Some(DeValue::Table(t))) => t.get(k.as_str()),
            (Seg::Index(i), Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        best = Some(next.span());
        node = Some(next.get_ref());
    }
    best
}

/// The node whose span (key or value) best contains `target`: the smallest, and the
/// deepest among equals. Returns its path, span, and whether the key (not the value) matched.
fn locate(root: &DeTable<'_>, target: &Range<usize>) -> Option<(Path, Range<usize>, bool)> {
    fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
        outer.start <= inner.start && inner.end <= outer.end && (inner.is_empty() || !outer.is_empty())
    }
    fn consider(best: &mut Option<(Path, Range<usize>, bool)>, path: &Path, span: Range<usize>, is_key: bool) {
        if best.as_ref().is_some_and(|(_, b, _)| span.len() > b.len()) {
            return;
        }
        *best = Some((path.clone(), span, is_key));
    }
    fn walk_value(
        value: &Spanned<DeValue<'_>>,
        path: &mut Path,
        target: &Range<usize>,
        best: &mut Option<(Path, Range<usize>, bool)>,
    ) {
        if contains(&value.span(), target) {
            consider(best, path, value.span(), false);
        }
        match value.get_ref() {
            DeValue::Table(t) => walk_table(t, path, target, best),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk_value(item, path, target, best);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    fn walk_table(
        table: &DeTable<'_>,
        path: &mut Path,
        target: &Range<usize>,
        best: &mut Option<(Path, Range<usize>, bool)>,
    ) {
        for (k, v) in table.iter() {
            path.push(key(k.get_ref()));
            if contains(&k.span(), target) {
                consider(best, path, k.span(), true);
            }
            walk_value(v, path, target, best);
            path.pop();
        }
    }
    let mut best = None;
    walk_table(root, &mut Vec::new(), target, &mut best);
    best
}

/// The node at `path`, if present.
fn node_at<'a, 'i>(root: &'a DeTable<'i>, path: &[Seg]) -> Option<&'a DeValue<'i>> {
    let mut node: Option<&'a DeValue<'i>> = None;
    for seg in path {
        let next = match (seg, node) {
            (Seg::Key(k), None) => root.get(k.as_str()),
            (Seg::Key(k), Some(DeValue::Table(t))) => t.get(k.as_str()),
            (Seg::Index(i), Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        }?;
        node = Some(next.get_ref());
    }
    node
}

// ---------------------------------------------------------------------------------
// Parse errors

fn syntax_error(origin: &str, text: &str, e: &toml::de::Error) -> MachineError {
    let span = e.span();
    let message = e.message().trim();
    // A repeated key is the one syntax-level error that names a key: its span covers it.
    let key = match &span {
        Some(s) if message.starts_with("duplicate key") => text.get(s.clone()).unwrap_or("").trim().to_string(),
        _ => String::new(),
    };
    let reason = if key.is_empty() {
        format!("not valid TOML: {message}")
    } else {
        "is defined twice (each key may appear once per table)".to_string()
    };
    MachineError { file: origin.to_string(), line: span.map(|s| line_at(text, s.start)), key, reason }
}

/// Maps a serde error (unknown key, wrong type, missing key, unknown variant) to a
/// file/line/key error, using the error's span to find the key in the document and
/// the message to name fields serde reports only by name.
fn serde_error(origin: &str, text: &str, root: &DeTable<'_>, e: &toml::de::Error) -> MachineError {
    let message = e.message().trim().to_string();
    // An empty span at the very start stands for the whole document (a missing top-level key).
    let located = e.span().filter(|s| !(s.is_empty() && s.start == 0)).and_then(|s| locate(root, &s));
    let (mut path, mut span) = match &located {
        Some((p, s, _)) => (p.clone(), Some(s.clone())),
        None => (Vec::new(), None),
    };
    let reason;
    if let Some(field) = backticked_after(&message, "unknown field ") {
        if path.last() != Some(&Seg::Key(field.clone())) {
            if let Some(s) = child_key_span(root, &path, &field) {
                span = Some(s);
            }
            path.push(Seg::Key(field.clone()));
        }
        let allowed = backticked_all(message.split_once("expected").map_or("", |(_, rest)| rest));
        let hint = did_you_mean(&field, allowed.iter().map(String::as_str))
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        reason = if allowed.is_empty() {
            format!("unknown key{hint}; this table takes no other keys")
        } else {
            format!("unknown key{hint}; allowed here: {}", allowed.join(", "))
        };
    } else if let Some(field) = backticked_after(&message, "missing field ") {
        path.push(Seg::Key(field.clone()));
        reason = if field == "kind" && path.len() == 2 && path[0] == key("topology") {
            "missing; say which topology this is: kind = \"crossbar\", \"fat-tree\", \"dragonfly\" or \"torus\""
                .to_string()
        } else {
            format!("missing; this key is required{}", section_hint(&path))
        };
    } else if let Some(variant) = backticked_after(&message, "unknown variant ") {
        let allowed = backticked_all(message.split_once("expected").map_or("", |(_, rest)| rest));
        let hint = did_you_mean(&variant, allowed.iter().map(String::as_str))
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        reason = format!("unknown value `{variant}`{hint}; allowed: {}", allowed.join(", "));
    } else if let Some((got, expected)) = type_mismatch(&message) {
        // Internally tagged tables (`topology`) are buffered before serde sees their
        // fields, so the span is the whole table: find the value the message quotes.
        let container = matches!(node_at(root, &path), Some(DeValue::Table(_) | DeValue::Array(_)));
        let wants_container = expected.contains("map") || expected.contains("struct");
        if let (true, false, Some((p, s))) = (container, wants_container, find_value(root, &path, &got)) {
            path = p;
            span = Some(s);
        }
        reason = format!("expected {}, got {got}", describe_expected(&expected));
    } else {
        reason = message;
    }
    MachineError {
        file: origin.to_string(),
        line: span.map(|s| line_at(text, s.start)),
        key: render_path(&path),
        reason,
    }
}

/// Where a missing key belongs, for the message.
fn section_hint(path: &[Seg]) -> String {
    match path.first() {
        Some(Seg::Key(k)) if path.len() > 1 && k == "topology" => {
            " (every topology `kind` has its own keys: see the presets in machines/)".to_string()
        }
        _ => String::new(),
    }
}

/// The first `` `word` `` after `prefix` at the start of `message`.
fn backticked_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    let rest = rest.strip_prefix('`')?;
    let end = rest.find('`')?;
    Some(rest[..end].to_string())
}

/// Every `` `word` `` in `s`.
fn backticked_all(s: &str) -> Vec<String> {
    s.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// `invalid type: GOT, expected EXPECTED` / `invalid value: GOT, expected EXPECTED`.
fn type_mismatch(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("invalid type: ").or_else(|| message.strip_prefix("invalid value: "))?;
    let (got, expected) = rest.rsplit_once(", expected ")?;
    Some((got.to_string(), expected.to_string()))
}

fn describe_expected(expected: &str) -> String {
    match expected {
        "u32" | "u64" => "a whole number >= 0".to_string(),
        "f64" => "a number".to_string(),
        "a sequence" => "a list (`[...]`)".to_string(),
        "a string" => "a string (in quotes)".to_string(),
        other => other.to_string(),
    }
}

/// Span of key `field` in the table at `path`.
fn child_key_span(root: &DeTable<'_>, path: &[Seg], field: &str) -> Option<Range<usize>> {
    let table = if path.is_empty() {
        root
    } else {
        match node_at(root, path)? {
            DeValue::Table(t) => t,
            _ => return None,
        }
    };
    table.iter().find(|(k, _)| k.get_ref() == field).map(|(k, _)| k.span())
}

/// The first value under `path` (in document order) that serde would describe as `got`
/// (`string "x"`, `integer `-3``, `floating point `1.5``, `boolean `true``, `a sequence`...).
fn find_value(root: &DeTable<'_>, path: &[Seg], got: &str) -> Option<(Path, Range<usize>)> {
    fn matches(v: &DeValue<'_>, got: &str) -> bool {
        match v {
            DeValue::String(s) => got == format!("string {s:?}") || got.starts_with("string") && got.contains(&**s),
            DeValue::Integer(i) => got.starts_with("integer") && got.contains(&format!("`{}`", i.as_str())),
            DeValue::Float(f) => {
                got.starts_with("floating point")
                    && (got.contains(&format!("`{}`", f.as_str()))
                        || f.as_str().parse::<f64>().is_ok_and(|x| got.contains(&format!("`{x}`"))))
            }
            DeValue::Boolean(b) => got == format!("boolean `{b}`"),
            DeValue::Datetime(_) => got.contains("datetime") || got.contains("map"),
            DeValue::Array(_) => got.contains("sequence"),
            DeValue::Table(_) => got.contains("map"),
        }
    }
    fn walk(v: &Spanned<DeValue<'_>>, path: &mut Path, got: &str, found: &mut Vec<(Path, Range<usize>)>, top: bool) {
        if !top && matches(v.get_ref(), got) {
            found.push((path.clone(), v.span()));
        }
        match v.get_ref() {
            DeValue::Table(t) => {
                for (k, child) in t.iter() {
                    path.push(key(k.get_ref()));
                    walk(child, path, got, found, false);
                    path.pop();
                }
            }
            DeValue::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk(child, path, got, found, false);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let start = span_of_path(root, path)?;
    let node = node_at(root, path)?;
    let spanned = Spanned::new(start, node.clone());
    let mut found = Vec::new();
    walk(&spanned, &mut path.to_vec(), got, &mut found, true);
    found.into_iter().min_by_key(|(_, s)| s.start)
}

// ---------------------------------------------------------------------------------
// Semantic validation

type Invalid = (Path, String);

fn validate(m: &Machine) -> Result<(), Invalid> {
    if m.name.trim().is_empty() {
        return Err((vec![key("name")], "must not be empty (it names the machine in results)".into()));
    }
    if m.ranks_per_node < 1 {
        return Err((vec![key("ranks_per_node")], format!("must be an integer >= 1, got {}", m.ranks_per_node)));
    }
    positive(m.nic_gbps, vec![key("nic_gbps")], "a bandwidth in Gbit/s")?;
    validate_loggp(&m.inter_node, "inter_node")?;
    validate_loggp(&m.intra_node, "intra_node")?;
    validate_topology(&m.topology)?;
    let c = &m.compute;
    let at = |k: &str| vec![key("compute"), key(k)];
    if c.cores_per_rank < 1 {
        return Err((at("cores_per_rank"), format!("must be an integer >= 1, got {}", c.cores_per_rank)));
    }
    positive(c.default_gflops, at("default_gflops"), "a rate in GFLOP/s per core")?;
    for (name, &rate) in &c.kernel_gflops {
        if name.is_empty() {
            return Err((at("kernel_gflops"), "kernel names must not be empty".into()));
        }
        not_a_section_key(name, "compute", "kernel_gflops", COMPUTE_KEYS)?;
        positive(rate, vec![key("compute"), key("kernel_gflops"), key(name)], "a rate in GFLOP/s per core")?;
    }
    for (name, curve) in &c.kernel_curves {
        let here = || vec![key("compute"), key("kernel_curves"), key(name)];
        if name.is_empty() {
            return Err((at("kernel_curves"), "kernel names must not be empty".into()));
        }
        if curve.is_empty() {
            return Err((here(), "a curve needs at least one [flops, GFLOP/s] point".into()));
        }
        let mut previous = 0.0;
        for &[flops, rate] in curve {
            if !(flops.is_finite() && flops > previous) {
                return Err((
                    here(),
                    format!(
                        "flops must be finite, positive and increasing from point to point, got {flops} after {previous}"
                    ),
                ));
            }
            previous = flops;
            positive(rate, here(), "a rate in GFLOP/s per core")?;
        }
    }
    for (name, &cost) in &c.kernel_ns_per_byte {
        if name.is_empty() {
            return Err((at("kernel_ns_per_byte"), "kernel names must not be empty".into()));
        }
        if !(cost.is_finite() && (0.0..=MAX_NS_PER_BYTE).contains(&cost)) {
            return Err((
                vec![key("compute"), key("kernel_ns_per_byte"), key(name)],
                format!("must be a cost in ns per output byte between 0 and {MAX_NS_PER_BYTE}, got {cost}"),
            ));
        }
    }
    time(c.task_overhead_ns, at("task_overhead_ns"))?;
    time(c.control_message_ns, at("control_message_ns"))?;
    time(c.collective_call_ns, at("collective_call_ns"))?;
    time(c.collective_message_ns, at("collective_message_ns"))?;
    let cost = c.collective_ns_per_byte;
    if !(cost.is_finite() && (0.0..=MAX_NS_PER_BYTE).contains(&cost)) {
        return Err((
            at("collective_ns_per_byte"),
            format!("must be a CPU cost in ns per byte between 0 and {MAX_NS_PER_BYTE}, got {cost}"),
        ));
    }
    let r = m.registration;
    if !(r.base_us.is_finite() && r.base_us >= 0.0 && r.per_mib_us.is_finite() && r.per_mib_us >= 0.0) {
        return Err((
            vec![key("registration")],
            format!("base_us and per_mib_us must be finite and >= 0, got {} and {}", r.base_us, r.per_mib_us),
        ));
    }
    if !(m.latency_jitter.is_finite() && (0.0..=10.0).contains(&m.latency_jitter)) {
        return Err((
            vec![key("latency_jitter")],
            format!("must be a fraction in 0..=10 (0 = off), got {}", m.latency_jitter),
        ));
    }
    if let Some(a) = &m.accelerators {
        validate_accelerators(a, m.ranks_per_node, m.nic_gbps)?;
    }
    Ok(())
}

/// The keys of `[compute]` (a kernel of one of these names in a rate table is a key
/// written below its table's header by mistake).
const COMPUTE_KEYS: &[&str] = &[
    "mode",
    "cores_per_rank",
    "kernel_gflops",
    "default_gflops",
    "kernel_curves",
    "kernel_ns_per_byte",
    "task_overhead_ns",
    "control_message_ns",
    "collective_call_ns",
    "progress",
];

/// The keys of `[accelerators]`.
const ACCELERATORS_KEYS: &[&str] = &[
    "model",
    "devices",
    "memory_gib",
    "streams",
    "copy_engines",
    "gpu_direct",
    "launch_ns",
    "default_gflops",
    "kernel_gflops",
    "host_link",
    "peer_link",
    "nics",
    "nic_switch",
];

/// Refuses a kernel `name` in `[section.table]` that is a key of `[section]`: in TOML a key
/// written after the `[section.table]` header lands in that table, so `nics = 8` below
/// `[accelerators.kernel_gflops]` would silently be the rate of a kernel called `nics`.
/// (Kernel names are the workloads'; the simulator does not know them, so other unknown
/// names are left to [`check_kernel_kinds`], which `experiment` runs with the workloads'.)
fn not_a_section_key(name: &str, section: &str, table: &str, keys: &[&str]) -> Result<(), Invalid> {
    if keys.contains(&name) {
        return Err((
            vec![key(section), key(table), key(name)],
            format!(
                "`{name}` is a key of [{section}], not a kernel name: a key written after the [{section}.{table}] \
                 header belongs to that table; move it above the header"
            ),
        ));
    }
    Ok(())
}

/// The most devices, streams or copy engines a node's device may list: far beyond any
/// built, and small enough that per-device tables stay small.
pub const MAX_DEVICE_COUNT: u32 = 1024;

fn validate_accelerators(a: &Accelerators, ranks_per_node: u32, nic_gbps: f64) -> Result<(), Invalid> {
    let at = |k: &str| vec![key("accelerators"), key(k)];
    for (name, v) in [("devices", a.devices), ("streams", a.streams), ("copy_engines", a.copy_engines)] {
        if !(1..=MAX_DEVICE_COUNT).contains(&v) {
            return Err((at(name), format!("must be an integer from 1 to {MAX_DEVICE_COUNT}, got {v}")));
        }
    }
    if a.devices != ranks_per_node {
        return Err((
            at("devices"),
            format!(
                "ranks are placed one per device, so devices must equal ranks_per_node = {ranks_per_node}, got {}",
                a.devices
            ),
        ));
    }
    if !(a.memory_gib.is_finite() && a.memory_gib > 0.0 && a.memory_gib <= 1e6) {
        return Err((at("memory_gib"), format!("must be a size in GiB in (0, 1e6], got {}", a.memory_gib)));
    }
    time(a.launch_ns, at("launch_ns"))?;
    positive(a.default_gflops, at("default_gflops"), "a rate in GFLOP/s per kernel")?;
    for (name, &rate) in &a.kernel_gflops {
        if name.is_empty() {
            return Err((at("kernel_gflops"), "kernel names must not be empty".into()));
        }
        not_a_section_key(name, "accelerators", "kernel_gflops", ACCELERATORS_KEYS)?;
        positive(rate, vec![key("accelerators"), key("kernel_gflops"), key(name)], "a rate in GFLOP/s per kernel")?;
    }
    let h = &a.host_link;
    let link = |k: &str| vec![key("accelerators"), key("host_link"), key(k)];
    time(h.latency_ns, link("latency_ns"))?;
    positive(h.gbps, link("gbps"), "a bandwidth in Gbit/s")?;
    if !(1..=a.devices).contains(&h.devices_per_switch) {
        return Err((
            link("devices_per_switch"),
            format!("must be an integer from 1 to devices = {}, got {}", a.devices, h.devices_per_switch),
        ));
    }
    if let Some(p) = &a.peer_link {
        let peer = |k: &str| vec![key("accelerators"), key("peer_link"), key(k)];
        time(p.latency_ns, peer("latency_ns"))?;
        positive(p.gbps, peer("gbps"), "a bandwidth in Gbit/s")?;
    }
    if let Some(nics) = a.nics
        && !(nics >= 1 && a.devices.is_multiple_of(nics))
    {
        return Err((
            at("nics"),
            format!(
                "must be a number of NICs per node from 1 to devices = {} that divides it (each NIC serves \
                 devices / nics consecutive devices), got {nics}",
                a.devices
            ),
        ));
    }
    if a.nic_switch == NicSwitch::Host && a.nics.is_none() {
        return Err((
            at("nic_switch"),
            "\"host\" needs `nics` (the number of NICs per node, e.g. nics = 1): without it every device is \
             taken to sit next to the node's NIC pool; allowed values: \"first-device\" (the default), \"host\""
                .into(),
        ));
    }
    if let Some(nics) = a.nics
        && nic_gbps / f64::from(nics) < GBPS.0
    {
        return Err((
            at("nics"),
            format!(
                "each NIC gets nic_gbps / nics = {} Gbit/s, below the smallest bandwidth, {:e} Gbit/s",
                nic_gbps / f64::from(nics),
                GBPS.0
            ),
        ));
    }
    Ok(())
}

fn validate_loggp(l: &LogGp, section: &str) -> Result<(), Invalid> {
    let base = vec![key(section), key("segments")];
    if l.segments.is_empty() {
        return Err((base, "must list at least one segment, the first with from_bytes = 0".into()));
    }
    let mut previous: Option<u64> = None;
    for (i, s) in l.segments.iter().enumerate() {
        let at = |k: &str| {
            let mut p = base.clone();
            p.push(Seg::Index(i));
            p.push(key(k));
            p
        };
        match previous {
            None if s.from_bytes != 0 => {
                return Err((
                    at("from_bytes"),
                    format!(
                        "the first segment must start at 0 bytes (so every size has a segment), got {}",
                        s.from_bytes
                    ),
                ));
            }
            Some(p) if s.from_bytes <= p => {
                return Err((
                    at("from_bytes"),
                    format!(
                        "segments must be sorted by strictly increasing from_bytes: got {} after {p}",
                        s.from_bytes
                    ),
                ));
            }
            _ => {}
        }
        previous = Some(s.from_bytes);
        time(s.o_s_ns, at("o_s_ns"))?;
        time(s.o_r_ns, at("o_r_ns"))?;
        time(s.g_ns, at("g_ns"))?;
        time(s.l_ns, at("l_ns"))?;
        if !(s.g_per_byte_ns.is_finite() && s.g_per_byte_ns > 0.0 && s.g_per_byte_ns <= 1e6) {
            return Err((
                at("g_per_byte_ns"),
                format!(
                    "must be a number in (0, 1e6] (ns per byte, the inverse of the bandwidth: 0.04 = 25 GB/s, \
                     1e6 = 1 kB/s), got {}",
                    s.g_per_byte_ns
                ),
            ));
        }
        if let Some(o) = s.o_per_byte_ns
            && !(o.is_finite() && (0.0..=MAX_NS_PER_BYTE).contains(&o))
        {
            return Err((
                at("o_per_byte_ns"),
                format!(
                    "must be a CPU cost in ns per byte between 0 and {MAX_NS_PER_BYTE} (0.5 = a 2 GB/s copy), \
                     got {o}"
                ),
            ));
        }
    }
    Ok(())
}

fn validate_topology(t: &Topology) -> Result<(), Invalid> {
    let at = |k: &str| vec![key("topology"), key(k)];
    match t {
        Topology::Crossbar { link_gbps } => positive(*link_gbps, at("link_gbps"), "a bandwidth in Gbit/s"),
        Topology::FatTree { k, oversubscription, link_gbps, hop_ns } => {
            if *k < 2 || k % 2 != 0 || u64::from(*k).checked_pow(3).is_none_or(|c| c / 4 > MAX_NODES) {
                return Err((
                    at("k"),
                    format!("must be an even number from 2 to 406 (the switch radix; k^3/4 hosts), got {k}"),
                ));
            }
            if !(oversubscription.is_finite() && *oversubscription >= 1.0) {
                return Err((
                    at("oversubscription"),
                    format!("must be a number >= 1 (1 = full bisection, 2 = 2:1), got {oversubscription}"),
                ));
            }
            positive(*link_gbps, at("link_gbps"), "a bandwidth in Gbit/s")?;
            time(*hop_ns, at("hop_ns"))
        }
        Topology::Dragonfly {
            groups,
            routers_per_group,
            nodes_per_router,
            global_links_per_router,
            local_gbps,
            global_gbps,
            hop_ns,
        } => {
            for (name, v) in [
                ("groups", groups),
                ("routers_per_group", routers_per_group),
                ("nodes_per_router", nodes_per_router),
                ("global_links_per_router", global_links_per_router),
            ] {
                if *v < 1 {
                    return Err((at(name), format!("must be an integer >= 1, got {v}")));
                }
            }
            let reachable = u64::from(*routers_per_group) * u64::from(*global_links_per_router) + 1;
            if u64::from(*groups) > reachable {
                return Err((
                    at("groups"),
                    format!(
                        "must be at most routers_per_group × global_links_per_router + 1 = {reachable} \
                         (minimal routing needs a global link between every two groups), got {groups}"
                    ),
                ));
            }
            let factors = [*groups, *routers_per_group, *nodes_per_router].map(u64::from);
            if node_count(&factors).is_none() {
                return Err((
                    at("groups"),
                    format!(
                        "groups × routers_per_group × nodes_per_router must be at most {MAX_NODES} nodes, got \
                         {groups} × {routers_per_group} × {nodes_per_router}"
                    ),
                ));
            }
            positive(*local_gbps, at("local_gbps"), "a bandwidth in Gbit/s")?;
            positive(*global_gbps, at("global_gbps"), "a bandwidth in Gbit/s")?;
            time(*hop_ns, at("hop_ns"))
        }
        Topology::Torus { dims, link_gbps, hop_ns } => {
            if !(2..=3).contains(&dims.len()) {
                return Err((
                    at("dims"),
                    format!("must have 2 or 3 entries (a 2D or 3D torus), got {} ({dims:?})", dims.len()),
                ));
            }
            for (i, d) in dims.iter().enumerate() {
                if *d < 2 {
                    return Err((
                        vec![key("topology"), key("dims"), Seg::Index(i)],
                        format!("every dimension must be >= 2, got {d}"),
                    ));
                }
            }
            if node_count(&dims.iter().map(|&d| u64::from(d)).collect::<Vec<_>>()).is_none() {
                return Err((
                    at("dims"),
                    format!("the dimensions' product must be at most {MAX_NODES} nodes, got {dims:?}"),
                ));
            }
            positive(*link_gbps, at("link_gbps"), "a bandwidth in Gbit/s")?;
            time(*hop_ns, at("hop_ns"))
        }
    }
}

/// The largest node count a topology may have: simulated machines far beyond any built
/// (2^24 = 16.7 million nodes), and well inside every index type the simulator uses.
pub const MAX_NODES: u64 = 1 << 24;

/// The largest time a per-message or per-task parameter may take: 10 s. Larger values
/// describe no machine, and would let simulated times overflow.
pub const MAX_TIME_NS: f64 = 1e10;

/// Bounds of a bandwidth in Gbit/s: 1 kbit/s to 10 Pbit/s.
const GBPS: (f64, f64) = (1e-6, 1e7);
/// Bounds of a compute rate in GFLOP/s per core: 1 MFLOP/s to 1 EFLOP/s.
const GFLOPS: (f64, f64) = (1e-3, 1e9);

fn positive(v: f64, path: Path, what: &str) -> Result<(), Invalid> {
    let (lo, hi) = if what.contains("GFLOP") { GFLOPS } else { GBPS };
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err((path, format!("must be {what} between {lo:e} and {hi:e}, got {v}")))
    }
}

/// The largest per-byte cost a machine file may state (a kernel's per byte written, a
/// message's CPU per byte), ns (a byte per microsecond: far slower than any memory;
/// keeps every product with a chunk size finite).
const MAX_NS_PER_BYTE: f64 = 1000.0;

fn time(v: f64, path: Path) -> Result<(), Invalid> {
    if v.is_finite() && (0.0..=MAX_TIME_NS).contains(&v) {
        Ok(())
    } else {
        Err((path, format!("must be a time in ns between 0 and {MAX_TIME_NS:e} (10 s), got {v}")))
    }
}

/// The product of `factors` if it is at most [`MAX_NODES`].
fn node_count(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f)).filter(|&n| n <= MAX_NODES)
}
