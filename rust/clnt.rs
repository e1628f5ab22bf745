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
//! The C glue holds the class and wraps static inline functions;
//! [`crate::sunrpc`] wraps the core's `rpc_xprt` and `rpc_rqst`.

#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
mod backchannel;

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use kernel::error::{code::*, Error, Result};
use kernel::time::{msecs_to_jiffies, Jiffies};
use kernel::types::Opaque;

use crate::record::{self, Limits, Progress, RecordDecoder, Want};
use crate::sunrpc::rqst::{self, ReadStop, Rqst};
use crate::sunrpc::xprt::{stream_ops, Strings, Xprt};
use crate::sys;
use crate::vsock::{CallbackSock, Callbacks, Socket, ZeroCopy};

/// Bytes of an RPC message that decide where it goes: XID and direction.
const HDR_LEN: usize = 8;

/// `msg_type` of a reply (RFC 5531).
const RPC_REPLY: u32 = 1;

/// `msg_type` of a call: on the client, a backchannel request.
const RPC_CALL: u32 = 0;

/// Longest reply record accepted: well above the 1 MiB rsize/READDIR
/// replies plus headers. Longer records are taken as a broken peer.
const MAX_REPLY_LEN: u32 = 8 << 20;

/// Reserved ports tried for `xprt->resvport`, as xprtsock's defaults.
const MIN_RESVPORT: u32 = 665;
const MAX_RESVPORT: u32 = 1023;

/// Largest callback the backchannel takes, as xprtsock's: the one page
/// each request of the pool receives into.
#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
const BC_MAX_PAYLOAD: usize = kernel::page::PAGE_SIZE;

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

fn init_reestablish_to() -> Jiffies {
    msecs_to_jiffies(3000)
}

/// Where the payload of the record being received goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Into `Receiver::hdr`: XID and direction are not complete yet.
    Header,
    /// Into the receive buffer of the request with the record's XID.
    Reply,
    /// Into a request of the backchannel pool: a callback from the server.
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    Callback,
    /// Nowhere: unknown XID, retransmitted request, or a callback nobody
    /// serves.
    Discard,
}

/// Receive state of one connection, protected by `Transport::recv_mutex`.
struct Receiver {
    decoder: RecordDecoder,
    hdr: [u8; HDR_LEN],
    target: Target,
    /// Bytes of the record copied into the request (0: none yet).
    copied: usize,
    /// The peer sent garbage; nothing more is read from this connection.
    broken: bool,
}

impl Receiver {
    fn new() -> Self {
        Self {
            decoder: RecordDecoder::new(Limits::with_max_record_len(MAX_REPLY_LEN)),
            hdr: [0; HDR_LEN],
            target: Target::Header,
            copied: 0,
            broken: false,
        }
    }

    /// The XID in wire byte order, as the core keeps it.
    fn xid(&self) -> u32 {
        u32::from_ne_bytes([self.hdr[0], self.hdr[1], self.hdr[2], self.hdr[3]])
    }

    fn calldir(&self) -> u32 {
        u32::from_be_bytes([self.hdr[4], self.hdr[5], self.hdr[6], self.hdr[7]])
    }
}

/// Why the receive loop stops.
enum Stop {
    /// Nothing more to read now.
    Again,
    /// The peer closed the connection.
    Eof,
    /// The peer broke the protocol.
    Malformed(&'static kernel::str::CStr),
    /// The socket failed.
    Error(Error),
}

fn recv_result(r: Result<usize>) -> Result<usize, Stop> {
    match r {
        Ok(0) => Err(Stop::Eof),
        Ok(n) => Ok(n),
        Err(e) if e == EAGAIN => Err(Stop::Again),
        Err(e) => Err(Stop::Error(e)),
    }
}

fn malformed(_: record::RecordError) -> Stop {
    Stop::Malformed(kernel::c_str!("bad record marking"))
}

/// The client transport. The core allocates it (`xprt_alloc()`, zeroed),
/// sees only the leading `rpc_xprt` and frees it with `xprt_free()`.
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
    /// `xprt` must be the `rpc_xprt` of a live transport set up by
    /// [`Transport::setup`].
    unsafe fn from_xprt<'a>(xprt: *mut sys::rpc_xprt) -> &'a Self {
        // SAFETY: `xprt` is the first field of a `repr(C)` `Transport`.
        unsafe { &*xprt.cast::<Self>() }
    }

    /// # Safety
    ///
    /// `sk` must be a socket a callback of this transport was invoked for.
    unsafe fn from_sock<'a>(sk: &'a CallbackSock) -> Option<&'a Self> {
        let data = sk.user_data();
        if data.is_null() {
            return None;
        }
        // SAFETY: `attach()` stores the transport; `detach()`, which runs
        // before the transport is freed, clears it under the callback lock
        // that `sk` holds for reading.
        Some(unsafe { Self::from_xprt(data.cast()) })
    }

    fn xprt(&self) -> &Xprt {
        // SAFETY: `self.xprt` is the live `rpc_xprt` of this transport.
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
        // SAFETY: the work item was initialised in setup and lives as long
        // as the transport; destroy cancels it.
        unsafe { sys::xv_clnt_queue_work(self.error_work.get()) };
    }

    fn recv_lock(&self) -> RecvGuard<'_> {
        // SAFETY: the mutex was initialised in setup.
        unsafe { sys::xv_clnt_recv_lock(self.recv_mutex.get()) };
        RecvGuard(self)
    }

    /// The current socket, for a holder of `XPRT_LOCKED`.
    ///
    /// # Safety
    ///
    /// The caller holds `XPRT_LOCKED` and does not keep the reference past
    /// releasing it.
    unsafe fn sock_locked(&self) -> Option<&Socket> {
        // SAFETY: the socket is replaced only by holders of XPRT_LOCKED.
        unsafe { (*self.sock.get()).as_ref() }
    }

    /// Replaces the socket and resets the per-connection state.
    ///
    /// # Safety
    ///
    /// The caller holds `XPRT_LOCKED`.
    unsafe fn replace_sock(&self, new: Option<Socket>) -> Option<Socket> {
        let mut guard = self.recv_lock();
        *guard.receiver() = Receiver::new();
        // SAFETY: XPRT_LOCKED (caller) keeps senders out, `recv_mutex` the
        // receive worker; the connect worker and close hold XPRT_LOCKED.
        let old = unsafe { ptr::replace(self.sock.get(), new) };
        // SAFETY: senders hold XPRT_LOCKED, which the caller holds.
        unsafe {
            *self.xmit_offset.get() = 0;
            *self.sock_zerocopy.get() = None;
        }
        let mut old = old;
        if let Some(sock) = old.as_mut() {
            // No callback sees this transport once this returns.
            sock.detach();
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
        // SAFETY: as in `receiver`; `sock` is another field.
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
    fn setup(args: &sys::xprt_create) -> Result<*mut sys::rpc_xprt> {
        if args.dstaddr.is_null() || args.addrlen < size_of::<sys::sockaddr_vm>() {
            return Err(EINVAL);
        }
        // SAFETY: `dstaddr` points to `addrlen` bytes, checked to cover a
        // `sockaddr_vm`; `read_unaligned` copes with any alignment.
        let dst = unsafe { ptr::read_unaligned(args.dstaddr.cast::<sys::sockaddr_vm>()) };
        if u32::from(dst.svm_family) != sys::AF_VSOCK {
            return Err(errno!(EAFNOSUPPORT));
        }
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
        // SAFETY: initialised above; from here on shared like any transport.
        let this = unsafe { &*t };
        let x = this.xprt();
        x.init_from(args, &dst, init_reestablish_to());
        this.format_addresses(dst.svm_cid, dst.svm_port);
        if dst.svm_port != 0 {
            x.set_bound();
        }
        // SAFETY: plain C call.
        if !unsafe { sys::xv_module_get() } {
            // SAFETY: `raw` came from `xprt_alloc()` and was never shared.
            unsafe { sys::xprt_free(raw) };
            return Err(EINVAL);
        }
        Ok(raw)
    }

    fn format_addresses(&self, cid: u32, port: u32) {
        // SAFETY: the strings are written in setup, before the transport is
        // shared, and in `set_port`, which the core serialises with binding.
        let s = unsafe { &mut *self.strings.get() };
        s.publish(self.xprt(), cid, port);
    }

    /// Closes the connection; from the core's autoclose work (holding
    /// `XPRT_LOCKED`) or from destroy.
    fn close(&self) {
        // SAFETY: the core calls `close` with XPRT_LOCKED held, and destroy
        // runs when nothing else uses the transport.
        let old = unsafe { self.replace_sock(None) };
        if let Some(sock) = old {
            sock.shutdown();
            drop(sock);
        }
        let x = self.xprt();
        x.clear_connected();
        x.reset_connection_flags();
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

    fn destroy(&self) {
        // SAFETY: the work items were initialised in setup.
        unsafe { sys::cancel_delayed_work_sync(self.connect_work.get()) };
        self.close();
        // SAFETY: as above.
        unsafe {
            sys::cancel_work_sync(self.recv_work.get());
            sys::cancel_work_sync(self.error_work.get());
        }
    }
}

/* Connecting. */

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

/* Socket callbacks: vsock runs them with the socket locked, in a worker. */

static CALLBACKS: Callbacks = Callbacks {
    data_ready: xv_clnt_data_ready,
    state_change: xv_clnt_state_change,
    write_space: xv_clnt_write_space,
    error_report: xv_clnt_error_report,
};

/// `sk_data_ready` of our sockets.
///
/// # Safety
///
/// Called by vsock for a live socket that it has locked.
unsafe extern "C" fn xv_clnt_data_ready(sk: *mut sys::sock) {
    // SAFETY: vsock calls this with a live socket.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: `sk` is a socket of ours, if it has user data.
    let Some(t) = (unsafe { Transport::from_sock(&sk) }) else {
        return;
    };
    // A useful exchange: the next reconnect need not wait.
    t.xprt().clear_reestablish_timeout();
    if !t.test_and_set_flag(DATA_READY) {
        // SAFETY: initialised in setup, cancelled in destroy after the
        // socket was detached.
        unsafe { sys::xv_clnt_queue_work(t.recv_work.get()) };
    }
}

/// `sk_state_change` of our sockets.
///
/// # Safety
///
/// Called by vsock for a live socket that it has locked.
unsafe extern "C" fn xv_clnt_state_change(sk: *mut sys::sock) {
    // SAFETY: vsock calls this with a live socket.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: as in `xv_clnt_data_ready`.
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
/// Called by vsock for a live socket that it has locked.
unsafe extern "C" fn xv_clnt_write_space(sk: *mut sys::sock) {
    // SAFETY: vsock calls this with a live socket.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: as in `xv_clnt_data_ready`.
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
/// Called by vsock for a live socket that it has locked.
unsafe extern "C" fn xv_clnt_error_report(sk: *mut sys::sock) {
    // SAFETY: vsock calls this with a live socket.
    let sk = unsafe { CallbackSock::new(sk) };
    // SAFETY: as in `xv_clnt_data_ready`.
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

/* Sending. */

impl Transport {
    /// Sends `req`'s record, resuming a partial send.
    ///
    /// # Safety
    ///
    /// The caller (the core's `send_request`) holds `XPRT_LOCKED`.
    unsafe fn send_request(&self, req: &Rqst) -> Result {
        // SAFETY: XPRT_LOCKED is held (caller).
        let offset = unsafe { &mut *self.xmit_offset.get() };
        // SAFETY: as above.
        let sock = unsafe { self.sock_locked() };
        // A record cut short by an aborted request leaves the stream out of
        // step: only a new connection repairs it.
        if *offset != 0 && req.bytes_sent() == 0 {
            if let Some(sock) = sock {
                sock.shutdown();
            }
            // A local shutdown raises no state change: disconnect here.
            self.xprt().force_disconnect();
            return Err(errno!(ENOTCONN));
        }
        let Some(sock) = sock else {
            return Err(errno!(ENOTCONN));
        };
        let marker = record::single_fragment_marker(req.snd_len()).map_err(|_| errno!(EMSGSIZE))?;
        let total = req.snd_len() + record::MARKER_LEN;
        // Callback replies are encoded in the callback service's own pages,
        // which it reuses: those are copied.
        let zerocopy = if req.is_backchannel() {
            None
        } else {
            // SAFETY: XPRT_LOCKED is held (caller).
            unsafe { self.zerocopy_for(sock) }
        };
        req.stamp_xmit_time();
        loop {
            match req.send_from(sock, &marker, *offset, zerocopy) {
                Ok(0) => return self.nospace(sock),
                Ok(n) => {
                    *offset += n;
                    req.set_bytes_sent(*offset);
                    if *offset >= total {
                        req.add_xmit_bytes(*offset);
                        *offset = 0;
                        return Ok(());
                    }
                }
                Err(e) if e == EAGAIN => return self.nospace(sock),
                Err(e) if e == errno!(ENOTSOCK) => return Err(errno!(ENOTCONN)),
                Err(e) => return Err(e),
            }
        }
    }

    /// The handle to send request pages by reference on `sock`, the current
    /// socket, if its vsock transport allows it (as xprtsock splices pages
    /// into TCP). Asked once per socket, after it connected: vsock refuses
    /// connects over a transport without zero-copy on a socket asked before.
    ///
    /// # Safety
    ///
    /// The caller holds `XPRT_LOCKED`.
    unsafe fn zerocopy_for(&self, sock: &Socket) -> Option<&ZeroCopy> {
        // SAFETY: senders hold XPRT_LOCKED (caller), as does replace_sock.
        let allowed = unsafe { &mut *self.sock_zerocopy.get() };
        let zerocopy = self.zerocopy.as_ref()?;
        if allowed.is_none() {
            *allowed = Some(sock.enable_zerocopy());
        }
        allowed.unwrap_or(false).then_some(zerocopy)
    }

    /// The peer's credit ran out: wait for `sk_write_space`.
    fn nospace(&self, sock: &Socket) -> Result {
        let x = self.xprt();
        let waited = sock.if_no_space(|| {
            x.with_transport_lock(|| {
                // Don't race with disconnect.
                if x.connected() {
                    self.set_flag(NOSPACE);
                    x.wait_for_buffer_space();
                    Ok(())
                } else {
                    Err(errno!(ENOTCONN))
                }
            })
        });
        match waited {
            Some(Err(e)) => Err(e),
            _ => Err(EAGAIN),
        }
    }

    fn abort_send_request(&self) {
        // SAFETY: a racy read is harmless: at worst a needless reconnect,
        // as in xprtsock.
        let offset = unsafe { ptr::read_volatile(self.xmit_offset.get()) };
        let x = self.xprt();
        if offset != 0 && !x.close_wait() {
            x.force_disconnect();
        }
    }
}

/* Receiving. */

impl Transport {
    fn recv_worker(&self) {
        // SAFETY: plain C calls; receiving must not recurse into NFS.
        let nofs = unsafe { sys::xv_clnt_memalloc_nofs_save() };
        let mut guard = self.recv_lock();
        // Cleared first: data that arrives from now on queues us again.
        self.test_and_clear_flag(DATA_READY);
        if let (Some(sock), rx) = guard.sock_and_receiver() {
            if !rx.broken {
                let stop = loop {
                    if let Err(stop) = self.recv_step(sock, rx) {
                        break stop;
                    }
                };
                self.recv_stopped(rx, stop);
            }
        }
        drop(guard);
        // SAFETY: `nofs` came from the matching save.
        unsafe { sys::xv_clnt_memalloc_nofs_restore(nofs) };
    }

    fn recv_stopped(&self, rx: &mut Receiver, stop: Stop) {
        let x = self.xprt();
        match stop {
            Stop::Again => {}
            Stop::Eof => x.force_disconnect(),
            Stop::Error(e) => {
                x.wake_pending(e.to_errno());
                x.force_disconnect();
            }
            Stop::Malformed(what) => {
                rx.broken = true;
                x.warn_ratelimited(what);
                x.force_disconnect();
            }
        }
    }

    /// Reads what the decoder wants next, once.
    fn recv_step(&self, sock: &Socket, rx: &mut Receiver) -> Result<(), Stop> {
        let (offset, len) = match rx.decoder.want() {
            Want::Marker(buf) => {
                let n = recv_result(sock.recv(buf))?;
                let progress = rx.decoder.consumed(n).map_err(malformed)?;
                return self.after(rx, progress);
            }
            Want::Payload { offset, len } => (offset as usize, len as usize),
        };
        if offset < HDR_LEN {
            let end = HDR_LEN.min(offset + len);
            let n = recv_result(sock.recv(&mut rx.hdr[offset..end]))?;
            let progress = rx.decoder.consumed(n).map_err(malformed)?;
            if offset + n == HDR_LEN {
                rx.target = match rx.calldir() {
                    RPC_REPLY => Target::Reply,
                    RPC_CALL => self.callback_target(),
                    _ => return Err(Stop::Malformed(kernel::c_str!("bad message direction"))),
                };
            }
            return self.after(rx, progress);
        }
        match rx.target {
            Target::Reply => self.read_reply(sock, rx, offset, len),
            #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
            Target::Callback => self.read_callback(sock, rx, offset, len),
            Target::Discard | Target::Header => {
                let n = recv_result(sock.recv_discard(len))?;
                let progress = rx.decoder.consumed(n).map_err(malformed)?;
                self.after(rx, progress)
            }
        }
    }

    /// Handles the end of a record reported by the decoder.
    fn after(&self, rx: &mut Receiver, progress: Progress) -> Result<(), Stop> {
        let Progress::Record { len } = progress else {
            return Ok(());
        };
        if (len as usize) < HDR_LEN {
            return Err(Stop::Malformed(kernel::c_str!(
                "record shorter than an RPC header"
            )));
        }
        if rx.target == Target::Reply {
            // The record ended with the bytes already held: complete it.
            let x = self.xprt();
            x.with_queue_lock(|| {
                if let Some(req) = x.lookup_rqst(rx.xid()) {
                    if rx.copied == 0 || req.private_len() != 0 {
                        if rx.copied == 0 {
                            req.copy_header(&rx.hdr);
                        }
                        req.complete(len as usize);
                    }
                }
            });
        }
        #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
        if rx.target == Target::Callback && rx.copied == 0 {
            // A callback of nothing but its header.
            let x = self.xprt();
            if let Some(req) = backchannel::lookup(x, rx.xid(), false) {
                req.copy_header(&rx.hdr);
                backchannel::complete(x, req, len as usize);
            }
        }
        rx.target = Target::Header;
        rx.copied = 0;
        Ok(())
    }

    /// Copies up to `len` bytes at record `offset` into the reply's buffer.
    fn read_reply(
        &self,
        sock: &Socket,
        rx: &mut Receiver,
        offset: usize,
        len: usize,
    ) -> Result<(), Stop> {
        let x = self.xprt();
        let pinned = x.with_queue_lock(|| {
            let req = x.lookup_rqst(rx.xid())?;
            // A request that was re-queued since the first bytes arrived
            // has a fresh buffer: the rest of this reply is stale.
            if rx.copied != 0 && req.private_len() == 0 {
                return None;
            }
            Some(req.pin())
        });
        let Some(req) = pinned else {
            rx.target = Target::Discard;
            return Ok(());
        };
        let filled = self.fill_rqst(sock, rx, req, offset, len);
        x.with_queue_lock(|| {
            if filled.ended {
                req.complete(rx.copied);
            } else {
                req.set_private_len(rx.copied);
            }
            req.unpin();
        });
        self.after_fill(rx, filled)
    }

    /// Reads stream bytes for record offsets `[offset, offset + len)` into
    /// `req`'s receive buffer, after the record's header if none is there
    /// yet, and feeds them to the decoder.
    fn fill_rqst(
        &self,
        sock: &Socket,
        rx: &mut Receiver,
        req: &Rqst,
        offset: usize,
        len: usize,
    ) -> Filled {
        if rx.copied == 0 {
            req.copy_header(&rx.hdr);
            rx.copied = HDR_LEN;
        }
        let (n, stop) = req.read_private(sock, offset, offset + len);
        let progress = if n > 0 {
            rx.decoder.consumed(n)
        } else {
            Ok(Progress::Incomplete)
        };
        rx.copied = offset + n;
        let ended =
            matches!(stop, Err(ReadStop::Full)) || matches!(progress, Ok(Progress::Record { .. }));
        Filled {
            progress,
            ended,
            stop,
        }
    }

    /// Goes on after [`Transport::fill_rqst`], once the request has been
    /// completed (if `ended`) or updated.
    fn after_fill(&self, rx: &mut Receiver, filled: Filled) -> Result<(), Stop> {
        let progress = filled.progress.map_err(malformed)?;
        if let Progress::Record { .. } = progress {
            rx.target = Target::Header;
            rx.copied = 0;
            return self.after(rx, progress);
        }
        match filled.stop {
            // The record is longer than the buffer: the rest is dropped.
            Err(ReadStop::Full) => rx.target = Target::Discard,
            Err(ReadStop::Sock(r)) => {
                recv_result(r)?;
            }
            Ok(()) => {}
        }
        Ok(())
    }
}

/// How [`Transport::fill_rqst`] ended.
struct Filled {
    progress: core::result::Result<Progress, record::RecordError>,
    /// The record is complete, or the request's buffer is full: the
    /// request is to be completed with `Receiver::copied` bytes.
    ended: bool,
    stop: core::result::Result<(), ReadStop>,
}

/* Receiving callbacks (NFSv4.1 backchannel). */

impl Transport {
    /// Where a CALL record goes: to the backchannel if the NFS callback
    /// service runs on this transport.
    fn callback_target(&self) -> Target {
        #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
        if self.xprt().has_bc_serv() {
            return Target::Callback;
        }
        Target::Discard
    }

    /// Copies up to `len` bytes at record `offset` into the callback's
    /// request, and queues it for the callback service once complete.
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    fn read_callback(
        &self,
        sock: &Socket,
        rx: &mut Receiver,
        offset: usize,
        len: usize,
    ) -> Result<(), Stop> {
        let x = self.xprt();
        let continued = rx.copied != 0;
        let Some(req) = backchannel::lookup(x, rx.xid(), continued) else {
            if continued {
                // The pool was destroyed under the callback: drop the rest.
                rx.target = Target::Discard;
                return Ok(());
            }
            // More callbacks in flight than CREATE_SESSION allowed.
            return Err(Stop::Malformed(kernel::c_str!(
                "callback beyond the backchannel's slots"
            )));
        };
        let filled = self.fill_rqst(sock, rx, req, offset, len);
        if filled.ended {
            // A callback longer than its page is passed on cut short, as
            // xprtsock does; the callback service rejects it.
            backchannel::complete(x, req, rx.copied);
        }
        self.after_fill(rx, filled)
    }
}

/* Entry points from the core: the ops table, the class's setup (the class
 * itself is in the C glue: it needs `THIS_MODULE` and a list head that
 * registration links), and the work functions. */

/// The `rpc_xprt_ops` of every vsock client transport: [`stream_ops`] and
/// ours.
static CLNT_OPS: sys::rpc_xprt_ops = {
    let mut ops = stream_ops();
    ops.rpcbind = Some(xv_clnt_rpcbind);
    ops.set_port = Some(xv_clnt_set_port);
    ops.connect = Some(xv_clnt_connect);
    ops.prepare_request = Some(xv_clnt_prepare_request);
    ops.send_request = Some(xv_clnt_send_request);
    ops.abort_send_request = Some(xv_clnt_abort_send_request);
    ops.close = Some(xv_clnt_close);
    ops.destroy = Some(xv_clnt_destroy);
    ops.print_stats = Some(xv_clnt_print_stats);
    ops.inject_disconnect = Some(xv_clnt_inject_disconnect);
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    {
        ops.bc_setup = Some(xv_clnt_bc_setup);
        ops.bc_maxpayload = Some(xv_clnt_bc_maxpayload);
        ops.bc_num_slots = Some(xv_clnt_bc_num_slots);
        ops.bc_free_rqst = Some(xv_clnt_bc_free_rqst);
        ops.bc_destroy = Some(xv_clnt_bc_destroy);
    }
    ops
};

/// `xprt_class::setup`.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
#[no_mangle]
unsafe extern "C" fn xv_clnt_setup(args: *mut sys::xprt_create) -> *mut sys::rpc_xprt {
    // SAFETY: the core passes valid creation arguments.
    let args = unsafe { &*args };
    match Transport::setup(args) {
        Ok(xprt) => xprt,
        Err(e) => e.to_ptr(),
    }
}

/// `rpcbind`: vsock has no rpcbind; NFSv4 always names its port.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
unsafe extern "C" fn xv_clnt_rpcbind(task: *mut sys::rpc_task) {
    // SAFETY: the core passes the task that is binding; it owns the status.
    unsafe { (*task).tk_status = errno!(EPFNOSUPPORT).to_errno() };
}

/// `set_port`.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
unsafe extern "C" fn xv_clnt_set_port(xprt: *mut sys::rpc_xprt, port: u16) {
    // SAFETY: the core passes one of our transports.
    let t = unsafe { Transport::from_xprt(xprt) };
    let x = t.xprt();
    x.set_peer_port(u32::from(port));
    let (cid, port) = x.peer();
    t.format_addresses(cid, port);
}

/// `connect`.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
unsafe extern "C" fn xv_clnt_connect(xprt: *mut sys::rpc_xprt, task: *mut sys::rpc_task) {
    // SAFETY: the core passes one of our transports.
    unsafe { Transport::from_xprt(xprt) }.connect(task);
}

/// `prepare_request`: the `bio_vec` array for the pages of `buf`.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
unsafe extern "C" fn xv_clnt_prepare_request(
    _req: *mut sys::rpc_rqst,
    buf: *mut sys::xdr_buf,
) -> i32 {
    // SAFETY: the core passes a buffer of the request it prepares.
    match unsafe { rqst::alloc_bvec(buf) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `send_request`.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
unsafe extern "C" fn xv_clnt_send_request(req: *mut sys::rpc_rqst) -> i32 {
    // SAFETY: the core passes a request of one of our transports.
    let req = unsafe { Rqst::from_raw(req) };
    // SAFETY: as above.
    let t = unsafe { Transport::from_xprt(req.xprt_raw()) };
    // SAFETY: the core sends with XPRT_LOCKED held.
    match unsafe { t.send_request(req) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `abort_send_request`.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
unsafe extern "C" fn xv_clnt_abort_send_request(req: *mut sys::rpc_rqst) {
    // SAFETY: the core passes a request of one of our transports.
    let req = unsafe { Rqst::from_raw(req) };
    // SAFETY: as above.
    unsafe { Transport::from_xprt(req.xprt_raw()) }.abort_send_request();
}

/// `close`.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
unsafe extern "C" fn xv_clnt_close(xprt: *mut sys::rpc_xprt) {
    // SAFETY: the core passes one of our transports.
    unsafe { Transport::from_xprt(xprt) }.close();
}

/// `destroy`: the last reference is gone.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
unsafe extern "C" fn xv_clnt_destroy(xprt: *mut sys::rpc_xprt) {
    // SAFETY: the core passes one of our transports.
    unsafe { Transport::from_xprt(xprt) }.destroy();
    // SAFETY: nothing uses the transport any more; the core allocated it.
    unsafe {
        ptr::drop_in_place(xprt.cast::<Transport>());
        sys::xprt_free(xprt);
        sys::xv_module_put();
    }
}

/// `print_stats`, the transport line of /proc/self/mountstats.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
unsafe extern "C" fn xv_clnt_print_stats(xprt: *mut sys::rpc_xprt, seq: *mut sys::seq_file) {
    // SAFETY: the core passes one of our transports.
    let t = unsafe { Transport::from_xprt(xprt) };
    // SAFETY: only the connect worker writes it; a stale value is harmless.
    let srcport = unsafe { ptr::read_volatile(t.srcport.get()) };
    // SAFETY: `seq` is the file being shown.
    unsafe { t.xprt().print_stats(seq, srcport) };
}

/// `inject_disconnect` (CONFIG_FAIL_SUNRPC).
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
unsafe extern "C" fn xv_clnt_inject_disconnect(xprt: *mut sys::rpc_xprt) {
    // SAFETY: the core passes one of our transports.
    unsafe { Transport::from_xprt(xprt) }
        .xprt()
        .force_disconnect();
}

/// `bc_setup`: a new session's callbacks need `min_reqs` more requests.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
unsafe extern "C" fn xv_clnt_bc_setup(xprt: *mut sys::rpc_xprt, min_reqs: u32) -> i32 {
    // SAFETY: the core passes one of our transports.
    let t = unsafe { Transport::from_xprt(xprt) };
    match backchannel::setup(t.xprt(), min_reqs) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `bc_maxpayload`.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
unsafe extern "C" fn xv_clnt_bc_maxpayload(_xprt: *mut sys::rpc_xprt) -> usize {
    BC_MAX_PAYLOAD
}

/// `bc_num_slots`.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
unsafe extern "C" fn xv_clnt_bc_num_slots(_xprt: *mut sys::rpc_xprt) -> u32 {
    backchannel::MAX_SLOTS
}

/// `bc_free_rqst`: the callback service is done with a callback request.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
unsafe extern "C" fn xv_clnt_bc_free_rqst(req: *mut sys::rpc_rqst) {
    // SAFETY: the core calls this once per callback request it is done with.
    unsafe { backchannel::free(req) };
}

/// `bc_destroy`: a session ended, or the transport goes away.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
unsafe extern "C" fn xv_clnt_bc_destroy(xprt: *mut sys::rpc_xprt, max_reqs: u32) {
    // SAFETY: the core passes one of our transports.
    let t = unsafe { Transport::from_xprt(xprt) };
    // The receive worker may be filling a request of the pool.
    let _receiving = t.recv_lock();
    backchannel::destroy(t.xprt(), max_reqs);
}

/// The receive worker.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
#[no_mangle]
unsafe extern "C" fn xv_clnt_recv_work(work: *mut sys::work_struct) {
    // SAFETY: `work` is the `recv_work` of a live transport: destroy
    // cancels it before freeing.
    let t = unsafe { &*container_of_work(work, core::mem::offset_of!(Transport, recv_work)) };
    t.recv_worker();
}

/// The error worker.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
#[no_mangle]
unsafe extern "C" fn xv_clnt_error_work(work: *mut sys::work_struct) {
    // SAFETY: as in `xv_clnt_recv_work`, for `error_work`.
    let t = unsafe { &*container_of_work(work, core::mem::offset_of!(Transport, error_work)) };
    t.error_worker();
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

/// The transport a work item at `offset` belongs to.
fn container_of_work(work: *mut sys::work_struct, offset: usize) -> *const Transport {
    work.cast::<u8>().wrapping_sub(offset).cast::<Transport>()
}

/// Registers the class; the returned value unregisters it when dropped.
pub(crate) struct Registration(());

impl Registration {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: the class is a static of the C glue, registered once.
        kernel::error::to_result(unsafe {
            sys::xprt_register_transport(ptr::addr_of_mut!(sys::xv_clnt_class))
        })?;
        Ok(Self(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: registered in `new`; every transport holds a module
        // reference, so none is left when the module unloads.
        unsafe { sys::xprt_unregister_transport(ptr::addr_of_mut!(sys::xv_clnt_class)) };
    }
}
