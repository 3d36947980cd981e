//! Storage for what the ring refers to by token (connections, outbound connects, UDP
//! sockets): entries in reusable slots, each reference carrying the slot's generation, so a
//! completion for a slot that has since been freed and reused finds nothing instead of the
//! wrong entry. Generations wrap within the token's 24 bits.

use super::token::{Token, GENERATION_MASK};

/// A slot and the generation it had when the entry was inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlabRef {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

impl SlabRef {
    /// The reference a token for this entry names.
    pub(crate) fn of(token: Token) -> Self {
        SlabRef {
            slot: token.slot,
            generation: token.generation,
        }
    }
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    pub(crate) fn insert(&mut self, value: T) -> SlabRef {
        if let Some(slot) = self.free.pop() {
            if let Some(s) = self.slots.get_mut(slot as usize) {
                // Generations wrap within what a token carries.
                s.generation = s.generation.wrapping_add(1) & GENERATION_MASK as u32;
                s.value = Some(value);
                return SlabRef {
                    slot,
                    generation: s.generation,
                };
            }
        }
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
        });
        SlabRef {
            slot: (self.slots.len() - 1) as u32,
            generation: 0,
        }
    }

    pub(crate) fn get(&self, r: SlabRef) -> Option<&T> {
        let s = self.slots.get(r.slot as usize)?;
        s.value.as_ref().filter(|_| s.generation == r.generation)
    }

    pub(crate) fn get_mut(&mut self, r: SlabRef) -> Option<&mut T> {
        let s = self.slots.get_mut(r.slot as usize)?;
        s.value.as_mut().filter(|_| s.generation == r.generation)
    }

    pub(crate) fn remove(&mut self, r: SlabRef) -> Option<T> {
        let s = self.slots.get_mut(r.slot as usize)?;
        if s.generation != r.generation {
            return None;
        }
        let value = s.value.take()?;
        self.free.push(r.slot);
        Some(value)
    }

    /// References to every entry (for shutdown: not on any per-message path).
    pub(crate) fn refs(&self) -> Vec<SlabRef> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(i, s)| SlabRef {
                slot: i as u32,
                generation: s.generation,
            })
            .collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.len() == self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_reference_finds_nothing_after_reuse() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_eq!(b.slot, a.slot);
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.refs(), vec![b]);
        assert!(!slab.is_empty());
        slab.remove(b);
        assert!(slab.is_empty());
    }

    #[test]
    fn generations_wrap_within_what_a_token_carries() {
        use super::super::token::OpKind;
        let mut slab = Slab::default();
        let a = slab.insert(1);
        slab.slots[a.slot as usize].generation = GENERATION_MASK as u32;
        let old = SlabRef {
            slot: a.slot,
            generation: GENERATION_MASK as u32,
        };
        slab.remove(old);
        let b = slab.insert(2);
        assert_eq!(b.generation, 0, "wrapped to 0, not past 24 bits");
        let token = Token::new(OpKind::Recv, b.slot, b.generation);
        let back = Token::from_user_data(token.to_user_data()).expect("a token");
        assert_eq!(slab.get(SlabRef::of(back)), Some(&2));
        assert_eq!(slab.get(old), None);
    }
}
