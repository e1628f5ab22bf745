// SPDX-License-Identifier: GPL-2.0

//! The kernel's vhost-vsock device, driven as QEMU's vhost-vsock does.
//!
//! What the setup and the rings rely on, in Linux 6.12
//! (drivers/vhost/vsock.c, drivers/vhost/vhost.c):
//!
//! * Features: vhost offers `VHOST_FEATURES | ACCESS_PLATFORM | SEQPACKET`
//!   (vsock.c:32-36, vhost.h:279-286) and refuses anything else with
//!   EOPNOTSUPP (vsock.c:808). We ack VIRTIO_F_VERSION_1 only: little-endian
//!   rings, no EVENT_IDX (so vhost signals unless avail flags say
//!   NO_INTERRUPT, vhost.c:3085-3092), no indirect descriptors, and no
//!   SEQPACKET, so vhost never sends us SEQPACKET (vsock.c:824, 462-476).
//! * Memory: `VHOST_SET_MEM_TABLE` maps "guest physical" ranges to this
//!   process's addresses (vhost.c:1989-2048, at most 64 regions, vhost.c:37).
//!   `VHOST_SET_VRING_ADDR` takes *user virtual* addresses, avail 2-aligned,
//!   used 4-aligned (vhost.c:2079-2127); the vhost crate's kernel backend
//!   converts the guest addresses we pass through our memory map
//!   (vhost-0.18 src/vhost_kern/mod.rs:451-476) and wants each ring to end
//!   strictly inside it (same file, `is_valid`), so the rings go first.
//! * `VHOST_SET_VRING_NUM`: a power of two up to 0xffff (vhost.c:2072), and
//!   neither it nor `VHOST_SET_VRING_BASE` once running (vhost.c:2066, 2189).
//! * `VHOST_VSOCK_SET_GUEST_CID`: EINVAL for CIDs <= 2, U32_MAX or wider than
//!   32 bits; EADDRINUSE if this kernel's own guest transport has the CID or
//!   another vhost-vsock instance does (vsock.c:766-801).
//! * `VHOST_VSOCK_SET_RUNNING 1` checks the rings and reads used idx
//!   (vsock.c:565-619, vhost.c:2663-2690), then runs the send worker.
//! * RX (queue 0): every chain must be device-writable and at least 44 bytes,
//!   else vhost logs a vq error, drops the packet and never returns the chain
//!   (vsock.c:147-158). A packet longer than the buffer is split, each piece
//!   with its own header and `len` (vsock.c:165-194), and the used length is
//!   header + piece (vsock.c:217): one used entry is one whole frame.
//! * TX (queue 1): a chain must be device-readable only, 44 to 64 KiB + 44
//!   bytes, with `hdr.len` within it (vsock.c:341-365). A chain failing that is
//!   consumed and never returned (vsock.c:522-526), so the bridge only sends
//!   checked frames, each in a chain of exactly 44 + `hdr.len` bytes. Wrongly
//!   addressed packets are dropped silently but returned (vsock.c:535-543).
//! * Reply throttle: vhost stops taking TX while as many replies as the TX
//!   ring has entries wait for RX buffers (vsock.c:389-399, 501-506), and
//!   resumes TX itself as RX drains (vsock.c:239-245, 257-258): keeping RX
//!   stocked is what keeps TX moving.
//! * Kicks: vhost sets VRING_USED_F_NO_NOTIFY while it works and re-reads
//!   avail idx after clearing it (vhost.c:3154-3186), so a kick may be
//!   skipped while the flag is set.
//! * Closing the fd unhashes the CID and resets every connection to it
//!   (vsock.c:700-764).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vhost::vhost_kern::vhost_binding::{VHOST_VSOCK_SET_GUEST_CID, VHOST_VSOCK_SET_RUNNING};
use vhost::vhost_kern::VhostKernBackend;
use vhost::vsock::VhostVsock;
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{Address, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::ioctl::ioctl_with_ref;

use crate::virtq::Layout;

pub const DEFAULT_DEVICE: &str = "/dev/vhost-vsock";
/// Queue indices (virtio 5.10.2); the event queue (2) is not vhost's.
pub const RX: usize = 0;
pub const TX: usize = 1;

/// `VIRTIO_F_VERSION_1` (include/uapi/linux/virtio_config.h:67).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// A vhost setup step that failed, with the device it failed on.
#[derive(Debug)]
pub struct SetupError {
    step: String,
    path: PathBuf,
    cause: String,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} on {}: {}",
            self.step,
            self.path.display(),
            self.cause
        )
    }
}

impl std::error::Error for SetupError {}

/// The system error behind a vhost crate error, as the user wants to read it.
fn cause(e: vhost::Error) -> String {
    match e {
        vhost::Error::IoctlError(e) | vhost::Error::IOError(e) | vhost::Error::VhostOpen(e) => {
            e.to_string()
        }
        other => other.to_string(),
    }
}

/// The rings and notifiers of one queue.
pub struct QueueSetup<'a> {
    pub layout: Layout,
    /// We write it to kick vhost.
    pub kick: &'a EventFd,
    /// vhost writes it when it used buffers.
    pub call: &'a EventFd,
}

/// An open `/dev/vhost-vsock` (or the given path). The vhost crate's `Vsock`
/// only opens the fixed path, so this is its equivalent over any path; all
/// generic vhost ioctls come from the crate's `VhostKernBackend`.
pub struct VhostVsockDev {
    fd: File,
    path: PathBuf,
    mem: Arc<GuestMemoryMmap>,
}

impl AsRawFd for VhostVsockDev {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl VhostKernBackend for VhostVsockDev {
    type AS = Arc<GuestMemoryMmap>;

    fn mem(&self) -> &Self::AS {
        &self.mem
    }
}

fn ioctl_result(rc: i32) -> vhost::Result<()> {
    if rc < 0 {
        Err(vhost::Error::IoctlError(io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

impl VhostVsock for VhostVsockDev {
    fn set_guest_cid(&self, cid: u64) -> vhost::Result<()> {
        // SAFETY: the fd is an open vhost-vsock device and the kernel reads
        // one u64 from a reference that lives across the call (vhost.h:146).
        let rc = unsafe { ioctl_with_ref(&self.fd, VHOST_VSOCK_SET_GUEST_CID(), &cid) };
        ioctl_result(rc)
    }

    fn start(&self) -> vhost::Result<()> {
        self.set_running(1)
    }

    fn stop(&self) -> vhost::Result<()> {
        self.set_running(0)
    }
}

impl VhostVsockDev {
    fn set_running(&self, on: libc::c_int) -> vhost::Result<()> {
        // SAFETY: the fd is an open vhost-vsock device and the kernel reads
        // one int from a reference that lives across the call (vhost.h:147).
        let rc = unsafe { ioctl_with_ref(&self.fd, VHOST_VSOCK_SET_RUNNING(), &on) };
        ioctl_result(rc)
    }

    fn step<T>(&self, step: impl fmt::Display, r: vhost::Result<T>) -> Result<T, SetupError> {
        r.map_err(|e| SetupError {
            step: step.to_string(),
            path: self.path.clone(),
            cause: cause(e),
        })
    }

    /// Open `path`, hand vhost `mem` and the two queues, give it `cid` and
    /// start it. Buffers may be added to the queues before or after.
    pub fn start_device(
        path: &Path,
        mem: Arc<GuestMemoryMmap>,
        queues: [QueueSetup; 2],
        cid: u64,
    ) -> Result<VhostVsockDev, SetupError> {
        let fd = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| SetupError {
                step: "open".into(),
                path: path.to_owned(),
                cause: e.to_string(),
            })?;
        let dev = VhostVsockDev {
            fd,
            path: path.to_owned(),
            mem,
        };

        dev.step("VHOST_SET_OWNER", dev.set_owner())?;
        let offered = dev.step("VHOST_GET_FEATURES", dev.get_features())?;
        if offered & VIRTIO_F_VERSION_1 == 0 {
            return Err(SetupError {
                step: "VHOST_GET_FEATURES".into(),
                path: dev.path.clone(),
                cause: format!("VIRTIO_F_VERSION_1 not offered (features {offered:#x})"),
            });
        }
        dev.step(
            format_args!("VHOST_SET_FEATURES {VIRTIO_F_VERSION_1:#x}"),
            dev.set_features(VIRTIO_F_VERSION_1),
        )?;

        let regions: Vec<VhostUserMemoryRegionInfo> = dev
            .mem
            .iter()
            .map(|r| VhostUserMemoryRegionInfo {
                guest_phys_addr: r.start_addr().raw_value(),
                memory_size: r.len(),
                userspace_addr: r.as_ptr() as u64,
                mmap_offset: 0,
                mmap_handle: -1,
            })
            .collect();
        dev.step("VHOST_SET_MEM_TABLE", dev.set_mem_table(&regions))?;

        for (index, q) in queues.iter().enumerate() {
            let size = q.layout.size;
            dev.step(
                format_args!("VHOST_SET_VRING_NUM {index} {size}"),
                dev.set_vring_num(index, size),
            )?;
            dev.step(
                format_args!("VHOST_SET_VRING_BASE {index} 0"),
                dev.set_vring_base(index, 0),
            )?;
            let config = VringConfigData {
                queue_max_size: size,
                queue_size: size,
                flags: 0,
                desc_table_addr: q.layout.desc.raw_value(),
                used_ring_addr: q.layout.used.raw_value(),
                avail_ring_addr: q.layout.avail.raw_value(),
                log_addr: None,
            };
            dev.step(
                format_args!("VHOST_SET_VRING_ADDR {index}"),
                dev.set_vring_addr(index, &config),
            )?;
            dev.step(
                format_args!("VHOST_SET_VRING_KICK {index}"),
                dev.set_vring_kick(index, q.kick),
            )?;
            dev.step(
                format_args!("VHOST_SET_VRING_CALL {index}"),
                dev.set_vring_call(index, q.call),
            )?;
        }

        dev.step(
            format_args!("VHOST_VSOCK_SET_GUEST_CID {cid}"),
            dev.set_guest_cid(cid),
        )?;
        dev.step("VHOST_VSOCK_SET_RUNNING 1", dev.start())?;
        Ok(dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    #[test]
    fn errors_name_the_step_and_the_device() {
        let e = SetupError {
            step: "VHOST_VSOCK_SET_GUEST_CID 3".into(),
            path: PathBuf::from(DEFAULT_DEVICE),
            cause: cause(vhost::Error::IoctlError(io::Error::from_raw_os_error(
                libc::EADDRINUSE,
            ))),
        };
        assert_eq!(
            e.to_string(),
            "VHOST_VSOCK_SET_GUEST_CID 3 on /dev/vhost-vsock: Address already in use (os error 98)"
        );
    }

    #[test]
    fn a_missing_device_fails_at_open() {
        let mem = Arc::new(GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap());
        let kick = EventFd::new(0).unwrap();
        let call = EventFd::new(0).unwrap();
        let q = |base| QueueSetup {
            layout: Layout::new(GuestAddress(base), 4),
            kick: &kick,
            call: &call,
        };
        let err = VhostVsockDev::start_device(
            Path::new("/nonexistent/vhost-vsock"),
            mem,
            [q(0), q(0x1000)],
            3,
        )
        .err()
        .unwrap();
        assert!(err
            .to_string()
            .starts_with("open on /nonexistent/vhost-vsock: No such file"));
    }

    #[test]
    fn the_crate_accepts_our_ring_layout() {
        // The vhost crate's own checks, which run before VHOST_SET_VRING_ADDR.
        let mem = Arc::new(GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap());
        let dev = VhostVsockDev {
            fd: File::open("/dev/null").unwrap(),
            path: PathBuf::from("/dev/null"),
            mem: mem.clone(),
        };
        let l = Layout::new(GuestAddress(0), 128);
        let config = VringConfigData {
            queue_max_size: 128,
            queue_size: 128,
            flags: 0,
            desc_table_addr: l.desc.raw_value(),
            used_ring_addr: l.used.raw_value(),
            avail_ring_addr: l.avail.raw_value(),
            log_addr: None,
        };
        assert!(dev.is_valid(&config));
        let addr = config.to_vhost_vring_addr(TX, &mem).unwrap();
        let base = mem.get_host_address(GuestAddress(0)).unwrap() as u64;
        assert_eq!(addr.desc_user_addr, base + l.desc.raw_value());
        assert_eq!(addr.avail_user_addr, base + l.avail.raw_value());
        assert_eq!(addr.used_user_addr, base + l.used.raw_value());
        assert_eq!(addr.used_user_addr % 4, 0);
        assert_eq!(addr.avail_user_addr % 2, 0);
    }
}
