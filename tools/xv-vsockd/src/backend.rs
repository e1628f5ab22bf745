// SPDX-License-Identifier: GPL-2.0

//! The vhost-user side: a `VhostUserBackend` per guest connection around a
//! `Device`, and the loop that serves one guest's socket across reconnects.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use log::{info, warn};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::Listener;
use vhost_user_backend::{VhostUserBackend, VhostUserDaemon, VringRwLock, VringT};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::VIRTIO_RING_F_INDIRECT_DESC;
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use crate::device::{Device, Mem, EVENT_QUEUE, NUM_QUEUES, RX_QUEUE, TX_QUEUE};
use crate::router::{lock, Router};

/// Epoll token of the guest's wake eventfd; tokens 0..=NUM_QUEUES belong to
/// the queues and vhost-user-backend's own exit/enable event.
const WAKE_EVENT: u16 = NUM_QUEUES as u16 + 1;

/// Queue size offered to the front-end (QEMU 7.2 asks for 128).
const MAX_QUEUE_SIZE: usize = 1024;

pub struct VsockBackend {
    device: Device,
    mem: GuestMemoryAtomic<Mem>,
    /// The exit eventfds handed to vhost-user-backend, which registers them
    /// with `into_raw_fd` and never closes them; `serve_guest` closes them
    /// once the worker threads are gone, so reconnects do not leak fds.
    exit_fds: Mutex<Vec<RawFd>>,
}

impl VsockBackend {
    pub fn new(router: Arc<Router>, index: usize, mem: GuestMemoryAtomic<Mem>) -> Self {
        VsockBackend {
            device: Device::new(router, index),
            mem,
            exit_fds: Mutex::new(Vec::new()),
        }
    }

    /// Run `f` on a queue if the front-end has set it up and enabled it, and
    /// signal the guest if `f` used any chain. Returns whether the queue was up.
    fn with_queue(
        &self,
        vring: &VringRwLock<GuestMemoryAtomic<Mem>>,
        f: impl FnOnce(&mut virtio_queue::Queue, &Mem) -> u32,
    ) -> bool {
        let mut state = vring.get_mut();
        if !state.is_enabled() || !virtio_queue::QueueT::ready(state.get_queue()) {
            return false;
        }
        let mem = self.mem.memory();
        if f(state.get_queue_mut(), &mem) > 0 {
            if let Err(e) = state.signal_used_queue() {
                warn!(
                    "guest {}: signalling used queue: {e}",
                    self.device.port().cid
                );
            }
        }
        true
    }

    fn run_rx(&self, vrings: &[VringRwLock<GuestMemoryAtomic<Mem>>]) {
        if let Some(v) = vrings.get(RX_QUEUE) {
            self.with_queue(v, |q, m| self.device.process_rx(q, m));
        }
    }

    fn run_tx(&self, vrings: &[VringRwLock<GuestMemoryAtomic<Mem>>]) {
        if let Some(v) = vrings.get(TX_QUEUE) {
            self.with_queue(v, |q, m| self.device.process_tx(q, m).used);
        }
    }

    fn run_events(&self, vrings: &[VringRwLock<GuestMemoryAtomic<Mem>>]) {
        if let Some(v) = vrings.get(EVENT_QUEUE) {
            let up = self.with_queue(v, |q, m| self.device.process_events(q, m));
            self.device.port().set_event_queue(up);
        }
    }
}

impl VhostUserBackend for VsockBackend {
    type Bitmap = ();
    type Vring = VringRwLock<GuestMemoryAtomic<Mem>>;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_INDIRECT_DESC)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::MQ
    }

    /// EVENT_IDX is not offered, so this is never turned on.
    fn set_event_idx(&self, _enabled: bool) {}

    /// The config space is `struct virtio_vsock_config { le64 guest_cid; }`.
    /// vhost-user wants exactly `size` bytes back, or none for an error.
    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let config = self.device.port().cid.to_le_bytes();
        let (start, len) = (offset as usize, size as usize);
        start
            .checked_add(len)
            .and_then(|end| config.get(start..end))
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }

    /// The daemon and this backend share one `GuestMemoryAtomic`, which the
    /// daemon updates in place.
    fn update_memory(&self, _mem: GuestMemoryAtomic<Mem>) -> io::Result<()> {
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        let pair = new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC)
            .map_err(|e| warn!("exit eventfd: {e}"))
            .ok()?;
        lock(&self.exit_fds).push(pair.0.as_raw_fd());
        Some(pair)
    }

    /// Errors returned here end the worker thread, so packet-level trouble is
    /// logged in `Device` and never reaches this point.
    fn handle_event(
        &self,
        device_event: u16,
        _evset: EventSet,
        vrings: &[Self::Vring],
        _thread_id: usize,
    ) -> io::Result<()> {
        match device_event {
            e if e as usize == RX_QUEUE => self.run_rx(vrings),
            e if e as usize == TX_QUEUE => self.run_tx(vrings),
            e if e as usize == EVENT_QUEUE => self.run_events(vrings),
            WAKE_EVENT => {
                self.device.port().clear_wake();
                self.run_rx(vrings);
                self.run_tx(vrings);
                self.run_events(vrings);
            }
            other => warn!("guest {}: unexpected event {other}", self.device.port().cid),
        }
        Ok(())
    }
}

/// Serve the guest at `index` on `listener`: accept a front-end, run until it
/// disconnects, forget what was queued for it, and wait for the next one (a
/// restarted QEMU reconnects to the same socket; a guest reboot inside QEMU
/// keeps its connection). Returns only on errors that would repeat forever.
pub fn serve_guest(
    router: Arc<Router>,
    index: usize,
    mut listener: Listener,
) -> Result<(), String> {
    let cid = router.port(index).cid;
    loop {
        let mem = GuestMemoryAtomic::new(Mem::new());
        let backend = Arc::new(VsockBackend::new(router.clone(), index, mem.clone()));
        let mut daemon = VhostUserDaemon::new(format!("xv-vsockd-{cid}"), backend.clone(), mem)
            .map_err(|e| format!("guest {cid}: creating the daemon: {e}"))?;
        let handlers = daemon.get_epoll_handlers();
        let wake_fd = router.port(index).wake_fd().as_raw_fd();
        for h in &handlers {
            h.register_listener(wake_fd, EventSet::IN, u64::from(WAKE_EVENT))
                .map_err(|e| format!("guest {cid}: registering the wake eventfd: {e}"))?;
        }
        daemon
            .start(&mut listener)
            .map_err(|e| format!("guest {cid}: accepting: {e}"))?;
        router.connect(index);
        info!("guest {cid}: front-end connected");
        match daemon.wait() {
            Ok(()) => info!("guest {cid}: front-end disconnected"),
            Err(e) => info!("guest {cid}: front-end gone: {e}"),
        }
        router.disconnect(index);
        for h in &handlers {
            h.send_exit_event();
        }
        drop(daemon);
        // Each worker thread holds an Arc of its handler until it returns;
        // with the daemon gone, ours is the last one when they are done.
        let deadline = Instant::now() + Duration::from_secs(2);
        while handlers.iter().any(|h| Arc::strong_count(h) > 1) {
            if Instant::now() > deadline {
                warn!("guest {cid}: a vring worker did not stop; leaking its exit eventfd");
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        if handlers.iter().all(|h| Arc::strong_count(h) == 1) {
            for fd in lock(&backend.exit_fds).drain(..) {
                // We created this eventfd in exit_event and handed it to the
                // library's epoll, which is closed now that the worker and
                // its handler are gone; nothing else closes it.
                // SAFETY: `fd` is open and owned by no one else (see above).
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                drop(owned);
            }
        }
    }
}
