// SPDX-License-Identifier: GPL-2.0

//! xv-vhost-bridge: a fake guest of CID `--cid` on /dev/vhost-vsock whose
//! packets travel over `--stream`. Runs until SIGINT, SIGTERM or the
//! stream's end; SIGUSR1 prints the counters.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use log::{error, info};

use xv_vhost_bridge::bridge::{Bridge, Exit, Signals, Stream};
use xv_vhost_bridge::vhost_dev::{VhostVsockDev, DEFAULT_DEVICE};

#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The fake guest's CID (vhost refuses 0-2, 0xffffffff and CIDs in use).
    #[arg(long)]
    cid: u64,
    /// Character device or file opened read-write (e.g. /dev/vport2p1), or
    /// unix:PATH to connect to a Unix stream socket.
    #[arg(long)]
    stream: String,
    /// The vhost-vsock device.
    #[arg(long, default_value = DEFAULT_DEVICE)]
    device: PathBuf,
    /// Entries per virtqueue (a power of two).
    #[arg(long, default_value_t = 128)]
    queue_size: u16,
}

fn run(args: &Args) -> Result<(Exit, String), String> {
    // Before anything else, so no signal can kill us between setup steps.
    let signals = Signals::block().map_err(|e| format!("blocking signals: {e}"))?;
    let mut bridge = Bridge::new(args.cid, args.queue_size).map_err(|e| e.to_string())?;
    let mut stream =
        Stream::open(&args.stream).map_err(|e| format!("opening stream {}: {e}", args.stream))?;
    // Held until we return: closing it is the fake guest going away.
    let _dev =
        VhostVsockDev::start_device(&args.device, bridge.mem(), bridge.queue_setups(), args.cid)
            .map_err(|e| e.to_string())?;
    info!(
        "guest CID {} on {} over {}, {} entries per queue",
        args.cid,
        args.device.display(),
        args.stream,
        args.queue_size
    );
    let r = bridge.run(&mut stream, Some(&signals));
    let stats = bridge.stats().to_string();
    match r {
        Ok(exit) => Ok((exit, stats)),
        Err(e) => Err(format!("{e} (counters: {stats})")),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    match run(&args) {
        Ok((exit, stats)) => {
            match exit {
                Exit::Signal(sig) => info!("stopping on signal {sig}"),
                Exit::Eof => info!("stream closed"),
            }
            eprintln!("xv-vhost-bridge: {stats}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
