// SPDX-License-Identifier: GPL-2.0

//! Command line: the guests, their aliases, the control socket, the bound.

use std::path::PathBuf;

use clap::Parser;

use crate::router::{GuestConfig, DEFAULT_QUEUE_LIMIT};

/// A vhost-user virtio-vsock device joining several QEMU guests: packets
/// between them are forwarded; packets to any other CID are answered RST.
#[derive(Debug, Parser)]
#[command(name = "xv-vsockd", version)]
pub struct Args {
    /// A guest: its CID (>= 3) and the vhost-user socket its QEMU connects
    /// to. Repeat for each guest.
    #[arg(long = "guest", value_name = "CID=SOCKET_PATH", value_parser = parse_guest, required = true)]
    pub guests: Vec<GuestArg>,

    /// Present guest CID to the others as ALIAS only (e.g. 2=4: guest 4 is
    /// "the host"). Its packets leave with src_cid ALIAS.
    #[arg(long = "alias", value_name = "ALIAS=CID", value_parser = parse_alias)]
    pub aliases: Vec<(u64, u64)>,

    /// Unix stream socket taking one command a line: `reset CID`, `stats`.
    #[arg(long, value_name = "SOCKET_PATH")]
    pub control: Option<PathBuf>,

    /// Bound of each guest's receive FIFO, in bytes (suffixes K, M, G); a
    /// sender to a full FIFO is paused, never dropped.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value_t = DEFAULT_QUEUE_LIMIT)]
    pub queue_limit: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestArg {
    pub cid: u64,
    pub socket: PathBuf,
}

fn parse_cid(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|e| format!("bad CID {s:?}: {e}"))
}

pub fn parse_guest(s: &str) -> Result<GuestArg, String> {
    let (cid, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not CID=SOCKET_PATH"))?;
    if path.is_empty() {
        return Err(format!("{s:?} has no socket path"));
    }
    Ok(GuestArg {
        cid: parse_cid(cid)?,
        socket: PathBuf::from(path),
    })
}

pub fn parse_alias(s: &str) -> Result<(u64, u64), String> {
    let (alias, cid) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not ALIAS=CID"))?;
    Ok((parse_cid(alias)?, parse_cid(cid)?))
}

pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 10),
        Some((i, 'm' | 'M')) => (&s[..i], 20),
        Some((i, 'g' | 'G')) => (&s[..i], 30),
        _ => (s, 0),
    };
    let n: usize = digits.parse().map_err(|e| format!("bad size {s:?}: {e}"))?;
    let n = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("size {s:?} too large"))?;
    if n == 0 {
        return Err("the queue limit must not be 0".to_string());
    }
    Ok(n)
}

impl Args {
    /// The guests with their aliases; reserved and duplicate CIDs are left
    /// to `Router::new`.
    pub fn guest_configs(&self) -> Result<Vec<GuestConfig>, String> {
        let mut out: Vec<GuestConfig> = self
            .guests
            .iter()
            .map(|g| GuestConfig {
                cid: g.cid,
                alias: None,
            })
            .collect();
        for &(alias, cid) in &self.aliases {
            let g = out
                .iter_mut()
                .find(|g| g.cid == cid)
                .ok_or_else(|| format!("alias {alias}={cid}: no guest has CID {cid}"))?;
            if let Some(old) = g.alias.replace(alias) {
                return Err(format!("guest {cid} has two aliases, {old} and {alias}"));
            }
        }
        for (i, g) in self.guests.iter().enumerate() {
            if self.guests[..i].iter().any(|o| o.socket == g.socket) {
                return Err(format!("socket {} given twice", g.socket.display()));
            }
            if self.control.as_ref() == Some(&g.socket) {
                return Err(format!(
                    "socket {} is also the control socket",
                    g.socket.display()
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_command_line() {
        let a = Args::try_parse_from([
            "xv-vsockd",
            "--guest",
            "3=/tmp/g3.sock",
            "--guest",
            "4=/tmp/g4.sock",
            "--alias",
            "2=4",
            "--control",
            "/tmp/ctl.sock",
            "--queue-limit",
            "1M",
        ])
        .unwrap();
        assert_eq!(a.queue_limit, 1 << 20);
        assert_eq!(
            a.guests[1],
            GuestArg {
                cid: 4,
                socket: PathBuf::from("/tmp/g4.sock")
            }
        );
        let g = a.guest_configs().unwrap();
        assert_eq!(
            g[0],
            GuestConfig {
                cid: 3,
                alias: None
            }
        );
        assert_eq!(
            g[1],
            GuestConfig {
                cid: 4,
                alias: Some(2)
            }
        );
    }

    #[test]
    fn default_queue_limit_and_required_guest() {
        let a = Args::try_parse_from(["xv-vsockd", "--guest", "3=/s"]).unwrap();
        assert_eq!(a.queue_limit, DEFAULT_QUEUE_LIMIT);
        assert!(Args::try_parse_from(["xv-vsockd"]).is_err());
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse_guest("3").is_err());
        assert!(parse_guest("x=/s").is_err());
        assert!(parse_guest("3=").is_err());
        assert!(parse_alias("2").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("65536"), Ok(65536));
        let two_aliases =
            Args::try_parse_from(["x", "--guest", "4=/a", "--alias", "2=4", "--alias", "9=4"])
                .unwrap();
        assert!(two_aliases.guest_configs().is_err());
        let no_target = Args::try_parse_from(["x", "--guest", "4=/a", "--alias", "2=5"]).unwrap();
        assert!(no_target.guest_configs().is_err());
        let same_socket =
            Args::try_parse_from(["x", "--guest", "3=/a", "--guest", "4=/a"]).unwrap();
        assert!(same_socket.guest_configs().is_err());
    }
}
