//! `experiment bench fabric`: OSU-style ping-pong latency and streaming bandwidth, 8 B
//! to 4 MiB, four ways in one 2-rank job: raw libfabric tagged messages on an RDM
//! endpoint (no engine), the engine on the libfabric driver, the engine on the mpi
//! driver, and raw MPI (rsmpi), with the ratios of each engine to its own raw transport
//! and of the two engines to each other. The engine columns run the lean plans of
//! `experiment bench mpi` ([`crate::bench_mpi`]: kernels that only hand chunks on, the
//! eager strategy, inline progress), so they show engine, strategy and driver alone;
//! below the table, the smallest size's hop on each engine is taken apart from its own
//! trace, as `bench mpi` does.
//!
//! It runs under `mpirun -n 2` (launching itself, like `bench mpi`): MPI carries the raw
//! MPI figures and exchanges the raw endpoint's addresses; the libfabric driver's ranks
//! are the same processes, started by mpirun (`launcher = mpirun`), bootstrapping
//! through a fresh directory per run.

use anyhow::{Result, bail};

/// Runs the benchmark (launching itself under MPI first if needed).
/// `sizes`, when not empty, replaces the series 8, 64, 512, ... up to `max_size`.
#[cfg(all(feature = "mpi", feature = "fabric"))]
pub fn run(max_size: usize, sizes: &[usize], iterations: u32, window: u32, provider: &str) -> Result<()> {
    use dagwire_runtime::drivers::mpi::Mpi;
    if !Mpi::launched() {
        return crate::bench_mpi::relaunch_self(2);
    }
    imp::run(max_size, sizes, iterations, window, provider)
}

/// Without both drivers there is nothing to compare.
#[cfg(not(all(feature = "mpi", feature = "fabric")))]
pub fn run(_max_size: usize, _sizes: &[usize], _iterations: u32, _window: u32, _provider: &str) -> Result<()> {
    bail!("this experiment binary was built without the `mpi` or the `fabric` feature; rebuild it with both")
}

#[cfg(all(feature = "mpi", feature = "fabric"))]
mod imp {
    use super::bail;
    use crate::bench_mpi::imp::{
        Hops, Lean, LeanPlan, eager, lean_bandwidth, lean_figure, lean_pingpong, raw_bandwidth, raw_pingpong, sizes,
    };
    use crate::bench_mpi::three_digits;
    use anyhow::{Result, ensure};
    use dagwire_runtime::drivers::fabric::raw::{Buffer, Completion, Endpoint};
    use dagwire_runtime::drivers::fabric::{self, FabricConfig, FabricJob, JOB_DIR_ENV};
    use dagwire_runtime::drivers::mpi::rsmpi::collective::CommunicatorCollectives;
    use dagwire_runtime::drivers::mpi::{self, Mpi, MpiConfig};
    use dagwire_runtime::{Payload, Progress};
    use dagwire_workloads::micro::effective_iterations;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    /// The columns of the table, in order.
    pub const COLUMNS: [&str; 15] = [
        "bytes", "raw fab", "eng fab", "ratio", "eng mpi", "raw mpi", "ratio", "fab/mpi", "raw fab", "eng fab",
        "ratio", "eng mpi", "raw mpi", "ratio", "fab/mpi",
    ];

    pub fn run(max_size: usize, sizes_given: &[usize], iterations: u32, window: u32, provider: &str) -> Result<()> {
        let mpi = Mpi::init()?;
        ensure!(mpi.size() == 2, "bench fabric needs exactly 2 ranks, the job has {}", mpi.size());
        let me = mpi.rank();
        let root = me == 0;
        let dir = PathBuf::from(std::env::var(JOB_DIR_ENV).map_err(|_| anyhow::anyhow!("{JOB_DIR_ENV} is not set"))?);
        let job = FabricJob::new(me, 2, dir);
        let mut bench = Bench { mpi: &mpi, provider, job, raw: RawFabric::open(&mpi, provider)? };
        if root {
            println!(
                "libfabric ({}) against MPI: ping-pong latency (one way, us) and streaming bandwidth (MB/s, window \
                 {window}), 2 ranks",
                bench.raw.ep.provider()
            );
            println!(
                "raw fab = fi_tsend/fi_trecv, no engine (latency: each side sends back the bytes it received, as the engine and raw mpi do); eng fab / eng mpi = the engine on the libfabric / mpi driver \
                 (lean kernels, eager, inline progress); raw mpi = rsmpi; ratio = engine / its raw transport; fab/mpi \
                 = engine on libfabric / engine on mpi"
            );
            let c = COLUMNS;
            println!(
                "{:>9} | {:>8} {:>8} {:>6} {:>8} {:>8} {:>6} {:>7} | {:>8} {:>8} {:>6} {:>8} {:>8} {:>6} {:>7}",
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], c[14]
            );
        }
        let mut first_hops = None;
        let sizes = if sizes_given.is_empty() { sizes(max_size) } else { sizes_given.to_vec() };
        for size in sizes {
            let (measured, warmup) = effective_iterations(size as u64, iterations, iterations / 10);
            let raw_fab_lat = bench.raw.pingpong(&mpi, size, measured, warmup)?;
            let (fab_lat, fab_hops) = bench.fabric(lean_pingpong(size, measured, warmup), size, measured, 1)?;
            let (mpi_lat, mpi_hops) = bench.mpi(lean_pingpong(size, measured, warmup), size, measured, 1)?;
            let raw_mpi_lat = raw_pingpong(&mpi, size, measured, warmup);
            let raw_fab_bw = bench.raw.bandwidth(&mpi, size, measured, warmup, window)?;
            let (fab_bw, _) = bench.fabric(lean_bandwidth(size, measured, warmup, window), size, measured, window)?;
            let (mpi_bw, _) = bench.mpi(lean_bandwidth(size, measured, warmup, window), size, measured, window)?;
            let raw_mpi_bw = raw_bandwidth(&mpi, size, measured, warmup, window);
            if first_hops.is_none() {
                first_hops = fab_hops.zip(mpi_hops).map(|h| (size, h));
            }
            if root {
                println!(
                    "{size:>9} | {raw_fab_lat:>8.2} {fab_lat:>8.2} {:>5}x {mpi_lat:>8.2} {raw_mpi_lat:>8.2} {:>5}x \
                     {:>6}x | {:>8} {:>8} {:>5}x {:>8} {:>8} {:>5}x {:>6}x",
                    three_digits(fab_lat / raw_fab_lat),
                    three_digits(mpi_lat / raw_mpi_lat),
                    three_digits(fab_lat / mpi_lat),
                    three_digits(raw_fab_bw),
                    three_digits(fab_bw),
                    three_digits(fab_bw / raw_fab_bw),
                    three_digits(mpi_bw),
                    three_digits(raw_mpi_bw),
                    three_digits(mpi_bw / raw_mpi_bw),
                    three_digits(fab_bw / mpi_bw),
                );
            }
        }
        if let Some((size, (fab, mpi_hop))) = first_hops {
            for (name, h) in [("libfabric", fab), ("mpi", mpi_hop)] {
                println!(
                    "a lean {size}-byte hop on {name}, median ns: kernel end (message sent) -> received {}, received \
                     -> next kernel starts {}, kernel {}; one way {:.0}",
                    h.wire,
                    h.dispatch,
                    h.kernel,
                    h.total()
                );
            }
        }
        Ok(())
    }

    /// What the engine runs share.
    struct Bench<'a> {
        mpi: &'a Mpi,
        provider: &'a str,
        /// The job: each libfabric run bootstraps in a fresh directory inside its own.
        job: FabricJob,
        raw: RawFabric,
    }

    impl Bench<'_> {
        /// A lean plan through the engine on the libfabric driver.
        fn fabric(&mut self, plan: LeanPlan, size: usize, measured: u32, window: u32) -> Result<(f64, Option<Hops>)> {
            let cfg = FabricConfig {
                provider: self.provider.to_string(),
                workers: 1,
                progress: Progress::Inline,
                timeout: Duration::from_secs(60),
                fault: None,
            };
            let out = match fabric::run(&self.job, &plan.dag, &Lean::new(), &eager, &cfg) {
                Ok(out) => out,
                Err(e) => {
                    eprintln!("rank {}: {e}", self.mpi.rank());
                    self.mpi.abort(1)
                }
            };
            // Both ranks start the next measurement together.
            self.mpi.barrier();
            lean_figure(&plan, out, size, measured, window)
        }

        /// A lean plan through the engine on the mpi driver.
        fn mpi(&mut self, plan: LeanPlan, size: usize, measured: u32, window: u32) -> Result<(f64, Option<Hops>)> {
            let cfg = MpiConfig { progress: Progress::Inline, ..MpiConfig::default() };
            let out = match mpi::run(self.mpi, &plan.dag, &Lean::new(), &eager, &cfg) {
                Ok(out) => out,
                Err(e) => {
                    eprintln!("rank {}: {e}", self.mpi.rank());
                    self.mpi.abort(1)
                }
            };
            lean_figure(&plan, out, size, measured, window)
        }
    }

    /// Tag of the raw benchmark's messages, and of its acknowledgements.
    const TAG: u64 = 9 << 56;
    const ACK: u64 = 10 << 56;

    /// A raw RDM endpoint connected to the other rank (addresses exchanged over MPI).
    struct RawFabric {
        ep: Endpoint,
        peer: usize,
        done: Vec<Completion>,
    }

    impl RawFabric {
        fn open(mpi: &Mpi, provider: &str) -> Result<RawFabric> {
            let mut ep = Endpoint::open(provider)?;
            let name = ep.name()?;
            ensure!(name.len() < 255, "an endpoint name of {} bytes", name.len());
            let mut mine = [0u8; 256];
            mine[0] = name.len() as u8;
            mine[1..=name.len()].copy_from_slice(&name);
            let mut all = [0u8; 512];
            mpi.world().all_gather_into(&mine[..], &mut all[..]);
            let names: Vec<Vec<u8>> = all.chunks(256).map(|n| n[1..=n[0] as usize].to_vec()).collect();
            ep.insert_peers(&names)?;
            Ok(RawFabric { ep, peer: 1 - mpi.rank(), done: Vec::new() })
        }

        /// Polls until the operation posted as `token` completed; a receive's buffer comes back.
        fn wait(&mut self, token: u64) -> Result<Option<Payload>> {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(i) = self.done.iter().position(|c| c.token() == token) {
                    return Ok(match self.done.swap_remove(i) {
                        Completion::Received { buf: Buffer::Payload(p), .. } => Some(p),
                        _ => None,
                    });
                }
                if Instant::now() > deadline {
                    bail!("raw libfabric: operation {token} did not complete within 60 s");
                }
                self.ep.poll(&mut self.done)?;
            }
        }

        /// One-way latency of a ping-pong of `size` bytes, us. Every receive is posted
        /// before the message it takes can be sent. Each side sends back the bytes it
        /// just received, as the engine's lean hop and the raw MPI ping-pong do: a send
        /// buffer nobody writes stays in cache (or on the kernel's zero page), which made
        /// this baseline about twice as fast as either from 32 KiB up (256 KiB: 17 against
        /// 37 us one way).
        fn pingpong(&mut self, mpi: &Mpi, size: usize, measured: u32, warmup: u32) -> Result<f64> {
            let mut out = Payload::from_bytes(&vec![1u8; size]);
            let mut spare = Payload::zeroed(size);
            let rounds = warmup + measured;
            let pong = mpi.rank() == 1;
            if pong {
                self.ep.recv(TAG, 0, Buffer::Payload(std::mem::take(&mut spare)), 1)?;
            }
            mpi.barrier();
            let mut start = Instant::now();
            for i in 0..rounds {
                if i == warmup {
                    start = Instant::now();
                }
                if pong {
                    let got = self.wait(1)?.unwrap_or_default();
                    if i + 1 < rounds {
                        self.ep.recv(TAG, 0, Buffer::Payload(std::mem::take(&mut out)), 1)?;
                    }
                    self.ep.send(self.peer, TAG, Buffer::Payload(got.clone()), 2)?;
                    self.wait(2)?;
                    out = got;
                } else {
                    self.ep.recv(TAG, 0, Buffer::Payload(std::mem::take(&mut spare)), 1)?;
                    self.ep.send(self.peer, TAG, Buffer::Payload(out.clone()), 2)?;
                    self.wait(2)?;
                    spare = std::mem::replace(&mut out, self.wait(1)?.unwrap_or_default());
                }
            }
            Ok(start.elapsed().as_secs_f64() * 1e6 / (2.0 * measured as f64))
        }

        /// Streaming bandwidth as osu_bw: a window of sends, then an acknowledgement, MB/s.
        fn bandwidth(&mut self, mpi: &Mpi, size: usize, measured: u32, warmup: u32, window: u32) -> Result<f64> {
            let data = Payload::zeroed(size);
            let rounds = warmup + measured;
            let sink = mpi.rank() == 1;
            let mut bufs: Vec<Payload> = Vec::new();
            if sink {
                for k in 0..window as u64 {
                    self.ep.recv(TAG, 0, Buffer::Payload(Payload::zeroed(size)), 10 + k)?;
                }
            }
            mpi.barrier();
            let mut start = Instant::now();
            for i in 0..rounds {
                if i == warmup {
                    start = Instant::now();
                }
                if sink {
                    for k in 0..window as u64 {
                        bufs.push(self.wait(10 + k)?.unwrap_or_default());
                    }
                    if i + 1 < rounds {
                        for (k, b) in bufs.drain(..).enumerate() {
                            self.ep.recv(TAG, 0, Buffer::Payload(b), 10 + k as u64)?;
                        }
                    }
                    self.ep.send(self.peer, ACK, Buffer::Bytes(vec![0; 4]), 3)?;
                    self.wait(3)?;
                } else {
                    self.ep.recv(ACK, 0, Buffer::Bytes(vec![0; 4]), 4)?;
                    for k in 0..window as u64 {
                        self.ep.send(self.peer, TAG, Buffer::Payload(data.clone()), 10 + k)?;
                    }
                    for k in 0..window as u64 {
                        self.wait(10 + k)?;
                    }
                    self.wait(4)?;
                }
            }
            Ok((size as f64 * window as f64 * measured as f64) / start.elapsed().as_secs_f64() / 1e6)
        }
    }
}

#[cfg(all(feature = "mpi", feature = "fabric"))]
pub use imp::COLUMNS;
