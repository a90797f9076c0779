use super::*;
use dagwire_runtime::trace::{CopyKind, CopyRecord, MessageRecord, Phase, TaskRecord, TransferEvent};
use dagwire_runtime::{ChunkId, KernelId, MessageClass, ParamValue, Rank, TaskId, Trace};
use polars::prelude::DataType;

fn param(key: &str, value: ParamValue) -> (String, ParamValue) {
    (key.to_string(), value)
}

fn s(v: &str) -> ParamValue {
    ParamValue::Str(v.to_string())
}

fn task(id: u32, kernel: u16, rank: u32, worker: u32, start_ns: u64, end_ns: u64, flops: f64) -> TaskRecord {
    TaskRecord { task: TaskId(id), kernel: KernelId(kernel), rank: Rank(rank), worker, start_ns, end_ns, flops }
}

#[allow(clippy::too_many_arguments)]
fn message(
    src: u32,
    dst: u32,
    kind: &'static str,
    class: MessageClass,
    bytes: u64,
    chunk: u32,
    sent_ns: u64,
    recv_ns: u64,
) -> MessageRecord {
    MessageRecord { src: Rank(src), dst: Rank(dst), kind, class, bytes, chunk: ChunkId(chunk), sent_ns, recv_ns }
}

fn event(chunk: u32, src: u32, dst: u32, phase: Phase, at_ns: u64) -> TransferEvent {
    TransferEvent { chunk: ChunkId(chunk), src: Rank(src), dst: Rank(dst), phase, at_ns }
}

fn kernel_name(k: KernelId) -> &'static str {
    ["potrf", "trsm", "gemm", "stencil"][k.0 as usize]
}

/// Point 0: a Cholesky run on two ranks, with one complete and one unfinished transfer.
fn cholesky_trace() -> Trace {
    let mut t = Trace::default();
    // Out of time order on purpose: the combined table is sorted by start_ns.
    t.tasks.push(task(2, 2, 1, 1, 400, 900, 2e6));
    t.tasks.push(task(0, 0, 0, 0, 0, 300, 1e6));
    t.tasks.push(task(1, 1, 1, 0, 350, 600, 5e5));
    t.messages.push(message(0, 1, "eager-data", MessageClass::Data, 8192, 0, 300, 340));
    t.messages.push(message(1, 0, "ack", MessageClass::Control, 16, 0, 345, 360));
    t.transfer_events.extend([
        event(0, 0, 1, Phase::Posted, 300),
        event(0, 0, 1, Phase::Started, 301),
        event(0, 0, 1, Phase::Wire, 302),
        event(0, 0, 1, Phase::Completed, 345),
        event(3, 1, 0, Phase::Posted, 900),
    ]);
    // As if on simulated devices, staged: rank 1's host-to-device copy listed before
    // rank 0's device-to-host one (the table is sorted by start_ns).
    t.copies.push(copy(1, 0, CopyKind::HostToDevice, 320, 338));
    t.copies.push(copy(0, 1, CopyKind::DeviceToHost, 300, 310));
    t
}

fn copy(rank: u32, engine: u32, kind: CopyKind, start_ns: u64, end_ns: u64) -> CopyRecord {
    let (src, dst) = (Rank(0), Rank(1));
    let (stream, bytes, chunk, carries) = (1, 8192, Some(ChunkId(0)), "message");
    CopyRecord { rank: Rank(rank), engine, stream, kind, bytes, start_ns, end_ns, src, dst, chunk, carries }
}

/// Point 2: a stencil run on one rank.
fn stencil_trace() -> Trace {
    let mut t = Trace::default();
    t.tasks.push(task(0, 3, 0, 0, 10, 20, 100.0));
    t.tasks.push(task(1, 3, 0, 1, 12, 30, 100.0));
    t
}

fn common(workload: &str, strategy: &str, ranks: i64) -> Vec<(String, ParamValue)> {
    vec![
        param("workload", s(workload)),
        param("strategy", s(strategy)),
        param("driver", s("local")),
        param("ranks", ParamValue::Int(ranks)),
        param("workers", ParamValue::Int(2)),
    ]
}

fn cholesky_point() -> PointRecord {
    let mut params = common("cholesky", "eager", 2);
    params.push(param("cholesky.n", ParamValue::Int(64)));
    params.push(param("cholesky.tile", ParamValue::Int(32)));
    let mut p = PointRecord {
        point_id: 0,
        repetition: 0,
        params,
        makespan_ns: Some(900),
        gflops: Some(3.5e6 / 900.0),
        verified: true,
        check_metric: Some("relative_residual".into()),
        check_value: Some(1e-15),
        wall_s: 0.25,
        ..Default::default()
    };
    p.count_trace(&cholesky_trace());
    p
}

fn failed_point() -> PointRecord {
    let mut params = common("stencil", "rendezvous", 4);
    params.push(param("stencil.alpha", ParamValue::Float(0.5)));
    params.push(param("stencil.verify", ParamValue::Bool(true)));
    PointRecord::failed(1, 0, params, "rank 3: connection refused", 0.125)
}

fn stencil_point() -> PointRecord {
    let mut params = common("stencil", "eager", 1);
    params.push(param("stencil.alpha", ParamValue::Float(0.25)));
    params.push(param("stencil.verify", ParamValue::Bool(false)));
    let mut p =
        PointRecord { point_id: 2, repetition: 1, params, makespan_ns: Some(30), wall_s: 0.5, ..Default::default() };
    p.count_trace(&stencil_trace());
    p
}

/// Writes the three points, last first, and combines them.
fn write_three(dir: &Path) -> CombineSummary {
    let (chol, sten) = (cholesky_trace(), stencil_trace());
    let (chol_tr, sten_tr) = (chol.transfers(|_| 8192), sten.transfers(|_| 0));
    let rows = |trace, transfers| TraceRows { trace, transfers, kernel_name: &kernel_name, dag: None };
    write_point_parts(dir, &stencil_point(), Some(rows(&sten, &sten_tr))).unwrap();
    write_point_parts(dir, &failed_point(), None).unwrap();
    write_point_parts(dir, &cholesky_point(), Some(rows(&chol, &chol_tr))).unwrap();
    combine(dir).unwrap()
}

fn ints(df: &DataFrame, name: &str) -> Vec<Option<i64>> {
    df.column(name).unwrap().i64().unwrap().iter().collect()
}

fn floats(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name).unwrap().f64().unwrap().iter().collect()
}

fn strs(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    df.column(name).unwrap().str().unwrap().iter().map(|v| v.map(String::from)).collect()
}

fn bools(df: &DataFrame, name: &str) -> Vec<Option<bool>> {
    df.column(name).unwrap().bool().unwrap().iter().collect()
}

fn names(df: &DataFrame) -> Vec<String> {
    df.get_column_names().iter().map(|n| n.to_string()).collect()
}

/// Asserts that `df` has every documented column with its documented type.
fn assert_documented(df: &DataFrame, table: Table) {
    for doc in table.columns() {
        let column = df.column(doc.name).unwrap_or_else(|_| panic!("{}: no column {}", table.name(), doc.name));
        assert_eq!(column.dtype(), &doc.data_type(), "{}.{}", table.name(), doc.name);
        if !doc.nullable {
            assert_eq!(column.null_count(), 0, "{}.{} is documented as never null", table.name(), doc.name);
        }
    }
}

#[test]
fn combine_counts_rows_of_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let summary = write_three(dir.path());
    assert_eq!(summary, CombineSummary { points: 3, tasks: 5, transfers: 2, messages: 2, copies: 2 });
    for table in Table::ALL {
        let df = read_table(dir.path(), table).unwrap();
        assert_eq!(df.height(), summary.rows(table), "{}", table.name());
        assert_documented(&df, table);
    }
}

#[test]
fn points_table_has_one_row_per_point_with_the_written_values() {
    let dir = tempfile::tempdir().unwrap();
    write_three(dir.path());
    let points = read_points(dir.path()).unwrap();
    assert_documented(&points, Table::Points);
    assert_eq!(ints(&points, "point_id"), [Some(0), Some(1), Some(2)]);
    assert_eq!(ints(&points, "repetition"), [Some(0), Some(0), Some(1)]);
    assert_eq!(ints(&points, "makespan_ns"), [Some(900), None, Some(30)]);
    assert_eq!(floats(&points, "makespan_s"), [Some(900e-9), None, Some(30e-9)]);
    assert_eq!(floats(&points, "gflops"), [Some(3.5e6 / 900.0), None, None]);
    assert_eq!(strs(&points, "error"), [None, Some("rank 3: connection refused".to_string()), None]);
    assert_eq!(bools(&points, "verified"), [Some(true), Some(false), Some(false)]);
    assert_eq!(strs(&points, "check_metric"), [Some("relative_residual".to_string()), None, None]);
    assert_eq!(floats(&points, "check_value"), [Some(1e-15), None, None]);
    assert_eq!(floats(&points, "wall_s"), [Some(0.25), Some(0.125), Some(0.5)]);
    assert_eq!(ints(&points, "tasks"), [Some(3), Some(0), Some(2)]);
    assert_eq!(ints(&points, "data_messages"), [Some(1), Some(0), Some(0)]);
    assert_eq!(ints(&points, "data_bytes"), [Some(8192), Some(0), Some(0)]);
    assert_eq!(ints(&points, "control_messages"), [Some(1), Some(0), Some(0)]);
    assert_eq!(ints(&points, "control_bytes"), [Some(16), Some(0), Some(0)]);
}

#[test]
fn points_table_has_every_parameter_as_a_typed_column() {
    let dir = tempfile::tempdir().unwrap();
    write_three(dir.path());
    let points = read_points(dir.path()).unwrap();
    // Identifiers, parameters in order of first appearance, then the fixed metrics.
    let expected: Vec<&str> = ["point_id", "repetition", "workload", "strategy", "driver", "ranks", "workers"]
        .into_iter()
        .chain(["cholesky.n", "cholesky.tile", "stencil.alpha", "stencil.verify"])
        .chain(POINTS_COLUMNS[2..].iter().map(|c| c.name))
        .collect();
    assert_eq!(names(&points), expected);
    let dtype = |name: &str| points.column(name).unwrap().dtype().clone();
    assert_eq!(dtype("workload"), DataType::String);
    assert_eq!(dtype("ranks"), DataType::Int64);
    assert_eq!(dtype("cholesky.n"), DataType::Int64);
    assert_eq!(dtype("stencil.alpha"), DataType::Float64);
    assert_eq!(dtype("stencil.verify"), DataType::Boolean);
    let workload = strs(&points, "workload");
    assert_eq!(workload, [Some("cholesky".into()), Some("stencil".into()), Some("stencil".into())]);
    assert_eq!(strs(&points, "strategy"), [Some("eager".into()), Some("rendezvous".into()), Some("eager".into())]);
    assert_eq!(ints(&points, "ranks"), [Some(2), Some(4), Some(1)]);
    // A parameter a point does not have is null there.
    assert_eq!(ints(&points, "cholesky.n"), [Some(64), None, None]);
    assert_eq!(ints(&points, "cholesky.tile"), [Some(32), None, None]);
    assert_eq!(floats(&points, "stencil.alpha"), [None, Some(0.5), Some(0.25)]);
    assert_eq!(bools(&points, "stencil.verify"), [None, Some(true), Some(false)]);
}

#[test]
fn copies_table_matches_the_trace_and_runs_without_devices_have_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    write_three(dir.path());
    let copies = read_table(dir.path(), Table::Copies).unwrap();
    let documented: Vec<String> = COPIES_COLUMNS.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names(&copies), documented, "copies has exactly the documented columns, in order");
    // Only point 0 copied; sorted by start time.
    assert_eq!(ints(&copies, "point_id"), [Some(0), Some(0)]);
    assert_eq!(ints(&copies, "rank"), [Some(0), Some(1)]);
    assert_eq!(ints(&copies, "engine"), [Some(1), Some(0)]);
    assert_eq!(ints(&copies, "stream"), [Some(1), Some(1)]);
    assert_eq!(strs(&copies, "kind"), [Some("d2h".into()), Some("h2d".into())]);
    assert_eq!(ints(&copies, "start_ns"), [Some(300), Some(320)]);
    assert_eq!(ints(&copies, "duration_ns"), [Some(10), Some(18)]);
    assert_eq!(ints(&copies, "bytes"), [Some(8192), Some(8192)]);
    assert_eq!((ints(&copies, "src"), ints(&copies, "dst")), (vec![Some(0); 2], vec![Some(1); 2]));
    assert_eq!(ints(&copies, "chunk"), [Some(0), Some(0)]);
    assert_eq!(strs(&copies, "carries"), [Some("message".into()), Some("message".into())]);
    // The stencil run's part (no devices) and the failed point's hold none.
    for part in ["2-1", "1-0"] {
        let path = dir.path().join(PARTS_DIR).join(part).join("copies.parquet");
        assert_eq!(crate::parquet_file::read(&path, COPIES_COLUMNS).unwrap().height(), 0, "{part}");
    }
}

#[test]
fn a_copy_on_a_rank_its_run_does_not_have_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut trace = cholesky_trace();
    trace.copies[0].rank = Rank(7);
    let transfers = trace.transfers(|_| 8192);
    let rows = TraceRows { trace: &trace, transfers: &transfers, kernel_name: &kernel_name, dag: None };
    write_point_parts(dir.path(), &cholesky_point(), Some(rows)).unwrap();
    combine(dir.path()).unwrap();
    let manifest = serde_json::json!({"format": crate::RESULTS_FORMAT, "sweep": {"name": "t"}});
    std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
    let err = open_error(dir.path());
    assert!(err.contains("copies.parquet: row") && err.contains("rank = 7"), "{err}");
}

#[test]
fn tasks_table_matches_the_traces_and_the_points() {
    let dir = tempfile::tempdir().unwrap();
    write_three(dir.path());
    let tasks = read_table(dir.path(), Table::Tasks).unwrap();
    let got: Vec<String> = TASKS_COLUMNS.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names(&tasks), got, "tasks has exactly the documented columns, in order");
    // Sorted by point, then start time.
    assert_eq!(ints(&tasks, "point_id"), [Some(0), Some(0), Some(0), Some(2), Some(2)]);
    assert_eq!(ints(&tasks, "repetition"), [Some(0), Some(0), Some(0), Some(1), Some(1)]);
    assert_eq!(ints(&tasks, "task"), [Some(0), Some(1), Some(2), Some(0), Some(1)]);
    let kernels: Vec<Option<String>> =
        ["potrf", "trsm", "gemm", "stencil", "stencil"].iter().map(|k| Some(k.to_string())).collect();
    assert_eq!(strs(&tasks, "kernel"), kernels);
    assert_eq!(ints(&tasks, "rank"), [Some(0), Some(1), Some(1), Some(0), Some(0)]);
    assert_eq!(ints(&tasks, "worker"), [Some(0), Some(0), Some(1), Some(0), Some(1)]);
    assert_eq!(ints(&tasks, "start_ns"), [Some(0), Some(350), Some(400), Some(10), Some(12)]);
    assert_eq!(ints(&tasks, "duration_ns"), [Some(300), Some(250), Some(500), Some(10), Some(18)]);
    assert_eq!(floats(&tasks, "flops"), [Some(1e6), Some(5e5), Some(2e6), Some(100.0), Some(100.0)]);

    // The points' task counts agree with the tasks table.
    let points = read_points(dir.path()).unwrap();
    let task_points = ints(&tasks, "point_id");
    for (id, count) in ints(&points, "point_id").into_iter().zip(ints(&points, "tasks")) {
        let rows = task_points.iter().filter(|&&p| p == id).count() as i64;
        assert_eq!(Some(rows), count, "point {id:?}");
    }
}

#[test]
fn transfers_and_messages_tables_match_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    write_three(dir.path());
    let transfers = read_table(dir.path(), Table::Transfers).unwrap();
    let got: Vec<String> = TRANSFERS_COLUMNS.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names(&transfers), got);
    assert_eq!(ints(&transfers, "chunk"), [Some(0), Some(3)]);
    assert_eq!(ints(&transfers, "src"), [Some(0), Some(1)]);
    assert_eq!(ints(&transfers, "dst"), [Some(1), Some(0)]);
    assert_eq!(ints(&transfers, "bytes"), [Some(8192), Some(8192)]);
    assert_eq!(ints(&transfers, "posted_ns"), [Some(300), Some(900)]);
    assert_eq!(ints(&transfers, "started_ns"), [Some(301), None]);
    assert_eq!(ints(&transfers, "wire_ns"), [Some(302), None]);
    assert_eq!(ints(&transfers, "completed_ns"), [Some(345), None]);
    assert_eq!(ints(&transfers, "latency_ns"), [Some(45), None]);

    let messages = read_table(dir.path(), Table::Messages).unwrap();
    let got: Vec<String> = MESSAGES_COLUMNS.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names(&messages), got);
    assert_eq!(strs(&messages, "kind"), [Some("eager-data".into()), Some("ack".into())]);
    assert_eq!(strs(&messages, "class"), [Some("data".into()), Some("control".into())]);
    assert_eq!(ints(&messages, "bytes"), [Some(8192), Some(16)]);
    assert_eq!(ints(&messages, "src"), [Some(0), Some(1)]);
    assert_eq!(ints(&messages, "recv_ns"), [Some(340), Some(360)]);
}

#[test]
fn failed_point_parts_have_the_documented_columns_and_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    write_point_parts(dir.path(), &failed_point(), None).unwrap();
    let part = dir.path().join("parts/1-0");
    for table in Table::ALL {
        let df = parquet_file::read(&part.join(table.part_file_name()), table.columns()).unwrap();
        let expected = if table == Table::Points { 1 } else { 0 };
        assert_eq!(df.height(), expected, "{}", table.name());
    }
}

#[test]
fn finished_parts_ignores_temporary_incomplete_and_foreign_dirs() {
    let dir = tempfile::tempdir().unwrap();
    write_point_parts(dir.path(), &failed_point(), None).unwrap();
    write_point_parts(dir.path(), &stencil_point(), None).unwrap();
    let parts = dir.path().join(PARTS_DIR);
    // A crash while writing point 5 left its temporary directory behind, with all files.
    fs::create_dir(parts.join(".tmp-5-0-12345")).unwrap();
    for entry in fs::read_dir(parts.join("1-0")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), parts.join(".tmp-5-0-12345").join(entry.file_name())).unwrap();
    }
    fs::create_dir(parts.join("notes")).unwrap();
    fs::write(parts.join("6-0"), b"a file, not a part").unwrap();
    assert_eq!(finished_parts(dir.path()).unwrap(), BTreeSet::from([(1, 0), (2, 1)]));
    // combine reads only finished parts too.
    assert_eq!(combine(dir.path()).unwrap().points, 2);

    // A plain-named part that lacks a file is not finished, and combine refuses it.
    fs::create_dir(parts.join("9-0")).unwrap();
    fs::copy(parts.join("1-0/point.parquet"), parts.join("9-0/point.parquet")).unwrap();
    assert_eq!(finished_parts(dir.path()).unwrap(), BTreeSet::from([(1, 0), (2, 1)]));
    let err = format!("{:#}", combine(dir.path()).unwrap_err());
    assert!(err.contains("9-0") && err.contains("incomplete"), "{err}");
}

#[test]
fn writing_leaves_no_temporary_directory_and_replaces_an_old_part() {
    let dir = tempfile::tempdir().unwrap();
    let mut point = failed_point();
    write_point_parts(dir.path(), &point, None).unwrap();
    point.error = Some("second attempt".into());
    write_point_parts(dir.path(), &point, None).unwrap();
    let entries: Vec<String> = fs::read_dir(dir.path().join(PARTS_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, ["1-0"]);
    combine(dir.path()).unwrap();
    assert_eq!(strs(&read_points(dir.path()).unwrap(), "error"), [Some("second attempt".into())]);
}

#[test]
fn bad_parameter_names_are_refused_without_leaving_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut point = failed_point();
    point.params.push(param("makespan_ns", ParamValue::Int(1)));
    let err = format!("{:#}", write_point_parts(dir.path(), &point, None).unwrap_err());
    assert!(err.contains("makespan_ns") && err.contains("fixed points column"), "{err}");
    let mut point = failed_point();
    point.params.push(param("ranks", ParamValue::Int(9)));
    let err = format!("{:#}", write_point_parts(dir.path(), &point, None).unwrap_err());
    assert!(err.contains("\"ranks\" is given twice"), "{err}");
    // The rows are built before anything is written: no part directory, or an empty one.
    assert_eq!(fs::read_dir(dir.path().join(PARTS_DIR)).map_or(0, |d| d.count()), 0);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), usize::from(dir.path().join(PARTS_DIR).exists()));
}

/// Cuts `path` to half its length.
fn truncate(path: &Path) {
    let len = fs::metadata(path).unwrap().len();
    fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len / 2).unwrap();
}

#[test]
fn a_truncated_part_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_three(dir.path());
    let file = dir.path().join("parts/0-0/tasks.parquet");
    truncate(&file);
    let err = format!("{:#}", combine(dir.path()).unwrap_err());
    assert!(err.contains(&file.display().to_string()), "{err}");
}

#[test]
fn a_truncated_or_missing_table_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_three(dir.path());
    let file = dir.path().join("points.parquet");
    truncate(&file);
    let err = format!("{:#}", read_points(dir.path()).unwrap_err());
    assert!(err.contains(&file.display().to_string()) && err.contains("truncated"), "{err}");

    fs::remove_file(&file).unwrap();
    let err = format!("{:#}", read_points(dir.path()).unwrap_err());
    assert!(err.contains(&file.display().to_string()) && err.contains("not combined"), "{err}");
}

#[test]
fn a_directory_that_is_not_a_results_dir_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = format!("{:#}", read_points(dir.path()).unwrap_err());
    let file = dir.path().join("points.parquet");
    assert!(err.contains(&file.display().to_string()) && err.contains("not a dagwire results"), "{err}");
    let err = format!("{:#}", combine(dir.path()).unwrap_err());
    assert!(err.contains(&dir.path().display().to_string()), "{err}");

    // A Parquet file that is not one of ours.
    let mut other = DataFrame::new(1, vec![polars::prelude::Column::new("x".into(), [1i64])]).unwrap();
    parquet_file::write(&file, &mut other, parquet_file::Kind::Part).unwrap();
    let err = format!("{:#}", read_points(dir.path()).unwrap_err());
    assert!(err.contains(&file.display().to_string()) && err.contains("point_id"), "{err}");

    let missing = dir.path().join("missing");
    assert!(format!("{:#}", finished_parts(&missing).unwrap_err()).contains("missing"));
    assert!(format!("{:#}", read_points(&missing).unwrap_err()).contains("missing"));
}

#[test]
fn column_docs_are_well_formed_and_documented_in_the_markdown() {
    let md = schema_markdown();
    for table in Table::ALL {
        let cols = table.columns();
        assert_eq!(cols[0].name, "point_id");
        assert_eq!(cols[1].name, "repetition");
        let unique: BTreeSet<_> = cols.iter().map(|c| c.name).collect();
        assert_eq!(unique.len(), cols.len(), "{}: duplicate column", table.name());
        for c in cols {
            let _ = c.data_type(); // panics on an unknown dtype
            assert!(!c.meaning.is_empty(), "{}.{}", table.name(), c.name);
            if c.name.ends_with("_ns") {
                assert_eq!(c.unit, "ns", "{}.{}", table.name(), c.name);
            }
            assert!(md.contains(&format!("| `{}` | {} |", c.name, c.dtype)), "{}.{}", table.name(), c.name);
        }
        for key in table.sort_keys() {
            assert!(cols.iter().any(|c| c.name == *key), "{}: sort key {key}", table.name());
        }
        assert!(md.contains(table.file_name()));
    }
}

/// `write_three` plus a manifest recording the tables' checksums, as `experiment run` writes it.
fn results_dir(dir: &Path) {
    write_three(dir);
    let manifest = serde_json::json!({
        "format": crate::RESULTS_FORMAT,
        "sweep": {"name": "t"},
        "tables": crate::integrity::table_checksums(dir).unwrap(),
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
}

fn open_error(dir: &Path) -> String {
    format!("{:#}", crate::ResultsDir::open(dir).expect_err("the directory must be refused"))
}

#[test]
fn a_sound_results_directory_opens() {
    let dir = tempfile::tempdir().unwrap();
    results_dir(dir.path());
    let results = crate::ResultsDir::open(dir.path()).unwrap();
    assert_eq!(results.manifest.tables.len(), Table::ALL.len());
    assert_eq!(results.copies.height(), 2);
    assert_eq!(results.points.height(), 3);
}

#[test]
fn a_flipped_byte_in_a_table_is_caught_by_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    results_dir(dir.path());
    let path = dir.path().join("tasks.parquet");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let err = open_error(dir.path());
    assert!(err.contains("tasks.parquet does not match the SHA-256 manifest.json recorded"), "{err}");
    assert!(err.contains("--resume"), "says what to do: {err}");
}

#[test]
fn a_duplicated_run_is_refused_not_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    write_three(dir.path());
    // A stray part directory holding point 0's run again (a second writer, a copied directory).
    let twin = dir.path().join(PARTS_DIR).join("0-9");
    std::fs::create_dir_all(&twin).unwrap();
    for t in Table::ALL {
        let name = t.part_file_name();
        std::fs::copy(dir.path().join(PARTS_DIR).join("0-0").join(name), twin.join(name)).unwrap();
    }
    combine(dir.path()).unwrap();
    let manifest = serde_json::json!({"format": crate::RESULTS_FORMAT, "sweep": {"name": "t"}});
    std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
    let err = open_error(dir.path());
    assert!(err.contains("points.parquet: point 0 repetition 0 appears twice"), "{err}");
}

#[test]
fn rows_naming_ranks_a_run_does_not_have_are_refused() {
    let manifest = serde_json::json!({"format": crate::RESULTS_FORMAT, "sweep": {"name": "t"}});
    // A task on rank 2^40 of a 2-rank run: once an 8.8 TB allocation in the report.
    let dir = tempfile::tempdir().unwrap();
    let mut trace = cholesky_trace();
    trace.tasks[0].rank = Rank(u32::MAX);
    let transfers = trace.transfers(|_| 8192);
    let rows = TraceRows { trace: &trace, transfers: &transfers, kernel_name: &kernel_name, dag: None };
    write_point_parts(dir.path(), &cholesky_point(), Some(rows)).unwrap();
    combine(dir.path()).unwrap();
    std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
    let err = open_error(dir.path());
    assert!(err.contains("tasks.parquet: row") && err.contains("rank = 4294967295"), "{err}");
    assert!(err.contains("ran on 2 ranks (valid: 0..2)"), "{err}");
}
