use super::*;
use crate::table_thread::{OwnedRows, TableThread};
use crate::tables::{read_table, write_point_parts};
use dagwire_runtime::trace::{MessageRecord, TaskRecord};
use dagwire_runtime::{ChunkId, KernelId, MessageClass, ParamValue, Rank, TaskId, Trace};

fn kernel_name(k: KernelId) -> &'static str {
    ["potrf", "trsm", "gemm"][k.0 as usize]
}

fn task(id: u32, rank: u32, start_ns: u64, end_ns: u64) -> TaskRecord {
    TaskRecord {
        task: TaskId(id),
        kernel: KernelId((id % 3) as u16),
        rank: Rank(rank),
        worker: 0,
        start_ns,
        end_ns,
        flops: 1.0,
    }
}

fn message(kind: &'static str, sent_ns: u64, recv_ns: u64) -> MessageRecord {
    let class = MessageClass::Data;
    MessageRecord { src: Rank(0), dst: Rank(1), kind, class, bytes: 8, chunk: ChunkId(0), sent_ns, recv_ns }
}

/// A trace whose records are out of the tables' order, with ties: two tasks starting
/// at once on one rank, two messages whose every sort key is equal (their order in
/// the trace must survive, as in `combine`'s stable sort).
fn trace(shift: u64) -> Trace {
    let mut t = Trace::default();
    t.tasks.extend([task(3, 1, 40 + shift, 50), task(1, 0, 10, 20), task(2, 1, 10, 30), task(0, 1, 10, 12)]);
    t.messages.extend([message("b", 30, 35), message("a", 30, 35), message("c", 5, 9)]);
    t
}

/// Point `id`: a run with parameters of its own (`only_<id>`), so `points` is
/// concatenated diagonally; an odd id is a failed run without rows.
fn point(id: u32) -> PointRecord {
    let params = vec![
        ("workload".to_string(), ParamValue::Str("micro".into())),
        (format!("only_{id}"), ParamValue::Int(i64::from(id))),
    ];
    if !id.is_multiple_of(2) {
        return PointRecord::failed(id, 0, params, "failed on purpose", 0.5);
    }
    let mut p = PointRecord { point_id: id, params, makespan_ns: Some(50), verified: true, ..Default::default() };
    p.count_trace(&trace(u64::from(id)));
    p
}

fn write(writer: &mut TableWriter, id: u32) {
    let t = trace(u64::from(id));
    let transfers = t.transfers(|_| 8);
    let rows = TraceRows { trace: &t, transfers: &transfers, kernel_name: &kernel_name, dag: None };
    writer.write_point(&point(id), id.is_multiple_of(2).then_some(rows)).unwrap();
}

fn write_part(dir: &Path, id: u32) {
    let t = trace(u64::from(id));
    let transfers = t.transfers(|_| 8);
    let rows = TraceRows { trace: &t, transfers: &transfers, kernel_name: &kernel_name, dag: None };
    write_point_parts(dir, &point(id), id.is_multiple_of(2).then_some(rows)).unwrap();
}

fn tables(dir: &Path) -> Vec<DataFrame> {
    Table::ALL.iter().map(|&t| read_table(dir, t).unwrap()).collect()
}

/// The tables of `dir` equal what `combine` makes of its parts (which it then holds).
fn assert_equals_combine(dir: &Path) {
    let written = tables(dir);
    combine(dir).unwrap();
    for ((table, w), c) in Table::ALL.iter().zip(&written).zip(tables(dir)) {
        assert!(w.equals_missing(&c), "{} differs from combine's:\n{w}\n{c}", table.name());
    }
}

fn temporaries(dir: &Path) -> Vec<String> {
    let names = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
    names.filter(|n| n.contains(".append-")).collect()
}

#[test]
fn appended_tables_equal_combine() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = TableWriter::new(dir.path()).unwrap();
    for id in 0..4 {
        write(&mut writer, id);
    }
    let finished = writer.finish().unwrap();
    assert_eq!(finished.fell_back, None);
    let s = finished.summary;
    assert_eq!((s.points, s.tasks, s.messages, s.copies), (4, 8, 6, 0));
    assert!(temporaries(dir.path()).is_empty());
    let tasks = read_table(dir.path(), Table::Tasks).unwrap();
    let order: Vec<_> = tasks.column("task").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert_eq!(order, [1, 0, 2, 3, 1, 0, 2, 3], "by start_ns, rank, task within each point");
    let kinds = read_table(dir.path(), Table::Messages).unwrap();
    let kinds: Vec<_> = kinds.column("kind").unwrap().str().unwrap().iter().flatten().collect();
    assert_eq!(kinds, ["c", "b", "a", "c", "b", "a"], "ties keep the trace's order");
    assert_equals_combine(dir.path());
}

#[test]
fn a_resumed_sweep_appends_the_earlier_parts_in_their_place() {
    let dir = tempfile::tempdir().unwrap();
    // The interrupted session: points 0 and 2 finished, point 1's part half written.
    write_part(dir.path(), 0);
    write_part(dir.path(), 2);
    fs::create_dir_all(dir.path().join("parts/.tmp-1-0-999")).unwrap();
    fs::write(dir.path().join(".tasks.parquet.append-999"), "killed while appending").unwrap();
    let mut writer = TableWriter::new(dir.path()).unwrap();
    writer.append_part(0, 0).unwrap();
    write(&mut writer, 1);
    writer.append_part(2, 0).unwrap();
    write(&mut writer, 3);
    let finished = writer.finish().unwrap();
    assert_eq!((finished.fell_back, finished.summary.points), (None, 4));
    assert!(temporaries(dir.path()).is_empty());
    assert_equals_combine(dir.path());
}

#[test]
fn parts_on_disk_that_were_not_appended_fall_back_to_combine() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = TableWriter::new(dir.path()).unwrap();
    write(&mut writer, 0);
    write_part(dir.path(), 2); // behind the writer's back (another process)
    let finished = writer.finish().unwrap();
    assert!(finished.fell_back.as_deref().is_some_and(|w| w.contains("parts on disk")), "{finished:?}");
    assert_eq!(finished.summary.points, 2);
    assert!(temporaries(dir.path()).is_empty());
    assert_equals_combine(dir.path());
}

#[test]
fn points_out_of_order_fall_back_to_combine() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = TableWriter::new(dir.path()).unwrap();
    for id in [2, 0, 1] {
        write(&mut writer, id);
    }
    let finished = writer.finish().unwrap();
    assert!(finished.fell_back.as_deref().is_some_and(|w| w.contains("came after")), "{finished:?}");
    assert_eq!(finished.summary.points, 3);
    let ids = read_table(dir.path(), Table::Points).unwrap();
    let ids: Vec<_> = ids.column("point_id").unwrap().i64().unwrap().into_no_null_iter().collect();
    assert_eq!(ids, [0, 1, 2]);
    assert_equals_combine(dir.path());
}

#[test]
fn an_incomplete_part_fails_the_finish_as_combine_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = TableWriter::new(dir.path()).unwrap();
    write(&mut writer, 0);
    write(&mut writer, 1);
    fs::remove_file(dir.path().join("parts/1-0/messages.parquet")).unwrap();
    let err = format!("{:#}", writer.finish().unwrap_err());
    assert!(err.contains("1-0") && err.contains("incomplete"), "{err}");
    assert!(temporaries(dir.path()).is_empty());
    assert!(!dir.path().join("tasks.parquet").exists());
}

#[test]
fn the_thread_writes_what_the_writer_does_and_reports_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut thread = TableThread::start(dir.path()).unwrap();
    for id in 0..3u32 {
        let t = trace(u64::from(id));
        let transfers = t.transfers(|_| 8);
        let rows = id.is_multiple_of(2).then(|| OwnedRows::new(t, transfers, &kernel_name, None));
        thread.write_point(point(id), rows).unwrap();
    }
    assert_eq!(thread.finish().unwrap().fell_back, None);
    let kernels = read_table(dir.path(), Table::Tasks).unwrap();
    let kernels: Vec<_> = kernels.column("kernel").unwrap().str().unwrap().iter().flatten().collect();
    assert_eq!(&kernels[..4], ["trsm", "potrf", "gemm", "potrf"]);
    assert_equals_combine(dir.path());

    // A point the writer refuses: the error comes back from a later call.
    let dir = tempfile::tempdir().unwrap();
    let mut thread = TableThread::start(dir.path()).unwrap();
    let mut bad = point(1);
    bad.params.push(("makespan_ns".into(), ParamValue::Int(1)));
    thread.write_point(bad, None).unwrap();
    let err = (0..3).find_map(|_| thread.write_point(point(3), None).err()).map(|e| format!("{e:#}"));
    let err = err.unwrap_or_else(|| format!("{:#}", thread.finish().unwrap_err()));
    assert!(err.contains("makespan_ns") && err.contains("fixed points column"), "{err}");
}

#[test]
fn a_thread_dropped_unfinished_leaves_its_parts_and_no_tables() {
    let dir = tempfile::tempdir().unwrap();
    let mut thread = TableThread::start(dir.path()).unwrap();
    for id in 0..2 {
        thread.write_point(point(id), None).unwrap();
    }
    drop(thread);
    assert_eq!(crate::finished_parts(dir.path()).unwrap().len(), 2);
    assert!(!dir.path().join("points.parquet").exists() && !dir.path().join("tasks.parquet").exists());
    assert!(temporaries(dir.path()).is_empty());
}
