// SPDX-License-Identifier: GPL-2.0

//! A stand-in for nfsd on a Unix socket, for the host tests: it decodes
//! record marking with the limits nfsd's vsock transport applies (a 1 MiB
//! payload and 1024 fragments), closes the connection on a decoder error
//! or a record shorter than 8 bytes, drops REPLY-direction records,
//! answers NULL calls to NFSv4 with SUCCESS and any other call with
//! GARBAGE_ARGS, and gives up a connection whose reply cannot be sent
//! within its send timeout, as xprtvsock does after 30 s.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use xprtvsock_core::record::{Limits, Progress, RecordDecoder, Want};

use crate::conn::{Options, Target};
use crate::rpc;

/// nfsd's `sv_max_mesg` with 1 MiB READ and WRITE: 1 MiB and a page.
pub const MAX_RECORD: u32 = (1 << 20) + 4096;

/// What the stand-in saw.
#[derive(Default)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: AtomicUsize,
    /// Records received whole.
    pub records: AtomicU64,
    /// Replies sent.
    pub replies: AtomicU64,
    /// Connections closed for a malformed record.
    pub malformed: AtomicUsize,
    /// Connections closed because a reply could not be sent in time.
    pub send_timeouts: AtomicUsize,
}

/// A running stand-in server.
pub struct Server {
    /// Its socket.
    pub path: PathBuf,
    /// What it saw so far.
    pub stats: Arc<Stats>,
}

impl Server {
    /// Options that reach this server, with `timeout` for the peer.
    pub fn options(&self, timeout: Duration) -> Options {
        Options {
            target: Target::Unix(self.path.clone()),
            timeout,
        }
    }
}

/// Starts a stand-in whose replies wait at most `send_timeout` for room.
pub fn start(send_timeout: Duration) -> Server {
    static SERIAL: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "xv-peer-test-{}-{}.sock",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind the stand-in's socket");
    let stats = Arc::new(Stats::default());
    let shared = Arc::clone(&stats);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            shared.accepted.fetch_add(1, Ordering::Relaxed);
            let stats = Arc::clone(&shared);
            thread::spawn(move || serve(stream, &stats, send_timeout));
        }
    });
    Server { path, stats }
}

fn reply_to(call: &[u8]) -> Vec<u8> {
    let word = |i: usize| u32::from_be_bytes(call[4 * i..4 * i + 4].try_into().unwrap());
    let null = call.len() >= 24 && word(2) == 2 && word(3) == rpc::NFS_PROGRAM && word(4) == 4;
    let stat = if null && word(5) == 0 {
        rpc::SUCCESS
    } else {
        4
    };
    let words = [
        word(0),
        rpc::REPLY,
        rpc::MSG_ACCEPTED,
        rpc::AUTH_NONE,
        0,
        stat,
    ];
    let msg: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    rpc::frame(&msg, usize::MAX)
}

fn serve(mut stream: UnixStream, stats: &Stats, send_timeout: Duration) {
    stream.set_write_timeout(Some(send_timeout)).unwrap();
    let mut decoder = RecordDecoder::new(Limits::with_max_record_len(MAX_RECORD));
    let mut record = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let mut data = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => &buf[..n],
        };
        while !data.is_empty() {
            let n = match decoder.want() {
                Want::Marker(marker) => {
                    let n = marker.len().min(data.len());
                    marker[..n].copy_from_slice(&data[..n]);
                    n
                }
                Want::Payload { len, .. } => {
                    let n = (len as usize).min(data.len());
                    record.extend_from_slice(&data[..n]);
                    n
                }
            };
            data = &data[n..];
            match decoder.consumed(n) {
                Err(_) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(Progress::Incomplete) => {}
                Ok(Progress::Record { .. }) => {
                    stats.records.fetch_add(1, Ordering::Relaxed);
                    let call = std::mem::take(&mut record);
                    if call.len() < 8 {
                        stats.malformed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    if call[4..8] != rpc::CALL.to_be_bytes() {
                        continue;
                    }
                    match stream.write_all(&reply_to(&call)) {
                        Ok(()) => {
                            stats.replies.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                                stats.send_timeouts.fetch_add(1, Ordering::Relaxed);
                            }
                            return;
                        }
                    }
                }
            }
        }
    }
}
