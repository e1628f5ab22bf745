// SPDX-License-Identifier: GPL-2.0

//! ONC RPC record marking on stream transports (RFC 5531, section 11).
//!
//! A record is sent as one or more fragments. Each fragment starts with a
//! four-byte big-endian marker: the high bit is set on the last fragment of a
//! record, the low 31 bits give the fragment's payload length.
//!
//! [`RecordDecoder`] reassembles records from a byte stream that may be split
//! anywhere, without copying: it tells the caller how many bytes it wants next
//! and whether they belong to a fragment marker (kept inside the decoder) or to
//! the record payload (placed by the caller wherever it keeps the record, at the
//! record offset the decoder names). The caller reports how many bytes it got.

use core::fmt;

/// Size of a fragment marker on the wire.
pub const MARKER_LEN: usize = 4;

/// Marker bit that flags the last fragment of a record.
pub const LAST_FRAGMENT: u32 = 0x8000_0000;

/// Marker bits that carry the fragment length.
pub const FRAGMENT_LEN_MASK: u32 = 0x7fff_ffff;

/// Longest fragment payload a marker can describe, 2^31 - 1 bytes.
pub const MAX_FRAGMENT_LEN: u32 = FRAGMENT_LEN_MASK;

/// Why a marker could not be built or a stream could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// A fragment longer than [`MAX_FRAGMENT_LEN`] was asked for.
    FragmentTooLong {
        /// The requested fragment length.
        len: usize,
    },
    /// The peer announced a record longer than the configured maximum.
    RecordTooLong {
        /// Record length including the announced fragment.
        len: u64,
        /// The configured maximum.
        max: u32,
    },
    /// The peer split one record into more fragments than allowed.
    TooManyFragments {
        /// The configured maximum.
        max: u32,
    },
    /// The caller reported more bytes than the decoder asked for.
    Overrun {
        /// Bytes the decoder asked for.
        wanted: usize,
        /// Bytes the caller reported.
        got: usize,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::FragmentTooLong { len } => {
                write!(f, "fragment of {len} bytes exceeds the 2^31-1 limit")
            }
            Self::RecordTooLong { len, max } => {
                write!(
                    f,
                    "record of at least {len} bytes exceeds the limit of {max}"
                )
            }
            Self::TooManyFragments { max } => {
                write!(f, "record split into more than {max} fragments")
            }
            Self::Overrun { wanted, got } => {
                write!(f, "{got} bytes reported where {wanted} were wanted")
            }
        }
    }
}

/// One fragment marker: payload length and last-fragment flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    len: u32,
    last: bool,
}

impl Marker {
    /// Builds the marker of a fragment of `len` payload bytes.
    pub const fn new(len: usize, last: bool) -> Result<Self, RecordError> {
        if len > MAX_FRAGMENT_LEN as usize {
            return Err(RecordError::FragmentTooLong { len });
        }
        Ok(Self {
            len: len as u32,
            last,
        })
    }

    /// Decodes a marker as read from the wire. Every bit pattern is valid.
    pub const fn from_bytes(bytes: [u8; MARKER_LEN]) -> Self {
        let raw = u32::from_be_bytes(bytes);
        Self {
            len: raw & FRAGMENT_LEN_MASK,
            last: raw & LAST_FRAGMENT != 0,
        }
    }

    /// Encodes the marker for the wire.
    pub const fn to_bytes(self) -> [u8; MARKER_LEN] {
        let flag = if self.last { LAST_FRAGMENT } else { 0 };
        (self.len | flag).to_be_bytes()
    }

    /// Payload length of the fragment.
    pub const fn fragment_len(self) -> u32 {
        self.len
    }

    /// Whether the fragment ends its record.
    pub const fn is_last(self) -> bool {
        self.last
    }
}

/// The marker for a record sent as a single fragment, as Linux RPC peers do.
pub const fn single_fragment_marker(len: usize) -> Result<[u8; MARKER_LEN], RecordError> {
    match Marker::new(len, true) {
        Ok(marker) => Ok(marker.to_bytes()),
        Err(e) => Err(e),
    }
}

/// Limits a receiver places on what a peer may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest record, summed over its fragments, in bytes.
    pub max_record_len: u32,
    /// Most fragments one record may have. Bounds the work a peer can cause
    /// with empty non-final fragments.
    pub max_fragments: u32,
}

impl Limits {
    /// Fragments per record allowed by [`Limits::with_max_record_len`].
    pub const DEFAULT_MAX_FRAGMENTS: u32 = 1024;

    /// Limits for records of at most `max_record_len` bytes.
    pub const fn with_max_record_len(max_record_len: u32) -> Self {
        Self {
            max_record_len,
            max_fragments: Self::DEFAULT_MAX_FRAGMENTS,
        }
    }
}

/// What the decoder wants next from the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Want<'a> {
    /// Up to `buf.len()` marker bytes, to be read into `buf`.
    Marker(&'a mut [u8]),
    /// Up to `len` payload bytes, belonging at `offset` in the record.
    Payload {
        /// Offset in the record of the first byte wanted.
        offset: u32,
        /// Bytes left in the current fragment.
        len: u32,
    },
}

/// What the bytes just reported completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The current record is not complete yet.
    Incomplete,
    /// A whole record of `len` payload bytes has been received; the decoder
    /// now waits for the next record.
    Record {
        /// Payload length of the record.
        len: u32,
    },
}

/// Reassembles records from a stream (see the module documentation).
#[derive(Clone, Debug)]
pub struct RecordDecoder {
    limits: Limits,
    marker: [u8; MARKER_LEN],
    /// Marker bytes received; `MARKER_LEN` while a fragment's payload is read.
    marker_filled: usize,
    fragment_left: u32,
    last: bool,
    record_len: u32,
    fragments: u32,
}

impl RecordDecoder {
    /// A decoder at the start of a stream.
    pub const fn new(limits: Limits) -> Self {
        Self {
            limits,
            marker: [0; MARKER_LEN],
            marker_filled: 0,
            fragment_left: 0,
            last: false,
            record_len: 0,
            fragments: 0,
        }
    }

    /// The limits this decoder enforces.
    pub const fn limits(&self) -> Limits {
        self.limits
    }

    /// Forgets any partial record, as after a reconnect.
    pub fn reset(&mut self) {
        *self = Self::new(self.limits);
    }

    /// Whether part of a record (or of its first marker) has been received.
    pub const fn in_record(&self) -> bool {
        self.marker_filled != 0 || self.fragments != 0
    }

    /// Payload bytes of the current record received so far.
    pub const fn record_offset(&self) -> u32 {
        self.record_len
    }

    /// Whether the fragment being read is the last of its record.
    pub const fn in_last_fragment(&self) -> bool {
        self.marker_filled == MARKER_LEN && self.last
    }

    /// What to read next. Never asks for zero bytes.
    pub fn want(&mut self) -> Want<'_> {
        if self.marker_filled < MARKER_LEN {
            Want::Marker(&mut self.marker[self.marker_filled..])
        } else {
            Want::Payload {
                offset: self.record_len,
                len: self.fragment_left,
            }
        }
    }

    /// Reports that `n` of the bytes asked for by [`RecordDecoder::want`]
    /// have been read, and checks a marker once it is complete.
    ///
    /// After an error the stream is out of step and must be closed.
    pub fn consumed(&mut self, n: usize) -> Result<Progress, RecordError> {
        if self.marker_filled < MARKER_LEN {
            let wanted = MARKER_LEN - self.marker_filled;
            if n > wanted {
                return Err(RecordError::Overrun { wanted, got: n });
            }
            self.marker_filled += n;
            if self.marker_filled < MARKER_LEN {
                return Ok(Progress::Incomplete);
            }
            self.start_fragment(Marker::from_bytes(self.marker))
        } else {
            let wanted = self.fragment_left as usize;
            if n > wanted {
                return Err(RecordError::Overrun { wanted, got: n });
            }
            // Cannot overflow: the fragment was checked against the limit.
            self.fragment_left -= n as u32;
            self.record_len += n as u32;
            Ok(self.end_fragment_if_done())
        }
    }

    fn start_fragment(&mut self, marker: Marker) -> Result<Progress, RecordError> {
        if self.fragments >= self.limits.max_fragments {
            return Err(RecordError::TooManyFragments {
                max: self.limits.max_fragments,
            });
        }
        let total = u64::from(self.record_len) + u64::from(marker.fragment_len());
        if total > u64::from(self.limits.max_record_len) {
            return Err(RecordError::RecordTooLong {
                len: total,
                max: self.limits.max_record_len,
            });
        }
        self.fragments += 1;
        self.fragment_left = marker.fragment_len();
        self.last = marker.is_last();
        Ok(self.end_fragment_if_done())
    }

    fn end_fragment_if_done(&mut self) -> Progress {
        if self.fragment_left != 0 {
            return Progress::Incomplete;
        }
        self.marker_filled = 0;
        if !self.last {
            return Progress::Incomplete;
        }
        let len = self.record_len;
        self.record_len = 0;
        self.fragments = 0;
        self.last = false;
        Progress::Record { len }
    }
}
