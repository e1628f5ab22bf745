// SPDX-License-Identifier: GPL-2.0

//! Host streams: CID 2 for one guest, carried as framed packets over a Unix
//! stream socket to the server guest's QEMU (a chardev behind a
//! virtio-serial port), where xv-vhost-bridge plays that guest against the
//! server kernel's /dev/vhost-vsock. The guest then reaches the server the
//! way a VM reaches its KVM host.
//!
//! Each stream is a router port (`PortKind::HostStream`) served by one
//! thread: it accepts one connection at a time, writes the port's FIFO to
//! the socket as frames and hands the frames it reads to the router as
//! coming from CID 2. Both ways keep the router's back-pressure: the FIFO
//! is only taken from while the output buffer is short, and a frame whose
//! destination FIFO is full is held, the socket not read, until it drains.
//! A connection that ends is the host going away: the guest's connections
//! with CID 2 get RST, and the next connection is accepted. The guest going
//! away closes the connection: the bridge behind it then ends, and closing
//! its /dev/vhost-vsock resets the guest's connections in the server, as a
//! VM's end does on a KVM host.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use log::{info, warn};

use crate::device::{dispatch, Outgoing};
use crate::packet::{encode_frame, Decoder, Header, Packet, CID_HOST, OP_RW, TYPE_STREAM};
use crate::router::{bump, PortKind, Router};
use crate::warn_limited;

/// Output bytes past which the FIFO is left alone until the socket takes
/// them, so a slow reader holds packets in the bounded FIFO, not here.
const OUT_HIGH: usize = 256 << 10;

/// Why a frame from the stream was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not from CID 2.
    SrcCid,
    /// Not to the guest owning the stream.
    DstCid,
    /// Not `VIRTIO_VSOCK_TYPE_STREAM`.
    Type,
    /// An op outside REQUEST..=CREDIT_REQUEST.
    Op,
    /// Payload on an op other than RW.
    Payload,
    /// A length over `MAX_PAYLOAD`; the connection is closed.
    Oversize,
}

impl Reject {
    pub const ALL: [Reject; 6] = [
        Reject::SrcCid,
        Reject::DstCid,
        Reject::Type,
        Reject::Op,
        Reject::Payload,
        Reject::Oversize,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reject::SrcCid => "src_cid",
            Reject::DstCid => "dst_cid",
            Reject::Type => "type",
            Reject::Op => "op",
            Reject::Payload => "payload",
            Reject::Oversize => "oversize",
        }
    }
}

/// A host stream's own counters; frames and bytes are in the port's `Stats`.
#[derive(Default)]
pub struct StreamStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    dropped: [AtomicU64; Reject::ALL.len()],
}

impl StreamStats {
    pub fn count(&self, r: Reject) {
        bump(&self.dropped[r as usize], 1);
    }

    pub fn dropped(&self, r: Reject) -> u64 {
        self.dropped[r as usize].load(Ordering::Relaxed)
    }

    pub fn dropped_total(&self) -> u64 {
        Reject::ALL.iter().map(|&r| self.dropped(r)).sum()
    }
}

/// Whether a frame from the stream may go to the guest of CID `owner` as
/// from the host. Its length has already been checked by the decoder.
pub fn check_frame(hdr: &Header, owner: u64) -> Result<(), Reject> {
    if hdr.src_cid != CID_HOST {
        Err(Reject::SrcCid)
    } else if hdr.dst_cid != owner {
        Err(Reject::DstCid)
    } else if hdr.type_ != TYPE_STREAM {
        Err(Reject::Type)
    } else if !hdr.op_is_known() {
        Err(Reject::Op)
    } else if hdr.op != OP_RW && hdr.len != 0 {
        Err(Reject::Payload)
    } else {
        Ok(())
    }
}

/// Serve the host stream at port `index` on `listener`: one connection at a
/// time, for ever (the server guest reboots, its QEMU reconnects). Returns
/// only if accepting fails for a reason that would repeat.
pub fn serve_host_stream(
    router: Arc<Router>,
    index: usize,
    listener: UnixListener,
) -> Result<(), String> {
    let PortKind::HostStream { owner } = router.port(index).kind else {
        return Err(format!("port {index} is not a host stream"));
    };
    let owner_cid = router.port(owner).cid;
    let who = format!("host stream of guest {owner_cid}");
    loop {
        let sock = match listener.accept() {
            Ok((sock, _)) => sock,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("{who}: accepting: {e}")),
        };
        if let Err(e) = sock.set_nonblocking(true) {
            warn!("{who}: dropping a connection: making it non-blocking: {e}");
            continue;
        }
        // A guest gone before this connection leaves nothing to close.
        router.take_hang_up(index);
        router.connect(index);
        bump(&router.port(index).stream.accepted, 1);
        info!("{who}: connected");
        let end = Connection::new(&router, index, owner_cid, &who, sock).run();
        router.disconnect(index);
        match end {
            Ok(End::PeerClosed) => info!("{who}: peer closed the connection"),
            Ok(End::GuestGone) => info!("{who}: guest {owner_cid} went away; connection closed"),
            Err(e) => warn!("{who}: {e}; connection closed"),
        }
    }
}

/// Why a connection ended without an error.
enum End {
    PeerClosed,
    GuestGone,
}

struct Connection<'a> {
    router: &'a Router,
    index: usize,
    /// How the logs name the stream.
    who: &'a str,
    /// The guest owning the stream, the only destination of its frames.
    owner_cid: u64,
    sock: UnixStream,
    decoder: Decoder,
    /// Frames for the socket; `out[out_start..]` is unsent.
    out: Vec<u8>,
    out_start: usize,
    /// A frame (or the RST answering it) whose FIFO was full: no more is
    /// read until it is placed, as a guest's transmit side pauses.
    held: Option<Outgoing>,
}

impl<'a> Connection<'a> {
    fn new(
        router: &'a Router,
        index: usize,
        owner_cid: u64,
        who: &'a str,
        sock: UnixStream,
    ) -> Self {
        Connection {
            router,
            index,
            who,
            owner_cid,
            sock,
            decoder: Decoder::new(),
            out: Vec::new(),
            out_start: 0,
            held: None,
        }
    }

    /// Carry packets until the peer closes or the guest goes away (`Ok`),
    /// or the connection must go.
    fn run(&mut self) -> Result<End, String> {
        let port = self.router.port(self.index);
        loop {
            self.fill_out();
            self.flush()?;
            self.take_frames()?;

            let want_in = self.held.is_none();
            let want_out = self.out_start < self.out.len();
            let events =
                if want_in { libc::POLLIN } else { 0 } | if want_out { libc::POLLOUT } else { 0 };
            // A negative fd is skipped: with nothing wanted, a hang-up must
            // not make poll return at once over and over.
            let sock_fd: RawFd = if events == 0 {
                -1
            } else {
                self.sock.as_raw_fd()
            };
            let mut fds = [
                poll_fd(sock_fd, events),
                poll_fd(port.wake_fd().as_raw_fd(), libc::POLLIN),
            ];
            // SAFETY: `fds` is a live array of two initialised pollfd
            // structs, which poll only reads and updates.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll: {e}"));
            }
            // Before the next pass looks at the FIFOs, so no wake is lost.
            port.clear_wake();
            if self.router.take_hang_up(self.index) {
                return Ok(End::GuestGone);
            }
            // HUP and ERR come whatever we asked for: a read says which.
            if want_in
                && fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                && !self
                    .decoder
                    .read_from(&mut self.sock)
                    .map_err(|e| format!("reading: {e}"))?
            {
                if self.decoder.buffered() > 0 {
                    warn!(
                        "{}: peer closed in the middle of a frame ({} bytes dropped)",
                        self.who,
                        self.decoder.buffered()
                    );
                }
                return Ok(End::PeerClosed);
            }
        }
    }

    /// Move packets from the port's FIFO to the output buffer while it is
    /// short, and wake the senders waiting for room in the FIFO.
    fn fill_out(&mut self) {
        self.out.drain(..self.out_start);
        self.out_start = 0;
        let port = self.router.port(self.index);
        let out = &mut self.out;
        let waiters = port.drain(|pkt| {
            if out.len() >= OUT_HIGH {
                return None;
            }
            encode_frame(&pkt.hdr, pkt.remaining(), out);
            bump(&port.stats.rx_packets, 1);
            bump(&port.stats.rx_bytes, pkt.remaining().len() as u64);
            Some(true)
        });
        self.router.wake_all(&waiters);
    }

    /// Write what the socket takes without blocking.
    fn flush(&mut self) -> Result<(), String> {
        while self.out_start < self.out.len() {
            match self.sock.write(&self.out[self.out_start..]) {
                Ok(0) => return Err("writing: the socket took nothing".to_string()),
                Ok(n) => self.out_start += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("writing: {e}")),
            }
        }
        Ok(())
    }

    /// Place the held packet, then the frames read so far, until a FIFO is
    /// full. An oversize frame ends the connection.
    fn take_frames(&mut self) -> Result<(), String> {
        let port = self.router.port(self.index);
        if let Some(item) = self.held.take() {
            self.held = dispatch(self.router, self.index, item);
            if self.held.is_some() {
                return Ok(());
            }
        }
        loop {
            let frame = match self.decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => {
                    port.stream.count(Reject::Oversize);
                    return Err(e.to_string());
                }
            };
            let hdr = frame.hdr;
            if let Err(r) = check_frame(&hdr, self.owner_cid) {
                port.stream.count(r);
                warn_limited!(
                    "{}: dropped a frame ({}): {}:{} -> {}:{} type {} op {} len {}",
                    self.who,
                    r.name(),
                    hdr.src_cid,
                    hdr.src_port,
                    hdr.dst_cid,
                    hdr.dst_port,
                    hdr.type_,
                    hdr.op,
                    hdr.len
                );
                continue;
            }
            bump(&port.stats.tx_packets, 1);
            bump(&port.stats.tx_bytes, u64::from(hdr.len));
            let item = Outgoing::Forward(Packet::new(hdr, frame.payload));
            if let Some(still) = dispatch(self.router, self.index, item) {
                self.held = Some(still);
                bump(&port.stats.paused, 1);
                return Ok(());
            }
        }
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
    use std::io::Read;
    use std::path::PathBuf;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::packet::{Frame, HDR_LEN, MAX_PAYLOAD, OP_REQUEST, OP_RST};
    use crate::router::{GuestConfig, Route};

    /// Guests 3 (with a host stream, served on a temporary socket) and 4;
    /// ports 0 and 1 are the guests, connected, and 2 the stream.
    struct Rig {
        router: Arc<Router>,
        dir: PathBuf,
        path: PathBuf,
    }

    impl Rig {
        fn new(name: &str, limit: usize) -> Rig {
            let dir =
                std::env::temp_dir().join(format!("xv-vsockd-hs-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("host.sock");
            let listener = UnixListener::bind(&path).unwrap();
            let guests = [(3, true), (4, false)].map(|(cid, host_stream)| GuestConfig {
                cid,
                alias: None,
                host_stream,
            });
            let router = Arc::new(Router::new(&guests, limit).unwrap());
            router.connect(0);
            router.connect(1);
            let r = router.clone();
            thread::spawn(move || serve_host_stream(r, 2, listener));
            Rig { router, dir, path }
        }

        /// Connect as the server guest's QEMU and wait until the stream is up.
        fn connect(&self) -> UnixStream {
            let s = UnixStream::connect(&self.path).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            wait_for("the stream to come up", || {
                self.router.port(2).is_connected()
            });
            s
        }

        fn stream(&self) -> &StreamStats {
            &self.router.port(2).stream
        }

        fn counter(&self, c: impl Fn(&crate::router::Stats) -> &AtomicU64) -> u64 {
            c(&self.router.port(2).stats).load(Ordering::Relaxed)
        }

        /// Take guest 3's FIFO, waiting up to 5 s until it holds `n` packets.
        fn guest_receives(&self, n: usize) -> Vec<Frame> {
            let port = self.router.port(0);
            wait_for("packets for guest 3", || port.queued_packets() >= n);
            let mut got = Vec::new();
            let woken = port.drain(|p| {
                got.push(Frame {
                    hdr: p.hdr,
                    payload: p.remaining().to_vec(),
                });
                Some(true)
            });
            self.router.wake_all(&woken);
            got
        }
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn frame(src: (u64, u32), dst: (u64, u32), op: u16, payload: Vec<u8>) -> Frame {
        Frame {
            hdr: Header {
                op,
                len: payload.len() as u32,
                buf_alloc: 65536,
                ..Header::rst(src, dst)
            },
            payload,
        }
    }

    fn send(s: &mut UnixStream, frames: &[Frame]) {
        let mut bytes = Vec::new();
        for f in frames {
            encode_frame(&f.hdr, &f.payload, &mut bytes);
        }
        // Odd pieces, so frames straddle reads.
        for piece in bytes.chunks(1000) {
            s.write_all(piece).unwrap();
        }
    }

    /// Read `n` frames off the socket.
    fn receive(s: &mut UnixStream, n: usize) -> Vec<Frame> {
        let mut d = Decoder::new();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        while got.len() < n {
            let k = s.read(&mut buf).unwrap();
            assert!(k > 0, "stream closed after {} frames", got.len());
            d.extend(&buf[..k]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(d.buffered(), 0);
        got
    }

    #[test]
    fn checks_name_each_reason() {
        let ok = frame((2, 1), (3, 2), OP_RW, vec![1]).hdr;
        assert_eq!(check_frame(&ok, 3), Ok(()));
        let bad = |h: Header| check_frame(&h, 3).unwrap_err();
        assert_eq!(bad(Header { src_cid: 4, ..ok }), Reject::SrcCid);
        assert_eq!(bad(Header { dst_cid: 4, ..ok }), Reject::DstCid);
        assert_eq!(bad(Header { type_: 2, ..ok }), Reject::Type);
        assert_eq!(bad(Header { op: 0, ..ok }), Reject::Op);
        assert_eq!(bad(Header { op: 8, ..ok }), Reject::Op);
        assert_eq!(
            bad(Header {
                op: OP_REQUEST,
                ..ok
            }),
            Reject::Payload
        );
        assert_eq!(check_frame(&Header { len: 0, ..ok }, 3), Ok(()));
    }

    #[test]
    fn frames_cross_both_ways_with_back_pressure() {
        // Room for two large packets: both ways must pause and resume.
        let rig = Rig::new("both", 2 * (HDR_LEN + MAX_PAYLOAD));
        let r = &rig.router;
        assert!(matches!(
            r.forward(
                0,
                Packet::new(frame((3, 1), (2, 2), OP_RW, vec![1]).hdr, vec![1])
            ),
            Route::Unreachable(_)
        ));
        let mut s = rig.connect();

        // Stream to guest: 40 frames of 64 KiB, far over the bound.
        let to_guest: Vec<Frame> = (0..40u8)
            .map(|i| frame((2, 2049), (3, 1000), OP_RW, vec![i; MAX_PAYLOAD]))
            .collect();
        let mut writer = s.try_clone().unwrap();
        let sent = to_guest.clone();
        let w = thread::spawn(move || send(&mut writer, &sent));
        let mut got = Vec::new();
        while got.len() < to_guest.len() {
            got.extend(rig.guest_receives(1));
        }
        w.join().unwrap();
        assert_eq!(got, to_guest);
        assert!(rig.counter(|s| &s.paused) > 0, "the stream never paused");

        // Guest to stream: a sender told Full waits for its wake-up.
        let to_stream: Vec<Frame> = (0..40u8)
            .map(|i| frame((3, 1000), (2, 2049), OP_RW, vec![i; MAX_PAYLOAD]))
            .collect();
        let mut reader = s.try_clone().unwrap();
        let n = to_stream.len();
        let rd = thread::spawn(move || receive(&mut reader, n));
        let mut fulls = 0;
        for f in &to_stream {
            let mut pkt = Packet::new(f.hdr, f.payload.clone());
            loop {
                match r.forward(0, pkt) {
                    Route::Queued(2) => break,
                    Route::Full(p) => {
                        fulls += 1;
                        pkt = p;
                        wait_for("room in the stream's FIFO", || {
                            r.port(0).wake_fd().read().is_ok()
                        });
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(rd.join().unwrap(), to_stream);
        assert!(fulls > 0, "the guest never paused");
        assert_eq!(rig.counter(|s| &s.rx_packets), 40);
        assert_eq!(rig.counter(|s| &s.rx_bytes), 40 * MAX_PAYLOAD as u64);
        assert_eq!(rig.counter(|s| &s.tx_packets), 40);
        assert_eq!(rig.counter(|s| &s.tx_bytes), 40 * MAX_PAYLOAD as u64);

        // Guest 3 going away closes the stream, as its VM's end closes its
        // vhost-vsock; on the next connection a frame for it while it is
        // gone is answered with RST.
        r.disconnect(0);
        let mut end = [0u8; 1];
        assert_eq!(s.read(&mut end).unwrap(), 0, "the stream stayed open");
        wait_for("the stream to go down", || !r.port(2).is_connected());
        let mut s = rig.connect();
        send(&mut s, &[frame((2, 700), (3, 5000), OP_REQUEST, vec![])]);
        let rst = receive(&mut s, 1);
        assert_eq!(rst[0].hdr, Header::rst((3, 5000), (2, 700)));
        assert_eq!(rig.counter(|s| &s.rst_sent), 1);
        assert_eq!(rig.stream().dropped_total(), 0);
    }

    #[test]
    fn bad_frames_are_counted_and_oversize_closes_until_the_next_connection() {
        let rig = Rig::new("drops", 1 << 20);
        let r = &rig.router;
        let mut s = rig.connect();
        let ok = frame((2, 2049), (3, 1000), OP_RW, vec![7; 10]);
        let with = |f: &dyn Fn(&mut Header)| {
            let mut b = ok.clone();
            f(&mut b.hdr);
            b
        };
        let mut bad_op = with(&|h| h.op = 9);
        bad_op.payload.clear();
        let mut frames = vec![
            with(&|h| h.src_cid = 4),
            with(&|h| h.dst_cid = 4),
            with(&|h| h.type_ = 2),
            bad_op,
            with(&|h| h.op = OP_REQUEST),
        ];
        frames.push(ok.clone());
        send(&mut s, &frames);
        assert_eq!(rig.guest_receives(1), std::slice::from_ref(&ok));
        for reason in &Reject::ALL[..5] {
            assert_eq!(rig.stream().dropped(*reason), 1, "{}", reason.name());
        }
        assert_eq!(rig.counter(|s| &s.tx_packets), 1);

        // Guest 3 opens a connection with the host, then the framing breaks.
        let req = frame((3, 1000), (2, 2049), OP_REQUEST, vec![]);
        assert_eq!(r.forward(0, Packet::new(req.hdr, vec![])), Route::Queued(2));
        assert_eq!(receive(&mut s, 1), [req]);
        let mut oversize = ok.hdr;
        oversize.len = MAX_PAYLOAD as u32 + 1;
        s.write_all(&oversize.to_bytes()).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap(), 0, "the connection stays open");
        wait_for("the stream to go down", || !r.port(2).is_connected());
        assert_eq!(rig.stream().dropped(Reject::Oversize), 1);
        // The guest's connection with the host was reset.
        let rst = rig.guest_receives(1);
        assert_eq!(rst[0].hdr, Header::rst((2, 2049), (3, 1000)));
        assert_eq!(rst[0].hdr.op, OP_RST);
        let probe = frame((3, 1001), (2, 2049), OP_REQUEST, vec![]);
        assert!(matches!(
            r.forward(0, Packet::new(probe.hdr, vec![])),
            Route::Unreachable(_)
        ));

        // The server's next boot connects again and traffic flows.
        let mut s = rig.connect();
        assert_eq!(rig.stream().accepted.load(Ordering::Relaxed), 2);
        send(&mut s, std::slice::from_ref(&ok));
        assert_eq!(rig.guest_receives(1), [ok]);
        assert_eq!(
            r.forward(0, Packet::new(probe.hdr, vec![])),
            Route::Queued(2)
        );
        assert_eq!(receive(&mut s, 1), [probe]);
        assert_eq!(rig.stream().dropped_total(), 6);
    }
}
