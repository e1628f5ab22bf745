// SPDX-License-Identifier: GPL-2.0

//! Safe views of the SUNRPC server objects the transport works on.
//!
//! C headers: [`include/linux/sunrpc/svc_xprt.h`](srctree/include/linux/sunrpc/svc_xprt.h),
//! [`include/linux/sunrpc/svc.h`](srctree/include/linux/sunrpc/svc.h).
//!
//! This is the FFI boundary of the server transport: the rest of it works on
//! [`SvcXprt`], [`SvcRqst`], [`SavedPages`] and [`ReplyVec`].

use core::ffi::c_void;
use core::ptr;

use kernel::alloc::{flags::GFP_KERNEL, KVec};
use kernel::error::{code::EINVAL, Result};
use kernel::init::PinInit;
use kernel::page::PAGE_SIZE;
use kernel::types::Opaque;

use crate::addr::{self, VsockAddr};
use crate::sys;
use crate::vsock::{Socket, ZeroCopy};

/// Pages of a server thread's receive buffer (`RPCSVC_MAXPAGES`).
const MAX_PAGES: usize = sys::RPCSVC_MAXPAGES;

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
    pub(crate) fn lock_send(&self) -> SendGuard<'_> {
        // SAFETY: the transport is live and this thread does not hold the
        // mutex: replies are sent one at a time per thread.
        unsafe { sys::xv_svc_send_lock(self.as_raw()) };
        SendGuard(self)
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

    /// Sends `marker` followed by `res` on `sock`, waiting for credit up to
    /// the socket's send timeout, its page data by reference if `zerocopy`
    /// is given. Returns the bytes sent.
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
            return unsafe { sock.send_bvec_wait(bvec, fill.nr, fill.total, None) };
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
            // SAFETY: entries `start..end` describe `len` bytes of readable
            // memory (the marker, and `res`'s by the caller's guarantee),
            // which stays so while the reply is sent; those sent by reference
            // are the pages of `res` (the caller's guarantee).
            let n = unsafe { sock.send_bvec_wait(bvec.add(start), end - start, len, zerocopy)? };
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
