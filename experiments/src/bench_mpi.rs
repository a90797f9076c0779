//! `experiment bench mpi`: OSU-style ping-pong latency and streaming bandwidth through
//! the engine on the `mpi` driver (the `micro` workload, eager strategy), next to a raw
//! rsmpi ping-pong and window of sends in the same job, with their ratio.
//!
//! Started outside an MPI job it launches itself with `mpirun -n 2` (the launcher and
//! its arguments from `DAGWIRE_MPI_LAUNCHER` and `DAGWIRE_MPI_LAUNCHER_ARGS`).

use anyhow::{Result, bail};

/// Runs the benchmark (launching itself under MPI first if needed).
#[cfg(feature = "mpi")]
pub fn run(max_size: usize, iterations: u32, window: u32) -> Result<()> {
    use dagwire_runtime::mpi::Mpi;
    if !Mpi::launched() {
        return relaunch();
    }
    imp::run(max_size, iterations, window)
}

/// Without the `mpi` feature there is no MPI to measure.
#[cfg(not(feature = "mpi"))]
pub fn run(_max_size: usize, _iterations: u32, _window: u32) -> Result<()> {
    bail!("this experiment binary was built without the `mpi` feature; rebuild it with MPI installed")
}

/// Runs this same command under `LAUNCHER -n 2`.
#[cfg(feature = "mpi")]
fn relaunch() -> Result<()> {
    use crate::launcher::{LAUNCHER_ARGS_ENV, LAUNCHER_ENV};
    let launcher = std::env::var(LAUNCHER_ENV).unwrap_or_else(|_| "mpirun".into());
    let extra = std::env::var(LAUNCHER_ARGS_ENV).unwrap_or_default();
    let status = std::process::Command::new(&launcher)
        .args(["-n", "2"])
        .args(extra.split_whitespace())
        .arg(std::env::current_exe()?)
        .args(std::env::args().skip(1))
        .status()
        .map_err(|e| anyhow::anyhow!("cannot start `{launcher}` ({e}); set ${LAUNCHER_ENV} or install an MPI"))?;
    if !status.success() {
        bail!("the benchmark job failed: {launcher} {status}");
    }
    Ok(())
}

#[cfg(feature = "mpi")]
mod imp {
    use anyhow::{Result, bail, ensure};
    use dagwire_runtime::mpi::rsmpi as mpi_api;
    use dagwire_runtime::mpi::{self, Mpi, MpiConfig};
    use dagwire_runtime::{ParamValue, Progress, Rank, Strategy};
    use dagwire_strategies::eager::Eager;
    use dagwire_workloads::micro::effective_iterations;
    use mpi_api::point_to_point::{Destination, Source};
    use mpi_api::topology::Communicator;
    use std::time::Instant;

    fn eager(_: Rank) -> Box<dyn Strategy> {
        Box::new(Eager)
    }

    pub fn run(max_size: usize, iterations: u32, window: u32) -> Result<()> {
        let mpi = Mpi::init()?;
        ensure!(mpi.size() == 2, "bench mpi needs exactly 2 ranks, the job has {}", mpi.size());
        let root = mpi.rank() == 0;
        let sizes: Vec<usize> =
            std::iter::successors(Some(8usize), |s| Some(s * 8)).take_while(|&s| s <= max_size).collect();
        let mut sizes = sizes;
        if sizes.last() != Some(&max_size) {
            sizes.push(max_size);
        }
        if root {
            println!("MPI ping-pong latency (one way, us) and streaming bandwidth (MB/s), 2 ranks");
            println!("engine = micro workload, eager strategy, mpi driver, inline progress; raw = rsmpi send/receive");
            println!(
                "{:>9} {:>10} {:>10} {:>7} {:>12} {:>12} {:>7}",
                "bytes", "raw lat", "engine lat", "ratio", "raw bw", "engine bw", "ratio"
            );
        }
        for &size in &sizes {
            let (measured, warmup) = effective_iterations(size as u64, iterations, iterations / 10);
            let raw_lat = raw_pingpong(&mpi, size, measured, warmup);
            let engine_lat = engine_figure(&mpi, "pingpong", size, iterations, 1)?;
            let raw_bw = raw_bandwidth(&mpi, size, measured, warmup, window);
            let engine_bw = engine_figure(&mpi, "bandwidth", size, iterations, window)?;
            if root {
                println!(
                    "{size:>9} {raw_lat:>10.2} {engine_lat:>10.2} {:>6.2}x {raw_bw:>12.0} {engine_bw:>12.0} {:>6.2}x",
                    engine_lat / raw_lat,
                    engine_bw / raw_bw
                );
            }
        }
        Ok(())
    }

    /// One-way latency of a blocking rsmpi ping-pong, us.
    fn raw_pingpong(mpi: &Mpi, size: usize, measured: u32, warmup: u32) -> f64 {
        let world = mpi.world();
        let (me, peer) = (world.rank(), world.process_at_rank(1 - world.rank()));
        let mut buf = vec![1u8; size];
        mpi.barrier();
        let mut start = Instant::now();
        for i in 0..warmup + measured {
            if i == warmup {
                start = Instant::now();
            }
            if me == 0 {
                peer.send(&buf[..]);
                peer.receive_into(&mut buf[..]);
            } else {
                peer.receive_into(&mut buf[..]);
                peer.send(&buf[..]);
            }
        }
        start.elapsed().as_secs_f64() * 1e6 / (2.0 * measured as f64)
    }

    /// Streaming bandwidth as osu_bw: a window of nonblocking sends, then an ack, MB/s.
    fn raw_bandwidth(mpi: &Mpi, size: usize, measured: u32, warmup: u32, window: u32) -> f64 {
        let world = mpi.world();
        let (me, peer) = (world.rank(), world.process_at_rank(1 - world.rank()));
        let send = vec![1u8; size];
        let mut recv: Vec<Vec<u8>> = (0..window).map(|_| vec![0u8; size]).collect();
        let mut ack = [0u8; 4];
        mpi.barrier();
        let mut start = Instant::now();
        for i in 0..warmup + measured {
            if i == warmup {
                start = Instant::now();
            }
            if me == 0 {
                mpi_api::request::multiple_scope(window as usize, |scope, coll| {
                    for _ in 0..window {
                        coll.add(peer.immediate_send(scope, &send[..]));
                    }
                    let mut out = Vec::new();
                    coll.wait_all(&mut out);
                });
                peer.receive_into(&mut ack[..]);
            } else {
                mpi_api::request::multiple_scope(window as usize, |scope, coll| {
                    for r in recv.iter_mut() {
                        coll.add(peer.immediate_receive_into(scope, &mut r[..]));
                    }
                    let mut out = Vec::new();
                    coll.wait_all(&mut out);
                });
                peer.send(&ack[..]);
            }
        }
        (size as f64 * window as f64 * measured as f64) / start.elapsed().as_secs_f64() / 1e6
    }

    /// The micro workload's figure for `pattern` through the engine on the mpi driver.
    fn engine_figure(mpi: &Mpi, pattern: &str, size: usize, iterations: u32, window: u32) -> Result<f64> {
        let info = dagwire_workloads::find("micro")?;
        let given = [
            ("pattern", ParamValue::Str(pattern.into())),
            ("size", ParamValue::Int(size as i64)),
            ("iterations", ParamValue::Int(iterations as i64)),
            ("warmup", ParamValue::Int((iterations / 10) as i64)),
            ("window", ParamValue::Int(window as i64)),
        ];
        let workload = info.build(&given, 2, 1)?;
        let cfg = MpiConfig { progress: Progress::Inline, ..MpiConfig::default() };
        let out = match mpi::run(mpi, workload.dag(), workload.kernels(), &eager, &cfg) {
            Ok(out) => out,
            Err(e) => {
                eprintln!("rank {}: {e}", mpi.rank());
                mpi.abort(1)
            }
        };
        // Rank 0 holds the trace; it tells rank 1 nothing, so rank 1 returns 0.
        let Some(out) = out else { return Ok(0.0) };
        let check = workload.verify(&out.results);
        if !check.passed {
            bail!("the {pattern} run of {size} bytes did not verify: {}", check.detail);
        }
        let figures = workload.figures(&out.trace);
        figures.first().map(|(_, v)| *v).ok_or_else(|| anyhow::anyhow!("the {pattern} run produced no figure"))
    }
}
