//! Sets of time intervals `[start, end)` in ns: their union, its length, and the
//! length of the overlap of two sets. Used for busy time and for communication
//! hidden under compute.

/// The union of `intervals`, as sorted disjoint intervals (empty or reversed
/// intervals dropped; touching ones merged).
///
/// ```
/// use dagwire_analysis::intervals::union;
/// assert_eq!(union(vec![(5, 8), (0, 2), (1, 3), (8, 9), (4, 4)]), [(0, 3), (5, 9)]);
/// ```
pub fn union(mut intervals: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    intervals.retain(|(s, e)| e > s);
    intervals.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(intervals.len());
    for (s, e) in intervals {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Total length of sorted disjoint intervals (as [`union`] returns).
///
/// ```
/// use dagwire_analysis::intervals::length;
/// assert_eq!(length(&[(0, 3), (5, 9)]), 7);
/// ```
pub fn length(disjoint: &[(i64, i64)]) -> i64 {
    disjoint.iter().map(|(s, e)| e - s).sum()
}

/// Length of the intersection of two sets of sorted disjoint intervals.
///
/// ```
/// use dagwire_analysis::intervals::overlap;
/// // compute [0,10) and [20,30); communication [5,25): 5 + 5 ns hidden.
/// assert_eq!(overlap(&[(0, 10), (20, 30)], &[(5, 25)]), 10);
/// assert_eq!(overlap(&[(0, 10)], &[]), 0);
/// ```
pub fn overlap(a: &[(i64, i64)], b: &[(i64, i64)]) -> i64 {
    let (mut i, mut j, mut total) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let (s, e) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
        if e > s {
            total += e - s;
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_symmetric_and_bounded() {
        let a = union(vec![(0, 4), (6, 12), (15, 16)]);
        let b = union(vec![(2, 7), (11, 20)]);
        assert_eq!(overlap(&a, &b), overlap(&b, &a));
        // [2,4) + [6,7) + [11,12) + [15,16) = 2 + 1 + 1 + 1
        assert_eq!(overlap(&a, &b), 5);
        assert!(overlap(&a, &b) <= length(&a).min(length(&b)));
    }
}
