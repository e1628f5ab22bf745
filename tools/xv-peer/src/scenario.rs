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
    HoldReply {
        /// Seconds to leave it unread.
        secs: u64,
    },
}

/// The scenario list of `--help`.
pub const SCENARIOS: &str = "\
Scenarios, each on a connection of its own:
  null          NULL call to NFS (program 100003) version 4: expect SUCCESS
  null-frag     the same call in 4-byte fragments, sent a byte at a time
  big           a 192 KiB call sent in 16 KiB pieces: expect a reply to it
  reply-dir     a REPLY-direction record, then a NULL call on the connection
  oversized     a fragment header announcing 2^31-1 bytes: expect a close
  zero-flood    5000 empty non-final fragments: expect a close
  garbage       a record of noise and a call with bad credentials: no hang
  half=SECS     half a record, then SECS seconds of silence, then close
  stall=SECS    never read: with room for four replies, five NULL calls,
                then 16 more: expect a close within SECS seconds
  hold=SECS     an NFSv4.0 READ of 64 KiB of the file xv-peer-data in the
                server's root: expect NFS4_OK in the reply, but leave it
                unread (peeked at only) for SECS seconds, then close

Each prints `xv-peer: SCENARIO: ok: ...` or `xv-peer: SCENARIO: FAIL: ...`;
the exit status is 0 only if every scenario passed.";

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
            "hold" => Ok(Self::HoldReply {
                secs: secs(name, value)?,
            }),
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
            ("hold=10", Scenario::HoldReply { secs: 10 }),
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
            "", "nul", "null=1", "half", "half=", "half=x", "half=-1", "stall", "hold=x",
        ] {
            assert!(word.parse::<Scenario>().is_err(), "{word:?}");
        }
    }
}
