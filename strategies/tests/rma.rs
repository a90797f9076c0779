//! The rma protocol on the in-memory harness, which holds real window bytes and refuses
//! a get that reads too early (before the put completed, or before a fence closed the
//! writer's epoch).

use dagwire_runtime::drivers::testing::{Run, Timing, drive};
use dagwire_runtime::one_sided::{WindowSpec, WindowSync};
use dagwire_runtime::{
    ChunkId, Dag, DagBuilder, KernelId, Message, MessageClass, ParamValue, Payload, Rank, Strategy, StrategyCtx,
    TaskSpec,
};
use dagwire_strategies::batched::{Epochs, epochs};
use std::collections::BTreeMap;
use std::sync::Arc;

fn cholesky_dag(ranks: usize) -> Arc<Dag> {
    let given = [("n", ParamValue::Int(160)), ("tile", ParamValue::Int(32))];
    let w = dagwire_workloads::find("cholesky").unwrap().build(&given, ranks, 7).unwrap();
    Arc::clone(w.dag())
}

fn rma(dag: &Arc<Dag>, given: &[(&str, ParamValue)]) -> impl Fn(Rank) -> Box<dyn Strategy> + Sync + use<> {
    dagwire_strategies::find("rma").unwrap().factory_with(given, dag, 1).unwrap()
}

fn drive_rma(dag: &Arc<Dag>, mode: &str, sync: &str, more: &[(&str, ParamValue)]) -> Run {
    let mut given = vec![("mode", ParamValue::Str(mode.into())), ("sync", ParamValue::Str(sync.into()))];
    given.extend(more.iter().cloned());
    let timing = Timing { latency: 7, task_ns: 10 };
    drive(dag, &rma(dag, &given), 2, timing, 1_000_000, &mut |_| Ok(()))
        .unwrap_or_else(|e| panic!("{mode}/{sync} {more:?}: {e}"))
}

/// (reader rank, chunk) for every transfer the DAG needs.
fn transfers(dag: &Dag) -> usize {
    (0..dag.chunk_count() as u32).map(|c| dag.remote_readers(ChunkId(c)).len()).sum()
}

fn count(run: &Run, kind: &str, class: MessageClass) -> usize {
    run.trace.messages.iter().filter(|m| m.kind == kind && m.class == class).count()
}

#[test]
fn every_mode_and_sync_delivers_the_right_bytes_with_the_protocol_s_messages() {
    for ranks in [2, 3, 4] {
        let dag = cholesky_dag(ranks);
        let n = transfers(&dag);
        assert!(n > 0);
        for (mode, one_sided) in [("get", "rma-get"), ("put", "rma-put")] {
            let passive = drive_rma(&dag, mode, "passive", &[]);
            assert_eq!(passive.results.len(), dag.results().len());
            // Passive: one remote operation (data) and one notification (control) per transfer.
            assert_eq!(count(&passive, one_sided, MessageClass::Data), n, "{mode}");
            assert_eq!(count(&passive, "rma-notify", MessageClass::Control), n, "{mode}");
            assert_eq!(passive.trace.messages.len(), 2 * n, "{mode}: nothing else moves");
            assert!(passive.joins.iter().all(Vec::is_empty), "passive joins no fence");

            let fenced = drive_rma(&dag, mode, "fence", &[]);
            assert_eq!(fenced.results.len(), dag.results().len());
            assert_eq!(count(&fenced, one_sided, MessageClass::Data), n, "{mode}");
            assert_eq!(fenced.trace.messages.len(), n, "{mode}: fences need no notification");
        }
    }
}

/// Epochs (of `cut`) that produce a chunk read on another rank.
fn carrying_epochs(dag: &Dag, cut: Epochs) -> u64 {
    let epoch = epochs(dag, cut);
    let carrying: std::collections::BTreeSet<u32> = (0..dag.chunk_count() as u32)
        .map(ChunkId)
        .filter(|&c| !dag.remote_readers(c).is_empty())
        .map(|c| epoch[dag.chunk(c).producer.index()])
        .collect();
    carrying.len() as u64
}

#[test]
fn fences_are_joined_in_order_by_every_rank_once_per_carrying_epoch_and_twice_in_get_mode() {
    let dag = cholesky_dag(3);
    let level = carrying_epochs(&dag, Epochs::Level);
    assert!(level < *epochs(&dag, Epochs::Level).iter().max().unwrap() as u64 + 1, "the last epoch carries nothing");
    for (mode, per_epoch) in [("put", 1), ("get", 2)] {
        let run = drive_rma(&dag, mode, "fence", &[]);
        let want: Vec<u64> = (0..level * per_epoch).collect();
        for (r, joins) in run.joins.iter().enumerate() {
            assert_eq!(joins, &want, "{mode}: rank {r}");
        }
    }
    let given = [("epochs", ParamValue::Str("tasks".into())), ("epoch_tasks", ParamValue::Int(5))];
    let tasks = drive_rma(&dag, "put", "fence", &given);
    assert_eq!(tasks.joins[0].len() as u64, carrying_epochs(&dag, Epochs::Tasks(5.try_into().unwrap())));
}

#[test]
fn chunks_up_to_the_inline_limit_travel_in_the_notification() {
    let dag = cholesky_dag(2);
    let limit = 32 * 32 * 8; // exactly one full tile
    for mode in ["get", "put"] {
        let run = drive_rma(&dag, mode, "passive", &[("inline_limit", ParamValue::Int(limit))]);
        let inline = count(&run, "rma-inline", MessageClass::Data);
        assert_eq!(inline, transfers(&dag), "{mode}: every tile fits, so every transfer is one message");
        assert_eq!(run.trace.messages.len(), inline);
        let small = drive_rma(&dag, mode, "passive", &[("inline_limit", ParamValue::Int(limit - 1))]);
        assert_eq!(count(&small, "rma-inline", MessageClass::Data), 0, "{mode}: no tile fits");
    }
}

#[test]
fn at_most_max_outstanding_remote_operations_are_in_flight_per_rank() {
    let dag = cholesky_dag(4);
    for (mode, kind) in [("get", "rma-get"), ("put", "rma-put")] {
        let uncapped = drive_rma(&dag, mode, "passive", &[]);
        let capped = drive_rma(&dag, mode, "passive", &[("max_outstanding", ParamValue::Int(1))]);
        let most = |run: &Run| {
            // The origin of a get is its receiver, of a put its sender.
            let mut per_origin: BTreeMap<Rank, Vec<(u64, i32)>> = BTreeMap::new();
            for m in run.trace.messages.iter().filter(|m| m.kind == kind) {
                let origin = if kind == "rma-get" { m.dst } else { m.src };
                per_origin.entry(origin).or_default().extend([(m.sent_ns, 1), (m.recv_ns, -1)]);
            }
            per_origin
                .into_values()
                .map(|mut edges| {
                    edges.sort_unstable_by_key(|&(t, d)| (t, d));
                    edges.iter().scan(0, |n, &(_, d)| Some(*n + d).inspect(|&v| *n = v)).max().unwrap_or(0)
                })
                .max()
                .unwrap()
        };
        assert!(most(&uncapped) > 1, "{mode}: the test needs overlap to cap");
        assert_eq!(most(&capped), 1, "{mode}");
        assert_eq!(count(&capped, kind, MessageClass::Data), transfers(&dag));
    }
}

/// A strategy that breaks the fence rule on purpose: the producer stores its chunk in
/// its window and notifies the reader, which gets it at once, without waiting for a
/// fence. Fine with passive synchronisation; with fences the read comes before any
/// fence closed the epoch of the store.
struct NotifiedReader(WindowSync);

impl Strategy for NotifiedReader {
    fn name(&self) -> &'static str {
        "notified-reader"
    }
    fn op_name(&self, _: u8) -> &'static str {
        "notify"
    }
    fn window(&mut self, _: &Dag, _: Rank) -> Option<WindowSpec> {
        Some(WindowSpec { bytes: 8, sync: self.0 })
    }
    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        ctx.put(ctx.rank, 0, chunk, data.clone());
        readers.iter().for_each(|&r| ctx.send(r, Message::control(1, chunk, 0)));
    }
    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        ctx.get(from, 0, msg.chunk, 8);
        Ok(())
    }
    fn on_one_sided_done(&mut self, ctx: &mut StrategyCtx<'_>, _: u64, data: Option<Payload>) -> Result<(), String> {
        if let Some(data) = data {
            ctx.deliver(ChunkId(0), Rank(0), data);
        }
        Ok(())
    }
}

#[test]
fn the_harness_refuses_a_get_before_a_fence_closed_the_writer_s_epoch() {
    let mut b = DagBuilder::new(2);
    let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[a.output(0)]).outputs(&[8]));
    let dag = Arc::new(b.finish());
    let timing = Timing { latency: 7, task_ns: 10 };
    let run = |sync| drive(&dag, &|_| Box::new(NotifiedReader(sync)), 1, timing, 1000, &mut |_| Ok(()));
    assert!(run(WindowSync::Passive).is_ok(), "the store completed before the notification");
    let err = run(WindowSync::Fence).unwrap_err();
    assert!(
        err.contains("reads in fence epoch 0 what r0 put in its epoch 0, before a fence closed that epoch"),
        "{err}"
    );
}
