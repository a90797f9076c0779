//! Every collective kind and algorithm end to end on the `local` driver (both progress
//! modes) and on the in-memory harness, 2 to 4 ranks, through the probe strategy,
//! which checks every completion (a broadcast's contribution names the tree parent, a
//! reduction's sum is exact, ...).

use dagwire_runtime::drivers::local::{LocalConfig, run};
use dagwire_runtime::drivers::probe::{CollectiveProbe, probe_dag, probe_kinds};
use dagwire_runtime::drivers::testing::{Timing, drive};
use dagwire_runtime::{Kernels, MessageClass, Payload, Progress, Rank, Strategy, Task};
use std::sync::Arc;
use std::time::Duration;

struct Zeros;
impl Kernels for Zeros {
    fn run(&self, task: &Task, _: Vec<Payload>) -> Result<Vec<Payload>, String> {
        Ok(task.outputs().map(|_| Payload::zeroed(8)).collect())
    }
}

#[test]
fn every_collective_runs_on_the_local_driver_in_both_progress_modes() {
    for ranks in 2..=4 {
        for progress in [Progress::Thread, Progress::Inline] {
            let dag = Arc::new(probe_dag(ranks));
            let factory = move |r: Rank| -> Box<dyn Strategy> { Box::new(CollectiveProbe::new(r, ranks)) };
            let cfg = LocalConfig { ranks, progress, timeout: Duration::from_secs(60), ..LocalConfig::default() };
            let out = run(&dag, &Zeros, &factory, &cfg).unwrap_or_else(|e| panic!("{ranks} ranks {progress:?}: {e}"));
            assert_eq!(out.trace.tasks.len(), ranks);
            // Records are per contribution from another rank; a reduction's result is none.
            assert!(out.trace.messages.iter().all(|m| m.src != m.dst));
            assert!(out.trace.messages.iter().any(|m| m.class == MessageClass::Data && m.kind == "probe-data"));
        }
    }
}

#[test]
fn every_collective_runs_on_the_harness_taking_its_algorithm_s_steps() {
    for ranks in 2..=4 {
        let dag = Arc::new(probe_dag(ranks));
        let factory = |r: Rank| -> Box<dyn Strategy> { Box::new(CollectiveProbe::new(r, ranks)) };
        let timing = Timing { latency: 10, task_ns: 5 };
        let run = drive(&dag, &factory, 1, timing, 100_000, &mut |_| Ok(())).unwrap_or_else(|e| panic!("{ranks}: {e}"));
        assert_eq!(run.joins[0].len(), probe_kinds(Rank(0), ranks).len());
        assert!(run.end_ns > 0);
    }
}

#[test]
fn each_collective_alone_on_the_harness_takes_its_algorithm_s_closed_form_time() {
    // Every piece takes one latency and ranks join at time 0, so a collective ends
    // after the longest chain of steps that wait for one another.
    let latency = 10;
    for p in 2..=8usize {
        let log2 = p.next_power_of_two().trailing_zeros() as u64;
        let p2 = if p.is_power_of_two() { p } else { p.next_power_of_two() / 2 };
        let (p1, rounds) = (p as u64 - 1, p2.trailing_zeros() as u64);
        // Depth of the binomial tree over p members: the most set bits of a member's index.
        let depth = (0..p).map(|v| v.count_ones() as u64).max().unwrap();
        // In probe_kinds order.
        let closed_form = [
            ("all-to-all-v pairwise: p - 1 steps", p1),
            ("all-to-all-v bruck: ceil(log2 p) rounds", log2),
            ("neighbor along a path: one step", 1),
            ("binomial broadcast: the tree's depth", depth),
            ("chain broadcast in segments: p - 1 hops, segments pipelined", p1),
            ("dissemination fence: ceil(log2 p) rounds", log2),
            ("ring all-reduce: 2 (p - 1) steps", 2 * p1),
            ("recursive doubling: log2 p steps (p a power of two; see below otherwise)", rounds),
            ("tree all-reduce: up and down the tree", 2 * depth),
            ("ring all-reduce over f32", 2 * p1),
            ("ring reduce-scatter: p - 1 steps", p1),
            ("ring all-gather: p - 1 steps", p1),
        ];
        assert_eq!(closed_form.len(), probe_kinds(Rank(0), p).len());
        let dag = Arc::new(probe_dag(p));
        for (which, (what, steps)) in closed_form.into_iter().enumerate() {
            let factory = |r: Rank| -> Box<dyn Strategy> { Box::new(CollectiveProbe::only(r, p, which)) };
            let timing = Timing { latency, task_ns: 1 };
            let run = drive(&dag, &factory, 1, timing, 100_000, &mut |_| Ok(())).unwrap();
            if which == 7 && !p.is_power_of_two() {
                // The fold adds a step in and a step out, but they overlap the doubling's
                // steps in a way that depends on which folded ranks meet: 6 ranks take 3
                // latencies, 7 take 4 (fold in, a partner of a folded rank one step
                // late, the second step, fold out).
                assert!((rounds + 1..=rounds + 2).contains(&(run.end_ns / latency)), "p={p} {what}: {}", run.end_ns);
                continue;
            }
            assert_eq!(run.end_ns, steps * latency, "p={p} {what}");
        }
    }
}
