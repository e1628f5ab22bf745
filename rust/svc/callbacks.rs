// SPDX-License-Identifier: GPL-2.0

//! The socket callbacks of listeners and connections: each chains to the
//! socket's own, then only sets flags and enqueues the transport.

use super::SvcVsock;
use crate::sunrpc::svc_xprt::Flag;
use crate::sys;
use crate::vsock::{CallbackSock, Callbacks};

/// Socket callbacks of a listener.
pub(super) static LISTENER_CALLBACKS: Callbacks = Callbacks {
    data_ready: listener_data_ready,
    state_change,
    write_space,
    error_report,
};

/// Socket callbacks of a connection.
pub(super) static CONN_CALLBACKS: Callbacks = Callbacks {
    data_ready: conn_data_ready,
    state_change,
    write_space,
    error_report,
};

/// # Safety
///
/// Only called by vsock, as `sk_data_ready` of a hooked listener.
unsafe extern "C" fn listener_data_ready(sk: *mut sys::sock) {
    // SAFETY: vsock passes the live socket for which a connection is
    // ready to accept, whose callback lock this thread does not hold; `sk` ends
    // with this call.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: this runs as `sk_data_ready` that `publish` installed on `sk`.
    let Some(this) = (unsafe { SvcVsock::from_callback(&sk) }) else {
        return;
    };
    this.sock.own_callbacks().data_ready(&sk);
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
    // SAFETY: vsock passes the live socket for which data arrived,
    // whose callback lock this thread does not hold; `sk` ends with this call.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: this runs as `sk_data_ready` that `publish` installed on `sk`.
    let Some(this) = (unsafe { SvcVsock::from_callback(&sk) }) else {
        return;
    };
    this.sock.own_callbacks().data_ready(&sk);
    if !this.xprt().test_and_set(Flag::DATA) {
        this.xprt().enqueue();
    }
}

/// # Safety
///
/// Only called by vsock, as `sk_state_change` of a hooked socket.
unsafe extern "C" fn state_change(sk: *mut sys::sock) {
    // SAFETY: vsock passes the live socket for which its state changed,
    // whose callback lock this thread does not hold; `sk` ends with this call.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: this runs as `sk_state_change` that `publish` installed on `sk`.
    let Some(this) = (unsafe { SvcVsock::from_callback(&sk) }) else {
        return;
    };
    this.sock.own_callbacks().state_change(&sk);
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
    // SAFETY: vsock passes the live socket for which the peer granted
    // credit, whose callback lock this thread does not hold; `sk` ends with
    // this call.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: this runs as `sk_write_space` that `publish` installed on `sk`.
    let Some(this) = (unsafe { SvcVsock::from_callback(&sk) }) else {
        return;
    };
    // Wakes a reply waiting for credit.
    this.sock.own_callbacks().write_space(&sk);
    if this.conn.is_some() {
        this.xprt().enqueue();
    }
}

/// # Safety
///
/// Only called by vsock, as `sk_error_report` of a hooked socket.
unsafe extern "C" fn error_report(sk: *mut sys::sock) {
    // SAFETY: vsock passes the live socket for which it failed, whose
    // callback lock this thread does not hold; `sk` ends with this call.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: this runs as `sk_error_report` that `publish` installed on `sk`.
    let Some(this) = (unsafe { SvcVsock::from_callback(&sk) }) else {
        return;
    };
    this.sock.own_callbacks().error_report(&sk);
    // vsock reports a reset connection (for one, on receive-queue
    // overflow) this way.
    if this.conn.is_some() {
        this.xprt().deferred_close();
    }
}
