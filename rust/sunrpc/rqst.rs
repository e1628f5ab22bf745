// SPDX-License-Identifier: GPL-2.0

//! A request of an `rpc_xprt` (`struct rpc_rqst`), the walks over its
//! XDR buffers (`struct xdr_buf`) that send and receive records, and the
//! fields of the backchannel pool's requests.

use core::mem::size_of;
use core::ptr;

use kernel::error::{code::*, Result};
use kernel::types::Opaque;

use super::xprt::QueueLocked;
#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
use super::xprt::{BcPoolLocked, Xprt};
use crate::sys;
use crate::vsock::{Socket, ZeroCopy};

/// Why reading into a receive buffer stopped early.
pub(crate) enum ReadStop {
    /// The record is longer than the buffer.
    Full,
    /// The socket returned end of stream (`Ok(0)`) or an error.
    Sock(Result<usize>),
}

/// A request (`struct rpc_rqst`) of one of our transports.
///
/// Its fields are reached through the raw pointer, each by the party the
/// core gives it to: the sender, or the receive worker under `queue_lock`
/// or while the request is pinned.
///
/// # Invariants
///
/// The `rpc_rqst` is live for the lifetime of every reference to this
/// value: held by the sender, or found under `queue_lock` and used under it
/// or while pinned, or a request of the backchannel pool.
#[repr(transparent)]
pub(crate) struct Rqst(Opaque<sys::rpc_rqst>);

impl Rqst {
    /// # Safety
    ///
    /// `ptr` must be valid for `'a` as the type invariant describes.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut sys::rpc_rqst) -> &'a Self {
        // INVARIANT: by the caller's guarantee.
        // CAST: `Self` is a transparent wrapper of `Opaque<rpc_rqst>`.
        // SAFETY: `ptr` is live for `'a` (the caller's guarantee).
        unsafe { &*ptr.cast::<Self>() }
    }

    pub(crate) fn as_raw(&self) -> *mut sys::rpc_rqst {
        self.0.get()
    }

    /// Whether this is the NFS callback service's reply to a callback.
    pub(crate) fn is_backchannel(&self) -> bool {
        // SAFETY: the request is valid (type invariant).
        unsafe { sys::xv_rqst_is_backchannel(self.as_raw()) }
    }

    pub(crate) fn xprt_raw(&self) -> *mut sys::rpc_xprt {
        // SAFETY: the request is valid (type invariant).
        unsafe { (*self.as_raw()).rq_xprt }
    }

    /// Keeps the request alive after `queue_lock` is dropped, until
    /// [`Rqst::unpin`].
    pub(crate) fn pin<'a>(&self, _locked: &QueueLocked<'a>) -> &'a Self {
        // SAFETY: the request is valid (type invariant) and `queue_lock` is
        // held (the token), as `xprt_pin_rqst()` requires.
        unsafe { sys::xprt_pin_rqst(self.as_raw()) };
        // SAFETY: pinned, the request stays valid until `unpin`, whose
        // callers drop the reference with it; its transport lives for `'a`.
        unsafe { Self::from_raw(self.as_raw()) }
    }

    /// Drops the pin that [`Rqst::pin`] took.
    pub(crate) fn unpin(&self, _locked: &QueueLocked<'_>) {
        // SAFETY: pinned by `pin`; `queue_lock` is held (the token).
        unsafe { sys::xprt_unpin_rqst(self.as_raw()) };
    }

    /// Completes the reply with `copied` bytes.
    pub(crate) fn complete(&self, _locked: &QueueLocked<'_>, copied: usize) {
        // SAFETY: the request is valid (type invariant) and `queue_lock` is
        // held (the token), as `xprt_complete_rqst()` requires.
        unsafe { sys::xprt_complete_rqst((*self.as_raw()).rq_task, copied as i32) };
    }

    /// The encoded call, for a sender.
    pub(crate) fn snd_buf(&self) -> &sys::xdr_buf {
        // SAFETY: the sender owns the request.
        unsafe { &(*self.as_raw()).rq_snd_buf }
    }

    /// Makes `bytes`, a whole reply, the reply buffer's content; false if it
    /// does not fit the buffer's head.
    #[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
    pub(crate) fn set_reply_head(&self, _locked: &QueueLocked<'_>, bytes: &[u8]) -> bool {
        let req = self.as_raw();
        // SAFETY: the request is valid (type invariant) and `queue_lock` (the
        // token) keeps it from completing meanwhile.
        unsafe {
            (*req).rq_private_buf = (*req).rq_rcv_buf;
            let head = (*req).rq_private_buf.head[0];
            if head.iov_len < bytes.len() {
                return false;
            }
            ptr::copy_nonoverlapping(bytes.as_ptr(), head.iov_base.cast::<u8>(), bytes.len());
        }
        true
    }

    /// Bytes of a partial reply recorded with [`Rqst::set_private_len`]; 0
    /// for a request (re)queued since.
    pub(crate) fn private_len(&self, _locked: &QueueLocked<'_>) -> u32 {
        // SAFETY: the request is valid (type invariant); `queue_lock` (the
        // token) serialises this with the core's resets of the buffer.
        unsafe { (*self.as_raw()).rq_private_buf.len }
    }

    /// Records a partial reply.
    pub(crate) fn set_private_len(&self, _locked: &QueueLocked<'_>, len: usize) {
        // SAFETY: the request is valid (type invariant); `queue_lock` (the
        // token) serialises this with the core's resets of the buffer.
        unsafe { (*self.as_raw()).rq_private_buf.len = len as u32 };
    }

    /// Puts XID and direction at the start of the reply buffer.
    pub(crate) fn copy_header(&self, hdr: &[u8]) {
        // SAFETY: the request is pinned or `queue_lock` is held; only the
        // receive worker writes the reply buffer.
        unsafe {
            let head = (*self.as_raw()).rq_private_buf.head[0];
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
        // SAFETY: the request is pinned and only the receive worker fills
        // it. The walk needs the buffer's fields, not a reference to it: the
        // core still reaches the request under `queue_lock`.
        let buf = unsafe { ptr::read(ptr::addr_of!((*self.as_raw()).rq_private_buf)) };
        // SAFETY: `buf` is a receive buffer prepared by `alloc_bvec`.
        unsafe { read_xdr_buf(sock, &buf, seek, end) }
    }

    pub(crate) fn bytes_sent(&self) -> usize {
        // SAFETY: the sender owns the request.
        unsafe { (*self.as_raw()).rq_bytes_sent as usize }
    }

    pub(crate) fn set_bytes_sent(&self, n: usize) {
        // SAFETY: the sender owns the request.
        unsafe { (*self.as_raw()).rq_bytes_sent = n as u32 };
    }

    pub(crate) fn add_xmit_bytes(&self, n: usize) {
        // SAFETY: the sender owns the request.
        unsafe { (*self.as_raw()).rq_xmit_bytes_sent += n };
    }

    pub(crate) fn stamp_xmit_time(&self) {
        // SAFETY: the sender owns the request.
        unsafe { (*self.as_raw()).rq_xtime = sys::ktime_get() };
    }

    /// Length of the encoded call.
    pub(crate) fn snd_len(&self) -> usize {
        // SAFETY: the sender owns the request.
        unsafe { (*self.as_raw()).rq_snd_buf.len as usize }
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
        let buf = unsafe { &(*self.as_raw()).rq_snd_buf };
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

/// The requests of a backchannel pool ([`super::bc_pool`]): the pool owns
/// one while it is on no list and reaches it under `bc_pa_lock`
/// ([`BcPoolLocked`]) while it is on the pool's list; the callback service
/// owns it in between.
#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
impl Rqst {
    /// Makes a new request one of `xprt`, with a page to receive a
    /// callback in and one for the reply; false if a page cannot be had.
    ///
    /// # Safety
    ///
    /// The request must be zeroed and nobody else's.
    pub(crate) unsafe fn init_bc(&self, xprt: &Xprt) -> bool {
        let req = self.as_raw();
        // SAFETY: the request is nobody else's (the caller's guarantee).
        unsafe {
            (*req).rq_xprt = xprt.as_raw();
            let rcv = sys::xv_bc_alloc_xdr_page(ptr::addr_of_mut!((*req).rq_rcv_buf));
            (*req).rq_rcv_buf.len = kernel::page::PAGE_SIZE as u32;
            rcv && sys::xv_bc_alloc_xdr_page(ptr::addr_of_mut!((*req).rq_snd_buf))
        }
    }

    /// Frees the pages of the request's buffers.
    ///
    /// # Safety
    ///
    /// The request must be nobody else's, and the buffers' heads the pages
    /// [`Rqst::init_bc`] allocated, or null; they are not used after.
    pub(crate) unsafe fn free_bc_pages(&self) {
        let req = self.as_raw();
        // SAFETY: by the caller's guarantee.
        unsafe {
            sys::xv_bc_free_xdr_page(ptr::addr_of_mut!((*req).rq_rcv_buf));
            sys::xv_bc_free_xdr_page(ptr::addr_of_mut!((*req).rq_snd_buf));
        }
    }

    /// Whether the request of the pool is filling with the callback `xid`
    /// on the connection `cookie`.
    pub(crate) fn bc_is_filling(&self, _pool: &BcPoolLocked<'_>, xid: u32, cookie: u32) -> bool {
        let req = self.as_raw();
        // SAFETY: the request is on the pool's list, whose lock (the token)
        // guards it.
        unsafe { (*req).rq_connect_cookie == cookie && (*req).rq_xid == xid }
    }

    /// Makes a free request of the pool receive the callback `xid` on the
    /// connection `cookie`.
    pub(crate) fn bc_start(&self, _pool: &BcPoolLocked<'_>, xid: u32, cookie: u32) {
        let req = self.as_raw();
        // SAFETY: the request is on the pool's list, whose lock (the token)
        // guards it.
        unsafe {
            (*req).rq_reply_bytes_recvd = 0;
            (*req).rq_private_buf = (*req).rq_rcv_buf;
            (*req).rq_xid = xid;
            (*req).rq_connect_cookie = cookie;
        }
    }

    /// Records a received callback of `copied` bytes and marks the request
    /// in use, for the callback service.
    ///
    /// # Safety
    ///
    /// The caller owns the request, which left the pool's list.
    pub(crate) unsafe fn bc_set_in_use(&self, copied: usize) {
        let req = self.as_raw();
        // SAFETY: the request is the caller's (the caller's guarantee).
        unsafe {
            (*req).rq_private_buf.len = copied as u32;
            sys::xv_bc_set_in_use(req);
        }
    }

    /// Stamps the request with `cookie`, a connection's that is over, and
    /// clears its in-use bit; barriers order the two, as
    /// `xprt_free_bc_rqst()` does.
    ///
    /// # Safety
    ///
    /// The caller owns the request, which is on no list.
    pub(crate) unsafe fn bc_clear_in_use(&self, cookie: u32) {
        let req = self.as_raw();
        // SAFETY: the request is the caller's (the caller's guarantee).
        unsafe {
            (*req).rq_connect_cookie = cookie;
            sys::xv_bc_clear_in_use(req);
        }
    }

    /// Resets both buffers to their one empty page, for the next callback.
    ///
    /// # Safety
    ///
    /// The caller owns the request, which is on no list.
    pub(crate) unsafe fn bc_reinit(&self) {
        let req = self.as_raw();
        // SAFETY: the request is the caller's (the caller's guarantee).
        unsafe {
            reinit_xdr_buf(&mut (*req).rq_snd_buf);
            reinit_xdr_buf(&mut (*req).rq_rcv_buf);
            (*req).rq_rcv_buf.len = kernel::page::PAGE_SIZE as u32;
        }
    }
}

/// Resets a request's buffer to its one empty page.
#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
fn reinit_xdr_buf(buf: &mut sys::xdr_buf) {
    buf.head[0].iov_len = kernel::page::PAGE_SIZE;
    buf.tail[0].iov_len = 0;
    buf.pages = ptr::null_mut();
    buf.page_len = 0;
    buf.flags = 0;
    buf.len = 0;
    buf.buflen = kernel::page::PAGE_SIZE as u32;
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
    // SAFETY: by the caller's guarantee the buffer is live; a copy of its
    // fields is enough to read them.
    let fields = unsafe { ptr::read(buf) };
    let n = page_count(&fields);
    if n == 0 || !fields.bvec.is_null() {
        return Ok(());
    }
    // SAFETY: `kmalloc_array()` with the task's allocation flags, as
    // xprtsock's `xdr_alloc_bvec()`; the core frees the array with `kfree()`.
    let bvec =
        unsafe { sys::xv_kmalloc_array(n, size_of::<sys::bio_vec>(), sys::rpc_task_gfp_mask()) }
            .cast::<sys::bio_vec>();
    if bvec.is_null() {
        return Err(ENOMEM);
    }
    for i in 0..n {
        // SAFETY: `bvec` has room for `n` entries; `pages` has `n` entries
        // (some may be NULL for sparse buffers, filled in on receive).
        unsafe {
            bvec.add(i).write(sys::bio_vec {
                bv_page: *fields.pages.add(i),
                bv_len: kernel::page::PAGE_SIZE as u32,
                bv_offset: 0,
            })
        };
    }
    // SAFETY: the buffer is ours to set up (the caller's guarantee).
    unsafe { (*buf).bvec = bvec };
    Ok(())
}

/// Allocates the missing pages of a sparse buffer up to `want` bytes of
/// page data; returns how many bytes have pages (as xprtsock's
/// `xs_alloc_sparse_pages()`).
fn alloc_sparse_pages(buf: &sys::xdr_buf, want: usize) -> usize {
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
            let page = sys::xv_xdr_alloc_page();
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
/// `buf` must be (a copy of) a receive buffer whose `bvec` (if it has
/// pages) was made by [`alloc_bvec`]; only the pages it points to are
/// written.
unsafe fn read_xdr_buf(
    sock: &Socket,
    buf: &sys::xdr_buf,
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
