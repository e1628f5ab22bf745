// SPDX-License-Identifier: GPL-2.0

//! Safe views of the SUNRPC objects the transports work on, shared by the
//! client ([`crate::clnt`]), the server ([`crate::svc`]) and nfsd's
//! backchannel: the FFI boundary for SUNRPC, as `rust/vsock.rs` is for
//! sockets.
//!
//! C headers: [`include/linux/sunrpc/xprt.h`](srctree/include/linux/sunrpc/xprt.h),
//! [`include/linux/sunrpc/svc_xprt.h`](srctree/include/linux/sunrpc/svc_xprt.h),
//! [`include/linux/sunrpc/svc.h`](srctree/include/linux/sunrpc/svc.h).

/// Bytes at the start of every RPC message that say where it goes: the XID
/// and the direction (`msg_type`, RFC 5531).
pub(crate) const RPC_HEADER_LEN: usize = 8;

/// `msg_type` of a call.
pub(crate) const RPC_CALL: u32 = 0;

/// `msg_type` of a reply.
pub(crate) const RPC_REPLY: u32 = 1;

pub(crate) mod rqst;
pub(crate) mod svc_xprt;
pub(crate) mod xprt;
