// SPDX-License-Identifier: GPL-2.0

//! Property tests: the bounded fuzzing of the record decoder and the address
//! parsers that `make check` runs. The number of cases is fixed (override with
//! PROPTEST_CASES), so the run time is bounded.

use proptest::prelude::*;
use xprtvsock_core::addr::{self, Presentation, UniversalAddr, VsockAddr};
use xprtvsock_core::addr_parse::{self, AddrError};
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
}
