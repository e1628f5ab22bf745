// SPDX-License-Identifier: GPL-2.0

//! Command line: the guests, their aliases and host streams, the control
//! socket, the bound.

use std::path::PathBuf;

use clap::Parser;

use crate::packet::CID_HOST;
use crate::router::{GuestConfig, DEFAULT_QUEUE_LIMIT};

/// A vhost-user virtio-vsock device joining several QEMU guests: packets
/// between them are forwarded; packets to any other CID are answered RST.
/// CID 2 (the host) is either a guest by --alias 2=N, or for each guest
/// given a --host-stream, a stream of framed packets to the server guest's
/// vhost-vsock.
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

    /// CID 2 for guest CID (a --guest, without an alias): listen on
    /// SOCKET_PATH for the server guest's QEMU (a chardev socket behind a
    /// virtio-serial port, xv-vhost-bridge --cid CID on the other side) and
    /// carry CID's packets with CID 2 over it as frames (header, then
    /// payload). Repeat for each guest; not with --alias 2=N.
    #[arg(long = "host-stream", value_name = "CID=SOCKET_PATH", value_parser = parse_guest)]
    pub host_streams: Vec<GuestArg>,

    /// Unix stream socket taking one command a line: `reset CID`, `stats`.
    #[arg(long, value_name = "SOCKET_PATH")]
    pub control: Option<PathBuf>,

    /// Bound of each guest's receive FIFO and each host stream's send FIFO,
    /// in bytes (suffixes K, M, G); a sender to a full FIFO is paused, never
    /// dropped.
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
    /// The guests with their aliases and host streams; reserved and
    /// duplicate CIDs are left to `Router::new`.
    pub fn guest_configs(&self) -> Result<Vec<GuestConfig>, String> {
        let mut out: Vec<GuestConfig> = self
            .guests
            .iter()
            .map(|g| GuestConfig {
                cid: g.cid,
                alias: None,
                host_stream: false,
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
        for h in &self.host_streams {
            let arg = format!("--host-stream {}={}", h.cid, h.socket.display());
            if let Some(&(_, n)) = self.aliases.iter().find(|&&(a, _)| a == CID_HOST) {
                return Err(format!(
                    "{arg}: --alias 2={n} already makes a guest CID 2; give one or the other"
                ));
            }
            let g = out
                .iter_mut()
                .find(|g| g.cid == h.cid)
                .ok_or_else(|| format!("{arg}: no --guest has CID {}", h.cid))?;
            if let Some(a) = g.alias {
                return Err(format!(
                    "{arg}: guest {} has --alias {a}={}; a guest with a host stream \
                     cannot have an alias",
                    h.cid, h.cid
                ));
            }
            if std::mem::replace(&mut g.host_stream, true) {
                return Err(format!("{arg}: guest {} has two host streams", h.cid));
            }
        }
        let sockets: Vec<&PathBuf> = self
            .guests
            .iter()
            .chain(&self.host_streams)
            .map(|g| &g.socket)
            .collect();
        for (i, path) in sockets.iter().enumerate() {
            if sockets[..i].contains(path) {
                return Err(format!("socket {} given twice", path.display()));
            }
            if self.control.as_ref() == Some(*path) {
                return Err(format!(
                    "socket {} is also the control socket",
                    path.display()
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
                alias: None,
                host_stream: false,
            }
        );
        assert_eq!(
            g[1],
            GuestConfig {
                cid: 4,
                alias: Some(2),
                host_stream: false,
            }
        );
    }

    fn configs(args: &[&str]) -> Result<Vec<GuestConfig>, String> {
        let argv = std::iter::once("xv-vsockd").chain(args.iter().copied());
        Args::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .guest_configs()
    }

    #[test]
    fn parses_host_streams() {
        let g = configs(&[
            "--guest",
            "3=/g3",
            "--guest",
            "5=/g5",
            "--guest",
            "6=/g6",
            "--host-stream",
            "3=/h3",
            "--host-stream",
            "5=/h5",
            "--alias",
            "9=6",
        ])
        .unwrap();
        let flags: Vec<_> = g.iter().map(|g| (g.cid, g.alias, g.host_stream)).collect();
        assert_eq!(
            flags,
            [(3, None, true), (5, None, true), (6, Some(9), false)]
        );
    }

    #[test]
    fn host_stream_errors_name_the_argument() {
        let err = |args: &[&str]| configs(args).unwrap_err();
        let e = err(&["--guest", "3=/g", "--host-stream", "3"]);
        assert!(
            e.contains("--host-stream") && e.contains("not CID=SOCKET_PATH"),
            "{e}"
        );
        let e = err(&["--guest", "3=/g", "--host-stream", "4=/h"]);
        assert_eq!(e, "--host-stream 4=/h: no --guest has CID 4");
        let e = err(&[
            "--guest",
            "3=/g",
            "--guest",
            "4=/g4",
            "--alias",
            "2=4",
            "--host-stream",
            "3=/h",
        ]);
        assert!(e.starts_with("--host-stream 3=/h: --alias 2=4 "), "{e}");
        let e = err(&["--guest", "3=/g", "--alias", "7=3", "--host-stream", "3=/h"]);
        assert!(
            e.starts_with("--host-stream 3=/h: guest 3 has --alias 7=3"),
            "{e}"
        );
        let e = err(&[
            "--guest",
            "3=/g",
            "--host-stream",
            "3=/h",
            "--host-stream",
            "3=/i",
        ]);
        assert_eq!(e, "--host-stream 3=/i: guest 3 has two host streams");
        let e = err(&["--guest", "3=/g", "--host-stream", "3=/g"]);
        assert_eq!(e, "socket /g given twice");
        let e = err(&[
            "--guest",
            "3=/g",
            "--host-stream",
            "3=/c",
            "--control",
            "/c",
        ]);
        assert_eq!(e, "socket /c is also the control socket");
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
