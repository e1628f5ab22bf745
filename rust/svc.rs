// SPDX-License-Identifier: GPL-2.0

//! The server transport: SUNRPC's transport class "vsock", for nfsd.
//!
//! `echo "vsock 2049" > /proc/fs/nfsd/portlist` makes SUNRPC load the module
//! (alias `svcvsock`) and call `xpo_create` with `{VMADDR_CID_ANY, 2049}`:
//! the result is a listener that accepts one transport instance per
//! connection. Records are framed with RFC 5531 record marking, as on TCP.
//! Listeners are never registered with rpcbind.
//!
//! Each instance is a pinned [`SvcVsock`] that SUNRPC holds through the
//! `struct svc_xprt` inside it, from `xpo_create`/`xpo_accept` until
//! `xpo_free`. SUNRPC serialises receives with the `XPT_BUSY` bit and sends
//! with `xpt_mutex`; the Rust state behind them has mutexes of its own, which
//! are therefore uncontended. Socket callbacks run in vsock's workqueue with
//! the socket locked and only set flags and enqueue the transport.
//!
//! SUNRPC itself bounds the number of connections of every class
//! (`svc_check_conn_limits()` before each `xpo_accept`), and ages idle ones.

#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
mod backchannel;

use core::ffi::{c_int, c_uint, c_void};
use core::fmt;
use core::pin::Pin;
use core::ptr;

use kernel::error::code::{EAGAIN, EINVAL};
use kernel::ffi::c_long;
use kernel::prelude::*;
use kernel::sync::{new_mutex, Mutex};
use kernel::types::{ForeignOwnable, Opaque};

use crate::addr::{self, VsockAddr};
use crate::record::{self, Limits, Progress, RecordDecoder, Want};
use crate::sunrpc::svc_xprt::{self, Flag, Owner, ReplyVec, SavedPages, SvcRqst, SvcXprt};
use crate::sys;
use crate::vsock::{CallbackSock, Callbacks, SavedCallbacks, Socket, ZeroCopy};

/// Pending connections a listener queues, as SUNRPC's TCP listeners do.
const LISTEN_BACKLOG: c_int = 64;

/// How long a reply may wait for the peer's credit, in jiffies (30 s, as on
/// TCP): a peer that stops reading loses its connection rather than a server
/// thread.
const SEND_TIMEOUT: c_long = 30 * sys::HZ as c_long;

/// Bytes of an RPC message header that tell a call from a reply: XID and
/// direction.
const CALL_HEADER_LEN: u32 = 8;

/// The "vsock" class registered with SUNRPC while the module is loaded, and
/// the class of nfsd's backchannel on its connections.
pub(crate) struct Registration {
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    _backchannel: backchannel::Registration,
}

impl Registration {
    /// Registers the classes (`svc_reg_xprt_class()`).
    pub(crate) fn new() -> Result<Self> {
        #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
        let backchannel = backchannel::Registration::new()?;
        let class = ptr::addr_of_mut!(sys::xv_svc_class);
        // SAFETY: the class is a static that nothing uses before it is
        // registered; it stays registered until `drop`, and no instance
        // outlives the module (each holds a reference on it).
        kernel::error::to_result(unsafe {
            (*class).xcl_ops = &SVC_OPS;
            sys::svc_reg_xprt_class(class)
        })?;
        Ok(Self {
            #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
            _backchannel: backchannel,
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `new` registered the class.
        unsafe { sys::svc_unreg_xprt_class(ptr::addr_of_mut!(sys::xv_svc_class)) };
    }
}

/// A transport instance: a listener or a connection.
#[pin_data]
struct SvcVsock {
    #[pin]
    xprt: Opaque<sys::svc_xprt>,
    sock: Socket,
    /// The socket's own callbacks, which ours chain to.
    own: SavedCallbacks,
    /// `None` for a listener.
    conn: Option<Pin<KBox<Conn>>>,
}

/// The state of a connection.
#[pin_data]
struct Conn {
    peer: VsockAddr,
    #[pin]
    recv: Mutex<RecvState>,
    #[pin]
    send: Mutex<SendState>,
}

/// What a receive keeps for the next one.
struct RecvState {
    decoder: RecordDecoder,
    /// The pages of a partial record.
    saved: SavedPages,
}

/// What a send needs besides the reply.
struct SendState {
    /// The record marker, in memory the socket layer can map as a page.
    marker: [u8; record::MARKER_LEN],
    reply: ReplyVec,
    /// Where vsock's transport allows it, replies pass their page data
    /// (READ and READDIR results) by reference instead of copying it into
    /// packets, as svcsock splices pages into TCP.
    zerocopy: Option<ZeroCopy>,
}

/// How a receive ended without a record for the server.
enum Stop {
    /// The rest of the record has not arrived yet.
    Incomplete,
    /// The connection must be closed; log the reason, if any.
    Close(Option<CloseReason>),
}

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
    /// The instance whose `svc_xprt` is `xprt`.
    ///
    /// # Safety
    ///
    /// `xprt` must be the `svc_xprt` of a live [`SvcVsock`] (every transport
    /// of the "vsock" class is one), live for `'a`.
    unsafe fn from_xprt<'a>(xprt: *mut sys::svc_xprt) -> &'a Self {
        let offset = core::mem::offset_of!(Self, xprt);
        // SAFETY: by the caller's guarantee `xprt` is the `xprt` field of a
        // live `SvcVsock`.
        unsafe { &*xprt.cast::<u8>().sub(offset).cast::<Self>() }
    }

    /// The instance a callback runs for.
    fn from_callback<'a>(sk: &'a CallbackSock) -> Option<&'a Self> {
        let this = sk.user_data().cast::<Self>();
        // SAFETY: `hook` installs our callbacks with the instance as user
        // data, and `unhook` removes both under the callback lock that `sk`
        // holds for reading; the instance lives until after `unhook`.
        unsafe { this.as_ref() }
    }

    fn xprt(&self) -> &SvcXprt {
        SvcXprt::from_opaque(&self.xprt)
    }

    /// Hands a new instance to SUNRPC and installs its socket callbacks.
    fn publish(this: Pin<KBox<Self>>, callbacks: &Callbacks) -> *mut sys::svc_xprt {
        let raw = this.into_foreign().cast::<Self>();
        // SAFETY: `into_foreign` leaked the instance until `xv_svc_free`
        // takes it back; it is never moved meanwhile.
        let this = unsafe { &*raw };
        this.sock.hook(raw.cast_mut().cast::<c_void>(), callbacks);
        this.xprt().as_raw()
    }

    /// `xpo_create`: a listener at `addr`.
    fn listen(owner: Owner, addr: VsockAddr) -> Result<*mut sys::svc_xprt> {
        let sock = Socket::new_stream()?;
        sock.bind_addr(addr)?;
        sock.listen(LISTEN_BACKLOG)?;
        let local = sock.local_addr()?;
        let own = sock.own_callbacks();
        let flags = [
            Flag::LISTENER,
            Flag::CONN,
            Flag::CACHE_AUTH,
            Flag::CONG_CTRL,
        ];
        let this = KBox::pin_init(
            pin_init!(Self {
                xprt <- owner.init_xprt(local, None, &flags),
                sock,
                own,
                conn: None,
            }),
            GFP_KERNEL,
        )?;
        Ok(Self::publish(this, &LISTENER_CALLBACKS))
    }

    /// `xpo_accept`: the next connection on this listener, if any.
    fn accept(&self) -> Option<*mut sys::svc_xprt> {
        let listener = self.xprt();
        listener.clear(Flag::CONN);
        let sock = self.sock.accept().ok()?;
        // Have a thread come back for any further pending connection.
        listener.set(Flag::CONN);
        let owner = listener.owner();
        let peer = sock.peer_addr().ok()?;
        let local = sock.local_addr().ok()?;
        sock.set_send_timeout(SEND_TIMEOUT);
        let limits = Limits::with_max_record_len(owner.max_mesg());
        let saved = SavedPages::new().ok()?;
        let reply = ReplyVec::new().ok()?;
        let zerocopy = if sock.enable_zerocopy() {
            Some(ZeroCopy::new().ok()?)
        } else {
            None
        };
        let conn = KBox::pin_init(
            pin_init!(Conn {
                peer,
                recv <- new_mutex!(RecvState {
                    decoder: RecordDecoder::new(limits),
                    saved,
                }),
                send <- new_mutex!(SendState {
                    marker: [0; record::MARKER_LEN],
                    reply,
                    zerocopy,
                }),
            }),
            GFP_KERNEL,
        )
        .ok()?;
        let own = sock.own_callbacks();
        let all = [Flag::CACHE_AUTH, Flag::CONG_CTRL, Flag::DATA, Flag::LOCAL];
        // LOCAL: the loopback transport, the peer runs on this kernel.
        let flags = if peer.cid == addr::CID_LOCAL {
            &all[..]
        } else {
            &all[..3]
        };
        let this = KBox::pin_init(
            pin_init!(Self {
                xprt <- owner.init_xprt(local, Some(peer), flags),
                sock,
                own,
                conn: Some(conn),
            }),
            GFP_KERNEL,
        )
        .ok()?;
        // XPT_DATA is set: a thread reads whatever arrived before the hook.
        Some(Self::publish(this, &CONN_CALLBACKS))
    }

    /// `xpo_has_wspace`: whether a reply could be sent now.
    fn has_wspace(&self) -> bool {
        self.conn.is_none() || self.sock.peer_has_credit()
    }

    /// `xpo_recvfrom`: receives what has arrived of the next record and
    /// returns its length once it is complete, 0 until then.
    fn recvfrom(&self, rqstp: &SvcRqst) -> c_int {
        let xprt = self.xprt();
        let ret = match &self.conn {
            Some(conn) => self.recv_record(conn, rqstp),
            None => 0,
        };
        // Lets another thread take the transport; not touched after this.
        // SAFETY: this thread holds XPT_BUSY on the live transport.
        unsafe { sys::svc_xprt_received(xprt.as_raw()) };
        ret
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
                    Stop::Incomplete => rqstp.save_pages(&mut state.saved, kept),
                    Stop::Close(reason) => {
                        if let Some(reason) = reason {
                            conn.notice(format_args!("{reason}"));
                        }
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
        if len < CALL_HEADER_LEN {
            conn.notice(format_args!("{}", CloseReason::Short(len)));
            xprt.deferred_close();
            return 0;
        }
        rqstp.set_call(len, conn.peer.port < sys::PROT_SOCK, xprt.test(Flag::LOCAL));
        if rqstp.arg_word(1) != 0 {
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
            let n = match got {
                Ok(0) => return Err(Stop::Close(None)),
                Ok(n) => n,
                Err(e) if e == EAGAIN => return Err(Stop::Incomplete),
                Err(_) => return Err(Stop::Close(None)),
            };
            match decoder.consumed(n) {
                Ok(Progress::Record { len }) => return Ok(len),
                Ok(Progress::Incomplete) => {}
                Err(e) => return Err(Stop::Close(Some(CloseReason::Record(e)))),
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

    /// `xpo_sendto`: sends the reply of `rqstp` as one record.
    fn sendto(&self, rqstp: &SvcRqst) -> c_int {
        let Some(conn) = &self.conn else {
            return -(kernel::bindings::ENOTCONN as c_int);
        };
        let xprt = self.xprt();
        let _serialised = xprt.lock_send();
        if xprt.is_dead() {
            return -(kernel::bindings::ENOTCONN as c_int);
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

    /// `xpo_detach`: stops the callbacks and, for a connection, tells the
    /// peer it is closed.
    fn detach(&self) {
        self.sock.unhook(&self.own);
        if self.conn.is_some() {
            self.sock.shutdown();
        }
    }
}

impl Conn {
    /// Logs, rate-limited, why the connection is being closed.
    fn notice(&self, what: fmt::Arguments<'_>) {
        // SAFETY: `net_ratelimit()` only updates a global rate-limit state.
        if unsafe { sys::net_ratelimit() } != 0 {
            pr_notice!(
                "{}: {}; closing the connection\n",
                addr::Presentation(self.peer.cid),
                what
            );
        }
    }
}

/// A kernel error as `ERR_PTR()` encodes it.
fn err_ptr<T>(e: Error) -> *mut T {
    // Error pointers are negative errnos cast to pointers.
    e.to_errno() as isize as *mut T
}

/// Socket callbacks of a listener.
static LISTENER_CALLBACKS: Callbacks = Callbacks {
    data_ready: listener_data_ready,
    state_change,
    write_space,
    error_report,
};

/// Socket callbacks of a connection.
static CONN_CALLBACKS: Callbacks = Callbacks {
    data_ready: conn_data_ready,
    state_change,
    write_space,
    error_report,
};

/// # Safety
///
/// Only called by vsock, as `sk_data_ready` of a hooked listener.
unsafe extern "C" fn listener_data_ready(sk: *mut sys::sock) {
    // SAFETY: vsock calls callbacks with a live socket.
    let sk = unsafe { CallbackSock::new(sk) };
    let Some(this) = SvcVsock::from_callback(&sk) else {
        return;
    };
    this.own.data_ready(&sk);
    // A new connection is ready to accept.
    if sk.is_listening() {
        this.xprt().set(Flag::CONN);
        this.xprt().enqueue();
    }
}

/// # Safety
///
/// Only called by vsock, as `sk_data_ready` of a hooked connection.
unsafe extern "C" fn conn_data_ready(sk: *mut sys::sock) {
    // SAFETY: vsock calls callbacks with a live socket.
    let sk = unsafe { CallbackSock::new(sk) };
    let Some(this) = SvcVsock::from_callback(&sk) else {
        return;
    };
    this.own.data_ready(&sk);
    if !this.xprt().test_and_set(Flag::DATA) {
        this.xprt().enqueue();
    }
}

/// # Safety
///
/// Only called by vsock, as `sk_state_change` of a hooked socket.
unsafe extern "C" fn state_change(sk: *mut sys::sock) {
    // SAFETY: vsock calls callbacks with a live socket.
    let sk = unsafe { CallbackSock::new(sk) };
    let Some(this) = SvcVsock::from_callback(&sk) else {
        return;
    };
    this.own.state_change(&sk);
    if this.conn.is_none() {
        return;
    }
    if sk.is_closed() {
        this.xprt().deferred_close();
    } else if !sk.is_established() {
        // The peer will send no more but may still read: serve what it
        // sent, then the receive sees the end of the stream and closes.
        this.xprt().set(Flag::DATA);
        this.xprt().enqueue();
    }
}

/// # Safety
///
/// Only called by vsock, as `sk_write_space` of a hooked socket.
unsafe extern "C" fn write_space(sk: *mut sys::sock) {
    // SAFETY: vsock calls callbacks with a live socket.
    let sk = unsafe { CallbackSock::new(sk) };
    let Some(this) = SvcVsock::from_callback(&sk) else {
        return;
    };
    // Wakes a reply waiting for credit.
    this.own.write_space(&sk);
    if this.conn.is_some() {
        this.xprt().enqueue();
    }
}

/// # Safety
///
/// Only called by vsock, as `sk_error_report` of a hooked socket.
unsafe extern "C" fn error_report(sk: *mut sys::sock) {
    // SAFETY: vsock calls callbacks with a live socket.
    let sk = unsafe { CallbackSock::new(sk) };
    let Some(this) = SvcVsock::from_callback(&sk) else {
        return;
    };
    this.own.error_report(&sk);
    // vsock reports a reset connection (for one, on receive-queue
    // overflow) this way.
    if this.conn.is_some() {
        this.xprt().deferred_close();
    }
}

/// The `svc_xprt_ops` of the class (the class itself is in the C glue: it
/// needs `THIS_MODULE` and a list head that registration links).
static SVC_OPS: sys::svc_xprt_ops = sys::svc_xprt_ops {
    xpo_create: Some(xv_svc_create),
    xpo_accept: Some(xv_svc_accept),
    xpo_has_wspace: Some(xv_svc_has_wspace),
    xpo_recvfrom: Some(xv_svc_recvfrom),
    xpo_sendto: Some(xv_svc_sendto),
    xpo_result_payload: Some(xv_svc_result_payload),
    xpo_release_ctxt: Some(xv_svc_release_ctxt),
    xpo_detach: Some(xv_svc_detach),
    xpo_free: Some(xv_svc_free),
    xpo_kill_temp_xprt: Some(xv_svc_kill_temp_xprt),
    // No TLS over vsock: svcauth_unix would advertise it for a transport
    // with a handshake.
    xpo_handshake: None,
};

/// # Safety
///
/// Only called by SUNRPC as `xpo_create`, with a live service and namespace
/// and `sa` readable for `salen` bytes.
unsafe extern "C" fn xv_svc_create(
    serv: *mut sys::svc_serv,
    net: *mut sys::net,
    sa: *mut sys::sockaddr,
    salen: c_int,
    _flags: c_int,
) -> *mut sys::svc_xprt {
    // SAFETY: by the function's safety requirements.
    let (owner, addr) = unsafe { (Owner::from_raw(serv, net), svc_xprt::listen_addr(sa, salen)) };
    match addr.and_then(|addr| SvcVsock::listen(owner, addr)) {
        Ok(xprt) => xprt,
        Err(e) => err_ptr(e),
    }
}

/// # Safety
///
/// Only called by SUNRPC as `xpo_accept` on a live listener of the class.
unsafe extern "C" fn xv_svc_accept(xprt: *mut sys::svc_xprt) -> *mut sys::svc_xprt {
    // SAFETY: by the function's safety requirements.
    let this = unsafe { SvcVsock::from_xprt(xprt) };
    this.accept().unwrap_or(ptr::null_mut())
}

/// # Safety
///
/// Only called by SUNRPC as `xpo_has_wspace` on a live transport of the
/// class.
unsafe extern "C" fn xv_svc_has_wspace(xprt: *mut sys::svc_xprt) -> c_int {
    // SAFETY: by the function's safety requirements.
    let this = unsafe { SvcVsock::from_xprt(xprt) };
    c_int::from(this.has_wspace())
}

/// # Safety
///
/// Only called by SUNRPC as `xpo_recvfrom`, by the thread that owns
/// `rqstp` and holds `XPT_BUSY` on its live transport of the class.
unsafe extern "C" fn xv_svc_recvfrom(rqstp: *mut sys::svc_rqst) -> c_int {
    // SAFETY: by the function's safety requirements.
    let rqstp = unsafe { SvcRqst::from_raw(rqstp) };
    // SAFETY: the request's transport is live and of the class.
    let this = unsafe { SvcVsock::from_xprt(rqstp.xprt()) };
    this.recvfrom(rqstp)
}

/// # Safety
///
/// Only called by SUNRPC as `xpo_sendto`, by the thread that owns `rqstp`,
/// whose transport is a live one of the class.
unsafe extern "C" fn xv_svc_sendto(rqstp: *mut sys::svc_rqst) -> c_int {
    // SAFETY: by the function's safety requirements.
    let rqstp = unsafe { SvcRqst::from_raw(rqstp) };
    // SAFETY: the request's transport is live and of the class.
    let this = unsafe { SvcVsock::from_xprt(rqstp.xprt()) };
    this.sendto(rqstp)
}

/// `xpo_result_payload`: records carry results inline, so there is nothing
/// to note.
extern "C" fn xv_svc_result_payload(
    _rqstp: *mut sys::svc_rqst,
    _offset: c_uint,
    _length: c_uint,
) -> c_int {
    0
}

/// `xpo_release_ctxt`, called after every request: receives keep no
/// per-request context (`rq_xprt_ctxt` stays null).
extern "C" fn xv_svc_release_ctxt(_xprt: *mut sys::svc_xprt, _ctxt: *mut c_void) {}

/// `xpo_kill_temp_xprt`: SUNRPC asks for it only for connections to a
/// removed IP address, which vsock connections never are; closing needs no
/// extra step.
extern "C" fn xv_svc_kill_temp_xprt(_xprt: *mut sys::svc_xprt) {}

/// # Safety
///
/// Only called by SUNRPC as `xpo_detach` on a live transport of the class.
unsafe extern "C" fn xv_svc_detach(xprt: *mut sys::svc_xprt) {
    // SAFETY: by the function's safety requirements.
    let this = unsafe { SvcVsock::from_xprt(xprt) };
    this.detach();
}

/// # Safety
///
/// Only called by SUNRPC as `xpo_free`, once, when the last reference to a
/// transport of the class is gone.
unsafe extern "C" fn xv_svc_free(xprt: *mut sys::svc_xprt) {
    let offset = core::mem::offset_of!(SvcVsock, xprt);
    // SAFETY: the transport is the `xprt` field of an instance that
    // `publish` leaked with `into_foreign`; SUNRPC is done with it.
    let this = unsafe {
        <Pin<KBox<SvcVsock>>>::from_foreign(xprt.cast::<u8>().sub(offset).cast::<c_void>())
    };
    // `xpo_detach` normally did this; no callback may outlive the instance.
    this.sock.unhook(&this.own);
    drop(this);
}
