// SPDX-License-Identifier: GPL-2.0

//! Connecting: the `connect` op hands `XPRT_LOCKED` to the connect worker,
//! which opens a socket and starts a non-blocking connect; the socket
//! callbacks ([`super::callbacks`]) report how it ended.

use core::ffi::c_void;
use core::ptr;

use kernel::error::{code::*, Error, Result};

use super::callbacks::CALLBACKS;
use super::{init_reestablish_to, Transport, CONNECTING, NEW_SRCPORT};
use crate::sunrpc::xprt::XprtLocked;
use crate::sys;
use crate::vsock::Socket;

/// Reserved ports tried for `xprt->resvport`, as xprtsock's defaults.
const MIN_RESVPORT: u32 = 665;
const MAX_RESVPORT: u32 = 1023;

impl Transport {
    /// Hands `locked`, the task's `XPRT_LOCKED`, to the connect worker and
    /// queues it; `locked` is not used once the worker is queued.
    fn connect(&self, locked: XprtLocked<'_>, task: *mut sys::rpc_task) {
        let x = self.xprt();
        if !locked.lock_connect(task, self) {
            // SAFETY: only prints a warning, once, with a backtrace.
            unsafe { sys::xv_clnt_warn_connect_unlocked() };
        }
        let mut delay = 0;
        // Flapping connections back off; one that lasted beyond the
        // re-establish timeout reconnects at once.
        if x.connect_count() != 0 {
            delay = x.reconnect_delay();
            locked.reconnect_backoff(init_reestablish_to());
        }
        // SAFETY: the work item was initialised in setup (type invariant);
        // destroy cancels it before the transport is freed.
        unsafe { sys::xv_clnt_queue_delayed_work(self.connect_work.get(), delay) };
    }

    fn connect_worker(&self) {
        let x = self.xprt();
        // SAFETY: `connect` handed XPRT_LOCKED to this worker before queueing
        // it; `unlock_connect` below releases it and ends the token.
        let mut locked = unsafe { XprtLocked::new(x) };
        if !x.connected() {
            if let Err(e) = self.start_connect(&mut locked) {
                x.wake_pending(e.to_errno());
                x.force_disconnect();
                x.clear_connecting();
            }
        } else {
            x.clear_connecting();
        }
        locked.unlock_connect(self);
    }

    /// Creates a socket and starts connecting it; completion arrives
    /// through the callbacks.
    fn start_connect(&self, locked: &mut XprtLocked<'_>) -> Result {
        let x = self.xprt();
        drop(self.replace_sock(locked, None));
        let sock = Socket::new_stream()?;
        if x.resvport() {
            self.bind_resvport(locked, &sock)?;
        }
        sock.hook(ptr::from_ref(self).cast_mut().cast::<c_void>(), &CALLBACKS);
        self.set_flag(CONNECTING);
        x.start_connect_stats();
        let (cid, port) = x.peer();
        let ret = sock.connect_nonblocking(cid, port);
        drop(self.replace_sock(locked, Some(sock)));
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

    fn bind_resvport(&self, _locked: &mut XprtLocked<'_>, sock: &Socket) -> Result {
        // SAFETY: it belongs to the holder of XPRT_LOCKED (type invariant),
        // borrowed exclusively here; `print_stats` reads it racily.
        let srcport = unsafe { &mut *self.srcport.get() };
        let below = |port: u32| {
            if port <= MIN_RESVPORT {
                MAX_RESVPORT
            } else {
                port - 1
            }
        };
        let mut port = match *srcport {
            0 => MAX_RESVPORT,
            last if self.test_and_clear_flag(NEW_SRCPORT) => below(last),
            last => last,
        };
        for _ in MIN_RESVPORT..=MAX_RESVPORT {
            match sock.bind(port) {
                Ok(()) => {
                    *srcport = port;
                    return Ok(());
                }
                Err(e) if e == errno!(EADDRINUSE) => port = below(port),
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
/// Only called by the core's `xprt_connect()` through `CLNT_OPS`, for one
/// of our transports, by `task`, which holds `XPRT_LOCKED` on it.
pub(super) unsafe extern "C" fn xv_clnt_connect(
    xprt: *mut sys::rpc_xprt,
    task: *mut sys::rpc_task,
) {
    // SAFETY: `xprt` is one of ours, held by `task` while it connects.
    let t = unsafe { Transport::from_xprt(xprt) };
    // SAFETY: `xprt_connect()` calls `connect` with `task` holding
    // XPRT_LOCKED; `connect` hands it on to the worker.
    t.connect(unsafe { XprtLocked::new(t.xprt()) }, task);
}

/// The connect worker.
///
/// # Safety
///
/// Only called by the workqueue for the `connect_work` that setup
/// initialised with this function (`xv_clnt_init_xprt()`).
#[no_mangle]
unsafe extern "C" fn xv_clnt_connect_work(work: *mut sys::work_struct) {
    // SAFETY: a `delayed_work` starts with its `work_struct`, so `work` is
    // the `connect_work` of a transport; that transport is live while the
    // work runs, since destroy cancels it (synchronously) before freeing.
    let t = unsafe { Transport::from_work(work, core::mem::offset_of!(Transport, connect_work)) };
    t.connect_worker();
}
