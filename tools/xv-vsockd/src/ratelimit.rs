// SPDX-License-Identifier: GPL-2.0

//! Rate limiting for warnings a guest can trigger at will (malformed or
//! spoofed packets, tiny buffers): a misbehaving guest must not be able to
//! flood the log, but the first occurrences are what one debugs from.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// At most `BURST` guest-triggered warnings per `WINDOW_MS`, across guests.
const WINDOW_MS: u64 = 1000;
const BURST: u32 = 10;

struct Window {
    start_ms: u64,
    count: u32,
    suppressed: u64,
}

static WINDOW: Mutex<Window> = Mutex::new(Window {
    start_ms: 0,
    count: 0,
    suppressed: 0,
});
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Whether a guest-triggered warning may be logged now. `Some(n)` says yes,
/// with `n` warnings suppressed since the last one that was logged.
pub fn allow() -> Option<u64> {
    let now_ms =
        u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut w = crate::router::lock(&WINDOW);
    if now_ms.saturating_sub(w.start_ms) >= WINDOW_MS {
        w.start_ms = now_ms;
        w.count = 0;
    }
    if w.count >= BURST {
        w.suppressed += 1;
        return None;
    }
    w.count += 1;
    Some(std::mem::take(&mut w.suppressed))
}

/// `log::warn!`, rate-limited by `allow`.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)*) => {
        if let Some(suppressed) = $crate::ratelimit::allow() {
            if suppressed > 0 {
                log::warn!("{} similar warnings suppressed", suppressed);
            }
            log::warn!($($arg)*);
        }
    };
}
