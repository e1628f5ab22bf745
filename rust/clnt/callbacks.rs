// SPDX-License-Identifier: GPL-2.0

//! The socket callbacks, which only set bits of `Transport::flags` and
//! queue work, and the error worker that turns the bits into wake-ups and
//! disconnects.

use core::sync::atomic::Ordering;

use kernel::error::code::EAGAIN;

use super::{init_reestablish_to, Transport};
use super::{
    CONNECTING, DATA_READY, NEW_SRCPORT, NOSPACE, WAKE_DISCONNECT, WAKE_ERROR, WAKE_PENDING,
    WAKE_WRITE,
};
use crate::sys;
use crate::vsock::{CallbackSock, Callbacks};

pub(super) static CALLBACKS: Callbacks = Callbacks {
    data_ready: xv_clnt_data_ready,
    state_change: xv_clnt_state_change,
    write_space: xv_clnt_write_space,
    error_report: xv_clnt_error_report,
};

/// `sk_data_ready` of our sockets.
///
/// # Safety
///
/// Only called by vsock, as `sk_data_ready` of a socket `hook()` gave our
/// callbacks, for that live socket, which it has locked.
unsafe extern "C" fn xv_clnt_data_ready(sk: *mut sys::sock) {
    // SAFETY: vsock passes the live socket that received data, whose
    // callback lock this thread does not hold; `sk` ends with this call.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: this runs as `sk_data_ready` of `sk`, so its user data, if
    // any, is the transport `hook()` stored.
    let Some(t) = (unsafe { Transport::from_sock(&sk) }) else {
        return;
    };
    // A useful exchange: the next reconnect need not wait.
    t.xprt().clear_reestablish_timeout();
    if !t.test_and_set_flag(DATA_READY) {
        // SAFETY: the work item was initialised in setup (type invariant);
        // destroy cancels it after detaching this socket, so after this
        // callback returns.
        unsafe { sys::xv_clnt_queue_work(t.recv_work.get()) };
    }
}

/// `sk_state_change` of our sockets.
///
/// # Safety
///
/// Only called by vsock, as `sk_state_change` of a socket `hook()` gave
/// our callbacks, for that live socket, which it has locked.
unsafe extern "C" fn xv_clnt_state_change(sk: *mut sys::sock) {
    // SAFETY: vsock passes the live socket whose state changed, whose
    // callback lock this thread does not hold; `sk` ends with this call.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: this runs as `sk_state_change` of `sk`, so its user data, if
    // any, is the transport `hook()` stored.
    let Some(t) = (unsafe { Transport::from_sock(&sk) }) else {
        return;
    };
    let x = t.xprt();
    if sk.is_established() {
        if !x.test_and_set_connected() {
            x.bump_connect_cookie();
            t.test_and_clear_flag(CONNECTING);
            x.clear_connecting();
            x.add_connect_time();
            t.run_error_worker(WAKE_PENDING);
        }
    } else if sk.is_closing() {
        if t.test_and_clear_flag(CONNECTING) {
            x.clear_connecting();
        }
        x.bump_connect_cookie();
        x.clear_connected();
        x.raise_reestablish_timeout(init_reestablish_to());
        t.run_error_worker(WAKE_DISCONNECT);
    }
}

/// `sk_write_space` of our sockets.
///
/// # Safety
///
/// Only called by vsock, as `sk_write_space` of a socket `hook()` gave our
/// callbacks, for that live socket, which it has locked.
unsafe extern "C" fn xv_clnt_write_space(sk: *mut sys::sock) {
    // SAFETY: vsock passes the live socket that got credit, whose callback
    // lock this thread does not hold; `sk` ends with this call.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: this runs as `sk_write_space` of `sk`, so its user data, if
    // any, is the transport `hook()` stored.
    let Some(t) = (unsafe { Transport::from_sock(&sk) }) else {
        return;
    };
    // vsock calls this for every packet while the peer has credit; only a
    // sender that found none is woken.
    if sk.has_space() && t.test_and_clear_flag(NOSPACE) {
        t.run_error_worker(WAKE_WRITE);
    }
}

/// `sk_error_report` of our sockets.
///
/// # Safety
///
/// Only called by vsock, as `sk_error_report` of a socket `hook()` gave
/// our callbacks, for that live socket; not always locked (a virtio device
/// reset reports without the lock).
unsafe extern "C" fn xv_clnt_error_report(sk: *mut sys::sock) {
    // SAFETY: vsock passes the live socket that failed, whose callback lock
    // this thread does not hold; `sk` ends with this call.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: this runs as `sk_error_report` of `sk`, so its user data, if
    // any, is the transport `hook()` stored; the callback lock, not the
    // socket lock, keeps it valid.
    let Some(t) = (unsafe { Transport::from_sock(&sk) }) else {
        return;
    };
    let err = sk.error();
    if err == 0 {
        return;
    }
    t.sock_err.store(err, Ordering::SeqCst);
    // A refused or timed-out connect ends here, without a state change.
    if t.test_and_clear_flag(CONNECTING) {
        t.set_flag(NEW_SRCPORT);
        t.xprt().clear_connecting();
    }
    t.run_error_worker(WAKE_ERROR);
}

impl Transport {
    fn error_worker(&self) {
        let x = self.xprt();
        if self.test_and_clear_flag(WAKE_DISCONNECT) {
            x.force_disconnect();
        }
        if self.test_and_clear_flag(WAKE_WRITE) {
            x.write_space();
        }
        if self.test_and_clear_flag(WAKE_ERROR) {
            let err = self.sock_err.swap(0, Ordering::SeqCst);
            if err < 0 {
                x.wake_pending(err);
                x.force_disconnect();
            }
        }
        if self.test_and_clear_flag(WAKE_PENDING) {
            x.wake_pending(EAGAIN.to_errno());
        }
    }
}

/// The error worker.
///
/// # Safety
///
/// Only called by the workqueue for the `error_work` that setup initialised
/// with this function (`xv_clnt_init_xprt()`).
#[no_mangle]
unsafe extern "C" fn xv_clnt_error_work(work: *mut sys::work_struct) {
    // SAFETY: `work` is the `error_work` of a transport, which is live while
    // the work runs: destroy detaches the socket whose callbacks queue it,
    // then cancels it before freeing.
    let t = unsafe { Transport::from_work(work, core::mem::offset_of!(Transport, error_work)) };
    t.error_worker();
}
