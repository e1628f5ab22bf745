// SPDX-License-Identifier: GPL-2.0

//! Connecting: the `connect` op hands `XPRT_LOCKED` to the connect worker,
//! which opens a socket and starts a non-blocking connect; the socket
//! callbacks ([`super::callbacks`]) report how it ended.

use core::ffi::c_void;
use core::ptr;

use kernel::error::{code::*, Error, Result};

use super::callbacks::CALLBACKS;
use super::{container_of_work, init_reestablish_to, Transport, CONNECTING};
use crate::sys;
use crate::vsock::Socket;

/// Reserved ports tried for `xprt->resvport`, as xprtsock's defaults.
const MIN_RESVPORT: u32 = 665;
const MAX_RESVPORT: u32 = 1023;

impl Transport {
    fn connect(&self, task: *mut sys::rpc_task) {
        let x = self.xprt();
        if !x.lock_connect(task, self) {
            kernel::pr_warn!("connect without the transport lock\n");
        }
        let mut delay = 0;
        // Flapping connections back off; one that lasted beyond the
        // re-establish timeout reconnects at once.
        if x.connect_count() != 0 {
            delay = x.reconnect_delay();
            x.reconnect_backoff(init_reestablish_to());
        }
        // SAFETY: initialised in setup, cancelled in destroy.
        unsafe { sys::xv_clnt_queue_delayed_work(self.connect_work.get(), delay) };
    }

    fn connect_worker(&self) {
        let x = self.xprt();
        if !x.connected() {
            if let Err(e) = self.start_connect() {
                x.wake_pending(e.to_errno());
                x.force_disconnect();
                x.clear_connecting();
            }
        } else {
            x.clear_connecting();
        }
        x.unlock_connect(self);
    }

    /// Creates a socket and starts connecting it; completion arrives
    /// through the callbacks.
    fn start_connect(&self) -> Result {
        let x = self.xprt();
        // SAFETY: the connect worker holds XPRT_LOCKED (`xprt_lock_connect`).
        drop(unsafe { self.replace_sock(None) });
        let mut sock = Socket::new_stream()?;
        if x.resvport() {
            self.bind_resvport(&sock)?;
        }
        sock.attach(ptr::from_ref(self).cast_mut().cast::<c_void>(), &CALLBACKS);
        self.set_flag(CONNECTING);
        x.start_connect_stats();
        let (cid, port) = x.peer();
        let ret = sock.connect_nonblocking(cid, port);
        // SAFETY: as above.
        drop(unsafe { self.replace_sock(Some(sock)) });
        match ret {
            Ok(()) => {}
            Err(e) if e == errno!(EINPROGRESS) => {}
            Err(e) => {
                self.test_and_clear_flag(CONNECTING);
                return Err(connect_error(e));
            }
        }
        x.raise_reestablish_timeout(init_reestablish_to());
        Ok(())
    }

    fn bind_resvport(&self, sock: &Socket) -> Result {
        // SAFETY: only the connect worker, serialised by XPRT_LOCKED.
        let srcport = unsafe { &mut *self.srcport.get() };
        let mut port = if *srcport == 0 {
            MAX_RESVPORT
        } else {
            *srcport
        };
        for _ in MIN_RESVPORT..=MAX_RESVPORT {
            match sock.bind(port) {
                Ok(()) => {
                    *srcport = port;
                    return Ok(());
                }
                Err(e) if e == errno!(EADDRINUSE) => {
                    port = if port == MIN_RESVPORT {
                        MAX_RESVPORT
                    } else {
                        port - 1
                    };
                }
                Err(e) => return Err(e),
            }
        }
        *srcport = 0;
        Err(errno!(EADDRINUSE))
    }
}

/// Maps a synchronous connect error to what the RPC client retries on.
fn connect_error(e: Error) -> Error {
    if e == EPERM {
        errno!(ECONNREFUSED)
    } else if e == ENODEV {
        // No vsock transport reaches that CID (e.g. no virtio device).
        errno!(ENETUNREACH)
    } else if e == errno!(ECONNREFUSED)
        || e == errno!(ECONNRESET)
        || e == errno!(ENETUNREACH)
        || e == errno!(EHOSTUNREACH)
        || e == errno!(EADDRINUSE)
        || e == errno!(ENOBUFS)
        || e == errno!(ENOTCONN)
        || e == errno!(ETIMEDOUT)
    {
        e
    } else {
        EAGAIN
    }
}

/// `connect`.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
pub(super) unsafe extern "C" fn xv_clnt_connect(
    xprt: *mut sys::rpc_xprt,
    task: *mut sys::rpc_task,
) {
    // SAFETY: the core passes one of our transports.
    unsafe { Transport::from_xprt(xprt) }.connect(task);
}

/// The connect worker.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
#[no_mangle]
unsafe extern "C" fn xv_clnt_connect_work(work: *mut sys::work_struct) {
    // A delayed_work starts with its work_struct.
    // SAFETY: as in `xv_clnt_recv_work`, for `connect_work`.
    let t = unsafe { &*container_of_work(work, core::mem::offset_of!(Transport, connect_work)) };
    t.connect_worker();
}
