//! The task DAG: tasks with a kernel, inputs, outputs and a cost hint; chunks with a
//! size and a producer. Built once, immutable afterwards, shared by every rank.
//!
//! Every chunk is produced by exactly one task (initial data comes from generator
//! tasks), and a task can only read chunks that already exist when it is added, so
//! task ids are a topological order and the graph is acyclic by construction.

use crate::collective::CollectiveKind;
use crate::ids::{ChunkId, KernelId, Rank, TaskId};
use crate::policies::{PlacementPolicy, Policy};
use std::cell::Cell;
use std::ops::Range;

thread_local! {
    static FINISHED_HERE: Cell<u64> = const { Cell::new(0) };
}

/// How many DAGs [`DagBuilder::finish`] has built on the calling thread so far: lets a
/// test check that a step (a sweep's check of its points) builds none, and a run one.
///
/// ```
/// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec, dag};
/// let before = dag::finished_on_this_thread();
/// let mut b = DagBuilder::new(1);
/// b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
/// b.finish();
/// assert_eq!(dag::finished_on_this_thread(), before + 1);
/// ```
pub fn finished_on_this_thread() -> u64 {
    FINISHED_HERE.with(Cell::get)
}

/// What to add: one task, its inputs and the sizes of its outputs.
///
/// ```
/// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
/// let mut b = DagBuilder::new(2);
/// let producer = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[64]));
/// let use_it = b.add(TaskSpec::new(KernelId(1), Rank(1)).inputs(&[producer.output(0)]).outputs(&[8]));
/// let dag = b.finish();
/// assert_eq!(dag.task_count(), 2);
/// assert_eq!(dag.consumers(producer.output(0)), &[use_it.task]);
/// ```
#[derive(Clone, Debug)]
pub struct TaskSpec<'a> {
    /// Kernel to run (numbering owned by the workload).
    pub kernel: KernelId,
    /// Rank that runs the task.
    pub owner: Rank,
    /// Chunks read.
    pub inputs: &'a [ChunkId],
    /// Sizes in bytes of the chunks written, in order.
    pub outputs: &'a [u64],
    /// Floating-point operations, the cost hint for reports and the simulator.
    pub flops: f64,
    /// Larger runs first among ready tasks of one rank (e.g. critical-path depth).
    pub priority: u32,
    /// Kernel arguments (tile coordinates, sizes): meaning owned by the workload.
    pub args: [u32; 4],
    /// The outputs are sized at run time: `outputs` holds each one's bound, and the
    /// kernel may return fewer bytes (see [`TaskSpec::bounded_outputs`]).
    pub sized_at_run_time: bool,
    /// A shadow of a task placed at run time: (decision chunk, slot). See
    /// [`TaskSpec::placed`].
    pub placed: Option<(ChunkId, u32)>,
}

impl<'a> TaskSpec<'a> {
    /// A task with no inputs, outputs, cost or arguments yet.
    pub fn new(kernel: KernelId, owner: Rank) -> Self {
        TaskSpec {
            kernel,
            owner,
            inputs: &[],
            outputs: &[],
            flops: 0.0,
            priority: 0,
            args: [0; 4],
            sized_at_run_time: false,
            placed: None,
        }
    }

    /// Makes this task the shadow, on its owner, of slot `slot` of the decision that
    /// `decision` (a chunk of an [`DagBuilder::add_decide`] task on the same owner, which
    /// must be one of the inputs) holds: the engine runs it only if the decision picks
    /// its owner, and otherwise completes it at once with empty outputs (so its outputs
    /// must be [sized at run time](TaskSpec::bounded_outputs)) after checking that it
    /// received no data. See [`crate::policies`].
    pub fn placed(mut self, decision: ChunkId, slot: u32) -> Self {
        self.placed = Some((decision, slot));
        self
    }
    /// Sets the chunks read.
    pub fn inputs(mut self, inputs: &'a [ChunkId]) -> Self {
        self.inputs = inputs;
        self
    }
    /// Sets the sizes of the chunks written.
    pub fn outputs(mut self, outputs: &'a [u64]) -> Self {
        self.outputs = outputs;
        self
    }
    /// Sets the outputs as sized at run time, each at most its bound in bytes: the
    /// kernel returns the real size (a token batch routed to an expert), strategies and
    /// drivers move the real bytes, and the trace records each real size
    /// ([`crate::trace::ChunkSize`]). [`Dag::chunk`]'s `bytes` is then the bound.
    ///
    /// ```
    /// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
    /// let mut b = DagBuilder::new(1);
    /// let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).bounded_outputs(&[64]));
    /// let dag = b.finish();
    /// assert!(dag.is_sized_at_run_time(a.output(0)));
    /// assert_eq!(dag.chunk(a.output(0)).bytes, 64);
    /// ```
    pub fn bounded_outputs(mut self, bounds: &'a [u64]) -> Self {
        self.outputs = bounds;
        self.sized_at_run_time = true;
        self
    }
    /// Sets the flop count.
    pub fn flops(mut self, flops: f64) -> Self {
        self.flops = flops;
        self
    }
    /// Sets the scheduling priority.
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }
    /// Sets the kernel arguments.
    pub fn args(mut self, args: [u32; 4]) -> Self {
        self.args = args;
        self
    }
}

/// The handle [`DagBuilder::add`] returns: the task and its output chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Added {
    /// The new task.
    pub task: TaskId,
    first_output: u32,
    outputs: u32,
}

impl Added {
    /// The `i`-th output chunk.
    ///
    /// # Panics
    /// If the task has no `i`-th output.
    pub fn output(&self, i: usize) -> ChunkId {
        assert!(i < self.outputs as usize, "task {} has {} outputs, asked for #{i}", self.task, self.outputs);
        ChunkId(self.first_output + i as u32)
    }
}

/// One task as stored in the DAG (kept small: a million of them must fit anywhere).
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// Kernel to run.
    pub kernel: KernelId,
    /// Rank that runs it.
    pub owner: Rank,
    /// Scheduling priority (larger first).
    pub priority: u32,
    /// Flop count.
    pub flops: f64,
    /// Kernel arguments.
    pub args: [u32; 4],
    first_output: u32,
    outputs: u32,
    sized_at_run_time: bool,
    role: Role,
}

/// What runs a task: its kernel, or the engine itself (run-time placement).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An ordinary task: the driver runs its kernel.
    Kernel,
    /// The engine runs the policy of decision `0` on the task's inputs (the reports).
    Decide(DecisionId),
    /// The engine compares this rank's decision (input 0) with another rank's (input 1).
    Check(DecisionId),
    /// A shadow of a task placed at run time: slot `slot` of the decision in chunk
    /// `decision`; run as a kernel only if the decision picks this task's owner.
    Placed {
        /// The decision chunk.
        decision: ChunkId,
        /// The slot.
        slot: u32,
    },
}

/// A decision declared with [`DagBuilder::add_decision`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DecisionId(pub u32);

/// One slot of a decision: the report carrying its load and its candidate ranks.
#[derive(Clone, Copy, Debug)]
pub struct SlotSpec<'a> {
    /// Index (into the decision's reports) of the report with this slot's load.
    pub report: u32,
    /// Ranks that may run it (not empty), in order of preference.
    pub candidates: &'a [Rank],
}

/// A decision as the DAG stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Its policy.
    pub policy: Policy,
    /// The report chunks, in order.
    pub reports: Vec<ChunkId>,
    /// Per slot: its report index and candidates.
    pub slots: Vec<(u32, Vec<Rank>)>,
}

impl Task {
    /// What runs this task: its kernel, or the engine (run-time placement).
    pub fn role(&self) -> Role {
        self.role
    }
    /// Whether this task's outputs are sized at run time ([`TaskSpec::bounded_outputs`]).
    pub fn sized_at_run_time(&self) -> bool {
        self.sized_at_run_time
    }

    /// The chunks this task writes.
    pub fn outputs(&self) -> impl ExactSizeIterator<Item = ChunkId> {
        (self.first_output..self.first_output + self.outputs).map(ChunkId)
    }
}

/// One chunk as stored in the DAG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Size in bytes (the bound, for a chunk [sized at run time](Dag::is_sized_at_run_time)).
    pub bytes: u64,
    /// The task that writes it.
    pub producer: TaskId,
}

/// Builds a [`Dag`] task by task. See [`TaskSpec`] for an example.
/// A task reading a chunk, as [`Dag::reading_on`] finds it: everything an arrival of
/// the chunk needs about its reader, in one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    /// The reading task.
    pub task: TaskId,
    /// Its owner.
    pub owner: Rank,
    /// The chunk's read slot on `owner` (the same for every reader on one rank).
    pub slot: u32,
    /// The task's position among its owner's tasks ([`Dag::local_index`]).
    pub local: u32,
}

#[derive(Debug, Default)]
pub struct DagBuilder {
    ranks: u32,
    tasks: Vec<Task>,
    chunks: Vec<Chunk>,
    input_offsets: Vec<u32>,
    inputs: Vec<ChunkId>,
    marked: Vec<ChunkId>,
    collectives: Vec<(TaskId, CollectiveKind)>,
    decisions: Vec<Decision>,
}

impl DagBuilder {
    /// A builder for a DAG over `ranks` ranks.
    pub fn new(ranks: usize) -> Self {
        DagBuilder { ranks: ranks as u32, input_offsets: vec![0], ..Default::default() }
    }

    /// Adds a task.
    ///
    /// # Panics
    /// If the owner is not a rank of this DAG or an input chunk does not exist yet
    /// (both are bugs in the workload that builds the DAG).
    pub fn add(&mut self, spec: TaskSpec<'_>) -> Added {
        let role = match spec.placed {
            None => Role::Kernel,
            Some((decision, slot)) => {
                self.check_placed(&spec, decision, slot);
                Role::Placed { decision, slot }
            }
        };
        self.add_with_role(spec, role)
    }

    /// Checks a shadow's declaration (see [`TaskSpec::placed`]).
    fn check_placed(&self, spec: &TaskSpec<'_>, decision: ChunkId, slot: u32) {
        assert!(spec.inputs.contains(&decision), "a placed task must read its decision chunk {decision}");
        let producer = &self.tasks[self.chunks[decision.index()].producer.index()];
        let Role::Decide(d) = producer.role else {
            panic!("chunk {decision} is not a decision (add_decide makes them)")
        };
        assert_eq!(producer.owner, spec.owner, "a placed task reads the decision made on its own rank");
        let candidates = &self.decisions[d.0 as usize].slots.get(slot as usize).expect("the slot exists").1;
        assert!(candidates.contains(&spec.owner), "{} is not a candidate of slot {slot}", spec.owner);
        assert!(
            spec.sized_at_run_time || spec.outputs.is_empty(),
            "a placed task's outputs must be sized at run time (an inactive shadow's are empty)"
        );
    }

    /// Declares a decision made during the run by `policy` from `reports` (see
    /// [`crate::policies`] for their layout) for `slots`. Nothing runs until ranks add
    /// [`DagBuilder::add_decide`] tasks for it.
    ///
    /// # Panics
    /// If a report does not exist yet, a slot names a report out of range, or has no
    /// candidate or one outside the ranks.
    pub fn add_decision(
        &mut self,
        policy: &'static dyn PlacementPolicy,
        reports: &[ChunkId],
        slots: &[SlotSpec<'_>],
    ) -> DecisionId {
        for &c in reports {
            assert!(c.index() < self.chunks.len(), "report chunk {c} does not exist yet");
        }
        for (i, s) in slots.iter().enumerate() {
            assert!((s.report as usize) < reports.len(), "slot {i} names report {} of {}", s.report, reports.len());
            assert!(!s.candidates.is_empty(), "slot {i} has no candidate");
            assert!(s.candidates.iter().all(|c| c.0 < self.ranks), "slot {i} has a candidate outside the ranks");
        }
        let slots = slots.iter().map(|s| (s.report, s.candidates.to_vec())).collect();
        self.decisions.push(Decision { policy: Policy(policy), reports: reports.to_vec(), slots });
        DecisionId(self.decisions.len() as u32 - 1)
    }

    /// Adds the task, on `owner`, that reads every report of `decision` and (run by the
    /// engine, not a kernel) produces the decision chunk, its output 0: one
    /// little-endian `u32` rank per slot. `kernel` only names it in traces.
    pub fn add_decide(&mut self, decision: DecisionId, owner: Rank, kernel: KernelId) -> Added {
        let d = &self.decisions[decision.0 as usize];
        let bytes = [4 * d.slots.len() as u64];
        let reports = d.reports.clone();
        let spec = TaskSpec::new(kernel, owner).inputs(&reports).outputs(&bytes);
        self.add_with_role(spec, Role::Decide(decision))
    }

    /// Adds, for each rank `r` of `decided` (the decision chunks of `decision`, one per
    /// deciding rank, each from [`DagBuilder::add_decide`]), a task on the producer of
    /// chunk `r` that compares it with chunk `r + 1` (cyclically): a decision that
    /// differs between ranks fails the run with [`crate::EngineError::Placement`]
    /// instead of going on with ranks that disagree. `kernel` names the tasks in traces.
    pub fn add_decision_check(&mut self, decision: DecisionId, decided: &[ChunkId], kernel: KernelId) {
        if decided.len() < 2 {
            return;
        }
        for (i, &mine) in decided.iter().enumerate() {
            let theirs = decided[(i + 1) % decided.len()];
            let owner = self.tasks[self.chunks[mine.index()].producer.index()].owner;
            let inputs = [mine, theirs];
            self.add_with_role(TaskSpec::new(kernel, owner).inputs(&inputs), Role::Check(decision));
        }
    }

    fn add_with_role(&mut self, spec: TaskSpec<'_>, role: Role) -> Added {
        assert!(spec.owner.0 < self.ranks, "task owner {} outside {} ranks", spec.owner, self.ranks);
        let task = TaskId(self.tasks.len() as u32);
        for &c in spec.inputs {
            assert!(c.index() < self.chunks.len(), "task {task} reads chunk {c}, which does not exist yet");
        }
        self.inputs.extend_from_slice(spec.inputs);
        self.input_offsets.push(self.inputs.len() as u32);
        let first_output = self.chunks.len() as u32;
        self.chunks.extend(spec.outputs.iter().map(|&bytes| Chunk { bytes, producer: task }));
        let outputs = spec.outputs.len() as u32;
        self.tasks.push(Task {
            kernel: spec.kernel,
            owner: spec.owner,
            priority: spec.priority,
            flops: spec.flops,
            args: spec.args,
            first_output,
            outputs,
            sized_at_run_time: spec.sized_at_run_time,
            role,
        });
        Added { task, first_output, outputs }
    }

    /// Adds a **collective task**: instead of running a kernel, every rank's task of the
    /// same group joins one collective of `kind` with its one input chunk, and the result
    /// becomes its one output chunk (no worker runs it; the driver's collective layer
    /// does the arithmetic). The `k`-th collective task added for each rank forms group
    /// `k`: every rank of the DAG needs one task per group, of the same kind and size,
    /// and the engine joins its groups in order (so MPI's rule that collectives start
    /// in the same order everywhere holds). Only [`CollectiveKind::AllReduce`] is
    /// supported: the input and output have the same size.
    ///
    /// ```
    /// use dagwire_runtime::collective::{AllReduceAlgorithm, CollectiveKind, DType, ReduceOp};
    /// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
    /// let kind = CollectiveKind::AllReduce { op: ReduceOp::Sum, dtype: DType::F64, algorithm: AllReduceAlgorithm::Ring };
    /// let mut b = DagBuilder::new(2);
    /// for r in 0..2 {
    ///     let v = b.add(TaskSpec::new(KernelId(0), Rank(r)).outputs(&[16]));
    ///     let input = [v.output(0)];
    ///     b.add_collective(TaskSpec::new(KernelId(1), Rank(r)).inputs(&input).outputs(&[16]), kind.clone());
    /// }
    /// let dag = b.finish();
    /// assert_eq!(dag.collective_tasks().len(), 2);
    /// ```
    ///
    /// # Panics
    /// If the task does not read one chunk and write one of the same size, or `kind`
    /// is not an all-reduce (bugs in the workload), besides [`DagBuilder::add`]'s cases.
    pub fn add_collective(&mut self, spec: TaskSpec<'_>, kind: CollectiveKind) -> Added {
        assert!(
            matches!(kind, CollectiveKind::AllReduce { .. }),
            "collective tasks are all-reduces, not {}",
            kind.name()
        );
        let same_size = match (spec.inputs, spec.outputs) {
            ([c], [bytes]) => c.index() < self.chunks.len() && self.chunks[c.index()].bytes == *bytes,
            _ => false,
        };
        assert!(same_size, "a collective task reads one chunk and writes one of the same size");
        let added = self.add(spec);
        self.collectives.push((added.task, kind));
        added
    }

    /// Marks `chunk` as a result: the run hands it back even though tasks read it
    /// (a finished tile that later updates still use). Chunks nobody reads are
    /// results without marking.
    ///
    /// # Panics
    /// If the chunk does not exist yet.
    pub fn mark_result(&mut self, chunk: ChunkId) {
        assert!(chunk.index() < self.chunks.len(), "result chunk {chunk} does not exist yet");
        self.marked.push(chunk);
    }

    /// Freezes the DAG and builds its reverse indices.
    pub fn finish(self) -> Dag {
        FINISHED_HERE.with(|n| n.set(n.get() + 1));
        let consumers = Csr::build(self.chunks.len(), self.tasks.len(), |t| {
            let (a, b) = (self.input_offsets[t] as usize, self.input_offsets[t + 1] as usize);
            let mut chunks: Vec<usize> = self.inputs[a..b].iter().map(|c| c.index()).collect();
            chunks.sort_unstable();
            chunks.dedup(); // a task reading a chunk twice is still one consumer
            chunks
        });
        let mut pairs: Vec<(Rank, TaskId)> =
            consumers.items.iter().map(|&t| (self.tasks[t.index()].owner, t)).collect();
        for c in 0..self.chunks.len() {
            pairs[consumers.offsets[c] as usize..consumers.offsets[c + 1] as usize].sort_unstable();
        }
        let by_owner = Csr::build(self.ranks as usize, self.tasks.len(), |t| vec![self.tasks[t].owner.index()]);
        let mut local_index = vec![0u32; self.tasks.len()];
        for r in 0..self.ranks as usize {
            for (i, t) in by_owner.row(r).iter().enumerate() {
                local_index[t.index()] = i as u32;
            }
        }
        // Each (chunk, reading rank) pair gets the next slot of that rank, at every
        // position of its run of consumers; chunks in id order, so slots follow chunk ids.
        let mut read_slots = vec![0u32; self.ranks as usize];
        let mut readers: Vec<Reader> = Vec::with_capacity(pairs.len());
        for c in 0..self.chunks.len() {
            let (a, b) = (consumers.offsets[c] as usize, consumers.offsets[c + 1] as usize);
            for (i, &(owner, task)) in pairs[a..b].iter().enumerate() {
                let slot = match readers.last() {
                    Some(prev) if i > 0 && prev.owner == owner => prev.slot,
                    _ => {
                        read_slots[owner.index()] += 1;
                        read_slots[owner.index()] - 1
                    }
                };
                readers.push(Reader { task, owner, slot, local: local_index[task.index()] });
            }
        }
        let mut input_slots = Vec::with_capacity(self.inputs.len());
        for (t, task) in self.tasks.iter().enumerate() {
            for c in &self.inputs[self.input_offsets[t] as usize..self.input_offsets[t + 1] as usize] {
                let (a, b) = (consumers.offsets[c.index()] as usize, consumers.offsets[c.index() + 1] as usize);
                input_slots.push(readers[a + readers[a..b].partition_point(|r| r.owner < task.owner)].slot);
            }
        }
        let mut results: Vec<ChunkId> = (0..self.chunks.len() as u32)
            .map(ChunkId)
            .filter(|c| consumers.row(c.index()).is_empty())
            .chain(self.marked)
            .collect();
        results.sort_unstable();
        results.dedup();
        check_groups(self.ranks as usize, &self.tasks, &self.chunks, &self.collectives);
        Dag {
            decisions: self.decisions,
            results,
            ranks: self.ranks,
            tasks: self.tasks,
            chunks: self.chunks,
            input_offsets: self.input_offsets,
            inputs: self.inputs,
            consumers,
            readers,
            read_slots,
            input_slots,
            by_owner,
            local_index,
            collectives: self.collectives,
        }
    }
}

/// Every rank has one collective task per group, of the same kind and size.
///
/// # Panics
/// Otherwise (a bug in the workload that built the DAG: the run would hang).
fn check_groups(ranks: usize, tasks: &[Task], chunks: &[Chunk], collectives: &[(TaskId, CollectiveKind)]) {
    let mut groups: Vec<Vec<(&CollectiveKind, u64)>> = vec![Vec::new(); ranks];
    for (t, kind) in collectives {
        let task = &tasks[t.index()];
        groups[task.owner.index()].push((kind, chunks[task.first_output as usize].bytes));
    }
    for (r, g) in groups.iter().enumerate().skip(1) {
        assert!(
            g == &groups[0],
            "rank {r}'s collective tasks {g:?} differ from rank 0's {:?}: every rank needs one per group, alike",
            groups[0]
        );
    }
}

/// Compressed rows: for each key, a list of task ids.
#[derive(Debug, Clone, PartialEq)]
struct Csr {
    offsets: Vec<u32>,
    items: Vec<TaskId>,
}

impl Csr {
    /// Rows indexed by key; `keys_of(t)` lists the keys task `t` belongs to, visited in task order
    /// so every row comes out sorted.
    fn build(keys: usize, tasks: usize, keys_of: impl Fn(usize) -> Vec<usize>) -> Csr {
        let mut counts = vec![0u32; keys + 1];
        for t in 0..tasks {
            for k in keys_of(t) {
                counts[k + 1] += 1;
            }
        }
        for k in 0..keys {
            counts[k + 1] += counts[k];
        }
        let mut fill = counts.clone();
        let mut items = vec![TaskId(0); counts[keys] as usize];
        for t in 0..tasks {
            for k in keys_of(t) {
                items[fill[k] as usize] = TaskId(t as u32);
                fill[k] += 1;
            }
        }
        Csr { offsets: counts, items }
    }

    fn row(&self, key: usize) -> &[TaskId] {
        &self.items[self.offsets[key] as usize..self.offsets[key + 1] as usize]
    }
}

/// An immutable task DAG. Build it with [`DagBuilder`].
#[derive(Debug, Clone, PartialEq)]
pub struct Dag {
    ranks: u32,
    tasks: Vec<Task>,
    chunks: Vec<Chunk>,
    input_offsets: Vec<u32>,
    inputs: Vec<ChunkId>,
    consumers: Csr,
    /// Each chunk's consumers again (rows as in `consumers`), ordered by (owner, id), each
    /// with its owner, read slot and local index in one record: an engine finds the
    /// consumers on its rank by binary search, not by reading every consumer's task record
    /// on every arrival (a broadcast chunk on 16,384 ranks has 16,383 consumers), and an
    /// arrival reads one array, not four.
    readers: Vec<Reader>,
    /// How many distinct chunks each rank's tasks read (its read slots).
    read_slots: Vec<u32>,
    /// Beside `inputs`: each input's read slot on its reader's rank ([`Dag::input_slots`]).
    input_slots: Vec<u32>,
    by_owner: Csr,
    /// Each task's position among its owner's tasks ([`Dag::tasks_of`]).
    local_index: Vec<u32>,
    results: Vec<ChunkId>,
    /// The collective tasks, in id order ([`DagBuilder::add_collective`]).
    collectives: Vec<(TaskId, CollectiveKind)>,
    /// Decisions made during the run ([`DagBuilder::add_decision`]).
    decisions: Vec<Decision>,
}

impl Dag {
    /// Number of ranks the DAG was placed on.
    pub fn ranks(&self) -> usize {
        self.ranks as usize
    }
    /// Number of tasks.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }
    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
    /// A task.
    pub fn task(&self, t: TaskId) -> &Task {
        &self.tasks[t.index()]
    }
    /// All task ids, in topological order.
    pub fn task_ids(&self) -> impl ExactSizeIterator<Item = TaskId> {
        (0..self.tasks.len() as u32).map(TaskId)
    }
    /// A chunk.
    pub fn chunk(&self, c: ChunkId) -> &Chunk {
        &self.chunks[c.index()]
    }
    /// A decision declared with [`DagBuilder::add_decision`].
    pub fn decision(&self, d: DecisionId) -> &Decision {
        &self.decisions[d.0 as usize]
    }
    /// Whether a chunk gets its size at run time (its `bytes` is then a bound).
    pub fn is_sized_at_run_time(&self, c: ChunkId) -> bool {
        self.task(self.chunk(c).producer).sized_at_run_time
    }
    /// The rank that produces a chunk.
    pub fn chunk_owner(&self, c: ChunkId) -> Rank {
        self.task(self.chunk(c).producer).owner
    }
    /// The chunks a task reads, in the order its kernel receives them.
    pub fn inputs(&self, t: TaskId) -> &[ChunkId] {
        let i = t.index();
        &self.inputs[self.input_offsets[i] as usize..self.input_offsets[i + 1] as usize]
    }
    /// The tasks that read a chunk, in id order.
    pub fn consumers(&self, c: ChunkId) -> &[TaskId] {
        self.consumers.row(c.index())
    }
    /// The owners of [`Dag::consumers`]`(c)`, sorted (a rank owning several appears as
    /// often).
    ///
    /// ```
    /// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
    /// let mut b = DagBuilder::new(2);
    /// let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
    /// let r1 = b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[p.output(0)]));
    /// let r0 = b.add(TaskSpec::new(KernelId(0), Rank(0)).inputs(&[p.output(0)]));
    /// let dag = b.finish();
    /// assert_eq!(dag.consumer_owners(p.output(0)).collect::<Vec<_>>(), [Rank(0), Rank(1)]);
    /// assert_eq!(dag.consumers_on(p.output(0), Rank(1)).collect::<Vec<_>>(), [r1.task]);
    /// assert_eq!(dag.consumers_on(p.output(0), Rank(0)).collect::<Vec<_>>(), [r0.task]);
    /// ```
    pub fn consumer_owners(&self, c: ChunkId) -> impl Iterator<Item = Rank> + '_ {
        self.readers_of(c).iter().map(|r| r.owner)
    }
    /// Every [`Reader`] of `c`, ordered by (owner, task).
    fn readers_of(&self, c: ChunkId) -> &[Reader] {
        let i = c.index();
        &self.readers[self.consumers.offsets[i] as usize..self.consumers.offsets[i + 1] as usize]
    }
    /// The consumers of `c` that `rank` owns, in id order (a binary search).
    pub fn consumers_on(&self, c: ChunkId, rank: Rank) -> impl Iterator<Item = TaskId> + '_ {
        self.reading_on(c, rank).1.iter().map(|r| r.task)
    }
    /// [`Dag::consumers_on`] as [`Reader`]s, with the chunk's **read slot** on `rank`: the
    /// distinct chunks a rank's tasks read are numbered `0..`[`Dag::read_slots`]`(rank)`
    /// (in chunk id order), so an engine keeps what it holds in a dense array instead of a
    /// map. The slot is `None` (and the readers empty) when no task of `rank` reads `c`.
    pub fn reading_on(&self, c: ChunkId, rank: Rank) -> (Option<u32>, &[Reader]) {
        let all = self.readers_of(c);
        let from = all.partition_point(|r| r.owner < rank);
        let to = from + all[from..].partition_point(|r| r.owner <= rank);
        let on = &all[from..to];
        (on.first().map(|r| r.slot), on)
    }
    /// How many distinct chunks the tasks of `rank` read: the range of its read slots
    /// ([`Dag::reading_on`]).
    pub fn read_slots(&self, rank: Rank) -> usize {
        self.read_slots[rank.index()] as usize
    }
    /// The read slots on its owner of each of `t`'s [`Dag::inputs`], in the same order.
    ///
    /// ```
    /// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
    /// let mut b = DagBuilder::new(2);
    /// let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8, 8]));
    /// let (x, y) = (p.output(0), p.output(1));
    /// let r = b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[y, x, y]));
    /// let dag = b.finish();
    /// assert_eq!(dag.read_slots(Rank(1)), 2);
    /// assert_eq!(dag.input_slots(r.task), &[1, 0, 1]);
    /// assert_eq!(dag.reading_on(y, Rank(1)).0, Some(1));
    /// assert_eq!(dag.consumers_on(y, Rank(1)).collect::<Vec<_>>(), [r.task]);
    /// assert_eq!(dag.reading_on(y, Rank(0)).0, None);
    /// ```
    pub fn input_slots(&self, t: TaskId) -> &[u32] {
        let i = t.index();
        &self.input_slots[self.input_offsets[i] as usize..self.input_offsets[i + 1] as usize]
    }
    /// The tasks a rank runs, in id order.
    pub fn tasks_of(&self, rank: Rank) -> &[TaskId] {
        self.by_owner.row(rank.index())
    }
    /// Where `t` stands in its owner's [`Dag::tasks_of`], so per-rank state can live in
    /// a dense array instead of a map.
    pub fn local_index(&self, t: TaskId) -> usize {
        self.local_index[t.index()] as usize
    }
    /// Whether a task on another rank than the producer's reads `c` (it must move).
    pub fn is_read_remotely(&self, c: ChunkId) -> bool {
        let owner = self.chunk_owner(c);
        self.consumer_owners(c).any(|r| r != owner)
    }

    /// Ranks other than the producer's that read a chunk, sorted and without repeats.
    pub fn remote_readers(&self, c: ChunkId) -> Vec<Rank> {
        let mut ranks = Vec::new();
        self.remote_readers_into(c, &mut ranks);
        ranks
    }

    /// [`Dag::remote_readers`] into a buffer the caller reuses (the engine calls this
    /// for every chunk it produces).
    pub fn remote_readers_into(&self, c: ChunkId, ranks: &mut Vec<Rank>) {
        let owner = self.chunk_owner(c);
        ranks.clear();
        // Owners come sorted: repeats are adjacent.
        ranks.extend(self.consumer_owners(c).filter(|&r| r != owner));
        ranks.dedup();
    }
    /// Chunks nobody reads.
    pub fn sinks(&self) -> impl Iterator<Item = ChunkId> + '_ {
        (0..self.chunks.len() as u32).map(ChunkId).filter(|&c| self.consumers(c).is_empty())
    }
    /// The results a run hands back: chunks nobody reads plus those marked with
    /// [`DagBuilder::mark_result`], sorted.
    pub fn results(&self) -> &[ChunkId] {
        &self.results
    }
    /// True if `chunk` is a result.
    pub fn is_result(&self, chunk: ChunkId) -> bool {
        self.results.binary_search(&chunk).is_ok()
    }
    /// The collective tasks ([`DagBuilder::add_collective`]) with what they join, in id order.
    pub fn collective_tasks(&self) -> &[(TaskId, CollectiveKind)] {
        &self.collectives
    }
    /// The collective `t` joins, if it is a collective task.
    pub fn collective_of(&self, t: TaskId) -> Option<&CollectiveKind> {
        self.collectives.binary_search_by_key(&t, |(c, _)| *c).ok().map(|i| &self.collectives[i].1)
    }
    /// Total flops over all tasks.
    pub fn total_flops(&self) -> f64 {
        self.tasks.iter().map(|t| t.flops).sum()
    }
    /// Output chunk ids of a task as a range.
    pub fn output_range(&self, t: TaskId) -> Range<u32> {
        let task = self.task(t);
        task.first_output..task.first_output + task.outputs
    }

    /// A 64-bit fingerprint of the whole plan (tasks, owners, edges, sizes). Ranks
    /// compare it at start-up: different plans would otherwise show up as a hang.
    ///
    /// ```
    /// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
    /// let build = |owner| {
    ///     let mut b = DagBuilder::new(2);
    ///     b.add(TaskSpec::new(KernelId(0), Rank(owner)).outputs(&[8]));
    ///     b.finish()
    /// };
    /// assert_eq!(build(0).fingerprint(), build(0).fingerprint());
    /// assert_ne!(build(0).fingerprint(), build(1).fingerprint());
    /// ```
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv64::default();
        h.write(self.ranks as u64);
        for t in &self.tasks {
            h.write(t.kernel.0 as u64);
            h.write(t.owner.0 as u64);
            h.write(t.priority as u64);
            h.write(t.flops.to_bits());
            t.args.iter().for_each(|&a| h.write(a as u64));
            h.write(t.outputs as u64);
            // Only when set, so fingerprints of DAGs without these features stay as they were.
            if t.sized_at_run_time {
                h.write(0x5153_u64);
            }
            match t.role {
                Role::Kernel => {}
                Role::Decide(d) => h.write(0xdec0_0000_0000 | d.0 as u64),
                Role::Check(d) => h.write(0xc4ec_0000_0000 | d.0 as u64),
                Role::Placed { decision, slot } => {
                    h.write(0x91ac_0000_0000_0000 | (decision.0 as u64) << 20 | slot as u64)
                }
            }
        }
        self.chunks.iter().for_each(|c| h.write(c.bytes));
        self.inputs.iter().for_each(|c| h.write(c.0 as u64));
        self.input_offsets.iter().for_each(|&o| h.write(o as u64));
        for (t, kind) in &self.collectives {
            h.write(t.0 as u64);
            kind.name().bytes().for_each(|b| h.write(b as u64));
        }
        for d in &self.decisions {
            d.policy.0.name().bytes().for_each(|b| h.write(b as u64));
            d.reports.iter().for_each(|c| h.write(c.0 as u64));
            for (report, candidates) in &d.slots {
                h.write(*report as u64);
                candidates.iter().for_each(|c| h.write(c.0 as u64 | 1 << 40));
            }
        }
        h.0
    }
}

/// FNV-1a over 64-bit words: tiny, stable across platforms and releases.
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, word: u64) {
        for byte in word.to_le_bytes() {
            self.0 ^= byte as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diamond() -> (Dag, [Added; 4]) {
        let mut b = DagBuilder::new(3);
        let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
        let l = b.add(TaskSpec::new(KernelId(1), Rank(1)).inputs(&[a.output(0)]).outputs(&[8]));
        let r = b.add(TaskSpec::new(KernelId(1), Rank(2)).inputs(&[a.output(0)]).outputs(&[8]));
        let j = b.add(TaskSpec::new(KernelId(2), Rank(0)).inputs(&[l.output(0), r.output(0)]).outputs(&[8, 16]));
        (b.finish(), [a, l, r, j])
    }

    #[test]
    fn reverse_indices_match_the_edges() {
        let (dag, [a, l, r, j]) = diamond();
        assert_eq!(dag.consumers(a.output(0)), &[l.task, r.task]);
        assert_eq!(dag.inputs(j.task), &[l.output(0), r.output(0)]);
        assert_eq!(dag.tasks_of(Rank(0)), &[a.task, j.task]);
        assert_eq!(dag.remote_readers(a.output(0)), vec![Rank(1), Rank(2)]);
        assert!(dag.is_read_remotely(a.output(0)));
        assert_eq!(dag.remote_readers(l.output(0)), vec![Rank(0)]);
        assert_eq!(dag.sinks().collect::<Vec<_>>(), vec![j.output(0), j.output(1)]);
        assert_eq!(dag.chunk(j.output(1)).bytes, 16);
    }

    #[test]
    fn results_are_sinks_plus_marked_chunks() {
        let mut b = DagBuilder::new(1);
        let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
        let c = b.add(TaskSpec::new(KernelId(1), Rank(0)).inputs(&[a.output(0)]).outputs(&[8]));
        b.mark_result(a.output(0));
        let dag = b.finish();
        assert_eq!(dag.results(), &[a.output(0), c.output(0)]);
        assert!(dag.is_result(a.output(0)));
        assert_eq!(dag.sinks().collect::<Vec<_>>(), vec![c.output(0)]);
    }

    #[test]
    #[should_panic(expected = "does not exist yet")]
    fn reading_a_future_chunk_is_refused() {
        let mut b = DagBuilder::new(1);
        b.add(TaskSpec::new(KernelId(0), Rank(0)).inputs(&[ChunkId(5)]));
    }
}
