// SPDX-License-Identifier: GPL-2.0

//! The shared part: one port per guest (its bounded receive FIFO, its wake-up
//! eventfd, its counters) and the CID map that routes packets between them.
//!
//! The device keeps no connection state: credit flow control is end to end
//! between the guests. The byte bound on each FIFO is only a safety net so a
//! guest that stops reading cannot make the daemon grow without limit.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::packet::{Packet, CID_ANY, CID_HYPERVISOR, CID_LOCAL};

/// Default byte bound of each guest's receive FIFO.
pub const DEFAULT_QUEUE_LIMIT: usize = 4 << 20;

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

pub struct GuestPort {
    pub cid: u64,
    /// The CID the other guests know this one by, if it has an alias.
    pub alias: Option<u64>,
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
}

impl GuestPort {
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

pub struct Router {
    ports: Vec<GuestPort>,
    by_cid: HashMap<u64, usize>,
    by_alias: HashMap<u64, usize>,
}

/// A guest as configured on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestConfig {
    pub cid: u64,
    pub alias: Option<u64>,
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
            if cid_is_reserved(g.cid) || g.cid == crate::packet::CID_HOST {
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
            ports.push(GuestPort {
                cid: g.cid,
                alias: g.alias,
                limit,
                fifo: Mutex::new(Fifo::default()),
                wake: EventFd::new(EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"))?,
                events: Mutex::new(Events::default()),
                events_done: Condvar::new(),
                event_queue: AtomicBool::new(false),
                stats: Stats::default(),
            });
        }
        if let Some(a) = by_alias.keys().find(|a| by_cid.contains_key(*a)) {
            return Err(format!("alias {a} is also a guest's CID"));
        }
        Ok(Router {
            ports,
            by_cid,
            by_alias,
        })
    }

    pub fn ports(&self) -> &[GuestPort] {
        &self.ports
    }

    pub fn port(&self, index: usize) -> &GuestPort {
        &self.ports[index]
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

    /// The port for a CID as the control socket names it: real CID or alias.
    pub fn find(&self, cid: u64) -> Option<usize> {
        self.by_alias
            .get(&cid)
            .or_else(|| self.by_cid.get(&cid))
            .copied()
    }

    /// Route a validated packet from port `from`. The destination sees its
    /// own CID as `dst_cid` and the sender's alias (if any) as `src_cid`.
    pub fn forward(&self, from: usize, pkt: Packet) -> Route {
        let Some(to) = self.lookup(pkt.hdr.dst_cid) else {
            return Route::Unreachable(pkt);
        };
        let original = pkt.hdr;
        let mut pkt = pkt;
        pkt.hdr.dst_cid = self.ports[to].cid;
        if let Some(a) = self.ports[from].alias {
            pkt.hdr.src_cid = a;
        }
        match self.ports[to].push(from, pkt) {
            Ok(()) => Route::Queued(to),
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

    pub fn wake_all(&self, indices: &[usize]) {
        for &i in indices {
            if let Some(p) = self.ports.get(i) {
                p.wake();
            }
        }
    }

    /// A front-end connected to the guest at `index`.
    pub fn connect(&self, index: usize) {
        lock(&self.ports[index].fifo).connected = true;
    }

    /// The guest's front-end went away: drop what was queued for it (its
    /// connections are gone with it) and wake the senders that waited for
    /// room, so their packets now get RST instead of waiting forever.
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
        let mut ev = lock(&port.events);
        ev.delivered = ev.requested;
        drop(ev);
        port.set_event_queue(false);
        port.events_done.notify_all();
    }

    /// One line of counters for the control socket.
    pub fn stats_line(&self) -> String {
        let mut line = String::new();
        for (i, p) in self.ports.iter().enumerate() {
            let s = &p.stats;
            let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
            let fifo = lock(&p.fifo);
            let _ = write!(
                line,
                "{}cid={} alias={} up={} queued_pkts={} queued_bytes={} tx_pkts={} tx_bytes={} \
                 rx_pkts={} rx_bytes={} rst={} dropped={} paused={} resets={}",
                if i == 0 { "" } else { "; " },
                p.cid,
                p.alias.map_or_else(|| "-".to_string(), |a| a.to_string()),
                u8::from(fifo.connected),
                fifo.packets.len(),
                fifo.bytes,
                get(&s.tx_packets),
                get(&s.tx_bytes),
                get(&s.rx_packets),
                get(&s.rx_bytes),
                get(&s.rst_sent),
                get(&s.dropped),
                get(&s.paused),
                get(&s.resets),
            );
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Header, HDR_LEN, OP_RW, TYPE_STREAM};

    fn guests(list: &[(u64, Option<u64>)]) -> Vec<GuestConfig> {
        list.iter()
            .map(|&(cid, alias)| GuestConfig { cid, alias })
            .collect()
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

    #[test]
    fn stats_line_is_one_line() {
        let r = Router::new(&guests(&[(3, None), (4, Some(2))]), 10).unwrap();
        let line = r.stats_line();
        assert!(!line.contains('\n'));
        assert!(line.starts_with("cid=3 alias=- up=0 "), "{line}");
        assert!(line.contains("; cid=4 alias=2 up=0 "), "{line}");
    }
}
