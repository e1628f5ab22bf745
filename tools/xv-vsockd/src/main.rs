// SPDX-License-Identifier: GPL-2.0

//! xv-vsockd: one vhost-user vsock device per `--guest`, all in one process,
//! forwarding packets between the guests, and one thread per
//! `--host-stream`. Runs until SIGINT or SIGTERM.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{mpsc, Arc};
use std::thread;

use clap::Parser;
use log::{error, info};
use vhost::vhost_user::Listener;

use xv_vsockd::backend::serve_guest;
use xv_vsockd::cli::Args;
use xv_vsockd::control::serve_control;
use xv_vsockd::host_stream::serve_host_stream;
use xv_vsockd::router::Router;

enum Stop {
    Signal(i32),
    Fatal(String),
}

/// Block SIGINT and SIGTERM in this thread and so in every thread spawned
/// after it; one thread then takes them with `sigwait`, so no signal handler
/// runs in the middle of the vhost-user threads.
fn block_exit_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: the set is a local we initialise with sigemptyset before use,
    // and pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        match libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) {
            0 => Ok(set),
            rc => Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

fn wait_signal(set: &libc::sigset_t) -> io::Result<i32> {
    let mut sig = 0;
    // SAFETY: both pointers refer to live locals of the right types.
    match unsafe { libc::sigwait(set, &mut sig) } {
        0 => Ok(sig),
        rc => Err(io::Error::from_raw_os_error(rc)),
    }
}

/// Bind a Unix socket (`what` names it in errors), replacing a stale socket
/// left by an earlier run (but never a file that is not a socket).
fn bind_unix(path: &Path, what: &str) -> Result<UnixListener, String> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
    UnixListener::bind(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

fn run(args: Args) -> Result<ExitCode, String> {
    let guests = args.guest_configs()?;
    let router = Arc::new(Router::new(&guests, args.queue_limit)?);
    // The router port of each host stream, in --host-stream order.
    let stream_ports = args
        .host_streams
        .iter()
        .map(|h| {
            router
                .find(h.cid)
                .and_then(|owner| router.host_stream(owner))
                .ok_or_else(|| format!("--host-stream {}: guest {} has none", h.cid, h.cid))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signals = block_exit_signals().map_err(|e| format!("blocking signals: {e}"))?;

    // Bind everything before spawning anything, so a bad path fails at once.
    let mut created: Vec<PathBuf> = Vec::new();
    let mut listeners = Vec::new();
    for g in &args.guests {
        let l = Listener::new(&g.socket, true)
            .map_err(|e| format!("guest {}: socket {}: {e}", g.cid, g.socket.display()));
        match l {
            Ok(l) => {
                created.push(g.socket.clone());
                listeners.push(l);
            }
            Err(e) => {
                drop(listeners);
                return Err(e);
            }
        }
    }
    let mut streams = Vec::new();
    for (h, index) in args.host_streams.iter().zip(stream_ports) {
        match bind_unix(&h.socket, &format!("--host-stream {}: socket", h.cid)) {
            Ok(l) => {
                created.push(h.socket.clone());
                streams.push((h.cid, index, l));
            }
            Err(e) => {
                remove_all(&created);
                return Err(e);
            }
        }
    }
    let control = match &args.control {
        Some(path) => match bind_unix(path, "control socket") {
            Ok(l) => {
                created.push(path.clone());
                Some(l)
            }
            Err(e) => {
                remove_all(&created);
                return Err(e);
            }
        },
        None => None,
    };

    let (stop_tx, stop_rx) = mpsc::channel();
    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        thread::Builder::new()
            .name(name)
            .spawn(f)
            .map(drop)
            .map_err(|e| format!("spawning a thread: {e}"))
    };
    for (index, listener) in listeners.into_iter().enumerate() {
        let router = router.clone();
        let stop = stop_tx.clone();
        let cid = router.port(index).cid;
        spawn(
            format!("xv-vsockd-guest-{cid}"),
            Box::new(move || {
                if let Err(e) = serve_guest(router, index, listener) {
                    let _ = stop.send(Stop::Fatal(e));
                }
            }),
        )?;
    }
    for (cid, index, listener) in streams {
        let router = router.clone();
        let stop = stop_tx.clone();
        spawn(
            format!("xv-vsockd-host-{cid}"),
            Box::new(move || {
                if let Err(e) = serve_host_stream(router, index, listener) {
                    let _ = stop.send(Stop::Fatal(e));
                }
            }),
        )?;
    }
    if let Some(l) = control {
        let router = router.clone();
        spawn(
            "xv-vsockd-control".to_string(),
            Box::new(move || serve_control(router, l)),
        )?;
    }
    let stop = stop_tx.clone();
    spawn(
        "xv-vsockd-signals".to_string(),
        Box::new(move || {
            let msg = match wait_signal(&signals) {
                Ok(sig) => Stop::Signal(sig),
                Err(e) => Stop::Fatal(format!("sigwait: {e}")),
            };
            let _ = stop.send(msg);
        }),
    )?;
    info!(
        "serving {} guest(s), {} host stream(s), queue limit {} bytes",
        args.guests.len(),
        args.host_streams.len(),
        args.queue_limit
    );

    let outcome = stop_rx
        .recv()
        .unwrap_or(Stop::Fatal("all threads gone".to_string()));
    remove_all(&created);
    match outcome {
        Stop::Signal(sig) => {
            info!("signal {sig}: exiting");
            Ok(ExitCode::SUCCESS)
        }
        Stop::Fatal(e) => Err(e),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
