//! What a sweep does to processes, in one place (the crate's only `unsafe`): launched
//! jobs die with the sweep that launched them, and they inherit its hold on the results
//! directory.
//!
//! - A job's launcher gets a parent-death signal (`SIGTERM` when `experiment run` dies,
//!   even by `SIGKILL`), on which `mpirun` and `srun` end their ranks.
//! - `SIGINT`, `SIGTERM` and `SIGHUP` of `experiment run` end the running job's whole
//!   process group first, then the sweep, as the signal would have.
//! - The results directory's lock descriptor is inherited by every job (and by no other
//!   child), so a rank that outlives everything still holds the directory and a
//!   `--resume` waits for it ([`crate::results::lock`]).

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

/// Descriptors that launched jobs inherit: the results directories' locks this process holds.
static JOB_FDS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Lets jobs launched from now on ([`pass_to_job`]) inherit `file`'s descriptor, and only
/// them: Rust opens files close-on-exec, and the flag is cleared in the job's own process
/// between fork and exec, so no other child of this process (a test's, a tool's) holds it.
pub fn share_with_jobs(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    JOB_FDS.lock().unwrap_or_else(|e| e.into_inner()).push(file.as_raw_fd());
}

/// Ends [`share_with_jobs`] for `file` (before it closes).
pub fn unshare(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    JOB_FDS.lock().unwrap_or_else(|e| e.into_inner()).retain(|&fd| fd != file.as_raw_fd());
}

/// Makes `cmd`'s process inherit the descriptors shared with jobs.
pub fn pass_to_job(cmd: &mut Command) {
    let fds = JOB_FDS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // SAFETY: the closure runs in the child between fork and exec, reads a vector the
    // parent built (no allocation) and calls only fcntl, which is async-signal-safe, on
    // descriptors the child inherited from this process.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
}

/// Makes `cmd`'s process receive `SIGTERM` when this process dies, however it dies.
pub fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as i32;
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the signal was armed.
            if libc::getppid() != parent {
                libc::_exit(143);
            }
            Ok(())
        });
    }
}

/// The process group of the job running now (0: none).
static JOB_GROUP: AtomicI32 = AtomicI32::new(0);

/// Marks `group` as the running job's process group: a terminating signal to this
/// process ends that group first. `None` when the job ended.
pub fn set_job_group(group: Option<u32>) {
    JOB_GROUP.store(group.map_or(0, |g| g as i32), Ordering::SeqCst);
}

/// Installs the handlers that end the running job's process group on `SIGINT`,
/// `SIGTERM` and `SIGHUP` before this process ends as the signal would have ended it.
/// Idempotent.
pub fn end_jobs_on_signals() {
    extern "C" fn on_signal(sig: libc::c_int) {
        let group = JOB_GROUP.load(Ordering::SeqCst);
        // SAFETY: kill, signal and raise are async-signal-safe.
        unsafe {
            if group > 0 {
                libc::kill(-group, libc::SIGTERM);
            }
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs a handler that only does async-signal-safe work.
        unsafe {
            libc::signal(sig, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
    }
}
