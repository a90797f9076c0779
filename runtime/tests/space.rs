//! Memory spaces in the engine (`dagwire_runtime::space`): the copies it asks for between
//! host and device memory, when, and what waits for them; none without a device.

mod common;

use common::Push;
use dagwire_runtime::engine::{Action, DeviceCopy, Engine, EngineError, TaskDone};
use dagwire_runtime::one_sided::{Access, WindowSpec, WindowSync};
use dagwire_runtime::space::{Memory, Path, Space};
use dagwire_runtime::{
    ChunkId, CollectiveKind, Dag, DagBuilder, KernelId, Message, Payload, Rank, Strategy, StrategyCtx, TaskId, TaskSpec,
};
use std::sync::Arc;

fn done(task: TaskId, outputs: Vec<Payload>) -> TaskDone {
    TaskDone { task, worker: 0, start_ns: 0, end_ns: 1, outputs }
}

fn drain(e: &mut Engine, now: u64) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action(now)).collect()
}

/// An engine for `rank` of `dag` with the Push strategy and `memory`.
fn engine(rank: u32, dag: &Arc<Dag>, memory: Memory) -> Engine {
    let mut e = Engine::new(Rank(rank), Arc::clone(dag), Box::new(Push), 1);
    e.set_memory(memory);
    e.handle_start(0);
    e
}

/// One device per node (a node per rank): the NIC reads device memory when `direct`.
fn own_node(rank: u32, direct: bool) -> Memory {
    Memory::device(Rank(rank), 0, direct, rank..rank + 1)
}

/// r0 produces 16 bytes, each of `readers` ranks (1, 2, ...) reads them in one task.
fn fan_out(readers: u32) -> (Arc<Dag>, TaskId, Vec<TaskId>) {
    let mut b = DagBuilder::new(1 + readers as usize);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[16]));
    let consumers =
        (1..=readers).map(|r| b.add(TaskSpec::new(KernelId(1), Rank(r)).inputs(&[p.output(0)]).outputs(&[8])).task);
    let consumers = consumers.collect();
    (Arc::new(b.finish()), p.task, consumers)
}

/// Runs r0's producer and returns what r0 asks for right after it.
fn produce(r0: &mut Engine, producer: TaskId) -> Vec<Action> {
    let [Action::Run(run)] = &drain(r0, 0)[..] else { panic!("r0 runs its producer") };
    assert_eq!(run.task, producer);
    r0.handle_task_done(10, done(producer, vec![Payload::from_bytes(&[7; 16])]));
    drain(r0, 10)
}

fn copy_of(action: &Action) -> DeviceCopy {
    match action {
        Action::Copy(c) => *c,
        other => panic!("expected a copy, got {other:?}"),
    }
}

#[test]
fn a_staged_chunk_is_copied_to_host_before_its_send_and_to_the_device_before_its_reader_runs() {
    let (dag, producer, consumers) = fan_out(1);
    let (mut r0, mut r1) = (engine(0, &dag, own_node(0, false)), engine(1, &dag, own_node(1, false)));
    // Exactly one copy, device to host, and no send yet: the message waits for it.
    let after = produce(&mut r0, producer);
    assert_eq!(after.len(), 1, "{after:?}");
    let d2h = copy_of(&after[0]);
    assert_eq!(
        (d2h.chunk, d2h.bytes, d2h.from, d2h.to, d2h.peer, d2h.carries),
        (ChunkId(0), 16, Space::Device(0), Space::Host, Rank(1), "message")
    );
    assert!(!r0.is_done(), "a copy is in flight");
    r0.handle_copy_done(50, d2h.id);
    let [Action::Send(out)] = &drain(&mut r0, 50)[..] else { panic!("the message goes once staged") };
    assert_eq!((out.to, out.msg.sent_ns), (Rank(1), 10));
    assert!(r0.is_done());
    // The receiver gets the bytes in host memory: one copy to the device, then the reader.
    r1.handle_message(80, Rank(0), out.msg.clone());
    let after = drain(&mut r1, 80);
    assert_eq!(after.len(), 1, "no task before the copy: {after:?}");
    let h2d = copy_of(&after[0]);
    assert_eq!(
        (h2d.chunk, h2d.bytes, h2d.from, h2d.to, h2d.peer),
        (ChunkId(0), 16, Space::Host, Space::Device(0), Rank(0))
    );
    r1.handle_copy_done(90, h2d.id);
    let [Action::Run(run)] = &drain(&mut r1, 90)[..] else { panic!("the reader runs once on the device") };
    assert_eq!((run.task, run.inputs[0].as_bytes()), (consumers[0], &[7u8; 16][..]));
}

#[test]
fn a_chunk_read_on_three_nodes_is_copied_to_host_memory_once() {
    let (dag, producer, _) = fan_out(3);
    let mut r0 = engine(0, &dag, own_node(0, false));
    let after = produce(&mut r0, producer);
    assert_eq!(after.len(), 1, "one copy for three sends: {after:?}");
    r0.handle_copy_done(40, copy_of(&after[0]).id);
    let sent: Vec<Rank> = drain(&mut r0, 40)
        .into_iter()
        .map(|a| match a {
            Action::Send(out) => out.to,
            other => panic!("only sends once staged, not {other:?}"),
        })
        .collect();
    assert_eq!(sent, [Rank(1), Rank(2), Rank(3)]);
    assert!(r0.is_done());
}

#[test]
fn gpu_direct_a_host_only_rank_and_a_peer_inside_a_node_copy_nothing() {
    let (dag, producer, consumers) = fan_out(1);
    let peers = |r: u32| Memory::device(Rank(r), r as u16, false, 0..2);
    for (name, m0, m1, path) in [
        ("gpu-direct", own_node(0, true), own_node(1, true), Path::Network),
        ("host only", Memory::host(), Memory::host(), Path::Network),
        ("one node", peers(0), peers(1), Path::Peer),
    ] {
        let (mut r0, mut r1) = (engine(0, &dag, m0), engine(1, &dag, m1));
        assert_eq!(r0.memory().path(Rank(1)), path, "{name}");
        let [Action::Send(out)] = &produce(&mut r0, producer)[..] else { panic!("{name}: a send at once") };
        r1.handle_message(30, Rank(0), out.msg.clone());
        let [Action::Run(run)] = &drain(&mut r1, 30)[..] else { panic!("{name}: the reader runs at once") };
        assert_eq!(run.task, consumers[0], "{name}");
    }
}

#[test]
fn a_copy_the_engine_did_not_ask_for_is_an_error() {
    let (dag, _, _) = fan_out(1);
    let mut r1 = engine(1, &dag, own_node(1, false));
    r1.handle_copy_done(5, 3);
    assert_eq!(r1.error(), Some(&EngineError::UnknownCopy { rank: Rank(1), id: 3 }));
}

/// Puts each chunk into its reader's window, then joins a fence.
struct PutThenFence;

impl Strategy for PutThenFence {
    fn name(&self) -> &'static str {
        "put-then-fence"
    }
    fn op_name(&self, _: u8) -> &'static str {
        "none"
    }
    fn window(&mut self, _: &Dag, _: Rank) -> Option<WindowSpec> {
        Some(WindowSpec { bytes: 64, sync: WindowSync::Fence })
    }
    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        for &r in readers {
            ctx.put(r, 0, chunk, data.clone());
        }
        ctx.join_collective(1, CollectiveKind::Fence, Vec::new());
    }
    fn on_message(&mut self, _: &mut StrategyCtx<'_>, _: Rank, _: Message) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn a_put_of_a_device_chunk_waits_for_its_copy_and_the_fence_after_it_waits_for_the_put() {
    let (dag, producer, _) = fan_out(1);
    let mut r0 = Engine::new(Rank(0), Arc::clone(&dag), Box::new(PutThenFence), 1);
    r0.set_memory(own_node(0, false));
    r0.handle_start(0);
    let after = produce(&mut r0, producer);
    // The fence needs no copy, but goes only after the put it follows.
    assert_eq!(after.len(), 1, "{after:?}");
    let d2h = copy_of(&after[0]);
    assert_eq!((d2h.to, d2h.carries), (Space::Host, "put"));
    r0.handle_copy_done(20, d2h.id);
    let after = drain(&mut r0, 20);
    assert!(
        matches!(&after[..], [Action::OneSided(op), Action::Collective(join)]
            if matches!(op.access, Access::Put(_)) && join.kind == CollectiveKind::Fence),
        "{after:?}"
    );
}
