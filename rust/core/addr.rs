// SPDX-License-Identifier: GPL-2.0

//! AF_VSOCK addresses as ONC RPC shows them.
//!
//! * Presentation form, as in `/proc/mounts` and the auth.unix.ip cache:
//!   `vsock:CID`.
//! * Universal address (netid "vsock", as rpcbind and NFSv4.0 callbacks carry
//!   it): `CID.PORT`, both in decimal.
//!
//! Numbers are unsigned 32-bit decimals; a sign, a blank, an empty number or
//! anything after the address is refused.

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

/// The name of a CID with a fixed meaning, if `cid` is one.
pub const fn reserved_cid_name(cid: u32) -> Option<&'static str> {
    match cid {
        CID_HYPERVISOR => Some("hypervisor"),
        CID_LOCAL => Some("local"),
        CID_HOST => Some("host"),
        CID_ANY => Some("any"),
        _ => None,
    }
}

/// Why an address string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrError {
    /// The presentation form lacks its `vsock:` prefix.
    NoPrefix,
    /// No CID where one was expected.
    MissingCid,
    /// A universal address without its `.PORT` part.
    MissingPort,
    /// A character other than a decimal digit where a number was expected.
    NotDecimal,
    /// A number larger than 4294967295.
    OutOfRange,
    /// Characters after a complete address.
    TrailingGarbage,
}

impl AddrError {
    /// A short description for log lines and error messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoPrefix => "missing \"vsock:\" prefix",
            Self::MissingCid => "missing CID",
            Self::MissingPort => "missing port",
            Self::NotDecimal => "not a decimal number",
            Self::OutOfRange => "number out of range",
            Self::TrailingGarbage => "trailing characters",
        }
    }
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A vsock socket address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VsockAddr {
    /// Context identifier of the machine.
    pub cid: u32,
    /// Port on that machine.
    pub port: u32,
}

/// Splits a leading unsigned decimal off `s`.
///
/// `missing` is returned when `s` does not start with a digit and is empty
/// or starts with `.`, the separator a number may be missing before.
fn split_decimal(s: &[u8], missing: AddrError) -> Result<(u32, &[u8]), AddrError> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Err(match s.first() {
            None | Some(b'.') => missing,
            Some(_) => AddrError::NotDecimal,
        });
    }
    let mut value: u32 = 0;
    for &b in &s[..digits] {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(b - b'0')))
            .ok_or(AddrError::OutOfRange)?;
    }
    Ok((value, &s[digits..]))
}

/// Parses the presentation form `vsock:CID` and returns the CID.
pub fn parse_presentation(s: &[u8]) -> Result<u32, AddrError> {
    let rest = s
        .strip_prefix(PRESENTATION_PREFIX.as_bytes())
        .ok_or(AddrError::NoPrefix)?;
    let (cid, rest) = split_decimal(rest, AddrError::MissingCid)?;
    if !rest.is_empty() {
        return Err(AddrError::TrailingGarbage);
    }
    Ok(cid)
}

/// Parses a universal address `CID.PORT`.
pub fn parse_uaddr(s: &[u8]) -> Result<VsockAddr, AddrError> {
    let (cid, rest) = split_decimal(s, AddrError::MissingCid)?;
    let rest = match rest.split_first() {
        None => return Err(AddrError::MissingPort),
        Some((b'.', rest)) => rest,
        Some(_) => return Err(AddrError::TrailingGarbage),
    };
    let (port, rest) = split_decimal(rest, AddrError::MissingPort)?;
    if !rest.is_empty() {
        return Err(AddrError::TrailingGarbage);
    }
    Ok(VsockAddr { cid, port })
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
