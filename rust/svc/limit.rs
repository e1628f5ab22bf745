// SPDX-License-Identifier: GPL-2.0

//! Connections per peer CID: the `max_conns_per_cid` limit at accept, and
//! the accounting an operator reads in debugfs, `xprtvsock/connections`.
//!
//! One table counts the connections of every listener of the module, in
//! every namespace: a CID names one machine whatever port or namespace it
//! connects to, and what its connections pin (vsock buffers, saved pages)
//! is this kernel's memory. A connection counts from `xpo_accept` until
//! SUNRPC frees it (`xpo_free`), when that memory is released.

use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::c_str;
use kernel::prelude::*;
use kernel::sync::{new_mutex, Arc, ArcBorrow, Mutex};

use crate::addr::Presentation;
use crate::cid_table::{Admission, CidCount, CidTable};
use crate::sys;

/// Slots the table grows by when every slot holds a CID with connections.
const GROW: usize = 16;

/// The connections and refusals of each CID.
#[pin_data]
struct Peers {
    #[pin]
    table: Mutex<CidTable<KVec<CidCount>>>,
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
                table <- new_mutex!(CidTable::new(KVec::new())),
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
/// connection's state in `xpo_free`, or on an error in `xpo_accept`.
///
/// # Invariants
///
/// `peers` counts this connection in the line of `cid`.
pub(super) struct CidSlot {
    peers: Arc<Peers>,
    cid: u32,
}

impl Drop for CidSlot {
    fn drop(&mut self) {
        self.peers.table.lock().release(self.cid);
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
    // SAFETY: reads a module parameter, which sysfs may change at any time.
    let limit = unsafe { sys::xv_svc_max_conns_per_cid() };
    let admitted = {
        let mut table = peers.table.lock();
        loop {
            match table.admit(cid, limit) {
                Admission::NoRoom => table
                    .slots_mut()
                    .extend_with(GROW, CidCount::default(), GFP_KERNEL)
                    .ok()?,
                outcome => break outcome == Admission::Admitted,
            }
        }
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
    // INVARIANT: admitted just above.
    Some(CidSlot { peers, cid })
}

/// Prints the table for a read of `xprtvsock/connections`: a line per CID
/// with its connections now and those refused since the module was loaded
/// (while its line stays), then the sums over all CIDs, refusals of lines
/// given up included.
///
/// # Safety
///
/// Only called by the C glue's show callback, with the `seq_file` being
/// read and the table that [`Accounting::new`] gave the file.
#[no_mangle]
unsafe extern "C" fn xv_svc_connections_show(seq: *mut sys::seq_file, peers: *mut c_void) -> c_int {
    // SAFETY: the file's table, which outlives the file (`Accounting`).
    let peers = unsafe { &*peers.cast::<Peers>() };
    let table = peers.table.lock();
    // SAFETY: the format string has no conversion.
    unsafe { sys::seq_printf(seq, c_str!("cid live refused\n").as_char_ptr()) };
    let mut live = 0u64;
    for line in table.lines() {
        live += u64::from(line.live);
        // SAFETY: the format string matches the argument types.
        unsafe {
            sys::seq_printf(
                seq,
                c_str!("%u %u %llu\n").as_char_ptr(),
                line.cid,
                line.live,
                line.refused,
            )
        };
    }
    // SAFETY: the format string matches the argument types.
    unsafe {
        sys::seq_printf(
            seq,
            c_str!("all %llu %llu\n").as_char_ptr(),
            live,
            table.refused(),
        )
    };
    0
}
