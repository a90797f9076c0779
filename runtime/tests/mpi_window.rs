//! The RMA window wrapper under a real MPI job: run by `cargo test` (feature `mpi`),
//! this program launches itself with `mpirun -n 2` and `-n 4` and fails if any rank
//! finds a wrong byte or an error it should not have got (or misses one it should).
//!
//! Launcher: `DAGWIRE_MPI_LAUNCHER` (default `mpirun`) with `DAGWIRE_MPI_LAUNCHER_ARGS`
//! (default `--oversubscribe`, for Open MPI on a small machine).

use dagwire_runtime::drivers::mpi::{Epoch, Mpi, WindowError};
use std::process::Command;

/// Bytes each source writes into its target's window in the passive-mode part.
const SLOT: usize = 128;

fn pattern(src: usize, len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (src as u8).wrapping_mul(31).wrapping_add(i as u8).wrapping_add(salt)).collect()
}

fn main() {
    if Mpi::launched() {
        ranks_main();
        return;
    }
    for ranks in [2, 4] {
        let launcher = std::env::var("DAGWIRE_MPI_LAUNCHER").unwrap_or_else(|_| "mpirun".into());
        let args = std::env::var("DAGWIRE_MPI_LAUNCHER_ARGS").unwrap_or_else(|_| "--oversubscribe".into());
        let status = Command::new(&launcher)
            .arg("-n")
            .arg(ranks.to_string())
            .args(args.split_whitespace())
            .arg(std::env::current_exe().expect("own path"))
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .status()
            .unwrap_or_else(|e| panic!("cannot start `{launcher}` ({e}); install Open MPI (scripts/packages.txt)"));
        assert!(status.success(), "the window checks failed on {ranks} ranks: {status}");
        println!("window checks passed on {ranks} ranks");
    }
}

fn ranks_main() {
    let mpi = Mpi::init().expect("MPI initialises");
    let (me, n) = (mpi.rank(), mpi.size());
    let (right, left) = ((me + 1) % n, (me + n - 1) % n);
    // Ranks get windows of different sizes, so the range check uses each target's own.
    let bytes = 1024 + me * 8;
    let mut w = mpi.window(bytes).expect("window");
    assert_eq!((w.size_of(me), w.size_of(right)), (bytes, 1024 + right * 8));

    // Misuse is refused before MPI sees it.
    assert!(matches!(w.put(right, 0, vec![1]), Err(WindowError::WrongEpoch { .. })));
    assert!(matches!(w.flush(right), Err(WindowError::WrongEpoch { .. })));

    // Passive target: put into the right neighbour at an offset of my own, flush, get it back.
    w.lock_all().unwrap();
    assert_eq!(w.epoch(), Epoch::LockAll);
    let mine = pattern(me, 100, 0);
    w.put(right, SLOT * me + 3, mine.clone()).unwrap();
    w.flush(right).unwrap();
    let got = w.get(right, SLOT * me + 3, 100).unwrap();
    assert_eq!(w.take_get(got), None, "a get is not complete before a flush");
    w.flush(right).unwrap();
    assert_eq!(w.take_get(got).expect("complete after flush"), mine, "rank {me}: get after put round-trips");
    let too_far = w.size_of(right) - 4;
    assert!(matches!(w.put(right, too_far, vec![0; 8]), Err(WindowError::OutOfRange { .. })));
    assert!(matches!(w.get(n, 0, 1), Err(WindowError::OutOfRange { .. })));
    w.unlock_all().unwrap();
    mpi.barrier();
    let mut local = vec![0u8; 100];
    w.read_local(SLOT * left + 3, &mut local).unwrap();
    assert_eq!(local, pattern(left, 100, 0), "rank {me}: the left neighbour's put landed at its offset");

    // Fence (active target): put, then read it after the closing fence; write_local is
    // visible to a remote get after a fence.
    w.write_local(bytes - 8, &(me as u64).to_le_bytes()).unwrap();
    w.fence().unwrap();
    assert_eq!(w.epoch(), Epoch::Fence);
    let second = pattern(me, 40, 99);
    w.put(right, 600 + 40 * me, second.clone()).unwrap();
    let tail = w.get(right, 1024 + right * 8 - 8, 8).unwrap();
    w.fence().unwrap();
    let tail = w.take_get(tail).expect("complete after fence");
    assert_eq!(u64::from_le_bytes(tail.try_into().unwrap()), right as u64, "rank {me}: write_local seen remotely");
    let mut local = vec![0u8; 40];
    w.read_local(600 + 40 * left, &mut local).unwrap();
    assert_eq!(local, pattern(left, 40, 99), "rank {me}: fence-mode put landed");
    assert!(matches!(w.read_local(bytes, &mut [0u8; 1]), Err(WindowError::OutOfRange { .. })));

    // Switching from fence to passive mode closes the fence sequence.
    w.lock_all().unwrap();
    w.unlock_all().unwrap();
    drop(w);
    mpi.barrier();
}
