// SPDX-License-Identifier: GPL-2.0

//! The client half of the NFSv4.1 backchannel: the `bc_*` entries of the
//! ops table, over the pool of callback requests in
//! [`crate::sunrpc::bc_pool`].
//!
//! The server's callbacks arrive as CALL records on the fore channel's
//! connection. The receive worker ([`super::recv`]) reads each into a
//! request of the pool and queues it for the NFS callback service, which
//! sends its reply through the transport's `send_request` and hands the
//! request back with `bc_free_rqst`.

use super::Transport;
use crate::sunrpc::bc_pool::{destroy, free, setup, MAX_SLOTS};
use crate::sys;

/// Largest callback the backchannel takes, as xprtsock's: the one page
/// each request of the pool receives into.
const BC_MAX_PAYLOAD: usize = kernel::page::PAGE_SIZE;

/// `bc_setup`: a new session's callbacks need `min_reqs` more requests.
///
/// # Safety
///
/// Only called by the NFS client's `xprt_setup_backchannel()` through
/// `CLNT_OPS`, for one of our transports, which it holds.
pub(super) unsafe extern "C" fn xv_clnt_bc_setup(xprt: *mut sys::rpc_xprt, min_reqs: u32) -> i32 {
    // SAFETY: `xprt` is one of ours, held by the caller.
    let t = unsafe { Transport::from_xprt(xprt) };
    match setup(t.xprt(), min_reqs) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `bc_maxpayload`.
pub(super) extern "C" fn xv_clnt_bc_maxpayload(_xprt: *mut sys::rpc_xprt) -> usize {
    BC_MAX_PAYLOAD
}

/// `bc_num_slots`.
pub(super) extern "C" fn xv_clnt_bc_num_slots(_xprt: *mut sys::rpc_xprt) -> u32 {
    MAX_SLOTS
}

/// `bc_free_rqst`: the callback service is done with a callback request.
///
/// # Safety
///
/// Only called by the core's `xprt_free_bc_request()` through `CLNT_OPS`,
/// once for each request [`crate::sunrpc::bc_pool::complete`] handed to
/// the callback service, when the service no longer uses it.
pub(super) unsafe extern "C" fn xv_clnt_bc_free_rqst(req: *mut sys::rpc_rqst) {
    // SAFETY: `req` came from `complete` and is the caller's no more (the
    // function's requirement).
    unsafe { free(req) };
}

/// `bc_destroy`: a session ended, or the transport goes away.
///
/// # Safety
///
/// Only called by the NFS client's `xprt_destroy_backchannel()` through
/// `CLNT_OPS`, for one of our transports, which it holds.
pub(super) unsafe extern "C" fn xv_clnt_bc_destroy(xprt: *mut sys::rpc_xprt, max_reqs: u32) {
    // SAFETY: `xprt` is one of ours, held by the caller.
    let t = unsafe { Transport::from_xprt(xprt) };
    // The receive worker may be filling a request of the pool.
    let _receiving = t.recv_lock();
    destroy(t.xprt(), max_reqs);
}
