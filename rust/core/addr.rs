// SPDX-License-Identifier: GPL-2.0

//! AF_VSOCK addresses as ONC RPC shows them.
//!
//! * Presentation form, as in `/proc/mounts` and the auth.unix.ip cache:
//!   `vsock:CID`.
//! * Universal address (netid "vsock", as rpcbind and NFSv4.0 callbacks carry
//!   it): `CID.PORT`, both in decimal.
//!
//! The module only formats them: the kernel parses addresses in the series'
//! C code (`rpc_pton()`, `rpc_vsock_uaddr2sockaddr()`). The Rust parsers in
//! `addr_parse.rs` are the reference those are tested against.

use core::fmt;

/// CID of the hypervisor.
pub const CID_HYPERVISOR: u32 = 0;
/// CID that reaches the local kernel through the loopback transport.
pub const CID_LOCAL: u32 = 1;
/// CID of the host, as seen from a guest.
pub const CID_HOST: u32 = 2;
/// Wildcard CID a listener binds to.
pub const CID_ANY: u32 = u32::MAX;
/// Wildcard port asking for any free port.
pub const PORT_ANY: u32 = u32::MAX;

/// Prefix of the presentation form.
pub const PRESENTATION_PREFIX: &str = "vsock:";
/// Longest presentation form, `vsock:4294967295`.
pub const PRESENTATION_MAX_LEN: usize = PRESENTATION_PREFIX.len() + U32_MAX_DIGITS;
/// Longest universal address, `4294967295.4294967295`.
pub const UADDR_MAX_LEN: usize = 2 * U32_MAX_DIGITS + 1;

const U32_MAX_DIGITS: usize = 10;

/// A vsock socket address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VsockAddr {
    /// Context identifier of the machine.
    pub cid: u32,
    /// Port on that machine.
    pub port: u32,
}

/// Displays a CID in presentation form, `vsock:CID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presentation(pub u32);

impl fmt::Display for Presentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", PRESENTATION_PREFIX, self.0)
    }
}

/// Displays an address as a universal address, `CID.PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UniversalAddr(pub VsockAddr);

impl fmt::Display for UniversalAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0.cid, self.0.port)
    }
}

/// Formats `value` into `buf` and returns the length written.
///
/// Fails, leaving `buf` partly written, when `buf` is too short.
pub fn format_into(buf: &mut [u8], value: impl fmt::Display) -> Result<usize, fmt::Error> {
    struct Cursor<'a> {
        buf: &'a mut [u8],
        len: usize,
    }

    impl fmt::Write for Cursor<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
            self.buf
                .get_mut(self.len..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    let mut cursor = Cursor { buf, len: 0 };
    fmt::write(&mut cursor, format_args!("{value}"))?;
    Ok(cursor.len)
}
