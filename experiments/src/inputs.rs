//! The input files a sweep names (machine files, through parameters of kind
//! [`ParamKind::Input`]): a relative path resolves against the sweep file's folder,
//! each file is read once when the sweep starts, its text and SHA-256 go into the
//! manifest with a copy under `DIR/inputs/`, and every point runs from that copy.
//! An edit to the file during a sweep therefore changes nothing, and `--resume`
//! refuses a file whose text changed since the sweep began.

use crate::plan::Point;
use crate::results::sha256;
use crate::sweep::{Sweep, component_params};
use anyhow::{Context, Result, bail};
use dagwire_runtime::{ParamValue, Params};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The folder under a results directory that holds the recorded input files.
pub const INPUTS_DIR: &str = "inputs";

/// One input file as a sweep recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct InputFile {
    /// Where it was read from (absolute).
    pub path: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its copy, relative to the results directory (`inputs/<hash>-<name>`).
    pub copy: String,
    /// Its text.
    pub text: String,
}

impl InputFile {
    /// The manifest's record of this file.
    pub fn to_json(&self) -> Value {
        json!({ "path": self.path.display().to_string(), "sha256": self.sha256, "copy": self.copy, "text": self.text })
    }
}

/// Where `value` (a relative or absolute path) of an input parameter points, for a
/// sweep read from `sweep_path`.
pub fn resolve(sweep_path: &Path, value: &str) -> PathBuf {
    let folder = sweep_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let joined = folder.join(value);
    std::fs::canonicalize(&joined).or_else(|_| std::path::absolute(&joined)).unwrap_or(joined)
}

/// Rewrites every input-file parameter of `component` in `params` to its path
/// resolved against the sweep's folder (presets stay as they are).
pub fn resolve_params(sweep: &Sweep, component: &str, params: &mut Params) {
    for spec in component_params(component).unwrap_or_default() {
        if let Some(ParamValue::Str(value)) = params.get(spec.name).cloned()
            && spec.names_file(&value)
        {
            let path = resolve(&sweep.path, &value);
            params.set(spec.name, ParamValue::Str(path.display().to_string()));
        }
    }
}

/// Reads every input file the points name (once each), checks them against what
/// the manifest of `dir` recorded when `resume`, writes the copies under
/// `dir/inputs/`, and points every point at its copy. Returns the files for the
/// manifest.
pub fn pin(dir: &Path, points: &mut [Point], resume: bool) -> Result<Vec<InputFile>> {
    let recorded = if resume { recorded(dir)? } else { Vec::new() };
    let mut files: BTreeMap<PathBuf, InputFile> = BTreeMap::new();
    for point in points.iter_mut() {
        for path in paths_of(point) {
            if files.contains_key(&path) {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the input file {} named by the sweep", path.display()))?;
            let hash = sha256(&text);
            if let Some(old) = recorded.iter().find(|f| f.path == path)
                && old.sha256 != hash
            {
                bail!(
                    "--resume: the input file {} changed since this sweep began (recorded SHA-256 {}, now {}); \
                     restore it (the recorded text is {}/{}), or start a new results directory with --out",
                    path.display(),
                    &old.sha256[..12],
                    &hash[..12],
                    dir.display(),
                    old.copy
                );
            }
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let copy = format!("{INPUTS_DIR}/{}-{name}", &hash[..16]);
            files.insert(path.clone(), InputFile { path, sha256: hash, copy, text });
        }
    }
    if !files.is_empty() {
        std::fs::create_dir_all(dir.join(INPUTS_DIR))
            .with_context(|| format!("creating {}", dir.join(INPUTS_DIR).display()))?;
    }
    for file in files.values() {
        let copy = dir.join(&file.copy);
        if std::fs::read_to_string(&copy).ok().as_deref() != Some(file.text.as_str()) {
            let tmp = dir.join(INPUTS_DIR).join(format!(".{}.tmp", &file.sha256[..16]));
            std::fs::write(&tmp, &file.text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &copy)
                .with_context(|| format!("renaming {} to {}", tmp.display(), copy.display()))?;
        }
    }
    let list: Vec<InputFile> = files.into_values().collect();
    pin_points(dir, points, &list);
    Ok(list)
}

/// Points every point of a launched job at the copies `dir`'s manifest recorded.
pub fn pin_recorded(dir: &Path, points: &mut [Point]) -> Result<()> {
    let recorded = recorded(dir)?;
    pin_points(dir, points, &recorded);
    Ok(())
}

fn pin_points(dir: &Path, points: &mut [Point], files: &[InputFile]) {
    for point in points.iter_mut() {
        for_each_file_param(point, |params, name, value| {
            if let Some(file) = files.iter().find(|f| f.path == Path::new(value)) {
                params.set(name, ParamValue::Str(dir.join(&file.copy).display().to_string()));
            }
        });
    }
}

fn paths_of(point: &mut Point) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for_each_file_param(point, |_, _, value| out.push(PathBuf::from(value)));
    out
}

/// Calls `f(params, name, value)` for every parameter of `point`'s components that
/// names a file.
fn for_each_file_param(point: &mut Point, mut f: impl FnMut(&mut Params, &'static str, &str)) {
    let components = [
        (point.workload.name, &mut point.workload_params),
        (point.strategy.name, &mut point.strategy_params),
        (point.driver.name, &mut point.driver_params),
    ];
    for (name, params) in components {
        for spec in component_params(name).unwrap_or_default() {
            if let Some(ParamValue::Str(value)) = params.get(spec.name).cloned()
                && spec.names_file(&value)
            {
                f(params, spec.name, &value);
            }
        }
    }
}

/// The input files `dir`'s manifest recorded (none for a manifest from before they
/// were recorded).
fn recorded(dir: &Path) -> Result<Vec<InputFile>> {
    let path = dir.join("manifest.json");
    if !path.exists() {
        // A directory a killed first run left before its manifest: nothing recorded.
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
    let Some(list) = manifest["inputs"].as_array() else { return Ok(Vec::new()) };
    list.iter()
        .map(|v| {
            let field = |k: &str| {
                v[k].as_str().map(String::from).with_context(|| format!("{}: an input without `{k}`", path.display()))
            };
            Ok(InputFile {
                path: PathBuf::from(field("path")?),
                sha256: field("sha256")?,
                copy: field("copy")?,
                text: field("text")?,
            })
        })
        .collect()
}
