// SPDX-License-Identifier: GPL-2.0

//! The virtio-vsock packet header, the packets the device keeps queued, and
//! their framing on a byte stream (a host stream here, xv-vhost-bridge at the
//! other end): each frame is the 44-byte header, then `hdr.len` payload bytes.
//!
//! virtio-bindings has no vsock definitions, so the constants below are taken
//! from the virtio specification (5.10, "Socket Device").

use std::fmt;
use std::io::{self, Read};

/// Size of `struct virtio_vsock_hdr` on the wire.
pub const HDR_LEN: usize = 44;

/// The largest payload a guest sends in one packet (Linux's
/// `VIRTIO_VSOCK_MAX_PKT_BUF_SIZE`); anything longer is malformed.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// `VIRTIO_VSOCK_TYPE_STREAM`, the only socket type this device offers.
pub const TYPE_STREAM: u16 = 1;

pub const OP_REQUEST: u16 = 1;
pub const OP_RESPONSE: u16 = 2;
pub const OP_RST: u16 = 3;
pub const OP_SHUTDOWN: u16 = 4;
pub const OP_RW: u16 = 5;
pub const OP_CREDIT_UPDATE: u16 = 6;
pub const OP_CREDIT_REQUEST: u16 = 7;

/// `flags` of a SHUTDOWN: `VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE` and `_F_SEND`.
pub const SHUTDOWN_RCV: u32 = 1;
pub const SHUTDOWN_SEND: u32 = 2;

/// `VIRTIO_VSOCK_EVENT_TRANSPORT_RESET`, the id of `struct virtio_vsock_event`.
pub const EVENT_TRANSPORT_RESET: u32 = 0;

/// Reserved CIDs: no guest and no alias may use them.
pub const CID_HYPERVISOR: u64 = 0;
pub const CID_LOCAL: u64 = 1;
pub const CID_HOST: u64 = 2;
/// `VMADDR_CID_ANY`: Linux keeps CIDs in 32 bits, and this one is a wildcard.
pub const CID_ANY: u64 = 0xffff_ffff;

/// `struct virtio_vsock_hdr`, decoded. All fields are little-endian on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub src_cid: u64,
    pub dst_cid: u64,
    pub src_port: u32,
    pub dst_port: u32,
    pub len: u32,
    pub type_: u16,
    pub op: u16,
    pub flags: u32,
    pub buf_alloc: u32,
    pub fwd_cnt: u32,
}

fn le_u16(b: &[u8; HDR_LEN], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8; HDR_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8; HDR_LEN], at: usize) -> u64 {
    u64::from(le_u32(b, at)) | (u64::from(le_u32(b, at + 4)) << 32)
}

impl Header {
    pub fn from_bytes(b: &[u8; HDR_LEN]) -> Self {
        Header {
            src_cid: le_u64(b, 0),
            dst_cid: le_u64(b, 8),
            src_port: le_u32(b, 16),
            dst_port: le_u32(b, 20),
            len: le_u32(b, 24),
            type_: le_u16(b, 28),
            op: le_u16(b, 30),
            flags: le_u32(b, 32),
            buf_alloc: le_u32(b, 36),
            fwd_cnt: le_u32(b, 40),
        }
    }

    pub fn to_bytes(&self) -> [u8; HDR_LEN] {
        let mut b = [0u8; HDR_LEN];
        b[0..8].copy_from_slice(&self.src_cid.to_le_bytes());
        b[8..16].copy_from_slice(&self.dst_cid.to_le_bytes());
        b[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        b[20..24].copy_from_slice(&self.dst_port.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b[28..30].copy_from_slice(&self.type_.to_le_bytes());
        b[30..32].copy_from_slice(&self.op.to_le_bytes());
        b[32..36].copy_from_slice(&self.flags.to_le_bytes());
        b[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        b[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
        b
    }

    /// A STREAM RST from `(cid, port)` to `(cid, port)`: no payload, no credit.
    pub fn rst(src: (u64, u32), dst: (u64, u32)) -> Header {
        Header {
            src_cid: src.0,
            dst_cid: dst.0,
            src_port: src.1,
            dst_port: dst.1,
            len: 0,
            type_: TYPE_STREAM,
            op: OP_RST,
            flags: 0,
            buf_alloc: 0,
            fwd_cnt: 0,
        }
    }

    /// The RST a peer would answer this packet with: addresses swapped, no
    /// payload, no credit. `src_cid` is the destination as the sender wrote it
    /// (an alias stays an alias), so the sender's socket matches the reply.
    /// The type stays the packet's, so a bad type is answered in kind.
    pub fn rst_reply(&self) -> Header {
        Header {
            type_: self.type_,
            ..Header::rst((self.dst_cid, self.dst_port), (self.src_cid, self.src_port))
        }
    }

    pub fn op_is_known(&self) -> bool {
        (OP_REQUEST..=OP_CREDIT_REQUEST).contains(&self.op)
    }
}

/// A packet on its way to a guest. After a split delivery, `off` marks how
/// much of the payload already went out; the header stays the original one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub hdr: Header,
    data: Vec<u8>,
    off: usize,
}

impl Packet {
    /// A packet whose header `len` is set from `data`; the caller has checked
    /// that `data` is at most `MAX_PAYLOAD` bytes.
    pub fn new(mut hdr: Header, data: Vec<u8>) -> Self {
        hdr.len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        Packet { hdr, data, off: 0 }
    }

    /// The payload not yet delivered.
    pub fn remaining(&self) -> &[u8] {
        self.data.get(self.off..).unwrap_or(&[])
    }

    /// Mark `n` more payload bytes as delivered.
    pub fn advance(&mut self, n: usize) {
        self.off = self.off.saturating_add(n).min(self.data.len());
    }

    /// What the packet costs against a receive queue's byte bound: the header
    /// counts too, so a flood of header-only packets is bounded as well.
    pub fn cost(&self) -> usize {
        HDR_LEN + self.remaining().len()
    }
}

/// One packet off a byte stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub hdr: Header,
    pub payload: Vec<u8>,
}

/// Append the frame of a packet to `out`: the header, its `len` set from
/// `payload`, then the payload.
pub fn encode_frame(hdr: &Header, payload: &[u8], out: &mut Vec<u8>) {
    let hdr = Header {
        len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
        ..*hdr
    };
    out.extend_from_slice(&hdr.to_bytes());
    out.extend_from_slice(payload);
}

/// A header whose length no packet can have: the stream's framing is lost,
/// and nothing after it can be trusted to start a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Oversize {
    pub hdr: Header,
}

impl fmt::Display for Oversize {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "frame from {}:{} to {}:{} op {} declares {} payload bytes (at most {}): \
             stream framing lost",
            self.hdr.src_cid,
            self.hdr.src_port,
            self.hdr.dst_cid,
            self.hdr.dst_port,
            self.hdr.op,
            self.hdr.len,
            MAX_PAYLOAD
        )
    }
}

impl std::error::Error for Oversize {}

/// Splits the bytes read from a stream, in whatever pieces they come, into
/// frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Start of the first byte not yet returned in a frame.
    start: usize,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Append bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        // Reclaim the consumed prefix only here, so taking frames stays cheap.
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(bytes);
    }

    /// Read once from `r`, a non-blocking stream, into the decoder, as much
    /// as the largest frame: `Ok(false)` at its end. A read that would block
    /// or was interrupted reads nothing.
    pub fn read_from(&mut self, r: &mut impl Read) -> io::Result<bool> {
        self.buf.drain(..self.start);
        self.start = 0;
        let held = self.buf.len();
        self.buf.resize(held + HDR_LEN + MAX_PAYLOAD, 0);
        let read = r.read(&mut self.buf[held..]);
        self.buf.truncate(held + read.as_ref().map_or(0, |n| *n));
        match read {
            Ok(n) => Ok(n > 0),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// Bytes held that are not yet part of a returned frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole frame, if the bytes so far hold one. An oversize
    /// length is reported as soon as its header is in.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Oversize> {
        let rest = &self.buf[self.start..];
        let Some(raw) = rest.first_chunk::<HDR_LEN>() else {
            return Ok(None);
        };
        let hdr = Header::from_bytes(raw);
        let len = usize::try_from(hdr.len).unwrap_or(usize::MAX);
        if len > MAX_PAYLOAD {
            return Err(Oversize { hdr });
        }
        let Some(payload) = rest.get(HDR_LEN..HDR_LEN + len) else {
            return Ok(None);
        };
        let frame = Frame {
            hdr,
            payload: payload.to_vec(),
        };
        self.start += HDR_LEN + len;
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(op: u16, payload: Vec<u8>) -> Frame {
        Frame {
            hdr: Header {
                src_cid: 3,
                dst_cid: CID_HOST,
                src_port: 1000,
                dst_port: 2049,
                len: payload.len() as u32,
                type_: TYPE_STREAM,
                op,
                buf_alloc: 262_144,
                ..Header::default()
            },
            payload,
        }
    }

    fn encode(frames: &[Frame]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            encode_frame(&f.hdr, &f.payload, &mut out);
        }
        out
    }

    /// A non-blocking stream: its chunks, then would-block or its end.
    struct Chunks(Vec<io::Result<Vec<u8>>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.pop() {
                Some(Ok(bytes)) => {
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    Ok(bytes.len())
                }
                Some(Err(e)) => Err(e),
                None => Ok(0),
            }
        }
    }

    #[test]
    fn read_from_takes_what_a_stream_has_and_tells_its_end() {
        let frames = [frame(OP_RW, vec![7; 100]), frame(OP_RW, vec![8; 3])];
        let bytes = encode(&frames);
        let would_block = || Err(io::Error::from(io::ErrorKind::WouldBlock));
        let mut stream = Chunks(vec![
            Err(io::Error::from(io::ErrorKind::BrokenPipe)),
            Ok(bytes[60..].to_vec()),
            would_block(),
            Ok(bytes[..60].to_vec()),
        ]);
        let mut d = Decoder::new();
        assert!(d.read_from(&mut stream).unwrap());
        assert_eq!(d.buffered(), 60);
        assert_eq!(decode_all(&mut d), frames[..0]);
        assert!(d.read_from(&mut stream).unwrap());
        assert_eq!(d.buffered(), 60);
        assert!(d.read_from(&mut stream).unwrap());
        assert_eq!(decode_all(&mut d), frames);
        assert_eq!(
            d.read_from(&mut stream).unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
        assert!(!d.read_from(&mut stream).unwrap());
        assert_eq!(d.buffered(), 0);
    }

    fn decode_all(d: &mut Decoder) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn encode_frame_sets_len_from_the_payload() {
        let mut out = Vec::new();
        encode_frame(&Header::default(), &[1, 2, 3], &mut out);
        assert_eq!(out.len(), HDR_LEN + 3);
        assert_eq!(&out[24..28], &3u32.to_le_bytes());
        assert_eq!(&out[HDR_LEN..], &[1, 2, 3]);
    }

    #[test]
    fn whole_frames_decode_in_order() {
        let frames = vec![
            frame(OP_REQUEST, vec![]),
            frame(OP_RW, vec![1, 2, 3]),
            frame(OP_RW, vec![9; MAX_PAYLOAD]),
            frame(OP_RST, vec![]),
        ];
        let mut d = Decoder::new();
        d.extend(&encode(&frames));
        assert_eq!(decode_all(&mut d), frames);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn partial_header_and_payload_wait_for_more() {
        let f = frame(OP_RW, vec![7; 100]);
        let bytes = encode(std::slice::from_ref(&f));
        let mut d = Decoder::new();
        d.extend(&bytes[..20]);
        assert_eq!(d.next_frame().unwrap(), None);
        d.extend(&bytes[20..HDR_LEN + 50]);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.buffered(), HDR_LEN + 50);
        d.extend(&bytes[HDR_LEN + 50..]);
        assert_eq!(d.next_frame().unwrap(), Some(f));
        assert_eq!(d.next_frame().unwrap(), None);
    }

    #[test]
    fn an_oversize_length_loses_framing() {
        let mut h = frame(OP_RW, vec![]).hdr;
        h.len = MAX_PAYLOAD as u32 + 1;
        let mut d = Decoder::new();
        d.extend(&h.to_bytes());
        let e = d.next_frame().unwrap_err();
        assert_eq!(e.hdr.len, MAX_PAYLOAD as u32 + 1);
        assert!(e.to_string().contains("framing lost"));
        // Known as soon as the header is in, before any payload.
        h.len = u32::MAX;
        let mut d = Decoder::new();
        d.extend(&h.to_bytes());
        assert!(d.next_frame().is_err());
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        (
            1u16..8,
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                proptest::collection::vec(any::<u8>(), 4000..4200),
            ],
        )
            .prop_map(|(op, payload)| frame(op, payload))
    }

    proptest! {
        #[test]
        fn arbitrary_splits_decode_the_same_frames(
            frames in proptest::collection::vec(arb_frame(), 0..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
        ) {
            let bytes = encode(&frames);
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            at.push(0);
            at.push(bytes.len());
            at.sort_unstable();
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for w in at.windows(2) {
                d.extend(&bytes[w[0]..w[1]]);
                got.extend(decode_all(&mut d));
            }
            prop_assert_eq!(got, frames);
            prop_assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn header_round_trip_is_little_endian() {
        let h = Header {
            src_cid: 0x0102_0304_0506_0708,
            dst_cid: 3,
            src_port: 0x1122_3344,
            dst_port: 2049,
            len: 512,
            type_: TYPE_STREAM,
            op: OP_RW,
            flags: 0xa0b0_c0d0,
            buf_alloc: 262_144,
            fwd_cnt: 77,
        };
        let b = h.to_bytes();
        assert_eq!(b[0], 0x08);
        assert_eq!(b[7], 0x01);
        assert_eq!(&b[8..16], &3u64.to_le_bytes());
        assert_eq!(&b[16..20], &[0x44, 0x33, 0x22, 0x11]);
        assert_eq!(&b[28..30], &[1, 0]);
        assert_eq!(&b[30..32], &[5, 0]);
        assert_eq!(&b[40..44], &77u32.to_le_bytes());
        assert_eq!(Header::from_bytes(&b), h);
    }

    #[test]
    fn rst_is_a_stream_rst_without_payload_or_credit() {
        assert_eq!(
            Header::rst((2, 2049), (3, 1002)),
            Header {
                src_cid: 2,
                dst_cid: 3,
                src_port: 2049,
                dst_port: 1002,
                len: 0,
                type_: TYPE_STREAM,
                op: OP_RST,
                flags: 0,
                buf_alloc: 0,
                fwd_cnt: 0,
            }
        );
    }

    #[test]
    fn rst_reply_swaps_addresses_and_drops_credit() {
        let h = Header {
            src_cid: 3,
            dst_cid: 9,
            src_port: 1000,
            dst_port: 2049,
            len: 4,
            type_: TYPE_STREAM,
            op: OP_REQUEST,
            flags: 1,
            buf_alloc: 100,
            fwd_cnt: 5,
        };
        let r = h.rst_reply();
        assert_eq!((r.src_cid, r.dst_cid), (9, 3));
        assert_eq!((r.src_port, r.dst_port), (2049, 1000));
        assert_eq!(
            (r.op, r.len, r.buf_alloc, r.fwd_cnt, r.flags),
            (OP_RST, 0, 0, 0, 0)
        );
    }

    #[test]
    fn packet_accounting_follows_delivery() {
        let mut p = Packet::new(Header::default(), vec![7; 100]);
        assert_eq!(p.hdr.len, 100);
        assert_eq!(p.cost(), HDR_LEN + 100);
        p.advance(60);
        assert_eq!(p.remaining().len(), 40);
        assert_eq!(p.cost(), HDR_LEN + 40);
        p.advance(1000);
        assert!(p.remaining().is_empty());
    }
}
