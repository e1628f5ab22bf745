// SPDX-License-Identifier: GPL-2.0

//! Safe views of the SUNRPC objects the transports work on, shared by the
//! client ([`crate::clnt`]), the server ([`crate::svc`]) and nfsd's
//! backchannel: the FFI boundary for SUNRPC, as `rust/vsock.rs` is for
//! sockets.
//!
//! C headers: [`include/linux/sunrpc/xprt.h`](srctree/include/linux/sunrpc/xprt.h),
//! [`include/linux/sunrpc/svc_xprt.h`](srctree/include/linux/sunrpc/svc_xprt.h),
//! [`include/linux/sunrpc/svc.h`](srctree/include/linux/sunrpc/svc.h).

pub(crate) mod rqst;
pub(crate) mod svc_xprt;
pub(crate) mod xprt;
