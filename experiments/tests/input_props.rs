//! Property tests of what the `experiment` command reads: whatever a sweep file holds,
//! checking and expanding it never panics and a rejection names the file, the line and
//! the key; whatever bytes a results directory's files hold, opening it for a report or
//! a trace never panics.
//!
//! CI runs a bounded number of cases; for a longer run locally:
//! `PROPTEST_CASES=20000 cargo test -p dagwire-experiments --test input_props --release`.

use dagwire_experiments::{plan, runner, sweep};
use proptest::prelude::*;

#[path = "../../sim/tests/common/file_edits.rs"]
mod file_edits;
use file_edits::{apply, config, edit};

use std::path::Path;

const SWEEP: &str = r#"name = "props"
seed = 7
repetitions = 2
timeout_s = 60

[grid]
workload = ["cholesky", "micro"]
strategy = ["eager", "batched"]
driver = ["local", "sim"]
ranks = [1, 2]
workers = 1
progress = "inline"
fault = "none"

[grid.cholesky]
n = 64
tile = [16, 32]

[grid.micro]
pattern = "pingpong"
size = 8

[grid.batched]
epochs = "level"

[grid.sim]
machine = "ib-hdr-fattree"
kernels = "model"
"#;

/// Values a hand-edited (or hostile) file may put in place of any value.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1e308".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("18446744073709551615".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("4294967296".to_string()),
        Just("\"\"".to_string()),
        Just("\"eagr\"".to_string()),
        Just("\"../../etc/passwd\"".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("[1, \"x\"]".to_string()),
        Just("[[1]]".to_string()),
        Just("{}".to_string()),
        Just("1979-05-27".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        (0u32..5000).prop_map(|v| v.to_string()),
        proptest::collection::vec(0u32..300, 0..6).prop_map(|v| format!("{v:?}")),
    ]
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn any_edit_of_a_sweep_is_checked_without_panic_and_refused_by_file_line_and_key(
        edits in proptest::collection::vec(edit(value(), "[a-z_.\\[\\]]{1,14}( = [0-9a-z\"\\[\\]., -]{0,12})?"), 1..4),
    ) {
        let text = apply(SWEEP, &edits);
        let path = Path::new("sweeps/edited.toml");
        let checked = sweep::parse(path, &text).and_then(|s| {
            s.check_size(2_000)?;
            plan::expand(&s).map(|_| ())
        });
        if let Err(e) = checked {
            prop_assert_eq!(e.file.as_path(), path);
            prop_assert!(e.line >= 1 && e.line <= text.lines().count() + 1, "line {} of {}: {e}", e.line, text.lines().count());
            prop_assert!(!e.message.is_empty());
        }
    }
}

/// A small results directory, written once for the reader cases below.
fn results_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let text = "name = \"r\"\n\n[grid]\nworkload = \"cholesky\"\nstrategy = \"eager\"\ndriver = \"local\"\nranks = 2\n\n[grid.cholesky]\nn = 64\ntile = 32\n";
        let s = sweep::parse(Path::new("r.toml"), text).unwrap();
        let mut points = plan::expand(&s).unwrap();
        runner::run_sweep(&s, &mut points, &tmp.path().join("out"), false).unwrap();
        tmp
    })
    .path()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(config(60))]

    #[test]
    fn corrupted_results_files_are_refused_without_panic(
        file in 0usize..5,
        flips in proptest::collection::vec((any::<u64>(), 1u8..=255), 1..8),
        truncate in proptest::option::of(any::<u64>()),
        drop_checksums in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        copy_dir(&results_dir().join("out"), &dir);
        let name = ["points.parquet", "tasks.parquet", "transfers.parquet", "messages.parquet", "manifest.json"][file];
        let path = dir.join(name);
        let mut bytes = std::fs::read(&path).unwrap();
        for (at, mask) in flips {
            let i = (at % bytes.len() as u64) as usize;
            bytes[i] ^= mask;
        }
        if let Some(t) = truncate {
            bytes.truncate((t % (bytes.len() as u64 + 1)) as usize);
        }
        std::fs::write(&path, &bytes).unwrap();
        if drop_checksums && name != "manifest.json" {
            // Without the checksums the corrupt bytes reach the Parquet reader and the row checks.
            let manifest = dir.join("manifest.json");
            let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
            m["tables"] = serde_json::json!({});
            std::fs::write(&manifest, m.to_string()).unwrap();
        }
        let opened = std::panic::catch_unwind(|| dagwire_analysis::ResultsDir::open(&dir).map(|r| r.points.height()));
        prop_assert!(opened.is_ok(), "opening {} with corrupted {name} panicked", dir.display());
    }
}
