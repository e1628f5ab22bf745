// SPDX-License-Identifier: GPL-2.0

//! The server half of the NFSv4.1 backchannel: `xprt_class` "vsock NFSv4.1
//! backchannel" (ident `XPRT_TRANSPORT_BC_VSOCK`).
//!
//! nfsd sends callbacks to an NFSv4.1+ client on the connection the client
//! created its session on. For that it creates an RPC client whose
//! transport has our class's ident with `XPRT_TRANSPORT_BC` added; that
//! transport sends each callback as a record on the [`SvcVsock`] connection,
//! under the same `xpt_mutex` as replies, and the connection's receive hands
//! REPLY records to it ([`deliver_reply`]). It never connects: it is
//! connected while the connection lives, as xprtsock's backchannel is.

use core::cell::UnsafeCell;
use core::ffi::c_int;
use core::mem::size_of;
use core::ptr;

use kernel::error::{code::*, Result};
use kernel::types::Opaque;

use super::SvcVsock;
use crate::sunrpc::rqst::Rqst;
use crate::sunrpc::svc_rqst::SvcRqst;
use crate::sunrpc::svc_xprt::{Flag, SvcXprt};
use crate::sunrpc::xprt::{dest_addr, stream_ops, Strings, Xprt, XprtClass};
use crate::sys;

/// Registers the class; the returned value unregisters it when dropped.
pub(super) fn register() -> Result<XprtClass> {
    // SAFETY: the class is a static of the C glue, registered once, here;
    // every transport holds a module reference from setup to destroy.
    unsafe { XprtClass::register(ptr::addr_of_mut!(sys::xv_bc_class)) }
}

/// A backchannel transport. The core allocates it (`xprt_alloc()`, zeroed),
/// sees only the leading `rpc_xprt` and frees it in `destroy`.
///
/// # Invariants
///
/// A `BcTransport` lives only in an allocation that [`BcTransport::setup`]
/// made with `xprt_alloc()` and initialised, until `destroy`. `xprt.ops` is
/// [`BC_OPS`] and `xprt.bc_xprt` the connection, a live [`SvcVsock`] of
/// ours, which holds a reference on the transport until SUNRPC frees the
/// connection; the transport holds one on the module. `strings` is written
/// only in setup, before the transport is shared.
#[repr(C)]
struct BcTransport {
    xprt: Opaque<sys::rpc_xprt>,
    /// Backing of `address_strings`; written in setup only.
    strings: UnsafeCell<Strings>,
}

impl BcTransport {
    /// `xprt_class::setup`: a backchannel on the connection
    /// `args->bc_xprt` to the client at `args->dstaddr`.
    ///
    /// # Safety
    ///
    /// `args` must be the core's creation arguments: `dstaddr` readable for
    /// `addrlen` bytes, `net` a live namespace, `bc_xprt` a live transport
    /// that nfsd holds while it sets up its callback client.
    unsafe fn setup(args: &sys::xprt_create) -> Result<*mut sys::rpc_xprt> {
        let conn = args.bc_xprt;
        if !SvcXprt::is_vsock(conn) {
            return Err(EINVAL);
        }
        // SAFETY: the core's arguments (the caller's guarantee).
        let dst = unsafe { dest_addr(args) }?;
        // Callbacks of one client are few and serialised by its session's
        // slots: xprtsock's backchannel slot count.
        let slots = sys::RPC_MIN_SLOT_TABLE;
        // SAFETY: `args.net` is the caller's live namespace.
        let raw = unsafe { sys::xprt_alloc(args.net, size_of::<Self>(), slots, slots) };
        if raw.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `try_module_get(THIS_MODULE)` may be called at any time;
        // `destroy` drops the reference.
        if !unsafe { sys::xv_module_get() } {
            // SAFETY: `raw` came from `xprt_alloc()` and was never shared.
            unsafe { sys::xprt_free(raw) };
            return Err(EINVAL);
        }
        let t = raw.cast::<Self>();
        // SAFETY: `xprt_alloc()` returned a zeroed, unshared allocation of
        // `size_of::<Self>()` bytes.
        unsafe {
            ptr::write(
                ptr::addr_of_mut!((*t).strings),
                UnsafeCell::new(Strings::new()),
            );
            (*raw).ops = &BC_OPS;
        }
        // SAFETY: `raw` is a transport from `xprt_alloc()`, live until
        // `destroy`, which cannot run before the core has it.
        let x = unsafe { Xprt::from_raw(raw) };
        x.init_bc(&dst);
        // SAFETY: `strings` was initialised above and, the transport not
        // being shared yet, nothing else refers to it.
        unsafe { (*(*t).strings.get()).publish(x, dst.svm_cid, dst.svm_port) };
        // The connection keeps the transport, and this reference, for as
        // long as it lives, in case nfsd needs a backchannel on it again.
        // INVARIANT: `ops` and `strings` are set, `bc_xprt` is the
        // connection, which takes the reference below; the module reference
        // was taken above.
        // SAFETY: `raw` is live; `conn` is a live connection of ours (its
        // class was checked above), which nfsd holds while it sets up its
        // callback client.
        unsafe {
            sys::xprt_get(raw);
            (*raw).bc_xprt = conn;
            SvcVsock::from_xprt(conn).xprt().set_bc_xprt(raw);
        }
        Ok(raw)
    }
}

impl SvcVsock {
    /// Sends the callback `req` as one record on this connection.
    fn send_callback(&self, req: &Rqst) -> Result {
        let Some(conn) = &self.conn else {
            return Err(errno!(ENOTCONN));
        };
        let xprt = self.xprt();
        // Replies and callbacks share the connection.
        let _serialised = xprt.lock_send()?;
        if xprt.test(Flag::DEAD) {
            return Err(errno!(ENOTCONN));
        }
        req.stamp_xmit_time();
        // SAFETY: the core built the call in a buffer from `rpc_malloc()`
        // and, for page data, pages it holds until the request is released;
        // they are copied, not referenced.
        match unsafe { self.send_record(conn, "callback", req.snd_buf(), false) } {
            Some(_) => Ok(()),
            // The connection is closing: the stream is out of step.
            None => Err(errno!(ENOTCONN)),
        }
    }
}

/// Completes the callback that the REPLY record at the start of `rqstp`'s
/// receive buffer, `len` bytes, answers; drops the record if no callback
/// waits for it or it does not fit the callback's reply buffer.
pub(super) fn deliver_reply(conn: &SvcXprt, rqstp: &SvcRqst, len: u32) {
    let bc = conn.bc_xprt();
    if bc.is_null() {
        return;
    }
    // SAFETY: the connection holds a reference on its backchannel
    // transport until SUNRPC frees the connection.
    let x = unsafe { Xprt::from_raw(bc) };
    let head = rqstp.arg_head();
    // Callback replies are small: the whole record is in the head.
    if head.len() != len as usize || head.len() < 4 {
        return;
    }
    let xid = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]);
    x.with_queue_lock(|q| {
        if let Some(req) = q.lookup_rqst(xid) {
            if req.set_reply_head(q, head) {
                req.complete(q, head.len());
            }
        }
    });
}

/// The `rpc_xprt_ops` of backchannel transports: the client transport's
/// [`stream_ops`] and ours. No connect: the transport is connected while the
/// connection lives, and nfsd's callbacks never ask to connect.
static BC_OPS: sys::rpc_xprt_ops = {
    let mut ops = stream_ops();
    ops.send_request = Some(xv_bc_send_request);
    ops.close = Some(xv_bc_close);
    ops.destroy = Some(xv_bc_destroy);
    ops.print_stats = Some(xv_bc_print_stats);
    ops.inject_disconnect = Some(xv_bc_inject_disconnect);
    ops
};

/// `xprt_class::setup` of the backchannel class.
///
/// # Safety
///
/// Only called by the core's `xprt_create_transport()`, for our class, with
/// the arguments of nfsd's `rpc_create()` for a session's callbacks.
#[no_mangle]
unsafe extern "C" fn xv_bc_setup(args: *mut sys::xprt_create) -> *mut sys::rpc_xprt {
    // SAFETY: the core passes valid creation arguments: `dstaddr` readable
    // for `addrlen` bytes, `net` a live namespace and, for a backchannel,
    // `bc_xprt` the connection nfsd sets it up on.
    match unsafe { BcTransport::setup(&*args) } {
        Ok(xprt) => xprt,
        Err(e) => e.to_ptr(),
    }
}

/// `send_request`.
///
/// # Safety
///
/// Only called by the core's `xprt_request_transmit()` through [`BC_OPS`],
/// by the task that holds `XPRT_LOCKED` on one of our backchannel
/// transports, with a request of that transport.
unsafe extern "C" fn xv_bc_send_request(req: *mut sys::rpc_rqst) -> c_int {
    // SAFETY: the sending task holds `req` for the whole call.
    let req = unsafe { Rqst::from_raw(req) };
    // SAFETY: the request's transport is one of ours, so its `bc_xprt` is a
    // live connection (type invariant): the connection outlives the
    // transport, which the sender holds.
    let conn = unsafe { SvcVsock::from_xprt((*req.xprt_raw()).bc_xprt) };
    match conn.send_callback(req) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `close`: the connection is the fore channel's; only the state changes.
///
/// # Safety
///
/// Only called through [`BC_OPS`], for one of our backchannel transports, by
/// the core's autoclose work or by `svc_delete_xprt()` for its connection,
/// which holds a reference on it.
unsafe extern "C" fn xv_bc_close(xprt: *mut sys::rpc_xprt) {
    // SAFETY: `xprt` is one of ours, held by the caller.
    unsafe { Xprt::from_raw(xprt) }.disconnect_done();
}

/// `destroy`: the last reference is gone.
///
/// # Safety
///
/// Only called by the core's destroy work through [`BC_OPS`], once, for one
/// of our backchannel transports whose last reference is gone.
unsafe extern "C" fn xv_bc_destroy(xprt: *mut sys::rpc_xprt) {
    // SAFETY: the last reference is gone, so nothing uses the transport; it
    // is a `BcTransport` that setup initialised in an `xprt_alloc()`
    // allocation and that holds a module reference (type invariant).
    unsafe {
        ptr::drop_in_place(xprt.cast::<BcTransport>());
        sys::xprt_free(xprt);
        sys::xv_module_put();
    }
}

/// `print_stats`, in the format of the client transport's line.
///
/// # Safety
///
/// Only called by the core's `do_print_stats()` through [`BC_OPS`], for one
/// of our backchannel transports, which it holds, and the file being shown.
unsafe extern "C" fn xv_bc_print_stats(xprt: *mut sys::rpc_xprt, seq: *mut sys::seq_file) {
    // SAFETY: `xprt` is held by the caller; `seq` is the file being shown.
    unsafe { Xprt::from_raw(xprt).print_stats(seq, 0) };
}

/// `inject_disconnect` (CONFIG_FAIL_SUNRPC): the connection belongs to the
/// fore channel, which has its own fault injection.
extern "C" fn xv_bc_inject_disconnect(_xprt: *mut sys::rpc_xprt) {}
