//! Writing a calibrated machine file: the fitted values as TOML that
//! [`parse_machine`](super::parse_machine) reads back, each with its residual and the
//! measurement it came from in a comment.

use super::fit::{KernelByteCost, KernelCurve, KernelRate, LogGpFit};
use std::fmt::Write;

/// Everything `experiment calibrate` measured and fitted on one host.
#[derive(Clone, Debug)]
pub struct Calibration {
    /// Machine name (`this-host`).
    pub name: String,
    /// One line: host, driver, date.
    pub description: String,
    /// How the measurements were taken (driver, ranks, sizes), for the header comment.
    pub method: String,
    /// Ranks per node (the ranks measured when they share one node).
    pub ranks_per_node: u32,
    /// The path between ranks of one node.
    pub intra_node: LogGpFit,
    /// The path between nodes, when the measured ranks spanned nodes.
    pub inter_node: Option<LogGpFit>,
    /// Per-task overhead, ns, and how it was found.
    pub task_overhead_ns: (f64, String),
    /// CPU cost of handling one control message, ns, and how it was found.
    pub control_message_ns: (f64, String),
    /// CPU cost of one collective call, ns, and how it was found.
    pub collective_call_ns: (f64, String),
    /// CPU cost of each message a collective piece carries, ns, and how it was found.
    pub collective_message_ns: (f64, String),
    /// CPU cost of each payload byte a collective piece carries, ns, and how it was found.
    pub collective_ns_per_byte: (f64, String),
    /// What makes the figures doubtful (a loaded host, a fit that misses): each written
    /// as a `# WARNING:` comment at the top of the file.
    pub warnings: Vec<String>,
    /// How the per-byte CPU overhead (`o_per_byte_ns` of the segments, when they have
    /// one) was found.
    pub cpu_per_byte: String,
    /// Fitted kernel rates (GFLOP/s per core).
    pub kernels: Vec<KernelRate>,
    /// Fitted rates by task size, for the kernels measured at several sizes.
    pub curves: Vec<KernelCurve>,
    /// Fitted costs per byte written, for the kernels without flops that write data.
    pub byte_costs: Vec<KernelByteCost>,
    /// Rate for kernels not measured, and how it was chosen.
    pub default_gflops: (f64, String),
    /// How the measured driver progressed communication, and why.
    pub progress: (super::ProgressModel, String),
}

/// Formats a float so TOML keeps it a float (`3.0`, not `3`).
fn f(x: f64) -> String {
    let s = format!("{:.6}", x);
    let s = s.trim_end_matches('0');
    if s.ends_with('.') { format!("{s}0") } else { s.to_string() }
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn segments(out: &mut String, table: &str, fit: &LogGpFit, what: &str, cpu_note: &str) {
    for (i, s) in fit.segments.iter().enumerate() {
        let seg = &s.segment;
        let p = &s.latency;
        let _ = writeln!(out, "\n[[{table}.segments]]");
        let until = fit.segments.get(i + 1).map_or("up".to_string(), |n| format!("{} B", n.segment.from_bytes));
        let _ = writeln!(
            out,
            "# {what}: sizes {} B .. {until}; boundary found from the data (ping-pong sizes {} .. {} B, {} samples)",
            seg.from_bytes, p.from_bytes, p.to_bytes, p.samples
        );
        let _ = writeln!(out, "from_bytes = {}", seg.from_bytes);
        let gap = match s.stream_gap {
            Some((g, n)) => format!("median streaming interval of {n} gap-bound samples = {} ns", f(g)),
            None => "streaming bandwidth-bound at every size here: carried from the segment below".to_string(),
        };
        let _ = writeln!(out, "# o_s = o_r = min(streaming interval, (o_s + L + o_r) / 2); {gap}");
        let _ = writeln!(out, "o_s_ns = {}", f(seg.o_s_ns));
        let _ = writeln!(out, "o_r_ns = {}", f(seg.o_r_ns));
        let _ = writeln!(out, "g_ns = {}", f(seg.g_ns));
        let _ = writeln!(
            out,
            "# o_s + L + o_r = {} ns: intercept of the ping-pong line (one-way time per message from the trace), \
             rms residual {:.2}%",
            f(seg.o_s_ns + seg.l_ns + seg.o_r_ns),
            p.rms_rel_residual * 100.0
        );
        let _ = writeln!(out, "l_ns = {}", f(seg.l_ns));
        let _ = writeln!(
            out,
            "# slope of the same line: {:.3} GB/s, rms residual {:.2}%",
            1.0 / seg.g_per_byte_ns,
            p.rms_rel_residual * 100.0
        );
        let _ = writeln!(out, "g_per_byte_ns = {}", f(seg.g_per_byte_ns));
        if let Some(o) = seg.o_per_byte_ns {
            for line in cpu_note.lines() {
                let _ = writeln!(out, "# {line}");
            }
            let _ = writeln!(out, "o_per_byte_ns = {}", f(o));
        }
    }
}

impl Calibration {
    /// The machine file's text.
    ///
    /// ```
    /// use dagwire_sim::machine::calibrated::Calibration;
    /// use dagwire_sim::machine::fit::{Sample, fit_loggp};
    /// use dagwire_sim::machine::parse_machine;
    /// let sizes = [8u64, 64, 512, 4096, 32768];
    /// let pp: Vec<Sample> = sizes.iter().map(|&k| Sample { bytes: k, ns: 500.0 + 0.1 * k as f64 }).collect();
    /// let cal = Calibration {
    ///     name: "host".into(), description: "test".into(), method: "synthetic".into(), ranks_per_node: 2,
    ///     intra_node: fit_loggp(&pp, &pp, 2).unwrap(), inter_node: None,
    ///     task_overhead_ns: (900.0, "synthetic".into()), control_message_ns: (450.0, "synthetic".into()),
    ///     collective_call_ns: (20_000.0, "synthetic".into()), collective_message_ns: (300.0, "synthetic".into()),
    ///     collective_ns_per_byte: (0.25, "synthetic".into()), warnings: vec!["load average 3.1".into()], cpu_per_byte: String::new(), kernels: vec![], curves: vec![], byte_costs: vec![], default_gflops: (5.0, "synthetic".into()),
    ///     progress: (dagwire_sim::machine::ProgressModel::Inline, "synthetic".into()),
    /// };
    /// let m = parse_machine("host.toml", &cal.render()).unwrap();
    /// assert_eq!(m.compute.task_overhead_ns, 900.0);
    /// assert_eq!(m.compute.control_message_ns, 450.0);
    /// assert_eq!(m.compute.collective_call_ns, 20_000.0);
    /// assert_eq!((m.compute.collective_message_ns, m.compute.collective_ns_per_byte), (300.0, 0.25));
    /// assert!(cal.render().contains("\n# WARNING: load average 3.1\n"));
    /// assert_eq!(m.compute.progress, dagwire_sim::machine::ProgressModel::Inline);
    /// ```
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Written by `experiment calibrate`: {}", self.method);
        let _ = writeln!(
            out,
            "# Every fitted value has its source measurement and residual in the comment above it. Edit a copy\n\
             # rather than this file: a new calibration overwrites it.\n"
        );
        for w in &self.warnings {
            let _ = writeln!(out, "# WARNING: {w}");
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "name = {}", quote(&self.name));
        let _ = writeln!(out, "description = {}", quote(&self.description));
        let _ = writeln!(out, "fidelity = \"analytic\"");
        let _ = writeln!(out, "# The measured ranks shared one node.");
        let _ = writeln!(out, "ranks_per_node = {}", self.ranks_per_node);
        let last = self.inter_node.as_ref().unwrap_or(&self.intra_node).segments.last().expect("a fit has segments");
        let gbps = 8.0 / last.segment.g_per_byte_ns;
        let _ = writeln!(out, "# The largest messages' bandwidth (no separate NIC measurement).");
        let _ = writeln!(out, "nic_gbps = {}", f(gbps));
        match &self.inter_node {
            Some(fit) => segments(&mut out, "inter_node", fit, "between nodes", &self.cpu_per_byte),
            None => {
                let _ =
                    writeln!(out, "\n# inter_node: not measured (the ranks shared one node); a copy of intra_node.");
                segments(&mut out, "inter_node", &self.intra_node, "copy of intra_node", &self.cpu_per_byte);
            }
        }
        segments(&mut out, "intra_node", &self.intra_node, "within a node", &self.cpu_per_byte);
        let _ = writeln!(out, "\n[topology]\nkind = \"crossbar\"\nlink_gbps = {}", f(gbps));
        let _ = writeln!(out, "\n[compute]\nmode = \"model\"\ncores_per_rank = 1");
        let _ = writeln!(out, "# {}", self.default_gflops.1);
        let _ = writeln!(out, "default_gflops = {}", f(self.default_gflops.0));
        let _ = writeln!(out, "# {}", self.task_overhead_ns.1);
        let _ = writeln!(out, "task_overhead_ns = {}", f(self.task_overhead_ns.0));
        for line in self.control_message_ns.1.lines() {
            let _ = writeln!(out, "# {line}");
        }
        let _ = writeln!(out, "control_message_ns = {}", f(self.control_message_ns.0));
        for line in self.collective_call_ns.1.lines() {
            let _ = writeln!(out, "# {line}");
        }
        let _ = writeln!(out, "collective_call_ns = {}", f(self.collective_call_ns.0));
        for line in self.collective_message_ns.1.lines() {
            let _ = writeln!(out, "# {line}");
        }
        let _ = writeln!(out, "collective_message_ns = {}", f(self.collective_message_ns.0));
        for line in self.collective_ns_per_byte.1.lines() {
            let _ = writeln!(out, "# {line}");
        }
        let _ = writeln!(out, "collective_ns_per_byte = {}", f(self.collective_ns_per_byte.0));
        let _ = writeln!(out, "# The measured driver's progress: {}", self.progress.1);
        let progress = match self.progress.0 {
            super::ProgressModel::Thread => "thread",
            super::ProgressModel::Inline => "inline",
        };
        let _ = writeln!(out, "progress = \"{progress}\"");
        let _ = writeln!(out, "\n[compute.kernel_gflops]");
        for k in &self.kernels {
            let _ = writeln!(
                out,
                "# {} tasks, total flops / (total time - task overhead); rms residual per task {:.1}%",
                k.tasks,
                k.rms_rel_residual * 100.0
            );
            let _ = writeln!(out, "{} = {}", k.name, f(k.gflops));
        }
        if !self.curves.is_empty() {
            let _ = writeln!(
                out,
                "\n# [flops, GFLOP/s per core] by task size: each that size's total flops / (total time - task\n\
                 # overheads), so modelled durations add up to the measured ones; the simulator\n\
                 # interpolates in log(flops) and uses these instead of kernel_gflops above.\n\
                 [compute.kernel_curves]"
            );
            for c in &self.curves {
                let tasks: Vec<String> = c.points.iter().map(|p| p.2.to_string()).collect();
                let _ = writeln!(
                    out,
                    "# {} tasks per size; rms residual per task {:.1}%",
                    tasks.join(" / "),
                    c.rms_rel_residual * 100.0
                );
                let points: Vec<String> = c.points.iter().map(|p| format!("[{}, {}]", f(p.0), f(p.1))).collect();
                let _ = writeln!(out, "{} = [{}]", c.name, points.join(", "));
            }
        }
        if !self.byte_costs.is_empty() {
            let _ = writeln!(
                out,
                "\n# Kernels without flops that write data (the matrix generator): ns per byte written,\n\
                 # added to the task overhead.\n\
                 [compute.kernel_ns_per_byte]"
            );
            for c in &self.byte_costs {
                let _ = writeln!(
                    out,
                    "# {} tasks, total (time - task overhead) / total bytes written; rms residual per task {:.1}%",
                    c.tasks,
                    c.rms_rel_residual * 100.0
                );
                let _ = writeln!(out, "{} = {}", c.name, f(c.ns_per_byte));
            }
        }
        out
    }
}
