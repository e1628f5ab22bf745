// SPDX-License-Identifier: GPL-2.0

//! Sending a request: one record, resumed after a partial send, waiting
//! for the peer's credit with `NOSPACE`.

use core::ptr;

use kernel::error::{code::EAGAIN, Result};

use super::{Transport, NOSPACE};
use crate::record;
use crate::sunrpc::rqst::{self, Rqst};
use crate::sunrpc::xprt::XprtLocked;
use crate::sys;
use crate::vsock::{Socket, ZeroCopy};

impl Transport {
    /// Sends `req`'s record, resuming a partial send; for the holder of
    /// `XPRT_LOCKED` on this transport (the core's `send_request`).
    fn send_request(&self, locked: &mut XprtLocked<'_>, req: &Rqst) -> Result {
        // SAFETY: `xmit_offset` belongs to the holder of XPRT_LOCKED (type
        // invariant), borrowed exclusively here; `abort_send_request` reads
        // it through the pointer, without a reference.
        let offset = unsafe { &mut *self.xmit_offset.get() };
        let sock = self.sock_locked(locked);
        // A record cut short by an aborted request leaves the stream out of
        // step: only a new connection repairs it.
        if *offset != 0 && req.bytes_sent() == 0 {
            if let Some(sock) = sock {
                sock.shutdown();
            }
            // A local shutdown raises no state change: disconnect here.
            self.xprt().force_disconnect();
            return Err(errno!(ENOTCONN));
        }
        let Some(sock) = sock else {
            return Err(errno!(ENOTCONN));
        };
        let marker = record::single_fragment_marker(req.snd_len()).map_err(|_| errno!(EMSGSIZE))?;
        let total = req.snd_len() + record::MARKER_LEN;
        // Callback replies are encoded in the callback service's own pages,
        // which it reuses: those are copied.
        let zerocopy = if req.is_backchannel() {
            None
        } else {
            self.zerocopy_for(locked, sock)
        };
        req.stamp_xmit_time();
        loop {
            match req.send_from(sock, &marker, *offset, zerocopy) {
                Ok(0) => return self.nospace(sock),
                Ok(n) => {
                    *offset += n;
                    req.set_bytes_sent(*offset);
                    if *offset >= total {
                        req.add_xmit_bytes(*offset);
                        *offset = 0;
                        return Ok(());
                    }
                }
                Err(e) if e == EAGAIN => return self.nospace(sock),
                Err(e) if e == errno!(ENOTSOCK) => return Err(errno!(ENOTCONN)),
                Err(e) => return Err(e),
            }
        }
    }

    /// The handle to send request pages by reference on `sock`, the current
    /// socket, if its vsock transport allows it (as xprtsock splices pages
    /// into TCP). Asked once per socket, after it connected: vsock refuses
    /// connects over a transport without zero-copy on a socket asked before.
    fn zerocopy_for(&self, _locked: &XprtLocked<'_>, sock: &Socket) -> Option<&ZeroCopy> {
        // SAFETY: it belongs to the holder of XPRT_LOCKED (type invariant);
        // the other writer, `replace_sock`, needs `locked` exclusively.
        let allowed = unsafe { &mut *self.sock_zerocopy.get() };
        let zerocopy = self.zerocopy.as_ref()?;
        if allowed.is_none() {
            *allowed = Some(sock.enable_zerocopy());
        }
        allowed.unwrap_or(false).then_some(zerocopy)
    }

    /// The peer's credit ran out: wait for `sk_write_space`.
    fn nospace(&self, sock: &Socket) -> Result {
        let x = self.xprt();
        let waited = sock.if_no_space(|| {
            x.with_transport_lock(|locked| {
                // Don't race with disconnect.
                if x.connected() {
                    self.set_flag(NOSPACE);
                    locked.wait_for_buffer_space();
                    Ok(())
                } else {
                    Err(errno!(ENOTCONN))
                }
            })
        });
        match waited {
            Some(Err(e)) => Err(e),
            _ => Err(EAGAIN),
        }
    }

    fn abort_send_request(&self) {
        // SAFETY: a racy read is harmless: at worst a needless reconnect,
        // as in xprtsock.
        let offset = unsafe { ptr::read_volatile(self.xmit_offset.get()) };
        let x = self.xprt();
        if offset != 0 && !x.close_wait() {
            x.force_disconnect();
        }
    }
}

/// `prepare_request`: the `bio_vec` array for the pages of `buf`.
///
/// # Safety
///
/// Only called by the core's `xprt_request_prepare()` through `CLNT_OPS`,
/// with a buffer of the request that the calling task prepares.
pub(super) unsafe extern "C" fn xv_clnt_prepare_request(
    _req: *mut sys::rpc_rqst,
    buf: *mut sys::xdr_buf,
) -> i32 {
    // SAFETY: `buf` belongs to a request being prepared, which only the
    // calling task uses meanwhile.
    match unsafe { rqst::alloc_bvec(buf) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `send_request`.
///
/// # Safety
///
/// Only called by the core's `xprt_request_transmit()` through `CLNT_OPS`,
/// by the task that holds `XPRT_LOCKED` on one of our transports, with a
/// request of that transport.
pub(super) unsafe extern "C" fn xv_clnt_send_request(req: *mut sys::rpc_rqst) -> i32 {
    // SAFETY: the sending task holds `req` for the whole call.
    let req = unsafe { Rqst::from_raw(req) };
    // SAFETY: the request's transport is one of ours, held by the sender.
    let t = unsafe { Transport::from_xprt(req.xprt_raw()) };
    // SAFETY: the sending task holds XPRT_LOCKED around this call (the
    // function's requirement).
    let mut locked = unsafe { XprtLocked::new(t.xprt()) };
    match t.send_request(&mut locked, req) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `abort_send_request`.
///
/// # Safety
///
/// Only called by the core's `xprt_request_dequeue_transmit_locked()`
/// through `CLNT_OPS`, under `queue_lock`, for a request of one of our
/// transports that its task still holds.
pub(super) unsafe extern "C" fn xv_clnt_abort_send_request(req: *mut sys::rpc_rqst) {
    // SAFETY: the request's task holds `req` for the whole call.
    let req = unsafe { Rqst::from_raw(req) };
    // SAFETY: the request's transport is one of ours, held by that task.
    unsafe { Transport::from_xprt(req.xprt_raw()) }.abort_send_request();
}
