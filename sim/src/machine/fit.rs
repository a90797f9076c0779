//! Fitting a machine model to measurements: piecewise-linear message costs with their
//! segment boundaries found from the data, the LogGP parameters that follow from a
//! ping-pong curve and a streaming curve, and kernel rates from task timings. Pure
//! arithmetic on samples: the measuring is done by whoever calls it (`experiment
//! calibrate` measures through the engine's drivers).
//!
//! # What the curves determine
//!
//! A ping-pong gives the one-way time of an isolated message, which the simulator
//! models as `T(k) = o_s + L + o_r + (k-1)·G`; a stream of back-to-back messages gives
//! the interval between deliveries, `I(k) = max(g, o_s, o_r, k·G)`. So the data fix
//! `o_s + L + o_r`, `G` and `max(g, o)`, and not how the fixed cost splits between the
//! CPUs and the wire. [`fit_loggp`] splits it by the convention `o_s = o_r = o =
//! min(I_small, (o_s + L + o_r) / 2)`, `g = I_small`, `L` the rest, where `I_small` is
//! the median streaming interval of the segment's gap-bound sizes (those where `k·G` is
//! under half the interval): overheads consistent with the streaming rate, which
//! reproduces both curves. A segment whose streaming is bandwidth-bound at every size
//! shows no `g`; it keeps the segment below's `o` and `g`.
//!
//! # Control messages
//!
//! The eager ping-pong's hop is two task overheads plus `T(k)`; the engine's handling of
//! the one data message is split between those (the trace's "message alone" ends when
//! the engine takes it). A rendezvous ping-pong with every message through the handshake
//! (`eager_limit = 0`) pays two more messages a hop, the ready-to-send and the
//! clear-to-send, each a header of `HEADER_BYTES`, and their handling by engine and
//! strategy, which no task absorbs. So a rendezvous hop is modelled as
//! `2·overhead + T(k) + 2·(T(header) + c)`, and [`fit_control`] gives `c`, the
//! machine's `compute.control_message_ns`: per size, the hop's excess over the model's
//! eager hop and its two headers, halved; the median over sizes.
//!
//! In a ping-pong the two sides alternate, so the measurement fixes the cost per control
//! message, not how it splits between sender and receiver. The simulator charges it all
//! on the receiver's CPU after `o_r`, where the handling happens (matching the offer,
//! granting a buffer, queuing the answer); sending a header is what `o_s` already
//! covers.
//!
//! # Collectives
//!
//! A strategy whose messages move in collectives (`batched`) pays, beyond the messages'
//! own costs, a CPU cost per collective call, per message a piece carries (packing and
//! unpacking) and per payload byte (the copies into and out of the collective's
//! buffers). A ping-pong with one message a collective cannot tell the call from the
//! message; a stream with many messages a collective can, and sizes tell the bytes:
//! [`fit_collective`] fits all three to both at once, by least squares over simulations
//! of the measured runs with probe costs (the model's own collectives, so every other
//! cost they pay is the fitted machine's).

use super::LogGpSegment;
use statrs::statistics::{Data, Median};
use std::fmt;

/// One measurement: a message size and a time (ns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Message size, bytes.
    pub bytes: u64,
    /// Measured time, ns.
    pub ns: f64,
}

/// One straight piece of a piecewise fit, `ns = intercept + slope * bytes` for sizes
/// from `from_bytes` on.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    /// The first measured size of the piece (its boundary).
    pub from_bytes: u64,
    /// The last measured size of the piece.
    pub to_bytes: u64,
    /// Time at 0 bytes, ns.
    pub intercept_ns: f64,
    /// ns per byte.
    pub slope_ns_per_byte: f64,
    /// Root-mean-square relative residual of the piece's samples (0.01 = 1%).
    pub rms_rel_residual: f64,
    /// Samples the piece was fitted to.
    pub samples: usize,
}

impl Piece {
    /// The fitted time at `bytes`.
    pub fn at(&self, bytes: u64) -> f64 {
        self.intercept_ns + self.slope_ns_per_byte * bytes as f64
    }
}

/// Why a fit could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError(pub String);

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FitError {}

/// Relative noise floor of the model-selection criterion: residuals below 0.1% do not
/// justify another segment.
const NOISE_FLOOR: f64 = 1e-3;

/// Fits `samples` with at most `max_pieces` straight pieces, each over at least
/// `min_sizes` distinct sizes, minimising relative squared error (timings span orders
/// of magnitude, so every size counts alike). Boundaries fall between measured sizes
/// and are chosen from the data; the number of pieces by the Bayesian information
/// criterion, so a piece is added only when it explains the data markedly better.
///
/// ```
/// use dagwire_sim::machine::fit::{Sample, fit_piecewise};
/// let s: Vec<Sample> = [8u64, 64, 512, 4096, 32768, 262144, 2097152]
///     .iter()
///     .map(|&k| Sample { bytes: k, ns: if k < 32768 { 500.0 + 0.2 * k as f64 } else { 4000.0 + 0.1 * k as f64 } })
///     .collect();
/// let pieces = fit_piecewise(&s, 3, 3).unwrap();
/// assert_eq!(pieces.len(), 2);
/// assert_eq!(pieces[1].from_bytes, 32768);
/// ```
pub fn fit_piecewise(samples: &[Sample], max_pieces: usize, min_sizes: usize) -> Result<Vec<Piece>, FitError> {
    let mut sorted: Vec<Sample> = samples.iter().copied().filter(|s| s.ns.is_finite() && s.ns > 0.0).collect();
    if sorted.len() < samples.len() {
        return Err(FitError("every sample needs a finite positive time".into()));
    }
    sorted.sort_by(|a, b| a.bytes.cmp(&b.bytes).then(a.ns.total_cmp(&b.ns)));
    // Index of the first sample of each distinct size.
    let starts: Vec<usize> = (0..sorted.len()).filter(|&i| i == 0 || sorted[i].bytes != sorted[i - 1].bytes).collect();
    let min_sizes = min_sizes.max(2);
    if starts.len() < min_sizes {
        return Err(FitError(format!(
            "need at least {min_sizes} distinct message sizes to fit a line, got {}",
            starts.len()
        )));
    }
    let n = sorted.len() as f64;
    let mut best: Option<(f64, Vec<Piece>)> = None;
    for pieces in 1..=max_pieces.max(1) {
        let Some((rss, fit)) = best_split(&sorted, &starts, pieces, min_sizes) else { break };
        let params = (3 * pieces - 1) as f64;
        let bic = n * (rss / n).max(NOISE_FLOOR * NOISE_FLOOR).ln() + params * n.ln();
        if best.as_ref().is_none_or(|(b, _)| bic < *b) {
            best = Some((bic, fit));
        }
    }
    Ok(best.expect("one piece always fits").1)
}

/// The best split of `sorted` into `pieces` pieces (boundaries at distinct-size starts),
/// by exhaustive search over boundaries (a few dozen sizes: cheap).
fn best_split(sorted: &[Sample], starts: &[usize], pieces: usize, min_sizes: usize) -> Option<(f64, Vec<Piece>)> {
    let sizes = starts.len();
    if sizes < pieces * min_sizes {
        return None;
    }
    let mut best: Option<(f64, Vec<Piece>)> = None;
    let mut cuts = Vec::with_capacity(pieces + 1);
    search(sorted, starts, pieces, min_sizes, 0, &mut cuts, &mut best);
    best
}

fn search(
    sorted: &[Sample],
    starts: &[usize],
    pieces: usize,
    min_sizes: usize,
    from: usize,
    cuts: &mut Vec<usize>,
    best: &mut Option<(f64, Vec<Piece>)>,
) {
    cuts.push(from);
    if cuts.len() == pieces {
        if starts.len() - from >= min_sizes {
            let mut bounds = cuts.clone();
            bounds.push(starts.len());
            let mut rss = 0.0;
            let mut fit = Vec::with_capacity(pieces);
            for w in bounds.windows(2) {
                let lo = starts[w[0]];
                let hi = if w[1] == starts.len() { sorted.len() } else { starts[w[1]] };
                let (piece, r) = fit_line(&sorted[lo..hi]);
                rss += r;
                fit.push(piece);
            }
            if best.as_ref().is_none_or(|(b, _)| rss < *b) {
                *best = Some((rss, fit));
            }
        }
    } else {
        for next in from + min_sizes..=starts.len().saturating_sub(min_sizes * (pieces - cuts.len())) {
            search(sorted, starts, pieces, min_sizes, next, cuts, best);
        }
    }
    cuts.pop();
}

/// Weighted least squares with weights `1/y²` (relative error): the line and its sum
/// of squared relative residuals.
fn fit_line(s: &[Sample]) -> (Piece, f64) {
    let (mut sw, mut swx, mut swy, mut swxx, mut swxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in s {
        let (x, y) = (p.bytes as f64, p.ns);
        let w = 1.0 / (y * y);
        sw += w;
        swx += w * x;
        swy += w * y;
        swxx += w * x * x;
        swxy += w * x * y;
    }
    let det = sw * swxx - swx * swx;
    let (intercept, slope) = if det.abs() <= f64::EPSILON * sw * swxx {
        (swy / sw, 0.0)
    } else {
        ((swxx * swy - swx * swxy) / det, (sw * swxy - swx * swy) / det)
    };
    let rss: f64 = s.iter().map(|p| ((p.ns - intercept - slope * p.bytes as f64) / p.ns).powi(2)).sum();
    let piece = Piece {
        from_bytes: s[0].bytes,
        to_bytes: s[s.len() - 1].bytes,
        intercept_ns: intercept,
        slope_ns_per_byte: slope,
        rms_rel_residual: (rss / s.len() as f64).sqrt(),
        samples: s.len(),
    };
    (piece, rss)
}

/// A fitted LogGP segment and where its numbers came from.
#[derive(Clone, Debug, PartialEq)]
pub struct FittedSegment {
    /// The parameters, ready for a machine file.
    pub segment: LogGpSegment,
    /// The ping-pong piece (`o_s + L + o_r` and `G`).
    pub latency: Piece,
    /// The streaming interval that set `g` and `o` (ns, the median of the segment's
    /// gap-bound samples) and how many samples it is the median of; `None` when no
    /// streaming sample fell in the segment.
    pub stream_gap: Option<(f64, u64)>,
}

/// LogGP parameters of one path, piecewise in message size.
#[derive(Clone, Debug, PartialEq)]
pub struct LogGpFit {
    /// Segments sorted by size, the first starting at 0 bytes.
    pub segments: Vec<FittedSegment>,
}

impl LogGpFit {
    /// The one-way time the fit predicts for an isolated `bytes` message, ns (the
    /// simulator's `T(k)` without its whole-nanosecond rounding).
    pub fn one_way_ns(&self, bytes: u64) -> f64 {
        let s = &self.segment_of(bytes).segment;
        let o = s.o_per_byte_ns.unwrap_or(0.0);
        s.o_s_ns + s.l_ns + s.o_r_ns + (bytes.max(1) - 1) as f64 * (s.g_per_byte_ns + 2.0 * o)
    }

    /// The delivery interval the fit predicts for back-to-back `bytes` messages, ns.
    pub fn interval_ns(&self, bytes: u64) -> f64 {
        let s = &self.segment_of(bytes).segment;
        let copy = (bytes.max(1) - 1) as f64 * s.o_per_byte_ns.unwrap_or(0.0);
        s.g_ns.max(s.o_s_ns + copy).max(s.o_r_ns + copy).max(bytes.max(1) as f64 * s.g_per_byte_ns)
    }

    /// The same fit with LogGOPS's per-byte CPU overhead `O` (see [`fit_cpu_per_byte`]),
    /// split so that both curves stay reproduced: per segment, with `p` its ping-pong
    /// slope (`G + 2·O` in the model) and `s = cpu.ns_per_byte` the streaming slope
    /// (`max(O, G)`): `O = s, G = p - 2s` when `p >= 2s` (the copy bounds the stream);
    /// `G = s, O = (p - s) / 2` when `s <= p < 2s` (the wire does: one copy, not two, per
    /// message); `O = 0` when `p < s`. The ping-pong line (`o_s + L + o_r + (k-1)·(G +
    /// 2·O)`) stays the fitted one: the slope is split, not added to.
    ///
    /// ```
    /// use dagwire_sim::machine::fit::{CpuPerByteFit, Sample, fit_cpu_per_byte, fit_loggp};
    /// let sizes = [8u64, 512, 32768, 262144];
    /// let pp: Vec<Sample> = sizes.iter().map(|&k| Sample { bytes: k, ns: 1000.0 + 1.0 * (k - 1) as f64 }).collect();
    /// let fit = fit_loggp(&pp, &pp, 1).unwrap();
    /// let cpu: Vec<Sample> = sizes.iter().map(|&k| Sample { bytes: k, ns: 700.0 + 0.3 * k as f64 }).collect();
    /// let with = fit.with_cpu_per_byte(&fit_cpu_per_byte(&cpu, &cpu).unwrap());
    /// let s = &with.segments[0].segment;
    /// assert!((s.o_per_byte_ns.unwrap() - 0.3).abs() < 1e-9 && (s.g_per_byte_ns - 0.4).abs() < 1e-9);
    /// assert!((with.one_way_ns(262144) - fit.one_way_ns(262144)).abs() < 1e-6);
    /// ```
    pub fn with_cpu_per_byte(&self, cpu: &CpuPerByteFit) -> LogGpFit {
        let mut out = self.clone();
        for s in &mut out.segments {
            let total = s.segment.g_per_byte_ns + 2.0 * s.segment.o_per_byte_ns.unwrap_or(0.0);
            let stream = cpu.ns_per_byte.max(0.0);
            let o = if total >= 2.0 * stream {
                stream.min((total - MIN_G) / 2.0).max(0.0)
            } else if total >= stream {
                (total - stream) / 2.0
            } else {
                0.0
            };
            s.segment.o_per_byte_ns = Some(o);
            s.segment.g_per_byte_ns = (total - 2.0 * o).max(MIN_G);
        }
        out
    }

    fn segment_of(&self, bytes: u64) -> &FittedSegment {
        let i = self.segments.partition_point(|s| s.segment.from_bytes <= bytes).saturating_sub(1);
        &self.segments[i]
    }
}

/// Smallest per-byte gap a fit may give (a machine file needs `G > 0`): 1e-6 ns/byte,
/// a petabyte per second.
const MIN_G: f64 = 1e-6;

/// Fits LogGP segments to `pingpong` (one-way times of isolated messages) and `stream`
/// (delivery intervals of back-to-back messages); segments and their boundaries come
/// from the ping-pong curve (see the module doc for how the fixed cost is split).
///
/// ```
/// use dagwire_sim::machine::fit::{Sample, fit_loggp};
/// let sizes = [8u64, 64, 512, 4096, 32768, 262144];
/// let pp: Vec<Sample> = sizes.iter().map(|&k| Sample { bytes: k, ns: 1000.0 + 0.1 * (k - 1) as f64 }).collect();
/// let st: Vec<Sample> = sizes.iter().map(|&k| Sample { bytes: k, ns: (300.0f64).max(0.1 * k as f64) }).collect();
/// let fit = fit_loggp(&pp, &st, 3).unwrap();
/// let s = &fit.segments[0].segment;
/// assert!((s.g_per_byte_ns - 0.1).abs() < 1e-6 && (s.g_ns - 300.0).abs() < 1e-6);
/// assert!((s.o_s_ns + s.l_ns + s.o_r_ns - 1000.0).abs() < 1e-3);
/// ```
pub fn fit_loggp(pingpong: &[Sample], stream: &[Sample], max_segments: usize) -> Result<LogGpFit, FitError> {
    let pieces = fit_piecewise(pingpong, max_segments, 3)?;
    let mut segments = Vec::with_capacity(pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        let from = if i == 0 { 0 } else { piece.from_bytes };
        let until = pieces.get(i + 1).map_or(u64::MAX, |p| p.from_bytes);
        let g_per_byte = piece.slope_ns_per_byte.max(MIN_G);
        // T(k) = a + b k = (a + b) + (k - 1) b: the fixed cost at one byte.
        let fixed = (piece.intercept_ns + piece.slope_ns_per_byte).max(0.0);
        // The gap-bound streaming samples of the segment: those a per-byte cost does
        // not explain (k G well under the interval); their median interval is `g`.
        let gap_bound: Vec<f64> = stream
            .iter()
            .filter(|s| s.bytes >= from && s.bytes < until)
            .filter(|s| s.bytes as f64 * g_per_byte < 0.5 * s.ns)
            .map(|s| s.ns)
            .collect();
        let stream_gap = (!gap_bound.is_empty()).then(|| (median(&gap_bound), gap_bound.len() as u64));
        // Where streaming is bandwidth-bound at every measured size, `g` and `o` do not
        // show: the segment below's are carried over (0 for the first).
        let below: Option<&FittedSegment> = segments.last();
        let interval = stream_gap.map_or_else(|| below.map_or(0.0, |b| b.segment.g_ns), |(g, _)| g);
        let o = stream_gap.map_or_else(|| below.map_or(0.0, |b| b.segment.o_s_ns), |(g, _)| g).min(fixed / 2.0);
        segments.push(FittedSegment {
            segment: LogGpSegment {
                from_bytes: from,
                o_s_ns: o,
                o_r_ns: o,
                g_ns: interval,
                l_ns: (fixed - 2.0 * o).max(0.0),
                g_per_byte_ns: g_per_byte,
                o_per_byte_ns: None,
            },
            latency: piece.clone(),
            stream_gap,
        });
    }
    Ok(LogGpFit { segments })
}

/// The fitted cost of handling one control message, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlFit {
    /// Ns per control message (at least 0): the median of the per-size estimates.
    pub ns: f64,
    /// Per measured size: bytes, the rendezvous hop (ns) and its estimate of the cost.
    pub estimates: Vec<(u64, f64, f64)>,
    /// Root-mean-square relative residual of the modelled rendezvous hops
    /// (`2·overhead + T(k) + 2·(T(header) + ns)`) against the measured ones.
    pub rms_rel_residual: f64,
}

/// Fits the control-message cost to `rendezvous` hops (one-way, ns, of a ping-pong
/// whose every message goes through the handshake), given the eager `fit` and the
/// per-task `overhead_ns` (two tasks a hop), and the bytes a control message takes on
/// the wire (`header_bytes`); see the module doc for the model. A measured hop below
/// what the model charges without the cost gives a negative estimate; the cost is
/// clamped at 0.
///
/// ```
/// use dagwire_sim::machine::fit::{Sample, fit_control, fit_loggp};
/// let sizes = [8u64, 64, 512, 4096];
/// let pp: Vec<Sample> = sizes.iter().map(|&k| Sample { bytes: k, ns: 1000.0 + 0.5 * (k - 1) as f64 }).collect();
/// let fit = fit_loggp(&pp, &pp, 1).unwrap();
/// // Task overhead 300 ns, headers of 32 B, 700 ns per control message.
/// let hop = |k: u64| 600.0 + fit.one_way_ns(k) + 2.0 * (fit.one_way_ns(32) + 700.0);
/// let rv: Vec<Sample> = [8u64, 64, 512].iter().map(|&k| Sample { bytes: k, ns: hop(k) }).collect();
/// let c = fit_control(&rv, &fit, 300.0, 32).unwrap();
/// assert!((c.ns - 700.0).abs() < 1e-6 && c.rms_rel_residual < 1e-9);
/// assert_eq!(c.estimates.len(), 3);
/// ```
pub fn fit_control(
    rendezvous: &[Sample],
    fit: &LogGpFit,
    overhead_ns: f64,
    header_bytes: u64,
) -> Result<ControlFit, FitError> {
    if rendezvous.is_empty() || rendezvous.iter().any(|s| !(s.ns.is_finite() && s.ns > 0.0)) {
        return Err(FitError("the control-message cost needs rendezvous hops with finite positive times".into()));
    }
    let without = |k: u64| 2.0 * overhead_ns + fit.one_way_ns(k) + 2.0 * fit.one_way_ns(header_bytes);
    let estimates: Vec<(u64, f64, f64)> =
        rendezvous.iter().map(|s| (s.bytes, s.ns, (s.ns - without(s.bytes)) / 2.0)).collect();
    let ns = median(&estimates.iter().map(|e| e.2).collect::<Vec<_>>()).max(0.0);
    let rss: f64 = rendezvous.iter().map(|s| ((without(s.bytes) + 2.0 * ns - s.ns) / s.ns).powi(2)).sum();
    Ok(ControlFit { ns, estimates, rms_rel_residual: (rss / rendezvous.len() as f64).sqrt() })
}

/// LogGOPS's per-byte CPU overhead `O`, and the lines it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuPerByteFit {
    /// `O`, ns per byte (at least 0): the mean of the two lines' slopes.
    pub ns_per_byte: f64,
    /// The sending rank's CPU time per message against its size.
    pub send: Piece,
    /// The receiving rank's CPU time per message against its size.
    pub receive: Piece,
}

/// Fits `O` (`o_per_byte_ns`) to the CPU time a rank's thread spends per message it
/// sends (`send`) and per message it receives (`receive`), by size: the time between
/// its kernels that a stream of messages costs it, which is not time on the wire. The
/// simulator charges `o + (k-1)·O` at each end, so `O` is the mean of the two lines'
/// slopes (their sum is what a byte costs both CPUs), clamped at 0; the intercepts (the
/// fixed costs, which the task overhead and `o` already model) are not used.
///
/// ```
/// use dagwire_sim::machine::fit::{Sample, fit_cpu_per_byte};
/// let at = |a: f64, b: f64| [8u64, 4096, 65536].map(|k| Sample { bytes: k, ns: a + b * k as f64 });
/// let o = fit_cpu_per_byte(&at(900.0, 0.2), &at(1200.0, 0.6)).unwrap();
/// assert!((o.ns_per_byte - 0.4).abs() < 1e-9);
/// ```
pub fn fit_cpu_per_byte(send: &[Sample], receive: &[Sample]) -> Result<CpuPerByteFit, FitError> {
    // A rank that spends no time between its tasks (CPU overheads beside its kernels)
    // measures 0: counted as 1 ns, which the relative weighting of the line allows.
    let floor = |s: &[Sample]| -> Vec<Sample> {
        s.iter().map(|p| Sample { ns: if p.ns >= 0.0 { p.ns.max(1.0) } else { p.ns }, ..*p }).collect()
    };
    let line = |s: &[Sample], what: &str| {
        fit_piecewise(&floor(s), 1, 2)
            .map(|mut p| p.remove(0))
            .map_err(|e| FitError(format!("the {what} CPU time per message: {e}")))
    };
    let (send, receive) = (line(send, "sender's")?, line(receive, "receiver's")?);
    let ns_per_byte = ((send.slope_ns_per_byte + receive.slope_ns_per_byte) / 2.0).max(0.0);
    Ok(CpuPerByteFit { ns_per_byte, send, receive })
}

/// The CPU costs the model charges a collective (`compute.collective_call_ns`,
/// `collective_message_ns`, `collective_ns_per_byte`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CollectiveCosts {
    /// Per collective call, on each joining rank, ns.
    pub call_ns: f64,
    /// Per message a piece carries, at each end, ns.
    pub message_ns: f64,
    /// Per payload byte a piece carries, at each end, ns.
    pub ns_per_byte: f64,
}

/// One measurement of a workload whose messages move in collectives: a pattern (what
/// the caller's simulation runs: `pingpong`, `bandwidth`), a message size and a time.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectiveSample {
    /// What was measured, as the caller's simulation knows it.
    pub pattern: &'static str,
    /// Message size, bytes.
    pub bytes: u64,
    /// Measured time, ns.
    pub ns: f64,
}

/// The fitted collective costs, and how well the model then reproduces each measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectiveFit {
    /// The fitted costs (each at least 0).
    pub costs: CollectiveCosts,
    /// Per measurement: it, and the time simulated with the fitted costs.
    pub points: Vec<(CollectiveSample, f64)>,
    /// Root-mean-square relative residual of those simulated times.
    pub rms_rel_residual: f64,
    /// Per measurement, how much its simulated time grows per ns of call cost, per ns of
    /// message cost and per ns/B of byte cost (from the probe simulations).
    pub sensitivity: Vec<[f64; 3]>,
}

/// The probe values [`fit_collective`] simulates each cost at (alone, the others 0).
pub const COLLECTIVE_PROBES: CollectiveCosts =
    CollectiveCosts { call_ns: 10_000.0, message_ns: 10_000.0, ns_per_byte: 1.0 };

/// Fits the three CPU costs of collectives to measurements of workloads whose messages
/// move in collectives (the `batched` strategy's ping-pong, one message a collective,
/// and its streaming, many messages a collective: the two tell the call from the
/// message; their sizes tell the bytes), by least squares over probe simulations.
///
/// `simulate(costs, sample)` is the model's time for the sample's pattern and size on
/// the machine with those collective costs (every other cost the machine's own). Per
/// sample it runs once with all three at 0 and once with each alone at its
/// [`COLLECTIVE_PROBES`] value: the differences are the time's sensitivity to each cost
/// (the model is linear in them while nothing else queues differently). The costs
/// minimise the sum of squared relative residuals `(base + sensitivity . costs -
/// measured) / measured` with every cost at least 0 (the best of the fits on each
/// subset of the costs whose solution is non-negative); a last simulation per sample
/// with the fitted costs gives the residuals reported.
///
/// ```
/// use dagwire_sim::machine::fit::{CollectiveCosts, CollectiveSample, fit_collective};
/// // A toy model: a ping-pong hop pays the call and two message costs; a stream of 16
/// // messages a collective pays a sixteenth of the call per message.
/// let model = |c: &CollectiveCosts, s: &CollectiveSample| {
///     let piece = c.message_ns + c.ns_per_byte * s.bytes as f64;
///     match s.pattern {
///         "pingpong" => 3000.0 + 0.2 * s.bytes as f64 + c.call_ns + 2.0 * piece,
///         _ => 500.0 + 0.1 * s.bytes as f64 + c.call_ns / 16.0 + piece,
///     }
/// };
/// let truth = CollectiveCosts { call_ns: 4000.0, message_ns: 600.0, ns_per_byte: 0.3 };
/// let samples: Vec<CollectiveSample> = ["pingpong", "bandwidth"]
///     .iter()
///     .flat_map(|&p| [8u64, 4096, 65536].map(|k| CollectiveSample { pattern: p, bytes: k, ns: 0.0 }))
///     .map(|s| CollectiveSample { ns: model(&truth, &s), ..s })
///     .collect();
/// let fit = fit_collective(&samples, &mut |c, s| model(c, s)).unwrap();
/// assert!((fit.costs.call_ns - 4000.0).abs() < 1e-6 && (fit.costs.message_ns - 600.0).abs() < 1e-6);
/// assert!((fit.costs.ns_per_byte - 0.3).abs() < 1e-9 && fit.rms_rel_residual < 1e-9);
/// ```
pub fn fit_collective(
    samples: &[CollectiveSample],
    simulate: &mut dyn FnMut(&CollectiveCosts, &CollectiveSample) -> f64,
) -> Result<CollectiveFit, FitError> {
    if samples.is_empty() || samples.iter().any(|s| !(s.ns.is_finite() && s.ns > 0.0)) {
        return Err(FitError("the collective costs need measurements with finite positive times".into()));
    }
    let p = COLLECTIVE_PROBES;
    let probes = [
        CollectiveCosts { call_ns: p.call_ns, ..Default::default() },
        CollectiveCosts { message_ns: p.message_ns, ..Default::default() },
        CollectiveCosts { ns_per_byte: p.ns_per_byte, ..Default::default() },
    ];
    let units = [p.call_ns, p.message_ns, p.ns_per_byte];
    // Per sample, weighted by 1/measured: the row (sensitivities) and the target
    // (measured - base).
    let mut rows = Vec::with_capacity(samples.len());
    let mut sensitivity = Vec::with_capacity(samples.len());
    for s in samples {
        let base = simulate(&CollectiveCosts::default(), s);
        let mut row = [0.0; 3];
        for i in 0..3 {
            row[i] = (simulate(&probes[i], s) - base) / units[i];
        }
        if !(base.is_finite() && row.iter().all(|x| x.is_finite())) {
            return Err(FitError(format!("the {} simulation at {} B gave no finite time", s.pattern, s.bytes)));
        }
        sensitivity.push(row);
        rows.push((row.map(|x| x / s.ns), (s.ns - base) / s.ns));
    }
    let mut best: Option<(f64, [f64; 3])> = None;
    for mask in 1u8..8 {
        let used: Vec<usize> = (0..3).filter(|i| mask & (1 << i) != 0).collect();
        let Some(x) = least_squares(&rows, &used) else { continue };
        if x.iter().any(|&v| v < 0.0) {
            continue;
        }
        let rss: f64 = rows.iter().map(|(a, b)| (a[0] * x[0] + a[1] * x[1] + a[2] * x[2] - b).powi(2)).sum();
        if best.is_none_or(|(r, _)| rss < r) {
            best = Some((rss, x));
        }
    }
    let x = best.map_or([0.0; 3], |(_, x)| x);
    let costs = CollectiveCosts { call_ns: x[0], message_ns: x[1], ns_per_byte: x[2] };
    let points: Vec<(CollectiveSample, f64)> = samples.iter().map(|s| (s.clone(), simulate(&costs, s))).collect();
    let rss: f64 = points.iter().map(|(s, t)| ((t - s.ns) / s.ns).powi(2)).sum();
    Ok(CollectiveFit { costs, rms_rel_residual: (rss / points.len() as f64).sqrt(), points, sensitivity })
}

/// Least squares `rows . x = target` over the columns `used` (the others 0), by the
/// normal equations; `None` when they are singular.
fn least_squares(rows: &[([f64; 3], f64)], used: &[usize]) -> Option<[f64; 3]> {
    let n = used.len();
    // The augmented normal equations, n x (n + 1).
    let mut m = vec![vec![0.0; n + 1]; n];
    for (a, b) in rows {
        for (i, &u) in used.iter().enumerate() {
            for (j, &v) in used.iter().enumerate() {
                m[i][j] += a[u] * a[v];
            }
            m[i][n] += a[u] * b;
        }
    }
    // Gauss-Jordan with partial pivoting.
    let scale = m.iter().flat_map(|r| r[..n].iter()).fold(0.0f64, |s, x| s.max(x.abs()));
    for c in 0..n {
        let pivot = (c..n).max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))?;
        if m[pivot][c].abs() <= 1e-12 * scale {
            return None;
        }
        m.swap(c, pivot);
        let pivot_row = m[c].clone();
        for (r, row) in m.iter_mut().enumerate() {
            if r != c {
                let f = row[c] / pivot_row[c];
                for (x, p) in row.iter_mut().zip(&pivot_row).skip(c) {
                    *x -= f * p;
                }
            }
        }
    }
    let mut x = [0.0; 3];
    for (i, &u) in used.iter().enumerate() {
        x[u] = m[i][n] / m[i][i];
    }
    Some(x)
}

/// A kernel's fitted rate.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelRate {
    /// Kernel name (`gemm`).
    pub name: String,
    /// GFLOP/s per core: total flops over total time less the per-task overhead.
    pub gflops: f64,
    /// Root-mean-square relative residual of `overhead + flops / rate` against each
    /// measured duration.
    pub rms_rel_residual: f64,
    /// Tasks measured.
    pub tasks: usize,
}

/// Fits one rate per kernel name to task timings `(name, flops, duration ns)`, given
/// the per-task overhead the simulator adds to every task. Kernels without flops
/// (hand-on kernels) get no rate.
///
/// ```
/// use dagwire_sim::machine::fit::fit_kernel_rates;
/// let tasks = [("gemm", 2e6, 1100.0 + 1e5), ("gemm", 4e6, 1100.0 + 2e5), ("copy", 0.0, 900.0)];
/// let rates = fit_kernel_rates(tasks.iter().map(|&(n, f, d)| (n, f, d)), 1100.0);
/// assert_eq!(rates.len(), 1);
/// assert!((rates[0].gflops - 20.0).abs() < 1e-9);
/// ```
pub fn fit_kernel_rates<'a>(tasks: impl IntoIterator<Item = (&'a str, f64, f64)>, overhead_ns: f64) -> Vec<KernelRate> {
    let mut by_name: std::collections::BTreeMap<&str, Vec<(f64, f64)>> = Default::default();
    for (name, flops, ns) in tasks {
        if flops > 0.0 && ns.is_finite() {
            by_name.entry(name).or_default().push((flops, ns));
        }
    }
    by_name
        .into_iter()
        .map(|(name, v)| {
            let flops: f64 = v.iter().map(|p| p.0).sum();
            let busy: f64 = v.iter().map(|p| (p.1 - overhead_ns).max(1.0)).sum();
            let per_ns = flops / busy;
            let rss: f64 = v.iter().map(|&(f, ns)| ((overhead_ns + f / per_ns - ns) / ns).powi(2)).sum();
            KernelRate {
                name: name.to_string(),
                gflops: per_ns,
                rms_rel_residual: (rss / v.len() as f64).sqrt(),
                tasks: v.len(),
            }
        })
        .collect()
}

/// A data-writing kernel's cost per byte it writes (see `compute.kernel_ns_per_byte`).
#[derive(Clone, Debug, PartialEq)]
pub struct KernelByteCost {
    /// Kernel name (`gen`).
    pub name: String,
    /// ns per byte written: total (duration - overhead) / total bytes written.
    pub ns_per_byte: f64,
    /// Root-mean-square relative residual of `overhead + bytes x cost` against each
    /// measured duration.
    pub rms_rel_residual: f64,
    /// Tasks measured.
    pub tasks: usize,
}

/// Fits a cost per byte written to the kernels without flops that write data, from
/// task timings `(name, flops, bytes written, duration ns)`: the total time over the
/// total bytes, so the modelled durations add up to the measured ones (a makespan is a
/// sum of durations). Kernels with flops are left to [`fit_kernel_rates`]; a kernel that
/// writes nothing, or costs no more than the overhead, gets no entry.
///
/// ```
/// use dagwire_sim::machine::fit::fit_kernel_byte_costs;
/// let tasks = [("gen", 0.0, 1000, 500.0 + 2000.0), ("gen", 0.0, 3000, 500.0 + 6000.0), ("gemm", 1e6, 8, 9e4)];
/// let costs = fit_kernel_byte_costs(tasks.iter().copied(), 500.0);
/// assert_eq!(costs.len(), 1);
/// assert!((costs[0].ns_per_byte - 2.0).abs() < 1e-12 && costs[0].rms_rel_residual < 1e-12);
/// ```
pub fn fit_kernel_byte_costs<'a>(
    tasks: impl IntoIterator<Item = (&'a str, f64, u64, f64)>,
    overhead_ns: f64,
) -> Vec<KernelByteCost> {
    let mut by_name: std::collections::BTreeMap<&str, Vec<(f64, f64)>> = Default::default();
    for (name, flops, bytes, ns) in tasks {
        if flops == 0.0 && bytes > 0 && ns.is_finite() {
            by_name.entry(name).or_default().push((bytes as f64, ns));
        }
    }
    by_name
        .into_iter()
        .filter_map(|(name, v)| {
            let bytes: f64 = v.iter().map(|p| p.0).sum();
            let busy: f64 = v.iter().map(|p| (p.1 - overhead_ns).max(0.0)).sum();
            let cost = busy / bytes;
            (cost > 0.0).then(|| {
                let rss: f64 = v.iter().map(|&(b, ns)| ((overhead_ns + b * cost - ns) / ns).powi(2)).sum();
                KernelByteCost {
                    name: name.to_string(),
                    ns_per_byte: cost,
                    rms_rel_residual: (rss / v.len() as f64).sqrt(),
                    tasks: v.len(),
                }
            })
        })
        .collect()
}

/// A kernel's rate by task size: one point per distinct task size (flops) measured.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelCurve {
    /// Kernel name (`gemm`).
    pub name: String,
    /// `[flops, GFLOP/s per core, tasks]` in increasing flops: per task size, its total
    /// flops over its total (duration - overhead), so the modelled durations add up to
    /// the measured ones (a makespan is a sum of durations; a median rate leaves out
    /// the slow tail of skewed kernels such as small-tile `trsm` and `potrf`).
    pub points: Vec<(f64, f64, usize)>,
    /// Root-mean-square relative residual of `overhead + flops / rate(flops)` against
    /// each measured duration.
    pub rms_rel_residual: f64,
}

/// Fits one rate per kernel name and task size to task timings `(name, flops, duration
/// ns)`, for the kernels measured at two sizes or more (a kernel's rate on small tiles
/// is far below its rate on large ones: one rate per name cannot hold both).
///
/// ```
/// use dagwire_sim::machine::fit::fit_kernel_curves;
/// let tasks = [("gemm", 2e6, 100.0 + 2e5), ("gemm", 2e6, 100.0 + 2e5), ("gemm", 16e6, 100.0 + 4e5), ("potrf", 1e6, 5e5)];
/// let curves = fit_kernel_curves(tasks.iter().copied(), 100.0);
/// assert_eq!(curves.len(), 1, "potrf has one size only");
/// assert_eq!(curves[0].points, vec![(2e6, 10.0, 2), (16e6, 40.0, 1)]);
/// assert!(curves[0].rms_rel_residual < 1e-12);
/// ```
pub fn fit_kernel_curves<'a>(
    tasks: impl IntoIterator<Item = (&'a str, f64, f64)>,
    overhead_ns: f64,
) -> Vec<KernelCurve> {
    let mut by_shape: std::collections::BTreeMap<(&str, u64), Vec<(f64, f64)>> = Default::default();
    for (name, flops, ns) in tasks {
        if flops > 0.0 && flops.is_finite() && ns.is_finite() {
            by_shape.entry((name, flops.to_bits())).or_default().push((flops, ns));
        }
    }
    // Per kernel: its curve and the squared residuals' sum and count.
    let mut curves: Vec<(KernelCurve, f64, usize)> = Vec::new();
    // Positive flops order as their bit patterns do, so each kernel's points come in
    // increasing flops.
    for ((name, _), v) in by_shape {
        let flops = v[0].0;
        let busy: f64 = v.iter().map(|&(_, ns)| (ns - overhead_ns).max(1.0)).sum();
        let rate = flops * v.len() as f64 / busy;
        let rss: f64 = v.iter().map(|&(f, ns)| ((overhead_ns + f / rate - ns) / ns).powi(2)).sum();
        let point = (flops, rate, v.len());
        match curves.last_mut() {
            Some((c, sum, n)) if c.name == name => {
                c.points.push(point);
                *sum += rss;
                *n += v.len();
            }
            _ => curves.push((
                KernelCurve { name: name.to_string(), points: vec![point], rms_rel_residual: 0.0 },
                rss,
                v.len(),
            )),
        }
    }
    let curves: Vec<KernelCurve> = curves
        .into_iter()
        .filter(|(c, _, _)| c.points.len() >= 2)
        .map(|(c, sum, n)| KernelCurve { rms_rel_residual: (sum / n as f64).sqrt(), ..c })
        .collect();
    curves
}

/// The median of `values` (`NaN` when empty).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    Data::new(values.to_vec()).median()
}
