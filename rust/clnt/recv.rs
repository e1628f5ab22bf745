// SPDX-License-Identifier: GPL-2.0

//! Receiving: the receive worker reads records off the socket, completes
//! the requests their replies answer and hands the server's callbacks to
//! the backchannel pool.

use kernel::error::Result;

use super::{Transport, DATA_READY};
use crate::record::{self, Limits, Progress, RecordDecoder, Want};
#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
use crate::sunrpc::bc_pool;
use crate::sunrpc::rqst::{ReadStop, Rqst};
use crate::sunrpc::{RecvStop, RPC_CALL, RPC_HEADER_LEN as HDR_LEN, RPC_REPLY};
use crate::sys;
use crate::vsock::Socket;

/// Longest reply record accepted: well above the 1 MiB rsize/READDIR
/// replies plus headers. Longer records are taken as a broken peer.
const MAX_REPLY_LEN: u32 = 8 << 20;

/// Where the payload of the record being received goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Into `Receiver::hdr`: XID and direction are not complete yet.
    Header,
    /// Into the receive buffer of the request with the record's XID.
    Reply,
    /// Into a request of the backchannel pool: a callback from the server.
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    Callback,
    /// Nowhere: unknown XID, retransmitted request, or a callback nobody
    /// serves.
    Discard,
}

/// Receive state of one connection, protected by `Transport::recv_mutex`.
pub(super) struct Receiver {
    decoder: RecordDecoder,
    hdr: [u8; HDR_LEN],
    target: Target,
    /// Bytes of the record copied into the request (0: none yet).
    copied: usize,
    /// The peer sent garbage; nothing more is read from this connection.
    broken: bool,
}

impl Receiver {
    pub(super) fn new() -> Self {
        Self {
            decoder: RecordDecoder::new(Limits::with_max_record_len(MAX_REPLY_LEN)),
            hdr: [0; HDR_LEN],
            target: Target::Header,
            copied: 0,
            broken: false,
        }
    }

    /// The XID in wire byte order, as the core keeps it.
    fn xid(&self) -> u32 {
        u32::from_ne_bytes([self.hdr[0], self.hdr[1], self.hdr[2], self.hdr[3]])
    }

    fn calldir(&self) -> u32 {
        u32::from_be_bytes([self.hdr[4], self.hdr[5], self.hdr[6], self.hdr[7]])
    }

    /// Puts the record's header into `req`, unless it is there already.
    fn header_into(&mut self, req: &Rqst) {
        if self.copied == 0 {
            req.copy_header(&self.hdr);
            self.copied = HDR_LEN;
        }
    }
}

/// Why the receive loop stops; a malformed record names its fault.
type Stop = RecvStop<&'static kernel::str::CStr>;

fn malformed(_: record::RecordError) -> Stop {
    Stop::Malformed(kernel::c_str!("bad record marking"))
}

impl Transport {
    fn recv_worker(&self) {
        // SAFETY: `memalloc_nofs_save()` only marks the current task, which
        // the matching restore below unmarks; receiving must not recurse
        // into NFS.
        let nofs = unsafe { sys::xv_clnt_memalloc_nofs_save() };
        let mut guard = self.recv_lock();
        // Cleared first: data that arrives from now on queues us again.
        self.test_and_clear_flag(DATA_READY);
        if let (Some(sock), rx) = guard.sock_and_receiver() {
            if !rx.broken {
                let stop = loop {
                    if let Err(stop) = self.recv_step(sock, rx) {
                        break stop;
                    }
                    // A server that streams without pause must not keep
                    // the CPU, as in xprtsock's stream receive.
                    // SAFETY: the worker may sleep here: it holds only
                    // `recv_mutex`, a mutex.
                    unsafe { sys::xv_clnt_cond_resched() };
                };
                self.recv_stopped(rx, stop);
            }
        }
        drop(guard);
        // SAFETY: `nofs` came from the matching save, on this task.
        unsafe { sys::xv_clnt_memalloc_nofs_restore(nofs) };
    }

    fn recv_stopped(&self, rx: &mut Receiver, stop: Stop) {
        let x = self.xprt();
        match stop {
            Stop::Again => {}
            Stop::Eof => x.force_disconnect(),
            Stop::Error(e) => {
                x.wake_pending(e.to_errno());
                x.force_disconnect();
            }
            Stop::Malformed(what) => {
                rx.broken = true;
                x.warn_ratelimited(what);
                x.force_disconnect();
            }
        }
    }

    /// Reads what the decoder wants next, once.
    fn recv_step(&self, sock: &Socket, rx: &mut Receiver) -> Result<(), Stop> {
        let (offset, len) = match rx.decoder.want() {
            Want::Marker(buf) => {
                let n = Stop::from_read(sock.recv(buf))?;
                let progress = rx.decoder.consumed(n).map_err(malformed)?;
                return self.after(rx, progress);
            }
            Want::Payload { offset, len } => (offset as usize, len as usize),
        };
        if offset < HDR_LEN {
            let end = HDR_LEN.min(offset + len);
            let n = Stop::from_read(sock.recv(&mut rx.hdr[offset..end]))?;
            let progress = rx.decoder.consumed(n).map_err(malformed)?;
            if offset + n == HDR_LEN {
                rx.target = match rx.calldir() {
                    RPC_REPLY => Target::Reply,
                    // On the client, a call is a callback from the server.
                    RPC_CALL => self.callback_target(),
                    _ => return Err(Stop::Malformed(kernel::c_str!("bad message direction"))),
                };
            }
            return self.after(rx, progress);
        }
        if matches!(rx.target, Target::Discard | Target::Header) {
            let n = Stop::from_read(sock.recv_discard(len))?;
            let progress = rx.decoder.consumed(n).map_err(malformed)?;
            return self.after(rx, progress);
        }
        self.read_payload(sock, rx, offset, len)
    }

    /// Handles the end of a record reported by the decoder.
    fn after(&self, rx: &mut Receiver, progress: Progress) -> Result<(), Stop> {
        let Progress::Record { len } = progress else {
            return Ok(());
        };
        if (len as usize) < HDR_LEN {
            return Err(Stop::Malformed(kernel::c_str!(
                "record shorter than an RPC header"
            )));
        }
        // The record ended with the bytes already held: a record of
        // nothing but its header, or one whose last fragment is empty.
        if let Some(req) = self.target_rqst(rx)? {
            rx.header_into(req);
            self.finish_rqst(rx, req, true);
        }
        rx.target = Target::Header;
        rx.copied = 0;
        Ok(())
    }

    /// Copies up to `len` bytes at record `offset` into the request that
    /// receives the record, and completes it once the record is complete.
    fn read_payload(
        &self,
        sock: &Socket,
        rx: &mut Receiver,
        offset: usize,
        len: usize,
    ) -> Result<(), Stop> {
        let Some(req) = self.target_rqst(rx)? else {
            rx.target = Target::Discard;
            return Ok(());
        };
        let filled = self.fill_rqst(sock, rx, req, offset, len);
        self.finish_rqst(rx, req, filled.ended);
        self.after_fill(rx, filled)
    }

    /// The request the record goes into, pinned if it is a reply's; `None`
    /// if the rest of the record is to be dropped.
    fn target_rqst(&self, rx: &Receiver) -> Result<Option<&Rqst>, Stop> {
        let x = self.xprt();
        let continued = rx.copied != 0;
        match rx.target {
            Target::Reply => Ok(x.with_queue_lock(|q| {
                let req = q.lookup_rqst(rx.xid())?;
                // A request that was re-queued since the first bytes
                // arrived has a fresh buffer: the rest of this reply is
                // stale.
                if continued && req.private_len(q) == 0 {
                    return None;
                }
                Some(req.pin(q))
            })),
            #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
            Target::Callback => match bc_pool::lookup(x, rx.xid(), continued) {
                Some(req) => Ok(Some(req)),
                // The pool was destroyed under the callback: drop the rest.
                None if continued => Ok(None),
                // More callbacks in flight than CREATE_SESSION allowed.
                None => Err(Stop::Malformed(kernel::c_str!(
                    "callback beyond the backchannel's slots"
                ))),
            },
            Target::Header | Target::Discard => Ok(None),
        }
    }

    /// Hands `req` the record's `rx.copied` bytes if `ended`, else notes
    /// how far a reply got; unpins a reply.
    fn finish_rqst(&self, rx: &Receiver, req: &Rqst, ended: bool) {
        let x = self.xprt();
        match rx.target {
            Target::Reply => x.with_queue_lock(|q| {
                if ended {
                    req.complete(q, rx.copied);
                } else {
                    req.set_private_len(q, rx.copied);
                }
                req.unpin(q);
            }),
            // A callback longer than its page is passed on cut short, as
            // xprtsock does; the callback service rejects it.
            #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
            Target::Callback if ended => bc_pool::complete(x, req, rx.copied),
            _ => {}
        }
    }

    /// Reads stream bytes for record offsets `[offset, offset + len)` into
    /// `req`'s receive buffer, after the record's header if none is there
    /// yet, and feeds them to the decoder.
    fn fill_rqst(
        &self,
        sock: &Socket,
        rx: &mut Receiver,
        req: &Rqst,
        offset: usize,
        len: usize,
    ) -> Filled {
        rx.header_into(req);
        let (n, stop) = req.read_private(sock, offset, offset + len);
        let progress = if n > 0 {
            rx.decoder.consumed(n)
        } else {
            Ok(Progress::Incomplete)
        };
        rx.copied = offset + n;
        let ended =
            matches!(stop, Err(ReadStop::Full)) || matches!(progress, Ok(Progress::Record { .. }));
        Filled {
            progress,
            ended,
            stop,
        }
    }

    /// Goes on after [`Transport::fill_rqst`], once the request has been
    /// completed (if `ended`) or updated.
    fn after_fill(&self, rx: &mut Receiver, filled: Filled) -> Result<(), Stop> {
        let progress = filled.progress.map_err(malformed)?;
        if let Progress::Record { .. } = progress {
            rx.target = Target::Header;
            rx.copied = 0;
            return self.after(rx, progress);
        }
        match filled.stop {
            // The record is longer than the buffer: the rest is dropped.
            Err(ReadStop::Full) => rx.target = Target::Discard,
            Err(ReadStop::Sock(r)) => {
                Stop::from_read(r)?;
            }
            Ok(()) => {}
        }
        Ok(())
    }
}

/// How [`Transport::fill_rqst`] ended.
struct Filled {
    progress: core::result::Result<Progress, record::RecordError>,
    /// The record is complete, or the request's buffer is full: the
    /// request is to be completed with `Receiver::copied` bytes.
    ended: bool,
    stop: core::result::Result<(), ReadStop>,
}

/* Receiving callbacks (NFSv4.1 backchannel). */

impl Transport {
    /// Where a CALL record goes: to the backchannel if the NFS callback
    /// service runs on this transport.
    fn callback_target(&self) -> Target {
        #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
        if self.xprt().has_bc_serv() {
            return Target::Callback;
        }
        Target::Discard
    }
}

/// The receive worker.
///
/// # Safety
///
/// Only called by the workqueue for the `recv_work` that setup initialised
/// with this function (`xv_clnt_init_xprt()`).
#[no_mangle]
unsafe extern "C" fn xv_clnt_recv_work(work: *mut sys::work_struct) {
    // SAFETY: `work` is the `recv_work` of a transport, which is live while
    // the work runs: destroy detaches the socket whose `sk_data_ready`
    // queues it, then cancels it before freeing.
    let t = unsafe { Transport::from_work(work, core::mem::offset_of!(Transport, recv_work)) };
    t.recv_worker();
}
