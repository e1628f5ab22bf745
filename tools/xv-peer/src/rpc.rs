// SPDX-License-Identifier: GPL-2.0

//! The ONC RPC messages the peer sends and the replies it checks
//! (RFC 5531), framed with the record marking of `xprtvsock-core`.

use std::fmt;

use xprtvsock_core::record::{Limits, Marker, Progress, RecordDecoder, RecordError, Want};

/// Message type of a call.
pub const CALL: u32 = 0;
/// Message type of a reply.
pub const REPLY: u32 = 1;
/// The only RPC protocol version.
pub const RPC_VERSION: u32 = 2;
/// The NFS program.
pub const NFS_PROGRAM: u32 = 100_003;
/// Authentication flavour "none".
pub const AUTH_NONE: u32 = 0;
/// Reply status: the call was accepted.
pub const MSG_ACCEPTED: u32 = 0;
/// Reply status: the call was denied.
pub const MSG_DENIED: u32 = 1;
/// Accept status of a call that ran.
pub const SUCCESS: u32 = 0;

/// An RPC call with "none" credentials and verifier and `args` as its
/// (already encoded) arguments, as a message without record marking.
pub fn call(xid: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    let header = [
        xid,
        CALL,
        RPC_VERSION,
        prog,
        vers,
        proc_,
        AUTH_NONE,
        0,
        AUTH_NONE,
        0,
    ];
    let mut msg: Vec<u8> = header.iter().flat_map(|w| w.to_be_bytes()).collect();
    msg.extend_from_slice(args);
    msg
}

/// NFSv4 COMPOUND, procedure 1 of version 4.
pub const NFSPROC4_COMPOUND: u32 = 1;

/// The arguments of an NFSv4.0 COMPOUND that reads `count` bytes at offset
/// 0 of the file `name` in the server's root, with the anonymous stateid
/// (RFC 7530): PUTROOTFH, LOOKUP, READ.
pub fn read_args(name: &str, count: u32) -> Vec<u8> {
    const OP_LOOKUP: u32 = 15;
    const OP_PUTROOTFH: u32 = 24;
    const OP_READ: u32 = 25;
    // Empty tag, minor version 0, three operations.
    let mut args: Vec<u8> = [0u32, 0, 3, OP_PUTROOTFH, OP_LOOKUP, name.len() as u32]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect();
    args.extend_from_slice(name.as_bytes());
    args.resize(args.len().next_multiple_of(4), 0);
    args.extend_from_slice(&OP_READ.to_be_bytes());
    // The anonymous stateid (all zero), then offset 0.
    args.extend_from_slice(&[0; 16 + 8]);
    args.extend_from_slice(&count.to_be_bytes());
    args
}

/// Frames `msg` as one record split into fragments of at most `fragment`
/// bytes (at least 1); an empty message is one empty last fragment.
pub fn frame(msg: &[u8], fragment: usize) -> Vec<u8> {
    let fragment = fragment.max(1);
    let mut out = Vec::with_capacity(msg.len() + 4 * (msg.len() / fragment + 1));
    let mut chunks = msg.chunks(fragment).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&marker(0, true));
    }
    while let Some(chunk) = chunks.next() {
        out.extend_from_slice(&marker(chunk.len(), chunks.peek().is_none()));
        out.extend_from_slice(chunk);
    }
    out
}

/// The marker of a fragment of `len` bytes.
///
/// # Panics
///
/// If `len` is longer than a marker can describe, 2^31 - 1 bytes.
pub fn marker(len: usize, last: bool) -> [u8; 4] {
    Marker::new(len, last)
        .expect("fragment longer than 2^31-1 bytes")
        .to_bytes()
}

/// What a reply said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The server accepted the call; `stat` is its accept status.
    Accepted {
        /// Transaction ID.
        xid: u32,
        /// `SUCCESS`, `PROG_UNAVAIL`, `GARBAGE_ARGS`...
        stat: u32,
    },
    /// The server refused the call; `stat` is its reject status.
    Denied {
        /// Transaction ID.
        xid: u32,
        /// `RPC_MISMATCH` or `AUTH_ERROR`.
        stat: u32,
    },
}

impl Reply {
    /// The reply's transaction ID.
    pub fn xid(&self) -> u32 {
        match *self {
            Self::Accepted { xid, .. } | Self::Denied { xid, .. } => xid,
        }
    }
}

/// Why a message is not a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The message ends early.
    Truncated,
    /// The message is a call, or of an unknown type.
    NotReply(u32),
    /// Neither accepted nor denied.
    BadStatus(u32),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated reply"),
            Self::NotReply(t) => write!(f, "message type {t} is not a reply"),
            Self::BadStatus(s) => write!(f, "reply status {s} is neither accepted nor denied"),
        }
    }
}

fn word(msg: &[u8], index: usize) -> Result<u32, ParseError> {
    let bytes = msg
        .get(4 * index..4 * index + 4)
        .ok_or(ParseError::Truncated)?;
    Ok(u32::from_be_bytes(bytes.try_into().expect("four bytes")))
}

/// Parses the header of a reply message (without record marking).
pub fn parse_reply(msg: &[u8]) -> Result<Reply, ParseError> {
    let xid = word(msg, 0)?;
    let kind = word(msg, 1)?;
    if kind != REPLY {
        return Err(ParseError::NotReply(kind));
    }
    match word(msg, 2)? {
        MSG_ACCEPTED => {
            // Verifier: flavour, then opaque body padded to four bytes.
            let verf_len = word(msg, 4)? as usize;
            let index = 5 + verf_len.div_ceil(4);
            Ok(Reply::Accepted {
                xid,
                stat: word(msg, index)?,
            })
        }
        MSG_DENIED => Ok(Reply::Denied {
            xid,
            stat: word(msg, 3)?,
        }),
        other => Err(ParseError::BadStatus(other)),
    }
}

/// Reassembles records from the bytes a peer receives.
pub struct Records {
    decoder: RecordDecoder,
    record: Vec<u8>,
}

impl Records {
    /// A reassembler for records of at most `max_len` bytes.
    pub fn new(max_len: u32) -> Self {
        Self {
            decoder: RecordDecoder::new(Limits::with_max_record_len(max_len)),
            record: Vec::new(),
        }
    }

    /// Takes `data`, the next bytes of the stream, and returns the records
    /// it completes.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<Vec<Vec<u8>>, RecordError> {
        let mut done = Vec::new();
        while !data.is_empty() {
            let n = match self.decoder.want() {
                Want::Marker(buf) => {
                    let n = buf.len().min(data.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    n
                }
                Want::Payload { len, .. } => {
                    let n = (len as usize).min(data.len());
                    self.record.extend_from_slice(&data[..n]);
                    n
                }
            };
            data = &data[n..];
            if let Progress::Record { .. } = self.decoder.consumed(n)? {
                done.push(std::mem::take(&mut self.record));
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_call_encoding() {
        let msg = call(0x0102_0304, NFS_PROGRAM, 4, 0, &[]);
        assert_eq!(msg.len(), 40);
        assert_eq!(&msg[..4], &[1, 2, 3, 4]);
        assert_eq!(&msg[4..8], &CALL.to_be_bytes());
        assert_eq!(&msg[8..12], &2u32.to_be_bytes());
        assert_eq!(&msg[12..16], &100_003u32.to_be_bytes());
        assert_eq!(&msg[16..20], &4u32.to_be_bytes());
        assert!(msg[20..].iter().all(|&b| b == 0));
    }

    #[test]
    fn frame_splits_and_marks_last() {
        let framed = frame(&[1, 2, 3, 4, 5], 2);
        assert_eq!(
            framed,
            [0, 0, 0, 2, 1, 2, 0, 0, 0, 2, 3, 4, 0x80, 0, 0, 1, 5]
        );
        assert_eq!(frame(&[], 4), [0x80, 0, 0, 0]);
    }

    #[test]
    fn records_reassemble_from_any_split() {
        let a = call(1, NFS_PROGRAM, 4, 0, &[9; 13]);
        let b = call(2, NFS_PROGRAM, 4, 0, &[]);
        let mut stream = frame(&a, 7);
        stream.extend(frame(&b, 1000));
        for step in [1, 3, 4, 5, 64, stream.len()] {
            let mut records = Records::new(1 << 20);
            let mut got = Vec::new();
            for chunk in stream.chunks(step) {
                got.extend(records.feed(chunk).unwrap());
            }
            assert_eq!(got, vec![a.clone(), b.clone()], "step {step}");
        }
    }

    #[test]
    fn records_refuse_oversized() {
        let mut records = Records::new(16);
        assert!(records.feed(&marker(17, true)).is_err());
    }

    #[test]
    fn accepted_reply() {
        // xid, REPLY, MSG_ACCEPTED, verifier AUTH_NONE with 0 bytes, SUCCESS.
        let words = [7u32, REPLY, MSG_ACCEPTED, AUTH_NONE, 0, SUCCESS];
        let msg: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(
            parse_reply(&msg),
            Ok(Reply::Accepted {
                xid: 7,
                stat: SUCCESS
            })
        );
        // A verifier with 5 bytes of body takes two words.
        let words = [7u32, REPLY, MSG_ACCEPTED, 1, 5, 0, 0, 4];
        let msg: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(parse_reply(&msg), Ok(Reply::Accepted { xid: 7, stat: 4 }));
    }

    #[test]
    fn denied_and_bad_replies() {
        let words = [8u32, REPLY, MSG_DENIED, 0];
        let msg: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(parse_reply(&msg), Ok(Reply::Denied { xid: 8, stat: 0 }));
        let call = call(9, NFS_PROGRAM, 4, 0, &[]);
        assert_eq!(parse_reply(&call), Err(ParseError::NotReply(CALL)));
        assert_eq!(parse_reply(&call[..6]), Err(ParseError::Truncated));
        let words = [8u32, REPLY, 5];
        let msg: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(parse_reply(&msg), Err(ParseError::BadStatus(5)));
    }
}
