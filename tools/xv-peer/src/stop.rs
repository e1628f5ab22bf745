// SPDX-License-Identifier: GPL-2.0

//! Ending a hold early: SIGUSR1 tells the scenarios that hold connections
//! open or busy (`hold`, `no-read`, `busy`) to stop and report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Makes SIGUSR1 end holds instead of the process.
pub fn install() {
    // SAFETY: all-zero is a valid `sigaction`; the handler only stores to
    // an atomic, which is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
    }
}

/// Whether SIGUSR1 has arrived.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Waits `length`, or less if SIGUSR1 arrives (or has arrived); returns
/// how long it waited.
pub fn pause(length: Duration) -> Duration {
    let start = Instant::now();
    while !requested() && start.elapsed() < length {
        sleep(
            length
                .saturating_sub(start.elapsed())
                .min(Duration::from_millis(50)),
        );
    }
    start.elapsed()
}
