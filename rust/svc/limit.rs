// SPDX-License-Identifier: GPL-2.0

//! Connections per peer CID: the `max_conns_per_cid` limit at accept, the
//! share of the server's threads each CID may use, and the accounting an
//! operator reads in debugfs, `xprtvsock/connections`.
//!
//! One table counts the connections of every listener of the module, in
//! every namespace: a CID names one machine whatever port or namespace it
//! connects to, and what its connections pin (vsock buffers, saved pages)
//! is this kernel's memory. A connection counts from `xpo_accept` until
//! SUNRPC frees it (`xpo_free`), when that memory is released.
//!
//! SUNRPC serves connections in turn, so a guest with 32 busy connections
//! would get 32 turns for every one of a guest with one. The table also
//! counts each CID's calls in progress and connections queued for a
//! thread: a CID past its share of the threads (an even split between the
//! CIDs that want them, see [`CidTable::share`]) has its connections held
//! back, neither queued nor read, until one of its calls ends. A
//! connection is held back only while its CID has a call in progress or a
//! connection queued; the end of that call, or the close of that
//! connection before it had a thread, lets every held-back connection of
//! the CID queue again.

use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use kernel::c_str;
use kernel::list::{
    impl_has_list_links, impl_list_arc_safe, impl_list_item, AtomicTracker, List, ListArc,
    ListLinks, TryNewListArc,
};
use kernel::prelude::*;
use kernel::sync::{new_spinlock, Arc, ArcBorrow, SpinLock};

use crate::addr::Presentation;
use crate::cid_table::{Admission, CidCount, CidTable};
use crate::sunrpc::svc_xprt::SvcXprt;
use crate::sys;

/// Slots the table grows by when every slot holds a CID with connections.
const GROW: usize = 16;

/// The connections, refusals and calls of each CID. A spinlock guards it:
/// SUNRPC asks `xpo_has_wspace` from paths that may not sleep.
#[pin_data]
struct Peers {
    #[pin]
    state: SpinLock<PeersState>,
}

struct PeersState {
    table: CidTable<KVec<CidCount>>,
    /// The connections held back, in the order they were held back; each
    /// entry holds a reference on its transport.
    held: List<Waiter>,
}

impl PeersState {
    /// Holds back the connection of `waiter`, whose transport is `xprt`,
    /// unless it is held back already.
    fn hold(&mut self, waiter: &Arc<Waiter>, xprt: &SvcXprt) {
        if let Ok(entry) = ListArc::try_from_arc(waiter.clone()) {
            // INVARIANT: the entry holds a reference on its transport.
            waiter.xprt.store(xprt.get(), Ordering::Relaxed);
            self.held.push_back(entry);
        }
    }

    /// Takes the held-back connections of `cid` out of the list, in order.
    fn take_held(&mut self, cid: u32) -> List<Waiter> {
        let (mut woken, mut kept) = (List::new(), List::new());
        while let Some(entry) = self.held.pop_front() {
            if entry.cid == cid {
                woken.push_back(entry);
            } else {
                kept.push_back(entry);
            }
        }
        self.held.push_all_back(&mut kept);
        woken
    }
}

/// A connection's entry in the list of those held back.
///
/// # Invariants
///
/// While the entry is in [`PeersState::held`], `xprt` is the connection's
/// transport, on which the entry holds a reference.
#[pin_data]
struct Waiter {
    #[pin]
    links: ListLinks,
    #[pin]
    tracker: AtomicTracker,
    cid: u32,
    xprt: AtomicPtr<sys::svc_xprt>,
}

impl_has_list_links! {
    impl HasListLinks<0> for Waiter { self.links }
}
impl_list_arc_safe! {
    impl ListArcSafe<0> for Waiter { tracked_by tracker: AtomicTracker; }
}
impl_list_item! {
    impl ListItem<0> for Waiter { using ListLinks; }
}

/// The table while the server class is registered, for `xpo_accept`, which
/// SUNRPC calls with no context of ours; null otherwise.
static PUBLISHED: AtomicPtr<Peers> = AtomicPtr::new(ptr::null_mut());

/// The table, published and shown in debugfs, from before the server class
/// is registered until after it is unregistered.
///
/// # Invariants
///
/// [`PUBLISHED`] holds a reference from `Arc::into_raw()` that this value
/// owns, and `dir` is the debugfs directory whose file shows it (or an
/// error pointer, without debugfs). There is one such value at a time: the
/// module's [`super::Registration`] holds it.
pub(super) struct Accounting {
    dir: *mut sys::dentry,
}

// SAFETY: the directory is only removed, once, when the value is dropped,
// which debugfs allows from any thread.
unsafe impl Send for Accounting {}
// SAFETY: a shared `Accounting` offers no method.
unsafe impl Sync for Accounting {}

impl Accounting {
    /// Publishes an empty table and creates its debugfs file.
    pub(super) fn new() -> Result<Self> {
        let peers = Arc::pin_init(
            pin_init!(Peers {
                state <- new_spinlock!(PeersState {
                    table: CidTable::new(KVec::new()),
                    held: List::new(),
                }),
            }),
            GFP_KERNEL,
        )?;
        let raw = Arc::into_raw(peers).cast_mut();
        PUBLISHED.store(raw, Ordering::Release);
        // SAFETY: the table outlives the file: `drop` removes the file, which
        // waits for its readers, before it drops the table.
        let dir = unsafe { sys::xv_svc_debugfs_create(raw.cast::<c_void>()) };
        // INVARIANT: the reference is published and shown in `dir`.
        Ok(Self { dir })
    }
}

impl Drop for Accounting {
    fn drop(&mut self) {
        // SAFETY: `new` created the directory; its file's readers are done
        // when this returns.
        unsafe { sys::xv_svc_debugfs_remove(self.dir) };
        let raw = PUBLISHED.swap(ptr::null_mut(), Ordering::Acquire);
        // SAFETY: the reference `new` published (type invariant); the class
        // is unregistered, so no `xpo_accept` borrows it any more.
        drop(unsafe { Arc::<Peers>::from_raw(raw) });
    }
}

/// A connection counted for its CID, until it is dropped with the
/// connection's state in `xpo_free`, or on an error in `xpo_accept`; with
/// it, the connection's calls count for the CID's share of the threads.
///
/// # Invariants
///
/// `peers` counts this connection in the line of `cid`, and one connection
/// queued for a thread there while `queued` is set.
pub(super) struct CidSlot {
    peers: Arc<Peers>,
    cid: u32,
    waiter: Arc<Waiter>,
    /// Changed under the table's lock.
    queued: AtomicBool,
}

impl CidSlot {
    /// `xpo_has_wspace`, for the CID's share: whether a thread may take a
    /// call from the connection of transport `xprt`. If so, the connection
    /// counts as queued for one until a thread takes it; if not, it is
    /// held back.
    pub(super) fn may_queue(&self, xprt: &SvcXprt) -> bool {
        let threads = xprt.threads();
        let mut state = self.peers.state.lock();
        if self.queued.load(Ordering::Relaxed) {
            return true;
        }
        if state.table.queue(self.cid, threads) {
            // INVARIANT: counted queued just above.
            self.queued.store(true, Ordering::Relaxed);
            return true;
        }
        state.hold(&self.waiter, xprt);
        false
    }

    /// Starts a call for the thread that took the connection of transport
    /// `xprt`, which is no longer queued; `None` (and the connection held
    /// back) if the CID has its share of the threads.
    pub(super) fn begin_call(&self, xprt: &SvcXprt) -> Option<Call<'_>> {
        let threads = xprt.threads();
        let mut state = self.peers.state.lock();
        if self.queued.swap(false, Ordering::Relaxed) {
            // INVARIANT: uncounted with the flag.
            state.table.unqueue(self.cid);
        }
        if state.table.begin(self.cid, threads) {
            return Some(Call(self));
        }
        state.hold(&self.waiter, xprt);
        None
    }

    /// Ends a call that [`CidSlot::begin_call`] counted, and lets the CID's
    /// held-back connections queue again.
    fn end_call(&self) {
        let woken = {
            let mut state = self.peers.state.lock();
            state.table.end(self.cid);
            state.take_held(self.cid)
        };
        requeue(woken);
    }
}

impl Drop for CidSlot {
    fn drop(&mut self) {
        let woken = {
            let mut state = self.peers.state.lock();
            // Closed while queued: no call of its own will let the CID's
            // held-back connections queue.
            let woken = if *self.queued.get_mut() {
                state.table.unqueue(self.cid);
                state.take_held(self.cid)
            } else {
                List::new()
            };
            state.table.release(self.cid);
            woken
        };
        requeue(woken);
    }
}

/// Enqueues the transports of `woken`, taken from the list of held-back
/// connections, again.
fn requeue(mut woken: List<Waiter>) {
    while let Some(entry) = woken.pop_front() {
        let xprt = entry.xprt.load(Ordering::Relaxed);
        // Out of the list before the enqueue, which may hold it back again.
        drop(entry);
        // SAFETY: the entry was in the list, so `xprt` is its live
        // transport, on which it held the reference dropped here (type
        // invariant of `Waiter`).
        unsafe {
            SvcXprt::from_raw(xprt).enqueue();
            SvcXprt::put(xprt);
        }
    }
}

/// A call counted for its CID: it ends when dropped, unless it is kept for
/// the request, to end in `xpo_release_ctxt` ([`Call::end`]).
pub(super) struct Call<'a>(&'a CidSlot);

impl Call<'_> {
    /// Keeps the call counted after the receive, for the request.
    pub(super) fn keep(self) {
        core::mem::forget(self);
    }

    /// Ends a call of `slot` that [`Call::keep`] kept.
    pub(super) fn end(slot: &CidSlot) {
        slot.end_call();
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.0.end_call();
    }
}

/// Counts a new connection from `cid`; refuses it (`None`, with a
/// rate-limited message) if the CID has `max_conns_per_cid` connections
/// already, and when the table cannot grow.
///
/// # Safety
///
/// The server class must be registered, as it is for every call of one of
/// its ops.
pub(super) unsafe fn admit(cid: u32) -> Option<CidSlot> {
    let raw = PUBLISHED.load(Ordering::Acquire);
    // SAFETY: while the class is registered (the caller's guarantee), the
    // module's `Accounting` holds the published reference (its invariant).
    let peers: Arc<Peers> = unsafe { ArcBorrow::from_raw(raw) }.into();
    let waiter = Arc::pin_init(
        pin_init!(Waiter {
            links <- ListLinks::new(),
            tracker <- AtomicTracker::new(),
            cid,
            xprt: AtomicPtr::new(ptr::null_mut()),
        }),
        GFP_KERNEL,
    )
    .ok()?;
    // SAFETY: reads a module parameter, which sysfs may change at any time.
    let limit = unsafe { sys::xv_svc_max_conns_per_cid() };
    let admitted = loop {
        let slots = {
            let mut state = peers.state.lock();
            match state.table.admit(cid, limit) {
                Admission::NoRoom => state.table.slots_mut().len() + GROW,
                outcome => break outcome == Admission::Admitted,
            }
        };
        // Allocated unlocked; swapped in unless another accept grew the
        // table meanwhile.
        let mut grown = KVec::new();
        grown
            .extend_with(slots, CidCount::default(), GFP_KERNEL)
            .ok()?;
        let mut state = peers.state.lock();
        let current = state.table.slots_mut();
        if current.len() < slots {
            // Element by element: `copy_from_slice()` would bring in a
            // length-mismatch panic that 6.12's objtool does not know as
            // noreturn under this compiler, and `grown` is the longer.
            for (slot, line) in grown.iter_mut().zip(current.iter()) {
                *slot = *line;
            }
            core::mem::swap(current, &mut grown);
        }
        drop(state);
    };
    if !admitted {
        // SAFETY: `net_ratelimit()` only updates a global rate-limit state.
        if unsafe { sys::net_ratelimit() } != 0 {
            pr_notice!(
                "{}: at the limit of {} connections per CID (max_conns_per_cid); refusing a connection\n",
                Presentation(cid),
                limit
            );
        }
        return None;
    }
    // INVARIANT: admitted just above, not queued.
    Some(CidSlot {
        peers,
        cid,
        waiter,
        queued: AtomicBool::new(false),
    })
}

/// Prints the table for a read of `xprtvsock/connections`: a line per CID
/// with its connections now, those refused since the module was loaded
/// (while its line stays) and its calls in progress, then the sums over all
/// CIDs, refusals of lines given up included.
///
/// # Safety
///
/// Only called by the C glue's show callback, with the `seq_file` being
/// read and the table that [`Accounting::new`] gave the file.
#[no_mangle]
unsafe extern "C" fn xv_svc_connections_show(seq: *mut sys::seq_file, peers: *mut c_void) -> c_int {
    // SAFETY: the file's table, which outlives the file (`Accounting`).
    let peers = unsafe { &*peers.cast::<Peers>() };
    let state = peers.state.lock();
    let table = &state.table;
    // SAFETY: the format string has no conversion.
    unsafe { sys::seq_printf(seq, c_str!("cid live refused calls\n").as_char_ptr()) };
    let (mut live, mut calls) = (0u64, 0u64);
    for line in table.lines() {
        live += u64::from(line.live);
        calls += u64::from(line.calls);
        // SAFETY: the format string matches the argument types.
        unsafe {
            sys::seq_printf(
                seq,
                c_str!("%u %u %llu %u\n").as_char_ptr(),
                line.cid,
                line.live,
                line.refused,
                line.calls,
            )
        };
    }
    // SAFETY: the format string matches the argument types.
    unsafe {
        sys::seq_printf(
            seq,
            c_str!("all %llu %llu %llu\n").as_char_ptr(),
            live,
            table.refused(),
            calls,
        )
    };
    0
}
