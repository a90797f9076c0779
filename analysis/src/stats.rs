//! Small statistics over repetitions and samples: percentiles, and the median with
//! its spread and a confidence interval.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// The `q`-quantile (0 ≤ q ≤ 1) of `values` by linear interpolation between the
/// closest ranks (the method of numpy's default and polars' `linear`); `None` if
/// there are no values. NaNs are ignored.
///
/// ```
/// use dagwire_analysis::stats::percentile;
/// assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 0.5), Some(2.5));
/// assert_eq!(percentile(&[10.0, 20.0], 0.99), Some(19.9));
/// assert_eq!(percentile(&[], 0.5), None);
/// ```
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

/// A sample summarised: count, median, mean, extremes, and a 95% confidence interval
/// of the mean (Student's t), which needs at least two values.
///
/// ```
/// use dagwire_analysis::Spread;
/// let s = Spread::of(&[10.0, 12.0, 11.0]).unwrap();
/// assert_eq!((s.n, s.median, s.min, s.max), (3, 11.0, 10.0, 12.0));
/// let (lo, hi) = s.ci95.unwrap();
/// // mean 11, sd 1, t(0.975, 2) = 4.303: 11 ± 2.484
/// assert!((lo - 8.516).abs() < 1e-3 && (hi - 13.484).abs() < 1e-3);
/// assert!(Spread::of(&[5.0]).unwrap().ci95.is_none());
/// assert!(Spread::of(&[]).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// Number of values.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// 95% confidence interval of the mean; `None` for fewer than two values.
    pub ci95: Option<(f64, f64)>,
}

impl Spread {
    /// The spread of `values` (NaNs ignored); `None` if none are left.
    ///
    /// ```
    /// let s = dagwire_analysis::Spread::of(&[2.0, 2.0]).unwrap();
    /// assert_eq!(s.ci95, Some((2.0, 2.0)));
    /// ```
    pub fn of(values: &[f64]) -> Option<Spread> {
        let v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        let n = v.len();
        let median = percentile(&v, 0.5)?;
        let mean = v.iter().sum::<f64>() / n as f64;
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let ci95 = (n >= 2).then(|| {
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let half = if var == 0.0 {
                0.0
            } else {
                let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).map(|d| d.inverse_cdf(0.975)).unwrap_or(f64::NAN);
                t * (var / n as f64).sqrt()
            };
            (mean - half, mean + half)
        });
        Some(Spread { n, median, mean, min, max, ci95 })
    }

    /// Half the relative width of the confidence interval (0.05 = ±5% of the mean);
    /// `None` without an interval or for a zero mean.
    ///
    /// ```
    /// let s = dagwire_analysis::Spread::of(&[9.0, 11.0]).unwrap();
    /// assert!(s.relative_ci().unwrap() > 0.5);
    /// ```
    pub fn relative_ci(&self) -> Option<f64> {
        let (lo, hi) = self.ci95?;
        (self.mean != 0.0).then(|| (hi - lo) / 2.0 / self.mean.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_hundred() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.5));
        assert!((percentile(&v, 0.99).unwrap() - 99.01).abs() < 1e-9);
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
    }

    #[test]
    fn nans_are_ignored() {
        assert_eq!(percentile(&[f64::NAN, 3.0], 0.5), Some(3.0));
        assert_eq!(Spread::of(&[f64::NAN]), None);
    }
}
