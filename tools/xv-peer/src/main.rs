// SPDX-License-Identifier: GPL-2.0

//! xv-peer: an ONC RPC peer over AF_VSOCK, well-behaved or hostile, for
//! testing the server side of xprtvsock (nfsd listening on vsock).
//!
//! Each scenario opens its own connection to `CID:PORT` and prints one line,
//! `xv-peer: SCENARIO: ok: ...` or `xv-peer: SCENARIO: FAIL: ...`; the exit
//! status is 0 only if every scenario passed.

mod rpc;
mod scenario;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::process::ExitCode;
use std::thread::sleep;
use std::time::{Duration, Instant};

use clap::Parser;
use rpc::Reply;
use scenario::{Named, Scenario};

/// Largest reply the peer accepts.
const MAX_REPLY: u32 = 4 << 20;

/// `SO_VM_SOCKETS_BUFFER_SIZE` (linux/vm_sockets.h), which libc lacks.
const SO_VM_SOCKETS_BUFFER_SIZE: libc::c_int = 0;

/// The receive buffer of the "stall" scenario, which is the credit it
/// grants the server: four NULL replies of 28 bytes with their markers fit,
/// a fifth does not.
const STALL_BUFFER: u64 = 128;

/// An ONC RPC peer over AF_VSOCK, well-behaved or hostile, for testing
/// nfsd's vsock transport.
#[derive(Parser, Debug)]
#[command(name = "xv-peer", version, after_help = scenario::SCENARIOS)]
struct Cli {
    /// CID of the server: 1 is this kernel (loopback), 2 the host
    #[arg(long, default_value_t = 1)]
    cid: u32,
    /// vsock port of the server
    #[arg(long, default_value_t = 2049)]
    port: u32,
    /// Seconds to wait for a reply, a close or room to send
    #[arg(long, value_name = "SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Scenarios to run in turn (see below)
    #[arg(value_name = "SCENARIO", required = true)]
    scenarios: Vec<Named>,
}

struct Options {
    cid: u32,
    port: u32,
    timeout: Duration,
}

/// A connected AF_VSOCK stream socket.
struct Conn {
    file: File,
    records: rpc::Records,
    /// Records received but not read yet.
    pending: VecDeque<Vec<u8>>,
    next_xid: u32,
}

/// Connects to the server; `buffer`, if given, is the receive buffer the
/// socket grants the server as credit.
fn vsock_connect(opts: &Options, buffer: Option<u64>) -> io::Result<Conn> {
    // SAFETY: plain socket(2) call.
    let fd: RawFd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket that nothing else owns; `File` closes it.
    let file = unsafe { File::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid `sockaddr_vm`.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_cid = opts.cid;
    addr.svm_port = opts.port;
    let timeout = libc::timeval {
        tv_sec: opts.timeout.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: `timeout` is a valid `timeval` of the length passed.
        let ret = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                std::ptr::from_ref(&timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if let Some(size) = buffer {
        // SAFETY: `size` is a valid `u64` of the length passed.
        let ret = unsafe {
            libc::setsockopt(
                fd,
                libc::AF_VSOCK,
                SO_VM_SOCKETS_BUFFER_SIZE,
                std::ptr::from_ref(&size).cast(),
                std::mem::size_of::<u64>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: `addr` is a valid `sockaddr_vm` of the length passed.
    let ret = unsafe {
        libc::connect(
            fd,
            std::ptr::from_ref(&addr).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Conn {
        file,
        records: rpc::Records::new(MAX_REPLY),
        pending: VecDeque::new(),
        next_xid: std::process::id().wrapping_mul(0x1000_0001),
    })
}

impl Conn {
    fn xid(&mut self) -> u32 {
        self.next_xid = self.next_xid.wrapping_add(1);
        self.next_xid
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    /// Reads the next record; `Ok(None)` if the server closed first.
    fn read_record(&mut self) -> io::Result<Option<Vec<u8>>> {
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
    fn reply(&mut self, xid: u32) -> Result<Reply, String> {
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

    /// Waits for the server to close the connection, discarding data.
    fn expect_close(&mut self, within: Duration) -> Result<Duration, String> {
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
}

impl Conn {
    /// Waits, without reading, until the server shuts the connection down.
    fn await_hangup(&self, within: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
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
}

fn expect_success(reply: Reply) -> Result<String, String> {
    match reply {
        Reply::Accepted {
            stat: rpc::SUCCESS,
            xid,
        } => Ok(format!("accepted, SUCCESS, XID {xid:#x}")),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

fn null_call(conn: &mut Conn) -> (u32, Vec<u8>) {
    let xid = conn.xid();
    (xid, rpc::call(xid, rpc::NFS_PROGRAM, 4, 0, &[]))
}

/// The "stall=SECS" scenario on a connection with [`STALL_BUFFER`] of
/// receive buffer: four replies fill it up to 16 bytes, the fifth waits
/// for credit that never comes; the server must take none of the calls
/// that follow meanwhile, and close within SECS seconds.
fn stall_then_more(conn: &mut Conn, secs: u64) -> Result<String, String> {
    let mut nulls = |n: usize| -> Result<(), String> {
        for _ in 0..n {
            let (_, call) = null_call(conn);
            conn.send(&rpc::frame(&call, usize::MAX))
                .map_err(|e| format!("send: {e}"))?;
        }
        Ok(())
    };
    nulls(4)?;
    sleep(Duration::from_secs(1));
    nulls(1)?;
    sleep(Duration::from_secs(1));
    nulls(16)?;
    conn.await_hangup(Duration::from_secs(secs))
        .map(|t| format!("closed {t:?} after the last call, nothing read"))
}

/// The "hold=SECS" scenario: reads a file and leaves the reply, 64 KiB of
/// page data that a server with zero-copy sends by reference, in the
/// socket's receive queue for `secs` seconds.
fn hold_reply(conn: &mut Conn, secs: u64) -> Result<String, String> {
    let xid = conn.xid();
    let args = rpc::read_args("xv-peer-data", 64 << 10);
    let call = rpc::call(xid, rpc::NFS_PROGRAM, 4, rpc::NFSPROC4_COMPOUND, &args);
    conn.send(&rpc::frame(&call, usize::MAX))
        .map_err(|e| format!("send: {e}"))?;
    // Marker, then the reply header up to the COMPOUND status: peeked at,
    // so that the reply stays queued.
    let mut head = [0u8; 4 + 7 * 4];
    // SAFETY: `head` is writable for its length.
    let n = unsafe {
        libc::recv(
            conn.file.as_raw_fd(),
            head.as_mut_ptr().cast(),
            head.len(),
            libc::MSG_PEEK | libc::MSG_WAITALL,
        )
    };
    if n != head.len() as isize {
        return Err(format!("peek: {}", io::Error::last_os_error()));
    }
    let reply = rpc::parse_reply(&head[4..]).map_err(|e| e.to_string())?;
    expect_success(reply)?;
    let status = u32::from_be_bytes([head[28], head[29], head[30], head[31]]);
    if reply.xid() != xid || status != 0 {
        return Err(format!(
            "READ answered {reply:?} with NFSv4 status {status}"
        ));
    }
    sleep(Duration::from_secs(secs));
    Ok(format!(
        "left a READ reply unread for {secs} s, then closed"
    ))
}

fn scenario(opts: &Options, scenario: Scenario) -> Result<String, String> {
    let buffer = matches!(scenario, Scenario::Stall { .. }).then_some(STALL_BUFFER);
    let mut conn = vsock_connect(opts, buffer).map_err(|e| format!("connect: {e}"))?;
    let io = |e: io::Error| format!("send: {e}");
    match scenario {
        Scenario::Stall { secs } => stall_then_more(&mut conn, secs),
        Scenario::HoldReply { secs } => hold_reply(&mut conn, secs),
        Scenario::Null => {
            let (xid, call) = null_call(&mut conn);
            conn.send(&rpc::frame(&call, usize::MAX)).map_err(io)?;
            expect_success(conn.reply(xid)?)
        }
        Scenario::NullFrag => {
            let (xid, call) = null_call(&mut conn);
            for byte in rpc::frame(&call, 4) {
                conn.send(&[byte]).map_err(io)?;
                sleep(Duration::from_millis(2));
            }
            expect_success(conn.reply(xid)?)
        }
        Scenario::Big => {
            let xid = conn.xid();
            // Within nfsd's smallest limit (a 256 KiB payload), across pages.
            let call = rpc::call(xid, rpc::NFS_PROGRAM, 4, 0, &vec![0u8; 192 << 10]);
            for piece in rpc::frame(&call, usize::MAX).chunks(16 << 10) {
                conn.send(piece).map_err(io)?;
                sleep(Duration::from_millis(20));
            }
            let reply = conn.reply(xid)?;
            Ok(format!("reply {reply:?} to a {} byte call", call.len()))
        }
        Scenario::ReplyDir => {
            let bogus = [0xdead_beef_u32, rpc::REPLY, rpc::MSG_ACCEPTED, 0, 0, 0];
            let bogus: Vec<u8> = bogus.iter().flat_map(|w| w.to_be_bytes()).collect();
            conn.send(&rpc::frame(&bogus, usize::MAX)).map_err(io)?;
            let (xid, call) = null_call(&mut conn);
            conn.send(&rpc::frame(&call, usize::MAX)).map_err(io)?;
            expect_success(conn.reply(xid)?).map(|s| format!("reply dropped; then {s}"))
        }
        Scenario::Oversized => {
            conn.send(&rpc::marker(0x7fff_ffff, true)).map_err(io)?;
            conn.expect_close(opts.timeout)
                .map(|t| format!("closed after {t:?}"))
        }
        Scenario::ZeroFlood => {
            let flood: Vec<u8> = (0..5000).flat_map(|_| rpc::marker(0, false)).collect();
            // The server may close before it has read everything.
            if let Err(e) = conn.send(&flood) {
                if e.kind() != ErrorKind::BrokenPipe && e.kind() != ErrorKind::ConnectionReset {
                    return Err(format!("send: {e}"));
                }
            }
            conn.expect_close(opts.timeout)
                .map(|t| format!("closed after {t:?}"))
        }
        Scenario::Garbage => {
            let noise: Vec<u8> = (0..256u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect();
            // A CALL-direction header, so that the server parses the rest.
            let mut first = [0x4a4b_4c4d_u32, rpc::CALL]
                .iter()
                .flat_map(|w| w.to_be_bytes())
                .collect::<Vec<u8>>();
            first.extend_from_slice(&noise);
            conn.send(&rpc::frame(&first, usize::MAX)).map_err(io)?;
            // Credentials of an unknown flavour and an absurd length.
            let xid = conn.xid();
            let mut bad = rpc::call(xid, rpc::NFS_PROGRAM, 4, 0, &[]);
            bad[24..32].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x7f, 0xff, 0xff, 0xff]);
            conn.send(&rpc::frame(&bad, usize::MAX)).map_err(io)?;
            // Whatever the server answers, it must answer or close in time.
            let mut answers = Vec::new();
            for _ in 0..2 {
                match conn.read_record() {
                    Ok(Some(record)) => answers.push(rpc::parse_reply(&record)),
                    Ok(None) => return Ok(format!("server answered {answers:?}, then closed")),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        return Ok(format!("server answered {answers:?}, then stayed silent"));
                    }
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
            Ok(format!("server answered {answers:?}"))
        }
        Scenario::Half { secs } => {
            let (_, call) = null_call(&mut conn);
            let framed = rpc::frame(&call, usize::MAX);
            conn.send(&framed[..framed.len() / 2]).map_err(io)?;
            sleep(Duration::from_secs(secs));
            Ok(format!(
                "sent {} of {} bytes, then closed",
                framed.len() / 2,
                framed.len()
            ))
        }
    }
}

fn main() -> ExitCode {
    // Usage errors exit with status 2, as before clap.
    let cli = Cli::parse();
    let opts = Options {
        cid: cli.cid,
        port: cli.port,
        timeout: Duration::from_secs(cli.timeout),
    };
    let mut failed = false;
    for name in &cli.scenarios {
        match scenario(&opts, name.scenario) {
            Ok(what) => println!("xv-peer: {name}: ok: {what}"),
            Err(why) => {
                println!("xv-peer: {name}: FAIL: {why}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The command lines of scripts/vm-tests/3*.sh and
    /// scripts/guest/pair-nfs-guest.
    #[test]
    fn callers_command_lines_parse() {
        let cli = Cli::try_parse_from(
            "xv-peer --cid 2 --port 2049 null null-frag big reply-dir oversized zero-flood \
             garbage half=5"
                .split_whitespace(),
        )
        .unwrap();
        assert_eq!((cli.cid, cli.port, cli.timeout), (2, 2049, 20));
        let names: Vec<String> = cli.scenarios.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "null",
                "null-frag",
                "big",
                "reply-dir",
                "oversized",
                "zero-flood",
                "garbage",
                "half=5"
            ]
        );
        assert_eq!(cli.scenarios[7].scenario, Scenario::Half { secs: 5 });
        let cli = Cli::try_parse_from(["xv-peer", "--timeout", "30", "null"]).unwrap();
        assert_eq!((cli.cid, cli.port, cli.timeout), (1, 2049, 30));
        let cli = Cli::try_parse_from(["xv-peer", "half=8"]).unwrap();
        assert_eq!(cli.scenarios[0].scenario, Scenario::Half { secs: 8 });
        let cli = Cli::try_parse_from(["xv-peer", "--timeout", "60", "stall=45"]).unwrap();
        assert_eq!(cli.scenarios[0].scenario, Scenario::Stall { secs: 45 });
        let cli = Cli::try_parse_from(["xv-peer", "--timeout", "30", "hold=10"]).unwrap();
        assert_eq!(cli.scenarios[0].scenario, Scenario::HoldReply { secs: 10 });
    }

    #[test]
    fn usage_errors() {
        for args in [
            &["xv-peer"][..],
            &["xv-peer", "bogus"],
            &["xv-peer", "--timeout", "0", "null"],
            &["xv-peer", "--cid", "x", "null"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
