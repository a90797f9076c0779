//! Hand edits of an input file for property tests, shared by the tests of machine files
//! (sim) and of sweep files (experiments): replace a line's value, delete a line, or
//! insert one; and the bounded, repeatable proptest configuration CI runs them with.

#![allow(dead_code)]

use proptest::prelude::*;

/// The cases CI runs: `cases` of them from a fixed seed, so CI is repeatable; set
/// `PROPTEST_CASES` (and `PROPTEST_RNG_SEED`) for a longer or different run locally.
pub fn config(cases: u32) -> ProptestConfig {
    let env = ProptestConfig::default();
    let set = |k: &str| std::env::var_os(k).is_some();
    ProptestConfig {
        cases: if set("PROPTEST_CASES") { env.cases } else { cases },
        rng_seed: if set("PROPTEST_RNG_SEED") {
            env.rng_seed
        } else {
            proptest::test_runner::RngSeed::Fixed(0x0dd5_eed5)
        },
        failure_persistence: None,
        ..env
    }
}

/// One edit of a file: replace a value, delete a line, or insert a line.
#[derive(Clone, Debug)]
pub enum Edit {
    Replace(usize, String),
    Delete(usize),
    Insert(usize, String),
}

/// Edits whose replaced values come from `value` and whose inserted lines match the
/// regular expression `line`; replacing is four times as likely as each of the others.
pub fn edit(value: impl Strategy<Value = String> + 'static, line: &'static str) -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), value).prop_map(|(i, v)| Edit::Replace(i, v)),
        1 => any::<usize>().prop_map(Edit::Delete),
        1 => (any::<usize>(), line).prop_map(|(i, l)| Edit::Insert(i, l)),
    ]
}

/// `text` with `edits` applied in order (line indices wrap around the current length;
/// a replacement keeps the line's key and changes what follows ` = `).
pub fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for e in edits {
        let n = lines.len().max(1);
        match e {
            Edit::Replace(i, v) => {
                let line = &mut lines[i % n];
                if let Some((key, _)) = line.split_once(" = ") {
                    *line = format!("{key} = {v}");
                }
            }
            Edit::Delete(i) => {
                if !lines.is_empty() {
                    lines.remove(i % n);
                }
            }
            Edit::Insert(i, l) => lines.insert(i % (n + 1), l.clone()),
        }
    }
    lines.join("\n") + "\n"
}
