// SPDX-License-Identifier: GPL-2.0

//! Kernel AF_VSOCK stream sockets.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::error::{to_result, Result};
use kernel::ffi::c_long;
use kernel::time::{ktime_ms_delta, msecs_to_jiffies, Ktime, NSEC_PER_MSEC};

use crate::sys;

/// Receive buffer of every RPC socket, which vsock grants the peer as send
/// credit. vsock's default, 256 KiB, is a quarter of a 1 MiB READ or WRITE
/// record, so the sender would stall for credit several times per record;
/// this holds two records (`make bench` compares raw streams at both sizes).
pub(crate) const BUFFER_LEN: u64 = 2 << 20;

/// A kernel-owned AF_VSOCK stream socket.
///
/// # Invariants
///
/// `sock` points to a live `struct socket` created by `sock_create_kern()`
/// or `kernel_accept()` that this value owns: nothing else releases it.
/// `own` holds the callbacks it had then; while `hooked` is false its
/// callbacks are those.
pub(crate) struct Socket {
    sock: NonNull<sys::socket>,
    /// The socket's own callbacks, which [`Socket::unhook`] puts back.
    own: SavedCallbacks,
    /// Whether [`Socket::hook`] installed callbacks.
    hooked: AtomicBool,
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
        // SAFETY: `sock_create_kern()` succeeded and handed `sock` to us.
        let this = unsafe { Self::from_owned(sock) };
        // SAFETY: `sock` is live; a listener's accepted sockets inherit it.
        to_result(unsafe { sys::xv_sock_set_buffer_size(this.sock.as_ptr(), BUFFER_LEN) })?;
        Ok(this)
    }

    /// Takes `sock` over and records its own callbacks.
    ///
    /// # Safety
    ///
    /// `sock` must be a live socket from `sock_create_kern()` or
    /// `kernel_accept()` that the caller hands over: nothing else releases
    /// it.
    unsafe fn from_owned(sock: NonNull<sys::socket>) -> Self {
        // SAFETY: `sock` is live (the caller's guarantee); `sk` is set at
        // creation and stays until release.
        let sk = unsafe { (*sock.as_ptr()).sk };
        // SAFETY: `sk` is live and not locked by this thread.
        let _lock = unsafe { SockLock::new(sk) };
        // SAFETY: `sk` is live and locked.
        let own = unsafe { SavedCallbacks::of(sk) };
        // INVARIANT: `sock` is ours (the caller's guarantee) and has its own
        // callbacks, recorded in `own`.
        Self {
            sock,
            own,
            hooked: AtomicBool::new(false),
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.unhook();
        // SAFETY: by the type invariant the socket is live and ours alone.
        unsafe { sys::sock_release(self.sock.as_ptr()) };
    }
}

/// The socket callbacks an RPC transport installs on a connected socket.
///
/// vsock calls them from a workqueue with the socket lock held, so they must
/// not sleep on the socket lock nor do socket I/O: they only set bits and
/// queue work.
pub(crate) struct Callbacks {
    /// `sk_data_ready`.
    pub(crate) data_ready: unsafe extern "C" fn(*mut sys::sock),
    /// `sk_state_change`.
    pub(crate) state_change: unsafe extern "C" fn(*mut sys::sock),
    /// `sk_write_space`.
    pub(crate) write_space: unsafe extern "C" fn(*mut sys::sock),
    /// `sk_error_report`: the only way vsock reports a failed connect.
    pub(crate) error_report: unsafe extern "C" fn(*mut sys::sock),
}

/// The socket's own callbacks, put back before the socket is released.
#[derive(Clone, Copy)]
pub(crate) struct SavedCallbacks {
    data_ready: Option<unsafe extern "C" fn(*mut sys::sock)>,
    state_change: Option<unsafe extern "C" fn(*mut sys::sock)>,
    write_space: Option<unsafe extern "C" fn(*mut sys::sock)>,
    error_report: Option<unsafe extern "C" fn(*mut sys::sock)>,
}

impl SavedCallbacks {
    /// The callbacks `sk` has now.
    ///
    /// # Safety
    ///
    /// `sk` must be live and locked (`lock_sock()`), so that they do not
    /// change meanwhile.
    unsafe fn of(sk: *mut sys::sock) -> Self {
        // SAFETY: `sk` is live and locked (the caller's guarantee).
        unsafe {
            Self {
                data_ready: (*sk).sk_data_ready,
                state_change: (*sk).sk_state_change,
                write_space: (*sk).sk_write_space,
                error_report: (*sk).sk_error_report,
            }
        }
    }
}

impl From<&Callbacks> for SavedCallbacks {
    fn from(callbacks: &Callbacks) -> Self {
        Self {
            data_ready: Some(callbacks.data_ready),
            state_change: Some(callbacks.state_change),
            write_space: Some(callbacks.write_space),
            error_report: Some(callbacks.error_report),
        }
    }
}

/// Holds the socket lock (`lock_sock()`) while it lives.
struct SockLock(*mut sys::sock);

impl SockLock {
    /// # Safety
    ///
    /// `sk` must be a live socket that the caller does not already lock.
    unsafe fn new(sk: *mut sys::sock) -> Self {
        // SAFETY: `sk` is live by the caller's guarantee.
        unsafe { sys::lock_sock_nested(sk, 0) };
        Self(sk)
    }
}

impl Drop for SockLock {
    fn drop(&mut self) {
        // SAFETY: `new` locked the live socket `self.0`.
        unsafe { sys::release_sock(self.0) };
    }
}

/// Holds `sk_callback_lock` for writing while it lives: no callback runs
/// meanwhile, wherever vsock calls it from.
struct CallbackWriteLock(*mut sys::sock);

impl CallbackWriteLock {
    /// # Safety
    ///
    /// `sk` must be a live socket whose callback lock the caller does not
    /// hold.
    unsafe fn new(sk: *mut sys::sock) -> Self {
        // SAFETY: `sk` is live by the caller's guarantee.
        unsafe { sys::xv_sk_callback_write_lock(sk) };
        Self(sk)
    }
}

impl Drop for CallbackWriteLock {
    fn drop(&mut self) {
        // SAFETY: `new` write-locked the live socket's callback lock.
        unsafe { sys::xv_sk_callback_write_unlock(self.0) };
    }
}

fn vsock_addr(cid: u32, port: u32) -> sys::sockaddr_vm {
    sys::sockaddr_vm {
        svm_family: sys::AF_VSOCK as u16,
        svm_port: port,
        svm_cid: cid,
        ..Default::default()
    }
}

/// The bytes the peer of `sk` has granted credit for. Without a transport
/// (never connected) there is no credit at all, and
/// `vsock_stream_has_space()` would warn.
///
/// # Safety
///
/// `sk` must be a live vsock socket, which starts with a `struct
/// vsock_sock`, whose transport does not change meanwhile: locked, seen
/// from a callback, or one no connect runs on (vsock changes the transport
/// of a socket only when it connects, and drops it when the socket is
/// freed).
unsafe fn stream_space(sk: *mut sys::sock) -> u64 {
    let vsk = sk.cast::<sys::vsock_sock>();
    // SAFETY: `vsk` is live (the caller's guarantee); the transport guards
    // its credit counters with a lock of its own.
    let space = unsafe {
        if (*vsk).transport.is_null() {
            return 0;
        }
        sys::vsock_stream_has_space(vsk)
    };
    // Never negative; 0 if it were.
    u64::try_from(space).unwrap_or(0)
}

/// When a blocking send stops waiting for the peer's credit.
#[derive(Clone, Copy)]
pub(crate) struct Deadline(Ktime);

impl Deadline {
    /// `ms` milliseconds from now.
    pub(crate) fn in_ms(ms: u32) -> Self {
        let now = Ktime::ktime_get().to_ns();
        Self(Ktime::from_raw(now + i64::from(ms) * NSEC_PER_MSEC))
    }

    /// The time left, in jiffies: 0 once the deadline has passed.
    fn jiffies_left(self) -> c_long {
        let ms = ktime_ms_delta(self.0, Ktime::ktime_get()).clamp(0, i64::from(u32::MAX));
        // At most `u32::MAX` milliseconds, which `msecs_to_jiffies()` caps.
        c_long::try_from(msecs_to_jiffies(ms as u32)).unwrap_or(c_long::MAX)
    }
}

fn msg_result(ret: i32) -> Result<usize> {
    to_result(ret)?;
    // Non-negative, so the conversion is lossless.
    Ok(ret as usize)
}

/// Flags of every non-blocking transfer: vsock raises `SIGPIPE` on a broken
/// connection unless told not to.
const XFER_FLAGS: u32 = sys::MSG_DONTWAIT | sys::MSG_NOSIGNAL;

/// Setting up a socket and naming its ends.
impl Socket {
    fn sk(&self) -> *mut sys::sock {
        // SAFETY: by the type invariant `sock` is live; `sk` is set at
        // creation and stays until release.
        unsafe { (*self.sock.as_ptr()).sk }
    }

    /// Binds the socket to `port` on any local CID.
    pub(crate) fn bind(&self, port: u32) -> Result {
        self.bind_addr(crate::addr::VsockAddr {
            cid: crate::addr::CID_ANY,
            port,
        })
    }

    /// Binds the socket to `addr`; `CID_ANY` binds every local CID.
    pub(crate) fn bind_addr(&self, addr: crate::addr::VsockAddr) -> Result {
        let mut svm = vsock_addr(addr.cid, addr.port);
        // SAFETY: `sock` is live; `svm` is a valid `sockaddr_vm` of the
        // length passed.
        to_result(unsafe {
            sys::kernel_bind(
                self.sock.as_ptr(),
                ptr::addr_of_mut!(svm).cast(),
                core::mem::size_of::<sys::sockaddr_vm>() as i32,
            )
        })
    }

    /// Starts connecting to `cid:port`; `EINPROGRESS` is the usual outcome,
    /// completion is reported through the callbacks.
    pub(crate) fn connect_nonblocking(&self, cid: u32, port: u32) -> Result {
        let mut addr = vsock_addr(cid, port);
        // SAFETY: `sock` is live (type invariant); `addr` is a valid
        // `sockaddr_vm` of the length passed, which `kernel_connect()`
        // copies.
        to_result(unsafe {
            sys::kernel_connect(
                self.sock.as_ptr(),
                ptr::addr_of_mut!(addr).cast(),
                core::mem::size_of::<sys::sockaddr_vm>() as i32,
                sys::O_NONBLOCK as i32,
            )
        })
    }

    /// Makes the bound socket a listener with room for `backlog` pending
    /// connections.
    pub(crate) fn listen(&self, backlog: i32) -> Result {
        // SAFETY: `sock` is live.
        to_result(unsafe { sys::kernel_listen(self.sock.as_ptr(), backlog) })
    }

    /// Takes an established connection off the listener's queue without
    /// waiting; `EAGAIN` when there is none.
    pub(crate) fn accept(&self) -> Result<Self> {
        let mut newsock: *mut sys::socket = ptr::null_mut();
        // SAFETY: `sock` is live; `newsock` is a valid location for the
        // result.
        to_result(unsafe {
            sys::kernel_accept(self.sock.as_ptr(), &mut newsock, sys::O_NONBLOCK as i32)
        })?;
        let sock = NonNull::new(newsock).ok_or(kernel::error::code::ENOMEM)?;
        // SAFETY: `kernel_accept()` succeeded and handed `sock` to us. Its
        // lock keeps vsock's class: vsock may already be using it.
        Ok(unsafe { Self::from_owned(sock) })
    }

    fn name(&self, peer: bool) -> Result<crate::addr::VsockAddr> {
        let mut svm = sys::sockaddr_vm::default();
        let sa = ptr::addr_of_mut!(svm).cast();
        // SAFETY: `sock` is live; vsock writes at most a `sockaddr_vm`.
        let ret = unsafe {
            if peer {
                sys::kernel_getpeername(self.sock.as_ptr(), sa)
            } else {
                sys::kernel_getsockname(self.sock.as_ptr(), sa)
            }
        };
        to_result(ret)?;
        Ok(crate::addr::VsockAddr {
            cid: svm.svm_cid,
            port: svm.svm_port,
        })
    }

    /// The address the socket is bound to.
    pub(crate) fn local_addr(&self) -> Result<crate::addr::VsockAddr> {
        self.name(false)
    }

    /// The address of the connected peer.
    pub(crate) fn peer_addr(&self) -> Result<crate::addr::VsockAddr> {
        self.name(true)
    }

    /// Lets sends on this socket pass pages by reference
    /// ([`Socket::send_bvec_wait`] with a [`ZeroCopy`]); false where vsock's
    /// transport does not allow `MSG_ZEROCOPY` (the virtio transports and
    /// vhost do).
    pub(crate) fn enable_zerocopy(&self) -> bool {
        // SAFETY: `sock` is live and connected.
        unsafe { sys::xv_sock_enable_zerocopy(self.sock.as_ptr()) == 0 }
    }

    /// Bounds how long a blocking send waits for the peer's credit.
    fn set_send_timeout(&self, jiffies: c_long) {
        let sk = self.sk();
        // SAFETY: `sk` is live and not locked by this thread.
        let _lock = unsafe { SockLock::new(sk) };
        // SAFETY: `sk` is live and locked.
        unsafe { (*sk).sk_sndtimeo = jiffies };
    }

    /// Shuts both directions down; the peer sees the connection close.
    pub(crate) fn shutdown(&self) {
        // The only error is "not connected", which is the goal anyway.
        // SAFETY: `sock` is live.
        let _ = unsafe {
            sys::kernel_sock_shutdown(self.sock.as_ptr(), sys::sock_shutdown_cmd_SHUT_RDWR)
        };
    }
}

/// Socket callbacks: one pair, [`Socket::hook`] and [`Socket::unhook`],
/// for both sides.
///
/// A socket records its own callbacks when it is created or accepted.
/// `hook` installs a transport's, `unhook` puts the socket's own back, and
/// dropping the socket unhooks it. Both take `&self`, because a server
/// transport shares its socket with callbacks from the moment it publishes
/// it; its callbacks chain to the socket's own ([`Socket::own_callbacks`]),
/// the client's do not.
impl Socket {
    /// The one place callbacks are installed and removed: sets
    /// `sk_user_data` to `user_data` and the callbacks to `new`, under both
    /// the socket lock and the callback lock, so that no callback runs
    /// meanwhile. Once this returns no callback is running with, or will
    /// see, the old `sk_user_data`.
    fn set_callbacks(&self, user_data: *mut core::ffi::c_void, new: SavedCallbacks) {
        let sk = self.sk();
        // SAFETY: `sk` is live and not locked by this thread.
        let _lock = unsafe { SockLock::new(sk) };
        // SAFETY: `sk` is live; this thread takes its callback lock only here.
        let _cb = unsafe { CallbackWriteLock::new(sk) };
        // SAFETY: `sk` is live and both locks are held: no callback runs.
        unsafe {
            (*sk).sk_user_data = user_data;
            (*sk).sk_data_ready = new.data_ready;
            (*sk).sk_state_change = new.state_change;
            (*sk).sk_write_space = new.write_space;
            (*sk).sk_error_report = new.error_report;
        }
    }

    /// Installs `callbacks` with `user_data` as `sk_user_data`.
    ///
    /// The callbacks may run as soon as this returns, until
    /// [`Socket::unhook`] returns.
    pub(crate) fn hook(&self, user_data: *mut core::ffi::c_void, callbacks: &Callbacks) {
        self.set_callbacks(user_data, callbacks.into());
        self.hooked.store(true, Ordering::Relaxed);
    }

    /// Puts the socket's own callbacks back if [`Socket::hook`] replaced
    /// them. Once this returns no callback is running with, or will see,
    /// the hooked `sk_user_data`.
    pub(crate) fn unhook(&self) {
        if self.hooked.swap(false, Ordering::Relaxed) {
            self.set_callbacks(ptr::null_mut(), self.own);
        }
    }

    /// The socket's own callbacks, for a transport's callbacks to chain to.
    pub(crate) fn own_callbacks(&self) -> &SavedCallbacks {
        &self.own
    }
}

/// Credit and transfers: non-blocking ones for the client, blocking ones
/// bounded by a deadline for the server.
impl Socket {
    /// Runs `f` if the peer has granted no credit for more data, with the
    /// socket locked so that `sk_write_space` cannot run in between.
    ///
    /// vsock never sets `SOCK_NOSPACE` and keeps no send queue of its own,
    /// so the generic stream tests always say "writeable".
    pub(crate) fn if_no_space<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let sk = self.sk();
        // SAFETY: `sk` is live and not locked by this thread.
        let _lock = unsafe { SockLock::new(sk) };
        // SAFETY: `sk` is live, a vsock socket and locked.
        if unsafe { stream_space(sk) } > 0 {
            return None;
        }
        Some(f())
    }

    /// The bytes the peer has granted credit for, without taking the socket
    /// lock: callable from callbacks, which run under it.
    ///
    /// The virtio transports guard their credit counters with a spinlock
    /// of their own.
    pub(crate) fn peer_credit(&self) -> u64 {
        // SAFETY: `sk` is live (type invariant) and a vsock socket; no one
        // connects a socket that carries RPC traffic, so its transport stays.
        unsafe { stream_space(self.sk()) }
    }

    fn xfer(&self, msg: &mut sys::msghdr, send: bool) -> Result<usize> {
        msg.msg_flags |= XFER_FLAGS;
        // SAFETY: `sock` is live and `msg` holds a valid iterator.
        let ret = unsafe {
            if send {
                sys::sock_sendmsg(self.sock.as_ptr(), msg)
            } else {
                sys::sock_recvmsg(self.sock.as_ptr(), msg, XFER_FLAGS as i32)
            }
        };
        msg_result(ret)
    }

    /// Sends `len` bytes of `kvecs`, skipping the first `skip`, without
    /// waiting. Returns the number of bytes queued.
    ///
    /// # Safety
    ///
    /// Every `kvec` must describe readable memory.
    pub(crate) unsafe fn send_kvecs(
        &self,
        kvecs: &[sys::kvec],
        len: usize,
        skip: usize,
    ) -> Result<usize> {
        let mut msg = sys::msghdr::default();
        // SAFETY: `kvecs` outlives `msg`; readable by the caller's guarantee.
        unsafe {
            sys::iov_iter_kvec(
                &mut msg.msg_iter,
                sys::ITER_SOURCE,
                kvecs.as_ptr(),
                kvecs.len() as _,
                len,
            );
            sys::iov_iter_advance(&mut msg.msg_iter, skip);
        }
        self.xfer(&mut msg, true)
    }

    /// Sends `len` bytes of the pages in `bvec`, skipping the first `skip`,
    /// by reference with `zerocopy` (see [`Socket::send_bvec_wait`]).
    ///
    /// # Safety
    ///
    /// `bvec` must point to `nr` entries of readable pages covering `len`;
    /// with `zerocopy` they must be pages that can be referenced.
    pub(crate) unsafe fn send_bvec(
        &self,
        bvec: *const sys::bio_vec,
        nr: usize,
        len: usize,
        skip: usize,
        zerocopy: Option<&ZeroCopy>,
    ) -> Result<usize> {
        let mut msg = sys::msghdr::default();
        if let Some(zerocopy) = zerocopy {
            msg.msg_flags = sys::MSG_ZEROCOPY;
            msg.msg_ubuf = zerocopy.0.as_ptr();
        }
        // SAFETY: by the caller's guarantee.
        unsafe {
            sys::iov_iter_bvec(&mut msg.msg_iter, sys::ITER_SOURCE, bvec, nr as _, len);
            sys::iov_iter_advance(&mut msg.msg_iter, skip);
        }
        self.xfer(&mut msg, true)
    }

    /// Sends `len` bytes of the pages in `bvec`, waiting for the peer's
    /// credit until `deadline`. Returns the number of bytes sent, which is
    /// short only if the deadline passed or a signal came.
    ///
    /// With `zerocopy`, on a socket where [`Socket::enable_zerocopy`]
    /// succeeded, the packets take references on the pages rather than
    /// copies of them.
    ///
    /// # Safety
    ///
    /// `bvec` must point to `nr` entries of readable pages covering `len`;
    /// with `zerocopy` they must be pages that can be referenced
    /// (`get_page()`), not slab memory.
    pub(crate) unsafe fn send_bvec_wait(
        &self,
        bvec: *const sys::bio_vec,
        nr: usize,
        len: usize,
        zerocopy: Option<&ZeroCopy>,
        deadline: Deadline,
    ) -> Result<usize> {
        // vsock waits up to the send timeout, which is the socket's: set it
        // for this send.
        self.set_send_timeout(deadline.jiffies_left());
        let mut msg = sys::msghdr {
            msg_flags: sys::MSG_NOSIGNAL,
            ..Default::default()
        };
        if let Some(zerocopy) = zerocopy {
            msg.msg_flags |= sys::MSG_ZEROCOPY;
            msg.msg_ubuf = zerocopy.0.as_ptr();
        }
        // SAFETY: by the caller's guarantee.
        unsafe { sys::iov_iter_bvec(&mut msg.msg_iter, sys::ITER_SOURCE, bvec, nr as _, len) };
        // SAFETY: `sock` is live and `msg` holds a valid iterator.
        msg_result(unsafe { sys::sock_sendmsg(self.sock.as_ptr(), &mut msg) })
    }

    /// Receives into `buf` without waiting; `Ok(0)` means the peer closed.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        let kvec = sys::kvec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: `kvec` describes `buf`, which is writable.
        unsafe { self.recv_kvec(&kvec, buf.len(), 0) }
    }

    /// Receives up to `len - skip` bytes into `kvec` at offset `skip`.
    ///
    /// # Safety
    ///
    /// `kvec` must describe writable memory of at least `len` bytes.
    pub(crate) unsafe fn recv_kvec(
        &self,
        kvec: &sys::kvec,
        len: usize,
        skip: usize,
    ) -> Result<usize> {
        let mut msg = sys::msghdr::default();
        // SAFETY: by the caller's guarantee.
        unsafe {
            sys::iov_iter_kvec(&mut msg.msg_iter, sys::ITER_DEST, kvec, 1, len);
            sys::iov_iter_advance(&mut msg.msg_iter, skip);
        }
        self.xfer(&mut msg, false)
    }

    /// Receives up to `len - skip` bytes into the pages of `bvec` at
    /// offset `skip`.
    ///
    /// # Safety
    ///
    /// `bvec` must point to `nr` entries of writable pages covering `len`.
    pub(crate) unsafe fn recv_bvec(
        &self,
        bvec: *const sys::bio_vec,
        nr: usize,
        len: usize,
        skip: usize,
    ) -> Result<usize> {
        let mut msg = sys::msghdr::default();
        // SAFETY: by the caller's guarantee.
        unsafe {
            sys::iov_iter_bvec(&mut msg.msg_iter, sys::ITER_DEST, bvec, nr as _, len);
            sys::iov_iter_advance(&mut msg.msg_iter, skip);
        }
        self.xfer(&mut msg, false)
    }

    /// Receives and drops up to `len` bytes.
    pub(crate) fn recv_discard(&self, len: usize) -> Result<usize> {
        let mut msg = sys::msghdr::default();
        // SAFETY: a discarding iterator needs no memory.
        unsafe { sys::iov_iter_discard(&mut msg.msg_iter, sys::ITER_DEST, len) };
        self.xfer(&mut msg, false)
    }
}

/// A socket as seen from one of its callbacks, holding its callback lock
/// for reading: `sk_user_data` stays valid while the value lives.
///
/// # Invariants
///
/// `sk` is live and its `sk_callback_lock` is read-held by this value.
pub(crate) struct CallbackSock {
    sk: *mut sys::sock,
}

impl CallbackSock {
    /// # Safety
    ///
    /// `sk` must be the socket a callback was invoked with, and the value
    /// must not outlive that invocation.
    pub(crate) unsafe fn new(sk: *mut sys::sock) -> Self {
        // SAFETY: vsock passes callbacks a live socket; they do not hold
        // its callback lock.
        unsafe { sys::xv_sk_callback_read_lock(sk) };
        // INVARIANT: the callback lock was just read-locked.
        Self { sk }
    }

    /// The `sk_user_data` installed by [`Socket::hook`], or null.
    pub(crate) fn user_data(&self) -> *mut core::ffi::c_void {
        // SAFETY: `sk` is live; the callback lock guards `sk_user_data`.
        unsafe { (*self.sk).sk_user_data }
    }

    /// Whether the connection is established and the peer still sends.
    pub(crate) fn is_established(&self) -> bool {
        // SAFETY: `sk` is live (type invariant) and a vsock socket, which
        // starts with a `struct vsock_sock`. A reset changes the state
        // without the socket lock: the answer may be stale, as for TCP.
        unsafe {
            let vsk = self.sk.cast::<sys::vsock_sock>();
            u32::from((*self.sk).__sk_common.skc_state) == sys::TCP_ESTABLISHED
                && (*vsk).peer_shutdown & sys::SEND_SHUTDOWN == 0
        }
    }

    /// Whether the connection is gone: closed, reset or shut down by the
    /// peer. A connect in progress is neither this nor established.
    pub(crate) fn is_closing(&self) -> bool {
        // SAFETY: `sk` is live (type invariant) and a vsock socket, which
        // starts with a `struct vsock_sock`; a reset changes the state
        // without the socket lock, so the answer may be stale, as for TCP.
        unsafe {
            let vsk = self.sk.cast::<sys::vsock_sock>();
            let state = u32::from((*self.sk).__sk_common.skc_state);
            state == sys::TCP_CLOSE
                || state == sys::TCP_CLOSING
                || (*vsk).peer_shutdown & sys::SEND_SHUTDOWN != 0
        }
    }

    /// The pending socket error as a negative errno, or 0.
    pub(crate) fn error(&self) -> i32 {
        // SAFETY: `sk` is live (type invariant); a racing update only
        // makes the answer stale.
        -unsafe { (*self.sk).sk_err }
    }

    /// Whether the peer has granted credit for more data.
    pub(crate) fn has_space(&self) -> bool {
        // SAFETY: `sk` is live (type invariant) and a vsock socket seen
        // from a callback.
        unsafe { stream_space(self.sk) > 0 }
    }

    /// Whether the socket is a listener.
    pub(crate) fn is_listening(&self) -> bool {
        // SAFETY: `sk` is live (type invariant); a racing update only
        // makes the answer stale.
        u32::from(unsafe { (*self.sk).__sk_common.skc_state }) == sys::TCP_LISTEN
    }

    /// Whether the connection is gone for good: reset, closed, or shut
    /// down by the peer in both directions.
    pub(crate) fn is_closed(&self) -> bool {
        // SAFETY: `sk` is live (type invariant) and a vsock socket, which
        // starts with a `struct vsock_sock`. A reset changes the state
        // without the socket lock: the answer may be stale, as for TCP.
        unsafe {
            let vsk = self.sk.cast::<sys::vsock_sock>();
            u32::from((*self.sk).__sk_common.skc_state) != sys::TCP_ESTABLISHED
                || (*vsk).peer_shutdown == sys::SHUTDOWN_MASK
        }
    }
}

impl Drop for CallbackSock {
    fn drop(&mut self) {
        // SAFETY: by the type invariant this value read-holds the lock.
        unsafe { sys::xv_sk_callback_read_unlock(self.sk) };
    }
}

impl SavedCallbacks {
    /// Runs the socket's own `sk_data_ready` from a callback.
    pub(crate) fn data_ready(&self, sk: &CallbackSock) {
        if let Some(f) = self.data_ready {
            // SAFETY: `sk.sk` is the live, locked socket the callback runs
            // for, as vsock would have passed it to `f`.
            unsafe { f(sk.sk) };
        }
    }

    /// Runs the socket's own `sk_state_change` from a callback.
    pub(crate) fn state_change(&self, sk: &CallbackSock) {
        if let Some(f) = self.state_change {
            // SAFETY: `sk.sk` is the live socket whose `sk_state_change` runs,
            // in the context vsock would have called `f` in.
            unsafe { f(sk.sk) };
        }
    }

    /// Runs the socket's own `sk_write_space` from a callback: it wakes a
    /// sender waiting for credit.
    pub(crate) fn write_space(&self, sk: &CallbackSock) {
        if let Some(f) = self.write_space {
            // SAFETY: `sk.sk` is the live socket whose `sk_write_space` runs,
            // in the context vsock would have called `f` in.
            unsafe { f(sk.sk) };
        }
    }

    /// Runs the socket's own `sk_error_report` from a callback.
    pub(crate) fn error_report(&self, sk: &CallbackSock) {
        if let Some(f) = self.error_report {
            // SAFETY: `sk.sk` is the live socket whose `sk_error_report`
            // runs, in the context vsock would have called `f` in.
            unsafe { f(sk.sk) };
        }
    }
}

/// The completion handle of zero-copy sends (`struct ubuf_info`): every
/// packet that references pages of a send holds a count on it, so it lives
/// until the last is freed, which may be after the socket, the transport
/// and the transport's module reference are gone; those packets then pin
/// the module themselves (see `xv_zerocopy_put()`).
///
/// # Invariants
///
/// The value holds one count on a live `ubuf_info` from
/// `xv_zerocopy_alloc()`. It is dropped only by code that holds a module
/// reference: transports drop it in their teardown, before they release
/// theirs.
pub(crate) struct ZeroCopy(NonNull<sys::ubuf_info>);

// SAFETY: the count is atomic and the handle is freed by whoever drops the
// last count, from any context.
unsafe impl Send for ZeroCopy {}
// SAFETY: a shared handle only lets sends take further counts, which are
// atomic.
unsafe impl Sync for ZeroCopy {}

impl ZeroCopy {
    /// A new handle; fails where memory is short, or where the kernel could
    /// not tell when a completion has returned (see `xv_zerocopy_alloc()`).
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: `xv_zerocopy_alloc()` only allocates (`GFP_KERNEL`: callers
        // may sleep, as setup and accept do) and returns the new handle or
        // null.
        let raw = unsafe { sys::xv_zerocopy_alloc() };
        // INVARIANT: a new handle with the one count that `drop` releases.
        Ok(Self(NonNull::new(raw).ok_or(kernel::error::code::ENOMEM)?))
    }
}

impl Drop for ZeroCopy {
    fn drop(&mut self) {
        // SAFETY: by the type invariant this value holds a count, and the
        // caller a module reference, which `xv_zerocopy_put()` builds on.
        unsafe { sys::xv_zerocopy_put(self.0.as_ptr()) };
    }
}
