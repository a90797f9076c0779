//! The README documents the results tables with the text the code generates.

#[test]
fn the_readme_table_reference_matches_the_code() {
    let readme = include_str!("../../README.md");
    let schema = dagwire_analysis::schema_markdown();
    assert!(readme.contains(&schema), "README.md is out of date: paste the output of `experiment list tables`");
}
