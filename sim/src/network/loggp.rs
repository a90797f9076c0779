//! LogGP costs: picking a message's segment and the integer-nanosecond cost terms of one
//! message. Every duration is rounded up to whole nanoseconds by [`ceil_ns`], term by term,
//! so the one-way time of an isolated message of `k` bytes is exactly
//! `ceil(o_s) + ceil((k-1)*G) + ceil(L + (hops-1)*hop_ns) + ceil(o_r)`.

use crate::machine::{LogGp, LogGpSegment};
use crate::queue::Time;

/// Whole nanoseconds of a duration given in fractional nanoseconds, rounded up.
/// Values within a relative 1e-9 of an integer count as that integer, so that float noise
/// (`8190.0 * 0.1` is `819.0000000000001`) never adds a nanosecond. Negative, zero and NaN
/// durations are 0; huge ones saturate.
pub(crate) fn ceil_ns(x: f64) -> Time {
    if x.is_nan() || x <= 0.0 {
        return 0;
    }
    let r = x.round();
    if (x - r).abs() <= 1e-9 * r.max(1.0) { r as Time } else { x.ceil() as Time }
}

/// The size a message counts as: a 0-byte message costs what a 1-byte one does.
#[inline]
pub(crate) fn counted_bytes(bytes: u64) -> u64 {
    bytes.max(1)
}

/// One [`LogGpSegment`] with its fixed overheads already in whole nanoseconds.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    /// Smallest message size of the segment.
    pub from_bytes: u64,
    /// `ceil(o_s)`.
    pub o_s: Time,
    /// `ceil(o_r)`.
    pub o_r: Time,
    /// `g`, ns.
    pub g_ns: f64,
    /// `L`, ns.
    pub l_ns: f64,
    /// `G`, ns per byte.
    pub per_byte_ns: f64,
    /// `O`, CPU ns per byte (0 when the machine gives none).
    pub cpu_per_byte_ns: f64,
}

impl Segment {
    fn new(s: &LogGpSegment) -> Segment {
        Segment {
            from_bytes: s.from_bytes,
            o_s: ceil_ns(s.o_s_ns),
            o_r: ceil_ns(s.o_r_ns),
            g_ns: s.g_ns,
            l_ns: s.l_ns,
            per_byte_ns: s.g_per_byte_ns,
            cpu_per_byte_ns: s.o_per_byte_ns.unwrap_or(0.0),
        }
    }

    /// `ceil((k-1) * O)`: the CPU time a message's bytes cost each end (LogGOPS), as a
    /// `u32` (at most `u32::MAX` ns, 4.3 s: a message costs its CPU at most that much).
    pub fn copy_ns(&self, bytes: u64) -> u32 {
        ceil_ns((counted_bytes(bytes) - 1) as f64 * self.cpu_per_byte_ns).min(u64::from(u32::MAX)) as u32
    }

    /// `ceil((k-1) * G)`: the time to push the bytes after the first.
    pub fn data_ns(&self, bytes: u64) -> Time {
        ceil_ns((counted_bytes(bytes) - 1) as f64 * self.per_byte_ns)
    }

    /// `ceil(L + (hops-1) * hop_ns)`: latency of a route through `hops` switches (0 or 1
    /// adds nothing).
    pub fn latency_ns(&self, hops: u32, hop_ns: f64) -> Time {
        ceil_ns(self.l_ns + hops.saturating_sub(1) as f64 * hop_ns)
    }

    /// Minimum distance between this injection and the next one of the same injector:
    /// `ceil(max(g, k*G, k / injection bandwidth))`.
    pub fn gap_ns(&self, bytes: u64, inject_bytes_per_ns: f64) -> Time {
        let k = counted_bytes(bytes) as f64;
        ceil_ns(self.g_ns.max(k * self.per_byte_ns).max(k / inject_bytes_per_ns))
    }

    /// The path rate a flow of this segment may reach: `1/G` bytes per ns (infinite when
    /// `G` is 0).
    pub fn rate_cap(&self) -> f64 {
        if self.per_byte_ns > 0.0 { 1.0 / self.per_byte_ns } else { f64::INFINITY }
    }
}

/// The segments of both paths in one table, so a message refers to its segment by a `u32`.
#[derive(Clone, Debug)]
pub(crate) struct Costs {
    segments: Vec<Segment>,
    inter_len: usize,
    /// Some segment gives `O` (`o_per_byte_ns`): messages' CPU time holds their ranks'
    /// kernels (LogGOPS).
    pub loggops: bool,
}

impl Costs {
    /// The inter-node and intra-node tables (each sorted by `from_bytes`, stably, so equal
    /// starts keep their file order and the last one wins).
    pub fn new(inter: &LogGp, intra: &LogGp) -> Result<Costs, String> {
        let mut segments = Vec::new();
        for (key, table) in [("inter_node", inter), ("intra_node", intra)] {
            if table.segments.is_empty() {
                return Err(format!("{key}.segments is empty: give at least one segment with from_bytes = 0"));
            }
            let mut part: Vec<Segment> = Vec::with_capacity(table.segments.len());
            for (i, s) in table.segments.iter().enumerate() {
                for (name, v) in [
                    ("o_s_ns", s.o_s_ns),
                    ("o_r_ns", s.o_r_ns),
                    ("g_ns", s.g_ns),
                    ("l_ns", s.l_ns),
                    ("g_per_byte_ns", s.g_per_byte_ns),
                    ("o_per_byte_ns", s.o_per_byte_ns.unwrap_or(0.0)),
                ] {
                    if !v.is_finite() || v < 0.0 {
                        return Err(format!("{key}.segments[{i}].{name} = {v}: must be a finite number >= 0"));
                    }
                }
                part.push(Segment::new(s));
            }
            part.sort_by_key(|s| s.from_bytes);
            segments.extend(part);
        }
        let loggops = inter.segments.iter().chain(&intra.segments).any(|s| s.o_per_byte_ns.is_some());
        Ok(Costs { segments, inter_len: inter.segments.len(), loggops })
    }

    /// Index of the inter-node segment of a `bytes` message.
    pub fn inter(&self, bytes: u64) -> u32 {
        lookup(&self.segments[..self.inter_len], bytes) as u32
    }

    /// Index of the intra-node segment of a `bytes` message.
    pub fn intra(&self, bytes: u64) -> u32 {
        (self.inter_len + lookup(&self.segments[self.inter_len..], bytes)) as u32
    }

    /// The segment at `index`.
    #[inline]
    pub fn get(&self, index: u32) -> &Segment {
        &self.segments[index as usize]
    }
}

/// The last segment whose `from_bytes <= bytes` (the first one if none starts that low).
fn lookup(segments: &[Segment], bytes: u64) -> usize {
    segments.partition_point(|s| s.from_bytes <= bytes).saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(from_bytes: u64, o_s_ns: f64) -> LogGpSegment {
        LogGpSegment { from_bytes, o_s_ns, o_r_ns: 0.0, g_ns: 0.0, l_ns: 0.0, g_per_byte_ns: 0.0, o_per_byte_ns: None }
    }

    #[test]
    fn ceil_ns_rounds_up_but_ignores_float_noise() {
        assert_eq!(ceil_ns(0.0), 0);
        assert_eq!(ceil_ns(-3.0), 0);
        assert_eq!(ceil_ns(f64::NAN), 0);
        assert_eq!(ceil_ns(0.2), 1);
        assert_eq!(ceil_ns(100.5), 101);
        assert_eq!(ceil_ns(8190.0 * 0.1), 819);
        assert_eq!(ceil_ns(819.001), 820);
    }

    #[test]
    fn the_last_segment_starting_at_or_below_the_size_applies() {
        let inter = LogGp { segments: vec![seg(0, 1.0), seg(8192, 2.0), seg(65536, 3.0)] };
        let intra = LogGp { segments: vec![seg(0, 10.0), seg(4096, 20.0)] };
        let c = Costs::new(&inter, &intra).unwrap();
        let os = |i: u32| c.get(i).o_s;
        assert_eq!(os(c.inter(0)), 1);
        assert_eq!(os(c.inter(8191)), 1);
        assert_eq!(os(c.inter(8192)), 2);
        assert_eq!(os(c.inter(65535)), 2);
        assert_eq!(os(c.inter(u64::MAX)), 3);
        assert_eq!(os(c.intra(4095)), 10);
        assert_eq!(os(c.intra(4096)), 20);
    }

    #[test]
    fn empty_or_negative_tables_are_refused() {
        let ok = LogGp { segments: vec![seg(0, 1.0)] };
        let err = Costs::new(&LogGp { segments: vec![] }, &ok).unwrap_err();
        assert!(err.contains("inter_node.segments is empty"), "{err}");
        let err = Costs::new(&ok, &LogGp { segments: vec![seg(0, -1.0)] }).unwrap_err();
        assert!(err.contains("intra_node.segments[0].o_s_ns = -1"), "{err}");
    }

    #[test]
    fn cost_terms_follow_the_formula() {
        let s = Segment::new(&LogGpSegment {
            from_bytes: 0,
            o_s_ns: 100.5,
            o_r_ns: 7.0,
            g_ns: 50.0,
            l_ns: 1000.0,
            g_per_byte_ns: 0.125,
            o_per_byte_ns: None,
        });
        assert_eq!(s.o_s, 101);
        assert_eq!(s.data_ns(0), 0);
        assert_eq!(s.data_ns(1), 0);
        assert_eq!(s.data_ns(81), 10);
        assert_eq!(s.latency_ns(1, 30.0), 1000);
        assert_eq!(s.latency_ns(5, 30.5), 1122);
        // gap: max(g = 50, k*G = 12.5, k / 1 B/ns = 100)
        assert_eq!(s.gap_ns(100, 1.0), 100);
        assert_eq!(s.gap_ns(100, 100.0), 50);
        assert_eq!(s.gap_ns(1000, 100.0), 125);
        assert_eq!(s.rate_cap(), 8.0);
    }
}
