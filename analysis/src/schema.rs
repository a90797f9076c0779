//! The documented schema of the results tables: which files a results directory
//! holds, their fixed columns, types and units. The same constants drive the
//! writers, the checks made when a table is read, the tests and the README section
//! ([`schema_markdown`]), so the documentation cannot drift from the files.
//!
//! Conventions, for every table:
//! - every integer column is **`Int64`** (signed, so differences such as
//!   `end_ns - start_ns` never wrap; identifiers, ranks, counts, bytes and times alike);
//! - times are nanoseconds since the run of that point started, on one clock per run
//!   (virtual time under the simulator);
//! - every row starts with `point_id` and `repetition`, the key joining a row to its
//!   row in `points`.

use polars::prelude::DataType;

/// One documented column of a results table.
///
/// ```
/// use dagwire_analysis::schema::{ColumnDoc, TASKS_COLUMNS};
/// use polars::prelude::DataType;
/// let start = TASKS_COLUMNS.iter().find(|c| c.name == "start_ns").unwrap();
/// assert_eq!((start.dtype, start.unit), ("Int64", "ns"));
/// assert_eq!(start.data_type(), DataType::Int64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnDoc {
    /// Column name, as in the Parquet file.
    pub name: &'static str,
    /// Polars data type: `"Int64"`, `"Float64"`, `"String"` or `"Boolean"`.
    pub dtype: &'static str,
    /// Unit of the values (`"ns"`, `"bytes"`, ...), or `""` for none.
    pub unit: &'static str,
    /// Whether the column may hold nulls.
    pub nullable: bool,
    /// What a value means, in one sentence.
    pub meaning: &'static str,
}

impl ColumnDoc {
    /// The polars type named by [`ColumnDoc::dtype`].
    ///
    /// ```
    /// use dagwire_analysis::schema::POINTS_COLUMNS;
    /// use polars::prelude::DataType;
    /// let verified = POINTS_COLUMNS.iter().find(|c| c.name == "verified").unwrap();
    /// assert_eq!(verified.data_type(), DataType::Boolean);
    /// ```
    ///
    /// # Panics
    /// If `dtype` is not one of the four names above (a bug in a table constant; the
    /// crate's tests check every constant).
    pub fn data_type(&self) -> DataType {
        match self.dtype {
            "Int64" => DataType::Int64,
            "Float64" => DataType::Float64,
            "String" => DataType::String,
            "Boolean" => DataType::Boolean,
            other => panic!("column {}: unknown dtype {other:?}", self.name),
        }
    }
}

const fn col(
    name: &'static str,
    dtype: &'static str,
    unit: &'static str,
    nullable: bool,
    meaning: &'static str,
) -> ColumnDoc {
    ColumnDoc { name, dtype, unit, nullable, meaning }
}

const POINT_ID: ColumnDoc = col("point_id", "Int64", "", false, "Index of the run point in the expanded sweep grid.");
const REPETITION: ColumnDoc = col("repetition", "Int64", "", false, "Repetition of the point, counted from 0.");

/// The fixed columns of `points.parquet`, one row per (point, repetition), failed
/// points included. Between `repetition` and `makespan_ns` the table also has one
/// column per parameter of the point (see [`schema_markdown`]); those are not listed
/// here because they depend on the sweep.
///
/// ```
/// use dagwire_analysis::schema::POINTS_COLUMNS;
/// let names: Vec<_> = POINTS_COLUMNS.iter().map(|c| c.name).collect();
/// assert_eq!(&names[..3], ["point_id", "repetition", "makespan_ns"]);
/// assert!(names.contains(&"error"));
/// ```
pub const POINTS_COLUMNS: &[ColumnDoc] = &[
    POINT_ID,
    REPETITION,
    col(
        "makespan_ns",
        "Int64",
        "ns",
        true,
        "From the common start of the ranks to the last rank finishing; null for a failed point.",
    ),
    col("makespan_s", "Float64", "s", true, "makespan_ns / 1e9."),
    col(
        "gflops",
        "Float64",
        "GFLOP/s",
        true,
        "Flops of the workload divided by the makespan; null for a failed point or a workload that counts no flops.",
    ),
    col("data_messages", "Int64", "messages", false, "Messages carrying chunk bytes (0 for a failed point)."),
    col("data_bytes", "Int64", "bytes", false, "Chunk bytes moved between ranks."),
    col(
        "control_messages",
        "Int64",
        "messages",
        false,
        "Protocol-only messages (ready-to-send, clear-to-send, notifications).",
    ),
    col("control_bytes", "Int64", "bytes", false, "Header bytes of the protocol-only messages."),
    col(
        "registrations",
        "Int64",
        "registrations",
        false,
        "Memory registrations for remote reads (the `fabric` strategy above its `rdv_limit`; with `mr_cache = on` a \
         reused buffer is registered once).",
    ),
    col("registration_ns", "Int64", "ns", false, "Time those registrations took, summed over ranks."),
    col("tasks", "Int64", "tasks", false, "Tasks run (0 for a failed point)."),
    col("verified", "Boolean", "", false, "The result was checked against a reference and passed."),
    col(
        "check_metric",
        "String",
        "",
        true,
        "What the verification measured (for example a relative residual); null when not checked.",
    ),
    col("check_value", "Float64", "", true, "The value of check_metric; null when not checked."),
    col("error", "String", "", true, "Why the point failed (the whole error chain); null when it ran to the end."),
    col("wall_s", "Float64", "s", false, "Wall time of the whole point, including building the DAG and verifying."),
];

/// The columns of `tasks.parquet`: one row per task that ran.
///
/// ```
/// use dagwire_analysis::schema::TASKS_COLUMNS;
/// assert!(TASKS_COLUMNS.iter().any(|c| c.name == "kernel" && c.dtype == "String"));
/// ```
pub const TASKS_COLUMNS: &[ColumnDoc] = &[
    POINT_ID,
    REPETITION,
    col("task", "Int64", "", false, "Task id in the DAG (ids follow a topological order)."),
    col("kernel", "String", "", false, "Name of the task's kernel, as the workload calls it."),
    col("rank", "Int64", "", false, "Rank that ran the task."),
    col(
        "worker",
        "Int64",
        "",
        false,
        "Worker thread of that rank; on a simulated machine with accelerators, the device stream the kernel ran on.",
    ),
    col("start_ns", "Int64", "ns", false, "Kernel start."),
    col("end_ns", "Int64", "ns", false, "Kernel end."),
    col("duration_ns", "Int64", "ns", false, "end_ns - start_ns."),
    col("flops", "Float64", "flop", false, "Floating-point operations of the task, from the DAG."),
    col(
        "chain_ns",
        "Int64",
        "ns",
        true,
        "Longest chain of measured kernel durations through the DAG that ends with this task (its own included); the maximum over a run is its critical path. Null when the writer had no DAG.",
    ),
];

/// The columns of `transfers.parquet`: one row per chunk moved to one remote rank,
/// with the times of its phases (null when the phase was not recorded).
///
/// ```
/// use dagwire_analysis::schema::TRANSFERS_COLUMNS;
/// let latency = TRANSFERS_COLUMNS.iter().find(|c| c.name == "latency_ns").unwrap();
/// assert!(latency.nullable);
/// ```
pub const TRANSFERS_COLUMNS: &[ColumnDoc] = &[
    POINT_ID,
    REPETITION,
    col("chunk", "Int64", "", false, "Chunk id in the DAG."),
    col("src", "Int64", "", false, "Producer's rank."),
    col("dst", "Int64", "", false, "Reader's rank."),
    col(
        "bytes",
        "Int64",
        "bytes",
        false,
        "Size of the chunk (for a chunk sized at run time, the real size its producer made, not the bound).",
    ),
    col(
        "posted_ns",
        "Int64",
        "ns",
        true,
        "The producer knew the chunk had to move (it existed and a reader was remote).",
    ),
    col("started_ns", "Int64", "ns", true, "The protocol began (its first message was sent)."),
    col("wire_ns", "Int64", "ns", true, "The data bytes left the producer."),
    col("completed_ns", "Int64", "ns", true, "The chunk was usable on the reader's rank."),
    col("latency_ns", "Int64", "ns", true, "completed_ns - posted_ns; null when either is null."),
];

/// The columns of `messages.parquet`: one row per message received.
///
/// ```
/// use dagwire_analysis::schema::MESSAGES_COLUMNS;
/// assert!(MESSAGES_COLUMNS.iter().any(|c| c.name == "class"));
/// ```
pub const MESSAGES_COLUMNS: &[ColumnDoc] = &[
    POINT_ID,
    REPETITION,
    col("src", "Int64", "", false, "Sender's rank."),
    col("dst", "Int64", "", false, "Receiver's rank."),
    col("kind", "String", "", false, "The strategy's name for the operation (eager-data, rts, ...)."),
    col("class", "String", "", false, "\"data\" (carries chunk bytes) or \"control\" (protocol only)."),
    col("bytes", "Int64", "bytes", false, "Bytes counted: the payload for data, the header for control."),
    col("chunk", "Int64", "", false, "Chunk the message is about."),
    col("sent_ns", "Int64", "ns", false, "Sent, on the run's clock."),
    col("recv_ns", "Int64", "ns", false, "Received, on the run's clock."),
];

/// The columns of `copies.parquet`: one row per copy a simulated accelerator made on
/// one of its copy engines. Only the simulator on a machine with `[accelerators]` writes
/// rows; every other run has none.
///
/// ```
/// use dagwire_analysis::schema::COPIES_COLUMNS;
/// assert!(COPIES_COLUMNS.iter().any(|c| c.name == "engine" && c.dtype == "Int64"));
/// assert!(COPIES_COLUMNS.iter().find(|c| c.name == "chunk").unwrap().nullable);
/// ```
pub const COPIES_COLUMNS: &[ColumnDoc] = &[
    POINT_ID,
    REPETITION,
    col(
        "rank",
        "Int64",
        "",
        false,
        "Rank whose device made the copy: the sender's for d2h and peer copies, the receiver's for h2d.",
    ),
    col("engine", "Int64", "", false, "Copy engine of that device the copy held."),
    col("stream", "Int64", "", false, "Stream of that device the copy held (the tasks table's worker)."),
    col(
        "kind",
        "String",
        "",
        false,
        "\"d2h\" (device to host: a chunk staged in host memory for the network, once per chunk), \"h2d\" (host to \
         device: a chunk that arrived in host memory, for a kernel that reads it) or \"peer\" (device to device \
         inside a node).",
    ),
    col("bytes", "Int64", "bytes", false, "Bytes copied."),
    col("start_ns", "Int64", "ns", false, "Copy start (its stream, engine and link were free)."),
    col("end_ns", "Int64", "ns", false, "Copy end."),
    col("duration_ns", "Int64", "ns", false, "end_ns - start_ns."),
    col(
        "src",
        "Int64",
        "",
        false,
        "Sender's rank of the transfer the copy served (the copying rank itself for the output of a task that ran \
         on the host).",
    ),
    col(
        "dst",
        "Int64",
        "",
        false,
        "Receiver's rank of the transfer the copy served (for a d2h copy, the first receiver it staged the chunk for).",
    ),
    col(
        "chunk",
        "Int64",
        "",
        true,
        "The chunk copied: set on every d2h and h2d copy (each moves one chunk) and on a peer copy of a \
         point-to-point message; null on a peer copy of collective pieces or one-sided data.",
    ),
    col(
        "carries",
        "String",
        "",
        false,
        "What the copy served: message, collective, put, get, read (exposed memory) or output (a host task's \
         output a kernel reads).",
    ),
];

/// The five tables of a results directory.
///
/// ```
/// use dagwire_analysis::schema::Table;
/// assert_eq!(Table::Tasks.file_name(), "tasks.parquet");
/// assert_eq!(Table::ALL.len(), 5);
/// assert_eq!(Table::Points.sort_keys(), ["point_id", "repetition"]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `points.parquet`: one row per (point, repetition).
    Points,
    /// `tasks.parquet`: one row per task run.
    Tasks,
    /// `transfers.parquet`: one row per chunk moved to a remote rank.
    Transfers,
    /// `messages.parquet`: one row per message received.
    Messages,
    /// `copies.parquet`: one row per device copy (simulated accelerators only).
    Copies,
}

impl Table {
    /// Every table, in the order they are written and documented.
    ///
    /// ```
    /// use dagwire_analysis::Table;
    /// let names: Vec<_> = Table::ALL.iter().map(|t| t.name()).collect();
    /// assert_eq!(names, ["points", "tasks", "transfers", "messages", "copies"]);
    /// ```
    pub const ALL: [Table; 5] = [Table::Points, Table::Tasks, Table::Transfers, Table::Messages, Table::Copies];

    /// The table's name: `points`, `tasks`, `transfers`, `messages` or `copies`.
    ///
    /// ```
    /// assert_eq!(dagwire_analysis::Table::Transfers.name(), "transfers");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Table::Points => "points",
            Table::Tasks => "tasks",
            Table::Transfers => "transfers",
            Table::Messages => "messages",
            Table::Copies => "copies",
        }
    }

    /// The file holding the combined table in a results directory.
    ///
    /// ```
    /// assert_eq!(dagwire_analysis::Table::Points.file_name(), "points.parquet");
    /// ```
    pub fn file_name(self) -> &'static str {
        match self {
            Table::Points => "points.parquet",
            Table::Tasks => "tasks.parquet",
            Table::Transfers => "transfers.parquet",
            Table::Messages => "messages.parquet",
            Table::Copies => "copies.parquet",
        }
    }

    /// The file holding one point's share of the table in its part directory
    /// (`point.parquet` for [`Table::Points`], which has a single row there).
    ///
    /// ```
    /// use dagwire_analysis::schema::Table;
    /// assert_eq!(Table::Points.part_file_name(), "point.parquet");
    /// assert_eq!(Table::Messages.part_file_name(), "messages.parquet");
    /// ```
    pub fn part_file_name(self) -> &'static str {
        match self {
            Table::Points => "point.parquet",
            other => other.file_name(),
        }
    }

    /// The documented fixed columns, in file order.
    ///
    /// ```
    /// use dagwire_analysis::{Table, TASKS_COLUMNS};
    /// assert_eq!(Table::Tasks.columns(), TASKS_COLUMNS);
    /// ```
    pub fn columns(self) -> &'static [ColumnDoc] {
        match self {
            Table::Points => POINTS_COLUMNS,
            Table::Tasks => TASKS_COLUMNS,
            Table::Transfers => TRANSFERS_COLUMNS,
            Table::Messages => MESSAGES_COLUMNS,
            Table::Copies => COPIES_COLUMNS,
        }
    }

    /// The columns the combined table is sorted by (ascending, nulls first; rows
    /// equal on all keys keep the order of their part file).
    ///
    /// ```
    /// use dagwire_analysis::Table;
    /// assert_eq!(Table::Tasks.sort_keys(), ["point_id", "repetition", "start_ns", "rank", "task"]);
    /// ```
    pub fn sort_keys(self) -> &'static [&'static str] {
        match self {
            Table::Points => &["point_id", "repetition"],
            Table::Tasks => &["point_id", "repetition", "start_ns", "rank", "task"],
            Table::Transfers => &["point_id", "repetition", "posted_ns", "src", "dst", "chunk"],
            Table::Messages => &["point_id", "repetition", "sent_ns", "src", "dst", "chunk", "recv_ns"],
            Table::Copies => &["point_id", "repetition", "start_ns", "rank", "engine"],
        }
    }

    /// What one row is, in a few words.
    ///
    /// ```
    /// assert_eq!(dagwire_analysis::Table::Tasks.row_meaning(), "one row per task run");
    /// ```
    pub fn row_meaning(self) -> &'static str {
        match self {
            Table::Points => "one row per run point and repetition, failed points included",
            Table::Tasks => "one row per task run",
            Table::Transfers => "one row per chunk moved to a remote rank, with the times of its phases",
            Table::Messages => "one row per message received",
            Table::Copies => "one row per device copy of a simulated accelerator",
        }
    }
}

/// A Markdown section documenting the results directory and its five tables, for
/// the README.
///
/// ```
/// let md = dagwire_analysis::schema_markdown();
/// assert!(md.starts_with("## Results tables"));
/// assert!(md.contains("| `latency_ns` | Int64 | ns | yes |"));
/// ```
pub fn schema_markdown() -> String {
    let mut md = String::new();
    md.push_str("## Results tables\n\n");
    md.push_str(
        "A results directory holds five Parquet tables, written by `combine` from the per-point \
         part files:\n\n\
         ```text\n\
         DIR/points.parquet  DIR/tasks.parquet  DIR/transfers.parquet  DIR/messages.parquet  DIR/copies.parquet\n\
         DIR/parts/<point_id>-<repetition>/{point,tasks,transfers,messages,copies}.parquet\n\
         ```\n\n\
         Each part directory is written as its point finishes (into `DIR/parts/.tmp-*`, then \
         renamed), so an interrupted run keeps its finished points and `--resume` skips them.\n\n\
         Conventions: every integer column is `Int64` (identifiers, ranks, counts, bytes and times \
         alike; signed so that differences never wrap). Times are nanoseconds since the run of the \
         point started, on one clock per run (virtual time under the simulator). Every row starts \
         with `point_id` and `repetition`, which join it to its row in `points`. Tables are sorted \
         by the keys listed under each.\n",
    );
    for table in Table::ALL {
        md.push_str(&format!("\n### `{}` — {}\n\n", table.file_name(), table.row_meaning()));
        let keys: Vec<String> = table.sort_keys().iter().map(|k| format!("`{k}`")).collect();
        md.push_str(&format!("Sorted by {}.\n\n", keys.join(", ")));
        if table == Table::Points {
            md.push_str(
                "After `repetition` come the parameters of the point, one column per parameter, \
                 named by its key: `workload`, `strategy`, `driver`, `ranks`, `workers`, `progress`, \
                 `fault`, then the workload's and strategy's own (`cholesky.n`, `cholesky.tile`, ...). Their types follow the \
                 parameter: integer → Int64, real → Float64, name → String, switch → Boolean. A \
                 point without a parameter that other points have holds null there. Workloads that compute \
                 figures of their own from the trace (the micro benchmarks' `micro.latency_us`, \
                 `micro.bandwidth_mbps`, ...) add them the same way, as Float64 columns.\n\n",
            );
        }
        if table == Table::Copies {
            md.push_str(
                "Only simulated runs on a machine with `[accelerators]` have rows: every device-to-host, \
                 host-to-device and peer copy, on the copy engine and stream it held (`experiment trace` and \
                 the report's timeline draw them on a lane per copy engine). Every other run has none.\n\n",
            );
        }
        md.push_str("| column | type | unit | nullable | meaning |\n|---|---|---|---|---|\n");
        for c in table.columns() {
            let unit = if c.unit.is_empty() { "—" } else { c.unit };
            let nullable = if c.nullable { "yes" } else { "no" };
            md.push_str(&format!("| `{}` | {} | {unit} | {nullable} | {} |\n", c.name, c.dtype, c.meaning));
        }
    }
    md
}
