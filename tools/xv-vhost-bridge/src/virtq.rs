// SPDX-License-Identifier: GPL-2.0

//! The driver side of a split virtqueue (virtio 1.x, 2.7): what a guest's
//! virtio driver does, here over memory this process owns.
//!
//! No VIRTIO_F_EVENT_IDX and no indirect descriptors: the avail ring's flags
//! stay 0, so the device signals every batch of used buffers, and every
//! chain uses descriptors of the queue's own table.

use std::fmt;
use std::sync::atomic::{fence, Ordering};

use vm_memory::{Bytes, GuestAddress, GuestMemoryError, GuestMemoryMmap};

/// `VIRTQ_DESC_F_NEXT`: the chain goes on at `next`.
pub const DESC_F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`: the device writes this buffer.
pub const DESC_F_WRITE: u16 = 2;
/// `VIRTQ_USED_F_NO_NOTIFY` in the used ring's flags.
pub const USED_F_NO_NOTIFY: u16 = 1;

const DESC_SIZE: u64 = 16;
const DESC_ALIGN: u64 = 16;
const USED_ALIGN: u64 = 4;
/// flags and idx in front of both rings' entries.
const RING_META: u64 = 4;
/// `used_event` after the avail ring, `avail_event` after the used ring: laid
/// out even without EVENT_IDX, so the sizes match what devices check.
const EVENT_FIELD: u64 = 2;
const USED_ELEM_SIZE: u64 = 8;

/// The largest queue size the split ring allows (2.7: "Queue Size ... maximum
/// 32768").
pub const MAX_SIZE: u16 = 32768;

fn align_up(v: u64, align: u64) -> u64 {
    v.div_ceil(align) * align
}

/// Where the three parts of a queue of `size` entries lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub size: u16,
    pub desc: GuestAddress,
    pub avail: GuestAddress,
    pub used: GuestAddress,
    /// First byte after the used ring.
    pub end: GuestAddress,
}

impl Layout {
    /// The rings of a `size`-entry queue placed from `base` on: the table
    /// 16-aligned, the avail ring right after it (2-aligned as the table size
    /// is a multiple of 16), the used ring 4-aligned (2.7, "Virtqueue
    /// Alignment").
    pub fn new(base: GuestAddress, size: u16) -> Layout {
        let n = u64::from(size);
        let desc = align_up(base.0, DESC_ALIGN);
        let avail = desc + DESC_SIZE * n;
        let used = align_up(avail + RING_META + 2 * n + EVENT_FIELD, USED_ALIGN);
        let end = used + RING_META + USED_ELEM_SIZE * n + EVENT_FIELD;
        Layout {
            size,
            desc: GuestAddress(desc),
            avail: GuestAddress(avail),
            used: GuestAddress(used),
            end: GuestAddress(end),
        }
    }

    fn desc_addr(&self, i: u16) -> GuestAddress {
        GuestAddress(self.desc.0 + DESC_SIZE * u64::from(i))
    }

    fn avail_idx(&self) -> GuestAddress {
        GuestAddress(self.avail.0 + 2)
    }

    fn avail_slot(&self, idx: u16) -> GuestAddress {
        GuestAddress(self.avail.0 + RING_META + 2 * u64::from(idx % self.size))
    }

    fn used_flags(&self) -> GuestAddress {
        self.used
    }

    fn used_idx(&self) -> GuestAddress {
        GuestAddress(self.used.0 + 2)
    }

    fn used_slot(&self, idx: u16) -> GuestAddress {
        GuestAddress(self.used.0 + RING_META + USED_ELEM_SIZE * u64::from(idx % self.size))
    }
}

/// One buffer of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub addr: GuestAddress,
    pub len: u32,
    /// Device-writable (`VIRTQ_DESC_F_WRITE`).
    pub writable: bool,
}

/// A chain the device has finished with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Used {
    pub head: u16,
    /// Bytes the device wrote into the chain's writable buffers.
    pub len: u32,
}

#[derive(Debug)]
pub enum Error {
    /// Not a power of two in 1..=32768 (vhost refuses other sizes too).
    BadSize(u16),
    EmptyChain,
    /// Not enough free descriptors for the chain.
    Full {
        needed: usize,
        free: usize,
    },
    /// A readable buffer after a writable one (2.7.4.2 forbids it).
    ReadableAfterWritable,
    /// The device's used idx claims more chains than are in flight.
    UsedIdx {
        used_idx: u16,
        last_used: u16,
        in_flight: usize,
    },
    /// The device returned a head that is not in flight.
    UsedId(u32),
    Memory(GuestMemoryError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Error::BadSize(n) => write!(f, "queue size {n} is not a power of two up to 32768"),
            Error::EmptyChain => write!(f, "empty descriptor chain"),
            Error::Full { needed, free } => {
                write!(
                    f,
                    "queue full: chain needs {needed} descriptors, {free} free"
                )
            }
            Error::ReadableAfterWritable => {
                write!(f, "device-readable buffer after a device-writable one")
            }
            Error::UsedIdx {
                used_idx,
                last_used,
                in_flight,
            } => write!(
                f,
                "device used idx {used_idx} is beyond {last_used} + {in_flight} chains in flight"
            ),
            Error::UsedId(id) => write!(f, "device returned head {id}, which is not in flight"),
            Error::Memory(e) => write!(f, "virtqueue memory: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<GuestMemoryError> for Error {
    fn from(e: GuestMemoryError) -> Self {
        Error::Memory(e)
    }
}

/// A split virtqueue, driver side.
#[derive(Debug)]
pub struct SplitQueue {
    layout: Layout,
    /// Free descriptor indices; the chain an `add` builds takes from the end.
    free: Vec<u16>,
    /// The descriptors of each chain in flight, indexed by head; empty when
    /// that index heads no chain.
    chains: Vec<Vec<u16>>,
    in_flight: usize,
    /// avail idx as last published to the device.
    avail_idx: u16,
    /// Ring entries written but not yet published.
    pending: u16,
    /// The next used entry to read.
    last_used: u16,
}

impl SplitQueue {
    /// A queue with its rings at `layout`, all zeroed: empty rings, avail
    /// flags 0 (interrupts wanted).
    pub fn new(mem: &GuestMemoryMmap, layout: Layout) -> Result<SplitQueue, Error> {
        let size = layout.size;
        if size == 0 || !size.is_power_of_two() || size > MAX_SIZE {
            return Err(Error::BadSize(size));
        }
        let len = usize::try_from(layout.end.0 - layout.desc.0).unwrap_or(usize::MAX);
        mem.write_slice(&vec![0u8; len], layout.desc)?;
        Ok(SplitQueue {
            layout,
            free: (0..size).rev().collect(),
            chains: vec![Vec::new(); usize::from(size)],
            in_flight: 0,
            avail_idx: 0,
            pending: 0,
            last_used: 0,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn size(&self) -> u16 {
        self.layout.size
    }

    pub fn num_free(&self) -> usize {
        self.free.len()
    }

    /// Chains added and not yet returned by the device.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Write `bufs` as one chain and its head into the next avail slot; the
    /// device sees it after `publish`. Returns the head.
    pub fn add(&mut self, mem: &GuestMemoryMmap, bufs: &[Buffer]) -> Result<u16, Error> {
        if bufs.is_empty() {
            return Err(Error::EmptyChain);
        }
        if bufs.len() > self.free.len() {
            return Err(Error::Full {
                needed: bufs.len(),
                free: self.free.len(),
            });
        }
        if bufs.windows(2).any(|w| w[0].writable && !w[1].writable) {
            return Err(Error::ReadableAfterWritable);
        }
        let ids = self.free.split_off(self.free.len() - bufs.len());
        for (k, b) in bufs.iter().enumerate() {
            let mut flags = if b.writable { DESC_F_WRITE } else { 0 };
            let next = match ids.get(k + 1) {
                Some(&n) => {
                    flags |= DESC_F_NEXT;
                    n
                }
                None => 0,
            };
            let mut raw = [0u8; 16];
            raw[0..8].copy_from_slice(&b.addr.0.to_le_bytes());
            raw[8..12].copy_from_slice(&b.len.to_le_bytes());
            raw[12..14].copy_from_slice(&flags.to_le_bytes());
            raw[14..16].copy_from_slice(&next.to_le_bytes());
            if let Err(e) = mem.write_slice(&raw, self.layout.desc_addr(ids[k])) {
                self.free.extend_from_slice(&ids);
                return Err(e.into());
            }
        }
        let head = ids[0];
        let slot = self
            .layout
            .avail_slot(self.avail_idx.wrapping_add(self.pending));
        if let Err(e) = mem.write_slice(&head.to_le_bytes(), slot) {
            self.free.extend_from_slice(&ids);
            return Err(e.into());
        }
        self.chains[usize::from(head)] = ids;
        self.in_flight += 1;
        self.pending += 1;
        Ok(head)
    }

    /// Make the chains added since the last call visible to the device.
    /// Returns whether there were any (and so whether to kick).
    pub fn publish(&mut self, mem: &GuestMemoryMmap) -> Result<bool, Error> {
        if self.pending == 0 {
            return Ok(false);
        }
        let idx = self.avail_idx.wrapping_add(self.pending);
        // Descriptors and ring entries must be visible before the idx that
        // hands them over (2.7.13.3.1); pairs with the device's read barrier
        // after loading avail idx.
        fence(Ordering::Release);
        mem.store(idx.to_le(), self.layout.avail_idx(), Ordering::Relaxed)?;
        self.avail_idx = idx;
        self.pending = 0;
        Ok(true)
    }

    /// The next chain the device has returned, its descriptors freed.
    pub fn pop_used(&mut self, mem: &GuestMemoryMmap) -> Result<Option<Used>, Error> {
        // Acquire: the used entry (and what the device wrote into the
        // buffers) is visible once its idx is.
        let used_idx = u16::from_le(mem.load(self.layout.used_idx(), Ordering::Acquire)?);
        let ready = used_idx.wrapping_sub(self.last_used);
        if ready == 0 {
            return Ok(None);
        }
        if usize::from(ready) > self.in_flight {
            return Err(Error::UsedIdx {
                used_idx,
                last_used: self.last_used,
                in_flight: self.in_flight,
            });
        }
        let mut elem = [0u8; 8];
        mem.read_slice(&mut elem, self.layout.used_slot(self.last_used))?;
        let id = u32::from_le_bytes([elem[0], elem[1], elem[2], elem[3]]);
        let len = u32::from_le_bytes([elem[4], elem[5], elem[6], elem[7]]);
        let head = match u16::try_from(id) {
            Ok(h) if h < self.size() && !self.chains[usize::from(h)].is_empty() => h,
            _ => return Err(Error::UsedId(id)),
        };
        let ids = std::mem::take(&mut self.chains[usize::from(head)]);
        self.free.extend(ids.iter().rev());
        self.in_flight -= 1;
        self.last_used = self.last_used.wrapping_add(1);
        Ok(Some(Used { head, len }))
    }

    /// Whether the device asked not to be kicked (`VRING_USED_F_NO_NOTIFY`).
    /// Only a hint: vhost re-checks avail idx after clearing it, so skipping
    /// the kick while it is set loses no buffer.
    pub fn notify_suppressed(&self, mem: &GuestMemoryMmap) -> Result<bool, Error> {
        // Orders our avail idx store before the flags load (2.7.13.3.1 step 4).
        fence(Ordering::SeqCst);
        let flags = u16::from_le(mem.load(self.layout.used_flags(), Ordering::Relaxed)?);
        Ok(flags & USED_F_NO_NOTIFY != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use virtio_queue::{Queue, QueueT};

    const MEM_SIZE: u64 = 0x10_0000;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap()
    }

    fn split(a: GuestAddress) -> (Option<u32>, Option<u32>) {
        (Some(a.0 as u32), Some((a.0 >> 32) as u32))
    }

    /// The rust-vmm device-side queue over the same rings.
    fn device(mem: &GuestMemoryMmap, l: &Layout) -> Queue {
        let mut q = Queue::new(l.size).unwrap();
        q.set_size(l.size);
        let (lo, hi) = split(l.desc);
        q.set_desc_table_address(lo, hi);
        let (lo, hi) = split(l.avail);
        q.set_avail_ring_address(lo, hi);
        let (lo, hi) = split(l.used);
        q.set_used_ring_address(lo, hi);
        q.set_ready(true);
        assert!(q.is_valid(mem));
        q
    }

    fn buf(addr: u64, len: u32, writable: bool) -> Buffer {
        Buffer {
            addr: GuestAddress(addr),
            len,
            writable,
        }
    }

    /// What the device sees of its next chain: head and (addr, len, writable).
    fn device_pop(q: &mut Queue, mem: &GuestMemoryMmap) -> Option<(u16, Vec<Buffer>)> {
        let chain = q.pop_descriptor_chain(mem)?;
        let head = chain.head_index();
        let bufs = chain
            .map(|d| buf(d.addr().0, d.len(), d.is_write_only()))
            .collect();
        Some((head, bufs))
    }

    #[test]
    fn layout_is_aligned_and_disjoint() {
        for size in [1u16, 2, 4, 128, 256, 32768] {
            let l = Layout::new(GuestAddress(0x1003), size);
            assert_eq!(l.desc.0 % 16, 0);
            assert_eq!(l.avail.0 % 2, 0);
            assert_eq!(l.used.0 % 4, 0);
            let n = u64::from(size);
            assert!(l.desc.0 >= 0x1003);
            assert!(l.avail.0 >= l.desc.0 + 16 * n);
            assert!(l.used.0 >= l.avail.0 + 6 + 2 * n);
            assert_eq!(l.end.0, l.used.0 + 6 + 8 * n);
        }
    }

    #[test]
    fn bad_sizes_are_refused() {
        let m = mem();
        for size in [0u16, 3, 100] {
            let l = Layout::new(GuestAddress(0), size);
            assert!(matches!(SplitQueue::new(&m, l), Err(Error::BadSize(_))));
        }
    }

    #[test]
    fn chains_reach_the_device_with_their_buffers_and_flags() {
        let m = mem();
        let l = Layout::new(GuestAddress(0), 8);
        let mut q = SplitQueue::new(&m, l).unwrap();
        let mut d = device(&m, &l);
        let a = vec![buf(0x8000, 44, false), buf(0x9000, 100, false)];
        let b = vec![buf(0xa000, 4140, true)];
        let c = vec![
            buf(0xb000, 44, false),
            buf(0xc000, 10, true),
            buf(0xd000, 20, true),
        ];
        let ha = q.add(&m, &a).unwrap();
        let hb = q.add(&m, &b).unwrap();
        // Not published yet: the device sees nothing.
        assert!(device_pop(&mut d, &m).is_none());
        assert!(q.publish(&m).unwrap());
        assert!(!q.publish(&m).unwrap());
        let hc = q.add(&m, &c).unwrap();
        q.publish(&m).unwrap();
        assert_eq!(device_pop(&mut d, &m), Some((ha, a)));
        assert_eq!(device_pop(&mut d, &m), Some((hb, b)));
        assert_eq!(device_pop(&mut d, &m), Some((hc, c)));
        assert!(device_pop(&mut d, &m).is_none());
        assert_eq!(q.num_free(), 8 - 6);
        assert_eq!(q.in_flight(), 3);
    }

    #[test]
    fn used_entries_come_back_with_their_lengths() {
        let m = mem();
        let l = Layout::new(GuestAddress(0), 4);
        let mut q = SplitQueue::new(&m, l).unwrap();
        let mut d = device(&m, &l);
        let h1 = q.add(&m, &[buf(0x8000, 4140, true)]).unwrap();
        let h2 = q
            .add(&m, &[buf(0x9000, 44, false), buf(0xa000, 64, false)])
            .unwrap();
        q.publish(&m).unwrap();
        assert_eq!(q.pop_used(&m).unwrap(), None);
        let (d1, _) = device_pop(&mut d, &m).unwrap();
        let (d2, _) = device_pop(&mut d, &m).unwrap();
        // The device completes out of order.
        d.add_used(&m, d2, 0).unwrap();
        d.add_used(&m, d1, 1068).unwrap();
        assert_eq!(q.pop_used(&m).unwrap(), Some(Used { head: h2, len: 0 }));
        assert_eq!(
            q.pop_used(&m).unwrap(),
            Some(Used {
                head: h1,
                len: 1068
            })
        );
        assert_eq!(q.pop_used(&m).unwrap(), None);
        assert_eq!(q.num_free(), 4);
        assert_eq!(q.in_flight(), 0);
    }

    #[test]
    fn rings_wrap_around_over_many_rounds() {
        let m = mem();
        let l = Layout::new(GuestAddress(0), 4);
        let mut q = SplitQueue::new(&m, l).unwrap();
        let mut d = device(&m, &l);
        // 70000 chains: the 16-bit indices wrap, as do the ring slots.
        for round in 0..70_000u32 {
            let n = (round % 3 + 1) as usize;
            let bufs: Vec<Buffer> = (0..n)
                .map(|k| {
                    buf(
                        0x8000 + u64::from(round % 64) * 0x100 + k as u64,
                        8,
                        k == n - 1,
                    )
                })
                .collect();
            let h = q.add(&m, &bufs).unwrap();
            q.publish(&m).unwrap();
            let (dh, dbufs) = device_pop(&mut d, &m).unwrap();
            assert_eq!((dh, &dbufs), (h, &bufs));
            d.add_used(&m, dh, round).unwrap();
            assert_eq!(
                q.pop_used(&m).unwrap(),
                Some(Used {
                    head: h,
                    len: round
                })
            );
            assert_eq!(q.num_free(), 4);
        }
    }

    #[test]
    fn a_full_queue_refuses_and_recovers() {
        let m = mem();
        let l = Layout::new(GuestAddress(0), 4);
        let mut q = SplitQueue::new(&m, l).unwrap();
        let mut d = device(&m, &l);
        let h1 = q
            .add(&m, &[buf(0x8000, 1, false), buf(0x8001, 1, false)])
            .unwrap();
        q.add(&m, &[buf(0x8002, 1, true)]).unwrap();
        assert!(matches!(
            q.add(&m, &[buf(0x9000, 1, false), buf(0x9001, 1, false)]),
            Err(Error::Full { needed: 2, free: 1 })
        ));
        q.add(&m, &[buf(0x8003, 1, true)]).unwrap();
        assert!(matches!(
            q.add(&m, &[buf(0x9000, 1, true)]),
            Err(Error::Full { needed: 1, free: 0 })
        ));
        q.publish(&m).unwrap();
        let (dh, _) = device_pop(&mut d, &m).unwrap();
        assert_eq!(dh, h1);
        d.add_used(&m, dh, 0).unwrap();
        q.pop_used(&m).unwrap().unwrap();
        assert_eq!(q.num_free(), 2);
        q.add(&m, &[buf(0x9000, 1, false), buf(0x9001, 1, false)])
            .unwrap();
    }

    #[test]
    fn malformed_chains_are_refused_without_leaking() {
        let m = mem();
        let mut q = SplitQueue::new(&m, Layout::new(GuestAddress(0), 4)).unwrap();
        assert!(matches!(q.add(&m, &[]), Err(Error::EmptyChain)));
        assert!(matches!(
            q.add(&m, &[buf(0x8000, 1, true), buf(0x8001, 1, false)]),
            Err(Error::ReadableAfterWritable)
        ));
        // Rings outside memory are refused when the queue is made.
        let l = Layout::new(GuestAddress(MEM_SIZE - 64), 4);
        assert!(matches!(SplitQueue::new(&m, l), Err(Error::Memory(_))));
        assert_eq!(q.num_free(), 4);
        assert_eq!(q.in_flight(), 0);
    }

    #[test]
    fn a_device_returning_unknown_heads_is_an_error() {
        let m = mem();
        let l = Layout::new(GuestAddress(0), 4);
        let mut q = SplitQueue::new(&m, l).unwrap();
        let mut d = device(&m, &l);
        // Used idx moves with nothing in flight.
        d.add_used(&m, 0, 0).unwrap();
        assert!(matches!(q.pop_used(&m), Err(Error::UsedIdx { .. })));

        let mut q = SplitQueue::new(&m, l).unwrap();
        let mut d = device(&m, &l);
        let h = q.add(&m, &[buf(0x8000, 1, true)]).unwrap();
        q.publish(&m).unwrap();
        device_pop(&mut d, &m).unwrap();
        d.add_used(&m, (h + 1) % 4, 0).unwrap();
        assert!(matches!(q.pop_used(&m), Err(Error::UsedId(_))));
    }

    #[test]
    fn notify_suppression_follows_the_used_flags() {
        let m = mem();
        let l = Layout::new(GuestAddress(0), 4);
        let q = SplitQueue::new(&m, l).unwrap();
        assert!(!q.notify_suppressed(&m).unwrap());
        m.write_obj(USED_F_NO_NOTIFY.to_le(), l.used).unwrap();
        assert!(q.notify_suppressed(&m).unwrap());
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// A chain of this many buffers, the last `writable` of them writable.
        Add { n: usize, writable: usize },
        /// The device takes what is available and completes the `k`th.
        Complete(usize),
        /// The driver reaps one used entry.
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1usize..5, 0usize..5).prop_map(|(n, w)| Op::Add {
                n,
                writable: w.min(n)
            }),
            (0usize..16).prop_map(Op::Complete),
            Just(Op::Pop),
        ]
    }

    /// Every descriptor is free or in exactly one chain in flight.
    fn check_conservation(q: &SplitQueue) {
        let mut seen = vec![0u8; usize::from(q.size())];
        for &i in q.free.iter().chain(q.chains.iter().flatten()) {
            seen[usize::from(i)] += 1;
        }
        assert!(seen.iter().all(|&c| c == 1), "descriptor map {seen:?}");
        let busy = q.chains.iter().filter(|c| !c.is_empty()).count();
        assert_eq!(busy, q.in_flight());
    }

    proptest! {
        #[test]
        fn random_add_and_complete_keep_the_free_list_consistent(
            ops in proptest::collection::vec(op(), 1..200)
        ) {
            let m = mem();
            let l = Layout::new(GuestAddress(0), 8);
            let mut q = SplitQueue::new(&m, l).unwrap();
            let mut d = device(&m, &l);
            // Chains as the driver built them, by head, and the device's view.
            let mut built: Vec<Option<Vec<Buffer>>> = vec![None; 8];
            let mut at_device: Vec<u16> = Vec::new();
            let mut completed: std::collections::VecDeque<(u16, u32)> = Default::default();
            let mut next_addr = 0x8000u64;
            for op in ops {
                match op {
                    Op::Add { n, writable } => {
                        let bufs: Vec<Buffer> = (0..n)
                            .map(|k| {
                                next_addr += 0x10;
                                buf(next_addr, k as u32 + 1, k >= n - writable)
                            })
                            .collect();
                        let free = q.num_free();
                        match q.add(&m, &bufs) {
                            Ok(h) => {
                                prop_assert!(n <= free);
                                prop_assert!(built[usize::from(h)].is_none());
                                built[usize::from(h)] = Some(bufs);
                            }
                            Err(Error::Full { .. }) => prop_assert!(n > free),
                            Err(e) => prop_assert!(false, "add failed: {e}"),
                        }
                        q.publish(&m).unwrap();
                    }
                    Op::Complete(k) => {
                        while let Some((h, bufs)) = device_pop(&mut d, &m) {
                            prop_assert_eq!(Some(&bufs), built[usize::from(h)].as_ref());
                            at_device.push(h);
                        }
                        if !at_device.is_empty() {
                            let h = at_device.remove(k % at_device.len());
                            let len = u32::from(h) * 7;
                            d.add_used(&m, h, len).unwrap();
                            completed.push_back((h, len));
                        }
                    }
                    Op::Pop => {
                        let got = q.pop_used(&m).unwrap();
                        let want = completed.pop_front();
                        prop_assert_eq!(got.map(|u| (u.head, u.len)), want);
                        if let Some((h, _)) = want {
                            built[usize::from(h)] = None;
                        }
                    }
                }
                check_conservation(&q);
            }
        }
    }
}
