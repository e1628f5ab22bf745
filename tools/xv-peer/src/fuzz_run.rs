// SPDX-License-Identifier: GPL-2.0

//! `fuzz[=RECORDS][,seed=S][,every=K]`: the generator's plans (fuzz.rs)
//! sent to the server over as many connections as they take, `PARALLEL`
//! at a time, until at least RECORDS records have been sent.
//!
//! Each connection sends its plan's stream in the plan's writes, without
//! blocking, reads and counts whatever the server replies, shuts down its
//! sending side after the last byte and waits for the server to close.
//! A server that rejects a record closes the connection early, which is
//! expected only for the plans whose end it must reject (a short record,
//! an oversized header, too many fragments). A NULL call on a fresh
//! connection is made first, after every K connections and at the end;
//! each must be answered.
//!
//! SIGUSR1 stops it early: no more connections are started, those in
//! flight finish, and the scenario fails with the figures so far.
//!
//! The scenario fails on an unanswered probe, a connection the server
//! neither reads nor closes for --timeout, a close before the end of a
//! stream the server had no reason to reject, a malformed reply, or an
//! unexpected socket error; the message names the seed and the plan.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::conn::{self, Options, MAX_REPLY};
use crate::fuzz::{Encoded, Expect, Generator, BODY_KINDS, END_KINDS};
use crate::rpc;
use crate::stop;

/// Connections in flight at once.
pub const PARALLEL: usize = 4;

/// Connections between two liveness probes, by default.
pub const EVERY: usize = 200;

/// Largest single send.
const MAX_SEND: usize = 64 << 10;

/// A seed from the clock, when none is given.
pub fn time_seed() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs() ^ u64::from(now.subsec_nanos()) << 20 ^ u64::from(std::process::id()) << 40
}

/// One connection in flight.
struct Live {
    /// Which plan of the run, from 1.
    index: u64,
    file: File,
    encoded: Encoded,
    /// The kinds of the records before the end.
    body_kinds: Vec<&'static str>,
    end_kind: &'static str,
    /// Next write, and bytes of it already sent.
    write: usize,
    write_sent: usize,
    sent: usize,
    shut: bool,
    replies: rpc::Records,
    reply_count: u64,
    last_progress: Instant,
    closed: bool,
    /// The server closed before the peer shut down sending.
    early: bool,
}

impl Live {
    fn planned_records(&self) -> usize {
        self.encoded.record_ends.len()
    }

    fn records_sent(&self) -> usize {
        self.encoded
            .record_ends
            .iter()
            .filter(|&&end| end <= self.sent)
            .count()
    }

    /// Whether the server may close before the end of the stream.
    fn rejected(&self) -> bool {
        matches!(
            self.encoded.expect,
            Expect::Reject { .. } | Expect::ShortRecord { .. } | Expect::Beyond { .. }
        )
    }

    /// Sends what the socket takes, write by write, and shuts down
    /// sending after the last one.
    fn send(&mut self) -> Result<(), String> {
        while !self.shut && !self.closed {
            let Some(&len) = self.encoded.writes.get(self.write) else {
                // Everything is out: a close from now on is not early.
                self.shut = true;
                self.last_progress = Instant::now();
                match conn::shutdown_write(self.file.as_raw_fd()) {
                    Ok(()) => {}
                    Err(e) if conn::is_close(&e) => self.close(),
                    Err(e) => return Err(format!("shutdown: {e}")),
                }
                break;
            };
            let n = (len - self.write_sent).min(MAX_SEND);
            match self
                .file
                .write(&self.encoded.bytes[self.sent..self.sent + n])
            {
                Ok(n) => {
                    self.sent += n;
                    self.write_sent += n;
                    if self.write_sent == len {
                        self.write += 1;
                        self.write_sent = 0;
                    }
                    self.last_progress = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if conn::is_close(&e) => self.close(),
                Err(e) => return Err(format!("send: {e}")),
            }
        }
        Ok(())
    }

    /// Reads and counts replies until the socket has nothing more.
    fn receive(&mut self, buf: &mut [u8]) -> Result<(), String> {
        while !self.closed {
            match self.file.read(buf) {
                Ok(0) => self.close(),
                Ok(n) => {
                    let records = self
                        .replies
                        .feed(&buf[..n])
                        .map_err(|e| format!("malformed reply stream: {e}"))?;
                    for record in records {
                        rpc::parse_reply(&record).map_err(|e| format!("malformed reply: {e}"))?;
                        self.reply_count += 1;
                    }
                    self.last_progress = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if conn::is_close(&e) => self.close(),
                Err(e) => return Err(format!("receive: {e}")),
            }
        }
        Ok(())
    }

    fn close(&mut self) {
        self.closed = true;
        self.early = !self.shut;
    }
}

/// The run's figures.
#[derive(Default)]
struct Figures {
    records: u64,
    conns: u64,
    closes: u64,
    rejected_early: u64,
    replies: u64,
    bytes: u64,
    probes: u64,
    slowest_probe: Duration,
    bodies: BTreeMap<&'static str, u64>,
    ends: BTreeMap<&'static str, u64>,
}

impl Figures {
    fn finish(&mut self, live: &Live) {
        let sent = live.records_sent();
        self.records += sent as u64;
        for kind in live.body_kinds.iter().take(sent) {
            *self.bodies.entry(kind).or_default() += 1;
        }
        self.conns += 1;
        self.closes += u64::from(live.closed);
        self.rejected_early += u64::from(live.early);
        self.replies += live.reply_count;
        self.bytes += live.sent as u64;
        *self.ends.entry(live.end_kind).or_default() += 1;
    }

    fn probe(&mut self, opts: &Options) -> Result<(), String> {
        let took = conn::probe(opts).map_err(|e| format!("liveness probe: {e}"))?;
        self.probes += 1;
        self.slowest_probe = self.slowest_probe.max(took);
        Ok(())
    }

    fn summary(&self, seed: u64, elapsed: Duration) -> String {
        let list = |kinds: &[&'static str], counts: &BTreeMap<&'static str, u64>| {
            let list: Vec<String> = kinds
                .iter()
                .map(|k| format!("{k} {}", counts.get(k).copied().unwrap_or(0)))
                .collect();
            list.join(", ")
        };
        format!(
            "seed={seed}: {} records in {} connections ({:.1} MiB; records: {}; ends: {}), \
             {} closes observed ({} before the end of the stream), {} replies; {} liveness \
             probes answered, the slowest in {:.1?}; {elapsed:.1?}",
            self.records,
            self.conns,
            self.bytes as f64 / f64::from(1 << 20),
            list(&BODY_KINDS, &self.bodies),
            list(&END_KINDS, &self.ends),
            self.closes,
            self.rejected_early,
            self.replies,
            self.probes,
            self.slowest_probe,
        )
    }
}

/// Runs the scenario; `Ok` and `Err` both carry the figures.
pub fn run(
    opts: &Options,
    records: u64,
    seed: Option<u64>,
    every: usize,
) -> Result<String, String> {
    let seed = seed.unwrap_or_else(time_seed);
    eprintln!("xv-peer: fuzz: seed={seed}, {records} records");
    let start = Instant::now();
    let mut figures = Figures::default();
    let result = fuzz(opts, records, seed, every, &mut figures);
    let summary = figures.summary(seed, start.elapsed());
    match result {
        Ok(()) => Ok(summary),
        Err(e) => Err(format!("{e}; {summary}")),
    }
}

fn fuzz(
    opts: &Options,
    records: u64,
    seed: u64,
    every: usize,
    figures: &mut Figures,
) -> Result<(), String> {
    let mut plans = Generator::new(seed);
    let mut live: Vec<Live> = Vec::with_capacity(PARALLEL);
    let mut planned = 0u64;
    let mut started = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    let mut pollfds = Vec::with_capacity(PARALLEL);
    figures.probe(opts)?;
    loop {
        while live.len() < PARALLEL && figures.records + planned < records && !stop::requested() {
            let plan = plans.next().expect("endless plans");
            started += 1;
            let file =
                conn::connect(opts, None).map_err(|e| format!("plan {started}: connect: {e}"))?;
            conn::set_nonblocking(file.as_raw_fd(), true)
                .map_err(|e| format!("O_NONBLOCK: {e}"))?;
            let encoded = plan.encode();
            planned += encoded.record_ends.len() as u64;
            live.push(Live {
                index: started,
                file,
                encoded,
                body_kinds: plan.records.iter().map(|r| r.body.kind()).collect(),
                end_kind: plan.end.kind(),
                write: 0,
                write_sent: 0,
                sent: 0,
                shut: false,
                replies: rpc::Records::new(MAX_REPLY),
                reply_count: 0,
                last_progress: Instant::now(),
                closed: false,
                early: false,
            });
        }
        if live.is_empty() {
            if figures.records < records {
                figures.probe(opts)?;
                return Err(format!(
                    "stopped by SIGUSR1 after {} of {records} records",
                    figures.records
                ));
            }
            break;
        }
        pollfds.clear();
        pollfds.extend(live.iter().map(|l| libc::pollfd {
            fd: l.file.as_raw_fd(),
            events: libc::POLLIN | if l.shut { 0 } else { libc::POLLOUT },
            revents: 0,
        }));
        // SAFETY: `pollfds` is a valid array of `pollfds.len()` entries.
        let ready = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, 100) };
        if ready < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
            return Err(format!("poll: {}", std::io::Error::last_os_error()));
        }
        let mut i = 0;
        while i < live.len() {
            let l = &mut live[i];
            let revents = pollfds[i].revents;
            let (index, kind) = (l.index, l.end_kind);
            let fail = |e: String| format!("seed={seed} plan {index} ({kind}): {e}");
            if revents & libc::POLLOUT != 0 {
                l.send().map_err(fail)?;
            }
            if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                l.receive(&mut buf).map_err(fail)?;
            }
            let l = &live[i];
            if l.closed {
                if l.early && !l.rejected() {
                    return Err(format!(
                        "seed={seed} plan {} ({}): the server closed the connection after \
                         {} of {} bytes, before the end of a stream it had no reason to reject",
                        l.index,
                        l.end_kind,
                        l.sent,
                        l.encoded.bytes.len()
                    ));
                }
                planned -= l.planned_records() as u64;
                figures.finish(l);
                live.swap_remove(i);
                pollfds.swap_remove(i);
                if figures.conns % every as u64 == 0 {
                    figures.probe(opts)?;
                    // The probe's wait is not the others' silence.
                    for l in &mut live {
                        l.last_progress = Instant::now();
                    }
                }
                continue;
            }
            if l.last_progress.elapsed() > opts.timeout {
                return Err(format!(
                    "seed={seed} plan {} ({}): {}",
                    l.index,
                    l.end_kind,
                    if l.shut {
                        format!(
                            "the server has not closed the connection {:.1?} after the end of \
                             the stream",
                            opts.timeout
                        )
                    } else {
                        format!(
                            "the server took no data for {:.1?}, after {} of {} bytes",
                            opts.timeout,
                            l.sent,
                            l.encoded.bytes.len()
                        )
                    }
                ));
            }
            i += 1;
        }
    }
    figures.probe(opts)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::fake;

    #[test]
    fn fuzz_against_a_stand_in() {
        let server = fake::start(Duration::from_secs(5));
        let opts = server.options(Duration::from_secs(10));
        let figures = run(&opts, 3000, Some(11), 20).unwrap();
        assert!(figures.starts_with("seed=11: "), "{figures}");
        // Every connection ends closed by the server, and the stand-in
        // closed for a malformed record exactly those that end with one.
        let conns: u64 = figures
            .split(" records in ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!(
            figures.contains(&format!("{conns} closes observed")),
            "{figures}"
        );
        let ends: u64 = ["short", "oversized", "fragment-flood"]
            .iter()
            .map(|k| {
                let at = figures.find(&format!("{k} ")).unwrap() + k.len() + 1;
                figures[at..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        assert_eq!(
            server.stats.malformed.load(Ordering::Relaxed) as u64,
            ends,
            "{figures}"
        );
        // Probes: the first, every 20 connections, the last.
        assert!(
            figures.contains(&format!("{} liveness probes", conns / 20 + 2)),
            "{figures}"
        );
        let records: u64 = figures["seed=11: ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(records >= 3000, "{figures}");
    }

    #[test]
    fn same_seed_same_run() {
        let server = fake::start(Duration::from_secs(5));
        let opts = server.options(Duration::from_secs(10));
        let strip_time = |s: String| s.rsplit_once("; ").unwrap().0.to_owned();
        let strip_probe = |s: String| s.split(", the slowest").next().unwrap().to_owned();
        let a = strip_probe(strip_time(run(&opts, 500, Some(3), 200).unwrap()));
        let b = strip_probe(strip_time(run(&opts, 500, Some(3), 200).unwrap()));
        assert_eq!(a, b);
    }
}
