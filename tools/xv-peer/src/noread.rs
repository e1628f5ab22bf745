// SPDX-License-Identifier: GPL-2.0

//! `no-read=N[,SECS]`: a peer that sends N NULL calls in a pipeline and
//! never reads a reply, for SECS seconds, then closes.
//!
//! The connection grants the server a receive buffer of `BUFFER` bytes,
//! room for a few dozen NULL replies. Since 6.12.117 the peer's own vsock
//! also bounds the socket buffers it queues, one `SKB_TRUESIZE(0)` each
//! against that size, and resets the connection (ENOBUFS) once a few
//! replies wait unread: the figures say which side ended the connection.
//! Waiting for credit on the server is the `stall` scenario's (large
//! replies). Meanwhile a NULL call on a fresh connection every
//! `PROBE_EVERY` must be answered within --timeout: one peer that does not
//! read must not stall nfsd.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use crate::conn::{self, Conn, Options};
use crate::rpc;
use crate::scenario;
use crate::stop;

/// The receive buffer of the connection that never reads.
pub const BUFFER: u32 = 1024;

/// Time between two NULL calls on fresh connections; the first comes
/// after one second.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Bytes per send.
const CHUNK: usize = 64 << 10;

/// Runs the scenario; `Ok` and `Err` both carry the figures.
pub fn run(opts: &Options, calls: usize, secs: u64) -> Result<String, String> {
    let mut conn = Conn::connect_with(opts, Some(BUFFER)).map_err(|e| format!("connect: {e}"))?;
    conn::set_nonblocking(conn.fd(), true).map_err(|e| format!("O_NONBLOCK: {e}"))?;
    let mut stream = Vec::new();
    for _ in 0..calls {
        let xid = conn.xid();
        stream.extend(rpc::frame(
            &rpc::call(xid, rpc::NFS_PROGRAM, 4, 0, &[]),
            usize::MAX,
        ));
    }
    let call_len = stream.len() / calls;

    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut sent = 0;
    let mut last_send = start;
    let mut closed = None;
    let mut probes: Vec<Result<Duration, String>> = Vec::new();
    let mut next_probe = start + Duration::from_secs(1);
    while !stop::requested() && Instant::now() < end {
        let mut progress = false;
        if sent < stream.len() && closed.is_none() {
            let piece = &stream[sent..stream.len().min(sent + CHUNK)];
            match conn.send_some(piece) {
                Ok(n) => {
                    sent += n;
                    last_send = Instant::now();
                    progress = n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if conn::is_close(&e) => closed = Some((start.elapsed(), Some(e))),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    closed = Some((start.elapsed(), Some(e)));
                }
                Err(e) => return Err(format!("send: {e}")),
            }
        }
        if closed.is_none() && conn::peer_gone(conn.fd()).unwrap_or(true) {
            let cause = conn::take_socket_error(conn.fd()).ok().flatten();
            closed = Some((start.elapsed(), cause));
        }
        if Instant::now() >= next_probe {
            probes.push(conn::probe(opts));
            next_probe = Instant::now() + PROBE_EVERY;
        } else if !progress {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let held = start.elapsed();
    drop(conn);

    let mut figures = format!("sent {} of {calls} calls ({sent} bytes)", sent / call_len);
    if sent < stream.len() {
        figures += &format!(
            ", the last {:.1?} after the start",
            last_send.duration_since(start)
        );
    }
    figures += &format!(
        "; read nothing for {held:.1?} with a {BUFFER}-byte receive buffer; {}",
        match closed {
            Some((t, Some(e))) if e.raw_os_error() == Some(libc::ENOBUFS) => format!(
                "this peer's vsock reset the connection after {t:.1?} (ENOBUFS: too many unread packets)"
            ),
            Some((t, _)) => format!("the server closed the connection after {t:.1?}"),
            None => "the server kept the connection open".into(),
        }
    );
    let answered: Vec<Duration> = probes.iter().filter_map(|p| p.clone().ok()).collect();
    figures += &format!(
        "; {} of {} NULL calls on fresh connections answered",
        answered.len(),
        probes.len()
    );
    if let Some(slowest) = answered.iter().max() {
        figures += &format!(", the slowest in {slowest:.1?}");
    }
    if let Some(Err(first)) = probes.iter().find(|p| p.is_err()) {
        figures += &format!(" (first failure: {first})");
    }
    scenario::verdict(
        !probes.is_empty() && answered.len() == probes.len(),
        figures,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::fake;

    #[test]
    fn no_read_against_a_stand_in() {
        // The stand-in gives up a reply after 1 s; its Unix socket buffers
        // a few hundred KiB, less than 20000 replies.
        let server = fake::start(Duration::from_secs(1));
        let opts = server.options(Duration::from_secs(5));
        let figures = run(&opts, 20_000, 4).unwrap();
        // The stand-in stops reading while it waits to send a reply.
        assert!(figures.contains(" of 20000 calls"), "{figures}");
        assert!(figures.contains(", the last "), "{figures}");
        assert!(
            figures.contains("the server closed the connection after"),
            "{figures}"
        );
        assert!(figures.contains("2 of 2 NULL calls"), "{figures}");
        assert_eq!(server.stats.send_timeouts.load(Ordering::Relaxed), 1);
    }
}
