// SPDX-License-Identifier: GPL-2.0

//! One guest's virtio-vsock queues: transmit (guest to device), receive
//! (device to guest) and event processing against a `virtio_queue::Queue`
//! and the guest's memory. Nothing here knows about vhost-user, so the tests
//! drive it with `virtio_queue::mock` queues.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use virtio_queue::{DescriptorChain, Queue, QueueT, Writer};
use vm_memory::GuestMemoryMmap;

use crate::packet::{
    Header, Packet, EVENT_TRANSPORT_RESET, HDR_LEN, MAX_PAYLOAD, OP_RST, OP_RW, TYPE_STREAM,
};
use crate::router::{bump, lock, GuestPort, PushError, Route, Router};
use crate::warn_limited;

pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;
pub const EVENT_QUEUE: usize = 2;
pub const NUM_QUEUES: usize = 3;

pub type Mem = GuestMemoryMmap<()>;

/// A packet a port's sending side (a guest's transmit queue, a host stream)
/// has read but not yet placed in a FIFO.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// From the guest, to be routed by its destination.
    Forward(Packet),
    /// A RST the device answers the guest with, for the guest's own FIFO.
    Reply(Packet),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOutcome {
    /// Chains returned to the used ring.
    pub used: u32,
    /// Transmission stopped because a destination FIFO is full; the guest's
    /// worker is woken when there is room.
    pub paused: bool,
}

pub struct Device {
    router: Arc<Router>,
    index: usize,
    /// The packet that did not fit, held while this guest's transmit side is
    /// paused. Only the guest's own worker thread touches it.
    stalled: Mutex<Option<Outgoing>>,
}

impl Device {
    pub fn new(router: Arc<Router>, index: usize) -> Self {
        Device {
            router,
            index,
            stalled: Mutex::new(None),
        }
    }

    pub fn port(&self) -> &GuestPort {
        self.router.port(self.index)
    }

    pub fn is_paused(&self) -> bool {
        lock(&self.stalled).is_some()
    }

    /// Take packets from the guest's transmit queue and route them. Every
    /// chain taken goes back to the used ring, valid or not: a chain kept
    /// back is a hole the guest's driver never recovers from.
    pub fn process_tx(&self, queue: &mut Queue, mem: &Mem) -> TxOutcome {
        let mut out = TxOutcome::default();
        let mut stalled = lock(&self.stalled);
        if let Some(pending) = stalled.take() {
            if let Some(still) = dispatch(&self.router, self.index, pending) {
                *stalled = Some(still);
                out.paused = true;
                return out;
            }
        }
        let mut idle_rounds = 0;
        loop {
            let mut popped = 0;
            if let Err(e) = queue.disable_notification(mem) {
                warn_limited!("guest {}: TX notification: {e}", self.port().cid);
            }
            while let Some(chain) = queue.pop_descriptor_chain(mem) {
                popped += 1;
                let head = chain.head_index();
                let item = self.read_tx(chain, mem);
                self.return_chain(queue, mem, head, 0);
                out.used += 1;
                if let Some(item) = item {
                    if let Some(still) = dispatch(&self.router, self.index, item) {
                        *stalled = Some(still);
                        bump(&self.port().stats.paused, 1);
                        out.paused = true;
                        break;
                    }
                }
            }
            if out.paused || !self.rearm(queue, mem, popped, &mut idle_rounds) {
                return out;
            }
        }
    }

    /// Turn guest notifications back on and say whether to go round again:
    /// chains added while notifications were off come with no kick. A ring
    /// whose avail index `pop_descriptor_chain` rejects would report new
    /// chains forever, so two rounds in a row that pop nothing end the loop.
    fn rearm(&self, queue: &mut Queue, mem: &Mem, popped: u32, idle_rounds: &mut u32) -> bool {
        *idle_rounds = if popped == 0 { *idle_rounds + 1 } else { 0 };
        match queue.enable_notification(mem) {
            Ok(more) => more && *idle_rounds < 2,
            Err(e) => {
                warn_limited!("guest {}: queue notification: {e}", self.port().cid);
                false
            }
        }
    }

    fn return_chain(&self, queue: &mut Queue, mem: &Mem, head: u16, len: u32) {
        if let Err(e) = queue.add_used(mem, head, len) {
            warn_limited!("guest {}: add_used({head}): {e}", self.port().cid);
        }
    }

    /// Read and check one transmit chain. `None`: dropped (logged).
    fn read_tx(&self, chain: DescriptorChain<&Mem>, mem: &Mem) -> Option<Outgoing> {
        let port = self.port();
        let cid = port.cid;
        let mut reader = match chain.reader(mem) {
            Ok(r) => r,
            Err(e) => {
                warn_limited!("guest {cid}: unreadable TX chain: {e}");
                bump(&port.stats.dropped, 1);
                return None;
            }
        };
        let avail = reader.available_bytes();
        let mut raw = [0u8; HDR_LEN];
        if avail < HDR_LEN || reader.read_exact(&mut raw).is_err() {
            warn_limited!("guest {cid}: TX chain of {avail} bytes has no complete header");
            bump(&port.stats.dropped, 1);
            return None;
        }
        let hdr = Header::from_bytes(&raw);
        if hdr.src_cid != cid {
            // Never answered: a RST would go to whoever the guest pretends to be.
            warn_limited!("guest {cid}: dropped packet with src_cid {}", hdr.src_cid);
            bump(&port.stats.dropped, 1);
            return None;
        }
        let payload = avail - HDR_LEN;
        let problem = if payload > MAX_PAYLOAD {
            Some(format!("{payload} payload bytes, over {MAX_PAYLOAD}"))
        } else if hdr.len as usize != payload {
            Some(format!("len {} but {payload} payload bytes", hdr.len))
        } else if hdr.type_ != TYPE_STREAM {
            Some(format!("type {}", hdr.type_))
        } else if !hdr.op_is_known() {
            Some(format!("op {}", hdr.op))
        } else if hdr.op != OP_RW && payload != 0 {
            Some(format!("op {} with {payload} payload bytes", hdr.op))
        } else {
            None
        };
        if let Some(why) = problem {
            warn_limited!(
                "guest {cid}: bad packet {}:{} -> {}:{} ({why})",
                hdr.src_cid,
                hdr.src_port,
                hdr.dst_cid,
                hdr.dst_port
            );
            bump(&port.stats.dropped, 1);
            return rst_for(&hdr).map(Outgoing::Reply);
        }
        let mut data = vec![0u8; payload];
        if let Err(e) = reader.read_exact(&mut data) {
            warn_limited!("guest {cid}: TX payload unreadable: {e}");
            bump(&port.stats.dropped, 1);
            return None;
        }
        bump(&port.stats.tx_packets, 1);
        bump(&port.stats.tx_bytes, payload as u64);
        Some(Outgoing::Forward(Packet::new(hdr, data)))
    }

    /// Move packets from the guest's FIFO into its receive buffers, splitting
    /// a payload over as many chains as it takes. Returns the chains used.
    pub fn process_rx(&self, queue: &mut Queue, mem: &Mem) -> u32 {
        let port = self.port();
        let mut used = 0;
        let mut to_wake = Vec::new();
        let mut idle_rounds = 0;
        loop {
            let mut out_of_buffers = false;
            let mut popped = 0;
            if let Err(e) = queue.disable_notification(mem) {
                warn_limited!("guest {}: RX notification: {e}", port.cid);
            }
            to_wake.extend(port.drain(|pkt| {
                let Some(chain) = queue.pop_descriptor_chain(mem) else {
                    out_of_buffers = true;
                    return None;
                };
                popped += 1;
                let head = chain.head_index();
                let (written, whole) = match chain.writer(mem) {
                    Ok(mut w) => write_rx(port.cid, &mut w, pkt),
                    Err(e) => {
                        warn_limited!("guest {}: unwritable RX chain: {e}", port.cid);
                        (0, false)
                    }
                };
                self.return_chain(queue, mem, head, written);
                if written > 0 {
                    bump(&port.stats.rx_packets, 1);
                    bump(&port.stats.rx_bytes, u64::from(written) - HDR_LEN as u64);
                }
                Some(whole)
            }));
            used += popped;
            // Out of buffers: wait for the guest's RX kick, unless it added
            // buffers while notifications were off. With the FIFO empty,
            // new buffers can wait for new packets.
            if !self.rearm(queue, mem, popped, &mut idle_rounds) || !out_of_buffers {
                break;
            }
        }
        self.router.wake_all(&to_wake);
        used
    }

    /// Hand pending transport-reset events to the guest. Returns chains used.
    pub fn process_events(&self, queue: &mut Queue, mem: &Mem) -> u32 {
        let port = self.port();
        let mut pending = port.pending_resets();
        let mut used = 0;
        let mut delivered = 0;
        while pending > 0 {
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                break;
            };
            let head = chain.head_index();
            let ok = chain
                .writer(mem)
                .map(|mut w| w.write_all(&EVENT_TRANSPORT_RESET.to_le_bytes()).is_ok())
                .unwrap_or(false);
            used += 1;
            if ok {
                self.return_chain(queue, mem, head, 4);
                delivered += 1;
                pending -= 1;
            } else {
                warn_limited!("guest {}: event buffer too small or unwritable", port.cid);
                self.return_chain(queue, mem, head, 0);
            }
        }
        if delivered > 0 {
            port.resets_delivered(delivered);
        }
        used
    }
}

/// Place a packet from port `index` in its FIFO: a packet to forward by its
/// destination (an unreachable one answered with RST into the sender's own
/// FIFO), or such a RST. Returns it if that FIFO is full; port `index` is
/// then registered to be woken when it drains.
pub(crate) fn dispatch(router: &Router, index: usize, item: Outgoing) -> Option<Outgoing> {
    let port = router.port(index);
    match item {
        Outgoing::Forward(pkt) => match router.forward(index, pkt) {
            Route::Queued(_) => None,
            Route::Full(pkt) => Some(Outgoing::Forward(pkt)),
            Route::Unreachable(pkt) => {
                rst_for(&pkt.hdr).and_then(|rst| dispatch(router, index, Outgoing::Reply(rst)))
            }
        },
        Outgoing::Reply(rst) => match port.push(index, rst) {
            Ok(()) => {
                bump(&port.stats.rst_sent, 1);
                None
            }
            Err(PushError::Full(rst)) => Some(Outgoing::Reply(rst)),
            // The sender itself went away: nobody to answer.
            Err(PushError::Down(_)) => None,
        },
    }
}

/// The RST answering `hdr`, unless `hdr` is itself a RST (two devices, or a
/// device and a guest, must not bounce RSTs at each other).
fn rst_for(hdr: &Header) -> Option<Packet> {
    (hdr.op != OP_RST).then(|| Packet::new(hdr.rst_reply(), Vec::new()))
}

/// Write as much of `pkt` as fits in one receive chain: the header with `len`
/// set to the payload bytes in this chain, then those bytes. Returns the bytes
/// written (0: the chain is unusable and goes back empty, which Linux drops)
/// and whether the packet is now delivered whole.
fn write_rx(cid: u64, w: &mut Writer<'_, ()>, pkt: &mut Packet) -> (u32, bool) {
    let cap = w.available_bytes();
    let rest = pkt.remaining().len();
    // A header-only chain cannot carry a piece of payload, and a header with
    // len 0 on a RW packet would be a bogus empty read for the guest.
    if cap < HDR_LEN || (rest > 0 && cap == HDR_LEN) {
        warn_limited!("guest {cid}: RX buffer of {cap} bytes is too small");
        return (0, false);
    }
    let n = rest.min(cap - HDR_LEN);
    let mut hdr = pkt.hdr;
    hdr.len = n as u32;
    let payload = pkt.remaining().get(..n).unwrap_or(&[]);
    if let Err(e) = w
        .write_all(&hdr.to_bytes())
        .and_then(|()| w.write_all(payload))
    {
        warn_limited!("guest {cid}: RX write: {e}");
        return (0, false);
    }
    pkt.advance(n);
    ((HDR_LEN + n) as u32, pkt.remaining().is_empty())
}
