//! Deliberate faults a driver injects into what it moves between ranks, so tests can
//! prove that verification catches corruption.

use crate::drivers::run::Fault;
use crate::payload::Payload;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts the data transfers (messages with a payload, one-sided puts and gets) it is
/// shown and corrupts the one [`Fault::CorruptDataMessage`] names. Who shares one decides
/// what is counted: the local driver has one for the whole run, the MPI driver one per
/// rank (so each rank corrupts its own nth transfer).
///
/// ```
/// use dagwire_runtime::drivers::fault::Injector;
/// use dagwire_runtime::{Fault, Payload};
/// let faults = Injector::new(Some(Fault::CorruptDataMessage { nth: 1 }));
/// let mut sent: Vec<Payload> = (0..3).map(|_| Payload::zeroed(16)).collect();
/// sent.iter_mut().for_each(|p| faults.transfer(p));
/// let touched: Vec<bool> = sent.iter().map(|p| p.as_bytes().iter().any(|&b| b != 0)).collect();
/// assert_eq!(touched, [false, true, false]);
/// ```
#[derive(Debug, Default)]
pub struct Injector {
    fault: Option<Fault>,
    transfers: AtomicU64,
}

impl Injector {
    /// An injector of `fault` (none: it never touches a payload).
    pub fn new(fault: Option<Fault>) -> Self {
        Injector { fault, transfers: AtomicU64::new(0) }
    }

    /// One data transfer leaving with `payload` (already this transfer's own copy):
    /// flips a bit of it if it is the faulty one. An empty payload is counted but has
    /// nothing to flip.
    #[inline]
    pub fn transfer(&self, payload: &mut Payload) {
        let Some(Fault::CorruptDataMessage { nth }) = self.fault else {
            return;
        };
        if self.transfers.fetch_add(1, Ordering::Relaxed) == nth && !payload.is_empty() {
            flip(payload);
        }
    }

    /// Transfers counted so far (only while a fault is set).
    pub fn transfers(&self) -> u64 {
        self.transfers.load(Ordering::Relaxed)
    }
}

/// Flips one bit near the middle: byte 6 of an 8-byte word holds high mantissa bits of
/// an f64, so the value changes visibly whatever the workload's element type.
fn flip(payload: &mut Payload) {
    let len = payload.len();
    let at = ((len / 2) & !7) + 6;
    let at = if at < len { at } else { len / 2 };
    payload.as_bytes_mut()[at] ^= 0x40;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_nth_transfer_is_corrupted_and_only_in_one_bit() {
        for nth in 0..4 {
            let faults = Injector::new(Some(Fault::CorruptDataMessage { nth }));
            let sent: Vec<Payload> = (0..6)
                .map(|i| {
                    let mut p = Payload::from_bytes(&[i as u8; 24]);
                    faults.transfer(&mut p);
                    p
                })
                .collect();
            for (i, p) in sent.iter().enumerate() {
                let flipped: u32 = p.as_bytes().iter().map(|&b| (b ^ i as u8).count_ones()).sum();
                assert_eq!(flipped, u32::from(i as u64 == nth), "transfer {i} with nth = {nth}");
            }
            assert_eq!(faults.transfers(), 6);
        }
    }

    #[test]
    fn short_and_empty_payloads_and_no_fault() {
        let faults = Injector::new(Some(Fault::CorruptDataMessage { nth: 1 }));
        let (mut empty, mut one) = (Payload::default(), Payload::from_bytes(&[0]));
        faults.transfer(&mut empty);
        faults.transfer(&mut one);
        assert_eq!((empty.len(), one.as_bytes()), (0, &[0x40][..]));
        let none = Injector::new(None);
        let mut p = Payload::zeroed(8);
        none.transfer(&mut p);
        assert!(p.as_bytes().iter().all(|&b| b == 0));
        assert_eq!(none.transfers(), 0);
    }
}
