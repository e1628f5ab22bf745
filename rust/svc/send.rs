// SPDX-License-Identifier: GPL-2.0

//! Sending replies: `xpo_sendto`, and `xpo_has_wspace`, which keeps a
//! connection without the peer's credit from a server thread.

use core::ffi::c_int;

use kernel::error::code::{EAGAIN, EINVAL};

use super::SvcVsock;
use crate::record;
use crate::sunrpc::svc_xprt::SvcRqst;
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
        let len = rqstp.reply_len();
        let mut state = conn.send.lock();
        let state = &mut *state;
        let sent = record::single_fragment_marker(len as usize)
            .map_err(|_| EINVAL)
            .and_then(|marker| {
                state.marker = marker;
                state.reply.send(
                    &self.sock,
                    &mut state.marker,
                    rqstp,
                    state.zerocopy.as_ref(),
                )
            });
        match sent {
            Ok(n) if n == len as usize + record::MARKER_LEN => n as c_int,
            Ok(n) => {
                conn.notice(format_args!("sent {n} of {len} reply bytes"));
                xprt.deferred_close();
                EAGAIN.to_errno()
            }
            Err(e) => {
                conn.notice(format_args!("reply of {len} bytes failed ({e:?})"));
                xprt.deferred_close();
                EAGAIN.to_errno()
            }
        }
    }
}

/// # Safety
///
/// Only called by SUNRPC as `xpo_has_wspace` on a live transport of the
/// class.
pub(super) unsafe extern "C" fn xv_svc_has_wspace(xprt: *mut sys::svc_xprt) -> c_int {
    // SAFETY: by the function's safety requirements.
    let this = unsafe { SvcVsock::from_xprt(xprt) };
    c_int::from(this.has_wspace())
}

/// # Safety
///
/// Only called by SUNRPC as `xpo_sendto`, by the thread that owns `rqstp`,
/// whose transport is a live one of the class.
pub(super) unsafe extern "C" fn xv_svc_sendto(rqstp: *mut sys::svc_rqst) -> c_int {
    // SAFETY: by the function's safety requirements.
    let rqstp = unsafe { SvcRqst::from_raw(rqstp) };
    // SAFETY: the request's transport is live and of the class.
    let this = unsafe { SvcVsock::from_xprt(rqstp.xprt()) };
    this.sendto(rqstp)
}
