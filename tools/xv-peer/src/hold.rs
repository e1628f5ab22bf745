// SPDX-License-Identifier: GPL-2.0

//! `hold=N[,SECS]`: N connections, each with one NULL call answered, then
//! all of them idle for SECS seconds (or until SIGUSR1), then closed.
//!
//! nfsd keeps at most `sv_maxconn` (64 unless set) connections that have
//! not presented a file handle and closes the oldest beyond that, so most
//! of a thousand end closed by the server; the figures say how many. The
//! scenario fails if a connection could not be opened or its NULL call
//! was not answered, or if a NULL call on a fresh connection is not
//! answered at the end of the hold.

use std::io;
use std::time::{Duration, Instant};

use crate::conn::{self, Conn, Options};
use crate::scenario;
use crate::stop;

/// Descriptors kept free beside the held connections.
const SPARE_FDS: u64 = 64;

/// Errors after which no more connections are opened: a server that
/// stopped answering would otherwise cost a timeout per connection.
const MAX_ERRORS: usize = 10;

/// Raises the soft `RLIMIT_NOFILE` to `need` descriptors, and the hard one
/// too if allowed (root); returns the soft limit in effect.
pub fn raise_nofile(need: u64) -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur >= need {
        return Ok(limit.rlim_cur);
    }
    for wanted in [
        libc::rlimit {
            rlim_cur: need,
            rlim_max: limit.rlim_max.max(need),
        },
        libc::rlimit {
            rlim_cur: limit.rlim_max.min(need),
            rlim_max: limit.rlim_max,
        },
    ] {
        // SAFETY: `wanted` is a valid `rlimit`.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
            return Ok(wanted.rlim_cur);
        }
    }
    Err(io::Error::last_os_error())
}

/// Runs the scenario; `Ok` and `Err` both carry the figures.
pub fn run(opts: &Options, conns: usize, secs: u64) -> Result<String, String> {
    let limit = raise_nofile(conns as u64 + SPARE_FDS)
        .map_err(|e| format!("cannot raise RLIMIT_NOFILE: {e}"))?;
    let start = Instant::now();
    let mut held = Vec::with_capacity(conns);
    let mut errors = 0;
    let mut first_errors = Vec::new();
    for i in 1..=conns {
        if stop::requested() || errors >= MAX_ERRORS {
            break;
        }
        let opened = Conn::connect(opts)
            .map_err(|e| format!("connect: {e}"))
            .and_then(|mut c| c.null().map(|_| c));
        match opened {
            Ok(c) => held.push(c),
            Err(e) => {
                errors += 1;
                if first_errors.len() < 3 {
                    first_errors.push(format!("connection {i}: {e}"));
                }
            }
        }
    }
    let opened_in = start.elapsed();
    eprintln!(
        "xv-peer: hold: {} connections open in {opened_in:.1?}; holding them {secs} s \
         (SIGUSR1 ends the hold)",
        held.len()
    );
    let held_for = stop::pause(Duration::from_secs(secs));
    let closed = held
        .iter()
        .filter(|c| conn::peer_gone(c.fd()).unwrap_or(true))
        .count();
    let probe = conn::probe(opts);
    let opened = held.len();
    drop(held);
    let mut figures = format!(
        "opened {opened} of {conns} (NULL answered on each) in {opened_in:.1?}, \
         RLIMIT_NOFILE {limit}; after {held_for:.1?} idle {} still open, {closed} closed by \
         the server; ",
        opened - closed
    );
    figures += &match &probe {
        Ok(t) => format!("NULL on a fresh connection answered in {t:.1?}; "),
        Err(e) => format!("NULL on a fresh connection: {e}; "),
    };
    figures += &format!("{errors} errors");
    if !first_errors.is_empty() {
        figures += &format!(" ({})", first_errors.join("; "));
    }
    scenario::verdict(errors == 0 && opened == conns && probe.is_ok(), figures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake;

    #[test]
    fn nofile_limit_is_raised() {
        let limit = raise_nofile(256).unwrap();
        assert!(limit >= 256);
    }

    #[test]
    fn hold_against_a_stand_in() {
        let server = fake::start(Duration::from_secs(2));
        let opts = server.options(Duration::from_secs(5));
        let figures = run(&opts, 100, 0).unwrap();
        assert!(
            figures.starts_with("opened 100 of 100 (NULL answered on each)"),
            "{figures}"
        );
        assert!(figures.contains("100 still open, 0 closed"), "{figures}");
        assert!(figures.ends_with("0 errors"), "{figures}");
    }
}
