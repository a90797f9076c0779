//! Small copyable identifiers. They are indices, not pointers, so events and
//! trace records stay small and a DAG can be shared by every rank.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u32);

        impl $name {
            /// The id as a `usize`, for indexing.
            #[inline]
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

id_type!(
    /// A rank: one SPMD participant (a thread, an MPI process, a simulated node slot).
    ///
    /// ```
    /// use dagwire_runtime::Rank;
    /// assert_eq!(Rank(3).index(), 3);
    /// ```
    Rank, "r"
);
id_type!(
    /// A task in the DAG; ids follow a topological order (inputs always come first).
    TaskId, "t"
);
id_type!(
    /// A chunk: one immutable version of a piece of data, produced by exactly one task.
    ChunkId, "c"
);

/// Which kernel a task runs. The numbering belongs to the workload that built the DAG.
///
/// ```
/// use dagwire_runtime::KernelId;
/// const POTRF: KernelId = KernelId(1);
/// assert_eq!(POTRF.0, 1);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct KernelId(pub u16);
