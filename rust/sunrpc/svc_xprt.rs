// SPDX-License-Identifier: GPL-2.0

//! A server transport instance (`struct svc_xprt`): its flags, its owner,
//! its addresses and its send lock.
//!
//! C header: [`include/linux/sunrpc/svc_xprt.h`](srctree/include/linux/sunrpc/svc_xprt.h).

use core::ptr;

use kernel::error::{to_result, Result};
use kernel::init::PinInit;
use kernel::types::Opaque;

use crate::addr::{self, VsockAddr};
use crate::sys;

/// A transport flag bit of `svc_xprt::xpt_flags` (`XPT_*`).
#[derive(Clone, Copy)]
pub(crate) struct Flag(i32);

impl Flag {
    /// A connection is waiting on the listener.
    pub(crate) const CONN: Self = Self(sys::XPT_CONN);
    /// The transport is to be closed.
    pub(crate) const CLOSE: Self = Self(sys::XPT_CLOSE);
    /// Data may be waiting.
    pub(crate) const DATA: Self = Self(sys::XPT_DATA);
    /// The transport is closed.
    pub(crate) const DEAD: Self = Self(sys::XPT_DEAD);
    /// The transport is a listener.
    pub(crate) const LISTENER: Self = Self(sys::XPT_LISTENER);
    /// Cache the peer's auth.unix.ip lookups on the transport.
    pub(crate) const CACHE_AUTH: Self = Self(sys::XPT_CACHE_AUTH);
    /// The peer is this machine.
    pub(crate) const LOCAL: Self = Self(sys::XPT_LOCAL);
    /// The transport is reliable: NFSv4 refuses transports without it.
    pub(crate) const CONG_CTRL: Self = Self(sys::XPT_CONG_CTRL);
    /// A deferred request is ready to be processed again.
    pub(crate) const DEFERRED: Self = Self(sys::XPT_DEFERRED);
}

/// Where a new transport instance belongs: its service and namespace.
///
/// # Invariants
///
/// `serv` and `net` are live for as long as any transport of the service:
/// SUNRPC destroys a service's transports before the service, and each
/// transport holds a reference on its namespace.
#[derive(Clone, Copy)]
pub(crate) struct Owner {
    serv: *mut sys::svc_serv,
    net: *mut sys::net,
}

impl Owner {
    /// # Safety
    ///
    /// `serv` and `net` must be the live service and namespace SUNRPC passed
    /// to `xpo_create`.
    pub(crate) unsafe fn from_raw(serv: *mut sys::svc_serv, net: *mut sys::net) -> Self {
        // INVARIANT: by the caller's guarantee.
        Self { serv, net }
    }

    /// Largest RPC message the service accepts (`sv_max_mesg`).
    pub(crate) fn max_mesg(&self) -> u32 {
        // SAFETY: by the type invariant `serv` is live; `sv_max_mesg` is set
        // when the service is created and never changes.
        unsafe { (*self.serv).sv_max_mesg }
    }

    /// Initialises a transport instance of the "vsock" class for this owner
    /// at `local`, with `flags` set; `peer` is `None` for a listener.
    pub(crate) fn init_xprt<'a>(
        self,
        local: VsockAddr,
        peer: Option<VsockAddr>,
        flags: &'a [Flag],
    ) -> impl PinInit<Opaque<sys::svc_xprt>> + 'a {
        Opaque::ffi_init(move |xprt: *mut sys::svc_xprt| {
            // SAFETY: `xprt` is ours, not yet shared with anyone; `net` and
            // `serv` are live by the type invariant; the class is a static
            // that outlives every transport (each holds the module).
            unsafe {
                sys::svc_xprt_init(
                    self.net,
                    ptr::addr_of_mut!(sys::xv_svc_class),
                    xprt,
                    self.serv,
                );
                for flag in flags {
                    sys::xv_svc_flag_set(xprt, flag.0);
                }
                set_addr(&mut (*xprt).xpt_local, &mut (*xprt).xpt_locallen, local);
                let remotebuf = &mut (*xprt).xpt_remotebuf;
                // The buffer ends with a NUL that formatting never reaches.
                let buf = core::slice::from_raw_parts_mut(
                    remotebuf.as_mut_ptr().cast::<u8>(),
                    remotebuf.len() - 1,
                );
                // `%pISpc` cannot print AF_VSOCK addresses, so name the peer
                // as `rpc_ntop()` does.
                let len = match peer {
                    Some(peer) => {
                        set_addr(&mut (*xprt).xpt_remote, &mut (*xprt).xpt_remotelen, peer);
                        addr::format_into(buf, addr::Presentation(peer.cid))
                    }
                    None => addr::format_into(buf, "listener"),
                }
                .unwrap_or(0);
                buf[len] = 0;
            }
        })
    }
}

/// Stores `addr` as a `sockaddr_vm` in a transport's address field.
fn set_addr(storage: &mut sys::__kernel_sockaddr_storage, len: &mut usize, addr: VsockAddr) {
    let svm = sys::sockaddr_vm {
        svm_family: sys::AF_VSOCK as u16,
        svm_port: addr.port,
        svm_cid: addr.cid,
        ..Default::default()
    };
    // SAFETY: `sockaddr_storage` is larger than `sockaddr_vm` and suitably
    // aligned for any socket address.
    unsafe { ptr::write(ptr::from_mut(storage).cast::<sys::sockaddr_vm>(), svm) };
    *len = core::mem::size_of::<sys::sockaddr_vm>();
}

/// Reads the `sockaddr_vm` SUNRPC passed to `xpo_create`.
///
/// # Safety
///
/// `sa` must be valid for reading `salen` bytes.
pub(crate) unsafe fn listen_addr(sa: *const sys::sockaddr, salen: i32) -> Result<VsockAddr> {
    let long_enough = usize::try_from(salen)
        .map(|len| len >= core::mem::size_of::<sys::sockaddr_vm>())
        .unwrap_or(false);
    // SAFETY: every socket address starts with its family; `sa` is readable
    // for `salen` bytes, at least the family's two when `long_enough`.
    if !long_enough || u32::from(unsafe { (*sa).sa_family }) != sys::AF_VSOCK {
        return Err(errno!(EAFNOSUPPORT));
    }
    // SAFETY: `sa` holds a whole `sockaddr_vm`; it may be unaligned.
    let svm = unsafe { ptr::read_unaligned(sa.cast::<sys::sockaddr_vm>()) };
    Ok(VsockAddr {
        cid: svm.svm_cid,
        port: svm.svm_port,
    })
}

/// A transport instance (`struct svc_xprt`).
///
/// # Invariants
///
/// The `svc_xprt` was initialised by `svc_xprt_init()` and is live for the
/// lifetime of every reference to this value.
#[repr(transparent)]
pub(crate) struct SvcXprt(Opaque<sys::svc_xprt>);

impl SvcXprt {
    /// Views the initialised transport inside `xprt`.
    pub(crate) fn from_opaque(xprt: &Opaque<sys::svc_xprt>) -> &Self {
        // INVARIANT: transports are initialised before they are shared
        // (`Owner::init_xprt`) and live as long as their container.
        // CAST: `Self` is a transparent wrapper of `Opaque<svc_xprt>`.
        // SAFETY: so the cast reference is valid for the same lifetime.
        unsafe { &*ptr::from_ref(xprt).cast::<Self>() }
    }

    /// The transport `xprt`.
    ///
    /// # Safety
    ///
    /// `xprt` must be a transport initialised by `svc_xprt_init()`, live for
    /// `'a`.
    pub(crate) unsafe fn from_raw<'a>(xprt: *mut sys::svc_xprt) -> &'a Self {
        // INVARIANT: the caller's guarantee.
        // CAST: `Self` is a transparent wrapper of `Opaque<svc_xprt>`.
        // SAFETY: `xprt` is live for `'a` (the caller's guarantee).
        unsafe { &*xprt.cast::<Self>() }
    }

    /// The raw transport, for SUNRPC.
    pub(crate) fn as_raw(&self) -> *mut sys::svc_xprt {
        self.0.get()
    }

    /// The service and namespace the transport belongs to.
    pub(crate) fn owner(&self) -> Owner {
        // SAFETY: the transport is live; these fields are set once by
        // `svc_xprt_init()`.
        let (serv, net) = unsafe { ((*self.as_raw()).xpt_server, (*self.as_raw()).xpt_net) };
        // INVARIANT: the service outlives its transports and each transport
        // holds a reference on its namespace; new transports of this owner
        // take their own.
        Owner { serv, net }
    }

    /// Sets `flag`, atomically.
    pub(crate) fn set(&self, flag: Flag) {
        // SAFETY: the transport is live; the flags are updated atomically.
        unsafe { sys::xv_svc_flag_set(self.as_raw(), flag.0) };
    }

    /// Clears `flag`, atomically.
    pub(crate) fn clear(&self, flag: Flag) {
        // SAFETY: the transport is live (type invariant); `clear_bit()` is
        // atomic.
        unsafe { sys::xv_svc_flag_clear(self.as_raw(), flag.0) };
    }

    /// Whether `flag` is set.
    pub(crate) fn test(&self, flag: Flag) -> bool {
        // SAFETY: the transport is live (type invariant); `test_bit()` reads
        // the word once.
        unsafe { sys::xv_svc_flag_test(self.as_raw(), flag.0) }
    }

    /// Sets `flag` and returns whether it was set already, atomically.
    pub(crate) fn test_and_set(&self, flag: Flag) -> bool {
        // SAFETY: the transport is live (type invariant);
        // `test_and_set_bit()` is atomic.
        unsafe { sys::xv_svc_flag_test_and_set(self.as_raw(), flag.0) }
    }

    /// Whether the transport is closed or being closed.
    pub(crate) fn is_dead(&self) -> bool {
        self.test(Flag::DEAD) || self.test(Flag::CLOSE)
    }

    /// The backchannel transport nfsd set up on this connection, if any; it
    /// lives until the connection is freed.
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    pub(crate) fn bc_xprt(&self) -> *mut sys::rpc_xprt {
        // SAFETY: the transport is live; the field is a pointer that the
        // backchannel's setup writes once.
        unsafe { ptr::read_volatile(ptr::addr_of!((*self.as_raw()).xpt_bc_xprt)) }
    }

    /// Links the backchannel transport `bc` to this connection, which then
    /// holds the reference the caller took (SUNRPC drops it when it frees
    /// the connection).
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    pub(crate) fn set_bc_xprt(&self, bc: *mut sys::rpc_xprt) {
        // SAFETY: the transport is live; readers use `bc_xprt`.
        unsafe { ptr::write_volatile(ptr::addr_of_mut!((*self.as_raw()).xpt_bc_xprt), bc) };
    }

    /// Whether this is a transport of the "vsock" class.
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    pub(crate) fn is_vsock(xprt: *mut sys::svc_xprt) -> bool {
        // SAFETY: the caller passes a live transport; the class is set once
        // by `svc_xprt_init()`.
        !xprt.is_null() && unsafe { ptr::eq((*xprt).xpt_class, ptr::addr_of!(sys::xv_svc_class)) }
    }

    /// The threads of the transport's service now.
    pub(crate) fn threads(&self) -> u32 {
        // SAFETY: the transport is live, and so is its service, whose
        // thread count is read once.
        unsafe { sys::xv_svc_threads(self.as_raw()) }
    }

    /// Takes a reference on the transport, which keeps it from being freed
    /// until [`SvcXprt::put`] drops it.
    pub(crate) fn get(&self) -> *mut sys::svc_xprt {
        // SAFETY: the transport is live, so its count is not zero.
        unsafe { sys::xv_svc_xprt_get(self.as_raw()) };
        self.as_raw()
    }

    /// Drops a reference that [`SvcXprt::get`] took, which may free the
    /// transport.
    ///
    /// # Safety
    ///
    /// `xprt` must come from `get`, whose reference the caller gives up.
    pub(crate) unsafe fn put(xprt: *mut sys::svc_xprt) {
        // SAFETY: the caller gives up a reference it owns.
        unsafe { sys::svc_xprt_put(xprt) };
    }

    /// Has an idle server thread look at the transport, if it is ready.
    pub(crate) fn enqueue(&self) {
        // SAFETY: the transport is live.
        unsafe { sys::svc_xprt_enqueue(self.as_raw()) };
    }

    /// Has a server thread close the transport.
    pub(crate) fn deferred_close(&self) {
        // SAFETY: the transport is live.
        unsafe { sys::svc_xprt_deferred_close(self.as_raw()) };
    }

    /// Serialises replies on the transport with `xpt_mutex`, which the
    /// backchannel also takes to send on the same connection.
    ///
    /// A thread may wait here while another's reply waits for a peer that
    /// does not read, up to the send bound: the wait is killable, which
    /// keeps the hung-task detector quiet (it skips killable sleeps) and
    /// lets a SIGKILL end it with `EINTR`.
    pub(crate) fn lock_send(&self) -> Result<SendGuard<'_>> {
        // SAFETY: the transport is live and this thread does not hold the
        // mutex: replies are sent one at a time per thread.
        to_result(unsafe { sys::xv_svc_send_lock(self.as_raw()) })?;
        Ok(SendGuard(self))
    }
}

/// Holds a transport's `xpt_mutex`; see [`SvcXprt::lock_send`].
pub(crate) struct SendGuard<'a>(&'a SvcXprt);

impl Drop for SendGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `lock_send` took the mutex of the live transport.
        unsafe { sys::xv_svc_send_unlock(self.0.as_raw()) };
    }
}
