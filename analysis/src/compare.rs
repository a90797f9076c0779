//! Which strategy wins where, stated from the data.
//!
//! Points are grouped into **configurations**: equal values of every varying
//! parameter except the strategy and the strategy's own parameters. Within a
//! configuration the **contenders** (a strategy with its varying parameters, e.g.
//! `rendezvous (eager_limit=0)`) are ranked by the median of the point's figure of
//! merit ([`Merit`]): makespan for most workloads, latency or bandwidth for the
//! micro benchmarks. The wins of each contender are then described by the simplest
//! rule over the configuration parameters that matches exactly its winning
//! configurations (`tile >= 256 and ranks >= 16`), or listed when no rule does.

use crate::point_summary::PointSummary;
use crate::stats::Spread;
use std::collections::BTreeMap;

/// What a point is judged by.
///
/// ```
/// use dagwire_analysis::compare::Merit;
/// assert!(Merit::Bandwidth.higher_is_better());
/// assert_eq!(Merit::Makespan.label(), "makespan");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merit {
    /// Makespan, lower is better.
    Makespan,
    /// A micro benchmark's latency (µs), lower is better.
    Latency,
    /// A micro benchmark's bandwidth (MB/s), higher is better.
    Bandwidth,
}

impl Merit {
    /// The merit of a point and its value (median, spread), if it has one.
    ///
    /// ```
    /// use dagwire_analysis::{Spread, compare::Merit, point_summary::PointSummary};
    /// let p = PointSummary { makespan_ms: Spread::of(&[3.0]), ..Default::default() };
    /// assert_eq!(Merit::of(&p).map(|(m, s)| (m, s.median)), Some((Merit::Makespan, 3.0)));
    /// ```
    pub fn of(p: &PointSummary) -> Option<(Merit, Spread)> {
        if let Some(s) = p.figure("latency_us").or_else(|| p.figure("avg_us")) {
            return Some((Merit::Latency, *s));
        }
        if let Some(s) = p.figure("bandwidth_mbps") {
            return Some((Merit::Bandwidth, *s));
        }
        p.makespan_ms.map(|s| (Merit::Makespan, s))
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        self == Merit::Bandwidth
    }

    /// The name used in sentences.
    pub fn label(self) -> &'static str {
        match self {
            Merit::Makespan => "makespan",
            Merit::Latency => "latency",
            Merit::Bandwidth => "bandwidth",
        }
    }

    /// The unit of its values.
    ///
    /// ```
    /// assert_eq!(dagwire_analysis::compare::Merit::Latency.unit(), "µs");
    /// ```
    pub fn unit(self) -> &'static str {
        match self {
            Merit::Makespan => "ms",
            Merit::Latency => "µs",
            Merit::Bandwidth => "MB/s",
        }
    }
}

/// The contenders of one configuration, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct Configuration {
    /// The configuration's parameter values, `(column, value)`.
    pub values: Vec<(String, String)>,
    /// What the contenders are judged by.
    pub merit: Merit,
    /// `(contender, point_id, merit)`, best first.
    pub ranking: Vec<(String, i64, Spread)>,
}

impl Configuration {
    /// A short label: `driver=local tile=128`, or `all points` when nothing varies.
    ///
    /// ```
    /// use dagwire_analysis::compare::{Configuration, Merit};
    /// let c = Configuration { values: vec![("cholesky.tile".into(), "128".into())], merit: Merit::Makespan, ranking: vec![] };
    /// assert_eq!(c.label(), "tile=128");
    /// ```
    pub fn label(&self) -> String {
        if self.values.is_empty() {
            return "all points".into();
        }
        self.values.iter().map(|(k, v)| format!("{}={v}", short(k))).collect::<Vec<_>>().join(" ")
    }

    /// How much better the winner is than the runner-up, as a fraction of the
    /// runner-up's median (0.12 = 12%); `None` with fewer than two contenders.
    pub fn margin(&self) -> Option<f64> {
        let (best, second) = (self.ranking.first()?.2.median, self.ranking.get(1)?.2.median);
        if second == 0.0 {
            return None;
        }
        Some(if self.merit.higher_is_better() { (best - second) / second } else { (second - best) / second })
    }

    /// The winner's and runner-up's 95% confidence intervals overlap, so the win may be noise.
    pub fn within_noise(&self) -> bool {
        match (self.ranking.first().and_then(|r| r.2.ci95), self.ranking.get(1).and_then(|r| r.2.ci95)) {
            (Some(a), Some(b)) => a.0 <= b.1 && b.0 <= a.1,
            _ => false,
        }
    }
}

/// A parameter name without its namespace: `cholesky.tile` → `tile`.
///
/// ```
/// assert_eq!(dagwire_analysis::compare::short("cholesky.tile"), "tile");
/// ```
pub fn short(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(_, p)| p)
}

/// The contender name of a point: its strategy and the strategy's parameters among
/// `varying`: `rendezvous (eager_limit=0)`.
///
/// ```
/// use dagwire_analysis::point_summary::PointSummary;
/// let p = PointSummary { params: vec![("strategy".into(), "rendezvous".into()), ("rendezvous.eager_limit".into(), "0".into())], ..Default::default() };
/// assert_eq!(dagwire_analysis::compare::contender(&p, &["rendezvous.eager_limit".into()]), "rendezvous (eager_limit=0)");
/// ```
pub fn contender(p: &PointSummary, varying: &[String]) -> String {
    let strategy = p.param("strategy").unwrap_or("?").to_string();
    let own: Vec<String> = varying
        .iter()
        .filter(|k| k.starts_with(&format!("{strategy}.")))
        .filter_map(|k| p.param(k).map(|v| format!("{}={v}", short(k))))
        .collect();
    if own.is_empty() { strategy } else { format!("{strategy} ({})", own.join(" ")) }
}

/// The varying parameters that define configurations: all but `strategy` and the
/// strategies' own (`<strategy name>.*`).
pub fn configuration_params(points: &[PointSummary], varying: &[String]) -> Vec<String> {
    let strategies: Vec<&str> = points.iter().filter_map(|p| p.param("strategy")).collect();
    varying
        .iter()
        .filter(|k| *k != "strategy" && !strategies.iter().any(|s| k.starts_with(&format!("{s}."))))
        .cloned()
        .collect()
}

/// Every configuration with at least one successful point, in order of first appearance.
pub fn configurations(points: &[PointSummary], varying: &[String]) -> Vec<Configuration> {
    let keys = configuration_params(points, varying);
    let mut groups: Vec<Configuration> = Vec::new();
    for p in points.iter().filter(|p| !p.failed()) {
        let Some((merit, spread)) = Merit::of(p) else { continue };
        let values: Vec<(String, String)> =
            keys.iter().map(|k| (k.clone(), p.param(k).unwrap_or("-").to_string())).collect();
        let entry = (contender(p, varying), p.point_id, spread);
        match groups.iter_mut().find(|g| g.values == values) {
            Some(g) => g.ranking.push(entry),
            None => groups.push(Configuration { values, merit, ranking: vec![entry] }),
        }
    }
    for g in &mut groups {
        let sign = if g.merit.higher_is_better() { -1.0 } else { 1.0 };
        g.ranking.sort_by(|a, b| (sign * a.2.median).total_cmp(&(sign * b.2.median)));
    }
    groups
}

/// Sentences saying which contender wins where, from `configs`. Only configurations
/// with two or more contenders count; a single contender gets one sentence saying
/// there was nothing to compare.
///
/// ```
/// use dagwire_analysis::compare::{Configuration, Merit, verdicts};
/// use dagwire_analysis::Spread;
/// let s = |v: f64| Spread::of(&[v]).unwrap();
/// let cfg = |tile: &str, a: f64, b: f64| {
///     let mut ranking = vec![("rma".to_string(), 0, s(a)), ("eager".to_string(), 1, s(b))];
///     ranking.sort_by(|x, y| x.2.median.total_cmp(&y.2.median));
///     Configuration { values: vec![("cholesky.tile".into(), tile.into())], merit: Merit::Makespan, ranking }
/// };
/// let v = verdicts(&[cfg("128", 10.0, 9.0), cfg("256", 8.8, 10.0), cfg("512", 8.0, 10.0)]);
/// assert!(v.iter().any(|l| l.contains("**rma** is fastest for tile >= 256")), "{v:?}");
/// assert!(v.iter().any(|l| l.contains("**eager** is fastest for tile = 128")), "{v:?}");
/// ```
pub fn verdicts(configs: &[Configuration]) -> Vec<String> {
    let merits: Vec<Merit> = configs.iter().fold(Vec::new(), |mut v, c| {
        if !v.contains(&c.merit) {
            v.push(c.merit);
        }
        v
    });
    if merits.len() <= 1 {
        return verdicts_of_one_merit(configs);
    }
    merits
        .into_iter()
        .flat_map(|m| {
            let same: Vec<Configuration> = configs.iter().filter(|c| c.merit == m).cloned().collect();
            verdicts_of_one_merit(&same)
        })
        .collect()
}

/// [`verdicts`] for configurations judged by one merit.
fn verdicts_of_one_merit(configs: &[Configuration]) -> Vec<String> {
    let contested: Vec<&Configuration> = configs.iter().filter(|c| c.ranking.len() >= 2).collect();
    let all: Vec<&str> = {
        let mut v: Vec<&str> = configs.iter().flat_map(|c| c.ranking.iter().map(|r| r.0.as_str())).collect();
        v.sort();
        v.dedup();
        v
    };
    if contested.is_empty() {
        return vec![match all.as_slice() {
            [] => "No point finished, so no strategy can be ranked.".to_string(),
            [one] => {
                format!("Only **{one}** ran in each configuration: there is no other strategy to compare it with.")
            }
            _ => "No configuration ran more than one strategy, so none can be ranked against another.".to_string(),
        }];
    }
    let mut wins: BTreeMap<&str, Vec<&Configuration>> = BTreeMap::new();
    let mut ties: Vec<&Configuration> = Vec::new();
    for c in &contested {
        if c.margin().is_some_and(|m| m.abs() < TIE) {
            ties.push(c);
        } else {
            wins.entry(c.ranking[0].0.as_str()).or_default().push(c);
        }
    }
    let mut out = Vec::new();
    let mut ordered: Vec<(&str, Vec<&Configuration>)> = wins.into_iter().collect();
    ordered.sort_by_key(|(_, cs)| std::cmp::Reverse(cs.len()));
    for (who, cs) in ordered {
        let merit = cs[0].merit;
        let verb = match merit {
            Merit::Makespan => "fastest",
            Merit::Latency => "lowest in latency",
            Merit::Bandwidth => "highest in bandwidth",
        };
        let margins: Vec<f64> = cs.iter().filter_map(|c| c.margin()).map(|m| m * 100.0).collect();
        let med = Spread::of(&margins).map(|s| s.median).unwrap_or(0.0);
        let lo = margins.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = margins.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let by = if margins.len() > 1 {
            format!("by {med:.1}% median over the runner-up ({lo:.1}–{hi:.1}%)")
        } else {
            format!("by {med:.1}% over the runner-up")
        };
        let noisy = cs.iter().filter(|c| c.within_noise()).count();
        let noise = match noisy {
            0 => String::new(),
            n if n == cs.len() => "; within noise everywhere (95% CIs overlap)".into(),
            n => format!("; within noise in {n} of them (95% CIs overlap)"),
        };
        let count = format!("{} of {} configurations", cs.len(), contested.len());
        let whole = cs.len() == contested.len();
        let place = if whole && contested.len() == 1 {
            format!("for {}", cs[0].label())
        } else if whole {
            format!("in all {} configurations", contested.len())
        } else if let Some(rule) = rule_for(&cs, &contested) {
            format!("for {rule} ({count})")
        } else {
            let list: Vec<String> = cs.iter().map(|c| c.label()).collect();
            format!("in {count}: {}", list.join("; "))
        };
        out.push(format!("**{who}** is {verb} {place}, {by}{noise}."));
    }
    for c in ties {
        let tied: Vec<String> = c
            .ranking
            .iter()
            .take_while(|r| (r.2.median - c.ranking[0].2.median).abs() <= TIE * c.ranking[0].2.median.abs())
            .map(|r| format!("**{}**", r.0))
            .collect();
        out.push(format!(
            "For {}, {} tie (medians within {:.1}% of each other).",
            c.label(),
            tied.join(", "),
            TIE * 100.0
        ));
    }
    out
}

/// Contenders whose medians differ by less than this fraction are tied.
pub const TIE: f64 = 0.001;

/// One condition over a configuration parameter.
#[derive(Clone, Debug)]
enum Cond {
    AtLeast(String, f64, String),
    AtMost(String, f64, String),
    Equals(String, String),
}

impl Cond {
    fn holds(&self, c: &Configuration) -> bool {
        let get = |k: &str| c.values.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match self {
            Cond::AtLeast(k, v, _) => get(k).and_then(|x| x.parse::<f64>().ok()).is_some_and(|x| x >= *v),
            Cond::AtMost(k, v, _) => get(k).and_then(|x| x.parse::<f64>().ok()).is_some_and(|x| x <= *v),
            Cond::Equals(k, v) => get(k) == Some(v.as_str()),
        }
    }

    fn text(&self) -> String {
        match self {
            Cond::AtLeast(k, _, t) => format!("{} >= {t}", short(k)),
            Cond::AtMost(k, _, t) => format!("{} <= {t}", short(k)),
            Cond::Equals(k, v) => format!("{} = {v}", short(k)),
        }
    }
}

/// The simplest rule (one condition, else two joined by "and") that holds for
/// exactly the configurations `won` among `all`.
fn rule_for(won: &[&Configuration], all: &[&Configuration]) -> Option<String> {
    let mut conds = Vec::new();
    let keys: Vec<String> = all.first()?.values.iter().map(|(k, _)| k.clone()).collect();
    for k in &keys {
        let mut values: Vec<String> =
            all.iter().filter_map(|c| c.values.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).collect();
        values.sort();
        values.dedup();
        let numeric = values.iter().all(|v| v.parse::<f64>().is_ok());
        for v in &values {
            conds.push(Cond::Equals(k.clone(), v.clone()));
            if numeric && values.len() > 2 {
                let x: f64 = v.parse().unwrap_or(0.0);
                conds.push(Cond::AtLeast(k.clone(), x, v.clone()));
                conds.push(Cond::AtMost(k.clone(), x, v.clone()));
            }
        }
    }
    let is_won = |c: &Configuration| won.iter().any(|w| std::ptr::eq(*w, c));
    let exact = |test: &dyn Fn(&Configuration) -> bool| all.iter().all(|c| test(c) == is_won(c));
    if let Some(c) = conds.iter().find(|c| exact(&|x| c.holds(x))) {
        return Some(c.text());
    }
    for (i, a) in conds.iter().enumerate() {
        for b in &conds[i + 1..] {
            if exact(&|x| a.holds(x) && b.holds(x)) {
                return Some(format!("{} and {}", a.text(), b.text()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(values: &[(&str, &str)], ranking: &[(&str, f64)]) -> Configuration {
        let mut r: Vec<(String, i64, Spread)> =
            ranking.iter().map(|(n, v)| (n.to_string(), 0, Spread::of(&[*v]).unwrap())).collect();
        r.sort_by(|a, b| a.2.median.total_cmp(&b.2.median));
        Configuration {
            values: values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            merit: Merit::Makespan,
            ranking: r,
        }
    }

    #[test]
    fn a_two_condition_rule_is_found() {
        let mut all = Vec::new();
        for ranks in ["4", "16", "64"] {
            for tile in ["128", "256", "512"] {
                let rma_wins = ranks != "4" && tile != "128";
                let rma = if rma_wins { 8.8 } else { 11.0 };
                all.push(cfg(&[("ranks", ranks), ("cholesky.tile", tile)], &[("rma", rma), ("eager", 10.0)]));
            }
        }
        let v = verdicts(&all);
        assert!(v[0].starts_with("**eager** is fastest in 5 of 9 configurations: ranks=4 tile=128;"), "{v:?}");
        let rma = v.iter().find(|l| l.starts_with("**rma**")).unwrap();
        assert!(rma.contains("ranks >= 16 and tile >= 256 (4 of 9 configurations)"), "{rma}");
        assert!(rma.contains("by 12.0% median"), "{rma}");
    }

    #[test]
    fn latency_and_bandwidth_wins_are_stated_separately() {
        let mut lat =
            cfg(&[("micro.pattern", "pingpong"), ("micro.size", "8")], &[("eager", 1.0), ("rendezvous", 2.0)]);
        lat.merit = Merit::Latency;
        let mut bw =
            cfg(&[("micro.pattern", "bandwidth"), ("micro.size", "8")], &[("eager", 1.0), ("rendezvous", 2.0)]);
        bw.merit = Merit::Bandwidth;
        bw.ranking.reverse();
        let v = verdicts(&[lat, bw]);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].starts_with("**eager** is lowest in latency for pattern=pingpong size=8, by 50.0%"), "{v:?}");
        assert!(
            v[1].starts_with("**rendezvous** is highest in bandwidth for pattern=bandwidth size=8, by 100.0%"),
            "{v:?}"
        );
    }

    #[test]
    fn a_single_strategy_is_said_to_have_no_rival() {
        let v = verdicts(&[cfg(&[("ranks", "2")], &[("eager", 5.0)]), cfg(&[("ranks", "4")], &[("eager", 3.0)])]);
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("Only **eager** ran"), "{v:?}");
    }

    #[test]
    fn bandwidth_ranks_higher_first_and_margins_are_relative_to_the_runner_up() {
        let mut c = cfg(&[], &[]);
        c.merit = Merit::Bandwidth;
        c.ranking =
            vec![("a".into(), 0, Spread::of(&[100.0]).unwrap()), ("b".into(), 1, Spread::of(&[125.0]).unwrap())];
        c.ranking.sort_by(|x, y| (-x.2.median).total_cmp(&(-y.2.median)));
        assert_eq!(c.ranking[0].0, "b");
        assert!((c.margin().unwrap() - 0.25).abs() < 1e-12);
    }
}
