// SPDX-License-Identifier: GPL-2.0

//! A transport's `rpc_xprt`, its requests and their XDR buffers, for the
//! client transport and nfsd's backchannel: the accessors, the address
//! strings and the ops every `rpc_xprt_ops` of the module shares.

use core::marker::PhantomData;
use core::mem::size_of;
use core::ptr;

use kernel::error::{code::*, Result};
use kernel::time::Jiffies;

use crate::addr;
use crate::sys;
use crate::vsock::{Socket, ZeroCopy};

/// Why reading into a receive buffer stopped early.
pub(crate) enum ReadStop {
    /// The record is longer than the buffer.
    Full,
    /// The socket returned end of stream (`Ok(0)`) or an error.
    Sock(Result<usize>),
}

/// A transport's `rpc_xprt`.
///
/// # Invariants
///
/// `raw` points to the live `rpc_xprt` of one of our transports.
#[derive(Clone, Copy)]
pub(crate) struct Xprt<'a> {
    raw: *mut sys::rpc_xprt,
    _p: PhantomData<&'a sys::rpc_xprt>,
}

impl<'a> Xprt<'a> {
    /// # Safety
    ///
    /// `raw` must be a live `rpc_xprt` of ours for the lifetime `'a`.
    pub(crate) unsafe fn from_raw(raw: *mut sys::rpc_xprt) -> Self {
        // INVARIANT: by the caller's guarantee.
        Self {
            raw,
            _p: PhantomData,
        }
    }

    pub(crate) fn as_raw(&self) -> *mut sys::rpc_xprt {
        self.raw
    }

    /// The NFS callback service that takes this transport's callbacks.
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    pub(crate) fn bc_serv(&self) -> *mut sys::svc_serv {
        // SAFETY: `raw` is live; the NFS client sets the field once, when
        // its callback service starts on the transport.
        unsafe { ptr::read_volatile(ptr::addr_of!((*self.raw).bc_serv)) }
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
        let x = self.raw;
        // SAFETY: `x` is live (invariant) and not shared yet during setup.
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
        // SAFETY: `raw` is live (invariant) and not shared yet during setup.
        unsafe { sys::xv_bc_init_xprt(self.raw) };
    }

    /// Stores the peer address and the stream's protocol and payload limit.
    fn init_peer(&self, dst: &sys::sockaddr_vm) {
        let x = self.raw;
        // SAFETY: `x` is live (invariant) and not shared yet during setup.
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
        // SAFETY: `raw` is live; the strings outlive it (caller).
        unsafe {
            let s = &mut (*self.raw).address_strings;
            s[sys::rpc_display_format_t_RPC_DISPLAY_ADDR as usize] = addr.cast();
            s[sys::rpc_display_format_t_RPC_DISPLAY_PORT as usize] = port.cast();
            s[sys::rpc_display_format_t_RPC_DISPLAY_PROTO as usize] = NETID.as_char_ptr();
            s[sys::rpc_display_format_t_RPC_DISPLAY_HEX_ADDR as usize] = hex_addr.cast();
            s[sys::rpc_display_format_t_RPC_DISPLAY_HEX_PORT as usize] = hex_port.cast();
            s[sys::rpc_display_format_t_RPC_DISPLAY_NETID as usize] = NETID.as_char_ptr();
        }
    }

    /// The server's CID and port.
    pub(crate) fn peer(&self) -> (u32, u32) {
        // SAFETY: `raw` is live; setup stored a `sockaddr_vm` in `addr`.
        let a = unsafe { &*ptr::addr_of!((*self.raw).addr).cast::<sys::sockaddr_vm>() };
        (a.svm_cid, a.svm_port)
    }

    pub(crate) fn set_peer_port(&self, port: u32) {
        // SAFETY: as in `peer`; the core calls set_port while binding,
        // before any connect uses the address.
        unsafe {
            (*ptr::addr_of_mut!((*self.raw).addr).cast::<sys::sockaddr_vm>()).svm_port = port
        };
    }

    pub(crate) fn resvport(&self) -> bool {
        // SAFETY: `raw` is live.
        unsafe { sys::xv_clnt_resvport(self.raw) }
    }

    pub(crate) fn connected(&self) -> bool {
        // SAFETY: `raw` is live.
        unsafe { sys::xv_clnt_connected(self.raw) }
    }

    pub(crate) fn test_and_set_connected(&self) -> bool {
        // SAFETY: `raw` is live.
        unsafe { sys::xv_clnt_test_and_set_connected(self.raw) }
    }

    pub(crate) fn clear_connected(&self) {
        // SAFETY: `raw` is live.
        unsafe { sys::xv_clnt_clear_connected(self.raw) }
    }

    pub(crate) fn clear_connecting(&self) {
        // SAFETY: `raw` is live.
        unsafe { sys::xv_clnt_clear_connecting(self.raw) }
    }

    pub(crate) fn set_bound(&self) {
        // SAFETY: `raw` is live.
        unsafe { sys::xv_clnt_set_bound(self.raw) }
    }

    pub(crate) fn close_wait(&self) -> bool {
        // SAFETY: `raw` is live.
        unsafe { sys::xv_clnt_close_wait(self.raw) }
    }

    pub(crate) fn reset_connection_flags(&self) {
        // SAFETY: `raw` is live.
        unsafe { sys::xv_clnt_reset_connection_flags(self.raw) }
    }

    pub(crate) fn bump_connect_cookie(&self) {
        // SAFETY: `raw` is live; the cookie is a plain counter that
        // xprtsock also bumps from its callbacks.
        unsafe { (*self.raw).connect_cookie = (*self.raw).connect_cookie.wrapping_add(1) };
    }

    pub(crate) fn connect_count(&self) -> usize {
        // SAFETY: `raw` is live.
        unsafe { (*self.raw).stat.connect_count }
    }

    /// Counts a connect attempt starting now.
    pub(crate) fn start_connect_stats(&self) {
        // SAFETY: `raw` is live; statistics are unlocked counters.
        unsafe {
            (*self.raw).stat.connect_count += 1;
            (*self.raw).stat.connect_start = jiffies();
        }
    }

    /// Adds the time the finished connect took.
    pub(crate) fn add_connect_time(&self) {
        // SAFETY: as in `start_connect_stats`.
        unsafe {
            let x = &mut *self.raw;
            x.stat.connect_time = x
                .stat
                .connect_time
                .wrapping_add(jiffies().wrapping_sub(x.stat.connect_start));
        }
    }

    pub(crate) fn raise_reestablish_timeout(&self, min: Jiffies) {
        // SAFETY: `raw` is live; an unlocked field, as in xprtsock.
        unsafe {
            if (*self.raw).reestablish_timeout < min {
                (*self.raw).reestablish_timeout = min;
            }
        }
    }

    pub(crate) fn clear_reestablish_timeout(&self) {
        // SAFETY: as in `raise_reestablish_timeout`.
        unsafe { (*self.raw).reestablish_timeout = 0 };
    }

    pub(crate) fn reconnect_delay(&self) -> Jiffies {
        // SAFETY: `raw` is live.
        unsafe { sys::xprt_reconnect_delay(self.raw) }
    }

    pub(crate) fn reconnect_backoff(&self, init: Jiffies) {
        // SAFETY: `raw` is live; the caller holds XPRT_LOCKED.
        unsafe { sys::xprt_reconnect_backoff(self.raw, init) }
    }

    /// Hands `XPRT_LOCKED` from `task` to `cookie` (the connect worker).
    pub(crate) fn lock_connect<T>(&self, task: *mut sys::rpc_task, cookie: &T) -> bool {
        // SAFETY: `raw` is live; `task` is the core's task in `connect`.
        unsafe { sys::xprt_lock_connect(self.raw, task, ptr::from_ref(cookie).cast_mut().cast()) }
    }

    pub(crate) fn unlock_connect<T>(&self, cookie: &T) {
        // SAFETY: `raw` is live.
        unsafe { sys::xprt_unlock_connect(self.raw, ptr::from_ref(cookie).cast_mut().cast()) }
    }

    pub(crate) fn wake_pending(&self, status: i32) {
        // SAFETY: `raw` is live.
        unsafe { sys::xprt_wake_pending_tasks(self.raw, status) }
    }

    pub(crate) fn force_disconnect(&self) {
        // SAFETY: `raw` is live.
        unsafe { sys::xprt_force_disconnect(self.raw) }
    }

    pub(crate) fn disconnect_done(&self) {
        // SAFETY: `raw` is live.
        unsafe { sys::xprt_disconnect_done(self.raw) }
    }

    pub(crate) fn write_space(&self) {
        // SAFETY: `raw` is live.
        unsafe { sys::xprt_write_space(self.raw) };
    }

    /// Marks the sender as waiting; call under the transport lock.
    pub(crate) fn wait_for_buffer_space(&self) {
        // SAFETY: `raw` is live.
        unsafe { sys::xprt_wait_for_buffer_space(self.raw) }
    }

    pub(crate) fn with_transport_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: `raw` is live; the lock is released below.
        unsafe { sys::xv_clnt_transport_lock(self.raw) };
        let r = f();
        // SAFETY: locked above.
        unsafe { sys::xv_clnt_transport_unlock(self.raw) };
        r
    }

    /// Runs `f` under `queue_lock`, which request lookup, pinning and
    /// completion need.
    pub(crate) fn with_queue_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: `raw` is live; the lock is released below.
        unsafe { sys::xv_clnt_queue_lock(self.raw) };
        let r = f();
        // SAFETY: locked above.
        unsafe { sys::xv_clnt_queue_unlock(self.raw) };
        r
    }

    /// The request waiting for the reply with `xid` (wire order); call
    /// under `queue_lock` and pin it before dropping the lock.
    pub(crate) fn lookup_rqst(&self, xid: u32) -> Option<Rqst<'a>> {
        // SAFETY: `raw` is live; the caller holds `queue_lock`.
        let req = unsafe { sys::xprt_lookup_rqst(self.raw, xid) };
        if req.is_null() {
            return None;
        }
        // SAFETY: a request found under `queue_lock` stays valid while
        // the lock is held, and while pinned afterwards.
        Some(unsafe { Rqst::from_raw(req) })
    }

    pub(crate) fn warn_ratelimited(&self, what: &kernel::str::CStr) {
        // SAFETY: `raw` is live; `what` is NUL-terminated.
        unsafe { sys::xv_clnt_warn_ratelimited(self.raw, what.as_char_ptr()) }
    }

    /// Shows the transport line of /proc/self/mountstats (the fields of
    /// xprtsock's TCP line, which tools parse).
    ///
    /// # Safety
    ///
    /// `seq` must be the file being shown.
    pub(crate) unsafe fn print_stats(&self, seq: *mut sys::seq_file, srcport: u32) {
        // SAFETY: `raw` is live; statistics are read unlocked, as by TCP.
        let (x, now) = (unsafe { &*self.raw }, jiffies());
        let hz = kernel::time::msecs_to_jiffies(1000);
        let idle = if self.connected() {
            (now.wrapping_sub(x.last_used) as isize) / hz as isize
        } else {
            0
        };
        let s = &x.stat;
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

/// A request of one of our transports.
///
/// # Invariants
///
/// `raw` is valid for `'a`: held by the sender, or found under
/// `queue_lock` and used under it or while pinned.
#[derive(Clone, Copy)]
pub(crate) struct Rqst<'a> {
    raw: *mut sys::rpc_rqst,
    _p: PhantomData<&'a sys::rpc_rqst>,
}

impl Rqst<'_> {
    /// # Safety
    ///
    /// `raw` must be valid as the type invariant describes.
    pub(crate) unsafe fn from_raw(raw: *mut sys::rpc_rqst) -> Self {
        // INVARIANT: by the caller's guarantee.
        Self {
            raw,
            _p: PhantomData,
        }
    }

    pub(crate) fn as_raw(&self) -> *mut sys::rpc_rqst {
        self.raw
    }

    /// Whether this is the NFS callback service's reply to a callback.
    pub(crate) fn is_backchannel(&self) -> bool {
        // SAFETY: `raw` is valid.
        unsafe { sys::xv_clnt_rqst_is_backchannel(self.raw) }
    }

    pub(crate) fn xprt_raw(&self) -> *mut sys::rpc_xprt {
        // SAFETY: `raw` is valid.
        unsafe { (*self.raw).rq_xprt }
    }

    /// Keeps the request alive after `queue_lock` is dropped; call under it.
    pub(crate) fn pin(self) -> Self {
        // SAFETY: `raw` is valid; the caller holds `queue_lock`.
        unsafe { sys::xprt_pin_rqst(self.raw) };
        self
    }

    /// Drops the pin; call under `queue_lock`.
    pub(crate) fn unpin(&self) {
        // SAFETY: pinned by `pin`.
        unsafe { sys::xprt_unpin_rqst(self.raw) };
    }

    /// Completes the reply with `copied` bytes; call under `queue_lock`.
    pub(crate) fn complete(&self, copied: usize) {
        // SAFETY: `raw` is valid; the caller holds `queue_lock`.
        unsafe { sys::xprt_complete_rqst((*self.raw).rq_task, copied as i32) };
    }

    /// The encoded call, for a sender.
    pub(crate) fn snd_buf(&self) -> &sys::xdr_buf {
        // SAFETY: the sender owns the request.
        unsafe { &(*self.raw).rq_snd_buf }
    }

    /// Makes `bytes`, a whole reply, the reply buffer's content; false if it
    /// does not fit the buffer's head. Call under `queue_lock`.
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    pub(crate) fn set_reply_head(&self, bytes: &[u8]) -> bool {
        // SAFETY: `raw` is valid and the caller holds `queue_lock`, which
        // keeps the request from completing under us.
        unsafe {
            let req = &mut *self.raw;
            req.rq_private_buf = req.rq_rcv_buf;
            let head = &req.rq_private_buf.head[0];
            if head.iov_len < bytes.len() {
                return false;
            }
            ptr::copy_nonoverlapping(bytes.as_ptr(), head.iov_base.cast::<u8>(), bytes.len());
        }
        true
    }

    pub(crate) fn private_len(&self) -> u32 {
        // SAFETY: `raw` is valid; the caller holds `queue_lock`.
        unsafe { (*self.raw).rq_private_buf.len }
    }

    /// Records a partial reply; call under `queue_lock`.
    pub(crate) fn set_private_len(&self, len: usize) {
        // SAFETY: `raw` is valid; the caller holds `queue_lock`.
        unsafe { (*self.raw).rq_private_buf.len = len as u32 };
    }

    /// Puts XID and direction at the start of the reply buffer.
    pub(crate) fn copy_header(&self, hdr: &[u8]) {
        // SAFETY: `raw` is pinned or locked; only the receive worker writes
        // the reply buffer.
        unsafe {
            let head = &(*self.raw).rq_private_buf.head[0];
            if head.iov_len >= hdr.len() {
                ptr::copy_nonoverlapping(hdr.as_ptr(), head.iov_base.cast::<u8>(), hdr.len());
            }
        }
    }

    /// Reads stream bytes for reply offsets `[seek, end)` into the reply
    /// buffer; returns the number read and why it stopped short, if it did.
    pub(crate) fn read_private(
        &self,
        sock: &Socket,
        seek: usize,
        end: usize,
    ) -> (usize, core::result::Result<(), ReadStop>) {
        // SAFETY: `raw` is pinned and only the receive worker fills it.
        let buf = unsafe { &mut (*self.raw).rq_private_buf };
        // SAFETY: `buf` is a receive buffer prepared by `alloc_bvec`.
        unsafe { read_xdr_buf(sock, buf, seek, end) }
    }

    pub(crate) fn bytes_sent(&self) -> usize {
        // SAFETY: the sender owns the request.
        unsafe { (*self.raw).rq_bytes_sent as usize }
    }

    pub(crate) fn set_bytes_sent(&self, n: usize) {
        // SAFETY: the sender owns the request.
        unsafe { (*self.raw).rq_bytes_sent = n as u32 };
    }

    pub(crate) fn add_xmit_bytes(&self, n: usize) {
        // SAFETY: the sender owns the request.
        unsafe { (*self.raw).rq_xmit_bytes_sent += n };
    }

    pub(crate) fn stamp_xmit_time(&self) {
        // SAFETY: the sender owns the request.
        unsafe { (*self.raw).rq_xtime = sys::ktime_get() };
    }

    /// Length of the encoded call.
    pub(crate) fn snd_len(&self) -> usize {
        // SAFETY: the sender owns the request.
        unsafe { (*self.raw).rq_snd_buf.len as usize }
    }

    /// Sends the next piece of the record (marker and head, pages or tail)
    /// starting at record byte `offset`, the pages by reference with
    /// `zerocopy`; returns the bytes queued.
    pub(crate) fn send_from(
        &self,
        sock: &Socket,
        marker: &[u8; 4],
        offset: usize,
        zerocopy: Option<&ZeroCopy>,
    ) -> Result<usize> {
        // SAFETY: the sender owns the request and its encoded buffer.
        let buf = unsafe { &(*self.raw).rq_snd_buf };
        let head = buf.head[0];
        let head_end = marker.len() + head.iov_len;
        let page_len = buf.page_len as usize;
        if offset < head_end {
            let kvecs = [
                sys::kvec {
                    iov_base: marker.as_ptr().cast_mut().cast(),
                    iov_len: marker.len(),
                },
                head,
            ];
            // SAFETY: both vectors describe live memory of the request.
            return unsafe { sock.send_kvecs(&kvecs, head_end, offset) };
        }
        if offset < head_end + page_len {
            if buf.bvec.is_null() {
                return Err(ENOMEM);
            }
            let base = buf.page_base as usize;
            // SAFETY: `alloc_bvec` covered the pages of the buffer, which are
            // page cache or user pages the request holds.
            return unsafe {
                sock.send_bvec(
                    buf.bvec,
                    page_count(buf),
                    base + page_len,
                    base + offset - head_end,
                    zerocopy,
                )
            };
        }
        let tail = buf.tail[0];
        let skip = offset - head_end - page_len;
        if skip >= tail.iov_len {
            return Ok(0);
        }
        // SAFETY: the tail describes live memory of the request.
        unsafe { sock.send_kvecs(&[tail], tail.iov_len, skip) }
    }
}

/// The current time in jiffies.
fn jiffies() -> Jiffies {
    // SAFETY: `jiffies` is always readable; the timer tick updates it.
    unsafe { ptr::read_volatile(ptr::addr_of!(sys::jiffies)) }
}

fn page_count(buf: &sys::xdr_buf) -> usize {
    if buf.page_len == 0 {
        return 0;
    }
    (buf.page_base as usize + buf.page_len as usize).div_ceil(kernel::page::PAGE_SIZE)
}

/// Builds the `bio_vec` array for the pages of `buf`, which the core frees
/// with `kfree()` (`xdr_free_bvec()`); xprtsock's `xdr_alloc_bvec()` is not
/// exported.
///
/// # Safety
///
/// `buf` must be a buffer of a request being prepared.
pub(crate) unsafe fn alloc_bvec(buf: *mut sys::xdr_buf) -> Result {
    // SAFETY: by the caller's guarantee the buffer is ours to set up.
    let buf = unsafe { &mut *buf };
    let n = page_count(buf);
    if n == 0 || !buf.bvec.is_null() {
        return Ok(());
    }
    // SAFETY: plain allocation; freed by the core with kfree().
    let bvec = unsafe {
        sys::xv_clnt_kmalloc_array(n, size_of::<sys::bio_vec>(), sys::rpc_task_gfp_mask())
    }
    .cast::<sys::bio_vec>();
    if bvec.is_null() {
        return Err(ENOMEM);
    }
    for i in 0..n {
        // SAFETY: `bvec` has room for `n` entries; `pages` has `n` entries
        // (some may be NULL for sparse buffers, filled in on receive).
        unsafe {
            bvec.add(i).write(sys::bio_vec {
                bv_page: *buf.pages.add(i),
                bv_len: kernel::page::PAGE_SIZE as u32,
                bv_offset: 0,
            })
        };
    }
    buf.bvec = bvec;
    Ok(())
}

/// Allocates the missing pages of a sparse buffer up to `want` bytes of
/// page data; returns how many bytes have pages (as xprtsock's
/// `xs_alloc_sparse_pages()`).
fn alloc_sparse_pages(buf: &mut sys::xdr_buf, want: usize) -> usize {
    if want == 0 || buf.flags & sys::XDRBUF_SPARSE_PAGES == 0 {
        return want;
    }
    let base = buf.page_base as usize;
    let n = (base + want).div_ceil(kernel::page::PAGE_SIZE);
    for i in 0..n {
        // SAFETY: `pages` and `bvec` cover the page data of the buffer.
        unsafe {
            let slot = buf.pages.add(i);
            if !(*slot).is_null() {
                continue;
            }
            let page = sys::xv_clnt_alloc_page();
            if page.is_null() {
                let have = i * kernel::page::PAGE_SIZE;
                return have.saturating_sub(base);
            }
            *slot = page;
            (*buf.bvec.add(i)).bv_page = page;
        }
    }
    want
}

/// Reads record bytes `[seek, end)` into `buf` (head, then pages, then
/// tail), as xprtsock's `xs_read_xdr_buf()`. x86 needs no dcache flush.
///
/// # Safety
///
/// `buf` must be a receive buffer whose `bvec` (if it has pages) was made
/// by [`alloc_bvec`].
unsafe fn read_xdr_buf(
    sock: &Socket,
    buf: &mut sys::xdr_buf,
    seek: usize,
    end: usize,
) -> (usize, core::result::Result<(), ReadStop>) {
    let mut pos = seek;
    let head = buf.head[0];
    let page_start = head.iov_len;
    let page_end = page_start + buf.page_len as usize;
    let tail = buf.tail[0];
    let tail_end = page_end + tail.iov_len;

    let stop = |pos: usize, r: Result<usize>| (pos - seek, Err(ReadStop::Sock(r)));
    if pos < page_start.min(end) {
        let want = page_start.min(end);
        // SAFETY: the head describes the request's writable buffer.
        match unsafe { sock.recv_kvec(&head, want, pos) } {
            Ok(n) if n > 0 => pos += n,
            r => return stop(pos, r),
        }
        if pos < want || pos == end {
            return (pos - seek, Ok(()));
        }
    }
    if pos >= page_start && pos < page_end.min(end) {
        if buf.bvec.is_null() {
            return (pos - seek, Err(ReadStop::Full));
        }
        let want = alloc_sparse_pages(buf, page_end.min(end) - page_start) + page_start;
        if pos >= want {
            return stop(pos, Err(ENOMEM));
        }
        let base = buf.page_base as usize;
        // SAFETY: `alloc_bvec` and `alloc_sparse_pages` made the entries
        // up to `want` point at pages of the buffer.
        let r = unsafe {
            sock.recv_bvec(
                buf.bvec,
                page_count(buf),
                want - page_start + base,
                pos - page_start + base,
            )
        };
        match r {
            Ok(n) if n > 0 => pos += n,
            r => return stop(pos, r),
        }
        if pos < want || pos == end {
            return (pos - seek, Ok(()));
        }
    }
    if pos >= page_end && pos < tail_end.min(end) {
        let want = tail_end.min(end);
        // SAFETY: the tail describes the request's writable buffer.
        match unsafe { sock.recv_kvec(&tail, want - page_end, pos - page_end) } {
            Ok(n) if n > 0 => pos += n,
            r => return stop(pos, r),
        }
        if pos < want || pos == end {
            return (pos - seek, Ok(()));
        }
    }
    if pos < end {
        return (pos - seek, Err(ReadStop::Full));
    }
    (pos - seek, Ok(()))
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
    pub(crate) fn publish(&mut self, x: &Xprt<'_>, cid: u32, port: u32) {
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
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
unsafe extern "C" fn xv_enable_swap(_xprt: *mut sys::rpc_xprt) -> i32 {
    errno!(EOPNOTSUPP).to_errno()
}

/// `disable_swap`: nothing was enabled.
///
/// # Safety
///
/// Called by the SUNRPC core (or a workqueue) with valid arguments.
unsafe extern "C" fn xv_disable_swap(_xprt: *mut sys::rpc_xprt) {}
