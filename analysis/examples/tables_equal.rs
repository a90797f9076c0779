//! Compares the five tables of two results directories, the wall-time column (`wall_s`)
//! left out: `cargo run -p dagwire-analysis --example tables_equal -- DIR_A DIR_B`.
//! Prints each table's row count and whether it is equal (nulls equal nulls, column
//! order and types included); exits 1 if any differs.

use dagwire_analysis::{Table, read_table};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [a, b] = &dirs[..] else {
        anyhow::bail!("usage: tables_equal DIR_A DIR_B");
    };
    let mut all = true;
    for table in Table::ALL {
        let (mut x, mut y) = (read_table(a, table)?, read_table(b, table)?);
        if table == Table::Points {
            x = x.drop("wall_s")?;
            y = y.drop("wall_s")?;
        }
        let equal = x.equals_missing(&y);
        all &= equal;
        println!(
            "{:<10} {:>9} rows  {:>9} rows  {}",
            table.name(),
            x.height(),
            y.height(),
            if equal { "equal" } else { "DIFFERENT" }
        );
    }
    std::process::exit(if all { 0 } else { 1 });
}
