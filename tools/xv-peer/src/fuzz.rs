// SPDX-License-Identifier: GPL-2.0

//! The generator of `fuzz`: hostile record-marked streams, one per
//! connection, from proptest strategies driven by a seeded ChaCha RNG, so
//! that a seed reproduces a run.
//!
//! A [`Plan`] is what one connection sends: records the server reads whole
//! and keeps the connection after (NULL calls, calls with garbage
//! arguments or credentials, REPLY-direction records, noise), each cut
//! into fragments in its own way (empty non-final fragments included),
//! then an [`End`]: nothing more, a record shorter than 8 bytes, a
//! fragment header beyond any limit followed by noise, more than 1024
//! fragments, a record cut short, or a fragment that never finishes.
//! [`Splits`] says where the peer's writes begin and end, down to single
//! bytes and inside markers.
//!
//! [`Plan::encode`] gives the bytes, the writes and what the server's
//! record-marking decoder must make of them ([`Expect`]). Nothing here
//! touches a socket.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestRunner};
use xprtvsock_core::record::MAX_FRAGMENT_LEN;

use crate::rpc;

/// Longest payload of a well-formed record, well inside the smallest
/// record nfsd accepts (256 KiB of data and a page).
pub const MAX_BODY: u32 = 60_000;

/// Smallest fragment length of an oversized header: more than any
/// `sv_max_mesg` (1 MiB of data and a page at most).
pub const OVERSIZED_MIN: u32 = 2 << 20;

/// Longest fragment header that every nfsd accepts: 256 KiB of data and
/// a page is the smallest limit.
pub const WITHIN_EVERY_LIMIT: u32 = 256 << 10;

/// Fragments of one record the server accepts.
pub const MAX_FRAGMENTS: usize = 1024;

/// Most records before the end of one connection.
pub const MAX_RECORDS: usize = 80;

/// `len` bytes of noise drawn from `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Noise {
    /// Length in bytes.
    pub len: u32,
    /// Seed of the bytes.
    pub seed: u64,
}

/// SplitMix64: cheap, and enough for noise.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Noise {
    /// Appends the bytes to `out`.
    pub fn extend_into(&self, out: &mut Vec<u8>) {
        let mut state = self.seed;
        let mut left = self.len as usize;
        while left > 0 {
            let word = splitmix(&mut state).to_le_bytes();
            let n = left.min(8);
            out.extend_from_slice(&word[..n]);
            left -= n;
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        self.extend_into(&mut out);
        out
    }
}

/// The payload of a record the server reads whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A NULL call to NFSv4 with AUTH_NONE: answered with SUCCESS.
    Null {
        /// Transaction ID.
        xid: u32,
    },
    /// A CALL header and noise: after AUTH_NONE credentials and verifier
    /// (garbage arguments) if `auth_none`, else right after the procedure
    /// (garbage credentials).
    Call {
        /// Transaction ID.
        xid: u32,
        /// RPC version, 2 or not.
        rpcvers: u32,
        /// Program.
        prog: u32,
        /// Program version.
        vers: u32,
        /// Procedure.
        proc_: u32,
        /// Whether well-formed AUTH_NONE credentials precede the noise.
        auth_none: bool,
        /// The rest.
        rest: Noise,
    },
    /// A REPLY-direction record: XID, direction 1, noise.
    Reply {
        /// Transaction ID.
        xid: u32,
        /// The rest.
        rest: Noise,
    },
    /// At least 8 bytes of noise, direction word included.
    Garbage(Noise),
}

/// The kinds of [`Body`], for the figures and the tests.
pub const BODY_KINDS: [&str; 4] = ["null", "call", "reply", "garbage"];

impl Body {
    /// Which of [`BODY_KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Null { .. } => "null",
            Self::Call { .. } => "call",
            Self::Reply { .. } => "reply",
            Self::Garbage(_) => "garbage",
        }
    }

    /// The record's payload.
    pub fn payload(&self) -> Vec<u8> {
        let words =
            |words: &[u32]| -> Vec<u8> { words.iter().flat_map(|w| w.to_be_bytes()).collect() };
        match *self {
            Self::Null { xid } => rpc::call(xid, rpc::NFS_PROGRAM, 4, 0, &[]),
            Self::Call {
                xid,
                rpcvers,
                prog,
                vers,
                proc_,
                auth_none,
                rest,
            } => {
                let mut out = words(&[xid, rpc::CALL, rpcvers, prog, vers, proc_]);
                if auth_none {
                    out.extend(words(&[rpc::AUTH_NONE, 0, rpc::AUTH_NONE, 0]));
                }
                rest.extend_into(&mut out);
                out
            }
            Self::Reply { xid, rest } => {
                let mut out = words(&[xid, rpc::REPLY]);
                rest.extend_into(&mut out);
                out
            }
            Self::Garbage(noise) => noise.bytes(),
        }
    }
}

/// A record the server reads whole: a body in fragments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// What it carries.
    pub body: Body,
    /// Lengths of the non-final fragments, empty ones included (each cut
    /// to what is left of the payload); the rest goes in the last one.
    pub fragments: Vec<u32>,
}

/// Appends `payload` in fragments of the lengths `fragments` (each cut to
/// what is left) and a last fragment with the rest; returns the offset in
/// `out` just after the last marker.
fn frame_into(out: &mut Vec<u8>, payload: &[u8], fragments: &[u32]) -> usize {
    let mut rest = payload;
    for &len in fragments {
        let n = rest.len().min(len as usize);
        out.extend_from_slice(&rpc::marker(n, false));
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
    out.extend_from_slice(&rpc::marker(rest.len(), true));
    let after_marker = out.len();
    out.extend_from_slice(rest);
    after_marker
}

impl Record {
    /// The record as sent, with its markers.
    pub fn framed(&self) -> Vec<u8> {
        let mut out = Vec::new();
        frame_into(&mut out, &self.body.payload(), &self.fragments);
        out
    }
}

/// How a connection's stream ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Nothing more: the peer shuts down sending between records.
    Clean,
    /// A record of fewer than 8 bytes, maybe empty, maybe in empty
    /// fragments: the server closes after it.
    Short {
        /// The payload, shorter than 8 bytes.
        noise: Noise,
        /// Non-final fragment lengths.
        fragments: Vec<u32>,
    },
    /// Non-final fragments of noise, then a fragment header announcing
    /// more than any server accepts, then noise: the server closes at
    /// that header.
    Oversized {
        /// Lengths of the fragments before the header.
        before: Vec<u32>,
        /// The announced length, at least [`OVERSIZED_MIN`].
        len: u32,
        /// The header's last-fragment flag.
        last: bool,
        /// Noise after the header, and the bytes of the earlier fragments.
        trailing: Noise,
    },
    /// More than 1024 non-final fragments of 0 to 3 bytes in one record:
    /// the server closes at marker 1025.
    FragmentFlood {
        /// Fragments sent, more than 1024.
        count: u32,
        /// Seed of their lengths and bytes.
        seed: u64,
    },
    /// A well-formed record cut after `cut` of its bytes, then the peer
    /// shuts down sending.
    Truncated {
        /// The record.
        record: Record,
        /// Bytes of it sent: at least 1, fewer than all.
        cut: u32,
    },
    /// A fragment header announcing less than [`OVERSIZED_MIN`] followed
    /// by fewer bytes than that, then the peer shuts down sending: the
    /// server waits for the rest, or closes at the header if the length
    /// exceeds its limit.
    Unfinished {
        /// The announced length.
        len: u32,
        /// The header's last-fragment flag.
        last: bool,
        /// The bytes that follow; only fewer than `len` are sent.
        sent: Noise,
    },
}

/// The kinds of [`End`], for the figures and the tests.
pub const END_KINDS: [&str; 6] = [
    "clean",
    "short",
    "oversized",
    "fragment-flood",
    "truncated",
    "unfinished",
];

impl End {
    /// Which of [`END_KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Short { .. } => "short",
            Self::Oversized { .. } => "oversized",
            Self::FragmentFlood { .. } => "fragment-flood",
            Self::Truncated { .. } => "truncated",
            Self::Unfinished { .. } => "unfinished",
        }
    }
}

/// Where the peer's writes begin and end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Splits {
    /// As few writes as possible: many records per write.
    Whole,
    /// Writes end at these offsets (each taken modulo the stream length).
    Cuts(Vec<u32>),
    /// Single-byte writes for `count` bytes from offset `at` (modulo the
    /// stream length).
    Bytewise {
        /// Where the single bytes start.
        at: u32,
        /// How many.
        count: u32,
    },
}

/// What the server's record-marking decoder must make of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every record whole, and end of stream between records.
    Clean,
    /// An error on the marker whose last byte is at offset `at - 1`.
    Reject {
        /// Stream offset just after that marker.
        at: usize,
        /// Too many fragments (else a record too long).
        too_many_fragments: bool,
    },
    /// A record shorter than 8 bytes, ending at offset `at`.
    ShortRecord {
        /// Stream offset just after the short record.
        at: usize,
    },
    /// The stream ends inside a record.
    Truncated,
    /// A fragment header announcing `len` bytes: rejected by a server
    /// whose limit is smaller, else the stream ends inside the record.
    Beyond {
        /// Stream offset just after the header.
        at: usize,
        /// The announced length.
        len: u32,
    },
}

/// What one connection sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Records the server reads whole.
    pub records: Vec<Record>,
    /// How the stream ends.
    pub end: End,
    /// Where the writes begin and end.
    pub splits: Splits,
}

/// A plan turned into bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The stream.
    pub bytes: Vec<u8>,
    /// Lengths of the writes, in order; they add up to `bytes.len()`.
    pub writes: Vec<usize>,
    /// Offset just after each record, the end's included: for a record
    /// the server must reject, just after the marker it rejects.
    pub record_ends: Vec<usize>,
    /// What the server's decoder must make of it.
    pub expect: Expect,
}

impl Plan {
    /// The bytes, writes and expectation of the plan.
    pub fn encode(&self) -> Encoded {
        let mut bytes = Vec::new();
        let mut record_ends = Vec::with_capacity(self.records.len() + 1);
        for record in &self.records {
            frame_into(&mut bytes, &record.body.payload(), &record.fragments);
            record_ends.push(bytes.len());
        }
        let expect = match &self.end {
            End::Clean => Expect::Clean,
            End::Short { noise, fragments } => {
                frame_into(&mut bytes, &noise.bytes(), fragments);
                Expect::ShortRecord { at: bytes.len() }
            }
            End::Oversized {
                before,
                len,
                last,
                trailing,
            } => {
                let noise = trailing.bytes();
                let mut noise = noise.as_slice();
                for &n in before {
                    let n = noise.len().min(n as usize);
                    bytes.extend_from_slice(&rpc::marker(n, false));
                    bytes.extend_from_slice(&noise[..n]);
                    noise = &noise[n..];
                }
                bytes.extend_from_slice(&rpc::marker(*len as usize, *last));
                let at = bytes.len();
                bytes.extend_from_slice(noise);
                Expect::Reject {
                    at,
                    too_many_fragments: false,
                }
            }
            End::FragmentFlood { count, seed } => {
                let mut state = *seed;
                let mut at = 0;
                for i in 1..=*count as usize {
                    let word = splitmix(&mut state);
                    let n = (word & 3) as usize;
                    bytes.extend_from_slice(&rpc::marker(n, false));
                    if i == MAX_FRAGMENTS + 1 {
                        at = bytes.len();
                    }
                    bytes.extend_from_slice(&word.to_le_bytes()[1..=n]);
                }
                Expect::Reject {
                    at,
                    too_many_fragments: true,
                }
            }
            End::Truncated { record, cut } => {
                let framed = record.framed();
                bytes.extend_from_slice(&framed[..*cut as usize]);
                Expect::Truncated
            }
            End::Unfinished { len, last, sent } => {
                bytes.extend_from_slice(&rpc::marker(*len as usize, *last));
                let at = bytes.len();
                let noise = sent.bytes();
                bytes.extend_from_slice(&noise[..noise.len().min(*len as usize - 1)]);
                if *len > WITHIN_EVERY_LIMIT {
                    Expect::Beyond { at, len: *len }
                } else {
                    Expect::Truncated
                }
            }
        };
        match expect {
            Expect::Clean => {}
            // The hostile record has done its work once its marker is out.
            Expect::Reject { at, .. } => record_ends.push(at),
            Expect::ShortRecord { .. } | Expect::Truncated | Expect::Beyond { .. } => {
                record_ends.push(bytes.len());
            }
        }
        let writes = writes(&self.splits, bytes.len());
        Encoded {
            bytes,
            writes,
            record_ends,
            expect,
        }
    }
}

/// The write lengths of `splits` over a stream of `len` bytes.
fn writes(splits: &Splits, len: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let mut ends: Vec<usize> = match splits {
        Splits::Whole => Vec::new(),
        Splits::Cuts(cuts) => cuts.iter().map(|&c| c as usize % len).collect(),
        Splits::Bytewise { at, count } => {
            let at = *at as usize % len;
            (at..len.min(at + *count as usize + 1)).collect()
        }
    };
    ends.push(len);
    ends.retain(|&end| end > 0);
    ends.sort_unstable();
    ends.dedup();
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let n = end - start;
            start = end;
            n
        })
        .collect()
}

fn noise(len: impl Strategy<Value = u32>) -> impl Strategy<Value = Noise> {
    (len, any::<u64>()).prop_map(|(len, seed)| Noise { len, seed })
}

/// Mostly short, so that a run moves records rather than bytes; now and
/// then across pages, rarely near [`MAX_BODY`].
fn rest_len() -> impl Strategy<Value = u32> {
    prop_oneof![
        160 => 0..=64u32,
        40 => 65..=512u32,
        8 => 513..=8192u32,
        1 => 8193..=MAX_BODY - 64,
    ]
}

fn body() -> impl Strategy<Value = Body> {
    let call = (
        any::<u32>(),
        prop_oneof![6 => Just(2u32), 1 => any::<u32>()],
        prop_oneof![6 => Just(rpc::NFS_PROGRAM), 1 => Just(100_227u32), 1 => any::<u32>()],
        prop_oneof![6 => Just(4u32), 2 => 0..=5u32, 1 => any::<u32>()],
        prop_oneof![3 => Just(0u32), 3 => Just(1u32), 1 => 2..=3u32, 1 => any::<u32>()],
        any::<bool>(),
        noise(rest_len()),
    )
        .prop_map(
            |(xid, rpcvers, prog, vers, proc_, auth_none, rest)| Body::Call {
                xid,
                rpcvers,
                prog,
                vers,
                proc_,
                auth_none,
                rest,
            },
        );
    prop_oneof![
        4 => any::<u32>().prop_map(|xid| Body::Null { xid }),
        5 => call,
        1 => (any::<u32>(), noise(rest_len())).prop_map(|(xid, rest)| Body::Reply { xid, rest }),
        2 => noise(prop_oneof![4 => 8..=64u32, 1 => 65..=1024u32]).prop_map(Body::Garbage),
    ]
}

fn fragments() -> impl Strategy<Value = Vec<u32>> {
    prop_oneof![
        6 => Just(Vec::new()),
        3 => vec(prop_oneof![2 => Just(0u32), 4 => 1..=16u32, 2 => 17..=4096u32], 1..=16),
        1 => vec(prop_oneof![3 => Just(0u32), 1 => 1..=4u32], 16..=64),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (body(), fragments()).prop_map(|(body, fragments)| Record { body, fragments })
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        4 => Just(End::Clean),
        1 => (noise(0..=7u32), vec(0..=3u32, 0..=4))
            .prop_map(|(noise, fragments)| End::Short { noise, fragments }),
        1 => (
            vec(0..=64u32, 0..=3),
            prop_oneof![1 => Just(MAX_FRAGMENT_LEN), 3 => OVERSIZED_MIN..=MAX_FRAGMENT_LEN],
            any::<bool>(),
            noise(prop_oneof![3 => 0..=256u32, 1 => 257..=16_384u32]),
        )
            .prop_map(|(before, len, last, trailing)| End::Oversized {
                before,
                len,
                last,
                trailing,
            }),
        1 => ((MAX_FRAGMENTS as u32 + 1)..=1300, any::<u64>())
            .prop_map(|(count, seed)| End::FragmentFlood { count, seed }),
        // A quarter of them inside the first marker.
        2 => (record(), prop_oneof![1 => 1..=3u32, 3 => 4..=u32::MAX]).prop_map(|(record, cut)| {
            let len = record.framed().len() as u32;
            let cut = if cut < 4 { cut } else { 1 + cut % (len - 1) };
            End::Truncated { record, cut }
        }),
        1 => (
            prop_oneof![
                2 => 1..=4096u32,
                2 => 4097..=WITHIN_EVERY_LIMIT,
                1 => WITHIN_EVERY_LIMIT + 1..OVERSIZED_MIN,
            ],
            any::<bool>(),
            noise(prop_oneof![3 => 0..=256u32, 1 => 257..=16_384u32]),
        )
            .prop_map(|(len, last, sent)| End::Unfinished { len, last, sent }),
    ]
}

fn splits() -> impl Strategy<Value = Splits> {
    prop_oneof![
        5 => Just(Splits::Whole),
        4 => vec(any::<u32>(), 1..=24).prop_map(Splits::Cuts),
        1 => (any::<u32>(), 1..=64u32).prop_map(|(at, count)| Splits::Bytewise { at, count }),
    ]
}

/// The strategy of one connection's plan.
pub fn plan() -> impl Strategy<Value = Plan> {
    (vec(record(), 0..=MAX_RECORDS), end(), splits()).prop_map(|(records, end, splits)| Plan {
        records,
        end,
        splits,
    })
}

/// Plans from a seed: the same seed gives the same plans.
pub struct Generator {
    runner: TestRunner,
    strategy: BoxedStrategy<Plan>,
}

impl Generator {
    /// A generator whose ChaCha RNG is seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        let config = Config {
            rng_algorithm: RngAlgorithm::ChaCha,
            rng_seed: RngSeed::Fixed(seed),
            ..Config::default()
        };
        Self {
            runner: TestRunner::new(config),
            strategy: plan().boxed(),
        }
    }
}

impl Iterator for Generator {
    type Item = Plan;

    fn next(&mut self) -> Option<Plan> {
        let tree = self
            .strategy
            .new_tree(&mut self.runner)
            .expect("the plan strategy rejects nothing");
        Some(tree.current())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use xprtvsock_core::record::{Limits, Progress, RecordDecoder, RecordError, Want};

    use super::*;
    use crate::fake::MAX_RECORD;

    /// The smallest record nfsd accepts: 256 KiB of data and a page.
    const MIN_RECORD: u32 = (256 << 10) + 4096;

    /// The expectation for a server that accepts records of `max` bytes.
    fn with_limit(expect: Expect, max: u32) -> Expect {
        match expect {
            Expect::Beyond { at, len } if len > max => Expect::Reject {
                at,
                too_many_fragments: false,
            },
            Expect::Beyond { .. } => Expect::Truncated,
            other => other,
        }
    }

    /// What the server's decoder made of a stream fed in `writes`.
    #[derive(Debug, Default)]
    struct Decoded {
        /// Whole records and the offset just after each.
        records: Vec<(Vec<u8>, usize)>,
        /// The decoder's error and the offset just after the byte that
        /// caused it.
        error: Option<(RecordError, usize)>,
        /// Whether the stream ended inside a record.
        in_record: bool,
        /// Offsets of the markers' first bytes.
        markers: Vec<usize>,
    }

    fn decode(bytes: &[u8], writes: &[usize], max_record: u32) -> Decoded {
        let mut decoder = RecordDecoder::new(Limits::with_max_record_len(max_record));
        let mut out = Decoded::default();
        let mut record = Vec::new();
        let mut offset = 0;
        for &write in writes {
            let mut data = &bytes[offset..offset + write];
            while !data.is_empty() {
                let n = match decoder.want() {
                    Want::Marker(buf) => {
                        if buf.len() == 4 {
                            out.markers.push(offset);
                        }
                        let n = buf.len().min(data.len());
                        buf[..n].copy_from_slice(&data[..n]);
                        n
                    }
                    Want::Payload { offset: at, len } => {
                        assert_eq!(at as usize, record.len());
                        let n = (len as usize).min(data.len());
                        record.extend_from_slice(&data[..n]);
                        n
                    }
                };
                data = &data[n..];
                offset += n;
                match decoder.consumed(n) {
                    Ok(Progress::Incomplete) => {}
                    Ok(Progress::Record { len }) => {
                        assert_eq!(len as usize, record.len());
                        out.records.push((std::mem::take(&mut record), offset));
                    }
                    Err(e) => {
                        out.error = Some((e, offset));
                        return out;
                    }
                }
            }
        }
        out.in_record = decoder.in_record();
        out
    }

    /// Checks what the decoder makes of `plan` against what `encode`
    /// promised, for the largest and the smallest nfsd limit.
    fn check(plan: &Plan, encoded: &Encoded, writes: &[usize]) {
        for max in [MAX_RECORD, MIN_RECORD] {
            let decoded = decode(&encoded.bytes, writes, max);
            let n = plan.records.len();
            assert!(decoded.records.len() >= n, "{plan:?}");
            for (i, record) in plan.records.iter().enumerate() {
                let (payload, end) = &decoded.records[i];
                assert_eq!(*payload, record.body.payload(), "record {i} of {plan:?}");
                assert_eq!(*end, encoded.record_ends[i], "record {i} of {plan:?}");
                assert!(payload.len() >= 8, "record {i} of {plan:?}");
            }
            let extra = &decoded.records[n..];
            match with_limit(encoded.expect, max) {
                Expect::Clean => {
                    assert!(extra.is_empty() && decoded.error.is_none() && !decoded.in_record);
                }
                Expect::ShortRecord { at } => {
                    assert_eq!(extra.len(), 1, "{plan:?}");
                    assert!(extra[0].0.len() < 8);
                    assert_eq!(extra[0].1, at);
                    assert_eq!(at, encoded.bytes.len());
                    assert!(decoded.error.is_none() && !decoded.in_record);
                }
                Expect::Reject {
                    at,
                    too_many_fragments,
                } => {
                    assert!(extra.is_empty(), "{plan:?}");
                    let (error, offset) = decoded.error.expect("a decoder error");
                    assert_eq!(offset, at, "{plan:?}");
                    if !matches!(plan.end, End::Unfinished { .. }) {
                        assert_eq!(encoded.record_ends.last(), Some(&at));
                    }
                    match error {
                        RecordError::TooManyFragments { max } => {
                            assert!(too_many_fragments);
                            assert_eq!(max as usize, MAX_FRAGMENTS);
                        }
                        RecordError::RecordTooLong { .. } => assert!(!too_many_fragments),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                Expect::Truncated => {
                    assert!(extra.is_empty(), "{plan:?}");
                    assert!(decoded.error.is_none() && decoded.in_record, "{plan:?}");
                }
                Expect::Beyond { .. } => unreachable!("with_limit() decides"),
            }
        }
    }

    #[test]
    fn a_seed_reproduces_its_plans() {
        let a: Vec<Encoded> = Generator::new(42).take(100).map(|p| p.encode()).collect();
        let b: Vec<Encoded> = Generator::new(42).take(100).map(|p| p.encode()).collect();
        assert!(a == b);
        let c: Vec<Encoded> = Generator::new(43).take(100).map(|p| p.encode()).collect();
        assert!(a != c);
    }

    #[test]
    fn writes_cover_the_stream() {
        for (plan, seed) in Generator::new(7).take(500).zip(0..) {
            let encoded = plan.encode();
            assert_eq!(
                encoded.writes.iter().sum::<usize>(),
                encoded.bytes.len(),
                "{seed}"
            );
            assert!(encoded.writes.iter().all(|&n| n > 0));
            if plan.splits == Splits::Whole {
                assert!(encoded.writes.len() <= 1);
            }
            let records = plan.records.len() + usize::from(plan.end != End::Clean);
            assert_eq!(encoded.record_ends.len(), records);
        }
    }

    #[test]
    fn streams_decode_as_expected() {
        for seed in [1, 2] {
            for plan in Generator::new(seed).take(200) {
                let encoded = plan.encode();
                check(&plan, &encoded, &encoded.writes);
            }
        }
        // Byte by byte, the decoder's answer is the same.
        for plan in Generator::new(4).take(20) {
            let encoded = plan.encode();
            check(&plan, &encoded, &vec![1; encoded.bytes.len()]);
        }
    }

    #[test]
    fn bodies_are_what_they_say() {
        let word = |p: &[u8], i: usize| u32::from_be_bytes(p[4 * i..4 * i + 4].try_into().unwrap());
        for plan in Generator::new(5).take(300) {
            for record in &plan.records {
                let payload = record.body.payload();
                match record.body {
                    Body::Null { xid } => {
                        assert_eq!(payload, rpc::call(xid, rpc::NFS_PROGRAM, 4, 0, &[]));
                    }
                    Body::Call {
                        xid,
                        rpcvers,
                        auth_none,
                        rest,
                        ..
                    } => {
                        assert_eq!((word(&payload, 0), word(&payload, 1)), (xid, rpc::CALL));
                        assert_eq!(word(&payload, 2), rpcvers);
                        let header = if auth_none { 40 } else { 24 };
                        assert_eq!(payload.len(), header + rest.len as usize);
                    }
                    Body::Reply { xid, rest } => {
                        assert_eq!((word(&payload, 0), word(&payload, 1)), (xid, rpc::REPLY));
                        assert_eq!(payload.len(), 8 + rest.len as usize);
                    }
                    Body::Garbage(noise) => {
                        assert!(payload.len() >= 8);
                        assert_eq!(payload.len(), noise.len as usize);
                    }
                }
                assert!(payload.len() <= MAX_BODY as usize);
            }
        }
    }

    /// Every category turns up in a few thousand plans: a generator that
    /// lost one fails here.
    #[test]
    fn the_mixture_has_every_category() {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut see = |what: String| *seen.entry(what).or_default() += 1;
        let plans = 2000;
        for plan in Generator::new(6).take(plans) {
            let encoded = plan.encode();
            for record in &plan.records {
                see(format!("body {}", record.body.kind()));
                match record.fragments.len() {
                    0 => see("one fragment".into()),
                    _ => see("several fragments".into()),
                }
                if record.fragments.contains(&0) {
                    see("empty non-final fragment".into());
                }
                if let Body::Call {
                    rpcvers,
                    prog,
                    vers,
                    proc_,
                    auth_none,
                    ..
                } = record.body
                {
                    see(format!("call auth_none={auth_none}"));
                    if rpcvers != 2 {
                        see("call rpcvers != 2".into());
                    }
                    if (prog, vers) == (rpc::NFS_PROGRAM, 4) {
                        see(format!("call NFSv4 proc {}", proc_.min(2)));
                    } else {
                        see("call other program or version".into());
                    }
                }
            }
            see(format!("end {}", plan.end.kind()));
            match &plan.end {
                End::Short { noise, .. } => see(format!("short of {} bytes", noise.len)),
                End::Oversized { len, last, .. } => {
                    see(format!("oversized last={last}"));
                    if *len == MAX_FRAGMENT_LEN {
                        see("oversized 2^31-1".into());
                    }
                }
                End::Truncated { cut, .. } if *cut < 4 => see("truncated in a marker".into()),
                End::Truncated { .. } => see("truncated after a marker".into()),
                End::Unfinished { len, .. } if *len > WITHIN_EVERY_LIMIT => {
                    see("unfinished beyond the smallest limit".into());
                }
                End::Unfinished { len, .. } if *len > 4096 => see("unfinished large".into()),
                _ => {}
            }
            let kind = match plan.splits {
                Splits::Whole => "whole",
                Splits::Cuts(_) => "cuts",
                Splits::Bytewise { .. } => "bytewise",
            };
            see(format!("splits {kind}"));
            // A write that ends inside a marker.
            let decoded = decode(&encoded.bytes, &encoded.writes, MAX_RECORD);
            let mut end = 0;
            for &n in &encoded.writes[..encoded.writes.len().saturating_sub(1)] {
                end += n;
                if decoded.markers.iter().any(|&m| m < end && end < m + 4) {
                    see("write ends inside a marker".into());
                    break;
                }
            }
            if plan.records.len() > 1 && encoded.writes.len() == 1 {
                see("several records in one write".into());
            }
            if plan.records.is_empty() {
                see("no record before the end".into());
            }
        }
        let mut wanted: Vec<String> = Vec::new();
        wanted.extend(BODY_KINDS.iter().map(|k| format!("body {k}")));
        wanted.extend(END_KINDS.iter().map(|k| format!("end {k}")));
        wanted.extend((0..8).map(|n| format!("short of {n} bytes")));
        wanted.extend(
            [
                "one fragment",
                "several fragments",
                "empty non-final fragment",
                "call auth_none=true",
                "call auth_none=false",
                "call rpcvers != 2",
                "call NFSv4 proc 0",
                "call NFSv4 proc 1",
                "call NFSv4 proc 2",
                "call other program or version",
                "oversized last=true",
                "oversized last=false",
                "oversized 2^31-1",
                "truncated in a marker",
                "truncated after a marker",
                "unfinished large",
                "unfinished beyond the smallest limit",
                "splits whole",
                "splits cuts",
                "splits bytewise",
                "write ends inside a marker",
                "several records in one write",
                "no record before the end",
            ]
            .map(String::from),
        );
        for what in &wanted {
            let n = seen.get(what).copied().unwrap_or(0);
            assert!(n >= 5, "{what}: {n} in {plans} plans; seen: {seen:?}");
        }
    }
}
