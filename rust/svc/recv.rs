// SPDX-License-Identifier: GPL-2.0

//! Receiving: `xpo_recvfrom` reads a connection's records into the server
//! thread's pages and hands calls to nfsd, replies to the backchannel.

use core::ffi::{c_int, c_void};
use core::fmt;
use core::ptr;

use kernel::prelude::*;

#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
use super::backchannel;
use super::{Conn, SvcVsock};
use crate::record::{self, Progress, RecordDecoder, Want};
use crate::sunrpc::svc_rqst::SvcRqst;
use crate::sunrpc::svc_xprt::Flag;
use crate::sunrpc::{RecvStop, RPC_CALL, RPC_HEADER_LEN};
use crate::sys;

/// How a receive ended without a record for the server: it goes on with
/// the next receive (`Again`) or closes the connection, logging the reason
/// of a `Malformed` one.
type Stop = RecvStop<CloseReason>;

/// A peer misbehaviour worth a log line.
enum CloseReason {
    Record(record::RecordError),
    Short(u32),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Record(e) => write!(f, "{e}"),
            Self::Short(len) => write!(f, "record of {len} bytes is too short for an RPC message"),
        }
    }
}

impl SvcVsock {
    /// `xpo_recvfrom`: receives what has arrived of the next record and
    /// returns its length once it is complete, 0 until then, or while the
    /// peer's CID has its share of the threads.
    fn recvfrom(&self, rqstp: &SvcRqst) -> c_int {
        let xprt = self.xprt();
        let ret = match &self.conn {
            Some(conn) => self.recv_call(conn, rqstp),
            None => 0,
        };
        // Lets another thread take the transport; not touched after this.
        // SAFETY: this thread holds XPT_BUSY on the live transport.
        unsafe { sys::svc_xprt_received(xprt.as_raw()) };
        ret
    }

    /// Receives a call that counts for the CID's share of the threads until
    /// the request is released; leaves the data queued (`XPT_DATA` set, the
    /// connection held back) while the CID has its share.
    fn recv_call(&self, conn: &Conn, rqstp: &SvcRqst) -> c_int {
        let Some(call) = conn.slot.begin_call(self.xprt()) else {
            rqstp.set_reply_pages(0);
            return 0;
        };
        let len = self.recv_record(conn, rqstp);
        if len > 0 {
            rqstp.set_xprt_ctxt(ptr::from_ref(conn).cast_mut().cast::<c_void>());
            call.keep();
        }
        len
    }

    fn recv_record(&self, conn: &Conn, rqstp: &SvcRqst) -> c_int {
        let xprt = self.xprt();
        xprt.clear(Flag::DATA);
        let mut state = conn.recv.lock();
        let state = &mut *state;
        rqstp.restore_pages(&mut state.saved);
        let len = match self.recv_loop(&mut state.decoder, rqstp) {
            Ok(len) => len,
            Err(stop) => {
                let kept = state.decoder.record_offset();
                match stop {
                    Stop::Again => rqstp.save_pages(&mut state.saved, kept),
                    Stop::Eof | Stop::Error(_) => xprt.deferred_close(),
                    Stop::Malformed(reason) => {
                        conn.notice(format_args!("{reason}"));
                        xprt.deferred_close();
                    }
                }
                rqstp.set_reply_pages(kept);
                return 0;
            }
        };
        rqstp.set_reply_pages(len);
        // More records may be queued behind this one.
        xprt.set(Flag::DATA);
        if (len as usize) < RPC_HEADER_LEN {
            conn.notice(format_args!("{}", CloseReason::Short(len)));
            xprt.deferred_close();
            return 0;
        }
        rqstp.set_call(len, conn.peer.port < sys::PROT_SOCK, xprt.test(Flag::LOCAL));
        if rqstp.arg_word(1) != RPC_CALL {
            return self.backchannel_reply(rqstp, len);
        }
        len as c_int
    }

    /// Reads until a record is complete or the socket is drained.
    fn recv_loop(&self, decoder: &mut RecordDecoder, rqstp: &SvcRqst) -> Result<u32, Stop> {
        loop {
            let got = match decoder.want() {
                Want::Marker(buf) => self.sock.recv(buf),
                Want::Payload { offset, len } => rqstp.recv_payload(&self.sock, offset, len),
            };
            let n = Stop::from_read(got)?;
            match decoder.consumed(n) {
                Ok(Progress::Record { len }) => return Ok(len),
                Ok(Progress::Incomplete) => {}
                Err(e) => return Err(Stop::Malformed(CloseReason::Record(e))),
            }
        }
    }

    /// A REPLY-direction record: the answer to a callback nfsd sent on this
    /// connection (NFSv4.1 backchannel), for the backchannel transport.
    /// Either way nfsd has no call to process.
    fn backchannel_reply(&self, rqstp: &SvcRqst, len: u32) -> c_int {
        #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
        backchannel::deliver_reply(self.xprt(), rqstp, len);
        #[cfg(not(CONFIG_SUNRPC_BACKCHANNEL))]
        let _ = (rqstp, len);
        0
    }
}

/// # Safety
///
/// Only called by SUNRPC as `xpo_recvfrom`, by the thread that owns
/// `rqstp` and holds `XPT_BUSY` on its live transport of the class.
pub(super) unsafe extern "C" fn xv_svc_recvfrom(rqstp: *mut sys::svc_rqst) -> c_int {
    // SAFETY: `svc_handle_xprt()` passes the calling thread's own request,
    // its receive pages allocated, for the duration of this call.
    let rqstp = unsafe { SvcRqst::from_raw(rqstp) };
    // SAFETY: the thread holds `XPT_BUSY` and a reference on the request's
    // transport, of the class, so an instance's `xprt`.
    let this = unsafe { SvcVsock::from_xprt(rqstp.xprt()) };
    this.recvfrom(rqstp)
}
