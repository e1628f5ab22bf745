// SPDX-License-Identifier: GPL-2.0

//! xv-vsockd: a vhost-user virtio-vsock device that joins several QEMU
//! guests so they talk AF_VSOCK to each other (see README.md).
//!
//! `packet` is the wire format (and its framing on a byte stream), `router`
//! the shared CID map and bounded per-port FIFOs, `device` the virtqueue
//! processing (testable with mock queues), `backend` the vhost-user glue,
//! `host_stream` a guest's CID 2 served over a stream of framed packets,
//! `control` the control socket.

pub mod backend;
pub mod cli;
pub mod control;
pub mod device;
pub mod host_stream;
pub mod packet;
pub mod ratelimit;
pub mod router;
