// SPDX-License-Identifier: GPL-2.0

//! The pool of preallocated callback requests of a client transport
//! (`bc_pa_list`), for the NFSv4.1 backchannel.
//!
//! net/sunrpc/backchannel_rqst.c keeps the same pool for xprtsock, but none
//! of its helpers are exported; this follows it: `bc_alloc_count`,
//! `bc_alloc_max` and `bc_slot_count` keep their meaning, and the pool lock
//! is `bc_pa_lock`.

use core::ptr;

use kernel::error::{code::*, Result};
use kernel::page::PAGE_SIZE;

use super::rqst::Rqst;
use super::xprt::Xprt;
use crate::sys;

/// Callback requests a transport may hold at once, as xprtsock
/// (`BC_MAX_SLOTS`); also what CREATE_SESSION advertises.
pub(crate) const MAX_SLOTS: u32 = 64;

/// Allocates a request with a one-page receive and send buffer.
fn alloc_rqst(xprt: &Xprt) -> Option<*mut sys::rpc_rqst> {
    // SAFETY: `kzalloc()` may be called in any sleeping context; the request
    // is released by `free_rqst`.
    let req = unsafe { sys::xv_bc_alloc_rqst() };
    if req.is_null() {
        return None;
    }
    // SAFETY: `req` is a zeroed request that nobody else sees yet.
    let ok = unsafe {
        (*req).rq_xprt = xprt.as_raw();
        let rcv = sys::xv_bc_alloc_xdr_page(ptr::addr_of_mut!((*req).rq_rcv_buf));
        (*req).rq_rcv_buf.len = PAGE_SIZE as u32;
        rcv && sys::xv_bc_alloc_xdr_page(ptr::addr_of_mut!((*req).rq_snd_buf))
    };
    if !ok {
        // SAFETY: allocated above, never shared.
        unsafe { free_rqst(req) };
        return None;
    }
    Some(req)
}

/// Frees a request of the pool and its buffers.
///
/// # Safety
///
/// `req` came from `alloc_rqst`, is on no list and nobody uses it.
unsafe fn free_rqst(req: *mut sys::rpc_rqst) {
    // SAFETY: by the caller's guarantee; the buffers' heads are the pages
    // `alloc_rqst` allocated (or null).
    unsafe {
        sys::xv_bc_free_xdr_page(ptr::addr_of_mut!((*req).rq_rcv_buf));
        sys::xv_bc_free_xdr_page(ptr::addr_of_mut!((*req).rq_snd_buf));
        sys::xv_bc_free_rqst(req);
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
    /// `req` belongs to this transport and is on no list.
    unsafe fn push(&self, req: *mut sys::rpc_rqst) {
        // SAFETY: the lock is held; by the caller's guarantee.
        unsafe {
            sys::xv_bc_pa_add_tail(self.raw(), req);
            (*self.raw()).bc_alloc_count += 1;
            sys::xv_bc_slot_count_add(self.raw(), 1);
        }
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
    /// to the pool first if it is empty and the slot limit allows.
    fn take(&self, xid: u32, new: Option<*mut sys::rpc_rqst>) -> Option<*mut sys::rpc_rqst> {
        let x = self.raw();
        // SAFETY: the lock is held; `new`, if any, is an unlisted request of
        // this transport.
        unsafe {
            let mut req = sys::xv_bc_pa_first(x);
            if req.is_null() {
                let new = new?;
                if sys::xv_bc_slot_count(x) >= MAX_SLOTS as i32 {
                    return None;
                }
                self.push(new);
                req = new;
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
        match alloc_rqst(xprt) {
            Some(req) => reqs.push(req, kernel::alloc::flags::GFP_KERNEL)?,
            None => {
                for &req in reqs.iter() {
                    // SAFETY: allocated above and never listed.
                    unsafe { free_rqst(req) };
                }
                return Err(ENOMEM);
            }
        }
    }
    let pool = PoolGuard::lock(xprt);
    for &req in reqs.iter() {
        // SAFETY: a new request of this transport.
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
            free_rqst(req);
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
                pool.take(xid, new)
            }
        };
        if let Some(spare) = new {
            if found != Some(spare) {
                // SAFETY: allocated below and not added to the pool.
                unsafe { free_rqst(spare) };
            }
        }
        if let Some(req) = found {
            // SAFETY: a request on the pool's list stays allocated until the
            // receive worker, the caller, completes it, or `destroy`, which
            // holds the receive lock, frees it.
            return Some(unsafe { Rqst::from_raw(req) });
        }
        if continued || new.is_some() {
            return None;
        }
        new = Some(alloc_rqst(xprt)?);
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
    let kept = {
        let pool = PoolGuard::lock(xprt);
        let x = pool.raw();
        // SAFETY: the lock is held; `req` is on no list.
        unsafe {
            if (*x).bc_alloc_count < (*x).bc_alloc_max {
                reinit_xdr_buf(&mut (*req).rq_snd_buf);
                reinit_xdr_buf(&mut (*req).rq_rcv_buf);
                (*req).rq_rcv_buf.len = PAGE_SIZE as u32;
                pool.push(req);
                true
            } else {
                false
            }
        }
    };
    if !kept {
        // SAFETY: the last session went away while `req` was in use.
        unsafe { free_rqst(req) };
    }
    // SAFETY: drops the reference `complete` took; `xprt` is not used after.
    unsafe { sys::xprt_put(xprt.as_raw()) };
}
