// SPDX-License-Identifier: GPL-2.0

//! xv-peer: an ONC RPC peer over AF_VSOCK, well-behaved or hostile, for
//! testing the server side of xprtvsock (nfsd listening on vsock).
//!
//! Each scenario opens its own connections to `CID:PORT` and prints one
//! line, `xv-peer: SCENARIO: ok: ...` or `xv-peer: SCENARIO: FAIL: ...`,
//! with its figures; the exit status is 0 only if every scenario passed.
//! Long scenarios print their progress on standard error.

mod busy;
mod conn;
#[cfg(test)]
mod fake;
mod fuzz;
mod fuzz_run;
mod hold;
mod noread;
mod rpc;
mod scenario;
mod stop;

use std::io::{self, ErrorKind};
use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

use clap::Parser;
use conn::{expect_success, Conn, Options, Target};
use scenario::{Named, Scenario};

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

/// The "stall=SECS" scenario, on a connection with vsock's default receive
/// buffer (256 KiB), which it never reads: six READs of 64 KiB of
/// `xv-peer-data` overrun that credit and leave a reply waiting, a seventh
/// READ and then 16 NULL calls follow; the server must take none of them
/// meanwhile, and close within SECS seconds.
///
/// Replies this large are needed: a receiver's vsock (6.12.117 and later)
/// also bounds the socket buffers queued, at one `SKB_TRUESIZE(0)` each
/// against the same buffer size, and resets a connection of tiny replies
/// long before their payload runs out of credit.
fn stall_then_more(conn: &mut Conn, secs: u64) -> Result<String, String> {
    fn send(conn: &mut Conn, call: &[u8]) -> Result<(), String> {
        conn.send(&rpc::frame(call, usize::MAX))
            .map_err(|e| format!("send: {e}"))
    }
    fn read(conn: &mut Conn) -> Result<(), String> {
        let xid = conn.xid();
        let args = rpc::read_args("xv-peer-data", 64 << 10);
        send(
            conn,
            &rpc::call(xid, rpc::NFS_PROGRAM, 4, rpc::NFSPROC4_COMPOUND, &args),
        )
    }
    for _ in 0..6 {
        read(conn)?;
    }
    sleep(Duration::from_secs(1));
    read(conn)?;
    sleep(Duration::from_secs(1));
    for _ in 0..16 {
        let (_, call) = conn.null_call();
        send(conn, &call)?;
    }
    conn.await_hangup(Duration::from_secs(secs))
        .map(|t| format!("closed {t:?} after the last call, nothing read"))
}

/// The "read-unread=SECS" scenario: reads a file and leaves the reply,
/// 64 KiB of page data that a server with zero-copy sends by reference, in
/// the socket's receive queue for `secs` seconds.
fn read_unread(conn: &mut Conn, secs: u64) -> Result<String, String> {
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
            conn.fd(),
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

/// Runs one scenario: `Ok` with what happened, or `Err` with why it failed.
fn scenario_result(opts: &Options, scenario: Scenario) -> Result<String, String> {
    match scenario {
        Scenario::Hold { conns, secs } => hold::run(opts, conns, secs),
        Scenario::NoRead { calls, secs } => noread::run(opts, calls, secs),
        Scenario::Busy { conns, secs } => busy::run(opts, conns, secs),
        Scenario::Fuzz {
            records,
            seed,
            every,
        } => fuzz_run::run(opts, records, seed, every),
        _ => on_one_connection(opts, scenario),
    }
}

/// The scenarios that need a connection of their own.
fn on_one_connection(opts: &Options, scenario: Scenario) -> Result<String, String> {
    let mut conn = Conn::connect(opts).map_err(|e| format!("connect: {e}"))?;
    let io = |e: io::Error| format!("send: {e}");
    match scenario {
        Scenario::Stall { secs } => stall_then_more(&mut conn, secs),
        Scenario::ReadUnread { secs } => read_unread(&mut conn, secs),
        Scenario::Null => conn.null(),
        Scenario::NullFrag => {
            let (xid, call) = conn.null_call();
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
            let (xid, call) = conn.null_call();
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
        Scenario::Hold { .. }
        | Scenario::NoRead { .. }
        | Scenario::Busy { .. }
        | Scenario::Fuzz { .. } => {
            unreachable!("not on one connection")
        }
        Scenario::Half { secs } => {
            let (_, call) = conn.null_call();
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
    stop::install();
    let opts = Options {
        target: Target::Vsock {
            cid: cli.cid,
            port: cli.port,
        },
        timeout: Duration::from_secs(cli.timeout),
    };
    let mut failed = false;
    for name in &cli.scenarios {
        match scenario_result(&opts, name.scenario) {
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

    /// The command lines of scripts/vm-tests and scripts/guest/pair-cases.
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
        let cli = Cli::try_parse_from(["xv-peer", "--timeout", "30", "read-unread=10"]).unwrap();
        assert_eq!(cli.scenarios[0].scenario, Scenario::ReadUnread { secs: 10 });
    }

    /// The scenarios against the stand-in server of the host tests.
    #[test]
    fn scenarios_against_a_stand_in() {
        let server = fake::start(Duration::from_secs(2));
        let opts = server.options(Duration::from_secs(5));
        for scenario in [
            Scenario::Null,
            Scenario::NullFrag,
            Scenario::Big,
            Scenario::ReplyDir,
            Scenario::Oversized,
            Scenario::ZeroFlood,
            Scenario::Garbage,
            Scenario::Half { secs: 0 },
        ] {
            let result = scenario_result(&opts, scenario);
            assert!(result.is_ok(), "{scenario:?}: {result:?}");
        }
        // oversized and zero-flood.
        let malformed = server
            .stats
            .malformed
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(malformed, 2);
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
