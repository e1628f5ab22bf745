// SPDX-License-Identifier: GPL-2.0

//! Which packets may cross the bridge. The stream's framing itself (a
//! 44-byte little-endian `virtio_vsock_hdr`, then `hdr.len` payload bytes)
//! is xv-vsockd's, shared with its host streams: `xv_vsockd::packet`'s
//! `Decoder` and `encode_frame`.
//!
//! Only STREAM sockets: the bridge does not offer VIRTIO_VSOCK_F_SEQPACKET to
//! vhost, so vhost never sends SEQPACKET and any from the stream are dropped.

use std::fmt;

use xv_vsockd::packet::{Header, CID_HOST, HDR_LEN, OP_RW, TYPE_STREAM};

/// Why a packet was not carried across.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// From the stream: not `VIRTIO_VSOCK_TYPE_STREAM`.
    Type,
    /// From the stream: an op outside REQUEST..=CREDIT_REQUEST.
    Op,
    /// From the stream: not from the bridge's CID (vhost would drop it
    /// silently, vsock.c `vhost_vsock_handle_tx_kick`).
    SrcCid,
    /// From the stream: not to the host, CID 2.
    DstCid,
    /// From the stream: an RW without payload.
    EmptyRw,
    /// From vhost: not from CID 2 to the bridge's CID.
    VhostAddr,
    /// From vhost: the used length disagrees with the header's.
    VhostLen,
}

impl Reject {
    pub const ALL: [Reject; 7] = [
        Reject::Type,
        Reject::Op,
        Reject::SrcCid,
        Reject::DstCid,
        Reject::EmptyRw,
        Reject::VhostAddr,
        Reject::VhostLen,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reject::Type => "type",
            Reject::Op => "op",
            Reject::SrcCid => "src_cid",
            Reject::DstCid => "dst_cid",
            Reject::EmptyRw => "empty_rw",
            Reject::VhostAddr => "vhost_addr",
            Reject::VhostLen => "vhost_len",
        }
    }
}

/// Whether a packet from the stream may go to vhost as coming from `cid`.
/// Its length has already been checked by the decoder.
pub fn check_to_vhost(hdr: &Header, cid: u64) -> Result<(), Reject> {
    if hdr.type_ != TYPE_STREAM {
        Err(Reject::Type)
    } else if !hdr.op_is_known() {
        Err(Reject::Op)
    } else if hdr.src_cid != cid {
        Err(Reject::SrcCid)
    } else if hdr.dst_cid != CID_HOST {
        Err(Reject::DstCid)
    } else if hdr.op == OP_RW && hdr.len == 0 {
        Err(Reject::EmptyRw)
    } else {
        Ok(())
    }
}

/// Whether a packet vhost wrote into an RX buffer (`used_len` bytes in all)
/// may go to the stream: addressed from the host to `cid`, and exactly a
/// header and its payload.
pub fn check_from_vhost(hdr: &Header, used_len: u32, cid: u64) -> Result<(), Reject> {
    if hdr.src_cid != CID_HOST || hdr.dst_cid != cid {
        Err(Reject::VhostAddr)
    } else if u64::from(used_len) != HDR_LEN as u64 + u64::from(hdr.len) {
        Err(Reject::VhostLen)
    } else {
        Ok(())
    }
}

/// Dropped packets by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drops([u64; Reject::ALL.len()]);

impl Drops {
    pub fn count(&mut self, r: Reject) {
        self.0[r as usize] += 1;
    }

    pub fn get(&self, r: Reject) -> u64 {
        self.0[r as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl fmt::Display for Drops {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, r) in Reject::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}={}", r.name(), self.get(*r))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xv_vsockd::packet::{OP_CREDIT_REQUEST, OP_REQUEST};

    fn hdr(op: u16, len: u32) -> Header {
        Header {
            src_cid: 3,
            dst_cid: CID_HOST,
            src_port: 1000,
            dst_port: 2049,
            len,
            type_: TYPE_STREAM,
            op,
            flags: 0,
            buf_alloc: 262_144,
            fwd_cnt: 0,
        }
    }

    #[test]
    fn to_vhost_checks() {
        assert_eq!(check_to_vhost(&hdr(OP_REQUEST, 0), 3), Ok(()));
        assert_eq!(check_to_vhost(&hdr(OP_RW, 1), 3), Ok(()));
        assert_eq!(check_to_vhost(&hdr(OP_CREDIT_REQUEST, 0), 3), Ok(()));
        let seqpacket = Header {
            type_: 2,
            ..hdr(OP_RW, 1)
        };
        assert_eq!(check_to_vhost(&seqpacket, 3), Err(Reject::Type));
        assert_eq!(check_to_vhost(&hdr(0, 0), 3), Err(Reject::Op));
        assert_eq!(check_to_vhost(&hdr(8, 0), 3), Err(Reject::Op));
        assert_eq!(check_to_vhost(&hdr(OP_RW, 1), 4), Err(Reject::SrcCid));
        let to_guest = Header {
            dst_cid: 5,
            ..hdr(OP_RW, 1)
        };
        assert_eq!(check_to_vhost(&to_guest, 3), Err(Reject::DstCid));
        assert_eq!(check_to_vhost(&hdr(OP_RW, 0), 3), Err(Reject::EmptyRw));
    }

    #[test]
    fn from_vhost_checks() {
        let reply = Header {
            src_cid: CID_HOST,
            dst_cid: 3,
            ..hdr(OP_RW, 10)
        };
        assert_eq!(check_from_vhost(&reply, 54, 3), Ok(()));
        assert_eq!(check_from_vhost(&reply, 54, 4), Err(Reject::VhostAddr));
        let not_host = Header {
            src_cid: 7,
            ..reply
        };
        assert_eq!(check_from_vhost(&not_host, 54, 3), Err(Reject::VhostAddr));
        assert_eq!(check_from_vhost(&reply, 53, 3), Err(Reject::VhostLen));
        assert_eq!(check_from_vhost(&reply, 4140, 3), Err(Reject::VhostLen));
    }

    #[test]
    fn drops_print_every_reason() {
        let mut d = Drops::default();
        d.count(Reject::Op);
        d.count(Reject::Op);
        d.count(Reject::VhostLen);
        assert_eq!(d.total(), 3);
        assert_eq!(
            d.to_string(),
            "type=0 op=2 src_cid=0 dst_cid=0 empty_rw=0 vhost_addr=0 vhost_len=1"
        );
    }
}
