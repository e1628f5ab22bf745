// SPDX-License-Identifier: GPL-2.0

//! Kernel AF_VSOCK stream sockets.

use core::ptr::{self, NonNull};

use kernel::error::{to_result, Result};

use crate::sys;

/// A kernel-owned AF_VSOCK stream socket.
///
/// # Invariants
///
/// `sock` points to a live `struct socket` created by `sock_create_kern()`
/// that this value owns: nothing else releases it.
pub(crate) struct Socket {
    sock: NonNull<sys::socket>,
}

impl Socket {
    /// Creates an unconnected stream socket in the initial network namespace.
    ///
    /// vsock is not namespace-aware in Linux 6.12 (one bind table for all), so
    /// the namespace only decides which `struct net` the socket references.
    /// The socket's lock gets a lockdep class of its own, as SUNRPC's kernel
    /// sockets do, so that lockdep does not confuse it with user sockets.
    pub(crate) fn new_stream() -> Result<Self> {
        let mut sock: *mut sys::socket = ptr::null_mut();
        // SAFETY: `init_net` lives as long as the kernel; `sock` is a valid
        // location for the result.
        let ret = unsafe {
            sys::sock_create_kern(
                ptr::addr_of_mut!(sys::init_net),
                sys::AF_VSOCK as i32,
                sys::SOCK_STREAM,
                0,
                &mut sock,
            )
        };
        to_result(ret)?;
        let sock = NonNull::new(sock).ok_or(kernel::error::code::ENOMEM)?;
        // SAFETY: `sock` was just created and is not shared yet, so its lock
        // is neither held nor contended.
        unsafe { sys::xv_sock_reclassify(sock.as_ptr()) };
        // INVARIANT: `sock_create_kern()` succeeded and handed `sock` to us.
        Ok(Self { sock })
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the socket is live and ours alone.
        unsafe { sys::sock_release(self.sock.as_ptr()) };
    }
}
