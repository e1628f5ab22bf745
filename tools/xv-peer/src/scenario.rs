// SPDX-License-Identifier: GPL-2.0

//! The scenarios named on the command line: `null`, `half=5`, ...

use std::fmt;
use std::str::FromStr;

/// What one scenario does; see `SCENARIOS` for the syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// A NULL call, answered with SUCCESS.
    Null,
    /// The NULL call in 4-byte fragments, a byte at a time.
    NullFrag,
    /// A 192 KiB call in slow pieces.
    Big,
    /// A REPLY-direction record, then a NULL call.
    ReplyDir,
    /// A fragment header announcing 2^31-1 bytes.
    Oversized,
    /// A flood of empty non-final fragments.
    ZeroFlood,
    /// Noise and a call with bad credentials.
    Garbage,
    /// Half a record, then `secs` seconds of silence.
    Half {
        /// Seconds of silence.
        secs: u64,
    },
    /// A 128-byte receive buffer, NULL calls, never a read: the server must
    /// close within `secs` seconds.
    Stall {
        /// Seconds to wait for the close.
        secs: u64,
    },
    /// An NFSv4.0 READ whose reply is left unread for `secs` seconds.
    ReadUnread {
        /// Seconds to leave it unread.
        secs: u64,
    },
    /// Many connections, each with a NULL call answered, then held idle.
    Hold {
        /// Connections to open.
        conns: usize,
        /// Seconds to hold them, unless SIGUSR1 comes first.
        secs: u64,
    },
    /// Generated hostile streams over many connections.
    Fuzz {
        /// Records to send, at least.
        records: u64,
        /// Seed of the generator; from the clock if not given.
        seed: Option<u64>,
        /// Connections between two liveness probes.
        every: usize,
    },
    /// Many connections at once, each kept busy with NULL calls.
    Busy {
        /// Connections to open.
        conns: usize,
        /// Seconds to keep them busy, unless SIGUSR1 comes first.
        secs: u64,
    },
    /// A pipeline of NULL calls whose replies are never read.
    NoRead {
        /// Calls to send.
        calls: usize,
        /// Seconds to keep the connection, unless SIGUSR1 comes first.
        secs: u64,
    },
}

/// Connections of `hold` without a value.
pub const HOLD_CONNS: usize = 1000;
/// Seconds of `hold` without SECS.
pub const HOLD_SECS: u64 = 10;
/// Connections of `busy` without a value: twice xprtvsock's default
/// per-CID limit.
pub const BUSY_CONNS: usize = 64;
/// Seconds of `busy` without SECS.
pub const BUSY_SECS: u64 = 30;
/// Calls of `no-read` without a value.
pub const NO_READ_CALLS: usize = 10_000;
/// Seconds of `no-read` without SECS: longer than xprtvsock's send timeout.
pub const NO_READ_SECS: u64 = 40;
/// Records of `fuzz` without a value.
pub const FUZZ_RECORDS: u64 = 100_000;

/// The scenario list of `--help`.
pub const SCENARIOS: &str = "\
Scenarios, run in turn, each on connections of its own:
  null          NULL call to NFS (program 100003) version 4: expect SUCCESS
  null-frag     the same call in 4-byte fragments, sent a byte at a time
  big           a 192 KiB call sent in 16 KiB pieces: expect a reply to it
  reply-dir     a REPLY-direction record, then a NULL call on the connection
  oversized     a fragment header announcing 2^31-1 bytes: expect a close
  zero-flood    5000 empty non-final fragments: expect a close
  garbage       a record of noise and a call with bad credentials: no hang
  half=SECS     half a record, then SECS seconds of silence, then close
  stall=SECS    never read: seven NFSv4.0 READs of 64 KiB of xv-peer-data
                (vsock's 256 KiB of credit holds three or four replies),
                then 16 NULL calls: expect a close within SECS seconds
  read-unread=SECS
                an NFSv4.0 READ of 64 KiB of the file xv-peer-data in the
                server's root: expect NFS4_OK in the reply, but leave it
                unread (peeked at only) for SECS seconds, then close
  hold[=N[,SECS]]
                N connections (1000), a NULL call answered on each, all held
                idle SECS seconds (10) or until SIGUSR1, then closed: how many
                the server kept open, and a NULL call on a fresh connection
  busy[=N[,SECS]]
                N connections (64) at once, each sending NULL calls 8 at a
                time and reading every reply, for SECS seconds (30) or until
                SIGUSR1: how many the server served, refused at once or
                closed later, and the calls answered per second
  no-read[=N[,SECS]]
                N NULL calls (10000) in a pipeline on a connection with a
                1 KiB receive buffer that never reads a reply, held SECS
                seconds (40) or until SIGUSR1: a NULL call on a fresh
                connection every 2 s must be answered within --timeout
  fuzz[=RECORDS][,seed=S][,every=K]
                at least RECORDS records (100000) of generated hostile streams
                (seeded proptest strategies; the seed is printed, seed=S sends
                the same streams again): NULL calls, calls with garbage
                arguments or credentials, REPLY records and noise, in
                fragments of any length (empty ones too), then a clean end, a
                record under 8 bytes, a fragment header beyond any limit, over
                1024 fragments, a record cut short or a fragment never
                finished; writes split anywhere, markers included, or many
                records per write. 4 connections at a time; a NULL call on a
                fresh connection first, every K connections (200) and at the
                end must be answered. SIGUSR1 stops it early (a failure).

Each prints `xv-peer: SCENARIO: ok: ...` or `xv-peer: SCENARIO: FAIL: ...`;
the exit status is 0 only if every scenario passed.";

/// A scenario's result: its figures, `Ok` if it passed.
pub fn verdict(passed: bool, figures: String) -> Result<String, String> {
    if passed {
        Ok(figures)
    } else {
        Err(figures)
    }
}

/// A scenario as named on the command line: the words it was given as,
/// which the result line repeats, and what it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    /// The command-line word, e.g. `half=5`.
    pub text: String,
    /// What it does.
    pub scenario: Scenario,
}

impl fmt::Display for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn number(what: &str, value: &str) -> Result<u64, String> {
    value.parse().map_err(|e| format!("{what}: {value:?}: {e}"))
}

/// The value of `NAME=SECS`.
fn secs(name: &str, value: Option<&str>) -> Result<u64, String> {
    let what = format!("{name}=SECS");
    number(&what, value.ok_or(format!("{name} needs seconds: {what}"))?)
}

/// A count of at least 1.
fn count(what: &str, value: &str) -> Result<usize, String> {
    match number(what, value)? {
        0 => Err(format!("{what}: must be at least 1")),
        n => usize::try_from(n).map_err(|e| format!("{what}: {e}")),
    }
}

/// The value of `NAME[=N[,SECS]]`.
fn count_and_secs(
    name: &str,
    value: Option<&str>,
    default_count: usize,
    default_secs: u64,
) -> Result<(usize, u64), String> {
    let what = format!("{name}=N[,SECS]");
    match value.map(|v| v.split(',').collect::<Vec<_>>()).as_deref() {
        None => Ok((default_count, default_secs)),
        Some([n]) => Ok((count(&what, n)?, default_secs)),
        Some([n, secs]) => Ok((count(&what, n)?, number(&what, secs)?)),
        Some(_) => Err(format!("{what} takes at most two values")),
    }
}

/// The value of `fuzz[=RECORDS][,seed=S][,every=K]`.
fn fuzz(value: Option<&str>) -> Result<Scenario, String> {
    let what = "fuzz=RECORDS[,seed=S][,every=K]";
    let (mut records, mut seed, mut every) = (FUZZ_RECORDS, None, crate::fuzz_run::EVERY);
    if let Some(value) = value {
        let mut parts = value.split(',');
        records = count(what, parts.next().unwrap_or_default())? as u64;
        for part in parts {
            match part.split_once('=') {
                Some(("seed", s)) => seed = Some(number(what, s)?),
                Some(("every", k)) => every = count(what, k)?,
                _ => return Err(format!("{what}: unknown {part:?}")),
            }
        }
    }
    Ok(Scenario::Fuzz {
        records,
        seed,
        every,
    })
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(word: &str) -> Result<Self, String> {
        let (name, value) = match word.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (word, None),
        };
        let plain = |scenario| match value {
            None => Ok(scenario),
            Some(_) => Err(format!("{name} takes no value")),
        };
        match name {
            "null" => plain(Self::Null),
            "null-frag" => plain(Self::NullFrag),
            "big" => plain(Self::Big),
            "reply-dir" => plain(Self::ReplyDir),
            "oversized" => plain(Self::Oversized),
            "zero-flood" => plain(Self::ZeroFlood),
            "garbage" => plain(Self::Garbage),
            "half" => Ok(Self::Half {
                secs: secs(name, value)?,
            }),
            "stall" => Ok(Self::Stall {
                secs: secs(name, value)?,
            }),
            "read-unread" => Ok(Self::ReadUnread {
                secs: secs(name, value)?,
            }),
            "hold" => {
                let (conns, secs) = count_and_secs(name, value, HOLD_CONNS, HOLD_SECS)?;
                Ok(Self::Hold { conns, secs })
            }
            "busy" => {
                let (conns, secs) = count_and_secs(name, value, BUSY_CONNS, BUSY_SECS)?;
                Ok(Self::Busy { conns, secs })
            }
            "fuzz" => fuzz(value),
            "no-read" => {
                let (calls, secs) = count_and_secs(name, value, NO_READ_CALLS, NO_READ_SECS)?;
                Ok(Self::NoRead { calls, secs })
            }
            _ => Err(format!("unknown scenario {word:?} (see --help)")),
        }
    }
}

impl FromStr for Named {
    type Err = String;

    fn from_str(word: &str) -> Result<Self, String> {
        Ok(Self {
            text: word.to_owned(),
            scenario: word.parse()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_words_parse() {
        let words = [
            ("null", Scenario::Null),
            ("null-frag", Scenario::NullFrag),
            ("big", Scenario::Big),
            ("reply-dir", Scenario::ReplyDir),
            ("oversized", Scenario::Oversized),
            ("zero-flood", Scenario::ZeroFlood),
            ("garbage", Scenario::Garbage),
            ("half=5", Scenario::Half { secs: 5 }),
            ("stall=45", Scenario::Stall { secs: 45 }),
            ("read-unread=10", Scenario::ReadUnread { secs: 10 }),
            (
                "hold",
                Scenario::Hold {
                    conns: 1000,
                    secs: 10,
                },
            ),
            (
                "hold=20",
                Scenario::Hold {
                    conns: 20,
                    secs: 10,
                },
            ),
            (
                "no-read",
                Scenario::NoRead {
                    calls: 10_000,
                    secs: 40,
                },
            ),
            (
                "no-read=500,5",
                Scenario::NoRead {
                    calls: 500,
                    secs: 5,
                },
            ),
            (
                "fuzz",
                Scenario::Fuzz {
                    records: 100_000,
                    seed: None,
                    every: 200,
                },
            ),
            (
                "fuzz=5000",
                Scenario::Fuzz {
                    records: 5000,
                    seed: None,
                    every: 200,
                },
            ),
            (
                "fuzz=100000,seed=17",
                Scenario::Fuzz {
                    records: 100_000,
                    seed: Some(17),
                    every: 200,
                },
            ),
            (
                "fuzz=10,every=3,seed=0",
                Scenario::Fuzz {
                    records: 10,
                    seed: Some(0),
                    every: 3,
                },
            ),
            (
                "busy",
                Scenario::Busy {
                    conns: 64,
                    secs: 30,
                },
            ),
            (
                "busy=40,120",
                Scenario::Busy {
                    conns: 40,
                    secs: 120,
                },
            ),
            (
                "hold=1000,30",
                Scenario::Hold {
                    conns: 1000,
                    secs: 30,
                },
            ),
        ];
        for (word, want) in words {
            assert_eq!(word.parse::<Scenario>(), Ok(want), "{word}");
            let named: Named = word.parse().unwrap();
            assert_eq!(named.to_string(), word);
        }
    }

    #[test]
    fn bad_words_are_refused() {
        for word in [
            "",
            "nul",
            "null=1",
            "half",
            "half=",
            "half=x",
            "half=-1",
            "stall",
            "read-unread",
            "read-unread=x",
            "hold=",
            "hold=0",
            "hold=1,",
            "hold=1,2,3",
            "hold=,5",
            "busy=0",
            "busy=1,2,3",
            "no-read=0",
            "no-read=1,x",
            "noread",
            "fuzz=",
            "fuzz=0",
            "fuzz=seed=3",
            "fuzz=10,seed=",
            "fuzz=10,seed=-1",
            "fuzz=10,every=0",
            "fuzz=10,bogus=1",
            "fuzz=10,5",
        ] {
            assert!(word.parse::<Scenario>().is_err(), "{word:?}");
        }
    }
}
