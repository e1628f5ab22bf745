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
//! The module bounds those of each peer CID ([`limit`]), so that one guest
//! cannot take them all.
//!
//! This file holds the instance, its registration, the ops table and the
//! entries that free it; each concern has a file of its own, with its
//! entries of the table: [`listen`] (`xpo_create`, `xpo_accept`),
//! [`limit`] (connections per CID), [`callbacks`], [`recv`] (where a record
//! is received), [`send`] and `backchannel` (nfsd's callbacks on a
//! connection).

#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
mod backchannel;
mod callbacks;
mod limit;
mod listen;
mod recv;
mod send;

use core::ffi::{c_int, c_uint, c_void};
use core::fmt;
use core::pin::Pin;
use core::ptr;
use core::sync::atomic::AtomicBool;

use kernel::prelude::*;
use kernel::sync::Mutex;
use kernel::types::{ForeignOwnable, Opaque};

use crate::addr::{self, VsockAddr};
use crate::record::{self, RecordDecoder};
use crate::sunrpc::svc_rqst::{ReplyVec, SavedPages};
use crate::sunrpc::svc_xprt::SvcXprt;
#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
use crate::sunrpc::xprt::XprtClass;
use crate::sys;
use crate::vsock::{CallbackSock, Callbacks, Socket, ZeroCopy};

/// The "vsock" class registered with SUNRPC while the module is loaded, and
/// the class of nfsd's backchannel on its connections.
pub(crate) struct Registration {
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    _backchannel: XprtClass,
    /// Dropped after the class is unregistered.
    _accounting: limit::Accounting,
}

impl Registration {
    /// Registers the classes (`svc_reg_xprt_class()`).
    pub(crate) fn new() -> Result<Self> {
        #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
        let backchannel = backchannel::register()?;
        let accounting = limit::Accounting::new()?;
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
            _accounting: accounting,
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
///
/// # Invariants
///
/// Once [`SvcVsock::publish`] has handed it to SUNRPC, an instance lives,
/// pinned, in the `KBox` that `into_foreign()` leaked, until `xpo_free`
/// takes it back: every `svc_xprt` of the "vsock" class is the `xprt` of
/// such an instance, initialised by `svc_xprt_init()`. From `publish` until
/// `unhook` (in `xpo_detach`, or at the latest in `xpo_free`) the socket's
/// `sk_user_data` is the instance, and its callbacks are ours, chaining to
/// the socket's own. `conn` is `None` exactly for a listener. The Rust
/// state needs no more than its own mutexes: SUNRPC's `XPT_BUSY` and
/// `xpt_mutex` already serialise receives and sends.
#[pin_data]
struct SvcVsock {
    #[pin]
    xprt: Opaque<sys::svc_xprt>,
    sock: Socket,
    /// `None` for a listener.
    conn: Option<Pin<KBox<Conn>>>,
}

/// The state of a connection.
#[pin_data]
struct Conn {
    peer: VsockAddr,
    /// Counts the connection for its CID until it is freed, and its calls
    /// for the CID's share of the threads.
    slot: limit::CidSlot,
    /// A record is being sent that the peer's credit did not cover when
    /// it started: no thread takes a call from the connection meanwhile
    /// (`xpo_has_wspace`).
    stalled: AtomicBool,
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
    ///
    /// # Safety
    ///
    /// `sk` must be a socket that [`SvcVsock::publish`] hooked, seen from
    /// one of the callbacks it installed.
    unsafe fn from_callback<'a>(sk: &'a CallbackSock) -> Option<&'a Self> {
        let this = sk.user_data().cast::<Self>();
        // SAFETY: the user data is null or the instance (type invariant),
        // freed only after `unhook`, which waits for the callback lock that
        // `sk` holds for `'a`.
        unsafe { this.as_ref() }
    }

    fn xprt(&self) -> &SvcXprt {
        SvcXprt::from_opaque(&self.xprt)
    }

    /// Hands a new instance to SUNRPC and installs its socket callbacks.
    fn publish(this: Pin<KBox<Self>>, callbacks: &Callbacks) -> *mut sys::svc_xprt {
        let raw = this.into_foreign().cast::<Self>();
        // INVARIANT: the instance is leaked, pinned, until `xv_svc_free`
        // takes it back; its callbacks are hooked below.
        // SAFETY: `into_foreign` leaked the instance until `xv_svc_free`
        // takes it back; it is never moved meanwhile.
        let this = unsafe { &*raw };
        this.sock.hook(raw.cast_mut().cast::<c_void>(), callbacks);
        this.xprt().as_raw()
    }

    /// `xpo_detach`: stops the callbacks and, for a connection, tells the
    /// peer it is closed.
    fn detach(&self) {
        self.sock.unhook();
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

/// The `svc_xprt_ops` of the class (the class itself is in the C glue: it
/// needs `THIS_MODULE` and a list head that registration links).
static SVC_OPS: sys::svc_xprt_ops = sys::svc_xprt_ops {
    xpo_create: Some(listen::xv_svc_create),
    xpo_accept: Some(listen::xv_svc_accept),
    xpo_has_wspace: Some(send::xv_svc_has_wspace),
    xpo_recvfrom: Some(recv::xv_svc_recvfrom),
    xpo_sendto: Some(send::xv_svc_sendto),
    xpo_result_payload: Some(xv_svc_result_payload),
    xpo_release_ctxt: Some(xv_svc_release_ctxt),
    xpo_detach: Some(xv_svc_detach),
    xpo_free: Some(xv_svc_free),
    xpo_kill_temp_xprt: Some(xv_svc_kill_temp_xprt),
    // No TLS over vsock: svcauth_unix would advertise it for a transport
    // with a handshake.
    xpo_handshake: None,
};

/// `xpo_result_payload`: records carry results inline, so there is nothing
/// to note.
extern "C" fn xv_svc_result_payload(
    _rqstp: *mut sys::svc_rqst,
    _offset: c_uint,
    _length: c_uint,
) -> c_int {
    0
}

/// `xpo_release_ctxt`, called once for every request a receive returned
/// (also one that was deferred): `ctxt` is the connection's state if the
/// call counts for its CID's share of the threads, which it then leaves.
///
/// # Safety
///
/// Only called by SUNRPC on a live transport of the class, with the
/// request context the receive set (or null).
unsafe extern "C" fn xv_svc_release_ctxt(xprt: *mut sys::svc_xprt, ctxt: *mut c_void) {
    if ctxt.is_null() {
        return;
    }
    // SAFETY: every transport of the class is an instance's `xprt` (type
    // invariant), live while a request of it is released.
    let this = unsafe { SvcVsock::from_xprt(xprt) };
    if let Some(conn) = &this.conn {
        limit::Call::end(&conn.slot);
    }
}

/// `xpo_kill_temp_xprt`: SUNRPC asks for it only for connections to a
/// removed IP address, which vsock connections never are; closing needs no
/// extra step.
extern "C" fn xv_svc_kill_temp_xprt(_xprt: *mut sys::svc_xprt) {}

/// # Safety
///
/// Only called by SUNRPC as `xpo_detach` on a live transport of the class.
unsafe extern "C" fn xv_svc_detach(xprt: *mut sys::svc_xprt) {
    // SAFETY: `svc_delete_xprt()` detaches a transport it still holds; every
    // transport of the class is an instance's `xprt` (type invariant).
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
    // `publish` leaked with `into_foreign` (type invariant); SUNRPC calls
    // `xpo_free` once, after its last reference, so nothing else uses it.
    let this = unsafe {
        <Pin<KBox<SvcVsock>>>::from_foreign(xprt.cast::<u8>().sub(offset).cast::<c_void>())
    };
    // `xpo_detach` normally did this; no callback may outlive the instance.
    this.sock.unhook();
    drop(this);
}
