// SPDX-License-Identifier: GPL-2.0

//! Sending replies: `xpo_sendto`, and `xpo_has_wspace`, which keeps a
//! connection without the peer's credit from a server thread.
//!
//! A peer that does not read its replies holds every thread that carries
//! one of its calls, as on TCP. Two bounds keep that from growing: a
//! record may wait [`SEND_TIMEOUT_MS`] in all for the peer's credit before
//! the connection is closed, and while a record waits no thread takes
//! another call from the connection, whatever credit trickles in.

use core::ffi::c_int;
use core::sync::atomic::Ordering;

use kernel::error::code::{EAGAIN, EINTR, EINVAL};

use super::{Conn, SvcVsock};
use crate::record;
use crate::sunrpc::svc_rqst::SvcRqst;
use crate::sunrpc::svc_xprt::Flag;
use crate::sys;
use crate::vsock::Deadline;

/// How long a record may wait for the peer's credit, in all (30 s, svcsock's
/// send timeout): a peer that stops reading loses its connection rather
/// than server threads. A client that reads, however slowly, drains a 1 MiB
/// reply in well under a second even under emulation.
const SEND_TIMEOUT_MS: u32 = 30_000;

impl SvcVsock {
    /// `xpo_has_wspace`: whether a thread may take a call from the
    /// transport: from a connection only while no record waits for the
    /// peer's credit, the peer has granted some, and the peer's CID is
    /// within its share of the threads. A deferred request counts already.
    fn has_wspace(&self) -> bool {
        match &self.conn {
            Some(conn) => {
                !conn.stalled.load(Ordering::SeqCst)
                    && self.sock.peer_credit() > 0
                    && (self.xprt().test(Flag::DEFERRED) || conn.slot.may_queue(self.xprt()))
            }
            None => true,
        }
    }

    /// `xpo_sendto`: sends the reply of `rqstp` as one record.
    fn sendto(&self, rqstp: &SvcRqst) -> c_int {
        let Some(conn) = &self.conn else {
            return errno!(ENOTCONN).to_errno();
        };
        let xprt = self.xprt();
        let Ok(_serialised) = xprt.lock_send() else {
            return EINTR.to_errno();
        };
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
    /// connection allows it, waiting up to [`SEND_TIMEOUT_MS`] for credit. A
    /// short or failed send logs why, calling the record `what`, and closes
    /// the connection: the stream is out of step. Returns the bytes sent,
    /// marker included, if the whole record went.
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
        // A record the peer has no room for yet keeps further calls of the
        // connection from threads until it is out.
        let stalled = self.sock.peer_credit() < (len + record::MARKER_LEN) as u64;
        if stalled {
            conn.stalled.store(true, Ordering::SeqCst);
        }
        let deadline = Deadline::in_ms(SEND_TIMEOUT_MS);
        let sent = record::single_fragment_marker(len)
            .map_err(|_| EINVAL)
            .and_then(|marker| {
                state.marker = marker;
                // SAFETY: `buf` is as `send_xdr` requires (the caller's
                // guarantee); the marker lives in the connection's state.
                unsafe {
                    state
                        .reply
                        .send_xdr(&self.sock, &mut state.marker, buf, zerocopy, deadline)
                }
            });
        if stalled {
            conn.stalled.store(false, Ordering::SeqCst);
            // The calls that arrived meanwhile may go to threads again.
            self.xprt().enqueue();
        }
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
