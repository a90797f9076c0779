//! Expands a sweep's grid into run points and checks each one can be built, so a
//! bad combination (a tile larger than the matrix) stops the sweep before any run.

use crate::sweep::{CORE_AXES, Sweep, SweepError, axis_values, component_params};
use dagwire_runtime::drivers::{CheckKey, DriverCheck, DriverInfo, RunRequest};
use dagwire_runtime::{Fault, KernelId, Kernels, ParamValue, Params, Progress, StrategyFactory};
use dagwire_strategies::StrategyInfo;
use dagwire_workloads::WorkloadInfo;
use std::collections::BTreeMap;

/// One run point: a full assignment of every axis.
#[derive(Clone)]
pub struct Point {
    /// Position in the sweep, from 0.
    pub id: u32,
    /// The workload.
    pub workload: &'static WorkloadInfo,
    /// The strategy.
    pub strategy: &'static StrategyInfo,
    /// The driver.
    pub driver: &'static DriverInfo,
    /// Ranks.
    pub ranks: usize,
    /// Kernel workers per rank.
    pub workers: usize,
    /// Progress mode.
    pub progress: Progress,
    /// A deliberate fault (testing that verification catches corruption).
    pub fault: Option<Fault>,
    /// The workload's parameters, defaults filled in.
    pub workload_params: Params,
    /// The strategy's parameters, defaults filled in.
    pub strategy_params: Params,
    /// The driver's parameters, defaults filled in.
    pub driver_params: Params,
    /// Every parameter as a table column (`ranks`, `cholesky.tile`, ...).
    pub columns: Vec<(String, ParamValue)>,
}

impl Point {
    /// A short human label: `cholesky/eager/local ranks=2 n=1024 tile=256`.
    pub fn label(&self) -> String {
        let params: Vec<String> = self
            .columns
            .iter()
            .filter(|(k, _)| k.contains('.'))
            .map(|(k, v)| format!("{}={v}", k.split_once('.').map_or(k.as_str(), |(_, p)| p)))
            .collect();
        format!(
            "{}/{}/{} ranks={} workers={} {}",
            self.workload.name,
            self.strategy.name,
            self.driver.name,
            self.ranks,
            self.workers,
            params.join(" ")
        )
    }
}

impl Point {
    /// The request that runs this point with `strategy` on the workload's `dag`,
    /// `kernels` and `kernel_name`, a no-progress `timeout` and the run's `seed`, with
    /// no observer (set [`RunRequest::observer`] to watch it).
    pub fn request<'a>(
        &'a self,
        dag: &'a std::sync::Arc<dagwire_runtime::Dag>,
        kernels: &'a dyn Kernels,
        kernel_name: &'a (dyn Fn(KernelId) -> &'static str + Sync),
        strategy: StrategyFactory<'a>,
        timeout: std::time::Duration,
        seed: u64,
    ) -> RunRequest<'a> {
        RunRequest {
            dag,
            kernels,
            kernel_name,
            strategy,
            params: &self.driver_params,
            ranks: self.ranks,
            workers: self.workers,
            progress: self.progress,
            timeout,
            fault: self.fault,
            seed,
            observer: None,
        }
    }
}

/// All points of a sweep, in grid order (earlier keys in the file vary slowest).
pub fn expand(sweep: &Sweep) -> Result<Vec<Point>, SweepError> {
    let values = axis_values(sweep);
    let mut order: Vec<&str> = sweep.axes.iter().map(|a| a.key.as_str()).collect();
    order.extend(CORE_AXES.iter().filter(|k| sweep.axis(k).is_none()));
    let mut assignments: Vec<BTreeMap<&str, &ParamValue>> = vec![BTreeMap::new()];
    for key in &order {
        assignments = assignments
            .into_iter()
            .flat_map(|a| {
                values[*key].iter().map(move |v| {
                    let mut a = a.clone();
                    a.insert(*key, v);
                    a
                })
            })
            .collect();
    }
    let mut points: Vec<Point> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for a in assignments {
        let point = build_point(sweep, &a, points.len() as u32)?;
        // Component parameters of components not chosen were dropped: skip repeats.
        if seen.insert(format!("{:?}", point.columns)) {
            points.push(point);
        }
    }
    Ok(points)
}

fn build_point(sweep: &Sweep, a: &BTreeMap<&str, &ParamValue>, id: u32) -> Result<Point, SweepError> {
    let name = |k: &str| a[k].to_string();
    let int = |k: &str| match a[k] {
        ParamValue::Int(v) => *v as usize,
        _ => unreachable!("validated as an integer"),
    };
    let workload = dagwire_workloads::find(&name("workload")).expect("validated");
    let strategy = dagwire_strategies::find(&name("strategy")).expect("validated");
    let component = |c: &str| -> BTreeMap<String, ParamValue> {
        a.iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(c).and_then(|p| p.strip_prefix('.')).map(|p| (p.to_string(), (*v).clone()))
            })
            .collect()
    };
    let resolve = |c: &str| {
        Params::resolve(&component_params(c).unwrap_or_default(), component(c)).map_err(|e| SweepError {
            file: sweep.path.clone(),
            line: sweep.line_of(&format!("{c}.{}", e.key)),
            key: format!("grid.{c}.{}", e.key),
            message: e.reason,
        })
    };
    let (workload_params, strategy_params) = (resolve(workload.name)?, resolve(strategy.name)?);
    let driver_params = resolve(&name("driver"))?;
    let mut columns: Vec<(String, ParamValue)> = CORE_AXES.iter().map(|k| (k.to_string(), a[k].clone())).collect();
    columns.extend(workload_params.iter().map(|(k, v)| (format!("{}.{k}", workload.name), v.clone())));
    columns.extend(strategy_params.iter().map(|(k, v)| (format!("{}.{k}", strategy.name), v.clone())));
    columns.extend(driver_params.iter().map(|(k, v)| (format!("{}.{k}", name("driver")), v.clone())));
    // The columns keep input files as the sweep wrote them; the runs read them from
    // the sweep file's folder (and `experiment run` pins them to recorded copies).
    let (mut workload_params, mut strategy_params, mut driver_params) =
        (workload_params, strategy_params, driver_params);
    crate::inputs::resolve_params(sweep, workload.name, &mut workload_params);
    crate::inputs::resolve_params(sweep, strategy.name, &mut strategy_params);
    crate::inputs::resolve_params(sweep, &name("driver"), &mut driver_params);
    let point = Point {
        id,
        workload,
        strategy,
        driver: crate::drivers::find(&name("driver")).expect("validated"),
        ranks: int("ranks"),
        workers: int("workers"),
        progress: Progress::from_name(&name("progress")).expect("validated"),
        fault: Fault::from_name(&name("fault")).expect("validated"),
        workload_params,
        strategy_params,
        driver_params,
        columns,
    };
    check_point(sweep, &point)?;
    Ok(point)
}

/// Lets the point's driver and workload refuse combinations (tile > n, too many ranks)
/// without building its DAG: a sweep checks every point before the first runs, and
/// each DAG is built once, when its point runs.
fn check_point(sweep: &Sweep, p: &Point) -> Result<(), SweepError> {
    let err = |key: String, message: String| SweepError {
        file: sweep.path.clone(),
        line: sweep.line_of(key.trim_start_matches("grid.")),
        key,
        message: format!("{message} (in point {})", p.label()),
    };
    if p.progress == Progress::Inline && p.workers > 1 {
        return Err(err(
            "grid.workers".into(),
            "progress = \"inline\" runs kernels on the rank's own thread, so workers must be 1".into(),
        ));
    }
    let driver = p.driver;
    let needs = (p.strategy.needs)(&p.strategy_params);
    dagwire_runtime::collective::check_capabilities(driver.name, driver.offers, p.strategy.name, needs)
        .map_err(|e| err("grid.strategy".into(), e.to_string()))?;
    let check = DriverCheck { params: &p.driver_params, ranks: p.ranks, workers: p.workers, fault: p.fault };
    (driver.check)(&check).map_err(|e| {
        let key = match e.key {
            CheckKey::Param(k) => format!("grid.{}.{k}", driver.name),
            CheckKey::Axis(k) => format!("grid.{k}"),
        };
        err(key, e.reason)
    })?;
    if dagwire_sim::registry::models_a_machine(driver) {
        // A kernel kind in the machine file that no registered workload runs is refused,
        // not one that only this point's workload does not run: one machine file serves
        // every workload (a preset rates `potrf` for Cholesky and `moe-ffn` for MoE).
        let machine = p.driver_params.str(dagwire_sim::registry::MACHINE);
        dagwire_sim::machine::check_kernel_kinds(machine, &dagwire_workloads::kernel_kinds())
            .map_err(|e| err(format!("grid.{}.{}", driver.name, dagwire_sim::registry::MACHINE), e.to_string()))?;
    }
    (p.workload.check)(&p.workload_params, p.ranks).map_err(|e| {
        let key =
            if e.key == "ranks" { "grid.ranks".to_string() } else { format!("grid.{}.{}", p.workload.name, e.key) };
        err(key, e.reason)
    })
}
