//! Sweep files: parsing and validation. Everything is checked before anything runs,
//! and every error names the file, the line and the key, and says what is allowed.

use crate::drivers;
use dagwire_runtime::params::did_you_mean;
use dagwire_runtime::{Fault, ParamSpec, ParamValue, Progress};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Top-level keys of a sweep file.
const TOP_KEYS: &[&str] = &["name", "description", "seed", "repetitions", "timeout_s", "grid"];
/// Axes of `[grid]` that are not a component's parameter table.
pub const CORE_AXES: &[&str] = &["workload", "strategy", "driver", "ranks", "workers", "progress", "fault"];

/// A parsed, validated sweep file.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its full text (kept in the manifest).
    pub text: String,
    /// `name`: names the results directory.
    pub name: String,
    /// `description`, if any.
    pub description: Option<String>,
    /// `seed`: the one seed every run derives its randomness from.
    pub seed: u64,
    /// `repetitions`: runs per grid point.
    pub repetitions: u32,
    /// `timeout_s`: a run point making no progress this long fails.
    pub timeout_s: u64,
    /// The grid, one axis per key, in file order.
    pub axes: Vec<Axis>,
}

/// One `[grid]` key and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// `ranks`, `strategy`, or a component parameter like `cholesky.tile`.
    pub key: String,
    /// Values to sweep.
    pub values: Vec<ParamValue>,
    /// 1-based line of the key in the file.
    pub line: usize,
}

impl Sweep {
    /// The axis named `key`, if the file sets it.
    pub fn axis(&self, key: &str) -> Option<&Axis> {
        self.axes.iter().find(|a| a.key == key)
    }

    /// Line of `key` (for errors found later, e.g. when building a point).
    pub fn line_of(&self, key: &str) -> usize {
        self.axis(key).map_or(1, |a| a.line)
    }

    /// How many points the grid expands to at most (the product of its axes' lengths;
    /// repeats of unchosen components' parameters are dropped later), without
    /// expanding it.
    pub fn grid_size(&self) -> u128 {
        self.axes.iter().fold(1u128, |n, a| n.saturating_mul(a.values.len() as u128))
    }

    /// Refuses, before anything is expanded, a grid of more than `max_points` points,
    /// naming its largest axis (a few lines of TOML can describe 10^8 points).
    pub fn check_size(&self, max_points: u64) -> Result<(), SweepError> {
        let size = self.grid_size();
        if size <= u128::from(max_points) {
            return Ok(());
        }
        let widest = self.axes.iter().rev().max_by_key(|a| a.values.len()).expect("a grid this large has axes");
        let factors: Vec<String> =
            self.axes.iter().filter(|a| a.values.len() > 1).map(|a| a.values.len().to_string()).collect();
        Err(SweepError {
            file: self.path.clone(),
            line: widest.line,
            key: format!("grid.{}", widest.key),
            message: format!(
                "the grid expands to {size} points ({}), more than the limit of {max_points}; split the sweep, or \
                 raise the limit with --max-points",
                factors.join(" x ")
            ),
        })
    }
}

/// A sweep file that cannot run: where and why.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The key concerned (empty for syntax errors).
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for SweepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", self.key)?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for SweepError {}

/// Reads and validates a sweep file.
pub fn load(path: &Path) -> Result<Sweep, SweepError> {
    let text = std::fs::read_to_string(path).map_err(|e| SweepError {
        file: path.to_path_buf(),
        line: 0,
        key: String::new(),
        message: format!("cannot read the sweep file: {e}"),
    })?;
    parse(path, &text)
}

/// Parses and validates sweep `text` read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Sweep, SweepError> {
    let at = Locator { file: path, text };
    let table = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| at.line(s.start));
        at.error_at_line(line, "", format!("not valid TOML: {}", e.message().trim()))
    })?;
    let table = table.into_inner();
    for (key, _) in table.iter() {
        if !TOP_KEYS.contains(&key.get_ref().as_ref()) {
            return Err(at.unknown(key, "", TOP_KEYS));
        }
    }
    let name = at.required_str(&table, "name")?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(at.error(
            at.span_of(&table, "name"),
            "name",
            "use letters, digits, `-` and `_` only (it names the results directory)",
        ));
    }
    let seed = at.optional_int(&table, "seed", 0, i64::MAX)?.unwrap_or(1) as u64;
    let repetitions = at.optional_int(&table, "repetitions", 1, 10_000)?.unwrap_or(1) as u32;
    let timeout_s = at.optional_int(&table, "timeout_s", 1, 7 * 24 * 3600)?.unwrap_or(600) as u64;
    let description = match table.get("description") {
        Some(v) => Some(at.as_str(v, "description")?),
        None => None,
    };
    let grid = table.get("grid").ok_or_else(|| {
        at.error_at_line(
            1,
            "grid",
            "missing `[grid]` table: it lists the values to sweep (workload, strategy, driver, ranks, ...)".into(),
        )
    })?;
    let DeValue::Table(grid) = grid.get_ref() else {
        return Err(at.error(grid.span(), "grid", "must be a table (`[grid]`)"));
    };
    let axes = grid_axes(&at, grid)?;
    let sweep = Sweep {
        path: path.to_path_buf(),
        text: text.to_string(),
        name,
        description,
        seed,
        repetitions,
        timeout_s,
        axes,
    };
    check_axes(&at, &sweep)?;
    Ok(sweep)
}

/// Flattens `[grid]` into axes: core axes directly, component tables as `component.param`.
fn grid_axes(at: &Locator<'_>, grid: &DeTable<'_>) -> Result<Vec<Axis>, SweepError> {
    let mut axes = Vec::new();
    for (key, value) in grid.iter() {
        let name = key.get_ref().as_ref();
        match value.get_ref() {
            DeValue::Table(params) if !CORE_AXES.contains(&name) => {
                let specs = component_params(name).ok_or_else(|| at.unknown(key, "grid.", &known_grid_keys()))?;
                for (pkey, pvalue) in params.iter() {
                    let full = format!("{name}.{}", pkey.get_ref());
                    let spec = specs.iter().find(|s| s.name == pkey.get_ref().as_ref()).ok_or_else(|| {
                        let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
                        at.unknown(pkey, &format!("grid.{name}."), &names)
                    })?;
                    axes.push(axis(at, &full, pvalue, |v| spec.check(v))?);
                }
            }
            _ if CORE_AXES.contains(&name) => axes.push(axis(at, name, value, |v| check_core(name, v))?),
            _ => return Err(at.unknown(key, "grid.", &known_grid_keys())),
        }
    }
    axes.sort_by_key(|a| a.line);
    Ok(axes)
}

/// One axis: a value or a list of values, each checked.
fn axis(
    at: &Locator<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
    check: impl Fn(&ParamValue) -> Result<ParamValue, String>,
) -> Result<Axis, SweepError> {
    let items: Vec<&Spanned<DeValue<'_>>> = match value.get_ref() {
        DeValue::Array(items) => items.iter().collect(),
        _ => vec![value],
    };
    if items.is_empty() {
        return Err(at.error(value.span(), &format!("grid.{key}"), "the list is empty; give at least one value"));
    }
    let mut values = Vec::new();
    for item in items {
        let v = scalar(item.get_ref())
            .ok_or_else(|| at.error(item.span(), &format!("grid.{key}"), "expected a number, a string or a boolean"))?;
        let v = check(&v).map_err(|m| at.error(item.span(), &format!("grid.{key}"), &m))?;
        if values.contains(&v) {
            return Err(at.error(item.span(), &format!("grid.{key}"), &format!("value {v} is listed twice")));
        }
        values.push(v);
    }
    Ok(Axis { key: key.to_string(), values, line: at.line(value.span().start) })
}

fn scalar(v: &DeValue<'_>) -> Option<ParamValue> {
    match v {
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok().map(ParamValue::Int),
        DeValue::Float(f) => f.as_str().replace('_', "").parse().ok().map(ParamValue::Float),
        DeValue::String(s) => Some(ParamValue::Str(s.to_string())),
        DeValue::Boolean(b) => Some(ParamValue::Bool(*b)),
        _ => None,
    }
}

/// Checks a value of a core axis against the registries.
fn check_core(key: &str, v: &ParamValue) -> Result<ParamValue, String> {
    let name_in = |known: Vec<&'static str>, what: &str| match v {
        ParamValue::Str(s) if known.contains(&s.as_str()) => Ok(v.clone()),
        ParamValue::Str(s) => Err(format!(
            "unknown {what} `{s}`{}; known: {}",
            did_you_mean(s, known.iter().copied()).map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default(),
            known.join(", ")
        )),
        _ => Err(format!("expected a {what} name (a string), got {v}")),
    };
    match key {
        "workload" => name_in(dagwire_workloads::REGISTRY.iter().map(|w| w.name).collect(), "workload"),
        "strategy" => name_in(dagwire_strategies::REGISTRY.iter().map(|s| s.name).collect(), "strategy"),
        "driver" => name_in(drivers::REGISTRY.iter().map(|d| d.name).collect(), "driver"),
        "progress" => name_in(Progress::NAMES.to_vec(), "progress mode"),
        "fault" => name_in(Fault::NAMES.to_vec(), "fault"),
        "ranks" => ParamSpec::int("ranks", 1, 1 << 20, 1, "").check(v),
        "workers" => ParamSpec::int("workers", 1, 1024, 1, "").check(v),
        _ => unreachable!("{key} is a core axis"),
    }
}

/// Parameters of a workload or strategy, by its name.
pub fn component_params(name: &str) -> Option<Vec<ParamSpec>> {
    if let Ok(w) = dagwire_workloads::find(name) {
        return Some((w.params)());
    }
    if let Ok(s) = dagwire_strategies::find(name) {
        return Some((s.params)());
    }
    drivers::find(name).map(|d| (d.params)())
}

fn known_grid_keys() -> Vec<&'static str> {
    let mut keys = CORE_AXES.to_vec();
    keys.extend(dagwire_workloads::REGISTRY.iter().map(|w| w.name));
    keys.extend(dagwire_strategies::REGISTRY.iter().map(|s| s.name));
    keys.extend(drivers::REGISTRY.iter().map(|d| d.name));
    keys
}

/// Cross-axis checks: required axes present; component tables only for listed components.
fn check_axes(at: &Locator<'_>, sweep: &Sweep) -> Result<(), SweepError> {
    for required in ["workload", "strategy", "driver", "ranks"] {
        if sweep.axis(required).is_none() {
            return Err(at.error_at_line(
                sweep.axes.first().map_or(1, |a| a.line),
                &format!("grid.{required}"),
                format!("missing; every sweep must list at least one {required} (see `experiment list`)"),
            ));
        }
    }
    for axis in sweep.axes.iter().filter(|a| a.key.contains('.')) {
        let component = axis.key.split('.').next().unwrap_or_default();
        let listed = ["workload", "strategy", "driver"]
            .iter()
            .any(|k| sweep.axis(k).is_some_and(|a| a.values.contains(&ParamValue::Str(component.to_string()))));
        if !listed {
            return Err(at.error_at_line(
                axis.line,
                &format!("grid.{}", axis.key),
                format!(
                    "sets a parameter of `{component}`, which is not in grid.workload, grid.strategy or grid.driver"
                ),
            ));
        }
    }
    Ok(())
}

/// Turns byte offsets into lines and builds errors.
struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }

    fn error(&self, span: Range<usize>, key: &str, message: &str) -> SweepError {
        self.error_at_line(self.line(span.start), key, message.to_string())
    }

    fn error_at_line(&self, line: usize, key: &str, message: String) -> SweepError {
        SweepError { file: self.file.to_path_buf(), line, key: key.to_string(), message }
    }

    fn unknown(&self, key: &Spanned<std::borrow::Cow<'_, str>>, prefix: &str, known: &[&str]) -> SweepError {
        let name = key.get_ref().as_ref();
        let hint =
            did_you_mean(name, known.iter().copied()).map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default();
        self.error(
            key.span(),
            &format!("{prefix}{name}"),
            &format!("unknown key{hint}; allowed here: {}", known.join(", ")),
        )
    }

    fn span_of(&self, table: &DeTable<'_>, key: &str) -> Range<usize> {
        table.get(key).map_or(0..0, |v| v.span())
    }

    fn as_str(&self, v: &Spanned<DeValue<'_>>, key: &str) -> Result<String, SweepError> {
        match v.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            _ => Err(self.error(v.span(), key, "expected a string")),
        }
    }

    fn required_str(&self, table: &DeTable<'_>, key: &str) -> Result<String, SweepError> {
        let v = table.get(key).ok_or_else(|| self.error_at_line(1, key, "missing; every sweep needs a name".into()))?;
        self.as_str(v, key)
    }

    fn optional_int(&self, table: &DeTable<'_>, key: &str, min: i64, max: i64) -> Result<Option<i64>, SweepError> {
        let Some(v) = table.get(key) else {
            return Ok(None);
        };
        match scalar(v.get_ref()) {
            Some(ParamValue::Int(i)) if (min..=max).contains(&i) => Ok(Some(i)),
            _ => Err(self.error(v.span(), key, &format!("expected an integer in {min}..={max}"))),
        }
    }
}

/// The values of every axis, with defaults for optional core axes.
pub fn axis_values(sweep: &Sweep) -> BTreeMap<String, Vec<ParamValue>> {
    let mut out: BTreeMap<String, Vec<ParamValue>> =
        sweep.axes.iter().map(|a| (a.key.clone(), a.values.clone())).collect();
    out.entry("workers".into()).or_insert_with(|| vec![ParamValue::Int(1)]);
    out.entry("progress".into()).or_insert_with(|| vec![ParamValue::Str("auto".into())]);
    out.entry("fault".into()).or_insert_with(|| vec![ParamValue::Str("none".into())]);
    out
}
