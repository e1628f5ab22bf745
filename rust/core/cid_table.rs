// SPDX-License-Identifier: GPL-2.0

//! Connections per peer CID: the accounting behind the server's
//! `max_conns_per_cid`.
//!
//! A [`CidTable`] has a line per CID: the connections it has now and those
//! it was refused since the table was made. The lines sit at the start of
//! slots the caller provides, sorted by CID, the free slots after them;
//! nothing here allocates. [`CidTable::admit`] asks for more slots only
//! when every slot holds a CID that has connections, so the kernel, which
//! keeps the slots in a vector, needs no more of them than the most CIDs
//! that had connections at one time.
//!
//! A CID keeps its line while it has connections. A line whose
//! connections are gone but that records refusals stays while there is
//! room: a new CID takes a free slot, or else the line without
//! connections that records the fewest refusals. [`CidTable::refused`]
//! counts every refusal, also those of lines given up.
//!
//! The lines also share the server's threads between the CIDs: a CID may
//! have calls in progress or queued for a thread up to its share, an even
//! split of the threads between the CIDs that want them
//! ([`CidTable::share`]). One CID alone may use every thread; a flood from
//! one CID cannot keep another's calls waiting behind all of its own.

use core::ops::DerefMut;

/// One CID's line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CidCount {
    /// The peer's CID.
    pub cid: u32,
    /// Its connections now: admitted and not released yet.
    pub live: u32,
    /// Its connections refused since the table was made.
    pub refused: u64,
    /// Its calls that a server thread is receiving or processing.
    pub calls: u32,
    /// Its connections queued for a server thread.
    pub queued: u32,
}

impl CidCount {
    /// Whether the slot holds no line.
    fn is_free(&self) -> bool {
        self.live == 0 && self.refused == 0
    }

    /// Whether the CID wants threads: it has calls in progress or queued.
    fn is_busy(&self) -> bool {
        self.calls > 0 || self.queued > 0
    }
}

/// What [`CidTable::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The connection counts for its CID until [`CidTable::release`].
    Admitted,
    /// The CID has as many connections as the limit allows, or more (the
    /// limit was lowered meanwhile); the refusal is counted.
    Refused,
    /// The CID has no line and every slot holds one with connections: add
    /// free slots and ask again.
    NoRoom,
}

/// Connections and refusals per CID, over the slots `S`.
///
/// # Invariants
///
/// The slots hold the lines first, sorted by CID without duplicates, each
/// with connections or refusals, then only free slots. `busy` is the
/// number of lines with calls in progress or queued.
pub struct CidTable<S> {
    slots: S,
    refused: u64,
    busy: u32,
}

impl<S: DerefMut<Target = [CidCount]>> CidTable<S> {
    /// A table over `slots`, which must all be free
    /// ([`CidCount::default()`]), as must those added later.
    pub fn new(slots: S) -> Self {
        Self {
            slots,
            refused: 0,
            busy: 0,
        }
    }

    /// The lines, sorted by CID.
    pub fn lines(&self) -> &[CidCount] {
        &self.slots[..self.used()]
    }

    /// Every refusal since the table was made.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The slots, to add free ones after [`Admission::NoRoom`].
    pub fn slots_mut(&mut self) -> &mut S {
        &mut self.slots
    }

    /// Counts a new connection from `cid`, unless the CID has `limit`
    /// connections (0: no limit) already.
    pub fn admit(&mut self, cid: u32, limit: u32) -> Admission {
        // Without a limit, the counter's range is one.
        let limit = if limit == 0 { u32::MAX } else { limit };
        let mut used = self.used();
        let mut at = match self.slots[..used].binary_search_by_key(&cid, |line| line.cid) {
            Ok(i) => {
                let line = &mut self.slots[i];
                if line.live >= limit {
                    line.refused = line.refused.saturating_add(1);
                    self.refused = self.refused.saturating_add(1);
                    return Admission::Refused;
                }
                line.live += 1;
                return Admission::Admitted;
            }
            Err(at) => at,
        };
        if used == self.slots.len() {
            let idle = (0..used)
                .filter(|&i| self.slots[i].live == 0)
                .min_by_key(|&i| self.slots[i].refused);
            let Some(idle) = idle else {
                return Admission::NoRoom;
            };
            self.remove(idle, used);
            used -= 1;
            if idle < at {
                at -= 1;
            }
        }
        // INVARIANT: the new line goes where its CID sorts, its slot taken
        // from the free ones after the lines.
        self.slots[at..=used].rotate_right(1);
        self.slots[at] = CidCount {
            cid,
            live: 1,
            ..CidCount::default()
        };
        Admission::Admitted
    }

    /// Uncounts a connection from `cid` that [`CidTable::admit`] admitted.
    pub fn release(&mut self, cid: u32) {
        let used = self.used();
        if let Ok(i) = self.slots[..used].binary_search_by_key(&cid, |line| line.cid) {
            let line = &mut self.slots[i];
            line.live = line.live.saturating_sub(1);
            if line.is_free() {
                self.remove(i, used);
            }
        }
    }

    /// The threads, of `threads`, that `cid` may use: an even split, rounded
    /// up, between the CIDs with calls in progress or queued, `cid` itself
    /// counted; at least one.
    pub fn share(&self, cid: u32, threads: u32) -> u32 {
        let own = self.index(cid).is_some_and(|i| self.slots[i].is_busy());
        let others = self.busy - u32::from(own);
        threads.div_ceil(others.saturating_add(1)).max(1)
    }

    /// Counts a connection of `cid` queued for a thread, if the CID's calls
    /// and queued connections are below its share of `threads`; returns
    /// whether it was counted. `cid` must have a connection.
    pub fn queue(&mut self, cid: u32, threads: u32) -> bool {
        self.take(
            cid,
            threads,
            |line| line.calls.saturating_add(line.queued),
            |line| &mut line.queued,
        )
    }

    /// Uncounts a queued connection of `cid`: a thread took it, or it closed.
    pub fn unqueue(&mut self, cid: u32) {
        self.give_back(cid, |line| &mut line.queued);
    }

    /// Counts a call of `cid` that a thread starts to receive, if the CID's
    /// calls are below its share of `threads`; returns whether it was
    /// counted. `cid` must have a connection.
    pub fn begin(&mut self, cid: u32, threads: u32) -> bool {
        self.take(cid, threads, |line| line.calls, |line| &mut line.calls)
    }

    /// Uncounts a call of `cid` that [`CidTable::begin`] counted.
    pub fn end(&mut self, cid: u32) {
        self.give_back(cid, |line| &mut line.calls);
    }

    /// Adds one to the `counter` of `cid`'s line if what the line `uses`
    /// is below the CID's share of `threads`; returns whether it did.
    fn take(
        &mut self,
        cid: u32,
        threads: u32,
        uses: fn(&CidCount) -> u32,
        counter: fn(&mut CidCount) -> &mut u32,
    ) -> bool {
        let share = self.share(cid, threads);
        let Some(i) = self.index(cid) else {
            return false;
        };
        let line = &mut self.slots[i];
        if uses(line) >= share {
            return false;
        }
        let was_busy = line.is_busy();
        *counter(line) += 1;
        // INVARIANT: the line is busy now.
        self.busy += u32::from(!was_busy);
        true
    }

    /// Takes one from the `counter` of `cid`'s line.
    fn give_back(&mut self, cid: u32, counter: fn(&mut CidCount) -> &mut u32) {
        if let Some(i) = self.index(cid) {
            let line = &mut self.slots[i];
            let was_busy = line.is_busy();
            let count = counter(line);
            *count = count.saturating_sub(1);
            // INVARIANT: one fewer busy line if this one no longer is.
            self.busy -= u32::from(was_busy && !line.is_busy());
        }
    }

    /// The index of `cid`'s line, if it has one.
    fn index(&self, cid: u32) -> Option<usize> {
        self.slots[..self.used()]
            .binary_search_by_key(&cid, |line| line.cid)
            .ok()
    }

    /// The number of lines.
    fn used(&self) -> usize {
        self.slots.partition_point(|slot| !slot.is_free())
    }

    /// Removes line `i` of `used`, keeping the others in order.
    fn remove(&mut self, i: usize, used: usize) {
        self.busy -= u32::from(self.slots[i].is_busy());
        // INVARIANT: the lines after `i` move up, a free slot after them.
        self.slots[i..used].rotate_left(1);
        self.slots[used - 1] = CidCount::default();
    }
}
