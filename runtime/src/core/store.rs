//! The chunks an engine holds for its tasks, by read slot ([`Dag::reading_on`]): a
//! dense array from slot to a small slab of present chunks, so an arrival or a read is
//! two array accesses, with no hashing. The array is one `u32` per distinct chunk the
//! rank reads over the run; the slab holds only the chunks present now.
//!
//! [`Dag::reading_on`]: crate::Dag::reading_on

use crate::payload::Payload;

/// No chunk in this slot.
const EMPTY: u32 = u32::MAX;

/// A rank's present chunks, with how many reads of each its tasks still make.
///
/// ```
/// use dagwire_runtime::store::ChunkStore;
/// use dagwire_runtime::Payload;
/// let mut store = ChunkStore::new(3);
/// store.insert(2, Payload::zeroed(8), 2);
/// assert!(store.contains(2) && !store.contains(0));
/// assert_eq!(store.read(2).len(), 8); // one read left
/// assert!(store.contains(2));
/// assert_eq!(store.read(2).len(), 8); // the last read takes it out
/// assert!(!store.contains(2));
/// store.insert(0, Payload::zeroed(16), 1); // reuses the place slot 2 had
/// store.insert(1, Payload::zeroed(24), 1);
/// assert_eq!((store.read(0).len(), store.read(1).len()), (16, 24));
/// assert!(!store.contains(0) && !store.contains(1));
/// ```
#[derive(Debug)]
pub struct ChunkStore {
    /// By slot: the chunk's place in `present`, or [`EMPTY`].
    at: Vec<u32>,
    present: Vec<Stored>,
    /// The first place in `present` free for reuse ([`EMPTY`]: none); each free place
    /// holds the next in its `readers_left`. The list lives in the places themselves,
    /// so taking one touches only the line the new chunk is written to (a separate list
    /// would be one more cache miss per insert on a rank whose state has gone cold).
    free: u32,
}

/// A chunk present and how many reads of it remain (when free: no data, and the next
/// free place).
#[derive(Debug, Default)]
struct Stored {
    data: Payload,
    readers_left: u32,
}

impl ChunkStore {
    /// A store for `slots` read slots, all empty.
    pub fn new(slots: usize) -> Self {
        ChunkStore { at: vec![EMPTY; slots], present: Vec::new(), free: EMPTY }
    }

    /// Whether slot `slot` holds a chunk.
    pub fn contains(&self, slot: u32) -> bool {
        self.at[slot as usize] != EMPTY
    }

    /// The chunk in `slot`, if present.
    pub fn get(&self, slot: u32) -> Option<&Payload> {
        let at = self.at[slot as usize];
        (at != EMPTY).then(|| &self.present[at as usize].data)
    }

    /// Puts `data` in the empty slot `slot`, to be read `reads` times (at least once).
    pub fn insert(&mut self, slot: u32, data: Payload, reads: u32) {
        debug_assert!(!self.contains(slot) && reads > 0);
        let at = self.free;
        if at == EMPTY {
            self.present.push(Stored { data, readers_left: reads });
            self.at[slot as usize] = self.present.len() as u32 - 1;
            return;
        }
        let place = &mut self.present[at as usize];
        self.free = place.readers_left;
        // A free place's data was taken by its last read: nothing to drop.
        debug_assert!(place.data.is_empty() && !place.data.is_phantom());
        place.data = data;
        place.readers_left = reads;
        self.at[slot as usize] = at;
    }

    /// One read of the chunk in `slot`; the last read takes it out, so an in-place
    /// kernel can reuse the buffer without a copy.
    ///
    /// # Panics
    /// If the slot is empty (an engine reads only inputs that are present).
    pub fn read(&mut self, slot: u32) -> Payload {
        let at = self.at[slot as usize];
        assert!(at != EMPTY, "a ready task's inputs are present");
        let stored = &mut self.present[at as usize];
        stored.readers_left -= 1;
        if stored.readers_left > 0 {
            return stored.data.clone();
        }
        self.at[slot as usize] = EMPTY;
        stored.readers_left = self.free;
        self.free = at;
        std::mem::take(&mut stored.data)
    }
}
