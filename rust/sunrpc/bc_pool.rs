// SPDX-License-Identifier: GPL-2.0

//! The pool of preallocated callback requests of a client transport
//! (`bc_pa_list`), for the NFSv4.1 backchannel.
//!
//! net/sunrpc/backchannel_rqst.c keeps the same pool for xprtsock, but none
//! of its helpers are exported; this follows it: `bc_alloc_count`,
//! `bc_alloc_max` and `bc_slot_count` keep their meaning, and the pool lock
//! is `bc_pa_lock`. The fields are reached through [`Rqst`] and, under the
//! lock, [`BcPoolLocked`].

use core::ptr::NonNull;

use kernel::error::{code::*, Result};

use super::rqst::Rqst;
use super::xprt::{BcPoolLocked, Xprt};
use crate::sys;

/// Callback requests a transport may hold at once, as xprtsock
/// (`BC_MAX_SLOTS`); also what CREATE_SESSION advertises.
pub(crate) const MAX_SLOTS: u32 = 64;

/// A request of a pool that is on no list: the value owns it and frees
/// it, with its pages, when dropped.
///
/// # Invariants
///
/// `self.0` came from `Unlisted::alloc()`, is on no list, and nothing else
/// uses it.
struct Unlisted(NonNull<sys::rpc_rqst>);

impl Unlisted {
    /// Allocates a request of `xprt` with a one-page receive and send
    /// buffer.
    fn alloc(xprt: &Xprt) -> Option<Self> {
        // SAFETY: `kzalloc()` may be called in any sleeping context, as the
        // pool's callers are; the request is freed when the value drops.
        let req = NonNull::new(unsafe { sys::xv_bc_alloc_rqst() })?;
        // INVARIANT: a new, zeroed request that nobody else sees; the
        // buffers of a zeroed request are freed as empty if their pages
        // cannot be had.
        let this = Self(req);
        // SAFETY: a zeroed request that nobody else sees yet.
        let ok = unsafe { this.rqst().init_bc(xprt) };
        ok.then_some(this)
    }

    /// Takes back a request that left the pool's list.
    ///
    /// # Safety
    ///
    /// `req` must have come from `Unlisted::alloc()`, be on no list, and
    /// nothing else may use it any more.
    unsafe fn from_raw(req: *mut sys::rpc_rqst) -> Self {
        // INVARIANT: by the caller's guarantee.
        // SAFETY: a request from `alloc()` is not null.
        Self(unsafe { NonNull::new_unchecked(req) })
    }

    fn rqst(&self) -> &Rqst {
        // SAFETY: the request is live while the value owns it (type
        // invariant).
        unsafe { Rqst::from_raw(self.0.as_ptr()) }
    }

    /// Gives the request up, for the pool's list.
    fn into_raw(self) -> *mut sys::rpc_rqst {
        let req = self.0.as_ptr();
        core::mem::forget(self);
        req
    }
}

impl Drop for Unlisted {
    fn drop(&mut self) {
        // SAFETY: the request is ours alone (type invariant); the buffers'
        // heads are the pages `alloc` allocated, or null.
        unsafe { self.rqst().free_bc_pages() };
        // SAFETY: ours alone, from `xv_bc_alloc_rqst()`, and not used after.
        unsafe { sys::xv_bc_free_rqst(self.0.as_ptr()) };
    }
}

/// Puts `req` at the end of the pool.
///
/// # Safety
///
/// `req` must be a request of the pool's transport.
unsafe fn push<'p>(pool: &'p BcPoolLocked<'_>, req: Unlisted) -> &'p Rqst {
    // SAFETY: `req` is a request of this transport (the caller's guarantee)
    // on no list (`Unlisted`'s invariant), which the pool takes over.
    let req = unsafe { pool.add_tail(req.into_raw()) };
    pool.set_alloc_count(pool.alloc_count() + 1);
    pool.add_slot_count(1);
    req
}

/// The request of the pool filling with the callback `xid` on the
/// current connection.
fn find<'p>(pool: &'p BcPoolLocked<'_>, xprt: &Xprt, xid: u32) -> Option<&'p Rqst> {
    pool.find(|req| req.bc_is_filling(pool, xid, xprt.connect_cookie()))
}

/// Takes the first free request for the callback `xid`, adding `new`
/// (leaving `None`) to the pool first if it is empty and the slot limit
/// allows.
///
/// # Safety
///
/// `new`, if any, must be a request of the pool's transport.
unsafe fn take<'p>(
    pool: &'p BcPoolLocked<'_>,
    xprt: &Xprt,
    xid: u32,
    new: &mut Option<Unlisted>,
) -> Option<&'p Rqst> {
    let req = match pool.first() {
        Some(req) => req,
        None => {
            if new.is_none() || pool.slot_count() >= MAX_SLOTS as i32 {
                return None;
            }
            // SAFETY: `new` is a request of this transport (the caller's
            // guarantee).
            unsafe { push(pool, new.take()?) }
        }
    };
    req.bc_start(pool, xid, xprt.connect_cookie());
    Some(req)
}

/// `bc_setup`: adds `min_reqs` requests (at most [`MAX_SLOTS`]) to the pool
/// for a new session.
pub(crate) fn setup(xprt: &Xprt, min_reqs: u32) -> Result {
    let n = min_reqs.min(MAX_SLOTS) as usize;
    let mut reqs = kernel::alloc::KVec::with_capacity(n, kernel::alloc::flags::GFP_KERNEL)?;
    for _ in 0..n {
        // Those allocated so far are freed as `reqs` drops.
        let req = Unlisted::alloc(xprt).ok_or(ENOMEM)?;
        reqs.push(req, kernel::alloc::flags::GFP_KERNEL)?;
    }
    let pool = xprt.lock_bc_pool();
    for req in reqs {
        // SAFETY: `Unlisted::alloc(xprt)` made it a request of this
        // transport.
        unsafe { push(&pool, req) };
    }
    pool.set_alloc_max(pool.alloc_max() + n as u32);
    Ok(())
}

/// `bc_destroy`: frees up to `max_reqs` requests of the pool, for a
/// session that ended or the transport going away. Requests in use come
/// back through [`free`], which then frees them.
pub(crate) fn destroy(xprt: &Xprt, max_reqs: u32) {
    if max_reqs == 0 {
        return;
    }
    let pool = xprt.lock_bc_pool();
    pool.set_alloc_max(pool.alloc_max() - max_reqs.min(pool.alloc_max()));
    for _ in 0..max_reqs {
        let Some(req) = pool.first() else {
            break;
        };
        let req = req.as_raw();
        // SAFETY: `req` is on the pool's list.
        unsafe { pool.del(req) };
        // SAFETY: a free request of the pool, from `Unlisted::alloc()`, which
        // left the list above and which nobody else uses.
        drop(unsafe { Unlisted::from_raw(req) });
        pool.set_alloc_count(pool.alloc_count() - 1);
        pool.add_slot_count(-1);
    }
}

/// The request receiving the callback `xid`: the one already filling with
/// it when `continued`, else a free one of the pool (allocating one if the
/// pool is empty and below [`MAX_SLOTS`]). `None` when there is none.
pub(crate) fn lookup(xprt: &Xprt, xid: u32, continued: bool) -> Option<&Rqst> {
    let mut new = None;
    loop {
        let found = {
            let pool = xprt.lock_bc_pool();
            let req = if continued {
                find(&pool, xprt, xid)
            } else {
                // SAFETY: `new`, if any, is from `Unlisted::alloc(xprt)`.
                unsafe { take(&pool, xprt, xid, &mut new) }
            };
            req.map(Rqst::as_raw)
        };
        let had_spare = new.is_some();
        // A spare the pool did not take is freed.
        drop(new.take());
        if let Some(req) = found {
            // SAFETY: a request on the pool's list stays allocated until the
            // receive worker, the caller, completes it, or `destroy`, which
            // holds the receive lock, frees it.
            return Some(unsafe { Rqst::from_raw(req) });
        }
        if continued || had_spare {
            return None;
        }
        new = Some(Unlisted::alloc(xprt)?);
    }
}

/// Hands a received callback of `copied` bytes to the callback service.
pub(crate) fn complete(xprt: &Xprt, req: &Rqst, copied: usize) {
    let serv = xprt.bc_serv();
    {
        let pool = xprt.lock_bc_pool();
        // SAFETY: `req` is on the pool's list.
        unsafe { pool.del(req.as_raw()) };
        pool.set_alloc_count(pool.alloc_count() - 1);
    }
    // SAFETY: `req` left the pool; the receive worker, the caller, owns it
    // until it is queued below.
    unsafe { req.bc_set_in_use(copied) };
    // `serv` is live: receiving chose the backchannel only once the NFS
    // client had set it, and the client keeps it while the transport
    // carries its sessions.
    // SAFETY: the callback service owns `req` from here, with a transport
    // reference that `free` drops; `serv` is live (above).
    unsafe {
        sys::xprt_get(xprt.as_raw());
        sys::xv_bc_enqueue(serv, req.as_raw());
    }
}

/// `bc_free_rqst`: the callback service is done with `req`; it goes back to
/// the pool, or is freed if sessions were destroyed meanwhile.
///
/// # Safety
///
/// `req` is a request [`complete`] handed to the callback service, which
/// no longer uses it.
pub(crate) unsafe fn free(req: *mut sys::rpc_rqst) {
    // SAFETY: `req` came from the pool, is on no list and nothing else uses
    // it any more (the caller's guarantee).
    let unlisted = unsafe { Unlisted::from_raw(req) };
    // SAFETY: its transport is live while the reference `complete` took is
    // held.
    let xprt = unsafe { Xprt::from_raw(unlisted.rqst().xprt_raw()) };
    // SAFETY: the request is ours (`Unlisted`) and on no list.
    unsafe {
        unlisted
            .rqst()
            .bc_clear_in_use(xprt.connect_cookie().wrapping_sub(1))
    };
    let spare = {
        let pool = xprt.lock_bc_pool();
        if pool.alloc_count() < pool.alloc_max() {
            // SAFETY: the request is ours (`Unlisted`) and on no list.
            unsafe { unlisted.rqst().bc_reinit() };
            // SAFETY: a request of this transport, which it came from.
            unsafe { push(&pool, unlisted) };
            None
        } else {
            Some(unlisted)
        }
    };
    // The last session went away while `req` was in use: it is freed.
    drop(spare);
    // SAFETY: drops the reference `complete` took; `xprt` is not used after.
    unsafe { sys::xprt_put(xprt.as_raw()) };
}
