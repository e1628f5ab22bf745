// SPDX-License-Identifier: GPL-2.0

//! xv-vhost-bridge: plays the virtio-vsock driver of a fake guest against
//! the kernel's /dev/vhost-vsock and carries its packets over a byte stream
//! (see README.md).
//!
//! `virtq` is the driver side of a split virtqueue, `frame` the checks on
//! what crosses the stream (its framing is `xv_vsockd::packet`'s),
//! `vhost_dev` the vhost setup, `bridge` the fake guest's memory and poll
//! loop.

pub mod bridge;
pub mod frame;
pub mod vhost_dev;
pub mod virtq;
