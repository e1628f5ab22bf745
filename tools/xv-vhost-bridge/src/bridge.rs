// SPDX-License-Identifier: GPL-2.0

//! The fake guest: its memory, its two virtqueues, and the poll loop that
//! carries packets between them and the stream.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress, GuestMemoryError, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use xv_vsockd::packet::{Decoder, Header, Oversize, HDR_LEN, MAX_PAYLOAD};
use xv_vsockd::warn_limited;

use crate::frame::{check_from_vhost, check_to_vhost, Drops, Reject};
use crate::vhost_dev::QueueSetup;
use crate::virtq::{self, Buffer, Layout, SplitQueue};

/// An RX buffer: a header and the 4 KiB payload vhost puts in one piece
/// (the guest driver's `VIRTIO_VSOCK_DEFAULT_RX_BUF_SIZE`, give or take
/// skb overhead); longer packets arrive split over several buffers.
pub const RX_BUF_LEN: u32 = 4096 + HDR_LEN as u32;
/// A TX buffer holds the largest packet vhost accepts.
pub const TX_BUF_LEN: u32 = (HDR_LEN + MAX_PAYLOAD) as u32;
/// Past this much unsent output, RX is not refilled, so vhost holds the
/// host's packets (and, through its reply throttle, the host's sockets).
pub const OUT_HIGH: usize = 1 << 20;
const PAGE: u64 = 4096;

#[derive(Debug)]
pub enum Error {
    Setup(String),
    Queue(&'static str, virtq::Error),
    Memory(GuestMemoryError),
    Framing(Oversize),
    Stream(&'static str, io::Error),
    Notifier(&'static str, io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Error::Setup(s) => write!(f, "{s}"),
            Error::Queue(q, e) => write!(f, "{q} queue: {e}"),
            Error::Memory(e) => write!(f, "guest memory: {e}"),
            Error::Framing(e) => write!(f, "{e}"),
            Error::Stream(what, e) => write!(f, "stream {what}: {e}"),
            Error::Notifier(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<GuestMemoryError> for Error {
    fn from(e: GuestMemoryError) -> Self {
        Error::Memory(e)
    }
}

/// The byte stream: a character device or file (a virtio-serial port in the
/// guest), or a connected Unix stream socket.
pub enum Stream {
    File(File),
    Unix(UnixStream),
}

impl Stream {
    /// `unix:PATH` connects to a Unix socket; anything else is opened
    /// read-write. Either way non-blocking.
    pub fn open(spec: &str) -> io::Result<Stream> {
        if let Some(path) = spec.strip_prefix("unix:") {
            let s = UnixStream::connect(path)?;
            s.set_nonblocking(true)?;
            Ok(Stream::Unix(s))
        } else {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(spec)
                .map(Stream::File)
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::File(f) => f.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::File(f) => f.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::File(f) => f.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// SIGUSR1, SIGTERM and SIGINT, blocked and read from a signalfd so the
/// single-threaded poll loop sees them as one more fd.
pub struct Signals(OwnedFd);

impl Signals {
    /// Block the three signals in this (the only) thread and open the fd.
    pub fn block() -> io::Result<Signals> {
        // SAFETY: `set` is a local initialised by sigemptyset before any
        // other use; pthread_sigmask and signalfd only read it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGUSR1, libc::SIGTERM, libc::SIGINT] {
                libc::sigaddset(&mut set, sig);
            }
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Signals(OwnedFd::from_raw_fd(fd)))
        }
    }

    /// The next pending signal, if any.
    fn take(&self) -> io::Result<Option<i32>> {
        // SAFETY: signalfd_siginfo is plain integers, for which all zeroes is
        // a valid value.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: the kernel writes at most `size` bytes into `info`, which
        // is exactly that large and lives across the call.
        let n = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                std::ptr::addr_of_mut!(info).cast(),
                size,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok((n as usize == size).then_some(info.ssi_signo as i32))
    }
}

/// Counters, printed as one line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub to_stream_pkts: u64,
    pub to_stream_bytes: u64,
    pub to_vhost_pkts: u64,
    pub to_vhost_bytes: u64,
    pub drops: Drops,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "vhost->stream {} pkts {} bytes, stream->vhost {} pkts {} bytes, dropped {} ({})",
            self.to_stream_pkts,
            self.to_stream_bytes,
            self.to_vhost_pkts,
            self.to_vhost_bytes,
            self.drops.total(),
            self.drops
        )
    }
}

/// Why `run` returned without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Signal(i32),
    Eof,
}

/// Fixed-size buffers in guest memory, one per chain in flight, found again
/// by the chain's head.
struct Pool {
    base: u64,
    stride: u64,
    free: Vec<u32>,
    by_head: Vec<Option<u32>>,
}

impl Pool {
    fn new(base: u64, stride: u64, n: u16) -> Pool {
        Pool {
            base,
            stride,
            free: (0..u32::from(n)).rev().collect(),
            by_head: vec![None; usize::from(n)],
        }
    }

    fn addr(&self, slot: u32) -> GuestAddress {
        GuestAddress(self.base + self.stride * u64::from(slot))
    }

    /// Add a one-buffer chain of `len` bytes to `q`; `None` when full.
    fn add(
        &mut self,
        q: &mut SplitQueue,
        mem: &GuestMemoryMmap,
        len: u32,
        writable: bool,
        fill: &[&[u8]],
    ) -> Result<Option<u16>, virtq::Error> {
        if q.num_free() == 0 {
            return Ok(None);
        }
        let Some(slot) = self.free.pop() else {
            return Ok(None);
        };
        let addr = self.addr(slot);
        let mut at = addr;
        for part in fill {
            if let Err(e) = mem.write_slice(part, at) {
                self.free.push(slot);
                return Err(e.into());
            }
            at = GuestAddress(at.0 + part.len() as u64);
        }
        let buf = Buffer {
            addr,
            len,
            writable,
        };
        match q.add(mem, &[buf]) {
            Ok(head) => {
                self.by_head[usize::from(head)] = Some(slot);
                Ok(Some(head))
            }
            Err(e) => {
                self.free.push(slot);
                Err(e)
            }
        }
    }

    /// The buffer of a chain the device returned, freed.
    fn release(&mut self, head: u16) -> GuestAddress {
        let slot = self.by_head[usize::from(head)]
            .take()
            .expect("the queue returns only heads it handed out");
        self.free.push(slot);
        self.addr(slot)
    }
}

/// The four eventfds: kicks we write, calls vhost writes.
pub struct Notifiers {
    pub rx_kick: EventFd,
    pub rx_call: EventFd,
    pub tx_kick: EventFd,
    pub tx_call: EventFd,
}

pub struct Bridge {
    cid: u64,
    mem: Arc<GuestMemoryMmap>,
    rx: SplitQueue,
    tx: SplitQueue,
    rx_pool: Pool,
    tx_pool: Pool,
    notifiers: Notifiers,
    decoder: Decoder,
    /// Frames for the stream; `out[out_start..]` is unsent.
    out: Vec<u8>,
    out_start: usize,
    stats: Stats,
}

fn align_up(v: u64, align: u64) -> u64 {
    v.div_ceil(align) * align
}

impl Bridge {
    /// The fake guest of CID `cid`: one memory region at guest address 0
    /// holding both rings first (see vhost_dev.rs on why first), then RX and
    /// TX buffers, `queue_size` of each.
    pub fn new(cid: u64, queue_size: u16) -> Result<Bridge, Error> {
        let n = u64::from(queue_size);
        let rx_l = Layout::new(GuestAddress(0), queue_size);
        let tx_l = Layout::new(rx_l.end, queue_size);
        let rx_stride = align_up(u64::from(RX_BUF_LEN), 64);
        let tx_stride = align_up(u64::from(TX_BUF_LEN), 64);
        let rx_base = align_up(tx_l.end.0, PAGE);
        let tx_base = rx_base + rx_stride * n;
        let total = align_up(tx_base + tx_stride * n, PAGE);
        let len = usize::try_from(total)
            .map_err(|_| Error::Setup(format!("{total} bytes of guest memory")))?;
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), len)])
            .map_err(|e| Error::Setup(format!("mapping {total} bytes of guest memory: {e}")))?;
        let rx = SplitQueue::new(&mem, rx_l).map_err(|e| Error::Queue("RX", e))?;
        let tx = SplitQueue::new(&mem, tx_l).map_err(|e| Error::Queue("TX", e))?;
        let eventfd = |what| EventFd::new(EFD_NONBLOCK).map_err(|e| Error::Notifier(what, e));
        Ok(Bridge {
            cid,
            mem: Arc::new(mem),
            rx,
            tx,
            rx_pool: Pool::new(rx_base, rx_stride, queue_size),
            tx_pool: Pool::new(tx_base, tx_stride, queue_size),
            notifiers: Notifiers {
                rx_kick: eventfd("RX kick eventfd")?,
                rx_call: eventfd("RX call eventfd")?,
                tx_kick: eventfd("TX kick eventfd")?,
                tx_call: eventfd("TX call eventfd")?,
            },
            decoder: Decoder::new(),
            out: Vec::new(),
            out_start: 0,
            stats: Stats::default(),
        })
    }

    pub fn mem(&self) -> Arc<GuestMemoryMmap> {
        self.mem.clone()
    }

    pub fn notifiers(&self) -> &Notifiers {
        &self.notifiers
    }

    /// What vhost needs to know of queues 0 (RX) and 1 (TX).
    pub fn queue_setups(&self) -> [QueueSetup<'_>; 2] {
        [
            QueueSetup {
                layout: *self.rx.layout(),
                kick: &self.notifiers.rx_kick,
                call: &self.notifiers.rx_call,
            },
            QueueSetup {
                layout: *self.tx.layout(),
                kick: &self.notifiers.tx_kick,
                call: &self.notifiers.tx_call,
            },
        ]
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn unsent(&self) -> usize {
        self.out.len() - self.out_start
    }

    fn kick(&mut self, tx: bool) -> Result<(), Error> {
        let (q, fd, name) = if tx {
            (&mut self.tx, &self.notifiers.tx_kick, "TX")
        } else {
            (&mut self.rx, &self.notifiers.rx_kick, "RX")
        };
        let published = q.publish(&self.mem).map_err(|e| Error::Queue(name, e))?;
        if published
            && !q
                .notify_suppressed(&self.mem)
                .map_err(|e| Error::Queue(name, e))?
        {
            fd.write(1)
                .map_err(|e| Error::Notifier("writing a kick eventfd", e))?;
        }
        Ok(())
    }

    /// Reclaim the TX buffers vhost has consumed.
    fn reclaim_tx(&mut self) -> Result<(), Error> {
        while let Some(u) = self
            .tx
            .pop_used(&self.mem)
            .map_err(|e| Error::Queue("TX", e))?
        {
            self.tx_pool.release(u.head);
        }
        Ok(())
    }

    /// Turn the packets vhost wrote into RX buffers into frames for the stream.
    fn harvest_rx(&mut self) -> Result<(), Error> {
        while let Some(u) = self
            .rx
            .pop_used(&self.mem)
            .map_err(|e| Error::Queue("RX", e))?
        {
            let addr = self.rx_pool.release(u.head);
            let mut raw = [0u8; HDR_LEN];
            self.mem.read_slice(&mut raw, addr)?;
            let hdr = Header::from_bytes(&raw);
            // Below 44 bytes the header read is stale, not vhost's.
            let ok = if u.len < HDR_LEN as u32 || u.len > RX_BUF_LEN {
                Err(Reject::VhostLen)
            } else {
                check_from_vhost(&hdr, u.len, self.cid)
            };
            if let Err(r) = ok {
                self.drop_packet("from vhost", r, &hdr, Some(u.len));
                continue;
            }
            if self.out_start == self.out.len() {
                self.out.clear();
                self.out_start = 0;
            }
            let at = self.out.len();
            self.out.resize(at + u.len as usize, 0);
            self.mem.read_slice(&mut self.out[at..], addr)?;
            self.stats.to_stream_pkts += 1;
            self.stats.to_stream_bytes += u64::from(u.len);
        }
        Ok(())
    }

    /// Keep RX stocked with empty buffers, unless the stream is behind.
    fn refill_rx(&mut self) -> Result<(), Error> {
        while self.unsent() < OUT_HIGH {
            let added = self
                .rx_pool
                .add(&mut self.rx, &self.mem, RX_BUF_LEN, true, &[])
                .map_err(|e| Error::Queue("RX", e))?;
            if added.is_none() {
                break;
            }
        }
        self.kick(false)
    }

    /// Move decoded frames into TX while it has room.
    fn fill_tx(&mut self) -> Result<(), Error> {
        while self.tx.num_free() > 0 {
            let Some(f) = self.decoder.next_frame().map_err(Error::Framing)? else {
                break;
            };
            if let Err(r) = check_to_vhost(&f.hdr, self.cid) {
                self.drop_packet("from stream", r, &f.hdr, None);
                continue;
            }
            // Exactly header + payload: vhost rejects (and never returns) a
            // chain shorter than hdr.len says (vsock.c:364).
            let len = (HDR_LEN + f.payload.len()) as u32;
            let hdr = f.hdr.to_bytes();
            self.tx_pool
                .add(&mut self.tx, &self.mem, len, false, &[&hdr, &f.payload])
                .map_err(|e| Error::Queue("TX", e))?
                .expect("TX had a free descriptor and so a free buffer");
            self.stats.to_vhost_pkts += 1;
            self.stats.to_vhost_bytes += u64::from(len);
        }
        self.kick(true)
    }

    /// Count and log a packet not carried; `used` is vhost's used length.
    fn drop_packet(&mut self, from: &str, r: Reject, hdr: &Header, used: Option<u32>) {
        self.stats.drops.count(r);
        let used = used
            .map(|u| format!(", used length {u}"))
            .unwrap_or_default();
        warn_limited!(
            "dropped a packet {from} ({}): {}:{} -> {}:{} type {} op {} len {}{used}",
            r.name(),
            hdr.src_cid,
            hdr.src_port,
            hdr.dst_cid,
            hdr.dst_port,
            hdr.type_,
            hdr.op,
            hdr.len
        );
    }

    /// Write what the stream takes without blocking.
    fn flush(&mut self, stream: &mut Stream) -> Result<(), Error> {
        while self.unsent() > 0 {
            match stream.write(&self.out[self.out_start..]) {
                Ok(0) => return Err(Error::Stream("write", io::ErrorKind::WriteZero.into())),
                Ok(n) => self.out_start += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Error::Stream("write", e)),
            }
        }
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
        }
        Ok(())
    }

    /// Carry packets until a signal to stop, the stream's end, or an error.
    /// SIGUSR1 prints the counters and carries on.
    pub fn run(&mut self, stream: &mut Stream, signals: Option<&Signals>) -> Result<Exit, Error> {
        loop {
            self.reclaim_tx()?;
            self.harvest_rx()?;
            self.refill_rx()?;
            self.fill_tx()?;
            self.flush(stream)?;

            // Read more only when TX has room for what it would bring.
            let mut events = 0;
            if self.tx.num_free() > 0 {
                events |= libc::POLLIN;
            }
            if self.unsent() > 0 {
                events |= libc::POLLOUT;
            }
            let mut fds = vec![
                poll_fd(stream.as_raw_fd(), events),
                poll_fd(self.notifiers.rx_call.as_raw_fd(), libc::POLLIN),
                poll_fd(self.notifiers.tx_call.as_raw_fd(), libc::POLLIN),
            ];
            if let Some(s) = signals {
                fds.push(poll_fd(s.0.as_raw_fd(), libc::POLLIN));
            }
            // SAFETY: `fds` is a live, initialised array of `fds.len()`
            // pollfd structs that poll only reads and updates.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::Notifier("poll", e));
            }

            // Clear the calls before the next pass reads the used rings, so a
            // call for entries added after that read is not lost.
            for (fd, name) in [
                (&self.notifiers.rx_call, "reading the RX call eventfd"),
                (&self.notifiers.tx_call, "reading the TX call eventfd"),
            ] {
                if let Err(e) = fd.read() {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        return Err(Error::Notifier(name, e));
                    }
                }
            }
            if let Some(s) = signals {
                while let Some(sig) = s.take().map_err(|e| Error::Notifier("signalfd", e))? {
                    if sig == libc::SIGUSR1 {
                        eprintln!("xv-vhost-bridge: {}", self.stats);
                    } else {
                        return Ok(Exit::Signal(sig));
                    }
                }
            }
            let rev = fds[0].revents;
            // HUP and ERR come whatever we asked for: a read says which.
            if rev & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                && !self
                    .decoder
                    .read_from(stream)
                    .map_err(|e| Error::Stream("read", e))?
            {
                return Ok(self.at_eof());
            }
        }
    }

    fn at_eof(&self) -> Exit {
        if self.decoder.buffered() > 0 {
            log::warn!(
                "stream ended with {} bytes of a frame or frames not sent",
                self.decoder.buffered()
            );
        }
        Exit::Eof
    }
}

fn poll_fd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, VecDeque};
    use std::net::Shutdown;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::thread;

    use virtio_queue::{Queue, QueueT};
    use xv_vsockd::packet::{encode_frame, Frame, CID_HOST, OP_REQUEST, OP_RW, TYPE_STREAM};

    const CID: u64 = 3;
    /// Packets to this port come back from a CID that is not the host's.
    const MISADDRESSED_PORT: u32 = 666;

    fn device_queue(l: &Layout) -> Queue {
        let mut q = Queue::new(l.size).unwrap();
        q.set_size(l.size);
        q.set_desc_table_address(Some(l.desc.0 as u32), Some(0));
        q.set_avail_ring_address(Some(l.avail.0 as u32), Some(0));
        q.set_used_ring_address(Some(l.used.0 as u32), Some(0));
        q.set_ready(true);
        q
    }

    /// vhost's part, as vsock.c plays it: TX chains are checked as
    /// `vhost_vsock_alloc_skb` checks them (here a failure is a test
    /// failure), each packet comes back on RX with its addresses swapped,
    /// split over RX buffers as `vhost_transport_do_send_pkt` splits it.
    struct FakeVhost {
        mem: Arc<GuestMemoryMmap>,
        rx: Queue,
        tx: Queue,
        rx_kick: EventFd,
        rx_call: EventFd,
        tx_kick: EventFd,
        tx_call: EventFd,
        /// Host-to-guest packets waiting for RX buffers, and how much of
        /// each has gone.
        pending: VecDeque<(Header, Vec<u8>, usize)>,
    }

    impl FakeVhost {
        fn new(b: &Bridge) -> FakeVhost {
            let [rx, tx] = b.queue_setups();
            let n = b.notifiers();
            FakeVhost {
                mem: b.mem(),
                rx: device_queue(&rx.layout),
                tx: device_queue(&tx.layout),
                rx_kick: n.rx_kick.try_clone().unwrap(),
                rx_call: n.rx_call.try_clone().unwrap(),
                tx_kick: n.tx_kick.try_clone().unwrap(),
                tx_call: n.tx_call.try_clone().unwrap(),
                pending: VecDeque::new(),
            }
        }

        fn do_tx(&mut self) {
            let mem = &*self.mem;
            let mut used = false;
            while let Some(chain) = self.tx.pop_descriptor_chain(mem) {
                let head = chain.head_index();
                let mut bytes = Vec::new();
                for d in chain {
                    assert!(!d.is_write_only(), "TX chain with a writable buffer");
                    let at = bytes.len();
                    bytes.resize(at + d.len() as usize, 0);
                    mem.read_slice(&mut bytes[at..], d.addr()).unwrap();
                }
                assert!(bytes.len() >= HDR_LEN && bytes.len() <= HDR_LEN + MAX_PAYLOAD);
                let hdr = Header::from_bytes(bytes[..HDR_LEN].try_into().unwrap());
                assert_eq!(bytes.len(), HDR_LEN + hdr.len as usize);
                assert_eq!((hdr.src_cid, hdr.dst_cid), (CID, CID_HOST));
                let mut reply = Header {
                    src_cid: CID_HOST,
                    dst_cid: CID,
                    src_port: hdr.dst_port,
                    dst_port: hdr.src_port,
                    ..hdr
                };
                if hdr.dst_port == MISADDRESSED_PORT {
                    reply.src_cid = 7;
                }
                self.pending
                    .push_back((reply, bytes[HDR_LEN..].to_vec(), 0));
                self.tx.add_used(mem, head, 0).unwrap();
                used = true;
            }
            if used {
                self.tx_call.write(1).unwrap();
            }
        }

        fn do_rx(&mut self) {
            let mem = &*self.mem;
            let mut used = false;
            while let Some((hdr, data, off)) = self.pending.front_mut() {
                let Some(chain) = self.rx.pop_descriptor_chain(mem) else {
                    break;
                };
                let head = chain.head_index();
                let descs: Vec<_> = chain.collect();
                assert!(descs.iter().all(|d| d.is_write_only()));
                let room: usize = descs.iter().map(|d| d.len() as usize).sum();
                assert!(room >= HDR_LEN);
                let piece = (data.len() - *off).min(room - HDR_LEN);
                let mut bytes = Header {
                    len: piece as u32,
                    ..*hdr
                }
                .to_bytes()
                .to_vec();
                bytes.extend_from_slice(&data[*off..*off + piece]);
                let mut rest = &bytes[..];
                for d in &descs {
                    let n = rest.len().min(d.len() as usize);
                    mem.write_slice(&rest[..n], d.addr()).unwrap();
                    rest = &rest[n..];
                }
                self.rx.add_used(mem, head, bytes.len() as u32).unwrap();
                used = true;
                *off += piece;
                if *off == data.len() {
                    self.pending.pop_front();
                }
            }
            if used {
                self.rx_call.write(1).unwrap();
            }
        }

        fn run(mut self, stop: Arc<AtomicBool>) {
            while !stop.load(Ordering::Relaxed) {
                let mut fds = [
                    poll_fd(self.rx_kick.as_raw_fd(), libc::POLLIN),
                    poll_fd(self.tx_kick.as_raw_fd(), libc::POLLIN),
                ];
                // SAFETY: a live array of two pollfds.
                unsafe { libc::poll(fds.as_mut_ptr(), 2, 10) };
                let _ = self.rx_kick.read();
                let _ = self.tx_kick.read();
                self.do_tx();
                self.do_rx();
            }
        }
    }

    fn hdr(op: u16, dst_port: u32, len: usize) -> Header {
        Header {
            src_cid: CID,
            dst_cid: CID_HOST,
            src_port: 5000,
            dst_port,
            len: len as u32,
            type_: TYPE_STREAM,
            op,
            flags: 0,
            buf_alloc: 262_144,
            fwd_cnt: 0,
        }
    }

    fn encode(frames: &[Frame]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            encode_frame(&f.hdr, &f.payload, &mut out);
        }
        out
    }

    #[test]
    fn packets_cross_both_ways_through_a_fake_vhost() {
        let mut bridge = Bridge::new(CID, 8).unwrap();
        let (ours, theirs) = UnixStream::pair().unwrap();
        theirs.set_nonblocking(true).unwrap();
        let mut stream = Stream::Unix(theirs);

        // Valid packets, one per port so the echoes can be matched up:
        // empty, small, split over several RX buffers, the largest.
        let mut valid = Vec::new();
        for (i, len) in [0usize, 1, 100, 4096, 4097, 10_000, MAX_PAYLOAD]
            .iter()
            .cycle()
            .take(40)
            .enumerate()
        {
            let port = 1000 + i as u32;
            let op = if *len == 0 { OP_REQUEST } else { OP_RW };
            let payload: Vec<u8> = (0..*len).map(|k| (k + i) as u8).collect();
            valid.push(Frame {
                hdr: hdr(op, port, *len),
                payload,
            });
        }
        let mut sent = valid.clone();
        sent.push(Frame {
            hdr: hdr(OP_RW, MISADDRESSED_PORT, 3),
            payload: vec![1, 2, 3],
        });
        let bad = [
            Header {
                type_: 2,
                ..hdr(OP_RW, 1, 0)
            },
            hdr(9, 1, 0),
            Header {
                src_cid: 4,
                ..hdr(OP_RW, 1, 0)
            },
            Header {
                dst_cid: 5,
                ..hdr(OP_RW, 1, 0)
            },
            hdr(OP_RW, 1, 0),
        ];
        for (k, h) in bad.iter().enumerate() {
            let f = Frame {
                hdr: Header {
                    len: u32::from(k as u8 == 0),
                    ..*h
                },
                payload: if k == 0 { vec![9] } else { vec![] },
            };
            sent.insert(5 * k + 2, f);
        }
        let expected: BTreeMap<u32, Vec<u8>> = valid
            .iter()
            .map(|f| (f.hdr.dst_port, f.payload.clone()))
            .collect();

        let (done_tx, done_rx) = mpsc::channel();
        let mut reader = ours.try_clone().unwrap();
        let expected_r = expected.clone();
        let reader = thread::spawn(move || {
            let mut d = Decoder::new();
            let mut got: BTreeMap<u32, (Vec<u8>, usize)> = BTreeMap::new();
            let mut buf = vec![0u8; 8192];
            let mut signalled = false;
            loop {
                let n = reader.read(&mut buf).unwrap();
                if n == 0 {
                    return got;
                }
                d.extend(&buf[..n]);
                while let Some(f) = d.next_frame().unwrap() {
                    assert_eq!((f.hdr.src_cid, f.hdr.dst_cid), (CID_HOST, CID));
                    assert_eq!(f.hdr.len as usize, f.payload.len());
                    assert!(f.payload.len() <= 4096, "vhost splits at the RX buffer");
                    let e = got.entry(f.hdr.src_port).or_default();
                    e.0.extend_from_slice(&f.payload);
                    e.1 += 1;
                }
                let complete = expected_r
                    .iter()
                    .all(|(p, want)| got.get(p).is_some_and(|g| g.0.len() == want.len()));
                if complete && !signalled {
                    done_tx.send(()).unwrap();
                    signalled = true;
                }
            }
        });
        let mut writer = ours;
        let bytes = encode(&sent);
        let writer = thread::spawn(move || {
            // Uneven pieces, so frames straddle reads.
            for piece in bytes.chunks(7777) {
                writer.write_all(piece).unwrap();
            }
            done_rx.recv().unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });

        let stop = Arc::new(AtomicBool::new(false));
        let dev = FakeVhost::new(&bridge);
        let stop_dev = stop.clone();
        let device = thread::spawn(move || dev.run(stop_dev));

        assert_eq!(bridge.run(&mut stream, None).unwrap(), Exit::Eof);
        stop.store(true, Ordering::Relaxed);
        device.join().unwrap();
        writer.join().unwrap();
        drop(stream);
        let got = reader.join().unwrap();

        let got_payloads: BTreeMap<u32, Vec<u8>> =
            got.iter().map(|(p, (b, _))| (*p, b.clone())).collect();
        assert_eq!(got_payloads, expected);
        let s = bridge.stats();
        assert_eq!(s.to_vhost_pkts, valid.len() as u64 + 1);
        let frames: usize = got.values().map(|g| g.1).sum();
        assert_eq!(s.to_stream_pkts, frames as u64);
        let payload: usize = expected.values().map(Vec::len).sum();
        assert_eq!(s.to_stream_bytes, (frames * HDR_LEN + payload) as u64);
        for r in [
            Reject::Type,
            Reject::Op,
            Reject::SrcCid,
            Reject::DstCid,
            Reject::EmptyRw,
            Reject::VhostAddr,
        ] {
            assert_eq!(s.drops.get(r), 1, "{}", r.name());
        }
        assert_eq!(s.drops.get(Reject::VhostLen), 0);
        // Everything came back, so every buffer is back in its queue.
        assert_eq!(bridge.tx.in_flight(), 0);
        assert_eq!(bridge.rx.in_flight(), 8);
    }

    #[test]
    fn an_oversize_frame_ends_the_run_with_an_error() {
        let mut bridge = Bridge::new(CID, 4).unwrap();
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        theirs.set_nonblocking(true).unwrap();
        let mut stream = Stream::Unix(theirs);
        ours.write_all(&hdr(OP_RW, 1, MAX_PAYLOAD + 1).to_bytes())
            .unwrap();
        let e = bridge.run(&mut stream, None).unwrap_err();
        assert!(matches!(e, Error::Framing(_)));
        assert!(e.to_string().contains("framing lost"), "{e}");
    }

    #[test]
    fn sigusr1_reports_and_sigterm_stops() {
        let mut bridge = Bridge::new(CID, 4).unwrap();
        let (_ours, theirs) = UnixStream::pair().unwrap();
        theirs.set_nonblocking(true).unwrap();
        let mut stream = Stream::Unix(theirs);
        let signals = Signals::block().unwrap();
        for sig in [libc::SIGUSR1, libc::SIGTERM] {
            // SAFETY: signals this very thread, which has them blocked, so
            // they stay pending for the signalfd.
            assert_eq!(unsafe { libc::pthread_kill(libc::pthread_self(), sig) }, 0);
        }
        assert_eq!(
            bridge.run(&mut stream, Some(&signals)).unwrap(),
            Exit::Signal(libc::SIGTERM)
        );
    }

    #[test]
    fn rx_is_not_refilled_while_the_stream_is_behind() {
        let mut bridge = Bridge::new(CID, 4).unwrap();
        bridge.out = vec![0; OUT_HIGH];
        bridge.refill_rx().unwrap();
        assert_eq!(bridge.rx.in_flight(), 0);
        bridge.out_start = 1;
        bridge.refill_rx().unwrap();
        assert_eq!(bridge.rx.in_flight(), 4);
        assert_eq!(bridge.notifiers.rx_kick.read().unwrap(), 1);
    }

    #[test]
    fn rx_entries_with_inconsistent_lengths_are_dropped() {
        let mut bridge = Bridge::new(CID, 4).unwrap();
        bridge.refill_rx().unwrap();
        let mem = bridge.mem();
        let mut rx = device_queue(bridge.rx.layout());
        let reply = Header {
            src_cid: CID_HOST,
            dst_cid: CID,
            ..hdr(OP_RW, 1, 10)
        };
        for used in [HDR_LEN as u32 + 10, HDR_LEN as u32 + 9, 20, RX_BUF_LEN + 1] {
            let chain = rx.pop_descriptor_chain(&*mem).unwrap();
            let head = chain.head_index();
            let d = chain.into_iter().next().unwrap();
            mem.write_slice(&reply.to_bytes(), d.addr()).unwrap();
            rx.add_used(&*mem, head, used).unwrap();
        }
        bridge.harvest_rx().unwrap();
        assert_eq!(bridge.stats.to_stream_pkts, 1);
        assert_eq!(bridge.unsent(), HDR_LEN + 10);
        assert_eq!(bridge.stats.drops.get(Reject::VhostLen), 3);
    }

    #[test]
    fn stats_print_as_one_line() {
        let mut s = Stats {
            to_stream_pkts: 1,
            to_stream_bytes: 44,
            to_vhost_pkts: 2,
            to_vhost_bytes: 100,
            drops: Drops::default(),
        };
        s.drops.count(Reject::SrcCid);
        assert_eq!(
            s.to_string(),
            "vhost->stream 1 pkts 44 bytes, stream->vhost 2 pkts 100 bytes, dropped 1 \
             (type=0 op=0 src_cid=1 dst_cid=0 empty_rw=0 vhost_addr=0 vhost_len=0)"
        );
    }

    #[test]
    fn memory_holds_rings_then_buffers() {
        let b = Bridge::new(CID, 128).unwrap();
        let [rx, tx] = b.queue_setups();
        assert_eq!(rx.layout.desc, GuestAddress(0));
        assert!(tx.layout.desc.0 >= rx.layout.end.0);
        assert!(b.rx_pool.base >= tx.layout.end.0);
        assert!(b.tx_pool.base >= b.rx_pool.base + 128 * u64::from(RX_BUF_LEN));
        let end = b.tx_pool.base + 127 * b.tx_pool.stride + u64::from(TX_BUF_LEN);
        use vm_memory::GuestMemoryBackend;
        assert!(b.mem.last_addr().0 >= end - 1);
    }
}
