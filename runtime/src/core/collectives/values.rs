//! The arithmetic of reductions over payloads: blocks of a vector, and element-wise
//! sums in a stated order. A [`Payload::phantom`] (a cost-model run) stays a phantom:
//! its blocks are phantoms of the block's length and no arithmetic happens.

use crate::collective::{DType, ReduceOp, block_range};
use crate::payload::Payload;
use std::ops::Range;

/// A vector being reduced: its element type and its bytes.
#[derive(Debug)]
pub(crate) struct Vector {
    pub(crate) dtype: DType,
    pub(crate) data: Payload,
}

impl Vector {
    /// Elements in the vector.
    pub(crate) fn elements(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    /// Byte range of block `b` of `p`.
    pub(crate) fn block_bytes(&self, p: usize, b: usize) -> Range<usize> {
        let r = block_range(self.elements(), p, b);
        r.start * self.dtype.size()..r.end * self.dtype.size()
    }

    /// A copy of the bytes in `range` (a phantom of its length for a phantom vector).
    pub(crate) fn slice(&self, range: Range<usize>) -> Payload {
        if self.data.is_phantom() {
            Payload::phantom(range.len())
        } else {
            Payload::from_bytes(&self.data.as_bytes()[range])
        }
    }

    /// Checks that `incoming` fits `range`.
    pub(crate) fn check(&self, range: &Range<usize>, incoming: &Payload) -> Result<(), String> {
        if incoming.len() == range.len() {
            return Ok(());
        }
        Err(format!(
            "a block of {} bytes arrived where {} were expected (did every rank join with a vector of {} bytes?)",
            incoming.len(),
            range.len(),
            self.data.len()
        ))
    }

    /// Elements in `range` become `incoming[i] op self[i]` when `incoming_first`, else
    /// `self[i] op incoming[i]` (the order is the caller's, so every rank that computes
    /// a block computes it the same way).
    pub(crate) fn combine(&mut self, op: ReduceOp, range: Range<usize>, incoming: &Payload, incoming_first: bool) {
        if self.data.is_phantom() || incoming.is_phantom() {
            return;
        }
        let ReduceOp::Sum = op;
        let dst = &mut self.data.as_bytes_mut()[range];
        let src = incoming.as_bytes();
        match self.dtype {
            DType::F64 => sum::<f64>(bytemuck::cast_slice_mut(dst), bytemuck::cast_slice(src), incoming_first),
            DType::F32 => sum::<f32>(bytemuck::cast_slice_mut(dst), bytemuck::cast_slice(src), incoming_first),
        }
    }

    /// The bytes in `range` become `incoming`'s.
    pub(crate) fn overwrite(&mut self, range: Range<usize>, incoming: &Payload) {
        if self.data.is_phantom() || incoming.is_phantom() {
            return;
        }
        self.data.as_bytes_mut()[range].copy_from_slice(incoming.as_bytes());
    }
}

fn sum<T: Copy + std::ops::Add<Output = T> + bytemuck::Pod>(dst: &mut [T], src: &[T], src_first: bool) {
    if src_first {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s + *d);
    } else {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = *d + s);
    }
}
