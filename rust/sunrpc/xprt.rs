// SPDX-License-Identifier: GPL-2.0

//! A transport's `rpc_xprt` ([`Xprt`]), for the client transport and
//! nfsd's backchannel: the accessors, the tokens of its locks, the
//! registration of an `xprt_class`, the address strings and the ops every
//! `rpc_xprt_ops` of the module shares.
//!
//! C header: [`include/linux/sunrpc/xprt.h`](srctree/include/linux/sunrpc/xprt.h).

use core::mem::size_of;
use core::ptr;

use kernel::error::{code::EINVAL, to_result, Result};
use kernel::time::Jiffies;
use kernel::types::Opaque;

use super::rqst::Rqst;
use crate::addr;
use crate::sys;

/// A registered `xprt_class`, one of the C glue's statics; dropping the
/// value unregisters it.
///
/// # Invariants
///
/// `self.0` is a static `xprt_class` that this value registered.
pub(crate) struct XprtClass(*mut sys::xprt_class);

// SAFETY: the value only names a static; SUNRPC serialises registering and
// unregistering (`xprt_list_lock`), from any thread.
unsafe impl Send for XprtClass {}
// SAFETY: a shared `XprtClass` offers no method: nothing can be done
// through it.
unsafe impl Sync for XprtClass {}

impl XprtClass {
    /// Registers `class`.
    ///
    /// # Safety
    ///
    /// `class` must be a static `xprt_class` of the C glue that is not
    /// registered, whose transports each hold a module reference, so that
    /// none is left when the value is dropped at module unload.
    pub(crate) unsafe fn register(class: *mut sys::xprt_class) -> Result<Self> {
        // SAFETY: `class` is a static, unregistered (the caller's guarantee).
        to_result(unsafe { sys::xprt_register_transport(class) })?;
        // INVARIANT: registered just above.
        Ok(Self(class))
    }
}

impl Drop for XprtClass {
    fn drop(&mut self) {
        // SAFETY: `self.0` is registered (type invariant); no transport of
        // it is left (the guarantee of `register`'s caller).
        unsafe { sys::xprt_unregister_transport(self.0) };
    }
}

/// The `sockaddr_vm` a transport is created for (`args->dstaddr`):
/// `EINVAL` if it is shorter, `EAFNOSUPPORT` if of another family.
///
/// # Safety
///
/// `args.dstaddr` must be null or readable for `args.addrlen` bytes, as the
/// core passes it to `xprt_class::setup`.
pub(crate) unsafe fn dest_addr(args: &sys::xprt_create) -> Result<sys::sockaddr_vm> {
    if args.dstaddr.is_null() || args.addrlen < size_of::<sys::sockaddr_vm>() {
        return Err(EINVAL);
    }
    // SAFETY: `dstaddr` points to `addrlen` bytes (the caller's guarantee),
    // checked to cover a `sockaddr_vm`; `read_unaligned` copes with any
    // alignment.
    let dst = unsafe { ptr::read_unaligned(args.dstaddr.cast::<sys::sockaddr_vm>()) };
    if u32::from(dst.svm_family) != sys::AF_VSOCK {
        return Err(errno!(EAFNOSUPPORT));
    }
    Ok(dst)
}

/// Proof that a transport's `queue_lock` is held, which the request
/// operations that need it take; [`Xprt::with_queue_lock`] lends one.
///
/// # Invariants
///
/// The `queue_lock` of `self.0` is held while the value lives.
pub(crate) struct QueueLocked<'a>(&'a Xprt);

impl<'a> QueueLocked<'a> {
    /// The request waiting for the reply with `xid` (wire order). The
    /// reference ends with the lock: [`Rqst::pin`] keeps it beyond.
    pub(crate) fn lookup_rqst(&self, xid: u32) -> Option<&Rqst> {
        // SAFETY: the transport is live and its `queue_lock` held (type
        // invariants).
        let req = unsafe { sys::xprt_lookup_rqst(self.0.as_raw(), xid) };
        if req.is_null() {
            return None;
        }
        // SAFETY: a request found under `queue_lock` stays valid while the
        // lock is held, which the borrow of `self` does not outlast.
        Some(unsafe { Rqst::from_raw(req) })
    }
}

/// Proof that a transport's `transport_lock` is held; see
/// [`Xprt::with_transport_lock`].
///
/// # Invariants
///
/// The `transport_lock` of `self.0` is held while the value lives.
pub(crate) struct TransportLocked<'a>(&'a Xprt);

impl TransportLocked<'_> {
    /// Marks the sender as waiting for buffer space, which
    /// `xprt_write_space()` then clears under the same lock.
    pub(crate) fn wait_for_buffer_space(&self) {
        // SAFETY: the transport is live and its `transport_lock` held (type
        // invariants), as xprtsock holds it around this call.
        unsafe { sys::xprt_wait_for_buffer_space(self.0.as_raw()) }
    }
}

/// Proof that `XPRT_LOCKED` is held on a transport, the core's lock of its
/// sending side: the sending task holds it around `send_request`, the
/// autoclose work around `close`, the connect worker from `connect`'s
/// [`XprtLocked::lock_connect`] to its [`XprtLocked::unlock_connect`], and
/// the core's `xprt_destroy()` from before `destroy` on. What belongs to
/// the holder (the record being sent, the replacement of the socket) is
/// reached through the value; an exclusive borrow of it stands for
/// exclusive use of that state.
///
/// # Invariants
///
/// `XPRT_LOCKED` of `self.0` is held, for the code that has the value,
/// while the value lives, and no other `XprtLocked` of `self.0` lives
/// meanwhile.
pub(crate) struct XprtLocked<'a>(&'a Xprt);

impl<'a> XprtLocked<'a> {
    /// The token of a holder of `XPRT_LOCKED` on `xprt`.
    ///
    /// # Safety
    ///
    /// `XPRT_LOCKED` of `xprt` must be held for the caller while the value
    /// lives, and no other `XprtLocked` of `xprt` may live meanwhile.
    pub(crate) unsafe fn new(xprt: &'a Xprt) -> Self {
        // INVARIANT: by the caller's guarantee.
        Self(xprt)
    }

    /// Hands `XPRT_LOCKED` from `task` to `cookie`, the connect worker,
    /// which ends it with [`XprtLocked::unlock_connect`]; the caller may
    /// use the token until it queues the worker. False if `task` is not the
    /// holder, which it is whenever the core calls `connect`.
    pub(crate) fn lock_connect<T>(&self, task: *mut sys::rpc_task, cookie: &T) -> bool {
        // SAFETY: the transport is live and XPRT_LOCKED held (type
        // invariants); `task` is the core's task in `connect`.
        unsafe {
            sys::xprt_lock_connect(
                self.0.as_raw(),
                task,
                ptr::from_ref(cookie).cast_mut().cast(),
            )
        }
    }

    /// Releases `XPRT_LOCKED`, which [`XprtLocked::lock_connect`] gave
    /// `cookie`.
    pub(crate) fn unlock_connect<T>(self, cookie: &T) {
        // SAFETY: the transport is live and XPRT_LOCKED held for `cookie`
        // (type invariants); the token ends here.
        unsafe {
            sys::xprt_unlock_connect(self.0.as_raw(), ptr::from_ref(cookie).cast_mut().cast())
        }
    }

    /// Backs the next reconnect off, as xprtsock does when it reconnects.
    pub(crate) fn reconnect_backoff(&self, init: Jiffies) {
        // SAFETY: the transport is live and XPRT_LOCKED held (type
        // invariants), which `xprt_reconnect_backoff()` requires.
        unsafe { sys::xprt_reconnect_backoff(self.0.as_raw(), init) }
    }

    /// Clears the bits of the closed connection, as xprtsock's close.
    pub(crate) fn reset_connection_flags(&self) {
        // SAFETY: the transport is live and XPRT_LOCKED held (type
        // invariants), as xprtsock's reset holds it.
        unsafe { sys::xv_xprt_reset_connection_flags(self.0.as_raw()) }
    }
}

/// Holds a transport's `bc_pa_lock` while it lives: the proof that the
/// list and counters of its pool of callback requests
/// ([`super::bc_pool`]) may be used; [`Xprt::lock_bc_pool`] takes it.
///
/// # Invariants
///
/// The `bc_pa_lock` of `self.0` is held, by this value, while it lives.
#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
pub(crate) struct BcPoolLocked<'a>(&'a Xprt);

#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
impl BcPoolLocked<'_> {
    /// The first request on the pool's list.
    pub(crate) fn first(&self) -> Option<&Rqst> {
        // SAFETY: the transport is live and the lock held (type invariants).
        let req = unsafe { sys::xv_bc_pa_first(self.0.as_raw()) };
        // SAFETY: a request on the list stays there, allocated, while the
        // lock is held, which the borrow of `self` does not outlast.
        (!req.is_null()).then(|| unsafe { Rqst::from_raw(req) })
    }

    /// The first request on the pool's list for which `f` is true.
    pub(crate) fn find(&self, f: impl Fn(&Rqst) -> bool) -> Option<&Rqst> {
        let x = self.0.as_raw();
        let mut req = self.first()?;
        while !f(req) {
            // SAFETY: the lock is held (type invariant) and `req` is on the
            // list, as `first` and this walk found it.
            let next = unsafe { sys::xv_bc_pa_next(x, req.as_raw()) };
            if next.is_null() {
                return None;
            }
            // SAFETY: as in `first`.
            req = unsafe { Rqst::from_raw(next) };
        }
        Some(req)
    }

    /// Puts `req` at the end of the pool's list.
    ///
    /// # Safety
    ///
    /// `req` must be a live request of this transport, on no list, that
    /// the pool then owns.
    pub(crate) unsafe fn add_tail(&self, req: *mut sys::rpc_rqst) -> &Rqst {
        // SAFETY: the lock is held (type invariant); `req` is a request of
        // this transport on no list (the caller's guarantee).
        unsafe { sys::xv_bc_pa_add_tail(self.0.as_raw(), req) };
        // SAFETY: as in `first`: `req` is on the list now.
        unsafe { Rqst::from_raw(req) }
    }

    /// Takes `req` off the pool's list.
    ///
    /// # Safety
    ///
    /// `req` must be on this pool's list.
    pub(crate) unsafe fn del(&self, req: *mut sys::rpc_rqst) {
        // SAFETY: the lock is held (type invariant) and `req` on the list
        // (the caller's guarantee).
        unsafe { sys::xv_bc_pa_del(req) };
    }

    /// `bc_alloc_count`: requests on the pool's list.
    pub(crate) fn alloc_count(&self) -> u32 {
        // SAFETY: the transport is live and `bc_pa_lock`, which guards the
        // field, held (type invariants).
        unsafe { (*self.0.as_raw()).bc_alloc_count }
    }

    pub(crate) fn set_alloc_count(&self, n: u32) {
        // SAFETY: as in `alloc_count`.
        unsafe { (*self.0.as_raw()).bc_alloc_count = n };
    }

    /// `bc_alloc_max`: requests the sessions asked for.
    pub(crate) fn alloc_max(&self) -> u32 {
        // SAFETY: as in `alloc_count`.
        unsafe { (*self.0.as_raw()).bc_alloc_max }
    }

    pub(crate) fn set_alloc_max(&self, n: u32) {
        // SAFETY: as in `alloc_count`.
        unsafe { (*self.0.as_raw()).bc_alloc_max = n };
    }

    /// `bc_slot_count`: requests the transport holds, in use or not.
    pub(crate) fn slot_count(&self) -> i32 {
        // SAFETY: the transport is live (type invariant); an atomic read.
        unsafe { sys::xv_bc_slot_count(self.0.as_raw()) }
    }

    pub(crate) fn add_slot_count(&self, n: i32) {
        // SAFETY: the transport is live (type invariant); an atomic add.
        unsafe { sys::xv_bc_slot_count_add(self.0.as_raw(), n) };
    }
}

#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
impl Drop for BcPoolLocked<'_> {
    fn drop(&mut self) {
        // SAFETY: held by this value (type invariant).
        unsafe { sys::xv_bc_pa_unlock(self.0.as_raw()) };
    }
}

/// A transport's `struct rpc_xprt`, of the client transport or of nfsd's
/// backchannel.
///
/// The core and the socket callbacks use it concurrently: every field is
/// reached through the raw pointer, under the lock or bit the core uses
/// for it, never through a Rust reference to the whole.
///
/// # Invariants
///
/// The `rpc_xprt` is one of ours, set up by `xprt_alloc()`, and live for
/// the lifetime of every reference to this value.
#[repr(transparent)]
pub(crate) struct Xprt(Opaque<sys::rpc_xprt>);

impl Xprt {
    /// # Safety
    ///
    /// `ptr` must point to a live `rpc_xprt` of one of our transports that
    /// stays live for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut sys::rpc_xprt) -> &'a Self {
        // INVARIANT: by the caller's guarantee.
        // CAST: `Self` is a transparent wrapper of `Opaque<rpc_xprt>`.
        // SAFETY: `ptr` is live for `'a` (the caller's guarantee).
        unsafe { &*ptr.cast::<Self>() }
    }

    pub(crate) fn as_raw(&self) -> *mut sys::rpc_xprt {
        self.0.get()
    }

    /// The NFS callback service that takes this transport's callbacks.
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    pub(crate) fn bc_serv(&self) -> *mut sys::svc_serv {
        // SAFETY: the transport is live (type invariant); the NFS client sets the field once, when
        // its callback service starts on the transport.
        unsafe { ptr::read_volatile(ptr::addr_of!((*self.as_raw()).bc_serv)) }
    }

    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    pub(crate) fn has_bc_serv(&self) -> bool {
        !self.bc_serv().is_null()
    }

    /// Fills the fields setup owns, as xprtsock's TCP setup does.
    pub(crate) fn init_from(
        &self,
        args: &sys::xprt_create,
        dst: &sys::sockaddr_vm,
        reestablish: Jiffies,
    ) {
        self.init_peer(dst);
        let x = self.as_raw();
        // SAFETY: the transport is live (type invariant) and not shared yet during setup.
        unsafe {
            (*x).bind_timeout = 60 * kernel::time::msecs_to_jiffies(1000);
            (*x).reestablish_timeout = reestablish;
            (*x).idle_timeout = 5 * 60 * kernel::time::msecs_to_jiffies(1000);
            let to = &*(*x).timeout;
            (*x).max_reconnect_timeout = if args.reconnect_timeout != 0 {
                args.reconnect_timeout
            } else {
                to.to_maxval
            };
            (*x).connect_timeout = if args.connect_timeout != 0 {
                args.connect_timeout
            } else {
                to.to_initval * (to.to_retries as Jiffies + 1)
            };
        }
    }

    /// Fills the fields setup owns for nfsd's backchannel transport to the
    /// client at `dst`, as xprtsock's backchannel setup does; the core
    /// zeroed the timeouts, which a backchannel does not use.
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    pub(crate) fn init_bc(&self, dst: &sys::sockaddr_vm) {
        self.init_peer(dst);
        // SAFETY: the transport is live (type invariant) and not shared yet during setup.
        unsafe { sys::xv_bc_init_xprt(self.as_raw()) };
    }

    /// Stores the peer address and the stream's protocol and payload limit.
    fn init_peer(&self, dst: &sys::sockaddr_vm) {
        let x = self.as_raw();
        // SAFETY: the transport is live (type invariant) and not shared yet during setup.
        unsafe {
            ptr::copy_nonoverlapping(
                ptr::from_ref(dst).cast::<u8>(),
                ptr::addr_of_mut!((*x).addr).cast::<u8>(),
                size_of::<sys::sockaddr_vm>(),
            );
            (*x).addrlen = size_of::<sys::sockaddr_vm>();
            (*x).prot = sys::IPPROTO_TCP as i32;
            (*x).max_payload = sys::RPC_MAX_FRAGMENT_SIZE as usize;
        }
    }

    /// Points `address_strings` at NUL-terminated strings that live as
    /// long as the transport.
    pub(crate) fn set_address_strings(
        &self,
        addr: *const u8,
        port: *const u8,
        hex_addr: *const u8,
        hex_port: *const u8,
    ) {
        const NETID: &kernel::str::CStr = kernel::c_str!("vsock");
        let x = self.as_raw();
        // SAFETY: the transport is live (type invariant); the strings outlive
        // it (caller). The array is written in place through the pointer:
        // the core may read it meanwhile (sysfs, debug messages).
        unsafe {
            (*x).address_strings[sys::rpc_display_format_t_RPC_DISPLAY_ADDR as usize] = addr.cast();
            (*x).address_strings[sys::rpc_display_format_t_RPC_DISPLAY_PORT as usize] = port.cast();
            (*x).address_strings[sys::rpc_display_format_t_RPC_DISPLAY_PROTO as usize] =
                NETID.as_char_ptr();
            (*x).address_strings[sys::rpc_display_format_t_RPC_DISPLAY_HEX_ADDR as usize] =
                hex_addr.cast();
            (*x).address_strings[sys::rpc_display_format_t_RPC_DISPLAY_HEX_PORT as usize] =
                hex_port.cast();
            (*x).address_strings[sys::rpc_display_format_t_RPC_DISPLAY_NETID as usize] =
                NETID.as_char_ptr();
        }
    }

    /// The server's CID and port.
    pub(crate) fn peer(&self) -> (u32, u32) {
        // SAFETY: the transport is live (type invariant); setup stored a
        // `sockaddr_vm` in `addr`, copied out (`set_port` may write it).
        let a =
            unsafe { ptr::read(ptr::addr_of!((*self.as_raw()).addr).cast::<sys::sockaddr_vm>()) };
        (a.svm_cid, a.svm_port)
    }

    pub(crate) fn set_peer_port(&self, port: u32) {
        // SAFETY: the transport is live (type invariant) and setup stored a
        // `sockaddr_vm` in `addr`; the core calls `set_port` while binding,
        // before any connect uses the address. Written through the pointer.
        unsafe {
            (*ptr::addr_of_mut!((*self.as_raw()).addr).cast::<sys::sockaddr_vm>()).svm_port = port
        };
    }

    pub(crate) fn resvport(&self) -> bool {
        // SAFETY: the transport is live (type invariant); `resvport` is set
        // at creation and only read.
        unsafe { sys::xv_xprt_resvport(self.as_raw()) }
    }

    pub(crate) fn connected(&self) -> bool {
        // SAFETY: the transport is live (type invariant); `xprt_connected()`
        // tests a bit of `state` atomically.
        unsafe { sys::xv_xprt_connected(self.as_raw()) }
    }

    pub(crate) fn test_and_set_connected(&self) -> bool {
        // SAFETY: the transport is live (type invariant);
        // `xprt_test_and_set_connected()` is an atomic bit operation.
        unsafe { sys::xv_xprt_test_and_set_connected(self.as_raw()) }
    }

    pub(crate) fn clear_connected(&self) {
        // SAFETY: the transport is live (type invariant);
        // `xprt_clear_connected()` is an atomic bit operation.
        unsafe { sys::xv_xprt_clear_connected(self.as_raw()) }
    }

    pub(crate) fn clear_connecting(&self) {
        // SAFETY: the transport is live (type invariant);
        // `xprt_clear_connecting()` is an atomic bit operation.
        unsafe { sys::xv_xprt_clear_connecting(self.as_raw()) }
    }

    pub(crate) fn set_bound(&self) {
        // SAFETY: the transport is live (type invariant); `xprt_set_bound()`
        // is an atomic bit operation.
        unsafe { sys::xv_xprt_set_bound(self.as_raw()) }
    }

    pub(crate) fn close_wait(&self) -> bool {
        // SAFETY: the transport is live (type invariant); `test_bit()` reads
        // `state` once.
        unsafe { sys::xv_xprt_close_wait(self.as_raw()) }
    }

    pub(crate) fn bump_connect_cookie(&self) {
        // SAFETY: the transport is live (type invariant); the cookie is a plain counter that
        // xprtsock also bumps from its callbacks.
        unsafe {
            (*self.as_raw()).connect_cookie = (*self.as_raw()).connect_cookie.wrapping_add(1)
        };
    }

    /// The cookie of the current connection, which the socket callbacks
    /// bump.
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    pub(crate) fn connect_cookie(&self) -> u32 {
        // SAFETY: the transport is live (type invariant); the counter is
        // read through the pointer, racily, as the core reads it.
        unsafe { (*self.as_raw()).connect_cookie }
    }

    pub(crate) fn connect_count(&self) -> usize {
        // SAFETY: the transport is live (type invariant); the counter is
        // read through the pointer, racily, as the core reads it.
        unsafe { (*self.as_raw()).stat.connect_count }
    }

    /// Counts a connect attempt starting now.
    pub(crate) fn start_connect_stats(&self) {
        // SAFETY: the transport is live (type invariant); statistics are unlocked counters.
        unsafe {
            (*self.as_raw()).stat.connect_count += 1;
            (*self.as_raw()).stat.connect_start = jiffies();
        }
    }

    /// Adds the time the finished connect took.
    pub(crate) fn add_connect_time(&self) {
        let x = self.as_raw();
        // SAFETY: the transport is live (type invariant); statistics are
        // unlocked counters, which a socket callback (this caller) updates
        // through the pointer, with no reference to the whole transport.
        unsafe {
            (*x).stat.connect_time = (*x)
                .stat
                .connect_time
                .wrapping_add(jiffies().wrapping_sub((*x).stat.connect_start));
        }
    }

    pub(crate) fn raise_reestablish_timeout(&self, min: Jiffies) {
        // SAFETY: the transport is live (type invariant); an unlocked field, as in xprtsock.
        unsafe {
            if (*self.as_raw()).reestablish_timeout < min {
                (*self.as_raw()).reestablish_timeout = min;
            }
        }
    }

    pub(crate) fn clear_reestablish_timeout(&self) {
        // SAFETY: the transport is live (type invariant); an unlocked field,
        // which xprtsock's `sk_data_ready` clears the same way.
        unsafe { (*self.as_raw()).reestablish_timeout = 0 };
    }

    pub(crate) fn reconnect_delay(&self) -> Jiffies {
        // SAFETY: the transport is live (type invariant);
        // `xprt_reconnect_delay()` only reads it.
        unsafe { sys::xprt_reconnect_delay(self.as_raw()) }
    }

    pub(crate) fn wake_pending(&self, status: i32) {
        // SAFETY: the transport is live (type invariant);
        // `xprt_wake_pending_tasks()` takes `queue_lock` itself.
        unsafe { sys::xprt_wake_pending_tasks(self.as_raw(), status) }
    }

    pub(crate) fn force_disconnect(&self) {
        // SAFETY: the transport is live (type invariant);
        // `xprt_force_disconnect()` takes `transport_lock` itself.
        unsafe { sys::xprt_force_disconnect(self.as_raw()) }
    }

    pub(crate) fn disconnect_done(&self) {
        // SAFETY: the transport is live (type invariant); `close`, the
        // caller, ends a disconnect with it, as the core requires.
        unsafe { sys::xprt_disconnect_done(self.as_raw()) }
    }

    pub(crate) fn write_space(&self) {
        // SAFETY: the transport is live (type invariant); `xprt_write_space()`
        // takes `transport_lock` itself.
        unsafe { sys::xprt_write_space(self.as_raw()) };
    }

    /// Runs `f` under `transport_lock`, lending it the
    /// [`TransportLocked`] token.
    pub(crate) fn with_transport_lock<'a, R>(
        &'a self,
        f: impl FnOnce(&TransportLocked<'a>) -> R,
    ) -> R {
        // SAFETY: the transport is live (type invariant); the lock is
        // released below, and `f` cannot take it again: it already has the
        // token.
        unsafe { sys::xv_xprt_transport_lock(self.as_raw()) };
        // INVARIANT: `transport_lock` is held until `f` returns.
        let r = f(&TransportLocked(self));
        // SAFETY: locked above.
        unsafe { sys::xv_xprt_transport_unlock(self.as_raw()) };
        r
    }

    /// Runs `f` under `queue_lock`, which request lookup, pinning and
    /// completion need: `f` gets the [`QueueLocked`] token they take.
    pub(crate) fn with_queue_lock<'a, R>(&'a self, f: impl FnOnce(&QueueLocked<'a>) -> R) -> R {
        // SAFETY: the transport is live (type invariant); the lock is
        // released below, and `f` cannot take it again: only this function
        // takes it, and `f` already has the token.
        unsafe { sys::xv_xprt_queue_lock(self.as_raw()) };
        // INVARIANT: `queue_lock` is held until `f` returns.
        let r = f(&QueueLocked(self));
        // SAFETY: locked above.
        unsafe { sys::xv_xprt_queue_unlock(self.as_raw()) };
        r
    }

    /// Takes `bc_pa_lock`, the lock of the pool of callback requests.
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    pub(crate) fn lock_bc_pool(&self) -> BcPoolLocked<'_> {
        // SAFETY: the transport is live (type invariant); the returned value
        // unlocks it when dropped.
        unsafe { sys::xv_bc_pa_lock(self.as_raw()) };
        // INVARIANT: locked just above.
        BcPoolLocked(self)
    }

    pub(crate) fn warn_ratelimited(&self, what: &kernel::str::CStr) {
        // SAFETY: the transport is live (type invariant); `what` is NUL-terminated.
        unsafe { sys::xv_xprt_warn_ratelimited(self.as_raw(), what.as_char_ptr()) }
    }

    /// Shows the transport line of /proc/self/mountstats (the fields of
    /// xprtsock's TCP line, which tools parse).
    ///
    /// # Safety
    ///
    /// `seq` must be the file being shown.
    pub(crate) unsafe fn print_stats(&self, seq: *mut sys::seq_file, srcport: u32) {
        let x = self.as_raw();
        let now = jiffies();
        let hz = kernel::time::msecs_to_jiffies(1000);
        let idle = if self.connected() {
            // SAFETY: the transport is live (type invariant); read unlocked,
            // as by TCP.
            let last_used = unsafe { ptr::read(ptr::addr_of!((*x).last_used)) };
            (now.wrapping_sub(last_used) as isize) / hz as isize
        } else {
            0
        };
        // SAFETY: the transport is live (type invariant); a copy of the
        // counters, which the core updates unlocked and TCP reads so too.
        let s = unsafe { ptr::read(ptr::addr_of!((*x).stat)) };
        // SAFETY: the format string matches the argument types.
        unsafe {
            sys::seq_printf(
                seq,
                kernel::c_str!(
                    "\txprt:\tvsock %u %lu %lu %lu %ld %lu %lu %lu %llu %llu %lu %llu %llu\n"
                )
                .as_char_ptr(),
                srcport,
                s.bind_count,
                s.connect_count,
                s.connect_time / hz,
                idle,
                s.sends,
                s.recvs,
                s.bad_xids,
                s.req_u,
                s.bklog_u,
                s.max_slots,
                s.sending_u,
                s.pending_u,
            )
        };
    }
}

/// The current time in jiffies.
fn jiffies() -> Jiffies {
    // SAFETY: `jiffies` is always readable; the timer tick updates it.
    unsafe { ptr::read_volatile(ptr::addr_of!(sys::jiffies)) }
}

/// Storage for the address strings of `rpc_xprt::address_strings`.
pub(crate) struct Strings {
    addr: [u8; addr::PRESENTATION_MAX_LEN + 1],
    port: [u8; 11],
    hex_addr: [u8; 9],
    hex_port: [u8; 9],
}

impl Strings {
    pub(crate) const fn new() -> Self {
        Self {
            addr: [0; addr::PRESENTATION_MAX_LEN + 1],
            port: [0; 11],
            hex_addr: [0; 9],
            hex_port: [0; 9],
        }
    }

    /// Formats the strings for the peer `cid`:`port` and points the address
    /// strings of `x` at them; `x` must not outlive `self`.
    pub(crate) fn publish(&mut self, x: &Xprt, cid: u32, port: u32) {
        format_cstr(&mut self.addr, addr::Presentation(cid));
        format_cstr(&mut self.hex_addr, format_args!("{cid:08x}"));
        format_cstr(&mut self.port, port);
        format_cstr(&mut self.hex_port, format_args!("{port:x}"));
        x.set_address_strings(
            self.addr.as_ptr(),
            self.port.as_ptr(),
            self.hex_addr.as_ptr(),
            self.hex_port.as_ptr(),
        );
    }
}

/// Formats `value` NUL-terminated into `buf`.
fn format_cstr(buf: &mut [u8], value: impl core::fmt::Display) {
    let room = buf.len() - 1;
    let len = addr::format_into(&mut buf[..room], value).unwrap_or(0);
    buf[len] = 0;
}

/// What every `rpc_xprt_ops` of the module shares: the core's generic slot,
/// congestion, buffer and reply-wait handling, as xprtsock's TCP tables, and
/// no swap.
pub(crate) const fn stream_ops() -> sys::rpc_xprt_ops {
    // SAFETY: all-zero is a valid `rpc_xprt_ops`, whose fields are all
    // optional function pointers; the core checks the optional ones.
    let mut ops: sys::rpc_xprt_ops = unsafe { core::mem::zeroed() };
    ops.reserve_xprt = Some(sys::xprt_reserve_xprt);
    ops.release_xprt = Some(sys::xprt_release_xprt);
    ops.alloc_slot = Some(sys::xprt_alloc_slot);
    ops.free_slot = Some(sys::xprt_free_slot);
    ops.buf_alloc = Some(sys::rpc_malloc);
    ops.buf_free = Some(sys::rpc_free);
    ops.wait_for_reply_request = Some(sys::xprt_wait_for_reply_request_def);
    ops.enable_swap = Some(xv_enable_swap);
    ops.disable_swap = Some(xv_disable_swap);
    ops
}

/// `enable_swap`: swapping over vsock is not supported.
extern "C" fn xv_enable_swap(_xprt: *mut sys::rpc_xprt) -> i32 {
    errno!(EOPNOTSUPP).to_errno()
}

/// `disable_swap`: nothing was enabled.
extern "C" fn xv_disable_swap(_xprt: *mut sys::rpc_xprt) {}
