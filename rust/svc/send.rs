// SPDX-License-Identifier: GPL-2.0

//! Sending replies: `xpo_sendto`, and `xpo_has_wspace`, which keeps a
//! connection without the peer's credit from a server thread.

use core::ffi::c_int;

use kernel::error::code::{EAGAIN, EINVAL};

use super::{Conn, SvcVsock};
use crate::record;
use crate::sunrpc::svc_rqst::SvcRqst;
use crate::sys;

impl SvcVsock {
    /// `xpo_has_wspace`: whether a reply could be sent now.
    fn has_wspace(&self) -> bool {
        self.conn.is_none() || self.sock.peer_has_credit()
    }

    /// `xpo_sendto`: sends the reply of `rqstp` as one record.
    fn sendto(&self, rqstp: &SvcRqst) -> c_int {
        let Some(conn) = &self.conn else {
            return errno!(ENOTCONN).to_errno();
        };
        let xprt = self.xprt();
        let _serialised = xprt.lock_send();
        if xprt.is_dead() {
            return errno!(ENOTCONN).to_errno();
        }
        // SAFETY: `rq_res` is as `SvcRqst::res` describes: linear-map head
        // and tail, page data in pages SUNRPC holds references on, which can
        // be referenced.
        match unsafe { self.send_record(conn, "reply", rqstp.res(), true) } {
            Some(n) => n as c_int,
            None => EAGAIN.to_errno(),
        }
    }

    /// Sends `buf` as one record on `conn`, which the caller serialises with
    /// `xpt_mutex`, its page data by reference if `zerocopy` and the
    /// connection allows it. A short or failed send logs why, calling the
    /// record `what`, and closes the connection: the stream is out of step.
    /// Returns the bytes sent, marker included, if the whole record went.
    ///
    /// # Safety
    ///
    /// `buf` must be as [`crate::sunrpc::svc_rqst::ReplyVec::send_xdr`]
    /// requires, with pages that can be referenced if `zerocopy`.
    pub(super) unsafe fn send_record(
        &self,
        conn: &Conn,
        what: &str,
        buf: &sys::xdr_buf,
        zerocopy: bool,
    ) -> Option<usize> {
        let len = buf.len as usize;
        let mut state = conn.send.lock();
        let state = &mut *state;
        let zerocopy = if zerocopy {
            state.zerocopy.as_ref()
        } else {
            None
        };
        let sent = record::single_fragment_marker(len)
            .map_err(|_| EINVAL)
            .and_then(|marker| {
                state.marker = marker;
                // SAFETY: `buf` is as `send_xdr` requires (the caller's
                // guarantee); the marker lives in the connection's state.
                unsafe {
                    state
                        .reply
                        .send_xdr(&self.sock, &mut state.marker, buf, zerocopy)
                }
            });
        match sent {
            Ok(n) if n == len + record::MARKER_LEN => return Some(n),
            Ok(n) => conn.notice(format_args!("sent {n} of {len} {what} bytes")),
            Err(e) => conn.notice(format_args!("{what} of {len} bytes failed ({e:?})")),
        }
        self.xprt().deferred_close();
        None
    }
}

/// # Safety
///
/// Only called by SUNRPC as `xpo_has_wspace` on a live transport of the
/// class.
pub(super) unsafe extern "C" fn xv_svc_has_wspace(xprt: *mut sys::svc_xprt) -> c_int {
    // SAFETY: `svc_xprt_ready()` asks about a transport it holds, which, as
    // every transport of the class, is an instance's `xprt`.
    let this = unsafe { SvcVsock::from_xprt(xprt) };
    c_int::from(this.has_wspace())
}

/// # Safety
///
/// Only called by SUNRPC as `xpo_sendto`, by the thread that owns `rqstp`,
/// whose transport is a live one of the class.
pub(super) unsafe extern "C" fn xv_svc_sendto(rqstp: *mut sys::svc_rqst) -> c_int {
    // SAFETY: `svc_send()` passes the calling thread's own request, for the
    // duration of this call.
    let rqstp = unsafe { SvcRqst::from_raw(rqstp) };
    // SAFETY: the request holds its transport, of the class, so an
    // instance's `xprt`.
    let this = unsafe { SvcVsock::from_xprt(rqstp.xprt()) };
    this.sendto(rqstp)
}
