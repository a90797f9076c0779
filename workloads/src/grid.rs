//! Process grids a sweep names: `grid = "auto" | "PxQ"`, shared by the workloads
//! that lay tiles out block-cyclically (gemm, cholesky).

use dagwire_runtime::{BlockCyclic2D, ParamError};

/// The `P x Q` grid `grid` names for `ranks` positions (`what` names that count in
/// errors): `"auto"` is the most nearly square one; `"PxQ"` must have `P Q = ranks`.
///
/// ```
/// use dagwire_workloads::grid::parse_grid;
/// assert_eq!(parse_grid("2x3", 6, "ranks").unwrap().cols, 3);
/// assert_eq!(parse_grid("auto", 4, "ranks").unwrap().rows, 2);
/// assert_eq!(parse_grid("70000x70000", 6, "ranks").unwrap_err().key, "grid");
/// assert_eq!(parse_grid("2by3", 6, "ranks").unwrap_err().key, "grid");
/// ```
pub fn parse_grid(grid: &str, ranks: usize, what: &str) -> Result<BlockCyclic2D, ParamError> {
    if grid == "auto" {
        return Ok(BlockCyclic2D::for_ranks(ranks));
    }
    let parsed = grid
        .split_once(['x', 'X'])
        .and_then(|(p, q)| Some((p.trim().parse::<u32>().ok()?, q.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((p, q)) if p >= 1 && q >= 1 && p.checked_mul(q).is_some_and(|pq| pq as usize == ranks) => {
            Ok(BlockCyclic2D { rows: p, cols: q })
        }
        Some((p, q)) => Err(ParamError::new(
            "grid",
            format!(
                "grid {p}x{q} has {} positions but {what} = {ranks}; use a PxQ with P Q = {ranks}, or \"auto\"",
                u64::from(p) * u64::from(q)
            ),
        )),
        None => Err(ParamError::new("grid", format!("grid {grid:?} is not \"auto\" or \"PxQ\" (e.g. \"2x4\")"))),
    }
}
