//! The results directory and its `manifest.json`: what ran, where, when, from which
//! sweep file. Never overwritten silently; written atomically.

use crate::sweep::Sweep;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Format tag written into every manifest, checked on `--resume`.
pub const FORMAT: &str = dagwire_analysis::RESULTS_FORMAT;

/// The default results directory: `results/<sweep name>-<UTC timestamp>`.
pub fn default_dir(sweep: &Sweep, now: SystemTime) -> PathBuf {
    let stamp: String =
        humantime::format_rfc3339_seconds(now).to_string().chars().filter(|c| *c != '-' && *c != ':').collect();
    PathBuf::from("results").join(format!("{}-{stamp}", sweep.name))
}

/// One writer's hold on a results directory: an exclusive lock on `DIR/.lock`, which the
/// kernel releases when every process holding it has ended. Jobs the sweep launches
/// inherit it, so a job that outlives its sweep (killed before it could stop the job)
/// still holds the directory, and a `--resume` is refused until the job is gone.
#[derive(Debug)]
pub struct DirLock {
    file: std::fs::File,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        crate::process::unshare(&self.file);
    }
}

/// The lock file inside a results directory.
pub const LOCK_FILE: &str = ".lock";

/// Takes `dir`'s lock, or says who holds it and what to do.
pub fn lock(dir: &Path) -> Result<DirLock> {
    use std::io::Write;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "results directory {} is in use by another process ({}, or an MPI job it launched that still runs); \
                 wait for it to end, or stop it (`fuser -k {}` ends every holder), then run again",
                dir.display(),
                holder.trim().strip_prefix("pid ").map_or("the sweep writing it".to_string(), |p| format!("PID {p}")),
                path.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0).and_then(|()| file.write_all(format!("pid {}\n", std::process::id()).as_bytes())).ok();
    // Launched jobs inherit the descriptor, and with it the lock (see [`DirLock`]).
    crate::process::share_with_jobs(&file);
    Ok(DirLock { file })
}

/// Creates `dir` for a new sweep, or reopens it for `--resume` after checking it
/// holds the same sweep; either way takes its lock, which the caller holds while it
/// writes there.
pub fn open(dir: &Path, sweep: &Sweep, resume: bool) -> Result<DirLock> {
    let manifest = dir.join("manifest.json");
    // A directory that holds nothing of a sweep yet (a first run killed before it wrote
    // its manifest) is as good as none.
    let exists = dir.exists() && !holds_nothing(dir);
    let lock = match (exists, resume) {
        (true, false) => bail!(
            "results directory {} already exists; pass --resume to continue that sweep, or --out DIR to write elsewhere",
            dir.display()
        ),
        (false, true) if !dir.exists() => {
            bail!("--resume: results directory {} does not exist (run without --resume to start it)", dir.display())
        }
        (false, _) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating results directory {}", dir.display()))?;
            lock(dir)
        }
        (true, true) => {
            let lock = lock(dir)?;
            let text = std::fs::read_to_string(&manifest).with_context(|| {
                format!(
                    "--resume: {} is not a results directory (no readable manifest.json); if it is what a killed run \
                     left, delete it and start again without --resume",
                    dir.display()
                )
            })?;
            let old: Value = serde_json::from_str(&text)
                .with_context(|| format!("--resume: {} is not valid JSON", manifest.display()))?;
            let same = old["sweep"]["sha256"].as_str() == Some(&sha256(&sweep.text));
            if !same {
                bail!(
                    "--resume: {} was made by a different sweep file (its text changed); start a new directory with --out",
                    dir.display()
                );
            }
            Ok(lock)
        }
    }?;
    remove_temporaries(dir)?;
    Ok(lock)
}

/// Whether `dir` holds nothing a sweep wrote: no entries but a lock file.
fn holds_nothing(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|entries| entries.flatten().all(|e| e.file_name() == LOCK_FILE)).unwrap_or(false)
}

/// Removes what killed writers left half-written in `dir` and `dir/parts` (every
/// temporary is a dot-name with `.tmp` in it). Called with the lock held, so no live
/// writer owns them.
fn remove_temporaries(dir: &Path) -> Result<()> {
    for folder in [dir.to_path_buf(), dir.join(dagwire_analysis::PARTS_DIR)] {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with('.') && name.contains(".tmp")) {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.with_context(|| format!("removing {}, left by a killed run", path.display()))?;
        }
    }
    Ok(())
}

/// Hex SHA-256 of a text.
pub fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What the manifest records about the session.
pub struct ManifestInfo<'a> {
    /// The sweep.
    pub sweep: &'a Sweep,
    /// The input files it names, as read when it began.
    pub inputs: &'a [crate::inputs::InputFile],
    /// Number of grid points.
    pub points: usize,
    /// When this session started.
    pub started: SystemTime,
    /// When it finished, if it did.
    pub finished: Option<SystemTime>,
    /// Runs recorded as failed or unverified so far.
    pub failed_runs: usize,
}

/// Writes (or rewrites) `manifest.json`, keeping the first start time of a resumed sweep.
pub fn write_manifest(dir: &Path, info: &ManifestInfo<'_>) -> Result<()> {
    let path = dir.join("manifest.json");
    let previous: Option<Value> = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok());
    let started = humantime::format_rfc3339_seconds(info.started).to_string();
    let first_start =
        previous.as_ref().and_then(|p| p["started_at"].as_str().map(String::from)).unwrap_or(started.clone());
    let mut sessions: Vec<Value> =
        previous.as_ref().and_then(|p| p["sessions"].as_array().cloned()).unwrap_or_default();
    if !sessions.iter().any(|s| s.as_str() == Some(&started)) {
        sessions.push(json!(started));
    }
    let manifest = json!({
        "format": FORMAT,
        "sweep": {
            "name": info.sweep.name,
            "path": info.sweep.path.display().to_string(),
            "sha256": sha256(&info.sweep.text),
            "text": info.sweep.text,
            "description": info.sweep.description,
        },
        "inputs": info.inputs.iter().map(crate::inputs::InputFile::to_json).collect::<Vec<_>>(),
        "seed": info.sweep.seed,
        "repetitions": info.sweep.repetitions,
        "points": info.points,
        "command_line": std::env::args().collect::<Vec<_>>(),
        "tool_version": env!("CARGO_PKG_VERSION"),
        "git_revision": git_revision(),
        "host": host_name(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "started_at": first_start,
        "sessions": sessions,
        "finished_at": info.finished.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        "status": if info.finished.is_some() { "complete" } else { "running" },
        "failed_runs": info.failed_runs,
        "tables": dagwire_analysis::integrity::table_checksums(dir)?,
    });
    let tmp = dir.join(".manifest.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&manifest)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// The git revision this binary was built from (`-modified` when tracked files had
/// uncommitted changes), if it was built in a git checkout.
pub fn git_revision() -> Option<&'static str> {
    option_env!("DAGWIRE_GIT_REVISION")
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn launched_jobs_inherit_the_lock_and_no_other_child_does() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // A child spawned while the lock is held (another test's, a tool's) must not keep
        // the directory locked once the sweep lets go of it.
        let held = lock(dir).unwrap();
        let mut bystander = Command::new("sleep").arg("60").spawn().unwrap();
        drop(held);
        let again = lock(dir);
        bystander.kill().unwrap();
        bystander.wait().unwrap();
        let again = again.expect("a bystander child held the results directory");
        // A launched job keeps it locked after the sweep is gone, until it ends.
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        crate::process::pass_to_job(&mut cmd);
        let mut job = cmd.spawn().unwrap();
        drop(again);
        let while_job_runs = lock(dir).map(drop);
        job.kill().unwrap();
        job.wait().unwrap();
        let err = while_job_runs.expect_err("the job did not inherit the lock");
        assert!(err.to_string().contains("in use by another process"), "{err}");
        lock(dir).expect("the lock is free once the job ended");
    }
}
