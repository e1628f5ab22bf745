// SPDX-License-Identifier: GPL-2.0

//! The control socket: one command a line, one answer line each.
//!
//! * `reset CID`: do to that guest (CID or alias) what a live migration
//!   does. Its peers first get a RST for each connection they have with it,
//!   as the source host's vhost-vsock resets its sockets when the guest's
//!   device is released there; then the guest gets
//!   VIRTIO_VSOCK_EVENT_TRANSPORT_RESET and drops all its connections.
//!   Answers `ok` once the guest has the event. The errors for an unknown or
//!   unconnected guest, or one without an event queue, change nothing.
//! * `stats`: one line of counters, per guest and per host stream.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use log::{debug, warn};

use crate::router::Router;

/// How long `reset` waits for the guest to take the event.
pub const RESET_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest command line accepted; longer ones end the connection.
const MAX_LINE: u64 = 4096;

pub fn handle_command(router: &Router, line: &str, timeout: Duration) -> String {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("stats"), None, _) => router.stats_line(),
        (Some("reset"), Some(cid), None) => {
            let Ok(cid) = cid.parse::<u64>() else {
                return format!("error: bad CID {cid:?}");
            };
            let Some(index) = router.find(cid) else {
                return format!("error: no guest {cid}");
            };
            let port = router.port(index);
            if !port.is_connected() {
                return format!("error: guest {cid} is not connected");
            }
            if !port.has_event_queue() {
                return format!(
                    "error: guest {cid}'s front-end did not hand over the event queue \
                     (QEMU keeps it)"
                );
            }
            router.reset_orphans(index);
            if port.request_reset(timeout) {
                "ok".to_string()
            } else {
                format!("error: guest {cid} took no event yet; the reset stays queued")
            }
        }
        _ => format!(
            "error: unknown command {:?} (commands: reset CID, stats)",
            line.trim()
        ),
    }
}

fn serve_connection(router: &Router, stream: UnixStream) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && n as u64 == MAX_LINE {
            writeln!(out, "error: line too long")?;
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let answer = handle_command(router, &text, RESET_TIMEOUT);
        writeln!(out, "{answer}")?;
    }
}

/// Accept control connections forever, one thread each (a `reset` may wait).
pub fn serve_control(router: Arc<Router>, listener: UnixListener) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let router = router.clone();
                let spawned = thread::Builder::new()
                    .name("xv-vsockd-control".to_string())
                    .spawn(move || {
                        if let Err(e) = serve_connection(&router, stream) {
                            debug!("control connection: {e}");
                        }
                    });
                if let Err(e) = spawned {
                    warn!("control: cannot spawn a thread: {e}");
                }
            }
            Err(e) => warn!("control: accept: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Header, Packet, OP_REQUEST};
    use crate::router::{GuestConfig, Route};
    use std::sync::atomic::Ordering;

    fn router() -> Router {
        Router::new(
            &[
                GuestConfig {
                    cid: 3,
                    alias: None,
                    host_stream: false,
                },
                GuestConfig {
                    cid: 4,
                    alias: Some(2),
                    host_stream: false,
                },
            ],
            1 << 20,
        )
        .unwrap()
    }

    #[test]
    fn commands_and_errors() {
        let r = router();
        let t = Duration::from_millis(10);
        assert!(handle_command(&r, "stats\n", t).starts_with("cid=3 "));
        assert_eq!(handle_command(&r, "reset 9", t), "error: no guest 9");
        assert_eq!(handle_command(&r, "reset x", t), "error: bad CID \"x\"");
        assert_eq!(
            handle_command(&r, "reset 3", t),
            "error: guest 3 is not connected"
        );
        assert!(handle_command(&r, "frobnicate", t).starts_with("error: unknown command"));
        assert!(handle_command(&r, "reset 3 4", t).starts_with("error: unknown command"));
        r.connect(1);
        assert!(handle_command(&r, "reset 2", t).contains("did not hand over the event queue"));
        assert_eq!(r.port(1).pending_resets(), 0);
        // An event queue but no event buffer posted: queued, not delivered.
        r.port(1).set_event_queue(true);
        assert!(handle_command(&r, "reset 2", t).contains("stays queued"));
        assert_eq!(r.port(1).pending_resets(), 1);
    }

    #[test]
    fn reset_resets_the_guests_peers_first() {
        let r = router();
        let t = Duration::from_millis(10);
        r.connect(0);
        r.connect(1);
        let req = Header {
            op: OP_REQUEST,
            ..Header::rst((3, 1234), (2, 2049))
        };
        assert_eq!(r.forward(0, Packet::new(req, Vec::new())), Route::Queued(1));
        assert_eq!(r.tracked_counts(), [1, 1]);
        // An error changes nothing.
        assert!(handle_command(&r, "reset 2", t).contains("did not hand over the event queue"));
        assert_eq!(
            (r.tracked_counts(), r.port(0).queued_packets()),
            (vec![1, 1], 0)
        );
        r.port(1).set_event_queue(true);
        assert!(handle_command(&r, "reset 2", t).contains("stays queued"));
        assert_eq!(r.tracked_counts(), [0, 0]);
        let mut got = Vec::new();
        r.port(0).drain(|p| {
            got.push(p.hdr);
            Some(true)
        });
        assert_eq!(got, [Header::rst((2, 2049), (3, 1234))]);
        assert_eq!(r.port(0).stats.orphans_reset.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn socket_round_trip() {
        let dir = std::env::temp_dir().join(format!("xv-vsockd-ctl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let r = Arc::new(router());
        thread::spawn(move || serve_control(r, listener));
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"stats\n\nbogus\n").unwrap();
        let mut reader = BufReader::new(s);
        let mut a = String::new();
        reader.read_line(&mut a).unwrap();
        assert!(a.starts_with("cid=3 alias=- up=0"), "{a}");
        a.clear();
        reader.read_line(&mut a).unwrap();
        assert!(a.starts_with("error: unknown command \"bogus\""), "{a}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
