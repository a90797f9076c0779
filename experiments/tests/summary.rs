//! The summary printed after a sweep: medians over repetitions, figures included.

use dagwire_analysis::point_summary::is_figure_column;
use dagwire_analysis::{PointRecord, combine, write_point_parts};
use dagwire_experiments::{drivers, summary};
use dagwire_runtime::ParamValue;

/// One repetition of a micro point whose latency figure is `latency_us`.
fn rep(repetition: u32, latency_us: f64) -> PointRecord {
    let params = vec![
        ("workload".to_string(), ParamValue::Str("micro".into())),
        ("strategy".to_string(), ParamValue::Str("eager".into())),
        ("ranks".to_string(), ParamValue::Int(2)),
        ("micro.size".to_string(), ParamValue::Int(64)),
        ("micro.latency_us".to_string(), ParamValue::Float(latency_us)),
    ];
    PointRecord { point_id: 0, repetition, params, makespan_ns: Some(1000), verified: true, ..Default::default() }
}

#[test]
fn workload_figures_are_shown_as_the_median_over_repetitions() {
    let dir = tempfile::tempdir().unwrap();
    // The first repetition is not the median, so showing it would fail this test.
    for (r, latency) in [5.0, 1.0, 3.0].into_iter().enumerate() {
        write_point_parts(dir.path(), &rep(r as u32, latency), None).unwrap();
    }
    combine(dir.path()).unwrap();
    let text = summary::render(dir.path()).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let at = header.iter().position(|&h| h == "micro.latency_us").expect("the figure has a column");
    assert_eq!(row[at], "3.00", "{text}");
    assert!(!header.contains(&"micro.size"), "a parameter that does not vary is not shown: {text}");
}

#[test]
fn no_registered_parameter_looks_like_a_figure_column() {
    // Figures are told from parameters by their unit suffix (`_us`, `_mbps`, ...), in the
    // summary and the report alike; a parameter named that way would be shown as a result.
    let workloads = dagwire_workloads::REGISTRY.iter().map(|w| (w.name, (w.params)()));
    let strategies = dagwire_strategies::REGISTRY.iter().map(|s| (s.name, (s.params)()));
    let drivers = drivers::REGISTRY.iter().map(|d| (d.name, (d.params)()));
    for (component, specs) in workloads.chain(strategies).chain(drivers) {
        for p in specs {
            let column = format!("{component}.{}", p.name);
            assert!(!is_figure_column(&column), "parameter {column} ends like a figure column");
        }
    }
}
