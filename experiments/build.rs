//! Records the git revision the `experiment` binary is built from, so a results
//! directory's manifest names the code that produced it (not whatever checkout the
//! sweep happens to run in).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

fn main() {
    let revision = git(&["rev-parse", "HEAD"]);
    if let Some(rev) = &revision {
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some();
        println!("cargo:rustc-env=DAGWIRE_GIT_REVISION={rev}{}", if dirty { "-modified" } else { "" });
        // Rebuild when HEAD moves (a commit, a checkout).
        for path in ["HEAD", "index"] {
            if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"])
            && let Some(p) = git(&["rev-parse", "--git-path", &head_ref])
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
