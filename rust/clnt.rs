// SPDX-License-Identifier: GPL-2.0

//! The client transport: `xprt_class` "vsock" for the NFS client.
//!
//! It follows the TCP transport of net/sunrpc/xprtsock.c, whose functions
//! are all static: a connect worker that hands the transport lock to itself
//! (`xprt_lock_connect()` in `connect`, `xprt_unlock_connect()` at the end),
//! socket callbacks that only set bits and queue work, an error worker that
//! turns those bits into wake-ups and disconnects, a receive worker that
//! reassembles records and completes requests, and a non-blocking send that
//! resumes partial records. What differs is vsock: a failed connect is only
//! reported through `sk_error_report`, the peer's credit (not a send queue)
//! decides whether there is space to send, and there is no rpcbind.
//!
//! This file holds the transport's state, its setup and teardown and the
//! ops table; each concern has a file of its own, with its entries of the
//! table: [`connect`], [`callbacks`] (socket callbacks and the error
//! worker), [`send`], [`recv`] (where a record is received) and
//! `backchannel` (the pool of callback requests). The C glue holds the
//! class and wraps static inline functions; [`crate::sunrpc`] wraps the
//! core's `rpc_xprt` and `rpc_rqst`.

#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
mod backchannel;
mod callbacks;
mod connect;
mod recv;
mod send;

use core::cell::UnsafeCell;
use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use kernel::error::{code::*, Result};
use kernel::time::{msecs_to_jiffies, Jiffies};
use kernel::types::Opaque;

use crate::sunrpc::xprt::{dest_addr, stream_ops, Strings, Xprt, XprtClass, XprtLocked};
use crate::sys;
use crate::vsock::{CallbackSock, Socket, ZeroCopy};
use recv::Receiver;

// Bits of `Transport::flags`.
/// Data arrived; the receive worker is queued.
const DATA_READY: usize = 0;
/// A connect is in flight on the current socket.
const CONNECTING: usize = 1;
/// A sender waits for credit.
const NOSPACE: usize = 2;
/// For the error worker: wake pending tasks, the connection is up.
const WAKE_PENDING: usize = 3;
/// For the error worker: the peer closed, disconnect.
const WAKE_DISCONNECT: usize = 4;
/// For the error worker: credit arrived, wake the sender.
const WAKE_WRITE: usize = 5;
/// For the error worker: a socket error (`sock_err`) to deliver.
const WAKE_ERROR: usize = 6;
/// The next connect binds another reserved port: the last one failed, or
/// we closed a connection the server had not closed. vsock has no TIME_WAIT
/// and no sequence numbers: it drops a REQUEST that matches a connection
/// the server still holds (`virtio_transport_recv_connected`), and the
/// server's late reset or shutdown of that connection fails the new
/// connect from the same port. Retrying from it would back off
/// exponentially; after a transport reset in the guest (driver reset,
/// suspend, migration), until the server ages the connection out.
const NEW_SRCPORT: usize = 7;

fn init_reestablish_to() -> Jiffies {
    msecs_to_jiffies(3000)
}

/// The client transport. The core allocates it (`xprt_alloc()`, zeroed),
/// sees only the leading `rpc_xprt` and frees it with `xprt_free()`.
///
/// # Invariants
///
/// A `Transport` lives only in an allocation that [`Transport::setup`]
/// made with `xprt_alloc()` and initialised, field by field, before
/// sharing it; it stays there until `destroy`, which the core calls once
/// no task, worker or socket callback can reach it any more. `xprt.ops` is
/// [`CLNT_OPS`], `recv_mutex` and the work items are initialised, and
/// every transport holds one reference on the module.
///
/// A socket the connect worker hooked has the transport as `sk_user_data`
/// until `replace_sock` unhooks it, under the socket's callback lock,
/// which `close` (and so `destroy`) does before the transport is freed.
///
/// The fields in an `UnsafeCell` are used only as their comments say:
/// `sock` is read by holders of `XPRT_LOCKED` ([`XprtLocked`]) or
/// `recv_mutex` and replaced by holders of both; `recv` belongs to holders
/// of `recv_mutex`; `xmit_offset`, `sock_zerocopy` and `srcport` belong to
/// holders of `XPRT_LOCKED` (`abort_send_request` and `print_stats` only
/// read racily); `strings` is written in setup and in `set_port`, which
/// the core serialises with binding.
#[repr(C)]
pub(crate) struct Transport {
    xprt: Opaque<sys::rpc_xprt>,
    recv_mutex: Opaque<sys::mutex>,
    recv_work: Opaque<sys::work_struct>,
    error_work: Opaque<sys::work_struct>,
    connect_work: Opaque<sys::delayed_work>,
    flags: AtomicUsize,
    /// Negative errno from `sk_error_report`, for the error worker.
    sock_err: AtomicI32,
    /// The socket of the current connection. Replaced only under
    /// `recv_mutex` by holders of `XPRT_LOCKED` (connect worker, close);
    /// senders hold `XPRT_LOCKED`, the receive worker `recv_mutex`.
    sock: UnsafeCell<Option<Socket>>,
    /// Under `recv_mutex`.
    recv: UnsafeCell<Receiver>,
    /// Bytes of the current record sent, marker included; `XPRT_LOCKED`.
    xmit_offset: UnsafeCell<usize>,
    /// Completion handle for sending request pages by reference; `None` if
    /// it could not be allocated (requests are then copied).
    zerocopy: Option<ZeroCopy>,
    /// Whether the current socket takes pages by reference: `None` until
    /// its first send asks vsock; `XPRT_LOCKED`.
    sock_zerocopy: UnsafeCell<Option<bool>>,
    /// Reserved source port of the last connection, reused when
    /// reconnecting so that the server's reply cache still matches; only
    /// the connect worker uses it.
    srcport: UnsafeCell<u32>,
    /// Backing of `address_strings`; written in setup and `set_port`.
    strings: UnsafeCell<Strings>,
}

impl Transport {
    /// # Safety
    ///
    /// `xprt` must be the `rpc_xprt` of a transport set up by
    /// [`Transport::setup`] that stays live for `'a`.
    unsafe fn from_xprt<'a>(xprt: *mut sys::rpc_xprt) -> &'a Self {
        // SAFETY: `xprt` is the first field of a `repr(C)` `Transport`
        // (type invariant), live for `'a` (the caller's guarantee).
        unsafe { &*xprt.cast::<Self>() }
    }

    /// The transport a socket callback runs for, if the socket is still
    /// hooked; the reference lives no longer than the callback's `sk`.
    ///
    /// # Safety
    ///
    /// `sk` must be a socket a callback of this transport was invoked for.
    unsafe fn from_sock<'a>(sk: &'a CallbackSock) -> Option<&'a Self> {
        let data = sk.user_data();
        if data.is_null() {
            return None;
        }
        // SAFETY: non-null, the user data is the transport (type invariant),
        // freed only after `unhook`, which waits for the callback lock that
        // `sk` holds for `'a`.
        Some(unsafe { Self::from_xprt(data.cast()) })
    }

    /// The transport whose work item at `offset` is `work`.
    ///
    /// # Safety
    ///
    /// `work` must be the work item at `offset` of a transport that stays
    /// live for `'a`.
    unsafe fn from_work<'a>(work: *mut sys::work_struct, offset: usize) -> &'a Self {
        // SAFETY: `work` lies `offset` bytes into a transport live for `'a`
        // (the caller's guarantee).
        unsafe { &*work.cast::<u8>().sub(offset).cast::<Self>() }
    }

    fn xprt(&self) -> &Xprt {
        // SAFETY: `self.xprt` is the `rpc_xprt` of this transport, set up by
        // `xprt_alloc()` (type invariant), live as long as `self`.
        unsafe { Xprt::from_raw(self.xprt.get()) }
    }

    fn set_flag(&self, bit: usize) {
        self.flags.fetch_or(1 << bit, Ordering::SeqCst);
    }

    fn test_and_set_flag(&self, bit: usize) -> bool {
        self.flags.fetch_or(1 << bit, Ordering::SeqCst) & (1 << bit) != 0
    }

    fn test_and_clear_flag(&self, bit: usize) -> bool {
        self.flags.fetch_and(!(1 << bit), Ordering::SeqCst) & (1 << bit) != 0
    }

    fn run_error_worker(&self, bit: usize) {
        self.set_flag(bit);
        // SAFETY: the work item was initialised in setup (type invariant)
        // and lives as long as the transport; destroy cancels it after the
        // socket callbacks, which queue it, are detached.
        unsafe { sys::xv_clnt_queue_work(self.error_work.get()) };
    }

    fn recv_lock(&self) -> RecvGuard<'_> {
        // SAFETY: the mutex was initialised in setup (type invariant); the
        // guard unlocks it.
        unsafe { sys::xv_clnt_recv_lock(self.recv_mutex.get()) };
        RecvGuard(self)
    }

    /// The current socket, for the holder of `XPRT_LOCKED` on this
    /// transport; the reference borrows `locked`.
    fn sock_locked<'l>(&'l self, _locked: &'l XprtLocked<'_>) -> Option<&'l Socket> {
        // SAFETY: the socket is replaced only through an exclusive borrow of
        // the `XPRT_LOCKED` token (type invariant), which `locked` excludes.
        unsafe { (*self.sock.get()).as_ref() }
    }

    /// Replaces the socket and resets the per-connection state, for the
    /// holder of `XPRT_LOCKED` on this transport.
    fn replace_sock(&self, _locked: &mut XprtLocked<'_>, new: Option<Socket>) -> Option<Socket> {
        let mut guard = self.recv_lock();
        *guard.receiver() = Receiver::new();
        // SAFETY: `locked` keeps senders out, `recv_mutex` the receive
        // worker; no reference from `sock_locked` lives (exclusive borrow).
        let old = unsafe { ptr::replace(self.sock.get(), new) };
        // SAFETY: these belong to the holder of XPRT_LOCKED, borrowed
        // exclusively here.
        unsafe {
            *self.xmit_offset.get() = 0;
            *self.sock_zerocopy.get() = None;
        }
        if let Some(sock) = old.as_ref() {
            // No callback sees this transport once this returns.
            sock.unhook();
        }
        old
    }
}

/// Holds `Transport::recv_mutex`.
struct RecvGuard<'a>(&'a Transport);

impl RecvGuard<'_> {
    /// The receive state: borrowed from the guard, so there is one
    /// reference at a time.
    fn receiver(&mut self) -> &mut Receiver {
        // SAFETY: the receive state is only used under `recv_mutex`, which
        // `self` holds; the exclusive borrow of the guard makes this the only
        // reference.
        unsafe { &mut *self.0.recv.get() }
    }

    /// The current socket and the receive state, for the receive worker.
    fn sock_and_receiver(&mut self) -> (Option<&Socket>, &mut Receiver) {
        // SAFETY: the socket is only replaced under `recv_mutex`, which
        // `self` holds.
        let sock = unsafe { (*self.0.sock.get()).as_ref() };
        // SAFETY: the receive state is only used under `recv_mutex`, which
        // `self` holds; the exclusive borrow of the guard makes this the only
        // reference, and `sock` is another field.
        let rx = unsafe { &mut *self.0.recv.get() };
        (sock, rx)
    }
}

impl Drop for RecvGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `recv_lock()` locked the mutex.
        unsafe { sys::mutex_unlock(self.0.recv_mutex.get()) };
    }
}

/* Setup and teardown. */

impl Transport {
    /// `xprt_class::setup`: a new transport to `args->dstaddr`.
    ///
    /// # Safety
    ///
    /// `args` must be the core's creation arguments: `dstaddr` readable for
    /// `addrlen` bytes, `net` a live namespace.
    unsafe fn setup(args: &sys::xprt_create) -> Result<*mut sys::rpc_xprt> {
        // SAFETY: the core's arguments (the caller's guarantee).
        let dst = unsafe { dest_addr(args) }?;
        if args.xprtsec.policy != sys::xprtsec_policies_RPC_XPRTSEC_NONE {
            return Err(errno!(EPROTONOSUPPORT));
        }
        // xprtsock's default maximum, which XPRT_CREATE_INFINITE_SLOTS
        // only lifts when an administrator lowered that default.
        let max_reqs = sys::RPC_MAX_SLOT_TABLE_LIMIT;
        // SAFETY: `args.net` is the caller's live namespace.
        let raw = unsafe {
            sys::xprt_alloc(
                args.net,
                size_of::<Self>(),
                sys::RPC_MIN_SLOT_TABLE,
                max_reqs,
            )
        };
        if raw.is_null() {
            return Err(ENOMEM);
        }
        let t = raw.cast::<Self>();
        // SAFETY: `xprt_alloc()` returned a zeroed, unshared allocation of
        // `size_of::<Self>()` bytes; the fields are initialised through raw
        // pointers before any reference to the whole is made.
        unsafe {
            ptr::write(ptr::addr_of_mut!((*t).flags), AtomicUsize::new(0));
            ptr::write(ptr::addr_of_mut!((*t).sock_err), AtomicI32::new(0));
            ptr::write(ptr::addr_of_mut!((*t).sock), UnsafeCell::new(None));
            ptr::write(
                ptr::addr_of_mut!((*t).recv),
                UnsafeCell::new(Receiver::new()),
            );
            ptr::write(ptr::addr_of_mut!((*t).xmit_offset), UnsafeCell::new(0));
            ptr::write(ptr::addr_of_mut!((*t).zerocopy), ZeroCopy::new().ok());
            ptr::write(ptr::addr_of_mut!((*t).sock_zerocopy), UnsafeCell::new(None));
            ptr::write(ptr::addr_of_mut!((*t).srcport), UnsafeCell::new(0));
            sys::xv_clnt_init_xprt(
                raw,
                Opaque::raw_get(ptr::addr_of!((*t).recv_mutex)),
                Opaque::raw_get(ptr::addr_of!((*t).recv_work)),
                Opaque::raw_get(ptr::addr_of!((*t).error_work)),
                Opaque::raw_get(ptr::addr_of!((*t).connect_work)),
            );
            (*raw).ops = &CLNT_OPS;
        }
        // INVARIANT: every field is initialised: `strings` by the zeroing
        // (all-zero arrays), the mutex and work items by
        // `xv_clnt_init_xprt()`, `ops` is `CLNT_OPS`; the module reference is
        // taken below, before the transport is handed to the core.
        // SAFETY: initialised above; from here on shared like any transport.
        let this = unsafe { &*t };
        let x = this.xprt();
        x.init_from(args, &dst, init_reestablish_to());
        this.format_addresses(dst.svm_cid, dst.svm_port);
        if dst.svm_port != 0 {
            x.set_bound();
        }
        // SAFETY: `try_module_get(THIS_MODULE)` may be called at any time;
        // `destroy` drops the reference.
        if !unsafe { sys::xv_module_get() } {
            // SAFETY: initialised above and never shared; the core's module
            // reference covers the drop of the zero-copy handle.
            unsafe { ptr::drop_in_place(t) };
            // SAFETY: `raw` came from `xprt_alloc()` and is not used after.
            unsafe { sys::xprt_free(raw) };
            return Err(EINVAL);
        }
        Ok(raw)
    }

    fn format_addresses(&self, cid: u32, port: u32) {
        // SAFETY: the strings are written in setup, before the transport is
        // shared, and in `set_port`, which the core serialises with binding
        // (type invariant): no other reference exists meanwhile.
        let s = unsafe { &mut *self.strings.get() };
        s.publish(self.xprt(), cid, port);
    }

    /// Closes the connection; from the core's autoclose work or from
    /// destroy, both holding `XPRT_LOCKED`.
    fn close(&self, locked: &mut XprtLocked<'_>) {
        let x = self.xprt();
        // Still connected: the server has not closed its end and may hold it
        // while we reconnect.
        if x.connected() {
            self.set_flag(NEW_SRCPORT);
        }
        let old = self.replace_sock(locked, None);
        if let Some(sock) = old {
            sock.shutdown();
            drop(sock);
        }
        x.clear_connected();
        locked.reset_connection_flags();
        for bit in [
            DATA_READY,
            NOSPACE,
            WAKE_PENDING,
            WAKE_DISCONNECT,
            WAKE_WRITE,
            WAKE_ERROR,
        ] {
            self.test_and_clear_flag(bit);
        }
        self.sock_err.store(0, Ordering::SeqCst);
        // The socket's callbacks are gone: nothing else ends this connect.
        if self.test_and_clear_flag(CONNECTING) {
            x.clear_connecting();
        }
        x.disconnect_done();
    }

    fn destroy(&self, locked: &mut XprtLocked<'_>) {
        // SAFETY: the work item was initialised in setup (type invariant).
        unsafe { sys::cancel_delayed_work_sync(self.connect_work.get()) };
        self.close(locked);
        // SAFETY: the work items were initialised in setup (type invariant);
        // `close` detached the socket callbacks that queue them.
        unsafe {
            sys::cancel_work_sync(self.recv_work.get());
            sys::cancel_work_sync(self.error_work.get());
        }
    }
}

/* Entry points from the core: the ops table and the class's setup (the
 * class itself is in the C glue: it needs `THIS_MODULE` and a list head that
 * registration links). The entries of each concern are in its file. */

/// The `rpc_xprt_ops` of every vsock client transport: [`stream_ops`] and
/// ours.
static CLNT_OPS: sys::rpc_xprt_ops = {
    let mut ops = stream_ops();
    ops.rpcbind = Some(xv_clnt_rpcbind);
    ops.set_port = Some(xv_clnt_set_port);
    ops.connect = Some(connect::xv_clnt_connect);
    ops.prepare_request = Some(send::xv_clnt_prepare_request);
    ops.send_request = Some(send::xv_clnt_send_request);
    ops.abort_send_request = Some(send::xv_clnt_abort_send_request);
    ops.close = Some(xv_clnt_close);
    ops.destroy = Some(xv_clnt_destroy);
    ops.print_stats = Some(xv_clnt_print_stats);
    ops.inject_disconnect = Some(xv_clnt_inject_disconnect);
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    {
        ops.bc_setup = Some(backchannel::xv_clnt_bc_setup);
        ops.bc_maxpayload = Some(backchannel::xv_clnt_bc_maxpayload);
        ops.bc_num_slots = Some(backchannel::xv_clnt_bc_num_slots);
        ops.bc_free_rqst = Some(backchannel::xv_clnt_bc_free_rqst);
        ops.bc_destroy = Some(backchannel::xv_clnt_bc_destroy);
    }
    ops
};

/// `xprt_class::setup`.
///
/// # Safety
///
/// Only called by the core's `xprt_create_transport()`, for our class, with
/// the creation arguments of a new transport.
#[no_mangle]
unsafe extern "C" fn xv_clnt_setup(args: *mut sys::xprt_create) -> *mut sys::rpc_xprt {
    // SAFETY: the core passes valid creation arguments, `dstaddr` readable
    // for `addrlen` bytes and `net` a live namespace.
    match unsafe { Transport::setup(&*args) } {
        Ok(xprt) => xprt,
        Err(e) => e.to_ptr(),
    }
}

/// `rpcbind`: vsock has no rpcbind; NFSv4 always names its port.
///
/// # Safety
///
/// Only called by the core's `call_bind()` through [`CLNT_OPS`], with the
/// task that is binding one of our transports.
unsafe extern "C" fn xv_clnt_rpcbind(task: *mut sys::rpc_task) {
    // SAFETY: `task` is the running task (the function's requirement); it
    // owns its status, which `call_bind_status()` reads next.
    unsafe { (*task).tk_status = errno!(EPFNOSUPPORT).to_errno() };
}

/// `set_port`.
///
/// # Safety
///
/// Only called by the core's `rpcb_getport_done()` through [`CLNT_OPS`],
/// for one of our transports, which the binding task holds.
unsafe extern "C" fn xv_clnt_set_port(xprt: *mut sys::rpc_xprt, port: u16) {
    // SAFETY: `xprt` is one of ours, kept live by the binding task.
    let t = unsafe { Transport::from_xprt(xprt) };
    let x = t.xprt();
    x.set_peer_port(u32::from(port));
    let (cid, port) = x.peer();
    t.format_addresses(cid, port);
}

/// `close`.
///
/// # Safety
///
/// Only called by the core's autoclose work through [`CLNT_OPS`], with
/// `XPRT_LOCKED` held on one of our transports.
unsafe extern "C" fn xv_clnt_close(xprt: *mut sys::rpc_xprt) {
    // SAFETY: `xprt` is one of ours; the autoclose work runs only while the
    // transport is live (destroy cancels it first).
    let t = unsafe { Transport::from_xprt(xprt) };
    // SAFETY: `xprt_autoclose()` holds XPRT_LOCKED around `close`.
    let mut locked = unsafe { XprtLocked::new(t.xprt()) };
    t.close(&mut locked);
}

/// `destroy`: the last reference is gone.
///
/// # Safety
///
/// Only called by the core's destroy work through [`CLNT_OPS`], once, for
/// one of our transports whose last reference is gone, with `XPRT_LOCKED`
/// held (`xprt_destroy()` takes it for good before queueing the work).
unsafe extern "C" fn xv_clnt_destroy(xprt: *mut sys::rpc_xprt) {
    // SAFETY: `xprt` is one of ours and still allocated until the
    // `xprt_free()` below.
    let t = unsafe { Transport::from_xprt(xprt) };
    // SAFETY: `xprt_destroy()` holds XPRT_LOCKED for us; the token is not
    // used after `destroy`.
    let mut locked = unsafe { XprtLocked::new(t.xprt()) };
    t.destroy(&mut locked);
    // SAFETY: setup initialised every field (type invariant); nothing uses
    // them any more: no task holds the transport, `destroy` stopped the rest.
    unsafe { ptr::drop_in_place(xprt.cast::<Transport>()) };
    // SAFETY: allocated by `xprt_alloc()` (type invariant), not used after.
    unsafe { sys::xprt_free(xprt) };
    // SAFETY: drops the module reference setup took for this transport.
    unsafe { sys::xv_module_put() };
}

/// `print_stats`, the transport line of /proc/self/mountstats.
///
/// # Safety
///
/// Only called by the core's `do_print_stats()` through [`CLNT_OPS`],
/// for one of our transports, which it holds, and the file being shown.
unsafe extern "C" fn xv_clnt_print_stats(xprt: *mut sys::rpc_xprt, seq: *mut sys::seq_file) {
    // SAFETY: `xprt` is one of ours, held by the caller.
    let t = unsafe { Transport::from_xprt(xprt) };
    // SAFETY: only the connect worker writes it (type invariant); this
    // volatile read may see a stale value, which is harmless.
    let srcport = unsafe { ptr::read_volatile(t.srcport.get()) };
    // SAFETY: `seq` is the file being shown (the function's requirement).
    unsafe { t.xprt().print_stats(seq, srcport) };
}

/// `inject_disconnect` (CONFIG_FAIL_SUNRPC).
///
/// # Safety
///
/// Only called by the core's fault injection through [`CLNT_OPS`], from a
/// task that holds one of our transports.
unsafe extern "C" fn xv_clnt_inject_disconnect(xprt: *mut sys::rpc_xprt) {
    // SAFETY: `xprt` is one of ours, held by the calling task.
    unsafe { Transport::from_xprt(xprt) }
        .xprt()
        .force_disconnect();
}

/// Registers the class; the returned value unregisters it when dropped.
pub(crate) fn register() -> Result<XprtClass> {
    // SAFETY: the class is a static of the C glue, registered once, here;
    // every transport holds a module reference from setup to destroy.
    unsafe { XprtClass::register(ptr::addr_of_mut!(sys::xv_clnt_class)) }
}
