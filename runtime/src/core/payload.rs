//! Chunk contents: bytes stored 8-byte aligned so kernels can view them as `f64`
//! without copying, and shared copy-on-write so handing a chunk to a message, a
//! collective or a window costs no copy until someone writes to it.

use std::fmt;
use std::sync::Arc;

/// The bytes of one chunk, always 8-byte aligned. Cloning shares the bytes; the first
/// write through a shared payload copies them (copy-on-write), so a clone behaves like
/// an independent value.
///
/// ```
/// use dagwire_runtime::Payload;
/// let p = Payload::from_f64(vec![1.0, 2.0]);
/// assert_eq!(p.len(), 16);
/// assert_eq!(p.as_f64(), &[1.0, 2.0]);
/// let mut b = Payload::from_bytes(&[1, 2, 3]);
/// let shared = b.clone();
/// b.as_bytes_mut()[0] = 9;
/// assert_eq!((b.as_bytes(), shared.as_bytes()), (&[9, 2, 3][..], &[1, 2, 3][..]));
/// ```
#[derive(Clone, PartialEq, Default)]
pub struct Payload {
    /// The bytes as words; `None` when there are none (empty or phantom).
    words: Option<Arc<Vec<u64>>>,
    len: usize,
}

impl Payload {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        Payload { words: (len > 0).then(|| Arc::new(vec![0; len.div_ceil(8)])), len }
    }

    /// A payload that has a size but no bytes: what a simulated run moves when kernels
    /// are not executed (cost model only). Cloning it costs nothing; reading its bytes panics.
    ///
    /// ```
    /// let p = dagwire_runtime::Payload::phantom(1 << 30);
    /// assert_eq!(p.len(), 1 << 30);
    /// assert!(p.is_phantom());
    /// ```
    pub fn phantom(len: usize) -> Self {
        Payload { words: None, len }
    }

    /// True for a [`Payload::phantom`] with a non-zero size.
    pub fn is_phantom(&self) -> bool {
        self.words.is_none() && self.len > 0
    }

    /// A payload with the same bytes in a buffer of its own: what a transport that
    /// copies bytes (shared memory, a network) hands the receiver.
    ///
    /// ```
    /// let p = dagwire_runtime::Payload::from_bytes(&[1, 2]);
    /// assert_eq!(p.copied(), p);
    /// ```
    pub fn copied(&self) -> Payload {
        Payload { words: self.words.as_ref().map(|w| Arc::new(Vec::clone(w))), len: self.len }
    }

    fn words(&self) -> &[u64] {
        self.words.as_deref().map_or(&[], Vec::as_slice)
    }

    /// The words, unshared first if another payload holds them too.
    fn words_mut(&mut self) -> &mut [u64] {
        self.words.as_mut().map_or(&mut [], |w| Arc::make_mut(w).as_mut_slice())
    }

    fn assert_real(&self) {
        assert!(!self.is_phantom(), "payload of {} bytes is a phantom (cost-model run): it has no bytes", self.len);
    }

    /// Takes ownership of `values` without copying.
    pub fn from_f64(values: Vec<f64>) -> Self {
        let len = values.len() * 8;
        Payload { words: (len > 0).then(|| Arc::new(bytemuck::allocation::cast_vec(values))), len }
    }

    /// Takes ownership of `words` holding `len` bytes (and zeros past them) without
    /// copying: a transport that received into words of its own.
    #[cfg_attr(not(feature = "fabric"), allow(dead_code))]
    pub(crate) fn from_words(words: Vec<u64>, len: usize) -> Self {
        assert_eq!(words.len(), len.div_ceil(8), "{len} bytes need {} words", len.div_ceil(8));
        Payload { words: (len > 0).then(|| Arc::new(words)), len }
    }

    /// Copies `bytes` into a new aligned payload.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut p = Payload::zeroed(bytes.len());
        p.as_bytes_mut().copy_from_slice(bytes);
        p
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the payload holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.assert_real();
        &bytemuck::cast_slice(self.words())[..self.len]
    }

    /// The bytes, writable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.assert_real();
        let len = self.len;
        &mut bytemuck::cast_slice_mut(self.words_mut())[..len]
    }

    /// The payload as `f64` values.
    ///
    /// # Panics
    /// If the length is not a multiple of 8 bytes (the chunk was not built from `f64`s).
    pub fn as_f64(&self) -> &[f64] {
        self.assert_real();
        assert!(self.len.is_multiple_of(8), "payload of {} bytes is not a whole number of f64", self.len);
        bytemuck::cast_slice(self.words())
    }

    /// The payload as writable `f64` values.
    ///
    /// # Panics
    /// If the length is not a multiple of 8 bytes.
    pub fn as_f64_mut(&mut self) -> &mut [f64] {
        self.assert_real();
        assert!(self.len.is_multiple_of(8), "payload of {} bytes is not a whole number of f64", self.len);
        bytemuck::cast_slice_mut(self.words_mut())
    }

    /// Gives back the `f64` values, without copying unless another payload shares them.
    ///
    /// # Panics
    /// If the length is not a multiple of 8 bytes.
    pub fn into_f64(self) -> Vec<f64> {
        assert!(self.len.is_multiple_of(8), "payload of {} bytes is not a whole number of f64", self.len);
        let words = self.words.map_or_else(Vec::new, |w| Arc::try_unwrap(w).unwrap_or_else(|w| Vec::clone(&w)));
        bytemuck::allocation::cast_vec(words)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.len)
    }
}
