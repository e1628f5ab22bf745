// SPDX-License-Identifier: GPL-2.0

//! Connections to the server: AF_VSOCK streams, or Unix stream sockets,
//! which the host tests use to drive the scenarios against a stand-in
//! server without vsock.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::rpc::{self, Reply};

/// Largest reply the peer accepts.
pub const MAX_REPLY: u32 = 4 << 20;

/// `SO_VM_SOCKETS_BUFFER_SIZE` of `<linux/vm_sockets.h>`, at level
/// `AF_VSOCK`: the receive buffer, which bounds the credit the peer grants.
const SO_VM_SOCKETS_BUFFER_SIZE: libc::c_int = 0;

/// `SO_VM_SOCKETS_CONNECT_TIMEOUT` of `<linux/vm_sockets.h>` on 64-bit
/// systems (`SO_VM_SOCKETS_CONNECT_TIMEOUT_OLD`, a `struct timeval`): how
/// long a connect waits, 2 s unless set.
const SO_VM_SOCKETS_CONNECT_TIMEOUT: libc::c_int = 6;

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An AF_VSOCK stream listener.
    Vsock {
        /// Context ID: 1 is this kernel, 2 the host.
        cid: u32,
        /// vsock port.
        port: u32,
    },
    /// A Unix stream listener (host tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Unix(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vsock { cid, port } => write!(f, "vsock {cid}:{port}"),
            Self::Unix(path) => write!(f, "unix {}", path.display()),
        }
    }
}

/// The server and how long to wait for it.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the server listens.
    pub target: Target,
    /// How long to wait for a reply, a close or room to send.
    pub timeout: Duration,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a valid `T` of the length passed.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            std::ptr::from_ref(value).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Connects a stream socket to `opts.target`, with `opts.timeout` as its
/// connect, send and receive timeouts and, if given, a receive buffer of
/// `rcvbuf` bytes set before the connection exists.
pub fn connect(opts: &Options, rcvbuf: Option<u32>) -> io::Result<File> {
    let family = match opts.target {
        Target::Vsock { .. } => libc::AF_VSOCK,
        Target::Unix(_) => libc::AF_UNIX,
    };
    // SAFETY: plain socket(2) call.
    let fd = check(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` is a new socket that nothing else owns; `File` closes it.
    let file = unsafe { File::from_raw_fd(fd) };
    let timeout = libc::timeval {
        tv_sec: opts.timeout.as_secs() as libc::time_t,
        tv_usec: opts.timeout.subsec_micros() as libc::suseconds_t,
    };
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        setsockopt(fd, libc::SOL_SOCKET, option, &timeout)?;
    }
    match &opts.target {
        Target::Vsock { cid, port } => {
            setsockopt(fd, libc::AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &timeout)?;
            if let Some(size) = rcvbuf {
                setsockopt(
                    fd,
                    libc::AF_VSOCK,
                    SO_VM_SOCKETS_BUFFER_SIZE,
                    &u64::from(size),
                )?;
            }
            // SAFETY: all-zero is a valid `sockaddr_vm`.
            let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
            addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
            addr.svm_cid = *cid;
            addr.svm_port = *port;
            // SAFETY: `addr` is a valid `sockaddr_vm` of the length passed.
            check(unsafe {
                libc::connect(
                    fd,
                    std::ptr::from_ref(&addr).cast(),
                    std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
                )
            })?;
        }
        Target::Unix(path) => {
            if let Some(size) = rcvbuf {
                setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    &(size as libc::c_int),
                )?;
            }
            // SAFETY: all-zero is a valid `sockaddr_un`.
            let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let bytes = path.as_os_str().as_bytes();
            if bytes.len() >= addr.sun_path.len() {
                return Err(io::Error::new(
                    ErrorKind::InvalidInput,
                    "socket path too long",
                ));
            }
            for (to, from) in addr.sun_path.iter_mut().zip(bytes) {
                *to = *from as libc::c_char;
            }
            // SAFETY: `addr` is a valid `sockaddr_un` of the length passed.
            check(unsafe {
                libc::connect(
                    fd,
                    std::ptr::from_ref(&addr).cast(),
                    std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                )
            })?;
        }
    }
    Ok(file)
}

/// Sets or clears `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl(2) on a descriptor the caller owns.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }).map(drop)
}

/// Shuts down the sending side of `fd`: the server reads end of stream
/// after what was sent.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    // SAFETY: shutdown(2) on a descriptor the caller owns.
    check(unsafe { libc::shutdown(fd, libc::SHUT_WR) }).map(drop)
}

/// Whether an error means that the server closed or reset the connection.
pub fn is_close(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::BrokenPipe
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
    )
}

/// The pending error of the socket `fd` (`SO_ERROR`), which reading clears.
pub fn take_socket_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` is a writable `c_int` of the length passed.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            std::ptr::from_mut(&mut err).cast(),
            &mut len,
        )
    })?;
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

/// Whether the server has closed or reset the connection on `fd`, seen
/// without reading or sending: poll(2) for `POLLRDHUP`, `POLLHUP` and
/// `POLLERR` with no wait.
pub fn peer_gone(fd: RawFd) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid `pollfd`.
    check(unsafe { libc::poll(&mut pfd, 1, 0) })?;
    Ok(pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0)
}

/// XIDs, distinct across the connections of one run.
static NEXT_XID: AtomicU32 = AtomicU32::new(0);

/// A fresh transaction ID.
pub fn next_xid() -> u32 {
    let seed = std::process::id().wrapping_mul(0x1000_0001);
    seed.wrapping_add(NEXT_XID.fetch_add(1, Ordering::Relaxed))
        .wrapping_add(1)
}

/// A blocking connection that sends calls and reads whole records.
pub struct Conn {
    file: File,
    records: rpc::Records,
    /// Records received but not read yet.
    pending: VecDeque<Vec<u8>>,
}

impl Conn {
    /// Connects to the server.
    pub fn connect(opts: &Options) -> io::Result<Self> {
        Self::connect_with(opts, None)
    }

    /// Connects with a receive buffer of `rcvbuf` bytes.
    pub fn connect_with(opts: &Options, rcvbuf: Option<u32>) -> io::Result<Self> {
        Ok(Self {
            file: connect(opts, rcvbuf)?,
            records: rpc::Records::new(MAX_REPLY),
            pending: VecDeque::new(),
        })
    }

    /// A fresh transaction ID.
    pub fn xid(&mut self) -> u32 {
        next_xid()
    }

    /// Sends all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    /// Sends what the socket takes of `bytes` now (non-blocking sockets).
    pub fn send_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.file.write(bytes)
    }

    /// Reads the next record; `Ok(None)` if the server closed first.
    pub fn read_record(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 64 << 10];
        while self.pending.is_empty() {
            let n = match self.file.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => return Err(e),
            };
            let records = self
                .records
                .feed(&buf[..n])
                .map_err(|e| io::Error::new(ErrorKind::InvalidData, e.to_string()))?;
            self.pending.extend(records);
        }
        Ok(self.pending.pop_front())
    }

    /// Reads the reply to the call `xid`.
    pub fn reply(&mut self, xid: u32) -> Result<Reply, String> {
        let record = self
            .read_record()
            .map_err(|e| format!("no reply: {e}"))?
            .ok_or("the server closed instead of replying")?;
        let reply = rpc::parse_reply(&record).map_err(|e| e.to_string())?;
        if reply.xid() != xid {
            return Err(format!("reply to XID {:#x}, not {xid:#x}", reply.xid()));
        }
        Ok(reply)
    }

    /// A NULL call, framed as one record, and its XID.
    pub fn null_call(&mut self) -> (u32, Vec<u8>) {
        let xid = self.xid();
        (xid, rpc::call(xid, rpc::NFS_PROGRAM, 4, 0, &[]))
    }

    /// Sends a NULL call and checks that it is answered with SUCCESS.
    pub fn null(&mut self) -> Result<String, String> {
        let (xid, call) = self.null_call();
        self.send(&rpc::frame(&call, usize::MAX))
            .map_err(|e| format!("send: {e}"))?;
        expect_success(self.reply(xid)?)
    }

    /// Waits for the server to close the connection, discarding data.
    pub fn expect_close(&mut self, within: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => return Ok(start.elapsed()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(start.elapsed()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(format!("read failed: {e}")),
            }
            if start.elapsed() > within {
                return Err(format!("still open after {within:?}"));
            }
        }
    }

    /// Waits, without reading, until the server shuts the connection down.
    pub fn await_hangup(&self, within: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let mut pfd = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        while let Some(left) = within.checked_sub(start.elapsed()) {
            let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
            // SAFETY: `pfd` is one valid `pollfd`.
            let ret = unsafe { libc::poll(&mut pfd, 1, ms) };
            if ret < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll: {e}"));
            }
            if pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
                return Ok(start.elapsed());
            }
        }
        Err(format!("still open after {within:?}"))
    }

    /// The socket's descriptor.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Checks that a reply is an accepted call with SUCCESS.
pub fn expect_success(reply: Reply) -> Result<String, String> {
    match reply {
        Reply::Accepted {
            stat: rpc::SUCCESS,
            xid,
        } => Ok(format!("accepted, SUCCESS, XID {xid:#x}")),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

/// A NULL call on a connection of its own, as a liveness probe: how long
/// the connect and the call took.
pub fn probe(opts: &Options) -> Result<Duration, String> {
    let start = Instant::now();
    let mut conn = Conn::connect(opts).map_err(|e| format!("connect: {e}"))?;
    conn.null()?;
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn peer_gone_sees_a_close_without_reading() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        assert!(!peer_gone(ours.as_raw_fd()).unwrap());
        (&theirs).write_all(b"unread").unwrap();
        assert!(!peer_gone(ours.as_raw_fd()).unwrap());
        drop(theirs);
        assert!(peer_gone(ours.as_raw_fd()).unwrap());
    }

    #[test]
    fn xids_differ() {
        let (a, b) = (next_xid(), next_xid());
        assert_ne!(a, b);
    }
}
