// SPDX-License-Identifier: GPL-2.0

//! The device's queue processing driven through mock virtqueues: transmit
//! layouts, receive splitting, routing, aliases, RST, the queue bound and
//! transport-reset events.

mod common;

use std::thread;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use xv_vsockd::packet::{
    Header, CID_ANY, HDR_LEN, MAX_PAYLOAD, OP_CREDIT_UPDATE, OP_REQUEST, OP_RESPONSE, OP_RST,
    OP_RW, OP_SHUTDOWN, SHUTDOWN_RCV, SHUTDOWN_SEND,
};

const BIG: usize = 1 << 20;

/// Sets up guests 3 and 4 on one router whose FIFOs hold `$limit` bytes,
/// 4 known to the others as `$alias_of_4` if given: binds the router to
/// `$r` and the guests (router ports 0 and 1) to the patterns `$a` and `$b`.
macro_rules! two_guests {
    ($r:ident, $a:pat, $b:pat, $limit:expr) => {
        two_guests!($r, $a, $b, $limit, None);
    };
    ($r:ident, $a:pat, $b:pat, $limit:expr, $alias_of_4:expr) => {
        let (m3, m4) = (new_mem(), new_mem());
        let $r = router(&[(3, None), (4, $alias_of_4)], $limit);
        let $a = TestGuest::new(&m3, &$r, 0);
        let $b = TestGuest::new(&m4, &$r, 1);
    };
}

/// Reassemble the RW payload from a list of received pieces, checking that
/// every piece carries the original header but for `len`.
fn reassemble(pieces: &[(Header, Vec<u8>)], want: &Header) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, p) in pieces {
        let mut expect = *want;
        expect.len = p.len() as u32;
        assert_eq!(*h, expect, "piece header");
        out.extend_from_slice(p);
    }
    out
}

/// Send one 64 KiB RW packet from guest 3 to guest 4 whose RX chains have
/// these capacities (header included), and check what arrives.
fn split_case(chain_sizes: &[u32]) {
    two_guests!(r, mut a, mut b, BIG);
    let payload = pattern(MAX_PAYLOAD, 7);
    a.tx.add_readable(&[&rw_bytes(3, 4, &payload)]);
    assert_eq!(a.run_tx().used, 1);
    for &s in chain_sizes {
        b.rx.add_writable(&[s]);
    }
    b.run_rx();
    let got = b.received();
    let want = hdr(3, 4, OP_RW, 0);
    assert_eq!(reassemble(&got, &want), payload);
    // Every chain but possibly the last is filled to the brim.
    for (i, (_, p)) in got.iter().enumerate() {
        if i + 1 < got.len() {
            assert_eq!(p.len() + HDR_LEN, chain_sizes[i] as usize, "chain {i}");
        }
    }
    assert_eq!(r.port(1).queued_bytes(), 0);
}

#[test]
fn rx_split_into_4k_chains() {
    // 4 KiB buffers holding header and data, as Linux 6.x posts them.
    split_case(&[4096; 17]);
}

#[test]
fn rx_split_one_byte_then_rest() {
    split_case(&[HDR_LEN as u32 + 1, (HDR_LEN + MAX_PAYLOAD) as u32]);
}

#[test]
fn rx_split_odd_sizes() {
    split_case(&[45, 4095, 333, 1000, 7777, 46, 60_000, 9000]);
}

#[test]
fn rx_split_exact_fit_and_leftover_chain_unused() {
    two_guests!(r, mut a, mut b, BIG);
    let payload = pattern(1000, 1);
    a.tx.add_readable(&[&rw_bytes(3, 4, &payload)]);
    a.run_tx();
    b.post_rx(2, (HDR_LEN + 1000) as u32);
    assert_eq!(b.run_rx(), 1);
    let got = b.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, payload);
}

#[test]
fn rx_header_in_its_own_descriptor() {
    // Older Linux posts a 44-byte header buffer and a data buffer per chain.
    two_guests!(r, mut a, mut b, BIG);
    let payload = pattern(10_000, 3);
    a.tx.add_readable(&[&rw_bytes(3, 4, &payload)]);
    a.run_tx();
    for _ in 0..3 {
        b.rx.add_writable(&[HDR_LEN as u32, 4096]);
    }
    assert_eq!(b.run_rx(), 3);
    let got = b.received();
    assert_eq!(got.len(), 3);
    assert_eq!(reassemble(&got, &hdr(3, 4, OP_RW, 0)), payload);
}

#[test]
fn rx_too_small_chain_comes_back_empty_and_packet_waits() {
    two_guests!(r, mut a, mut b, BIG);
    a.tx.add_readable(&[&rw_bytes(3, 4, b"hello")]);
    a.run_tx();
    b.rx.add_writable(&[20]);
    b.rx.add_writable(&[HDR_LEN as u32]);
    assert_eq!(b.run_rx(), 2);
    assert_eq!(b.rx.used_idx(), 2);
    assert_eq!(b.rx.used_elem(0).1, 0);
    assert_eq!(b.rx.used_elem(1).1, 0);
    b.rx.take_used();
    assert_eq!(r.port(1).queued_packets(), 1);
    b.post_rx(1, 4096);
    b.run_rx();
    let got = b.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"hello");
}

#[test]
fn rx_without_buffers_keeps_packets_in_order() {
    two_guests!(r, mut a, mut b, BIG);
    for i in 0..5u8 {
        a.tx.add_readable(&[&rw_bytes(3, 4, &[i; 3000])]);
    }
    assert_eq!(a.run_tx().used, 5);
    assert_eq!(b.run_rx(), 0);
    // Three 2 KiB chains: the first packet and a half.
    b.post_rx(3, 2048);
    assert_eq!(b.run_rx(), 3);
    b.post_rx(20, 2048);
    b.run_rx();
    let got = b.received();
    let data: Vec<u8> = got.iter().flat_map(|(_, p)| p.clone()).collect();
    let want: Vec<u8> = (0..5u8).flat_map(|i| vec![i; 3000]).collect();
    assert_eq!(data, want);
    assert_eq!(r.port(1).queued_bytes(), 0);
}

/// Deliver one RW packet given as TX descriptor parts from 3 to 4 and check it.
fn tx_case(parts: &[&[u8]], payload: &[u8], indirect: bool) {
    two_guests!(r, mut a, mut b, BIG);
    if indirect {
        a.tx.add_readable_indirect(parts);
    } else {
        a.tx.add_readable(parts);
    }
    assert_eq!(a.run_tx().used, 1);
    assert_eq!(a.tx.used_idx(), 1);
    b.post_rx(20, 4096);
    b.run_rx();
    let got = b.received();
    assert_eq!(reassemble(&got, &hdr(3, 4, OP_RW, 0)), payload);
}

#[test]
fn tx_header_and_payload_in_one_descriptor() {
    let payload = pattern(3000, 9);
    tx_case(&[&rw_bytes(3, 4, &payload)], &payload, false);
}

#[test]
fn tx_split_at_every_header_byte() {
    let payload = pattern(100, 5);
    let bytes = rw_bytes(3, 4, &payload);
    for cut in 1..=HDR_LEN {
        tx_case(&[&bytes[..cut], &bytes[cut..]], &payload, false);
    }
    // And with the payload in a separate descriptor as well.
    for cut in 1..HDR_LEN {
        tx_case(
            &[&bytes[..cut], &bytes[cut..HDR_LEN], &bytes[HDR_LEN..]],
            &payload,
            false,
        );
    }
}

#[test]
fn tx_payload_over_many_descriptors() {
    let payload = pattern(MAX_PAYLOAD, 11);
    let bytes = rw_bytes(3, 4, &payload);
    let mut parts: Vec<&[u8]> = vec![&bytes[..HDR_LEN]];
    // Page-sized frags with an odd head, like a nonlinear skb.
    parts.push(&bytes[HDR_LEN..HDR_LEN + 1500]);
    let mut off = HDR_LEN + 1500;
    while off < bytes.len() {
        let end = (off + 4096).min(bytes.len());
        parts.push(&bytes[off..end]);
        off = end;
    }
    tx_case(&parts, &payload, false);
}

#[test]
fn tx_indirect_chain() {
    let payload = pattern(40_000, 13);
    let bytes = rw_bytes(3, 4, &payload);
    tx_case(
        &[&bytes[..HDR_LEN], &bytes[HDR_LEN..20_000], &bytes[20_000..]],
        &payload,
        true,
    );
}

#[test]
fn routing_between_three_guests() {
    let (m3, m4, m5) = (new_mem(), new_mem(), new_mem());
    let r = router(&[(3, None), (4, None), (5, None)], BIG);
    let mut g = [
        TestGuest::new(&m3, &r, 0),
        TestGuest::new(&m4, &r, 1),
        TestGuest::new(&m5, &r, 2),
    ];
    let cids = [3u64, 4, 5];
    for (i, src) in cids.iter().enumerate() {
        for dst in cids.iter().filter(|d| *d != src) {
            let payload = format!("{src}->{dst}").into_bytes();
            g[i].tx.add_readable(&[&rw_bytes(*src, *dst, &payload)]);
        }
        assert_eq!(g[i].run_tx().used, 2);
    }
    for (i, me) in cids.iter().enumerate() {
        g[i].post_rx(4, 4096);
        g[i].run_rx();
        let got = g[i].received();
        assert_eq!(got.len(), 2, "guest {me}");
        for (h, p) in got {
            assert_eq!(h.dst_cid, *me);
            assert_eq!(p, format!("{}->{me}", h.src_cid).into_bytes());
            assert!(cids.contains(&h.src_cid) && h.src_cid != *me);
        }
    }
}

#[test]
fn alias_presents_a_guest_as_the_host() {
    let (m3, m4, m5) = (new_mem(), new_mem(), new_mem());
    // Guest 4 is "the host", CID 2, for 3 and 5.
    let r = router(&[(3, None), (4, Some(2)), (5, None)], BIG);
    let mut g3 = TestGuest::new(&m3, &r, 0);
    let mut g4 = TestGuest::new(&m4, &r, 1);
    let mut g5 = TestGuest::new(&m5, &r, 2);

    // 3 connects to 2:2049; 4 sees it addressed to itself.
    g3.tx.add_readable(&[&hdr(3, 2, OP_REQUEST, 0).to_bytes()]);
    g3.run_tx();
    g4.post_rx(4, 4096);
    g4.run_rx();
    let got = g4.received();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0.src_cid, got[0].0.dst_cid), (3, 4));

    // 4 answers with its own CID as source (what its config says); 3 sees 2.
    let mut resp = hdr(4, 3, OP_RESPONSE, 0);
    resp.src_port = 2049;
    resp.dst_port = 1234;
    g4.tx.add_readable(&[&resp.to_bytes()]);
    g4.tx.add_readable(&[&rw_bytes(4, 5, b"to five")]);
    g4.run_tx();
    g3.post_rx(2, 4096);
    g3.run_rx();
    let got = g3.received();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0.src_cid, got[0].0.dst_cid), (2, 3));
    assert_eq!((got[0].0.src_port, got[0].0.op), (2049, OP_RESPONSE));
    g5.post_rx(2, 4096);
    g5.run_rx();
    let got = g5.received();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0.src_cid, got[0].0.dst_cid), (2, 5));
    assert_eq!(got[0].1, b"to five");

    // The aliased guest's real CID is not reachable: RST from "4".
    g3.tx.add_readable(&[&hdr(3, 4, OP_REQUEST, 0).to_bytes()]);
    g3.run_tx();
    g3.run_rx();
    let got = g3.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, hdr(3, 4, OP_REQUEST, 0).rst_reply());
    assert_eq!(r.port(1).queued_packets(), 0);
}

#[test]
fn rst_for_unknown_cids_and_none_for_rst() {
    two_guests!(r, mut a, _b, BIG);
    // 4 is configured but its QEMU is gone.
    r.disconnect(1);
    let dsts = [0u64, 1, 2, 4, 99, CID_ANY, u64::MAX];
    for &d in &dsts {
        let mut h = hdr(3, d, OP_REQUEST, 0);
        h.src_port = 40_000 + d as u32 % 1000;
        a.tx.add_readable(&[&h.to_bytes()]);
    }
    // A RST to an unknown CID is not answered; a RW is.
    a.tx.add_readable(&[&hdr(3, 99, OP_RST, 0).to_bytes()]);
    a.tx.add_readable(&[&rw_bytes(3, 99, b"data")]);
    assert_eq!(a.run_tx().used, dsts.len() as u32 + 2);
    a.post_rx(20, 4096);
    a.run_rx();
    let got = a.received();
    assert_eq!(got.len(), dsts.len() + 1);
    for (i, &d) in dsts.iter().enumerate() {
        let mut h = hdr(3, d, OP_REQUEST, 0);
        h.src_port = 40_000 + d as u32 % 1000;
        let rst = got[i].0;
        assert_eq!(rst, h.rst_reply(), "dst {d}");
        assert_eq!((rst.src_cid, rst.dst_cid, rst.op), (d, 3, OP_RST));
        assert!(got[i].1.is_empty());
    }
    assert_eq!(got[dsts.len()].0, hdr(3, 99, OP_RW, 4).rst_reply());
    assert_eq!(r.port(0).queued_packets(), 0);
}

#[test]
fn spoofed_src_cid_is_dropped_without_answer() {
    two_guests!(r, mut a, mut b, BIG);
    a.tx.add_readable(&[&rw_bytes(4, 4, b"spoof")]);
    a.tx.add_readable(&[&rw_bytes(5, 4, b"spoof")]);
    a.tx.add_readable(&[&hdr(2, 4, OP_REQUEST, 0).to_bytes()]);
    a.tx.add_readable(&[&rw_bytes(3, 4, b"real")]);
    assert_eq!(a.run_tx().used, 4);
    assert_eq!(a.tx.used_idx(), 4);
    a.post_rx(4, 4096);
    b.post_rx(4, 4096);
    a.run_rx();
    b.run_rx();
    assert!(a.received().is_empty(), "no RST for a spoofed packet");
    let got = b.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"real");
    assert_eq!(
        r.port(0)
            .stats
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

#[test]
fn malformed_packets_are_answered_or_dropped_and_chains_returned() {
    two_guests!(r, mut a, mut b, BIG);
    let good = hdr(3, 4, OP_RW, 10);
    // Short chains: no header at all -> dropped silently.
    a.tx.add_readable(&[&good.to_bytes()[..HDR_LEN - 1]]);
    a.tx.add_readable(&[&[][..]]);
    // len larger / smaller than the payload present.
    a.tx.add_readable(&[&good.to_bytes(), &[1u8; 9]]);
    a.tx.add_readable(&[&good.to_bytes(), &[1u8; 11]]);
    // Over 64 KiB of payload.
    let mut huge = hdr(3, 4, OP_RW, MAX_PAYLOAD + 1).to_bytes().to_vec();
    huge.resize(HDR_LEN + MAX_PAYLOAD + 1, 0);
    a.tx.add_readable(&[&huge]);
    // Not STREAM; and the same as a RST (no answer).
    let mut dgram = hdr(3, 4, OP_REQUEST, 0);
    dgram.type_ = 2;
    a.tx.add_readable(&[&dgram.to_bytes()]);
    let mut dgram_rst = dgram;
    dgram_rst.op = OP_RST;
    a.tx.add_readable(&[&dgram_rst.to_bytes()]);
    // Unknown ops.
    for op in [0u16, 8, 0xffff] {
        a.tx.add_readable(&[&hdr(3, 4, op, 0).to_bytes()]);
    }
    // A control packet with payload.
    let mut shut = hdr(3, 4, OP_SHUTDOWN, 3).to_bytes().to_vec();
    shut.extend_from_slice(b"xyz");
    a.tx.add_readable(&[&shut]);
    // A RST with payload: malformed, and never answered.
    let mut rst = hdr(3, 4, OP_RST, 2).to_bytes().to_vec();
    rst.extend_from_slice(b"xy");
    a.tx.add_readable(&[&rst]);
    let total = 12;
    assert_eq!(a.run_tx().used, total);
    assert_eq!(a.tx.used_idx(), total as u16);
    for i in 0..total as u16 {
        assert_eq!(a.tx.used_elem(i).1, 0);
    }
    a.post_rx(20, 4096);
    b.post_rx(20, 4096);
    a.run_rx();
    b.run_rx();
    assert!(b.received().is_empty(), "nothing malformed is forwarded");
    let rsts = a.received();
    // Two len mismatches, the huge one, the datagram, three unknown ops, shutdown.
    assert_eq!(rsts.len(), 8);
    for (h, p) in &rsts {
        assert_eq!((h.op, h.src_cid, h.dst_cid, h.len), (OP_RST, 4, 3, 0));
        assert!(p.is_empty());
    }
    assert_eq!(rsts[3].0.type_, 2, "RST keeps the offending type");
}

#[test]
fn control_packets_pass_unchanged() {
    two_guests!(r, mut a, mut b, BIG);
    let mut sent = Vec::new();
    for op in [
        OP_REQUEST,
        OP_RESPONSE,
        OP_SHUTDOWN,
        OP_CREDIT_UPDATE,
        OP_RST,
    ] {
        let mut h = hdr(3, 4, op, 0);
        h.flags = 3;
        h.buf_alloc = 1 << 18;
        h.fwd_cnt = 12_345;
        a.tx.add_readable(&[&h.to_bytes()]);
        sent.push(h);
    }
    a.run_tx();
    b.post_rx(8, 4096);
    b.run_rx();
    let got: Vec<Header> = b.received().into_iter().map(|(h, _)| h).collect();
    assert_eq!(got, sent);
}

/// Fill guest 4's FIFO from guest 3 with 4 KiB packets until 3 pauses.
#[test]
fn queue_bound_pauses_the_sender_and_resumes_it() {
    let pkt = 4096;
    let limit = 4 * (HDR_LEN + pkt);
    two_guests!(r, mut a, mut b, limit);
    let n = 12;
    for i in 0..n {
        a.tx.add_readable(&[&rw_bytes(3, 4, &pattern(pkt, i as u8))]);
    }
    let out = a.run_tx();
    // Four fit, the fifth is held, nothing more is taken from the ring.
    assert!(out.paused);
    assert_eq!(out.used, 5);
    assert_eq!(a.tx.used_idx(), 5);
    assert!(a.dev.is_paused());
    assert_eq!(r.port(1).queued_packets(), 4);
    // Kicks while paused change nothing.
    assert_eq!(
        a.run_tx(),
        xv_vsockd::device::TxOutcome {
            used: 0,
            paused: true
        }
    );
    a.dev.port().clear_wake();

    // 4 takes one packet: 3/4 full, above half: 3 stays asleep.
    b.post_rx(1, (HDR_LEN + pkt) as u32);
    b.run_rx();
    assert!(a.dev.port().wake_fd().read().is_err(), "woken too early");
    // Two more: at half the bound, 3 is woken.
    b.post_rx(2, (HDR_LEN + pkt) as u32);
    b.run_rx();
    assert_eq!(a.dev.port().wake_fd().read().unwrap(), 1);

    // Run both until everything has crossed, in order.
    let mut rounds = 0;
    while a.tx.used_idx() < n as u16 || r.port(1).queued_packets() > 0 || a.dev.is_paused() {
        a.run_tx();
        b.post_rx(1, (HDR_LEN + pkt) as u32);
        b.run_rx();
        rounds += 1;
        assert!(rounds < 100, "no progress");
        assert!(r.port(1).queued_bytes() <= limit);
    }
    let data: Vec<Vec<u8>> = b.received().into_iter().map(|(_, p)| p).collect();
    let want: Vec<Vec<u8>> = (0..n).map(|i| pattern(pkt, i as u8)).collect();
    assert_eq!(data, want);
}

/// Two guests whose FIFOs are both full still drain: each one's receive side
/// runs while its transmit side is paused.
#[test]
fn mutual_pause_does_not_deadlock() {
    let pkt = 2000;
    let limit = 2 * (HDR_LEN + pkt);
    two_guests!(r, mut a, mut b, limit);
    let n = 6;
    for i in 0..n {
        a.tx.add_readable(&[&rw_bytes(3, 4, &pattern(pkt, i))]);
        b.tx.add_readable(&[&rw_bytes(4, 3, &pattern(pkt, 100 + i))]);
    }
    assert!(a.run_tx().paused);
    assert!(b.run_tx().paused);
    let mut rounds = 0;
    while a.tx.used_idx() < u16::from(n)
        || b.tx.used_idx() < u16::from(n)
        || a.dev.is_paused()
        || b.dev.is_paused()
    {
        a.post_rx(1, 4096);
        b.post_rx(1, 4096);
        a.run_rx();
        b.run_rx();
        a.run_tx();
        b.run_tx();
        rounds += 1;
        assert!(rounds < 100, "deadlock");
    }
    a.post_rx(8, 4096);
    b.post_rx(8, 4096);
    a.run_rx();
    b.run_rx();
    let at_a: Vec<Vec<u8>> = a.received().into_iter().map(|(_, p)| p).collect();
    let at_b: Vec<Vec<u8>> = b.received().into_iter().map(|(_, p)| p).collect();
    assert_eq!(at_b, (0..n).map(|i| pattern(pkt, i)).collect::<Vec<_>>());
    assert_eq!(
        at_a,
        (0..n).map(|i| pattern(pkt, 100 + i)).collect::<Vec<_>>()
    );
}

/// A sender paused on a guest that goes away gets RST for the held packet.
#[test]
fn paused_sender_gets_rst_when_destination_disconnects() {
    two_guests!(r, mut a, _b, 100);
    a.tx.add_readable(&[&rw_bytes(3, 4, &[1; 500])]);
    a.tx.add_readable(&[&rw_bytes(3, 4, &[2; 500])]);
    a.tx.add_readable(&[&rw_bytes(3, 4, &[3; 500])]);
    assert!(a.run_tx().paused);
    assert_eq!(a.tx.used_idx(), 2);
    a.dev.port().clear_wake();
    r.disconnect(1);
    assert_eq!(a.dev.port().wake_fd().read().unwrap(), 1);
    let out = a.run_tx();
    assert!(!out.paused);
    assert_eq!(a.tx.used_idx(), 3);
    a.post_rx(4, 4096);
    a.run_rx();
    let got = a.received();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|(h, _)| h.op == OP_RST && h.src_cid == 4));
}

#[test]
fn transport_reset_event_reaches_the_event_queue() {
    two_guests!(r, mut a, _b, BIG);
    // No event buffer: nothing to do.
    assert_eq!(a.run_events(), 0);
    a.ev.add_writable(&[4]);
    a.ev.add_writable(&[4]);
    // Nothing pending: buffers stay with the device.
    assert_eq!(a.run_events(), 0);
    let r2 = r.clone();
    let asker = thread::spawn(move || r2.port(0).request_reset(Duration::from_secs(10)));
    let mut spins = 0;
    while a.dev.port().pending_resets() == 0 {
        thread::sleep(Duration::from_millis(1));
        spins += 1;
        assert!(spins < 5000);
    }
    assert_eq!(a.run_events(), 1);
    assert!(asker.join().unwrap());
    assert_eq!(a.ev.used_idx(), 1);
    assert_eq!(a.ev.used_bytes(0), vec![0, 0, 0, 0]);
    assert_eq!(a.dev.port().pending_resets(), 0);
}

/// An avail index the queue rejects makes `enable_notification` report new
/// chains forever; the processing loops must still return.
#[test]
fn bogus_avail_index_does_not_hang() {
    two_guests!(r, mut a, mut b, BIG);
    a.tx.add_readable(&[&rw_bytes(3, 4, b"x")]);
    assert_eq!(a.run_tx().used, 1);
    a.tx.set_avail_idx(1 + QSIZE + 5);
    assert_eq!(a.run_tx().used, 0);
    b.rx.set_avail_idx(QSIZE + 5);
    assert_eq!(b.run_rx(), 0);
    assert_eq!(r.port(1).queued_packets(), 1);
}

/// A header-only packet `src:sport` -> `dst:dport` as a Linux guest sends it.
fn ctl(src: (u64, u32), dst: (u64, u32), op: u16, flags: u32) -> Header {
    Header {
        src_port: src.1,
        dst_port: dst.1,
        flags,
        ..hdr(src.0, dst.0, op, 0)
    }
}

/// Have `g` transmit these packets; all must be taken.
fn send(g: &mut TestGuest<'_>, pkts: &[Header]) {
    for h in pkts {
        g.tx.add_readable(&[&h.to_bytes()]);
    }
    assert_eq!(g.run_tx().used as usize, pkts.len());
}

/// The headers `g` receives from here on.
fn receive(g: &mut TestGuest<'_>) -> Vec<Header> {
    g.post_rx(16, 4096);
    g.run_rx();
    g.received().into_iter().map(|(h, _)| h).collect()
}

fn orphans_reset(r: &xv_vsockd::router::Router, index: usize) -> u64 {
    r.port(index)
        .stats
        .orphans_reset
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn request_and_response_make_a_connection_tracked() {
    let (m3, m4, m5) = (new_mem(), new_mem(), new_mem());
    let r = router(&[(3, None), (4, Some(2)), (5, None)], BIG);
    let mut g3 = TestGuest::new(&m3, &r, 0);
    let mut g4 = TestGuest::new(&m4, &r, 1);
    let mut g5 = TestGuest::new(&m5, &r, 2);
    // 3 connects to "the host"; the RESPONSE is the same connection.
    send(&mut g3, &[ctl((3, 1234), (2, 2049), OP_REQUEST, 0)]);
    assert_eq!(r.tracked_counts(), [1, 1, 0]);
    send(&mut g4, &[ctl((4, 2049), (3, 1234), OP_RESPONSE, 0)]);
    assert_eq!(r.tracked_counts(), [1, 1, 0]);
    // A RESPONSE whose REQUEST was not seen makes a connection live too.
    send(&mut g5, &[ctl((5, 700), (3, 800), OP_RESPONSE, 0)]);
    assert_eq!(r.tracked_counts(), [2, 1, 1]);
    // Data and credit on ports never connected do not.
    g3.tx.add_readable(&[&rw_bytes(3, 5, b"x")]);
    g3.tx
        .add_readable(&[&ctl((3, 1), (5, 2), OP_CREDIT_UPDATE, 0).to_bytes()]);
    assert_eq!(g3.run_tx().used, 2);
    assert_eq!(r.tracked_counts(), [2, 1, 1]);
    // Nor does a REQUEST that could not be delivered.
    r.disconnect(2);
    assert_eq!(r.tracked_counts(), [1, 1, 0]);
    send(&mut g3, &[ctl((3, 900), (5, 901), OP_REQUEST, 0)]);
    assert_eq!(r.tracked_counts(), [1, 1, 0]);
    assert!(r.stats_line().contains("cid=3 alias=- up=1 "));
    assert!(r.stats_line().ends_with(" orphans_reset=0 conns=0"));
}

#[test]
fn rst_either_way_forgets_the_connection() {
    two_guests!(r, mut g3, mut g4, BIG, Some(2));
    // Reset by the connecting side.
    send(&mut g3, &[ctl((3, 1000), (2, 2049), OP_REQUEST, 0)]);
    send(&mut g4, &[ctl((4, 2049), (3, 1000), OP_RESPONSE, 0)]);
    send(&mut g3, &[ctl((3, 1000), (2, 2049), OP_RST, 0)]);
    assert_eq!(r.tracked_counts(), [0, 0]);
    // Refused by the listening side.
    send(&mut g3, &[ctl((3, 1001), (2, 2049), OP_REQUEST, 0)]);
    assert_eq!(r.tracked_counts(), [1, 1]);
    send(&mut g4, &[ctl((4, 2049), (3, 1001), OP_RST, 0)]);
    assert_eq!(r.tracked_counts(), [0, 0]);
}

/// Linux closes with SHUTDOWN(RCV|SEND) from the closing side, answered by
/// RST (virtio_transport_close, virtio_transport_recv_connected); the
/// connection is over at the SHUTDOWN. Flags add up per side, as in Linux.
#[test]
fn shutdown_with_both_flags_forgets_the_connection() {
    two_guests!(r, mut g3, mut g4, BIG, Some(2));
    let both = SHUTDOWN_RCV | SHUTDOWN_SEND;
    for port in [1000, 1001, 1002] {
        send(&mut g3, &[ctl((3, port), (2, 2049), OP_REQUEST, 0)]);
        send(&mut g4, &[ctl((4, 2049), (3, port), OP_RESPONSE, 0)]);
    }
    assert_eq!(r.tracked_counts(), [3, 3]);
    // 1000: a close() on the server, answered by the client's RST.
    send(&mut g4, &[ctl((4, 2049), (3, 1000), OP_SHUTDOWN, both)]);
    assert_eq!(r.tracked_counts(), [2, 2]);
    send(&mut g3, &[ctl((3, 1000), (2, 2049), OP_RST, 0)]);
    assert_eq!(r.tracked_counts(), [2, 2]);
    // 1001: shutdown(SHUT_RD) then shutdown(SHUT_WR) on the client.
    send(
        &mut g3,
        &[ctl((3, 1001), (2, 2049), OP_SHUTDOWN, SHUTDOWN_RCV)],
    );
    assert_eq!(r.tracked_counts(), [2, 2]);
    send(
        &mut g3,
        &[ctl((3, 1001), (2, 2049), OP_SHUTDOWN, SHUTDOWN_SEND)],
    );
    assert_eq!(r.tracked_counts(), [1, 1]);
    // 1002: each side shut one way only; nobody sends RST for that.
    send(
        &mut g3,
        &[ctl((3, 1002), (2, 2049), OP_SHUTDOWN, SHUTDOWN_SEND)],
    );
    send(
        &mut g4,
        &[ctl((4, 2049), (3, 1002), OP_SHUTDOWN, SHUTDOWN_RCV)],
    );
    assert_eq!(r.tracked_counts(), [1, 1]);
    receive(&mut g3);
    r.disconnect(1);
    assert_eq!(receive(&mut g3), [Header::rst((2, 2049), (3, 1002))]);
}

#[test]
fn disconnect_sends_nothing_for_closed_connections() {
    two_guests!(r, mut g3, mut g4, BIG, Some(2));
    let both = SHUTDOWN_RCV | SHUTDOWN_SEND;
    // Closed normally, closed by RST, refused, and reset by the client.
    send(&mut g3, &[ctl((3, 1000), (2, 2049), OP_REQUEST, 0)]);
    send(&mut g4, &[ctl((4, 2049), (3, 1000), OP_RESPONSE, 0)]);
    send(&mut g3, &[ctl((3, 1000), (2, 2049), OP_SHUTDOWN, both)]);
    send(&mut g4, &[ctl((4, 2049), (3, 1000), OP_RST, 0)]);
    send(&mut g3, &[ctl((3, 1001), (2, 2049), OP_REQUEST, 0)]);
    send(&mut g4, &[ctl((4, 2049), (3, 1001), OP_RESPONSE, 0)]);
    send(&mut g4, &[ctl((4, 2049), (3, 1001), OP_RST, 0)]);
    send(&mut g3, &[ctl((3, 1002), (2, 111), OP_REQUEST, 0)]);
    send(&mut g4, &[ctl((4, 111), (3, 1002), OP_RST, 0)]);
    receive(&mut g3);
    r.disconnect(1);
    assert!(receive(&mut g3).is_empty());
    assert_eq!(orphans_reset(&r, 0), 0);
}

#[test]
fn disconnect_resets_peers_with_the_addresses_they_know() {
    let (m3, m4, m5) = (new_mem(), new_mem(), new_mem());
    let r = router(&[(3, None), (4, Some(2)), (5, None)], BIG);
    let mut g3 = TestGuest::new(&m3, &r, 0);
    let mut g4 = TestGuest::new(&m4, &r, 1);
    let mut g5 = TestGuest::new(&m5, &r, 2);
    // 3 and 5 mount from "the host", which also calls back to 3; 3 and 5
    // have a connection of their own.
    send(&mut g3, &[ctl((3, 1234), (2, 2049), OP_REQUEST, 0)]);
    send(&mut g5, &[ctl((5, 1234), (2, 2049), OP_REQUEST, 0)]);
    send(
        &mut g4,
        &[
            ctl((4, 2049), (3, 1234), OP_RESPONSE, 0),
            ctl((4, 2049), (5, 1234), OP_RESPONSE, 0),
            ctl((4, 1500), (3, 9000), OP_REQUEST, 0),
        ],
    );
    send(&mut g3, &[ctl((3, 9000), (2, 1500), OP_RESPONSE, 0)]);
    send(&mut g3, &[ctl((3, 7), (5, 8), OP_REQUEST, 0)]);
    send(&mut g5, &[ctl((5, 8), (3, 7), OP_RESPONSE, 0)]);
    assert_eq!(r.tracked_counts(), [3, 3, 2]);
    receive(&mut g3);
    receive(&mut g5);

    // The host's QEMU is killed: its peers see RST from 2.
    r.disconnect(1);
    let mut at3 = receive(&mut g3);
    at3.sort_by_key(|h| h.src_port);
    assert_eq!(
        at3,
        [
            Header::rst((2, 1500), (3, 9000)),
            Header::rst((2, 2049), (3, 1234))
        ]
    );
    assert_eq!(receive(&mut g5), [Header::rst((2, 2049), (5, 1234))]);
    assert!(receive(&mut g4).is_empty());
    assert_eq!(r.tracked_counts(), [1, 0, 1]);
    assert_eq!((orphans_reset(&r, 0), orphans_reset(&r, 2)), (2, 1));
    let stats = r.stats_line();
    assert!(
        stats.starts_with("cid=3 alias=- up=1 ") && stats.contains(" orphans_reset=2 conns=1; "),
        "{stats}"
    );

    // A guest without an alias is known by its CID.
    r.disconnect(0);
    assert_eq!(receive(&mut g5), [Header::rst((3, 7), (5, 8))]);
    assert_eq!(r.tracked_counts(), [0, 0, 0]);
}

/// The RSTs are queued after what the gone guest had sent, and even when
/// the peer's FIFO is at its bound.
#[test]
fn orphan_rst_gets_past_a_full_fifo() {
    let limit = 2 * (HDR_LEN + 1000);
    two_guests!(r, mut g3, mut g4, limit, Some(2));
    send(&mut g3, &[ctl((3, 1234), (2, 2049), OP_REQUEST, 0)]);
    send(&mut g4, &[ctl((4, 2049), (3, 1234), OP_RESPONSE, 0)]);
    receive(&mut g3);
    for i in 0..3 {
        let mut data = hdr(4, 3, OP_RW, 1000);
        (data.src_port, data.dst_port) = (2049, 1234);
        let mut bytes = data.to_bytes().to_vec();
        bytes.extend_from_slice(&pattern(1000, i));
        g4.tx.add_readable(&[&bytes]);
    }
    assert!(g4.run_tx().paused);
    assert_eq!(r.port(0).queued_bytes(), limit);
    r.disconnect(1);
    assert_eq!(r.port(0).queued_packets(), 3);
    let got = receive(&mut g3);
    assert_eq!(got.len(), 3);
    assert!(got[..2].iter().all(|h| h.op == OP_RW && h.src_cid == 2));
    assert_eq!(got[2], Header::rst((2, 2049), (3, 1234)));
}

fn chunks_at(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|c| c % (bytes.len() + 1))
        .filter(|&c| c > 0 && c < bytes.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for c in cuts {
        out.push(bytes[start..c].to_vec());
        start = c;
    }
    out.push(bytes[start..].to_vec());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random payload sizes, random TX descriptor layouts and random RX
    /// chain sizes: the stream arrives whole and every header is right.
    #[test]
    fn random_layouts_preserve_the_stream(
        sizes in prop::collection::vec(0usize..=MAX_PAYLOAD, 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
        rx_sizes in prop::collection::vec((HDR_LEN as u32 + 1)..9000u32, 1..8),
        seed in any::<u8>(),
    ) {
        two_guests!(r, mut a, mut b, BIG);
        let mut want = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let payload = pattern(n, seed.wrapping_add(i as u8));
            want.extend_from_slice(&payload);
            let parts = chunks_at(&rw_bytes(3, 4, &payload), &cuts);
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            a.tx.add_readable(&refs);
        }
        prop_assert_eq!(a.run_tx().used as usize, sizes.len());
        prop_assert_eq!(a.tx.used_idx() as usize, sizes.len());
        let mut got = Vec::new();
        let mut k = 0;
        while r.port(1).queued_packets() > 0 {
            // Every fourth chain is large, so tiny sizes cannot exhaust the ring.
            let size = rx_sizes[k % rx_sizes.len()];
            b.rx.add_writable(&[if k % 4 == 3 { size.max(16_384) } else { size }]);
            k += 1;
            b.run_rx();
            prop_assert!(k < 1000);
        }
        for (h, p) in b.received() {
            prop_assert_eq!(h.len as usize, p.len());
            prop_assert_eq!((h.src_cid, h.dst_cid, h.op, h.fwd_cnt), (3, 4, OP_RW, 4321));
            got.extend_from_slice(&p);
        }
        prop_assert_eq!(got, want);
    }
}
