// SPDX-License-Identifier: GPL-2.0

//! Property tests: the bounded fuzzing of the record decoder, the address
//! parsers, the per-CID connection table and its share of the threads that
//! `make check` runs. The number of cases is fixed (override with
//! PROPTEST_CASES), so the run time is bounded.

use proptest::prelude::*;
use xprtvsock_core::addr::{self, Presentation, UniversalAddr, VsockAddr};
use xprtvsock_core::addr_parse::{self, AddrError};
use xprtvsock_core::cid_table::{Admission, CidCount, CidTable};
use xprtvsock_core::record::{Limits, Marker, Progress, RecordDecoder, RecordError, Want};

/// Decodes `stream` read in chunks of the given sizes (cycled), returning the
/// records and the error that stopped decoding, if any.
fn decode(limits: Limits, stream: &[u8], chunks: &[usize]) -> (Vec<Vec<u8>>, Option<RecordError>) {
    let mut dec = RecordDecoder::new(limits);
    let mut records = Vec::new();
    let mut current = Vec::new();
    let mut pos = 0;
    let mut sizes = chunks.iter().copied().cycle();
    while pos < stream.len() {
        let mut budget = sizes.next().unwrap_or(usize::MAX).max(1);
        while budget > 0 && pos < stream.len() {
            let avail = budget.min(stream.len() - pos);
            let n = match dec.want() {
                Want::Marker(buf) => {
                    let n = buf.len().min(avail);
                    buf[..n].copy_from_slice(&stream[pos..pos + n]);
                    n
                }
                Want::Payload { offset, len } => {
                    assert_eq!(offset as usize, current.len(), "payload offset");
                    let n = (len as usize).min(avail);
                    current.extend_from_slice(&stream[pos..pos + n]);
                    n
                }
            };
            assert!(n > 0, "the decoder asked for nothing");
            pos += n;
            budget -= n;
            match dec.consumed(n) {
                Ok(Progress::Incomplete) => {}
                Ok(Progress::Record { len }) => {
                    assert_eq!(len as usize, current.len(), "record length");
                    records.push(std::mem::take(&mut current));
                }
                Err(e) => return (records, Some(e)),
            }
        }
    }
    (records, None)
}

/// Encodes records, each cut into fragments at the given relative points.
fn encode(records: &[(Vec<u8>, Vec<usize>)]) -> Vec<u8> {
    let mut stream = Vec::new();
    for (payload, cut_points) in records {
        let mut ends: Vec<usize> = cut_points.iter().map(|c| c % (payload.len() + 1)).collect();
        ends.sort_unstable();
        ends.push(payload.len());
        let mut start = 0;
        for (i, &end) in ends.iter().enumerate() {
            let fragment = &payload[start..end];
            let last = i + 1 == ends.len();
            stream.extend_from_slice(&Marker::new(fragment.len(), last).unwrap().to_bytes());
            stream.extend_from_slice(fragment);
            start = end;
        }
    }
    stream
}

fn records_strategy() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<usize>)>> {
    prop::collection::vec(
        (
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(any::<usize>(), 0..6),
        ),
        0..8,
    )
}

/// The reference grammar of a decimal u32: digits only, value in range.
fn reference_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.trim_start_matches('0').parse::<u64>().map_or_else(
        |_| {
            if s.bytes().all(|b| b == b'0') {
                Some(0)
            } else {
                None
            }
        },
        |v| u32::try_from(v).ok(),
    )
}

/// One step against a [`CidTable`].
#[derive(Clone, Debug)]
enum Step {
    /// A connection from this CID.
    Connect(u32),
    /// The release of one of the connections admitted so far (an index,
    /// modulo their number).
    Release(usize),
    /// The operator sets `max_conns_per_cid`.
    Limit(u32),
}

fn steps_strategy() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        6 => (0u32..8).prop_map(Step::Connect),
        4 => any::<usize>().prop_map(Step::Release),
        1 => (0u32..5).prop_map(Step::Limit),
    ];
    prop::collection::vec(step, 0..120)
}

/// Slots the table grows by when it has no room, as the kernel does (with
/// fewer, to reach full tables often).
const CID_TABLE_GROW: usize = 2;

/// Runs `steps` against a table whose slots grow only when it asks, as in
/// the kernel, and against a model of the counts; with a `fixed` limit
/// the `Limit` steps change nothing, else the limit starts at 0.
fn run_cid_table(steps: &[Step], fixed: Option<u32>) -> Result<(), TestCaseError> {
    use std::collections::HashMap;

    let mut table = CidTable::new(Vec::new());
    let mut limit = fixed.unwrap_or(0);
    let mut open: Vec<u32> = Vec::new();
    let mut live: HashMap<u32, u32> = HashMap::new();
    let mut refused: HashMap<u32, u64> = HashMap::new();
    let mut refused_total = 0u64;
    let mut peak_cids = 0;
    for step in steps {
        let before = table.lines().to_vec();
        let was_full = before.len() == table.slots_mut().len();
        // The CID of the step, and whether it was refused.
        let mut touched = None;
        match *step {
            Step::Limit(l) => {
                if fixed.is_none() {
                    limit = l;
                }
            }
            Step::Release(i) => {
                if !open.is_empty() {
                    let cid = open.swap_remove(i % open.len());
                    touched = Some((cid, false));
                    table.release(cid);
                    let n = live.get_mut(&cid).unwrap();
                    *n = n.checked_sub(1).expect("a count below zero");
                }
            }
            Step::Connect(cid) => {
                let l = limit;
                let max = if l == 0 { u32::MAX } else { l };
                let had = live.get(&cid).copied().unwrap_or(0);
                let mut outcome = table.admit(cid, l);
                if outcome == Admission::NoRoom {
                    // Only a new CID, and only when every slot has connections.
                    prop_assert_eq!(had, 0);
                    prop_assert!(table.lines().iter().all(|line| line.live > 0));
                    prop_assert_eq!(table.lines().len(), table.slots_mut().len());
                    let grown = table.slots_mut().len() + CID_TABLE_GROW;
                    table.slots_mut().resize(grown, CidCount::default());
                    outcome = table.admit(cid, l);
                }
                match outcome {
                    Admission::Admitted => {
                        prop_assert!(had < max, "admitted at the limit");
                        touched = Some((cid, false));
                        open.push(cid);
                        *live.entry(cid).or_default() += 1;
                    }
                    Admission::Refused => {
                        prop_assert!(had >= max, "refused below the limit");
                        touched = Some((cid, true));
                        *refused.entry(cid).or_default() += 1;
                        refused_total += 1;
                    }
                    Admission::NoRoom => prop_assert!(false, "no room after growing"),
                }
            }
        }
        let lines = table.lines();
        // The step's CID keeps its refusals (one more if refused now). The
        // other lines stay, except that a new CID in full slots takes the
        // place of the line without connections with the fewest refusals.
        let refusals = |lines: &[CidCount], cid| {
            lines
                .iter()
                .find(|line| line.cid == cid)
                .map_or(0, |line| line.refused)
        };
        let others = |lines: &[CidCount]| -> Vec<CidCount> {
            lines
                .iter()
                .filter(|line| Some(line.cid) != touched.map(|t| t.0))
                .copied()
                .collect()
        };
        if let Some((cid, now_refused)) = touched {
            prop_assert_eq!(
                refusals(lines, cid),
                refusals(&before, cid) + u64::from(now_refused)
            );
        }
        let (old, new) = (others(&before), others(lines));
        if old != new {
            let new_cid = touched.is_some_and(|(cid, _)| before.iter().all(|line| line.cid != cid));
            prop_assert!(
                was_full && new_cid && old.len() == new.len() + 1,
                "{:?} -> {:?}",
                old,
                new
            );
            let gone = old.iter().find(|line| !new.contains(line)).copied();
            let fewest = old
                .iter()
                .filter(|line| line.live == 0)
                .map(|line| line.refused)
                .min();
            prop_assert!(gone.is_some_and(|g| g.live == 0 && Some(g.refused) == fewest));
        }
        prop_assert!(
            lines.windows(2).all(|w| w[0].cid < w[1].cid),
            "unsorted: {:?}",
            lines
        );
        for line in lines {
            prop_assert!(line.live > 0 || line.refused > 0, "empty line {:?}", line);
            prop_assert!(line.refused <= refused.get(&line.cid).copied().unwrap_or(0));
        }
        for (&cid, &n) in &live {
            let shown = lines
                .iter()
                .find(|line| line.cid == cid)
                .map_or(0, |line| line.live);
            prop_assert_eq!(shown, n, "live count of CID {}", cid);
            if let Some(l @ 1..) = fixed {
                prop_assert!(n <= l, "over the limit");
            }
        }
        prop_assert_eq!(table.refused(), refused_total);
        prop_assert!(lines.iter().map(|line| line.refused).sum::<u64>() <= refused_total);
        // Bounded by the connections: the slots are at most the most CIDs
        // that had connections at one time, rounded up to the growth.
        peak_cids = peak_cids.max(live.values().filter(|&&n| n > 0).count());
        let used = lines.len();
        let slots = table.slots_mut();
        prop_assert!(slots.len() <= peak_cids.div_ceil(CID_TABLE_GROW) * CID_TABLE_GROW);
        prop_assert!(slots[used..].iter().all(|s| *s == CidCount::default()));
    }
    Ok(())
}

/// One step of the threads' share, by a connection of CID `cid % 4 + 1`.
#[derive(Clone, Debug)]
enum ShareStep {
    /// SUNRPC asks whether the connection may queue for a thread.
    Queue(u32),
    /// A thread takes a queued connection and starts a call.
    Take(usize),
    /// A call in progress ends (an index, modulo their number).
    End(usize),
}

fn share_steps_strategy() -> impl Strategy<Value = Vec<ShareStep>> {
    let step = prop_oneof![
        4 => any::<u32>().prop_map(ShareStep::Queue),
        3 => any::<usize>().prop_map(ShareStep::Take),
        3 => any::<usize>().prop_map(ShareStep::End),
    ];
    prop::collection::vec(step, 0..200)
}

/// Runs `steps` against a table of four CIDs sharing `threads`, and checks
/// the counts against a model: a CID is held back only while it has a call
/// that will end, and never gets past the share it had when it asked.
fn run_share(steps: &[ShareStep], threads: u32) -> Result<(), TestCaseError> {
    let mut table = CidTable::new(vec![CidCount::default(); 4]);
    for cid in 1..=4 {
        prop_assert_eq!(table.admit(cid, 0), Admission::Admitted);
    }
    let mut queued: Vec<u32> = Vec::new();
    let mut calls: Vec<u32> = Vec::new();
    let count = |v: &Vec<u32>, cid| v.iter().filter(|&&c| c == cid).count() as u32;
    // The even split between `cid` and the other CIDs with calls or queued
    // connections, rounded up, at least one.
    let model_share = |calls: &Vec<u32>, queued: &Vec<u32>, cid: u32| {
        let others = (1..=4)
            .filter(|&c| c != cid && count(calls, c) + count(queued, c) > 0)
            .count() as u32;
        threads.div_ceil(others + 1).max(1)
    };
    for step in steps {
        match *step {
            ShareStep::Queue(n) => {
                let cid = n % 4 + 1;
                let share = model_share(&calls, &queued, cid);
                prop_assert_eq!(table.share(cid, threads), share);
                let used = count(&calls, cid) + count(&queued, cid);
                let taken = table.queue(cid, threads);
                prop_assert_eq!(taken, used < share);
                prop_assert!(taken || used >= 1, "held back with nothing to wait for");
                if taken {
                    queued.push(cid);
                }
            }
            ShareStep::Take(i) => {
                if queued.is_empty() {
                    continue;
                }
                let cid = queued.remove(i % queued.len());
                table.unqueue(cid);
                let share = model_share(&calls, &queued, cid);
                let before = count(&calls, cid);
                let begun = table.begin(cid, threads);
                prop_assert_eq!(begun, before < share);
                prop_assert!(begun || before >= 1, "held back with no call to end");
                if begun {
                    calls.push(cid);
                }
            }
            ShareStep::End(i) => {
                if calls.is_empty() {
                    continue;
                }
                let cid = calls.swap_remove(i % calls.len());
                table.end(cid);
            }
        }
        for line in table.lines() {
            prop_assert_eq!(line.calls, count(&calls, line.cid));
            prop_assert_eq!(line.queued, count(&queued, line.cid));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        // A failure prints its minimal input; nothing is written to the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_fragmentation_and_read_sizes_reassemble(
        records in records_strategy(),
        chunks in prop::collection::vec(1usize..64, 1..16),
    ) {
        let stream = encode(&records);
        let (decoded, err) = decode(Limits::with_max_record_len(4096), &stream, &chunks);
        prop_assert_eq!(err, None);
        let expected: Vec<Vec<u8>> = records.into_iter().map(|(p, _)| p).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn arbitrary_bytes_never_break_the_limits(
        stream in prop::collection::vec(any::<u8>(), 0..512),
        chunks in prop::collection::vec(1usize..16, 1..8),
        max_record_len in 0u32..256,
        max_fragments in 1u32..8,
    ) {
        let limits = Limits { max_record_len, max_fragments };
        let (records, err) = decode(limits, &stream, &chunks);
        let total: usize = records.iter().map(Vec::len).sum();
        prop_assert!(total + 4 * records.len() <= stream.len());
        for r in &records {
            prop_assert!(r.len() <= max_record_len as usize);
        }
        match err {
            None | Some(RecordError::RecordTooLong { .. }) | Some(RecordError::TooManyFragments { .. }) => {}
            Some(e) => prop_assert!(false, "unexpected error {:?}", e),
        }
    }

    #[test]
    fn presentation_round_trips(cid in any::<u32>()) {
        let text = Presentation(cid).to_string();
        prop_assert!(text.len() <= addr::PRESENTATION_MAX_LEN);
        prop_assert_eq!(addr_parse::parse_presentation(text.as_bytes()), Ok(cid));
    }

    #[test]
    fn uaddr_round_trips(cid in any::<u32>(), port in any::<u32>()) {
        let a = VsockAddr { cid, port };
        let text = UniversalAddr(a).to_string();
        prop_assert!(text.len() <= addr::UADDR_MAX_LEN);
        prop_assert_eq!(addr_parse::parse_uaddr(text.as_bytes()), Ok(a));
    }

    #[test]
    fn presentation_matches_reference(s in "(vsock:)?[0-9x .:+-]{0,14}") {
        let expected = s.strip_prefix("vsock:").and_then(reference_decimal);
        prop_assert_eq!(addr_parse::parse_presentation(s.as_bytes()).ok(), expected);
    }

    #[test]
    fn uaddr_matches_reference(s in "[0-9]{0,11}[.:x]?[0-9]{0,11}[. ]?[0-9]{0,2}") {
        let expected = s.split_once('.').and_then(|(c, p)| {
            Some(VsockAddr { cid: reference_decimal(c)?, port: reference_decimal(p)? })
        });
        prop_assert_eq!(addr_parse::parse_uaddr(s.as_bytes()).ok(), expected);
    }

    #[test]
    fn parsers_accept_any_bytes(s in prop::collection::vec(any::<u8>(), 0..40)) {
        let _ = addr_parse::parse_presentation(&s);
        if let Err(e) = addr_parse::parse_uaddr(&s) {
            prop_assert!(!e.as_str().is_empty());
            prop_assert!(e != AddrError::NoPrefix);
        }
    }

    #[test]
    fn cid_table_counts_and_bounds(limit in 0u32..5, steps in steps_strategy()) {
        run_cid_table(&steps, Some(limit))?;
    }

    #[test]
    fn cid_table_counts_with_a_changing_limit(steps in steps_strategy()) {
        run_cid_table(&steps, None)?;
    }

    #[test]
    fn threads_are_shared_between_cids(steps in share_steps_strategy(), threads in 0u32..10) {
        run_share(&steps, threads)?;
    }
}
