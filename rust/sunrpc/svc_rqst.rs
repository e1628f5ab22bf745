// SPDX-License-Identifier: GPL-2.0

//! A server thread's request (`struct svc_rqst`) and the walks over its
//! pages that receive a call and send a reply.
//!
//! C header: [`include/linux/sunrpc/svc.h`](srctree/include/linux/sunrpc/svc.h).

use core::ffi::c_void;
use core::ptr;

use kernel::alloc::{flags::GFP_KERNEL, KVec};
use kernel::error::{code::EINVAL, Result};
use kernel::page::PAGE_SIZE;
use kernel::types::Opaque;

use crate::sys;
use crate::vsock::{Deadline, Socket, ZeroCopy};

/// Pages of a server thread's receive buffer (`RPCSVC_MAXPAGES`).
const MAX_PAGES: usize = sys::RPCSVC_MAXPAGES;

/// A server thread's request (`struct svc_rqst`), inside one of the
/// transport's receive or send operations.
///
/// # Invariants
///
/// The `svc_rqst` is live, owned by the current thread, and its `rq_pages`
/// hold allocated pages from `rq_pages` up to `rq_page_end`, except where
/// [`SvcRqst::save_pages`] took them, for the lifetime of the reference.
#[repr(transparent)]
pub(crate) struct SvcRqst(Opaque<sys::svc_rqst>);

impl SvcRqst {
    /// # Safety
    ///
    /// `rqstp` must be the request SUNRPC passed to `xpo_recvfrom` or
    /// `xpo_sendto`, and the reference must not outlive that call.
    pub(crate) unsafe fn from_raw<'a>(rqstp: *mut sys::svc_rqst) -> &'a Self {
        // INVARIANT: SUNRPC hands the thread's own request, its receive
        // pages allocated by `svc_alloc_arg()`, to these operations.
        // CAST: `Self` is a transparent wrapper of `Opaque<svc_rqst>`.
        // SAFETY: `rqstp` is live for `'a` by the caller's guarantee.
        unsafe { &*rqstp.cast::<Self>() }
    }

    fn raw(&self) -> *mut sys::svc_rqst {
        self.0.get()
    }

    /// The transport the request came in on.
    pub(crate) fn xprt(&self) -> *mut sys::svc_xprt {
        // SAFETY: the request is live and ours.
        unsafe { (*self.raw()).rq_xprt }
    }

    /// Number of receive pages, `rq_page_end - rq_pages`.
    fn page_count(&self) -> usize {
        // SAFETY: the request is live and ours; `rq_page_end` points into or
        // just past `rq_pages` (set by `svc_alloc_arg()`).
        unsafe {
            let rq = self.raw();
            let first = ptr::addr_of_mut!((*rq).rq_pages).cast::<*mut sys::page>();
            let count = (*rq).rq_page_end.offset_from(first);
            usize::try_from(count)
                .unwrap_or(0)
                .min((*rq).rq_pages.len())
        }
    }

    /// Puts `saved` back at the start of the receive pages, releasing the
    /// pages it replaces.
    pub(crate) fn restore_pages(&self, saved: &mut SavedPages) {
        let rq = self.raw();
        for i in 0..saved.count {
            // SAFETY: the request is live and ours; `i` is below the number
            // of pages `save_pages` took, which was at most `page_count()`.
            unsafe {
                let slot = &mut (*rq).rq_pages[i];
                if !slot.is_null() {
                    sys::xv_svc_put_page(*slot);
                }
                *slot = saved.pages[i];
            }
            saved.pages[i] = ptr::null_mut();
        }
        if saved.count != 0 {
            // SAFETY: `rq_pages[0]` is an allocated page again.
            unsafe { (*rq).rq_arg.head[0].iov_base = sys::xv_svc_page_address((*rq).rq_pages[0]) };
        }
        saved.count = 0;
    }

    /// Takes the receive pages that hold the first `len` bytes of a
    /// partial record into `saved`, so that the next receive can go on.
    /// SUNRPC allocates new pages in their place.
    pub(crate) fn save_pages(&self, saved: &mut SavedPages, len: u32) {
        let count = pages_for(len as usize).min(self.page_count());
        let rq = self.raw();
        for i in saved.count..count {
            // SAFETY: the request is live and ours; `i < page_count()`.
            unsafe {
                saved.pages[i] = (*rq).rq_pages[i];
                (*rq).rq_pages[i] = ptr::null_mut();
            }
        }
        saved.count = count;
    }

    /// Marks the pages after the first `len` bytes of the receive buffer as
    /// the reply's, with no reply page in use yet.
    ///
    /// Every receive ends with this: SUNRPC releases the pages between
    /// `rq_respages` and `rq_next_page` after the call, and pages taken by
    /// [`SvcRqst::save_pages`] must not be among them.
    pub(crate) fn set_reply_pages(&self, len: u32) {
        let last = self.page_count().saturating_sub(1);
        let first = pages_for(len as usize).max(1).min(last);
        // SAFETY: the request is live and ours; `first` is within
        // `rq_pages`.
        unsafe {
            let rq = self.raw();
            let respages = ptr::addr_of_mut!((*rq).rq_pages[first]);
            (*rq).rq_respages = respages;
            (*rq).rq_next_page = respages;
        }
    }

    /// Receives up to `len` bytes of a record from `sock` into the receive
    /// pages, at offset `offset` of the record, without waiting.
    /// `Ok(0)` means the peer closed the connection.
    pub(crate) fn recv_payload(&self, sock: &Socket, offset: u32, len: u32) -> Result<usize> {
        let end = offset as usize + len as usize;
        let count = pages_for(end);
        // The reply needs at least one page after the record.
        if count >= self.page_count() {
            return Err(EINVAL);
        }
        let rq = self.raw();
        // SAFETY: the request is live and ours; `rq_bvec` has room for
        // `RPCSVC_MAXPAGES` entries and `count < page_count()` is within it.
        // `rq_pages[..count]` are allocated pages (the type invariant).
        unsafe {
            let bvec = &mut (*rq).rq_bvec;
            if count > bvec.len() {
                return Err(EINVAL);
            }
            for (i, bv) in bvec.iter_mut().enumerate().take(count) {
                bv.bv_page = (*rq).rq_pages[i];
                bv.bv_len = PAGE_SIZE as u32;
                bv.bv_offset = 0;
            }
            sock.recv_bvec(bvec.as_ptr(), count, end, offset as usize)
        }
    }

    /// Word `index` of the record at the start of the receive buffer.
    ///
    /// The caller must have received at least `4 * (index + 1)` bytes.
    pub(crate) fn arg_word(&self, index: usize) -> u32 {
        let mut word = [0u8; 4];
        // SAFETY: the request is live and ours; `head[0]` points at the
        // first receive page, which holds the record's first bytes.
        unsafe {
            let base = (*self.raw()).rq_arg.head[0].iov_base.cast::<u8>();
            ptr::copy_nonoverlapping(base.add(4 * index), word.as_mut_ptr(), 4);
        }
        u32::from_be_bytes(word)
    }

    /// Describes a received record of `len` bytes as the request's
    /// arguments (`rq_arg`) and the transport's request attributes.
    pub(crate) fn set_call(&self, len: u32, secure: bool, local: bool) {
        let rq = self.raw();
        // SAFETY: the request is live and ours; `rq_xprt` is the live
        // transport the record came in on.
        unsafe {
            let arg = &mut (*rq).rq_arg;
            let head_len = (len as usize).min(PAGE_SIZE);
            arg.len = len;
            arg.page_base = 0;
            arg.head[0].iov_len = head_len;
            arg.page_len = len - head_len as u32;
            arg.tail[0].iov_len = 0;
            (*rq).rq_xprt_ctxt = ptr::null_mut();
            (*rq).rq_prot = sys::IPPROTO_TCP;
            sys::xv_svc_rqst_flag_assign(rq, sys::RQ_SECURE, secure);
            sys::xv_svc_rqst_flag_assign(rq, sys::RQ_LOCAL, local);
            sys::svc_xprt_copy_addrs(rq, (*rq).rq_xprt);
        }
    }

    /// Sets the request's transport context (`rq_xprt_ctxt`), which SUNRPC
    /// hands to `xpo_release_ctxt` when it releases the request.
    pub(crate) fn set_xprt_ctxt(&self, ctxt: *mut c_void) {
        // SAFETY: the request is live and ours.
        unsafe { (*self.raw()).rq_xprt_ctxt = ctxt };
    }

    /// The first bytes of the received record, `rq_arg`'s head.
    pub(crate) fn arg_head(&self) -> &[u8] {
        // SAFETY: the request is live and ours; `set_call` pointed the head
        // at the first receive page and set its length.
        unsafe {
            let head = &(*self.raw()).rq_arg.head[0];
            core::slice::from_raw_parts(head.iov_base.cast::<u8>(), head.iov_len)
        }
    }

    /// The reply, `rq_res`, which SUNRPC built in the request's reply
    /// pages, its page data in pages it holds references on (page cache or
    /// allocated pages).
    pub(crate) fn res(&self) -> &sys::xdr_buf {
        // SAFETY: the request is live and owned by this thread, which does
        // not change `rq_res` while the reference lives.
        unsafe { &(*self.raw()).rq_res }
    }
}

/// Bytes in whole pages needed for `len` bytes.
fn pages_for(len: usize) -> usize {
    len.div_ceil(PAGE_SIZE)
}

/// Receive pages holding a partial record between two receives.
///
/// # Invariants
///
/// `pages[..count]` are pages this value holds a reference on; the rest are
/// null.
pub(crate) struct SavedPages {
    pages: KVec<*mut sys::page>,
    count: usize,
}

// SAFETY: pages are reference-counted kernel objects that any thread may
// release.
unsafe impl Send for SavedPages {}

impl SavedPages {
    /// Room for a whole receive buffer.
    pub(crate) fn new() -> Result<Self> {
        // INVARIANT: no page is held yet.
        Ok(Self {
            pages: KVec::from_elem(ptr::null_mut(), MAX_PAGES + 1, GFP_KERNEL)?,
            count: 0,
        })
    }
}

impl Drop for SavedPages {
    fn drop(&mut self) {
        for &page in &self.pages.as_slice()[..self.count] {
            // SAFETY: by the type invariant this value holds a reference.
            unsafe { sys::xv_svc_put_page(page) };
        }
    }
}

/// A reply as one list of pages: record marker, `rq_res` head, page data and
/// tail.
pub(crate) struct ReplyVec {
    bvec: KVec<sys::bio_vec>,
}

// SAFETY: the page pointers are only used while the reply they describe is
// sent, by the thread that built them.
unsafe impl Send for ReplyVec {}

impl ReplyVec {
    /// Room for the largest reply.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            bvec: KVec::from_elem(sys::bio_vec::default(), MAX_PAGES + 3, GFP_KERNEL)?,
        })
    }

    /// Sends `marker` followed by `res` on `sock`, waiting for credit until
    /// `deadline`, its page data by reference if `zerocopy` is given.
    /// Returns the bytes sent.
    ///
    /// # Safety
    ///
    /// The head and tail of `res` must be linear-map kernel memory and its
    /// pages must cover its page data, all readable until this returns;
    /// with `zerocopy`, its pages must be ones that can be referenced.
    pub(crate) unsafe fn send_xdr(
        &mut self,
        sock: &Socket,
        marker: &mut [u8; 4],
        res: &sys::xdr_buf,
        zerocopy: Option<&ZeroCopy>,
        deadline: Deadline,
    ) -> Result<usize> {
        let mut fill = Fill {
            bvec: self.bvec.as_mut_slice(),
            nr: 0,
            total: 0,
        };
        // SAFETY: the marker is in a `kmalloc`ed buffer, so in the linear
        // map; it outlives the send.
        unsafe { fill.push_virt(marker.as_mut_ptr().cast(), marker.len())? };
        // SAFETY: the head is linear-map memory (the caller's guarantee).
        unsafe { fill.push_virt(res.head[0].iov_base, res.head[0].iov_len)? };
        let head = (fill.nr, fill.total);
        let mut left = res.page_len as usize;
        let mut index = res.page_base as usize / PAGE_SIZE;
        let mut offset = res.page_base as usize % PAGE_SIZE;
        while left > 0 {
            let len = left.min(PAGE_SIZE - offset);
            // SAFETY: `res.pages` holds the pages that cover `page_base` to
            // `page_base + page_len` (the caller's guarantee).
            let page = unsafe { *res.pages.add(index) };
            fill.push_page(page, offset, len)?;
            left -= len;
            index += 1;
            offset = 0;
        }
        let pages = (fill.nr, fill.total);
        // SAFETY: the tail, if any, is linear-map memory (the caller's
        // guarantee).
        unsafe { fill.push_virt(res.tail[0].iov_base, res.tail[0].iov_len)? };
        let bvec = fill.bvec.as_ptr();
        let zerocopy = zerocopy.filter(|_| pages.0 > head.0);
        let Some(zerocopy) = zerocopy else {
            // SAFETY: the first `nr` entries describe readable memory
            // covering `total` bytes, and stay so while the reply is sent.
            return unsafe { sock.send_bvec_wait(bvec, fill.nr, fill.total, None, deadline) };
        };
        // Only the page data goes by reference: the marker is slab memory,
        // which must not be, and head and tail are small.
        let parts = [
            (0, head.0, head.1, None),
            (head.0, pages.0, pages.1 - head.1, Some(zerocopy)),
            (pages.0, fill.nr, fill.total - pages.1, None),
        ];
        let mut sent = 0;
        for (start, end, len, zerocopy) in parts {
            if len == 0 {
                continue;
            }
            // SAFETY: entries `start..end` cover `len` bytes of the marker or
            // of `res`, readable until this returns; by reference go only the
            // pages of `res` (both by the caller's guarantee).
            let n = unsafe {
                sock.send_bvec_wait(bvec.add(start), end - start, len, zerocopy, deadline)?
            };
            sent += n;
            if n != len {
                break;
            }
        }
        Ok(sent)
    }
}

/// Fills a [`ReplyVec`].
struct Fill<'a> {
    bvec: &'a mut [sys::bio_vec],
    nr: usize,
    total: usize,
}

impl Fill<'_> {
    fn next(&mut self, len: usize) -> Result<&mut sys::bio_vec> {
        let bv = self.bvec.get_mut(self.nr).ok_or(EINVAL)?;
        self.nr += 1;
        self.total += len;
        Ok(bv)
    }

    fn push_page(&mut self, page: *mut sys::page, offset: usize, len: usize) -> Result {
        let bv = self.next(len)?;
        bv.bv_page = page;
        bv.bv_len = len as u32;
        bv.bv_offset = offset as u32;
        Ok(())
    }

    /// # Safety
    ///
    /// `base` must be a linear-map kernel address of `len` readable bytes
    /// that stay so until the reply is sent.
    unsafe fn push_virt(&mut self, base: *mut c_void, len: usize) -> Result {
        if len == 0 {
            return Ok(());
        }
        let bv = self.next(len)?;
        // SAFETY: by the caller's guarantee `base` has a `struct page`.
        unsafe { sys::xv_svc_bvec_set_virt(bv, base, len as u32) };
        Ok(())
    }
}
