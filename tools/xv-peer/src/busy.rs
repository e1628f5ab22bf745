// SPDX-License-Identifier: GPL-2.0

//! `busy=N[,SECS]`: N connections at once, each sending NULL calls in
//! batches of `DEPTH` and reading every reply, for SECS seconds or until
//! SIGUSR1: a peer that keeps many connections busy rather than idle.
//!
//! A server may refuse some of them (xprtvsock's per-CID limit closes a
//! connection at accept) or close them later (SUNRPC's limit on
//! connections that never presented a file handle); the figures say how
//! many of each. The scenario fails if no connection was served, or if a
//! reply was wrong: not SUCCESS, or to a call not in the batch.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::thread;
use std::time::{Duration, Instant};

use crate::conn::{self, expect_success, Conn, Options};
use crate::rpc;
use crate::scenario;
use crate::stop;

/// Calls in flight per connection.
pub const DEPTH: usize = 8;

/// How one connection ended.
enum Outcome {
    /// Closed by the server before its first call was answered.
    Refused,
    /// Served `calls` calls; `closed` if the server closed it meanwhile.
    Served { calls: u64, closed: bool },
    /// A wrong reply or a local error.
    Failed(String),
}

/// One batch: `DEPTH` NULL calls in one write, then their replies, in any
/// order. `Ok(false)` if the server closed the connection.
fn batch(conn: &mut Conn) -> Result<bool, String> {
    let mut stream = Vec::new();
    let mut waiting = HashSet::new();
    for _ in 0..DEPTH {
        let (xid, call) = conn.null_call();
        stream.extend(rpc::frame(&call, usize::MAX));
        waiting.insert(xid);
    }
    if let Err(e) = conn.send(&stream) {
        return if conn::is_close(&e) {
            Ok(false)
        } else {
            Err(format!("send: {e}"))
        };
    }
    while !waiting.is_empty() {
        let record = match conn.read_record() {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(false),
            Err(e) if conn::is_close(&e) => return Ok(false),
            Err(e) => return Err(format!("read: {e}")),
        };
        let reply = rpc::parse_reply(&record).map_err(|e| e.to_string())?;
        if !waiting.remove(&reply.xid()) {
            return Err(format!(
                "reply to XID {:#x}, not a call of the batch",
                reply.xid()
            ));
        }
        expect_success(reply)?;
    }
    Ok(true)
}

fn one_connection(opts: &Options, end: Instant) -> Outcome {
    let mut conn = match Conn::connect(opts) {
        Ok(conn) => conn,
        // A listener whose backlog is full refuses or resets the connect.
        Err(e) if conn::is_close(&e) || e.kind() == ErrorKind::ConnectionRefused => {
            return Outcome::Refused
        }
        Err(e) => return Outcome::Failed(format!("connect: {e}")),
    };
    let mut calls = 0;
    while !stop::requested() && Instant::now() < end {
        match batch(&mut conn) {
            Ok(true) => calls += DEPTH as u64,
            Ok(false) if calls == 0 => return Outcome::Refused,
            Ok(false) => {
                return Outcome::Served {
                    calls,
                    closed: true,
                }
            }
            Err(e) => return Outcome::Failed(e),
        }
    }
    Outcome::Served {
        calls,
        closed: false,
    }
}

/// Runs the scenario; `Ok` and `Err` both carry the figures.
pub fn run(opts: &Options, conns: usize, secs: u64) -> Result<String, String> {
    crate::hold::raise_nofile(conns as u64 + 64)
        .map_err(|e| format!("cannot raise RLIMIT_NOFILE: {e}"))?;
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let outcomes: Vec<Outcome> = thread::scope(|scope| {
        let threads: Vec<_> = (0..conns)
            .map(|_| scope.spawn(|| one_connection(opts, end)))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Outcome::Failed("thread panicked".into()))
            })
            .collect()
    });
    let took = start.elapsed();
    let (mut served, mut refused, mut closed, mut calls) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Refused => refused += 1,
            Outcome::Served {
                calls: n,
                closed: c,
            } => {
                served += 1;
                calls += n;
                closed += usize::from(c);
            }
            Outcome::Failed(why) => failures.push(why),
        }
    }
    let rate = calls as f64 / took.as_secs_f64().max(1e-3);
    let mut figures = format!(
        "{conns} connections: {served} served ({closed} of them closed by the server \
         meanwhile), {refused} refused; {calls} NULL calls answered in {took:.1?} \
         ({rate:.0}/s, {DEPTH} in flight per connection); {} failed",
        failures.len()
    );
    if let Some(first) = failures.first() {
        figures += &format!(" (first: {first})");
    }
    scenario::verdict(failures.is_empty() && served > 0, figures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake;

    #[test]
    fn busy_against_a_stand_in() {
        let server = fake::start(Duration::from_secs(2));
        let opts = server.options(Duration::from_secs(5));
        let figures = run(&opts, 16, 1).unwrap();
        assert!(
            figures.starts_with(
                "16 connections: 16 served (0 of them closed by the server meanwhile), 0 refused;"
            ),
            "{figures}"
        );
        assert!(figures.ends_with("0 failed"), "{figures}");
        let replies = server
            .stats
            .replies
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(replies >= 16 * DEPTH as u64, "{replies} replies");
    }
}
