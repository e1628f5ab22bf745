// SPDX-License-Identifier: GPL-2.0

//! The pool of preallocated callback requests of a client transport
//! (`bc_pa_list`), for the NFSv4.1 backchannel.
//!
//! net/sunrpc/backchannel_rqst.c keeps the same pool for xprtsock, but none
//! of its helpers are exported; this follows it: `bc_alloc_count`,
//! `bc_alloc_max` and `bc_slot_count` keep their meaning, and the pool lock
//! is `bc_pa_lock`.

use core::ptr::{self, NonNull};

use kernel::error::{code::*, Result};
use kernel::page::PAGE_SIZE;

use super::rqst::Rqst;
use super::xprt::Xprt;
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
        let req = req.as_ptr();
        // SAFETY: `req` is a zeroed request that nobody else sees yet.
        let ok = unsafe {
            (*req).rq_xprt = xprt.as_raw();
            let rcv = sys::xv_bc_alloc_xdr_page(ptr::addr_of_mut!((*req).rq_rcv_buf));
            (*req).rq_rcv_buf.len = PAGE_SIZE as u32;
            rcv && sys::xv_bc_alloc_xdr_page(ptr::addr_of_mut!((*req).rq_snd_buf))
        };
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

    /// Gives the request up, for the pool's list.
    fn into_raw(self) -> *mut sys::rpc_rqst {
        let req = self.0.as_ptr();
        core::mem::forget(self);
        req
    }
}

impl Drop for Unlisted {
    fn drop(&mut self) {
        let req = self.0.as_ptr();
        // SAFETY: the request is ours alone (type invariant); the buffers'
        // heads are the pages `alloc` allocated, or null.
        unsafe {
            sys::xv_bc_free_xdr_page(ptr::addr_of_mut!((*req).rq_rcv_buf));
            sys::xv_bc_free_xdr_page(ptr::addr_of_mut!((*req).rq_snd_buf));
            sys::xv_bc_free_rqst(req);
        }
    }
}

/// Holds `bc_pa_lock` of a transport.
struct PoolGuard<'a>(&'a Xprt);

impl<'a> PoolGuard<'a> {
    fn lock(xprt: &'a Xprt) -> Self {
        // SAFETY: the transport is live; unlocked in `drop`.
        unsafe { sys::xv_bc_pa_lock(xprt.as_raw()) };
        Self(xprt)
    }

    fn raw(&self) -> *mut sys::rpc_xprt {
        self.0.as_raw()
    }

    /// Puts `req` at the end of the pool.
    ///
    /// # Safety
    ///
    /// `req` must be a request of this transport.
    unsafe fn push(&self, req: Unlisted) -> *mut sys::rpc_rqst {
        let req = req.into_raw();
        // SAFETY: the lock is held; `req` is a request of this transport (the
        // caller's guarantee) on no list (`Unlisted`'s invariant).
        unsafe {
            sys::xv_bc_pa_add_tail(self.raw(), req);
            (*self.raw()).bc_alloc_count += 1;
            sys::xv_bc_slot_count_add(self.raw(), 1);
        }
        req
    }

    /// The request of the pool filling with the callback `xid` on the
    /// current connection.
    fn find(&self, xid: u32) -> Option<*mut sys::rpc_rqst> {
        let x = self.raw();
        // SAFETY: the lock is held, so the list and its requests are stable.
        unsafe {
            let mut req = sys::xv_bc_pa_first(x);
            while !req.is_null() {
                if (*req).rq_connect_cookie == (*x).connect_cookie && (*req).rq_xid == xid {
                    return Some(req);
                }
                req = sys::xv_bc_pa_next(x, req);
            }
        }
        None
    }

    /// Takes the first free request for the callback `xid`, adding `new`
    /// (leaving `None`) to the pool first if it is empty and the slot limit
    /// allows.
    ///
    /// # Safety
    ///
    /// `new`, if any, must be a request of this transport.
    unsafe fn take(&self, xid: u32, new: &mut Option<Unlisted>) -> Option<*mut sys::rpc_rqst> {
        let x = self.raw();
        // SAFETY: the lock is held; `new`, if any, is a request of this
        // transport (the caller's guarantee).
        unsafe {
            let mut req = sys::xv_bc_pa_first(x);
            if req.is_null() {
                if new.is_none() || sys::xv_bc_slot_count(x) >= MAX_SLOTS as i32 {
                    return None;
                }
                req = self.push(new.take()?);
            }
            (*req).rq_reply_bytes_recvd = 0;
            (*req).rq_private_buf = (*req).rq_rcv_buf;
            (*req).rq_xid = xid;
            (*req).rq_connect_cookie = (*x).connect_cookie;
            Some(req)
        }
    }
}

impl Drop for PoolGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `lock` took it.
        unsafe { sys::xv_bc_pa_unlock(self.raw()) };
    }
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
    let pool = PoolGuard::lock(xprt);
    for req in reqs {
        // SAFETY: `Unlisted::alloc(xprt)` made it a request of this
        // transport.
        unsafe { pool.push(req) };
    }
    // SAFETY: the lock is held.
    unsafe { (*pool.raw()).bc_alloc_max += n as u32 };
    Ok(())
}

/// `bc_destroy`: frees up to `max_reqs` requests of the pool, for a
/// session that ended or the transport going away. Requests in use come
/// back through [`free`], which then frees them.
pub(crate) fn destroy(xprt: &Xprt, max_reqs: u32) {
    if max_reqs == 0 {
        return;
    }
    let pool = PoolGuard::lock(xprt);
    let x = pool.raw();
    let mut left = max_reqs;
    // SAFETY: the lock is held; the requests on the list are free ones of
    // this transport, which nobody else uses.
    unsafe {
        (*x).bc_alloc_max -= max_reqs.min((*x).bc_alloc_max);
        while left > 0 {
            let req = sys::xv_bc_pa_first(x);
            if req.is_null() {
                break;
            }
            sys::xv_bc_pa_del(req);
            drop(Unlisted::from_raw(req));
            (*x).bc_alloc_count -= 1;
            sys::xv_bc_slot_count_add(x, -1);
            left -= 1;
        }
    }
}

/// The request receiving the callback `xid`: the one already filling with
/// it when `continued`, else a free one of the pool (allocating one if the
/// pool is empty and below [`MAX_SLOTS`]). `None` when there is none.
pub(crate) fn lookup(xprt: &Xprt, xid: u32, continued: bool) -> Option<&Rqst> {
    let mut new = None;
    loop {
        let found = {
            let pool = PoolGuard::lock(xprt);
            if continued {
                pool.find(xid)
            } else {
                // SAFETY: `new`, if any, is from `Unlisted::alloc(xprt)`.
                unsafe { pool.take(xid, &mut new) }
            }
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
    let raw = req.as_raw();
    {
        let pool = PoolGuard::lock(xprt);
        // SAFETY: the lock is held; `req` is on the pool's list.
        unsafe {
            sys::xv_bc_pa_del(raw);
            (*pool.raw()).bc_alloc_count -= 1;
        }
    }
    // `serv` is live: receiving chose the backchannel only once the NFS
    // client had set it, and the client keeps it while the transport
    // carries its sessions.
    // SAFETY: `req` left the pool, so the callback service owns it, with a
    // transport reference that `free` drops; `serv` is live (above).
    unsafe {
        (*raw).rq_private_buf.len = copied as u32;
        sys::xv_bc_set_in_use(raw);
        sys::xprt_get(xprt.as_raw());
        sys::xv_bc_enqueue(serv, raw);
    }
}

/// Resets a request's buffer to its one empty page.
fn reinit_xdr_buf(buf: &mut sys::xdr_buf) {
    buf.head[0].iov_len = PAGE_SIZE;
    buf.tail[0].iov_len = 0;
    buf.pages = ptr::null_mut();
    buf.page_len = 0;
    buf.flags = 0;
    buf.len = 0;
    buf.buflen = PAGE_SIZE as u32;
}

/// `bc_free_rqst`: the callback service is done with `req`; it goes back to
/// the pool, or is freed if sessions were destroyed meanwhile.
///
/// # Safety
///
/// `req` is a request [`complete`] handed to the callback service, which
/// no longer uses it.
pub(crate) unsafe fn free(req: *mut sys::rpc_rqst) {
    // SAFETY: by the caller's guarantee `req` is ours again; its transport
    // is live while the reference `complete` took is held.
    let xprt = unsafe { Xprt::from_raw((*req).rq_xprt) };
    // SAFETY: `req` is ours again and on no list (the caller's guarantee),
    // `xprt` is live (above); the barriers of `xv_bc_clear_in_use()` order
    // the cookie before the bit, as `xprt_free_bc_rqst()` does.
    unsafe {
        (*req).rq_connect_cookie = (*xprt.as_raw()).connect_cookie.wrapping_sub(1);
        sys::xv_bc_clear_in_use(req);
    }
    // SAFETY: `req` came from the pool, is on no list and nothing else uses
    // it any more (the caller's guarantee).
    let unlisted = unsafe { Unlisted::from_raw(req) };
    let spare = {
        let pool = PoolGuard::lock(xprt);
        let x = pool.raw();
        // SAFETY: the lock is held; `req` is on no list, and ours.
        unsafe {
            if (*x).bc_alloc_count < (*x).bc_alloc_max {
                reinit_xdr_buf(&mut (*req).rq_snd_buf);
                reinit_xdr_buf(&mut (*req).rq_rcv_buf);
                (*req).rq_rcv_buf.len = PAGE_SIZE as u32;
                pool.push(unlisted);
                None
            } else {
                Some(unlisted)
            }
        }
    };
    // The last session went away while `req` was in use: it is freed.
    drop(spare);
    // SAFETY: drops the reference `complete` took; `xprt` is not used after.
    unsafe { sys::xprt_put(xprt.as_raw()) };
}
