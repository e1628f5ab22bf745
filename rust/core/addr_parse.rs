// SPDX-License-Identifier: GPL-2.0

//! Parsers of the vsock address forms of `addr.rs`, the reference for the
//! kernel's: the KUnit suite runs the series' C parsers (`rpc_pton()`,
//! `rpc_vsock_uaddr2sockaddr()`) and these over the same generated inputs
//! and requires the same answers. The production module parses nothing
//! and does not compile this file.
//!
//! Numbers are unsigned 32-bit decimals; a sign, a blank, an empty number or
//! anything after the address is refused.

use core::fmt;

use crate::addr::{VsockAddr, PRESENTATION_PREFIX};

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
