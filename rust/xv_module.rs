// SPDX-License-Identifier: GPL-2.0

//! xprtvsock: ONC RPC over AF_VSOCK stream sockets.
//!
//! On load it checks that AF_VSOCK stream sockets can be created, then
//! registers the client transport (`xprt_class` "vsock", [`clnt`]) and the
//! server transport (`svc_xprt_class` "vsock", [`svc`]); SUNRPC logs the
//! registration itself.

/// A network errno such as `errno!(ENOTCONN)`, which the kernel crate of
/// Linux 6.12 does not name.
macro_rules! errno {
    ($name:ident) => {
        kernel::error::Error::from_errno(-(kernel::bindings::$name as i32))
    };
}

#[path = "core/addr.rs"]
pub mod addr;
#[path = "core/cid_table.rs"]
pub mod cid_table;
mod clnt;
#[path = "core/record.rs"]
pub mod record;
mod sunrpc;
mod svc;
mod sys;
mod vsock;

use kernel::prelude::*;

module! {
    type: XprtVsock,
    name: "xprtvsock",
    author: "xprtvsock developers",
    description: "ONC RPC transport over AF_VSOCK (netid vsock)",
    license: "GPL",
    alias: ["rpcvsock", "svcvsock"],
}

/// The loaded module: dropping it unregisters the transports.
struct XprtVsock {
    _clnt: sunrpc::xprt::XprtClass,
    _svc: svc::Registration,
}

impl kernel::Module for XprtVsock {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // Fail the load with the socket layer's error (-EAFNOSUPPORT when
        // vsock is missing) rather than later, on the first mount.
        let probe = vsock::Socket::new_stream().inspect_err(|e| {
            pr_err!("cannot create an AF_VSOCK stream socket: {:?}\n", e);
        })?;
        drop(probe);
        let clnt = clnt::register().inspect_err(|e| {
            pr_err!("cannot register the vsock RPC client transport: {:?}\n", e);
        })?;
        let svc = svc::Registration::new().inspect_err(|e| {
            pr_err!("cannot register the vsock RPC server transport: {:?}\n", e);
        })?;
        Ok(XprtVsock {
            _clnt: clnt,
            _svc: svc,
        })
    }
}
