//! The shadow's handle table: which shadow object stands for which primary
//! one (CONFIG.md, "Handles").
//!
//! Only the shadow thread uses it, in the order invocations reach it, which
//! is the order the application made its calls on any one handle: an
//! invocation is queued before the wrapper returns to the application, so a
//! call the application makes after another one returned (on any thread, as
//! its own synchronisation orders them) is queued after it, and the queue is
//! first-in first-out with one consumer.
//!
//! A handle is keyed by its class (the index of its type in `handles`) and
//! the primary's value (its address). Three kinds of entry:
//!
//! * a plain handle (`codec_t *`): the shadow's own handle, as the new
//!   build's create function returned it;
//! * a caller-owned struct with a life (`struct z_stream_s *`): an instance
//!   DDL allocates for the shadow when the create (init) function is called
//!   and frees after the destroy (end) function; its fields are refreshed
//!   from the primary's before each call, its `[private]` fields stay the
//!   new build's own;
//! * parted: a call on the handle was dropped (the queue was full), so the
//!   two sides' states have parted; every later call on it is `unmirrored`
//!   until a create pairs the address again.

use std::collections::{BTreeSet, HashMap};

use crate::marshal::HandleArg;

/// One pairing.
struct Entry {
    /// The shadow's handle (for an instance: its address).
    shadow: u64,
    /// A struct handle's instance, owned here (8-byte aligned words).
    instance: Option<Box<[u64]>>,
}

/// The pairs of primary and shadow handles.
#[derive(Default)]
pub struct HandleTable {
    pairs: HashMap<(u32, u64), Entry>,
    /// Handles on which calls were dropped, with the dropped calls'
    /// sequence numbers: a call after one of them is `unmirrored`. Drops are
    /// noted as they happen, ahead of the queue, so one address may hold
    /// drops of several lives (a drop, a destroy and a create still queued,
    /// another drop); each pairing forgets only the drops before it.
    parted: HashMap<(u32, u64), BTreeSet<u64>>,
}

impl HandleTable {
    /// An empty table.
    pub fn new() -> HandleTable {
        HandleTable::default()
    }

    /// A call with sequence number `seq` on this handle was dropped.
    pub fn part(&mut self, class: u32, primary: u64, seq: u64) {
        self.parted.entry((class, primary)).or_default().insert(seq);
    }

    fn is_parted(&self, class: u32, primary: u64, seq: u64) -> bool {
        self.parted
            .get(&(class, primary))
            .is_some_and(|d| d.range(..seq).next().is_some())
    }

    /// The shadow's handle for `primary`, for the call numbered `seq`.
    pub fn lookup(&self, class: u32, primary: u64, seq: u64) -> HandleArg {
        if self.is_parted(class, primary, seq) {
            return HandleArg::Unknown;
        }
        match self.pairs.get(&(class, primary)) {
            Some(e) if e.instance.is_some() => HandleArg::Instance(e.shadow as *mut u8),
            Some(e) => HandleArg::Value(e.shadow),
            None => HandleArg::Unknown,
        }
    }

    /// A create (init) function is given the caller-owned struct at
    /// `primary`: the shadow gets a new zeroed instance of `size` bytes
    /// (replacing one the address had, as a second init without an end
    /// would on the primary's side).
    pub fn create_instance(
        &mut self,
        class: u32,
        primary: u64,
        size: usize,
        seq: u64,
    ) -> HandleArg {
        let mut words = vec![0u64; size.div_ceil(8).max(1)].into_boxed_slice();
        let at = words.as_mut_ptr() as u64;
        self.clear_parted(class, primary, seq);
        self.pairs.insert(
            (class, primary),
            Entry {
                shadow: at,
                instance: Some(words),
            },
        );
        HandleArg::Instance(at as *mut u8)
    }

    /// A create function returned (or stored) `primary` on the primary's
    /// side and `shadow` on the shadow's: they stand for each other from
    /// now on.
    pub fn pair(&mut self, class: u32, primary: u64, shadow: u64, seq: u64) {
        self.clear_parted(class, primary, seq);
        self.pairs.insert(
            (class, primary),
            Entry {
                shadow,
                instance: None,
            },
        );
    }

    /// A destroy function was called on `primary` (call `seq`): the pair
    /// is forgotten and an instance freed.
    pub fn remove(&mut self, class: u32, primary: u64, seq: u64) {
        self.pairs.remove(&(class, primary));
        self.clear_parted(class, primary, seq);
    }

    /// A pairing (or destroy) numbered `seq` starts a new life: the drops
    /// before it are forgotten, the later ones stay.
    fn clear_parted(&mut self, class: u32, primary: u64, seq: u64) {
        if let Some(d) = self.parted.get_mut(&(class, primary)) {
            *d = d.split_off(&seq);
            if d.is_empty() {
                self.parted.remove(&(class, primary));
            }
        }
    }

    /// Forgets every pair (the shadow's namespace was replaced): later
    /// calls on those handles are `unmirrored`; DDL's instances are freed.
    pub fn clear(&mut self) {
        self.pairs.clear();
        self.parted.clear();
    }

    /// Live pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// No live pair.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_lookup_remove() {
        let mut t = HandleTable::new();
        assert_eq!(t.lookup(0, 0x10, 1), HandleArg::Unknown);
        t.pair(0, 0x10, 0x99, 1);
        assert_eq!(t.lookup(0, 0x10, 2), HandleArg::Value(0x99));
        assert_eq!(
            t.lookup(1, 0x10, 2),
            HandleArg::Unknown,
            "classes are apart"
        );
        t.remove(0, 0x10, 3);
        assert_eq!(t.lookup(0, 0x10, 4), HandleArg::Unknown);
        assert!(t.is_empty());
    }

    #[test]
    fn a_dropped_call_parts_the_handle_from_its_seq_on() {
        let mut t = HandleTable::new();
        t.pair(0, 0x10, 0x99, 1);
        t.part(0, 0x10, 5);
        assert_eq!(
            t.lookup(0, 0x10, 4),
            HandleArg::Value(0x99),
            "earlier calls"
        );
        assert_eq!(t.lookup(0, 0x10, 6), HandleArg::Unknown);
        // The address is destroyed and created again later: paired anew.
        t.remove(0, 0x10, 7);
        t.pair(0, 0x10, 0x77, 8);
        assert_eq!(t.lookup(0, 0x10, 9), HandleArg::Value(0x77));
        // A create queued before the drop does not clear it.
        t.part(0, 0x20, 20);
        t.pair(0, 0x20, 0x55, 19);
        assert_eq!(t.lookup(0, 0x20, 21), HandleArg::Unknown);
    }

    #[test]
    fn drops_of_two_lives_noted_ahead_of_the_queue() {
        // Application order: create 1, drop 5, destroy 6, create 7, drop 9;
        // the shadow learns of both drops before it judges anything.
        let mut t = HandleTable::new();
        t.part(0, 0x10, 5);
        t.part(0, 0x10, 9);
        t.pair(0, 0x10, 0xa, 1);
        assert_eq!(t.lookup(0, 0x10, 2), HandleArg::Value(0xa));
        assert_eq!(t.lookup(0, 0x10, 6), HandleArg::Unknown);
        t.remove(0, 0x10, 6);
        t.pair(0, 0x10, 0xb, 7);
        assert_eq!(t.lookup(0, 0x10, 8), HandleArg::Value(0xb));
        assert_eq!(
            t.lookup(0, 0x10, 10),
            HandleArg::Unknown,
            "the second life's drop"
        );
    }

    #[test]
    fn instances_are_zeroed_aligned_and_replaced() {
        let mut t = HandleTable::new();
        let HandleArg::Instance(a) = t.create_instance(0, 0x10, 20, 1) else {
            panic!()
        };
        assert_eq!(a as usize % 8, 0);
        // SAFETY: 20 bytes owned by the table.
        assert!(unsafe { std::slice::from_raw_parts(a, 20) }
            .iter()
            .all(|b| *b == 0));
        assert_eq!(t.lookup(0, 0x10, 2), HandleArg::Instance(a));
        t.create_instance(0, 0x10, 20, 3);
        assert_eq!(t.len(), 1);
    }
}
