// SPDX-License-Identifier: GPL-2.0

//! A mock driver side for the device's queues: guest memory, three split
//! rings per guest built with `virtio_queue::mock`, and helpers to post
//! chains and read back what the device put in the used rings.

use std::sync::Arc;

use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{Address, Bytes, GuestAddress};

use xv_vsockd::device::{Device, Mem};
use xv_vsockd::packet::{Header, HDR_LEN, OP_RW, TYPE_STREAM};
use xv_vsockd::router::{GuestConfig, Router};

pub const QSIZE: u16 = 1024;
const RING_SPAN: u64 = 0x0010_0000;
const DATA_SPAN: u64 = 0x0040_0000;
pub const MEM_SIZE: usize = 0x0100_0000;

pub fn new_mem() -> Mem {
    Mem::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

/// One virtqueue as the guest driver sees it.
pub struct Ring<'a> {
    mem: &'a Mem,
    mock: MockSplitQueue<'a, Mem>,
    pub queue: Queue,
    next_desc: u16,
    next_addr: u64,
    data_end: u64,
    /// Device-writable buffers of each posted chain, by head index.
    buffers: Vec<(u16, Vec<(u64, u32)>)>,
    used_seen: u16,
}

impl<'a> Ring<'a> {
    /// Ring number `n` of this memory: ring structures at `n * RING_SPAN`,
    /// buffers in their own `DATA_SPAN` window above all rings.
    pub fn new(mem: &'a Mem, n: u64) -> Self {
        let mock = MockSplitQueue::create(mem, GuestAddress(n * RING_SPAN), QSIZE);
        let queue = mock.create_queue().unwrap();
        let next_addr = 4 * RING_SPAN + n * DATA_SPAN;
        Ring {
            mem,
            mock,
            queue,
            next_desc: 0,
            next_addr,
            data_end: next_addr + DATA_SPAN,
            buffers: Vec::new(),
            used_seen: 0,
        }
    }

    fn alloc(&mut self, len: u32) -> u64 {
        let addr = self.next_addr;
        // Leave a gap so an overrun shows up as changed bytes, not as a neighbour.
        self.next_addr += u64::from(len) + 64;
        assert!(
            self.next_addr <= self.data_end,
            "test ring out of buffer space"
        );
        addr
    }

    fn post(&mut self, descs: &[(u64, u32, bool)]) -> u16 {
        let first = self.next_desc;
        assert!(
            usize::from(first) + descs.len() <= usize::from(QSIZE),
            "test ring out of descriptors"
        );
        let raw: Vec<RawDescriptor> = descs
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, writable))| {
                let last = i + 1 == descs.len();
                let mut flags = if last { 0 } else { VRING_DESC_F_NEXT as u16 };
                if writable {
                    flags |= VRING_DESC_F_WRITE as u16;
                }
                let next = if last { 0 } else { first + i as u16 + 1 };
                RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next))
            })
            .collect();
        self.mock.add_desc_chains(&raw, first).unwrap();
        self.next_desc += descs.len() as u16;
        first
    }

    /// Post a device-readable chain: one descriptor per part.
    pub fn add_readable(&mut self, parts: &[&[u8]]) -> u16 {
        let descs: Vec<(u64, u32, bool)> = parts
            .iter()
            .map(|p| {
                let addr = self.alloc(p.len() as u32);
                self.mem.write_slice(p, GuestAddress(addr)).unwrap();
                (addr, p.len() as u32, false)
            })
            .collect();
        self.post(&descs)
    }

    /// Post a device-readable chain through an indirect descriptor table.
    pub fn add_readable_indirect(&mut self, parts: &[&[u8]]) -> u16 {
        let table = self.alloc(16 * parts.len() as u32);
        for (i, p) in parts.iter().enumerate() {
            let addr = self.alloc(p.len() as u32);
            self.mem.write_slice(p, GuestAddress(addr)).unwrap();
            let last = i + 1 == parts.len();
            let flags = if last { 0 } else { VRING_DESC_F_NEXT as u16 };
            let d = RawDescriptor::from(SplitDescriptor::new(
                addr,
                p.len() as u32,
                flags,
                if last { 0 } else { i as u16 + 1 },
            ));
            self.mem
                .write_obj(d, GuestAddress(table + 16 * i as u64))
                .unwrap();
        }
        let head = self.next_desc;
        let d = RawDescriptor::from(SplitDescriptor::new(
            table,
            16 * parts.len() as u32,
            VRING_DESC_F_INDIRECT as u16,
            0,
        ));
        self.mock.add_desc_chains(&[d], head).unwrap();
        self.next_desc += 1;
        head
    }

    /// Post a device-writable chain with descriptors of these lengths,
    /// filled with a marker byte so unwritten bytes are recognisable.
    pub fn add_writable(&mut self, lens: &[u32]) -> u16 {
        let bufs: Vec<(u64, u32)> = lens
            .iter()
            .map(|&len| {
                let addr = self.alloc(len);
                self.mem
                    .write_slice(&vec![0xee; len as usize], GuestAddress(addr))
                    .unwrap();
                (addr, len)
            })
            .collect();
        let descs: Vec<(u64, u32, bool)> = bufs.iter().map(|&(a, l)| (a, l, true)).collect();
        let head = self.post(&descs);
        self.buffers.push((head, bufs));
        head
    }

    /// Overwrite the avail ring's index, as a broken or hostile driver might.
    pub fn set_avail_idx(&self, idx: u16) {
        let addr = self.mock.avail_addr().unchecked_add(2);
        self.mem.write_obj(idx.to_le(), addr).unwrap();
    }

    /// The used ring's index, as the driver reads it.
    pub fn used_idx(&self) -> u16 {
        let addr = self.mock.used_addr().unchecked_add(2);
        u16::from_le(self.mem.read_obj::<u16>(addr).unwrap())
    }

    /// Used element `i`: (chain head, bytes written).
    pub fn used_elem(&self, i: u16) -> (u32, u32) {
        let base = self
            .mock
            .used_addr()
            .unchecked_add(4 + 8 * u64::from(i % QSIZE));
        let id = self.mem.read_obj::<u32>(base).unwrap();
        let len = self.mem.read_obj::<u32>(base.unchecked_add(4)).unwrap();
        (u32::from_le(id), u32::from_le(len))
    }

    /// The bytes the device wrote into the chain of used element `i`.
    pub fn used_bytes(&self, i: u16) -> Vec<u8> {
        let (head, len) = self.used_elem(i);
        let bufs = &self
            .buffers
            .iter()
            .find(|(h, _)| u32::from(*h) == head)
            .expect("used element names a chain we posted")
            .1;
        let mut out = Vec::new();
        let mut left = len as usize;
        for &(addr, blen) in bufs {
            let n = left.min(blen as usize);
            let mut b = vec![0u8; n];
            self.mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
            out.extend_from_slice(&b);
            left -= n;
        }
        assert_eq!(left, 0, "used len {len} exceeds the chain");
        out
    }

    /// Used elements not yet looked at, as written bytes.
    pub fn take_used(&mut self) -> Vec<Vec<u8>> {
        let end = self.used_idx();
        let mut out = Vec::new();
        while self.used_seen != end {
            out.push(self.used_bytes(self.used_seen));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        out
    }
}

/// Split what a receive chain got into header and payload, checking that
/// the header's `len` is exactly the payload in that chain.
pub fn parse_rx(bytes: &[u8]) -> (Header, Vec<u8>) {
    assert!(bytes.len() >= HDR_LEN, "RX chain shorter than a header");
    let raw: [u8; HDR_LEN] = bytes[..HDR_LEN].try_into().unwrap();
    let h = Header::from_bytes(&raw);
    assert_eq!(h.len as usize, bytes.len() - HDR_LEN, "header len vs bytes");
    (h, bytes[HDR_LEN..].to_vec())
}

/// A guest: its device and its three rings over its own memory.
pub struct TestGuest<'a> {
    pub dev: Device,
    pub rx: Ring<'a>,
    pub tx: Ring<'a>,
    pub ev: Ring<'a>,
    mem: &'a Mem,
}

impl<'a> TestGuest<'a> {
    pub fn new(mem: &'a Mem, router: &Arc<Router>, index: usize) -> Self {
        TestGuest {
            dev: Device::new(router.clone(), index),
            rx: Ring::new(mem, 0),
            tx: Ring::new(mem, 1),
            ev: Ring::new(mem, 2),
            mem,
        }
    }

    pub fn run_tx(&mut self) -> xv_vsockd::device::TxOutcome {
        self.dev.process_tx(&mut self.tx.queue, self.mem)
    }

    pub fn run_rx(&mut self) -> u32 {
        self.dev.process_rx(&mut self.rx.queue, self.mem)
    }

    pub fn run_events(&mut self) -> u32 {
        self.dev.process_events(&mut self.ev.queue, self.mem)
    }

    /// Post `n` receive chains of `size` bytes each (header included), the
    /// layout Linux 6.x uses.
    pub fn post_rx(&mut self, n: usize, size: u32) {
        for _ in 0..n {
            self.rx.add_writable(&[size]);
        }
    }

    /// Receive everything delivered so far, as (header, payload) per chain.
    pub fn received(&mut self) -> Vec<(Header, Vec<u8>)> {
        self.rx.take_used().iter().map(|b| parse_rx(b)).collect()
    }
}

pub fn router(guests: &[(u64, Option<u64>)], limit: usize) -> Arc<Router> {
    let cfg: Vec<GuestConfig> = guests
        .iter()
        .map(|&(cid, alias)| GuestConfig {
            cid,
            alias,
            host_stream: false,
        })
        .collect();
    let r = Arc::new(Router::new(&cfg, limit).unwrap());
    for i in 0..guests.len() {
        r.connect(i);
    }
    r
}

pub fn hdr(src: u64, dst: u64, op: u16, len: usize) -> Header {
    Header {
        src_cid: src,
        dst_cid: dst,
        src_port: 1234,
        dst_port: 2049,
        len: len as u32,
        type_: TYPE_STREAM,
        op,
        flags: 0,
        buf_alloc: 262_144,
        fwd_cnt: 4321,
    }
}

/// A RW packet's wire bytes: header then `payload`.
pub fn rw_bytes(src: u64, dst: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = hdr(src, dst, OP_RW, payload.len()).to_bytes().to_vec();
    b.extend_from_slice(payload);
    b
}

/// Deterministic, position-dependent payload so misplaced bytes show.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed ^ (i >> 8) as u8)
        })
        .collect()
}
