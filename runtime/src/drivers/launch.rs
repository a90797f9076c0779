//! `launcher = "local"`: dagwire's own launcher of a job's ranks on one host, no MPI
//! involved (the libfabric driver's processes start this way). It starts N processes of
//! a command, tells each its rank ([`JOB_ENV`]) and a fresh directory of the job's own
//! ([`JOB_DIR_ENV`], where the libfabric driver's ranks exchange endpoint addresses), and
//! waits for them; when one rank fails (non-zero exit, or killed by a signal) it ends the
//! others at once and says which rank failed and how, so a dead rank never leaves its
//! peers waiting.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Environment variable holding `RANK/SIZE` for a rank started by [`run`].
pub const JOB_ENV: &str = "DAGWIRE_JOB_RANK";
/// Environment variable naming a directory of the job's own that every rank can read
/// and write (set by [`run`], and by `experiment run` for launched jobs).
pub const JOB_DIR_ENV: &str = "DAGWIRE_JOB_DIR";

/// How a local job ended.
#[derive(Debug)]
pub struct LocalJob {
    /// Each rank's exit status (a rank ended because another failed shows as killed).
    pub statuses: Vec<ExitStatus>,
    /// The first rank that failed and how, if any.
    pub failed: Option<(usize, ExitStatus)>,
    /// The job hit its time limit and was killed.
    pub timed_out: bool,
}

impl LocalJob {
    /// True when every rank exited with 0.
    pub fn success(&self) -> bool {
        self.failed.is_none() && !self.timed_out
    }

    /// One line on how the job failed, or `None` if it did not.
    pub fn failure(&self) -> Option<String> {
        if self.timed_out {
            return Some("the job did not end within its time limit and was killed".into());
        }
        self.failed.map(|(rank, status)| format!("rank {rank} {}; the other ranks were stopped", describe(status)))
    }
}

/// "exited with code 3" or "was killed by signal 9".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => format!("ended with {status}"),
    }
}

/// Starts `ranks` processes, each the command `command(rank)` returns with [`JOB_ENV`]
/// and [`JOB_DIR_ENV`] added, and waits for all of them (at most `limit`). When one
/// fails, the others are killed at once. The job directory is removed at the end.
pub fn run(ranks: usize, mut command: impl FnMut(usize) -> Command, limit: Duration) -> std::io::Result<LocalJob> {
    static JOBS: AtomicU64 = AtomicU64::new(0);
    let boot: PathBuf = std::env::temp_dir().join(format!(
        "dagwire-job-{}-{}",
        std::process::id(),
        JOBS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&boot)?;
    let mut children: Vec<Option<Child>> = Vec::with_capacity(ranks);
    let kill_all = |children: &mut Vec<Option<Child>>| {
        for c in children.iter_mut().flatten() {
            let _ = c.kill();
        }
    };
    for r in 0..ranks {
        let mut cmd = command(r);
        cmd.env(JOB_ENV, format!("{r}/{ranks}")).env(JOB_DIR_ENV, &boot);
        match cmd.spawn() {
            Ok(child) => children.push(Some(child)),
            Err(e) => {
                kill_all(&mut children);
                let _ = std::fs::remove_dir_all(&boot);
                return Err(e);
            }
        }
    }
    let started = Instant::now();
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; ranks];
    let mut failed = None;
    let mut timed_out = false;
    while statuses.iter().any(Option::is_none) {
        // Of the ranks found failed in one pass, one killed by a signal is the cause (the
        // others exited because they lost it).
        let mut failed_now: Option<(usize, ExitStatus)> = None;
        for r in 0..ranks {
            let Some(child) = children[r].as_mut() else { continue };
            if let Ok(Some(status)) = child.try_wait() {
                statuses[r] = Some(status);
                children[r] = None;
                let killed = |s: &ExitStatus| s.code().is_none();
                if !status.success() && failed_now.is_none_or(|(_, first)| killed(&status) && !killed(&first)) {
                    failed_now = Some((r, status));
                }
            }
        }
        if failed.is_none() && failed_now.is_some() {
            failed = failed_now;
            kill_all(&mut children);
        }
        if failed.is_none() && !timed_out && started.elapsed() > limit {
            // Killed ranks still end, and are reaped by this loop.
            timed_out = true;
            kill_all(&mut children);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::fs::remove_dir_all(&boot);
    Ok(LocalJob { statuses: statuses.into_iter().map(|s| s.expect("all ended")).collect(), failed, timed_out })
}
