// SPDX-License-Identifier: GPL-2.0

//! Listening and accepting: `xpo_create` makes a listener, `xpo_accept`
//! one transport instance per connection.

use core::ffi::c_int;
use core::ptr;
use core::sync::atomic::AtomicBool;

use kernel::prelude::*;
use kernel::sync::new_mutex;

use super::callbacks::{CONN_CALLBACKS, LISTENER_CALLBACKS};
use super::{limit, Conn, RecvState, SendState, SvcVsock};
use crate::addr::{self, VsockAddr};
use crate::record::{self, Limits, RecordDecoder};
use crate::sunrpc::svc_rqst::{ReplyVec, SavedPages};
use crate::sunrpc::svc_xprt::{self, Flag, Owner};
use crate::sys;
use crate::vsock::{Socket, ZeroCopy};

/// Pending connections a listener queues, as SUNRPC's TCP listeners do.
const LISTEN_BACKLOG: c_int = 64;

impl SvcVsock {
    /// `xpo_create`: a listener at `addr`.
    fn listen(owner: Owner, addr: VsockAddr) -> Result<*mut sys::svc_xprt> {
        let sock = Socket::new_stream()?;
        sock.bind_addr(addr)?;
        sock.listen(LISTEN_BACKLOG)?;
        let local = sock.local_addr()?;
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
                conn: None,
            }),
            GFP_KERNEL,
        )?;
        Ok(Self::publish(this, &LISTENER_CALLBACKS))
    }

    /// `xpo_accept`: the next connection on this listener, if any. A
    /// connection from a CID at its limit is closed at once.
    fn accept(&self) -> Option<*mut sys::svc_xprt> {
        let listener = self.xprt();
        listener.clear(Flag::CONN);
        let sock = self.sock.accept().ok()?;
        // Have a thread come back for any further pending connection.
        listener.set(Flag::CONN);
        let owner = listener.owner();
        let peer = sock.peer_addr().ok()?;
        // SAFETY: the class of this live listener is registered: each
        // instance holds a reference on the module, which unregisters the
        // class only when it is unloaded.
        let slot = unsafe { limit::admit(peer.cid) }?;
        let local = sock.local_addr().ok()?;
        let limits = Limits::with_max_record_len(owner.max_mesg());
        let saved = SavedPages::new().ok()?;
        let reply = ReplyVec::new().ok()?;
        // Without a completion handle, replies are copied.
        let zerocopy = if sock.enable_zerocopy() {
            ZeroCopy::new().ok()
        } else {
            None
        };
        let conn = KBox::pin_init(
            pin_init!(Conn {
                peer,
                slot,
                stalled: AtomicBool::new(false),
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
                conn: Some(conn),
            }),
            GFP_KERNEL,
        )
        .ok()?;
        // XPT_DATA is set: a thread reads whatever arrived before the hook.
        Some(Self::publish(this, &CONN_CALLBACKS))
    }
}

/// # Safety
///
/// Only called by SUNRPC as `xpo_create`, with a live service and namespace
/// and `sa` readable for `salen` bytes.
pub(super) unsafe extern "C" fn xv_svc_create(
    serv: *mut sys::svc_serv,
    net: *mut sys::net,
    sa: *mut sys::sockaddr,
    salen: c_int,
    _flags: c_int,
) -> *mut sys::svc_xprt {
    // SAFETY: `svc_xprt_create()` passes its live service and namespace,
    // and the address it was asked for, `salen` bytes at `sa`.
    let (owner, addr) = unsafe { (Owner::from_raw(serv, net), svc_xprt::listen_addr(sa, salen)) };
    match addr.and_then(|addr| SvcVsock::listen(owner, addr)) {
        Ok(xprt) => xprt,
        Err(e) => e.to_ptr(),
    }
}

/// # Safety
///
/// Only called by SUNRPC as `xpo_accept` on a live listener of the class.
pub(super) unsafe extern "C" fn xv_svc_accept(xprt: *mut sys::svc_xprt) -> *mut sys::svc_xprt {
    // SAFETY: `svc_handle_xprt()` accepts on a listener it holds, which, as
    // every transport of the class, is an instance's `xprt`.
    let this = unsafe { SvcVsock::from_xprt(xprt) };
    this.accept().unwrap_or(ptr::null_mut())
}
