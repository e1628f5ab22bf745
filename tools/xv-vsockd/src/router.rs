// SPDX-License-Identifier: GPL-2.0

//! The shared part: one port per guest (its bounded receive FIFO, its wake-up
//! eventfd, its counters) and the CID map that routes packets between them.
//!
//! A guest given a host stream has a second port of its own: CID 2 as that
//! guest alone sees it, served by `host_stream` over a byte stream to the
//! server guest's vhost-vsock (as on a KVM host, where each VM has its own
//! vhost-vsock instance). Its FIFO holds the frames waiting for the stream,
//! and it takes part in routing, the bound and connection tracking exactly
//! as a guest does.
//!
//! Credit flow control is end to end between the guests, so the data path
//! keeps no connection state. The byte bound on each FIFO is only a safety net
//! so a guest that stops reading cannot make the daemon grow without limit.
//!
//! The router does remember which stream connections are open between guests
//! (`Conns`), learned from the REQUEST, RESPONSE, SHUTDOWN and RST packets it
//! forwards, for one purpose: when a guest goes away (its QEMU exits, or it
//! is reset as in a live migration) its peers get a RST for each connection
//! they had with it, as Linux's vhost-vsock resets the host sockets whose
//! guest is gone (`vhost_vsock_reset_orphans`). Without it a peer keeps a dead
//! connection until it next sends on it, which a server may never do.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::host_stream::{Reject, StreamStats};
use crate::packet::{
    Header, Packet, CID_ANY, CID_HOST, CID_HYPERVISOR, CID_LOCAL, OP_REQUEST, OP_RESPONSE, OP_RST,
    OP_SHUTDOWN, SHUTDOWN_RCV, SHUTDOWN_SEND,
};
use crate::warn_limited;

/// Default byte bound of each guest's receive FIFO.
pub const DEFAULT_QUEUE_LIMIT: usize = 4 << 20;

/// How many connections each guest may have tracked as the side that
/// connected; beyond it new connections are not tracked (their peers are not
/// reset if this guest goes away) and a warning is logged. A tracked
/// connection costs well under 100 bytes here and, when its guest goes away,
/// one RST queued past the peer's FIFO bound (see `GuestPort::push_reset`);
/// 8192 keeps both under a MiB per guest, far above what the workloads hold
/// (an NFS mount is one or two connections), and a guest that opens
/// connections without end cannot make the table grow without limit.
/// Charging the connecting side, not both ends, means a guest flooding a
/// server with connections uses up only its own share, not the server's.
pub const MAX_TRACKED_PER_GUEST: usize = 8192;

/// Lock a mutex even if a thread panicked while holding it: the data behind
/// our mutexes stays consistent between statements, and one broken guest
/// thread must not take the others down.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
pub struct Stats {
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub rst_sent: AtomicU64,
    pub dropped: AtomicU64,
    pub paused: AtomicU64,
    pub resets: AtomicU64,
    /// RSTs queued for this guest because the other end of one of its
    /// connections went away.
    pub orphans_reset: AtomicU64,
}

/// Add to a counter; the counters are only read for `stats`, so no ordering.
pub fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A guest's receive FIFO and who waits for room in it.
#[derive(Default)]
struct Fifo {
    /// Whether a front-end is connected; packets to a guest that is not get RST.
    connected: bool,
    packets: VecDeque<Packet>,
    /// Sum of `Packet::cost` over `packets`.
    bytes: usize,
    /// Indices of the ports whose transmit side is paused on this FIFO.
    waiters: Vec<usize>,
}

/// Transport-reset events asked for on the control socket and how many the
/// guest has been handed so far; the control thread waits on `done`.
#[derive(Default)]
struct Events {
    requested: u64,
    delivered: u64,
}

/// Why a packet could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The FIFO is at its bound; the pusher was registered as a waiter and
    /// will be woken when the FIFO has drained.
    Full(Packet),
    /// No front-end is connected to that guest.
    Down(Packet),
}

/// What is behind a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// A guest's vhost-user device, and the port of its host stream if any.
    Guest { host_stream: Option<usize> },
    /// CID 2 for the guest at port `owner` only: packets it sends to CID 2
    /// come here, and packets from here go to it alone.
    HostStream { owner: usize },
}

/// A port of the router: a guest, or a guest's host stream (`kind`).
pub struct GuestPort {
    /// The guest's CID; CID 2 for a host stream.
    pub cid: u64,
    /// The CID the other guests know this one by, if it has an alias.
    pub alias: Option<u64>,
    pub kind: PortKind,
    limit: usize,
    fifo: Mutex<Fifo>,
    /// Written whenever this guest's worker has something to do that did not
    /// come from its own virtqueues: packets queued for it, room in a FIFO it
    /// waits on, a transport reset to send.
    wake: EventFd,
    events: Mutex<Events>,
    events_done: Condvar,
    /// Whether the front-end handed us the event queue. QEMU's
    /// vhost-user-vsock does not: it keeps the event queue itself and sends
    /// the transport reset on its own after a migration.
    event_queue: AtomicBool,
    pub stats: Stats,
    /// A host stream's own counters (drops by reason, connections).
    pub stream: StreamStats,
    /// A host stream whose guest went away: its connection is to be
    /// closed (see `Router::disconnect`).
    hang_up: AtomicBool,
}

impl GuestPort {
    fn new(cid: u64, alias: Option<u64>, kind: PortKind, limit: usize) -> Result<Self, String> {
        Ok(GuestPort {
            cid,
            alias,
            kind,
            limit,
            fifo: Mutex::new(Fifo::default()),
            wake: EventFd::new(EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"))?,
            events: Mutex::new(Events::default()),
            events_done: Condvar::new(),
            event_queue: AtomicBool::new(false),
            stats: Stats::default(),
            stream: StreamStats::default(),
            hang_up: AtomicBool::new(false),
        })
    }

    pub fn wake_fd(&self) -> &EventFd {
        &self.wake
    }

    /// Wake this guest's worker. A failed eventfd write means the counter is
    /// saturated, and then the worker is awake anyway.
    pub fn wake(&self) {
        let _ = self.wake.write(1);
    }

    /// Consume pending wake-ups (the eventfd is level-triggered in epoll).
    pub fn clear_wake(&self) {
        let _ = self.wake.read();
    }

    pub fn is_connected(&self) -> bool {
        lock(&self.fifo).connected
    }

    pub fn queued_bytes(&self) -> usize {
        lock(&self.fifo).bytes
    }

    pub fn queued_packets(&self) -> usize {
        lock(&self.fifo).packets.len()
    }

    /// Queue `pkt` for this guest on behalf of port `from`. An empty FIFO
    /// takes any packet, so a bound below one packet's size cannot wedge.
    pub fn push(&self, from: usize, pkt: Packet) -> Result<(), PushError> {
        let mut fifo = lock(&self.fifo);
        if !fifo.connected {
            return Err(PushError::Down(pkt));
        }
        if fifo.bytes > 0 && fifo.bytes.saturating_add(pkt.cost()) > self.limit {
            if !fifo.waiters.contains(&from) {
                fifo.waiters.push(from);
            }
            return Err(PushError::Full(pkt));
        }
        fifo.bytes += pkt.cost();
        fifo.packets.push_back(pkt);
        drop(fifo);
        self.wake();
        Ok(())
    }

    /// Queue one of `Router::reset_orphans`'s RSTs, past the byte bound if
    /// need be. These cannot take the way of the device's other RSTs (held
    /// in the sender's transmit side until the FIFO has room): the guest they
    /// speak for is gone or being reset, so there is no sender to pause and
    /// retry, and dropping one leaves the very connection hanging that it is
    /// meant to end. The overshoot is bounded by the connection table: at
    /// most `2 * MAX_TRACKED_PER_GUEST` headers per peer for each guest that
    /// goes away. Returns whether the guest is connected to take it.
    fn push_reset(&self, pkt: Packet) -> bool {
        let mut fifo = lock(&self.fifo);
        if !fifo.connected {
            return false;
        }
        fifo.bytes += pkt.cost();
        fifo.packets.push_back(pkt);
        drop(fifo);
        self.wake();
        true
    }

    /// Let `f` deliver from the head of the FIFO. `f` gets the head packet and
    /// returns whether it was delivered whole (`None` to stop: no more
    /// receive buffers). Returns the ports to wake: those waiting for room,
    /// once the FIFO has drained to half its bound, so a paused sender is not
    /// bounced awake for every small packet.
    pub fn drain(&self, mut f: impl FnMut(&mut Packet) -> Option<bool>) -> Vec<usize> {
        let mut fifo = lock(&self.fifo);
        while let Some(head) = fifo.packets.front_mut() {
            let before = head.cost();
            let Some(whole) = f(head) else { break };
            let after = if whole { 0 } else { head.cost() };
            if whole {
                fifo.packets.pop_front();
            }
            fifo.bytes = fifo.bytes.saturating_sub(before - after);
        }
        if fifo.bytes <= self.limit / 2 {
            std::mem::take(&mut fifo.waiters)
        } else {
            Vec::new()
        }
    }

    /// Queue a transport-reset event and wait up to `timeout` for the guest
    /// to take it. Returns whether it was delivered; if not, it stays queued.
    pub fn request_reset(&self, timeout: Duration) -> bool {
        let mut ev = lock(&self.events);
        ev.requested += 1;
        let target = ev.requested;
        drop(ev);
        self.wake();
        let ev = lock(&self.events);
        let (ev, _) = self
            .events_done
            .wait_timeout_while(ev, timeout, |ev| ev.delivered < target)
            .unwrap_or_else(|e| e.into_inner());
        ev.delivered >= target
    }

    pub fn has_event_queue(&self) -> bool {
        self.event_queue.load(Ordering::Relaxed)
    }

    pub fn set_event_queue(&self, up: bool) {
        self.event_queue.store(up, Ordering::Relaxed);
    }

    /// How many transport-reset events are waiting for an event buffer.
    pub fn pending_resets(&self) -> u64 {
        let ev = lock(&self.events);
        ev.requested - ev.delivered
    }

    /// Record that `n` pending reset events were handed to the guest.
    pub fn resets_delivered(&self, n: u64) {
        let mut ev = lock(&self.events);
        ev.delivered = (ev.delivered + n).min(ev.requested);
        drop(ev);
        bump(&self.stats.resets, n);
        self.events_done.notify_all();
    }
}

/// What became of a packet handed to the router.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Queued for the guest at this port index.
    Queued(usize),
    /// The destination's FIFO is full; the packet comes back (unchanged, as
    /// the sender wrote it) to be retried when the sender is woken.
    Full(Packet),
    /// No such destination or it is not connected: the caller answers RST.
    Unreachable(Packet),
}

/// One end of a connection: a guest (its port index) and its vsock port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct End {
    guest: usize,
    port: u32,
}

/// A tracked connection.
struct Conn {
    /// The guest that connected (sent the REQUEST), charged for the entry
    /// against `MAX_TRACKED_PER_GUEST`.
    client: usize,
    /// The SHUTDOWN flags each end (in key order) has sent so far; Linux
    /// accumulates them the same way (`peer_shutdown`).
    shutdown: [u32; 2],
}

/// The stream connections between guests, keyed by their two ends, lower one
/// first, so a packet finds its connection whichever way it goes. Learned
/// from forwarded packets, following Linux's virtio transport
/// (net/vmw_vsock/virtio_transport_common.c):
///
/// * a REQUEST or RESPONSE makes a connection live. One that never comes up
///   is forgotten too: a refused REQUEST is answered with RST, and so is a
///   RESPONSE reaching a connector that gave up.
/// * RST, either way, ends it.
/// * a SHUTDOWN ends it once one end has sent both flags. A closing socket
///   sends SHUTDOWN with both flags (`virtio_transport_close`) and waits for
///   the RST the peer answers with (`virtio_transport_recv_connected`), or
///   sends one itself after 8 s. The peer has already taken its socket out
///   of the connected table, and the closing one has its close timeout
///   pending, which `vhost_vsock_reset_orphans` leaves alone too (and after
///   shutdown(SHUT_RDWR) without close the socket can neither read nor write
///   anyway). So a RST from us there would change nothing.
///
/// One map for all guests: a packet touches both ends' entries under one
/// lock, and only `reset_orphans` and `stats` need a guest's whole set, rarely
/// enough to scan for it.
struct Conns {
    live: HashMap<(End, End), Conn>,
    /// Connections each guest is charged for (see `Conn::client`).
    charged: Vec<usize>,
}

/// The flags with which a SHUTDOWN ends a connection.
const SHUTDOWN_BOTH: u32 = SHUTDOWN_RCV | SHUTDOWN_SEND;

impl Conns {
    /// The key of the connection between `a` and `b`, and which end of it
    /// `a` is.
    fn key(a: End, b: End) -> ((End, End), usize) {
        if a <= b {
            ((a, b), 0)
        } else {
            ((b, a), 1)
        }
    }

    /// Learn from a packet `from` sent `to`, now queued. `Err(guest)`: a new
    /// connection was not tracked because `guest`, its connecting side, has
    /// its share of the table.
    fn learn(&mut self, from: End, to: End, hdr: &Header) -> Result<(), usize> {
        let (key, side) = Conns::key(from, to);
        match hdr.op {
            OP_REQUEST | OP_RESPONSE => {
                if let Some(conn) = self.live.get_mut(&key) {
                    // The RESPONSE to a tracked REQUEST, or a REQUEST reusing
                    // the ports of a connection whose end we did not see.
                    conn.shutdown = [0; 2];
                    return Ok(());
                }
                let client = if hdr.op == OP_REQUEST {
                    from.guest
                } else {
                    to.guest
                };
                if self.charged[client] >= MAX_TRACKED_PER_GUEST {
                    return Err(client);
                }
                self.charged[client] += 1;
                self.live.insert(
                    key,
                    Conn {
                        client,
                        shutdown: [0; 2],
                    },
                );
            }
            OP_RST => self.forget(&key),
            OP_SHUTDOWN => {
                if let Some(conn) = self.live.get_mut(&key) {
                    conn.shutdown[side] |= hdr.flags & SHUTDOWN_BOTH;
                    if conn.shutdown[side] == SHUTDOWN_BOTH {
                        self.forget(&key);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn forget(&mut self, key: &(End, End)) {
        if let Some(conn) = self.live.remove(key) {
            self.charged[conn.client] -= 1;
        }
    }

    /// Forget every connection of `guest`. Returns them as (the other end,
    /// the guest's end), sorted so the peers get their RSTs in a stable order.
    fn take_guest(&mut self, guest: usize) -> Vec<(End, End)> {
        let mut gone = Vec::new();
        let charged = &mut self.charged;
        self.live.retain(|&(a, b), conn| {
            if a.guest != guest && b.guest != guest {
                return true;
            }
            charged[conn.client] -= 1;
            gone.push(if a.guest == guest { (b, a) } else { (a, b) });
            false
        });
        gone.sort_unstable();
        gone
    }
}

/// Whether forwarding this packet can change the connection table. The
/// type needs no check: the device forwards nothing but STREAM.
fn changes_connections(hdr: &Header) -> bool {
    matches!(hdr.op, OP_REQUEST | OP_RESPONSE | OP_RST | OP_SHUTDOWN)
}

pub struct Router {
    ports: Vec<GuestPort>,
    by_cid: HashMap<u64, usize>,
    by_alias: HashMap<u64, usize>,
    /// Taken before any FIFO lock, never after one.
    conns: Mutex<Conns>,
}

/// A guest as configured on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestConfig {
    pub cid: u64,
    pub alias: Option<u64>,
    /// Whether CID 2 is, for this guest, a host stream.
    pub host_stream: bool,
}

pub fn cid_is_reserved(cid: u64) -> bool {
    cid == CID_HYPERVISOR || cid == CID_LOCAL || cid >= CID_ANY
}

impl Router {
    /// Build the router. The caller (the CLI) has checked the CIDs; this
    /// checks again so the library cannot be handed an ambiguous map.
    pub fn new(guests: &[GuestConfig], limit: usize) -> Result<Router, String> {
        let mut by_cid = HashMap::new();
        let mut by_alias = HashMap::new();
        let mut ports = Vec::new();
        for (index, g) in guests.iter().enumerate() {
            if cid_is_reserved(g.cid) || g.cid == CID_HOST {
                return Err(format!("CID {} cannot be a guest's", g.cid));
            }
            if by_cid.insert(g.cid, index).is_some() {
                return Err(format!("CID {} given twice", g.cid));
            }
            if let Some(a) = g.alias {
                if cid_is_reserved(a) {
                    return Err(format!("CID {a} cannot be an alias"));
                }
                if by_alias.insert(a, index).is_some() {
                    return Err(format!("alias {a} given twice"));
                }
            }
            if g.host_stream && g.alias.is_some() {
                // Its packets would reach the stream with the alias as
                // source, which the other end's vhost would not take.
                return Err(format!(
                    "guest {} has both an alias and a host stream",
                    g.cid
                ));
            }
            let kind = PortKind::Guest { host_stream: None };
            ports.push(GuestPort::new(g.cid, g.alias, kind, limit)?);
        }
        if let Some(a) = by_alias.keys().find(|a| by_cid.contains_key(*a)) {
            return Err(format!("alias {a} is also a guest's CID"));
        }
        for (owner, g) in guests.iter().enumerate() {
            if !g.host_stream {
                continue;
            }
            if let Some(&aliased) = by_alias.get(&CID_HOST) {
                return Err(format!(
                    "guest {} has a host stream, and guest {} is CID 2 by alias: \
                     CID 2 must be one or the other",
                    g.cid, guests[aliased].cid
                ));
            }
            let index = ports.len();
            ports[owner].kind = PortKind::Guest {
                host_stream: Some(index),
            };
            let kind = PortKind::HostStream { owner };
            ports.push(GuestPort::new(CID_HOST, None, kind, limit)?);
        }
        let conns = Mutex::new(Conns {
            live: HashMap::new(),
            charged: vec![0; ports.len()],
        });
        Ok(Router {
            ports,
            by_cid,
            by_alias,
            conns,
        })
    }

    pub fn ports(&self) -> &[GuestPort] {
        &self.ports
    }

    pub fn port(&self, index: usize) -> &GuestPort {
        &self.ports[index]
    }

    /// The host stream port of the guest at `owner`, if it has one.
    pub fn host_stream(&self, owner: usize) -> Option<usize> {
        match self.ports[owner].kind {
            PortKind::Guest { host_stream } => host_stream,
            PortKind::HostStream { .. } => None,
        }
    }

    /// Where a packet port `from` sends to `dst_cid` goes: a host stream
    /// reaches its owner only, and its owner reaches it as CID 2; the rest
    /// goes by the CID map.
    fn route_to(&self, from: usize, dst_cid: u64) -> Option<usize> {
        match self.ports[from].kind {
            PortKind::HostStream { owner } => (dst_cid == self.ports[owner].cid).then_some(owner),
            PortKind::Guest {
                host_stream: Some(h),
            } if dst_cid == CID_HOST => Some(h),
            PortKind::Guest { .. } => self.lookup(dst_cid),
        }
    }

    /// The port a destination CID names. An aliased guest is reachable only
    /// by its alias: its replies carry the alias as source, so a connection
    /// made to its real CID could never match them.
    pub fn lookup(&self, cid: u64) -> Option<usize> {
        if let Some(&i) = self.by_alias.get(&cid) {
            return Some(i);
        }
        self.by_cid
            .get(&cid)
            .copied()
            .filter(|&i| self.ports[i].alias.is_none())
    }

    /// The CID the other guests know the guest at `index` by.
    fn visible_cid(&self, index: usize) -> u64 {
        let port = &self.ports[index];
        port.alias.unwrap_or(port.cid)
    }

    /// The port for a CID as the control socket names it: real CID or alias.
    pub fn find(&self, cid: u64) -> Option<usize> {
        self.by_alias
            .get(&cid)
            .or_else(|| self.by_cid.get(&cid))
            .copied()
    }

    /// Route a validated packet from port `from`. The destination sees its
    /// own CID as `dst_cid` (2 for a host stream) and the sender's alias (if
    /// any) as `src_cid`.
    /// Packets that open or close a connection update the connection table
    /// once they are queued.
    pub fn forward(&self, from: usize, pkt: Packet) -> Route {
        let Some(to) = self.route_to(from, pkt.hdr.dst_cid) else {
            return Route::Unreachable(pkt);
        };
        let original = pkt.hdr;
        // Held across the push, so the table changes in the order packets
        // are queued: the RST answering a REQUEST cannot be forwarded before
        // the REQUEST's entry exists (and leave it behind), and
        // `reset_orphans` sees every connection a queued packet opened.
        let mut conns = changes_connections(&original).then(|| lock(&self.conns));
        let mut pkt = pkt;
        pkt.hdr.dst_cid = self.ports[to].cid;
        if let Some(a) = self.ports[from].alias {
            pkt.hdr.src_cid = a;
        }
        match self.ports[to].push(from, pkt) {
            Ok(()) => {
                if let Some(conns) = conns.as_mut() {
                    self.learn(conns, from, to, &original);
                }
                Route::Queued(to)
            }
            Err(PushError::Full(mut p)) => {
                p.hdr = original;
                Route::Full(p)
            }
            Err(PushError::Down(mut p)) => {
                p.hdr = original;
                Route::Unreachable(p)
            }
        }
    }

    /// Update the connection table for a packet `from` sent `to` (`hdr` as
    /// the sender wrote it).
    fn learn(&self, conns: &mut Conns, from: usize, to: usize, hdr: &Header) {
        // A guest's worker may still forward what it read before its
        // front-end went away after `disconnect` has reset its peers; a
        // connection learned now would stay behind, so ignore the packet.
        if !self.ports[from].is_connected() {
            return;
        }
        let ends = (
            End {
                guest: from,
                port: hdr.src_port,
            },
            End {
                guest: to,
                port: hdr.dst_port,
            },
        );
        if let Err(client) = conns.learn(ends.0, ends.1, hdr) {
            warn_limited!(
                "guest {}: {MAX_TRACKED_PER_GUEST} connections tracked, not tracking \
                 {}:{} -> {}:{}; its peer will not be reset if the guest goes away",
                self.ports[client].cid,
                hdr.src_cid,
                hdr.src_port,
                hdr.dst_cid,
                hdr.dst_port
            );
        }
    }

    /// Tell the peers of the guest at `index` that its connections are gone,
    /// as Linux's `vhost_vsock_reset_orphans` does for the host sockets of a
    /// guest whose vhost device is released: a RST for each connection
    /// tracked with it, from the address the peer knows (the guest's alias if
    /// it has one), and the connections forgotten. Returns the RSTs queued.
    pub fn reset_orphans(&self, index: usize) -> u64 {
        let mut conns = lock(&self.conns);
        let src_cid = self.visible_cid(index);
        let mut sent = 0;
        for (peer, own) in conns.take_guest(index) {
            // Both ends in this guest: only a guest that bypasses its
            // loopback transport makes these, and it loses them itself.
            if peer.guest == index {
                continue;
            }
            let to = &self.ports[peer.guest];
            // The guest's own host stream hangs up instead (`disconnect`).
            if matches!(to.kind, PortKind::HostStream { .. }) {
                continue;
            }
            let rst = Header::rst((src_cid, own.port), (to.cid, peer.port));
            if to.push_reset(Packet::new(rst, Vec::new())) {
                bump(&to.stats.orphans_reset, 1);
                sent += 1;
            }
        }
        drop(conns);
        if sent > 0 {
            log::info!(
                "guest {}: reset {sent} connection(s) of its peers",
                self.ports[index].cid
            );
        }
        sent
    }

    /// How many tracked connections each guest takes part in.
    pub fn tracked_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.ports.len()];
        for (a, b) in lock(&self.conns).live.keys() {
            counts[a.guest] += 1;
            if b.guest != a.guest {
                counts[b.guest] += 1;
            }
        }
        counts
    }

    pub fn wake_all(&self, indices: &[usize]) {
        for &i in indices {
            if let Some(p) = self.ports.get(i) {
                p.wake();
            }
        }
    }

    /// A front-end connected to the guest at `index` (for a host stream: a
    /// peer connected to its socket).
    pub fn connect(&self, index: usize) {
        lock(&self.ports[index].fifo).connected = true;
    }

    /// The guest's front-end (or the host stream's peer) went away: drop
    /// what was queued for it (its connections are gone with it), wake the
    /// senders that waited for room, so their packets now get RST instead
    /// of waiting forever, and reset the peers' ends of its connections.
    /// Reset events not yet delivered are moot too.
    pub fn disconnect(&self, index: usize) {
        let port = &self.ports[index];
        let mut fifo = lock(&port.fifo);
        fifo.connected = false;
        fifo.packets.clear();
        fifo.bytes = 0;
        let waiters = std::mem::take(&mut fifo.waiters);
        drop(fifo);
        self.wake_all(&waiters);
        // After `connected` is cleared: from here on `learn` ignores this
        // guest's packets, so no connection of it is left behind.
        self.reset_orphans(index);
        let mut ev = lock(&port.events);
        ev.delivered = ev.requested;
        drop(ev);
        port.set_event_queue(false);
        port.events_done.notify_all();
        // On a KVM host a VM that goes away closes its vhost-vsock
        // instance, and the host kernel resets the VM's connections itself
        // (vhost_vsock_reset_orphans). So the guest's host stream is closed,
        // which ends the bridge playing the guest there and so closes its
        // /dev/vhost-vsock, rather than carrying RSTs in the guest's name.
        if let PortKind::Guest {
            host_stream: Some(stream),
        } = port.kind
        {
            self.ports[stream].hang_up.store(true, Ordering::Relaxed);
            self.ports[stream].wake();
        }
    }

    /// Whether the host stream at `index` is to close its connection
    /// because its guest went away; clears the request.
    pub fn take_hang_up(&self, index: usize) -> bool {
        self.ports[index].hang_up.swap(false, Ordering::Relaxed)
    }

    /// One line of counters for the control socket: the guests', then the
    /// host streams'. A host stream's `to_stream` counts what it wrote to
    /// the stream (its FIFO's side), `from_stream` the valid frames it read;
    /// bytes are payload bytes, as for the guests.
    pub fn stats_line(&self) -> String {
        let mut line = String::new();
        let tracked = self.tracked_counts();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (i, p) in self.ports.iter().enumerate() {
            let s = &p.stats;
            let fifo = lock(&p.fifo);
            let sep = if i == 0 { "" } else { "; " };
            let (up, pkts, bytes) = (u8::from(fifo.connected), fifo.packets.len(), fifo.bytes);
            drop(fifo);
            let _ = match p.kind {
                PortKind::Guest { .. } => write!(
                    line,
                    "{sep}cid={} alias={} up={up} queued_pkts={pkts} queued_bytes={bytes} \
                     tx_pkts={} tx_bytes={} rx_pkts={} rx_bytes={} rst={} dropped={} \
                     paused={} resets={} orphans_reset={} conns={}",
                    p.cid,
                    p.alias.map_or_else(|| "-".to_string(), |a| a.to_string()),
                    get(&s.tx_packets),
                    get(&s.tx_bytes),
                    get(&s.rx_packets),
                    get(&s.rx_bytes),
                    get(&s.rst_sent),
                    get(&s.dropped),
                    get(&s.paused),
                    get(&s.resets),
                    get(&s.orphans_reset),
                    tracked[i],
                ),
                PortKind::HostStream { owner } => write!(
                    line,
                    "{sep}host_stream={} up={up} queued_pkts={pkts} queued_bytes={bytes} \
                     to_stream_frames={} to_stream_bytes={} from_stream_frames={} \
                     from_stream_bytes={} rst={} paused={} accepted={} dropped={}{} \
                     orphans_reset={} conns={}",
                    self.ports[owner].cid,
                    get(&s.rx_packets),
                    get(&s.rx_bytes),
                    get(&s.tx_packets),
                    get(&s.tx_bytes),
                    get(&s.rst_sent),
                    get(&s.paused),
                    get(&p.stream.accepted),
                    p.stream.dropped_total(),
                    Reject::ALL
                        .iter()
                        .map(|&r| format!(" dropped_{}={}", r.name(), p.stream.dropped(r)))
                        .collect::<String>(),
                    get(&s.orphans_reset),
                    tracked[i],
                ),
            };
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{HDR_LEN, OP_RW, TYPE_STREAM};

    fn guests(list: &[(u64, Option<u64>)]) -> Vec<GuestConfig> {
        list.iter()
            .map(|&(cid, alias)| GuestConfig {
                cid,
                alias,
                host_stream: false,
            })
            .collect()
    }

    /// Guests 3, with a host stream, and 4, without; all ports connected.
    /// Ports: 0 is guest 3, 1 guest 4, 2 guest 3's host stream.
    fn with_host_stream(limit: usize) -> Router {
        let mut g = guests(&[(3, None), (4, None)]);
        g[0].host_stream = true;
        let r = Router::new(&g, limit).unwrap();
        for i in 0..3 {
            r.connect(i);
        }
        r
    }

    fn drain_headers(r: &Router, port: usize) -> Vec<Header> {
        let mut got = Vec::new();
        r.port(port).drain(|p| {
            got.push(p.hdr);
            Some(true)
        });
        got
    }

    #[test]
    fn host_stream_is_cid_2_for_its_owner_only() {
        let r = with_host_stream(1 << 20);
        assert_eq!(r.host_stream(0), Some(2));
        assert_eq!(r.host_stream(1), None);
        assert_eq!(r.port(2).kind, PortKind::HostStream { owner: 0 });
        assert_eq!(r.port(2).cid, CID_HOST);
        // Guest to stream, unchanged.
        let sent = rw(3, 2, 10);
        assert_eq!(r.forward(0, sent.clone()), Route::Queued(2));
        assert_eq!(drain_headers(&r, 2), [sent.hdr]);
        // Stream to its guest, as from CID 2.
        let back = rw(2, 3, 10);
        assert_eq!(r.forward(2, back.clone()), Route::Queued(0));
        assert_eq!(drain_headers(&r, 0), [back.hdr]);
        // Nobody else: not the other guest, nor it to CID 2.
        assert!(matches!(r.forward(2, rw(2, 4, 1)), Route::Unreachable(_)));
        assert!(matches!(r.forward(1, rw(4, 2, 1)), Route::Unreachable(_)));
        assert_eq!(r.lookup(CID_HOST), None);
        // The guests still reach each other.
        assert_eq!(r.forward(0, rw(3, 4, 1)), Route::Queued(1));
    }

    #[test]
    fn host_stream_is_unreachable_while_disconnected() {
        let r = with_host_stream(1 << 20);
        r.disconnect(2);
        assert!(matches!(r.forward(0, rw(3, 2, 1)), Route::Unreachable(_)));
        r.connect(2);
        assert_eq!(r.forward(0, rw(3, 2, 1)), Route::Queued(2));
        r.disconnect(2);
        assert_eq!(r.port(2).queued_packets(), 0);
        assert!(matches!(r.forward(0, rw(3, 2, 1)), Route::Unreachable(_)));
    }

    #[test]
    fn stream_or_guest_going_away_resets_the_other_side() {
        let r = with_host_stream(1 << 20);
        // 3:1000 -> 2:2049 by the guest, 2:700 -> 3:5000 by the server.
        assert_eq!(
            r.forward(0, ctl((3, 1000), (2, 2049), OP_REQUEST)),
            Route::Queued(2)
        );
        assert_eq!(
            r.forward(2, ctl((2, 2049), (3, 1000), OP_RESPONSE)),
            Route::Queued(0)
        );
        assert_eq!(
            r.forward(2, ctl((2, 700), (3, 5000), OP_REQUEST)),
            Route::Queued(0)
        );
        assert_eq!(r.tracked_counts(), [2, 0, 2]);
        drain_headers(&r, 0);
        drain_headers(&r, 2);
        // The server's connection ends: the guest's connections get RST.
        r.disconnect(2);
        assert_eq!(
            drain_headers(&r, 0),
            [
                Header::rst((2, 2049), (3, 1000)),
                Header::rst((2, 700), (3, 5000))
            ]
        );
        assert_eq!(r.port(0).stats.orphans_reset.load(Ordering::Relaxed), 2);
        assert_eq!(r.tracked_counts(), [0, 0, 0]);
        // The guest goes away: no RST in its name down the stream, which is
        // to hang up instead (its end closes the server's vhost-vsock).
        r.connect(2);
        assert!(!r.take_hang_up(2));
        assert_eq!(
            r.forward(0, ctl((3, 1001), (2, 2049), OP_REQUEST)),
            Route::Queued(2)
        );
        drain_headers(&r, 2);
        r.disconnect(0);
        assert_eq!(drain_headers(&r, 2), []);
        assert_eq!(r.tracked_counts(), [0, 0, 0]);
        assert!(r.take_hang_up(2));
        assert!(!r.take_hang_up(2));
    }

    #[test]
    fn host_stream_fifos_pause_and_resume_both_ways() {
        let limit = 2 * (HDR_LEN + 100);
        let r = with_host_stream(limit);
        // Guest to stream: the guest waits on the stream's FIFO.
        for _ in 0..2 {
            assert_eq!(r.forward(0, rw(3, 2, 100)), Route::Queued(2));
        }
        assert!(matches!(r.forward(0, rw(3, 2, 100)), Route::Full(_)));
        assert_eq!(r.port(2).drain(|_| Some(true)), vec![0]);
        assert_eq!(r.forward(0, rw(3, 2, 100)), Route::Queued(2));
        // Stream to guest: the stream waits on the guest's FIFO.
        for _ in 0..2 {
            assert_eq!(r.forward(2, rw(2, 3, 100)), Route::Queued(0));
        }
        match r.forward(2, rw(2, 3, 100)) {
            Route::Full(p) => assert_eq!(p.hdr, rw(2, 3, 100).hdr),
            other => panic!("expected Full, got {other:?}"),
        }
        r.port(2).clear_wake();
        let woken = r.port(0).drain(|_| Some(true));
        assert_eq!(woken, vec![2]);
        r.wake_all(&woken);
        assert_eq!(r.port(2).wake_fd().read().unwrap(), 1);
        assert_eq!(r.forward(2, rw(2, 3, 100)), Route::Queued(0));
    }

    #[test]
    fn host_stream_excludes_cid_2_by_alias() {
        let mut g = guests(&[(3, None), (4, Some(2))]);
        g[0].host_stream = true;
        let e = Router::new(&g, 1024).err().unwrap();
        assert!(
            e.contains("guest 3 has a host stream, and guest 4 is CID 2"),
            "{e}"
        );
        let mut g = guests(&[(3, Some(7))]);
        g[0].host_stream = true;
        let e = Router::new(&g, 1024).err().unwrap();
        assert_eq!(e, "guest 3 has both an alias and a host stream");
    }

    fn rw(src: u64, dst: u64, n: usize) -> Packet {
        Packet::new(
            Header {
                src_cid: src,
                dst_cid: dst,
                src_port: 1,
                dst_port: 2,
                type_: TYPE_STREAM,
                op: OP_RW,
                ..Header::default()
            },
            vec![0xab; n],
        )
    }

    #[test]
    fn rejects_ambiguous_maps() {
        assert!(Router::new(&guests(&[(3, None), (3, None)]), 1024).is_err());
        assert!(Router::new(&guests(&[(1, None)]), 1024).is_err());
        assert!(Router::new(&guests(&[(2, None)]), 1024).is_err());
        assert!(Router::new(&guests(&[(CID_ANY, None)]), 1024).is_err());
        assert!(Router::new(&guests(&[(3, Some(4)), (4, None)]), 1024).is_err());
        assert!(Router::new(&guests(&[(3, Some(2)), (4, Some(2))]), 1024).is_err());
        assert!(Router::new(&guests(&[(3, Some(0))]), 1024).is_err());
        assert!(Router::new(&guests(&[(3, Some(2)), (4, None)]), 1024).is_ok());
    }

    #[test]
    fn aliased_guest_is_reachable_only_by_alias() {
        let r = Router::new(&guests(&[(3, None), (4, Some(2))]), 1024).unwrap();
        assert_eq!(r.lookup(2), Some(1));
        assert_eq!(r.lookup(4), None);
        assert_eq!(r.lookup(3), Some(0));
        assert_eq!(r.find(4), Some(1));
        assert_eq!(r.find(2), Some(1));
    }

    #[test]
    fn full_fifo_registers_waiter_and_wakes_it_after_draining() {
        let limit = 3 * (HDR_LEN + 100);
        let r = Router::new(&guests(&[(3, None), (4, None)]), limit).unwrap();
        r.connect(0);
        r.connect(1);
        for _ in 0..3 {
            assert_eq!(r.forward(0, rw(3, 4, 100)), Route::Queued(1));
        }
        match r.forward(0, rw(3, 4, 100)) {
            Route::Full(p) => assert_eq!(p.hdr.dst_cid, 4),
            other => panic!("expected Full, got {other:?}"),
        }
        r.port(0).clear_wake();
        // Draining one packet leaves 2/3 of the bound: no wake yet.
        let mut n = 0;
        let woken = r.port(1).drain(|_| {
            n += 1;
            (n <= 1).then_some(true)
        });
        assert!(woken.is_empty());
        let woken = r.port(1).drain(|_| Some(true));
        assert_eq!(woken, vec![0]);
        assert_eq!(r.port(1).queued_bytes(), 0);
    }

    #[test]
    fn empty_fifo_takes_a_packet_larger_than_the_bound() {
        let r = Router::new(&guests(&[(3, None), (4, None)]), 10).unwrap();
        r.connect(1);
        assert_eq!(r.forward(0, rw(3, 4, 1000)), Route::Queued(1));
        assert!(matches!(r.forward(0, rw(3, 4, 1)), Route::Full(_)));
    }

    #[test]
    fn disconnect_empties_and_wakes_waiters() {
        let r = Router::new(&guests(&[(3, None), (4, None)]), 10).unwrap();
        r.connect(0);
        r.connect(1);
        assert_eq!(r.forward(0, rw(3, 4, 50)), Route::Queued(1));
        assert!(matches!(r.forward(0, rw(3, 4, 50)), Route::Full(_)));
        r.port(0).clear_wake();
        r.disconnect(1);
        assert_eq!(r.port(0).wake_fd().read().unwrap(), 1);
        assert_eq!(r.port(1).queued_packets(), 0);
        assert!(matches!(r.forward(0, rw(3, 4, 1)), Route::Unreachable(_)));
    }

    /// A control packet of a connection between `src:sport` and `dst:dport`.
    fn ctl(src: (u64, u32), dst: (u64, u32), op: u16) -> Packet {
        Packet::new(
            Header {
                op,
                buf_alloc: 4096,
                ..Header::rst(src, dst)
            },
            Vec::new(),
        )
    }

    #[test]
    fn tracking_is_capped_per_connecting_guest() {
        let r = Router::new(&guests(&[(3, None), (4, Some(2)), (5, None)]), 1 << 20).unwrap();
        for i in 0..3 {
            r.connect(i);
        }
        let cap = MAX_TRACKED_PER_GUEST as u32;
        for port in 0..cap {
            assert_eq!(
                r.forward(0, ctl((3, port), (2, 2049), OP_REQUEST)),
                Route::Queued(1)
            );
        }
        assert_eq!(r.tracked_counts(), [cap as usize, cap as usize, 0]);
        // Guest 3 has its share: its next connection is forwarded, not tracked.
        let extra = ctl((3, cap), (2, 2049), OP_REQUEST);
        assert_eq!(r.forward(0, extra.clone()), Route::Queued(1));
        // Nor when 3 is the connecting side of a RESPONSE.
        assert_eq!(
            r.forward(1, ctl((4, 2049), (3, cap + 1), OP_RESPONSE)),
            Route::Queued(0)
        );
        assert_eq!(r.tracked_counts(), [cap as usize, cap as usize, 0]);
        // The server's connections from others are not limited by 3's.
        assert_eq!(
            r.forward(2, ctl((5, 1), (2, 2049), OP_REQUEST)),
            Route::Queued(1)
        );
        assert_eq!(r.tracked_counts(), [cap as usize, cap as usize + 1, 1]);
        // One of 3's ends, and its share has room again.
        assert_eq!(
            r.forward(1, ctl((4, 2049), (3, 0), OP_RST)),
            Route::Queued(0)
        );
        assert_eq!(r.forward(0, extra), Route::Queued(1));
        assert_eq!(r.tracked_counts(), [cap as usize, cap as usize + 1, 1]);
    }

    #[test]
    fn packets_of_a_disconnected_guest_open_no_connection() {
        let r = Router::new(&guests(&[(3, None), (4, None)]), 1 << 20).unwrap();
        r.connect(0);
        r.connect(1);
        r.disconnect(0);
        // Its worker may still be forwarding what it read before.
        assert_eq!(
            r.forward(0, ctl((3, 1), (4, 2), OP_REQUEST)),
            Route::Queued(1)
        );
        assert_eq!(r.tracked_counts(), [0, 0]);
        r.connect(0);
        assert_eq!(
            r.forward(0, ctl((3, 1), (4, 2), OP_REQUEST)),
            Route::Queued(1)
        );
        assert_eq!(r.tracked_counts(), [1, 1]);
    }

    #[test]
    fn stats_line_is_one_line() {
        let r = Router::new(&guests(&[(3, None), (4, Some(2))]), 10).unwrap();
        let line = r.stats_line();
        assert!(!line.contains('\n'));
        assert!(line.starts_with("cid=3 alias=- up=0 "), "{line}");
        assert!(line.contains("; cid=4 alias=2 up=0 "), "{line}");
        assert!(
            line.ends_with(" resets=0 orphans_reset=0 conns=0"),
            "{line}"
        );
        let r = with_host_stream(10);
        r.port(2).stream.count(Reject::Op);
        let line = r.stats_line();
        assert!(!line.contains('\n'));
        assert!(
            line.contains("; host_stream=3 up=1 queued_pkts=0 "),
            "{line}"
        );
        assert!(
            line.ends_with(
                " accepted=0 dropped=1 dropped_src_cid=0 dropped_dst_cid=0 dropped_type=0 \
                 dropped_op=1 dropped_payload=0 dropped_oversize=0 orphans_reset=0 conns=0"
            ),
            "{line}"
        );
    }
}
