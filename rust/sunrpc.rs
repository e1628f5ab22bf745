// SPDX-License-Identifier: GPL-2.0

//! Safe views of the SUNRPC objects the transports work on, shared by the
//! client ([`crate::clnt`]), the server ([`crate::svc`]) and nfsd's
//! backchannel: the FFI boundary for SUNRPC, as `rust/vsock.rs` is for
//! sockets.
//!
//! Each C object is a transparent wrapper of `Opaque`, reached through
//! `from_raw()` (`SvcXprt`, a field of ours, through `from_opaque()`),
//! whose methods reach its fields through the raw pointer:
//! [`xprt::Xprt`] (`rpc_xprt`), [`rqst::Rqst`] (`rpc_rqst`, with the
//! `xdr_buf` walks), [`svc_xprt::SvcXprt`] (`svc_xprt`) and
//! [`svc_rqst::SvcRqst`] (`svc_rqst`); `bc_pool` keeps the backchannel's
//! pool of callback requests. What both receive loops share is here.

#[cfg(CONFIG_SUNRPC_BACKCHANNEL)]
pub(crate) mod bc_pool;
pub(crate) mod rqst;
pub(crate) mod svc_rqst;
pub(crate) mod svc_xprt;
pub(crate) mod xprt;

use kernel::error::{code::EAGAIN, Error, Result};

/// Bytes at the start of every RPC message that say where it goes: the XID
/// and the direction (`msg_type`, RFC 5531).
pub(crate) const RPC_HEADER_LEN: usize = 8;

/// `msg_type` of a call.
pub(crate) const RPC_CALL: u32 = 0;

/// `msg_type` of a reply.
pub(crate) const RPC_REPLY: u32 = 1;

/// Why a transport stops reading its socket before a record is complete.
pub(crate) enum RecvStop<M> {
    /// Nothing more to read now.
    Again,
    /// The peer closed the connection.
    Eof,
    /// The socket failed.
    Error(Error),
    /// The peer broke the protocol; `M` says how, for the log.
    Malformed(M),
}

impl<M> RecvStop<M> {
    /// What a non-blocking read returned: the bytes read, or why reading
    /// stops.
    pub(crate) fn from_read(r: Result<usize>) -> Result<usize, Self> {
        match r {
            Ok(0) => Err(Self::Eof),
            Ok(n) => Ok(n),
            Err(e) if e == EAGAIN => Err(Self::Again),
            Err(e) => Err(Self::Error(e)),
        }
    }
}
