//! `experiment list`: the workloads, strategies and drivers this binary knows, with
//! their parameters — generated from the same registries that validate sweeps.

use dagwire_runtime::ParamSpec;
use std::fmt::Write;

/// What to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// Everything.
    All,
    /// Workloads and their parameters.
    Workloads,
    /// Transfer strategies and their parameters.
    Strategies,
    /// Drivers.
    Drivers,
    /// Machine presets for the sim driver.
    Machines,
    /// The columns of the results tables (Markdown).
    Tables,
}

/// The listing as text.
pub fn render(what: What) -> String {
    let mut out = String::new();
    if what == What::Tables {
        return dagwire_analysis::schema_markdown();
    }
    if matches!(what, What::All | What::Workloads) {
        out.push_str("WORKLOADS (grid.workload; parameters as [grid.<workload>] keys)\n");
        for w in dagwire_workloads::REGISTRY {
            entry(&mut out, w.name, w.summary, &(w.params)());
            let _ = writeln!(
                out,
                "      kernel kinds (keys of a machine file's rate tables): {}",
                w.kernel_kinds.join(", ")
            );
        }
    }
    if matches!(what, What::All | What::Strategies) {
        out.push_str("STRATEGIES (grid.strategy; parameters as [grid.<strategy>] keys)\n");
        for s in dagwire_strategies::REGISTRY {
            entry(&mut out, s.name, s.summary, &(s.params)());
        }
    }
    if matches!(what, What::All | What::Machines) {
        out.push_str("MACHINES (grid.sim.machine: a preset name or a path to a TOML file like machines/*.toml)\n");
        for name in dagwire_sim::machine::preset_names() {
            let machine = dagwire_sim::machine::load_machine(name).expect("presets are valid (tested)");
            for line in dagwire_sim::machine::describe(&machine).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    if matches!(what, What::All | What::Drivers) {
        out.push_str("DRIVERS (grid.driver)\n");
        for d in crate::drivers::REGISTRY {
            let _ = writeln!(out, "  {:<12} {}", d.name, d.summary);
            if let Some(host) = (d.host)() {
                let _ = writeln!(out, "      here: {host}");
            }
            params(&mut out, d.name, &(d.params)());
        }
        out.push_str("  every driver also takes grid.ranks, grid.workers (kernel threads per rank, default 1)\n");
        out.push_str(
            "  grid.progress (thread: a progress thread per rank, kernels on worker threads; inline: the rank runs \
             kernels and polls between them;\n    auto, the default: inline when the node's ranks x (workers + 1) \
             threads exceed its usable cores, else thread; the run says which on stderr)\n",
        );
        out.push_str(
            "  and grid.fault (none; corrupt-data flips a bit of the first data message, to see verification fail)\n",
        );
    }
    out
}

fn entry(out: &mut String, name: &str, summary: &str, specs: &[ParamSpec]) {
    let _ = writeln!(out, "  {name:<12} {summary}");
    params(out, name, specs);
}

fn params(out: &mut String, name: &str, params: &[ParamSpec]) {
    for p in params {
        let _ = writeln!(out, "      {}.{:<10} {} (default {}): {}", name, p.name, p.kind, p.default, p.help);
    }
}
