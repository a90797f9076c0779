//! Panics in a rank, reported with what the rank was doing.
//!
//! A driver's loop records what it is about to hand the engine (a message, a task's
//! result, a collective's contribution, ...) with [`set_handling`] before each call: one
//! write to a thread-local, cheap enough for every event. When engine, strategy or
//! kernel code panics below, the driver (or a panic hook) reads it back with
//! [`handling`] and names it next to the panic's [`text`].

use crate::ids::{ChunkId, Rank, TaskId};
use std::any::Any;
use std::cell::Cell;
use std::fmt;

/// What a rank's thread is handling, as its loop last recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Handling {
    /// Nothing recorded (the thread is between events, or is no rank's).
    #[default]
    Nothing,
    /// The start of the run (the strategy's `on_start`).
    Start,
    /// Running a task's kernel.
    Task(TaskId),
    /// A task's result (the strategy's `on_chunk_ready` and `on_task_done` run here).
    TaskDone(TaskId),
    /// A message from a peer (the strategy's `on_message`).
    Message {
        /// The sender.
        from: Rank,
        /// Its strategy-defined operation.
        op: u8,
        /// The chunk it is about.
        chunk: ChunkId,
    },
    /// Collective `id`: joining it, a contribution to it (from `from`, when known), or
    /// its completion (the strategy's `on_collective_done`).
    Collective {
        /// The collective's id.
        id: u64,
        /// Whose contribution, when one arrived.
        from: Option<Rank>,
    },
    /// One-sided operation `id` on `target`'s window, or its completion.
    OneSided {
        /// The operation's id.
        id: u64,
        /// Whose window.
        target: Rank,
    },
    /// The engine's next actions.
    Actions,
    /// The engine's deadlines: strategy timers (the strategy's `on_timer`), the stall watch.
    Timers,
}

impl Handling {
    /// Describes it, naming a message's operation with `op_name` (a strategy's names).
    pub fn describe(self, op_name: impl Fn(u8) -> &'static str) -> String {
        match self {
            Handling::Message { from, op, chunk } => {
                format!("a message from rank {from} (op {op} `{}`, chunk {chunk})", op_name(op))
            }
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Handling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Handling::Nothing => write!(f, "nothing in particular"),
            Handling::Start => write!(f, "the start of the run"),
            Handling::Task(task) => write!(f, "task {task} (its kernel)"),
            Handling::TaskDone(task) => write!(f, "the result of task {task}"),
            Handling::Message { from, op, chunk } => write!(f, "a message from rank {from} (op {op}, chunk {chunk})"),
            Handling::Collective { id, from: Some(from) } => {
                write!(f, "collective {id} (a contribution from rank {from})")
            }
            Handling::Collective { id, from: None } => write!(f, "collective {id}"),
            Handling::OneSided { id, target } => write!(f, "one-sided operation {id} on rank {target}'s window"),
            Handling::Actions => write!(f, "the engine's next actions"),
            Handling::Timers => write!(f, "the engine's timers"),
        }
    }
}

thread_local! {
    static HANDLING: Cell<Handling> = const { Cell::new(Handling::Nothing) };
}

/// Records what this thread is handling now; returns what it handled before.
#[inline]
pub fn set_handling(now: Handling) -> Handling {
    HANDLING.with(|h| h.replace(now))
}

/// What this thread last recorded with [`set_handling`] (in a panic hook: what it was
/// handling when it panicked).
///
/// ```
/// use dagwire_runtime::drivers::panics::{handling, set_handling, Handling};
/// use dagwire_runtime::TaskId;
/// set_handling(Handling::TaskDone(TaskId(7)));
/// assert_eq!(handling().to_string(), "the result of task t7");
/// ```
pub fn handling() -> Handling {
    HANDLING.with(Cell::get)
}

/// The text a panic was raised with (`panic!("...")` makes a `&str` or a `String`).
///
/// ```
/// use dagwire_runtime::drivers::panics::text;
/// let caught = std::panic::catch_unwind(|| panic!("bad {}", 42)).unwrap_err();
/// assert_eq!(text(&*caught), "bad 42");
/// ```
pub fn text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        return s.to_string();
    }
    if let Some(s) = payload.downcast_ref::<String>() {
        return s.clone();
    }
    "a panic without a message (its payload is neither a &str nor a String)".into()
}
