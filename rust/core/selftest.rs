// SPDX-License-Identifier: GPL-2.0

//! Test cases for the pure logic, run both by `cargo test` on the host and by
//! the KUnit suite inside the kernel, so that both prove the same code.
//!
//! Each case returns the first failed expectation; nothing here allocates.

use crate::addr::{self, Presentation, UniversalAddr, VsockAddr};
use crate::addr_parse::{self, AddrError};
use crate::cid_table::{Admission, CidCount, CidTable};
use crate::record::{
    self, Limits, Marker, Progress, RecordDecoder, RecordError, Want, MARKER_LEN, MAX_FRAGMENT_LEN,
};

/// A failed expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Source file of the expectation.
    pub file: &'static str,
    /// Line of the expectation.
    pub line: u32,
    /// The expectation, as written.
    pub what: &'static str,
}

/// The result of one case.
pub type Outcome = Result<(), Failure>;

/// One named test case.
pub struct Case {
    /// Name, as KUnit and `cargo test` report it.
    pub name: &'static str,
    /// The case itself.
    pub run: fn() -> Outcome,
}

macro_rules! expect {
    ($cond:expr) => {
        if !$cond {
            return Err(Failure {
                file: file!(),
                line: line!(),
                what: stringify!($cond),
            });
        }
    };
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, in order.
        pub const CASES: &[Case] = &[$(Case { name: stringify!($name), run: $name }),*];

        #[cfg(test)]
        mod host {
            $(
                #[test]
                fn $name() {
                    if let Err(f) = super::$name() {
                        panic!("{}:{}: expected {}", f.file, f.line, f.what);
                    }
                }
            )*
        }
    };
}

cases!(
    marker_encoding,
    marker_length_limit,
    single_fragment_record,
    zero_length_records,
    empty_last_fragment_ends_record,
    every_split_of_multi_fragment_records,
    record_length_limit,
    fragment_count_limit,
    overrun_is_refused,
    reset_forgets_partial_record,
    largest_marker_is_accepted,
    presentation_parses,
    presentation_rejects,
    uaddr_parses,
    uaddr_rejects,
    formatting,
    format_into_bounds,
    cid_limit_refuses_at_the_limit,
    cid_limit_zero_is_no_limit,
    cid_lines_sorted_and_removed,
    cid_refusals_outlive_connections,
    cid_table_reuses_idle_lines,
    cid_limit_lowered,
    cid_alone_takes_every_thread,
    cid_share_splits_threads,
    cid_share_counts_queued,
);

fn marker_encoding() -> Outcome {
    let last = Marker::new(0x1234, true).map_err(|_| fail(line!()))?;
    expect!(last.to_bytes() == [0x80, 0, 0x12, 0x34]);
    expect!(Marker::from_bytes(last.to_bytes()) == last);
    let more = Marker::new(MAX_FRAGMENT_LEN as usize, false).map_err(|_| fail(line!()))?;
    expect!(more.to_bytes() == [0x7f, 0xff, 0xff, 0xff]);
    expect!(!more.is_last() && more.fragment_len() == MAX_FRAGMENT_LEN);
    let all_ones = Marker::from_bytes([0xff; 4]);
    expect!(all_ones.is_last() && all_ones.fragment_len() == MAX_FRAGMENT_LEN);
    expect!(record::single_fragment_marker(100) == Ok([0x80, 0, 0, 100]));
    Ok(())
}

fn marker_length_limit() -> Outcome {
    let too_long = MAX_FRAGMENT_LEN as usize + 1;
    expect!(Marker::new(too_long, true) == Err(RecordError::FragmentTooLong { len: too_long }));
    expect!(record::single_fragment_marker(too_long).is_err());
    expect!(Marker::new(MAX_FRAGMENT_LEN as usize, true).is_ok());
    Ok(())
}

/// Room for the records a case decodes.
struct Collected {
    data: [u8; 64],
    len: usize,
    record_ends: [usize; 8],
    records: usize,
}

/// Feeds `stream` to a decoder as reads that stop at each of `cuts`, the way
/// socket reads can stop anywhere, and collects the records it yields.
fn decode(limits: Limits, stream: &[u8], cuts: &[usize]) -> Result<Collected, RecordError> {
    let mut dec = RecordDecoder::new(limits);
    let mut out = Collected {
        data: [0; 64],
        len: 0,
        record_ends: [0; 8],
        records: 0,
    };
    let mut record_start = 0;
    let mut pos = 0;
    for &end in cuts.iter().chain(core::iter::once(&stream.len())) {
        while pos < end {
            let avail = end - pos;
            let n = match dec.want() {
                Want::Marker(buf) => {
                    let n = buf.len().min(avail);
                    buf[..n].copy_from_slice(&stream[pos..pos + n]);
                    n
                }
                Want::Payload { offset, len } => {
                    let n = (len as usize).min(avail);
                    let at = record_start + offset as usize;
                    // A wrong offset shows up as a mismatch in the record's bytes.
                    out.data[at..at + n].copy_from_slice(&stream[pos..pos + n]);
                    out.len = out.len.max(at + n);
                    n
                }
            };
            pos += n;
            if let Progress::Record { len } = dec.consumed(n)? {
                record_start += len as usize;
                out.len = record_start;
                out.record_ends[out.records] = record_start;
                out.records += 1;
            }
        }
    }
    Ok(out)
}

fn fail(line: u32) -> Failure {
    Failure {
        file: file!(),
        line,
        what: "an unexpected error",
    }
}

const NO_CUTS: &[usize] = &[];
const SMALL: Limits = Limits::with_max_record_len(64);

fn single_fragment_record() -> Outcome {
    let stream = [0x80, 0, 0, 3, b'a', b'b', b'c'];
    let out = decode(SMALL, &stream, NO_CUTS).map_err(|_| fail(line!()))?;
    expect!(out.records == 1 && out.record_ends[0] == 3);
    expect!(&out.data[..3] == b"abc");
    Ok(())
}

fn zero_length_records() -> Outcome {
    // An empty last fragment ends an empty record; empty middle fragments
    // add nothing.
    let stream = [0x80, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 1, b'z'];
    let out = decode(SMALL, &stream, NO_CUTS).map_err(|_| fail(line!()))?;
    expect!(out.records == 2);
    expect!(out.record_ends[0] == 0 && out.record_ends[1] == 1);
    expect!(out.data[0] == b'z');
    Ok(())
}

fn empty_last_fragment_ends_record() -> Outcome {
    // "abc" then an empty last fragment: the record, all of its payload
    // already read, ends when the last marker byte is, as receivers that
    // deliver a record only at its end rely on.
    const STREAM: [u8; 11] = [0, 0, 0, 3, b'a', b'b', b'c', 0x80, 0, 0, 0];
    for cut in 0..=STREAM.len() {
        let out = decode(SMALL, &STREAM, &[cut]).map_err(|_| fail(line!()))?;
        expect!(out.records == 1 && out.record_ends[0] == 3);
        expect!(&out.data[..3] == b"abc");
    }
    let mut dec = RecordDecoder::new(SMALL);
    for (i, &b) in STREAM.iter().enumerate() {
        let in_marker = match dec.want() {
            Want::Marker(buf) => {
                buf[0] = b;
                true
            }
            Want::Payload { .. } => false,
        };
        let progress = dec.consumed(1).map_err(|_| fail(line!()))?;
        if i + 1 == STREAM.len() {
            expect!(in_marker && progress == Progress::Record { len: 3 });
        } else {
            expect!(progress == Progress::Incomplete);
        }
    }
    Ok(())
}

/// Three records: "abc"+""+"defgh" in three fragments, "" alone, "i"+"jklmnop".
const MULTI: [u8; 44] = [
    0, 0, 0, 3, b'a', b'b', b'c', //
    0, 0, 0, 0, //
    0x80, 0, 0, 5, b'd', b'e', b'f', b'g', b'h', //
    0x80, 0, 0, 0, //
    0, 0, 0, 1, b'i', //
    0x80, 0, 0, 7, b'j', b'k', b'l', b'm', b'n', b'o', b'p', //
    0, 0, 0, 0,
];
const MULTI_PAYLOAD: &[u8] = b"abcdefghijklmnop";

fn every_split_of_multi_fragment_records() -> Outcome {
    // The trailing empty fragment leaves a record open, so four bytes of
    // the stream are a partial record and yield nothing.
    for first in 0..=MULTI.len() {
        for second in first..=MULTI.len() {
            let out = decode(SMALL, &MULTI, &[first, second]).map_err(|_| fail(line!()))?;
            expect!(out.records == 3);
            expect!(out.record_ends[..3] == [8, 8, 16]);
            expect!(&out.data[..out.len] == MULTI_PAYLOAD);
        }
    }
    let mut dec = RecordDecoder::new(SMALL);
    expect!(!dec.in_record());
    for (i, &b) in MULTI.iter().enumerate() {
        if let Want::Marker(buf) = dec.want() {
            buf[0] = b;
        }
        let progress = dec.consumed(1).map_err(|_| fail(line!()))?;
        expect!((progress != Progress::Incomplete) == (i == 19 || i == 23 || i == 39));
    }
    expect!(dec.in_record());
    Ok(())
}

fn record_length_limit() -> Outcome {
    let limits = Limits::with_max_record_len(8);
    let exact = [0, 0, 0, 4, 1, 2, 3, 4, 0x80, 0, 0, 4, 5, 6, 7, 8];
    let out = decode(limits, &exact, NO_CUTS).map_err(|_| fail(line!()))?;
    expect!(out.records == 1 && out.record_ends[0] == 8);

    let one_fragment = [0x80, 0, 0, 9];
    expect!(
        decode(limits, &one_fragment, NO_CUTS).err()
            == Some(RecordError::RecordTooLong { len: 9, max: 8 })
    );
    // The second marker pushes the record over the limit before any of its
    // payload is read.
    let two_fragments = [0, 0, 0, 5, 1, 2, 3, 4, 5, 0x80, 0, 0, 4];
    expect!(
        decode(limits, &two_fragments, NO_CUTS).err()
            == Some(RecordError::RecordTooLong { len: 9, max: 8 })
    );
    Ok(())
}

fn fragment_count_limit() -> Outcome {
    let limits = Limits {
        max_record_len: 64,
        max_fragments: 3,
    };
    let three = [0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0];
    expect!(decode(limits, &three, NO_CUTS).map(|o| o.records) == Ok(1));
    let flood = [0u8; 4 * 4];
    expect!(
        decode(limits, &flood, NO_CUTS).err() == Some(RecordError::TooManyFragments { max: 3 })
    );
    Ok(())
}

fn overrun_is_refused() -> Outcome {
    let mut dec = RecordDecoder::new(SMALL);
    expect!(dec.consumed(MARKER_LEN + 1) == Err(RecordError::Overrun { wanted: 4, got: 5 }));
    let mut dec = RecordDecoder::new(SMALL);
    if let Want::Marker(buf) = dec.want() {
        buf.copy_from_slice(&[0x80, 0, 0, 2]);
    }
    expect!(dec.consumed(MARKER_LEN) == Ok(Progress::Incomplete));
    expect!(dec.want() == Want::Payload { offset: 0, len: 2 });
    expect!(dec.consumed(3) == Err(RecordError::Overrun { wanted: 2, got: 3 }));
    Ok(())
}

fn reset_forgets_partial_record() -> Outcome {
    let mut dec = RecordDecoder::new(SMALL);
    if let Want::Marker(buf) = dec.want() {
        buf.copy_from_slice(&[0x80, 0, 0, 9]);
    }
    expect!(dec.consumed(MARKER_LEN) == Ok(Progress::Incomplete));
    expect!(dec.consumed(4) == Ok(Progress::Incomplete));
    expect!(dec.in_record() && dec.record_offset() == 4 && dec.in_last_fragment());
    dec.reset();
    expect!(!dec.in_record() && dec.record_offset() == 0);
    expect!(dec.limits() == SMALL);
    expect!(matches!(dec.want(), Want::Marker(buf) if buf.len() == MARKER_LEN));
    Ok(())
}

fn largest_marker_is_accepted() -> Outcome {
    let mut dec = RecordDecoder::new(Limits::with_max_record_len(u32::MAX));
    if let Want::Marker(buf) = dec.want() {
        buf.copy_from_slice(&[0xff; 4]);
    }
    expect!(dec.consumed(MARKER_LEN) == Ok(Progress::Incomplete));
    expect!(
        dec.want()
            == Want::Payload {
                offset: 0,
                len: MAX_FRAGMENT_LEN
            }
    );
    Ok(())
}

fn presentation_parses() -> Outcome {
    expect!(addr_parse::parse_presentation(b"vsock:0") == Ok(0));
    expect!(addr_parse::parse_presentation(b"vsock:3") == Ok(3));
    expect!(addr_parse::parse_presentation(b"vsock:007") == Ok(7));
    expect!(addr_parse::parse_presentation(b"vsock:4294967295") == Ok(u32::MAX));
    Ok(())
}

fn presentation_rejects() -> Outcome {
    const BAD: &[(&[u8], AddrError)] = &[
        (b"", AddrError::NoPrefix),
        (b"3", AddrError::NoPrefix),
        (b"vsock", AddrError::NoPrefix),
        (b"VSOCK:3", AddrError::NoPrefix),
        (b"vsock:", AddrError::MissingCid),
        (b"vsock:x", AddrError::NotDecimal),
        (b"vsock: 3", AddrError::NotDecimal),
        (b"vsock:-1", AddrError::NotDecimal),
        (b"vsock:+1", AddrError::NotDecimal),
        (b"vsock:4294967296", AddrError::OutOfRange),
        (b"vsock:99999999999999999999", AddrError::OutOfRange),
        (b"vsock:3x", AddrError::TrailingGarbage),
        (b"vsock:3 ", AddrError::TrailingGarbage),
        (b"vsock:3\n", AddrError::TrailingGarbage),
        (b"vsock:3.2049", AddrError::TrailingGarbage),
    ];
    for &(input, err) in BAD {
        expect!(addr_parse::parse_presentation(input) == Err(err));
    }
    Ok(())
}

fn uaddr_parses() -> Outcome {
    let max = VsockAddr {
        cid: u32::MAX,
        port: u32::MAX,
    };
    expect!(addr_parse::parse_uaddr(b"3.2049") == Ok(VsockAddr { cid: 3, port: 2049 }));
    expect!(addr_parse::parse_uaddr(b"0.0") == Ok(VsockAddr { cid: 0, port: 0 }));
    expect!(addr_parse::parse_uaddr(b"4294967295.4294967295") == Ok(max));
    Ok(())
}

fn uaddr_rejects() -> Outcome {
    const BAD: &[(&[u8], AddrError)] = &[
        (b"", AddrError::MissingCid),
        (b".2049", AddrError::MissingCid),
        (b"3", AddrError::MissingPort),
        (b"3.", AddrError::MissingPort),
        (b"3.x", AddrError::NotDecimal),
        (b"x.3", AddrError::NotDecimal),
        (b"vsock:3.2049", AddrError::NotDecimal),
        (b"4294967296.1", AddrError::OutOfRange),
        (b"1.4294967296", AddrError::OutOfRange),
        (b"3.2049.1", AddrError::TrailingGarbage),
        (b"3:2049", AddrError::TrailingGarbage),
        (b"3.2049\n", AddrError::TrailingGarbage),
        (b"3..2049", AddrError::MissingPort),
    ];
    for &(input, err) in BAD {
        expect!(addr_parse::parse_uaddr(input) == Err(err));
    }
    Ok(())
}

fn formatted(buf: &mut [u8], value: impl core::fmt::Display) -> &[u8] {
    match addr::format_into(buf, value) {
        Ok(len) => &buf[..len],
        Err(_) => b"<too long>",
    }
}

fn formatting() -> Outcome {
    let mut buf = [0u8; 32];
    expect!(formatted(&mut buf, Presentation(3)) == b"vsock:3");
    let widest = formatted(&mut buf, Presentation(u32::MAX));
    expect!(widest == b"vsock:4294967295" && widest.len() == addr::PRESENTATION_MAX_LEN);
    let a = VsockAddr { cid: 3, port: 2049 };
    expect!(formatted(&mut buf, UniversalAddr(a)) == b"3.2049");
    let max = VsockAddr {
        cid: u32::MAX,
        port: u32::MAX,
    };
    let widest = formatted(&mut buf, UniversalAddr(max));
    expect!(widest == b"4294967295.4294967295" && widest.len() == addr::UADDR_MAX_LEN);
    for cid in [0, 1, 2, 3, 1000, u32::MAX - 1, u32::MAX] {
        let text = formatted(&mut buf, Presentation(cid));
        expect!(addr_parse::parse_presentation(text) == Ok(cid));
    }
    Ok(())
}

fn format_into_bounds() -> Outcome {
    let mut exact = [0u8; 7];
    expect!(addr::format_into(&mut exact, Presentation(3)) == Ok(7));
    let mut short = [0u8; 6];
    expect!(addr::format_into(&mut short, Presentation(3)).is_err());
    let mut empty = [0u8; 0];
    expect!(addr::format_into(&mut empty, Presentation(3)).is_err());
    Ok(())
}

/// A line of a [`CidTable`].
const fn line(cid: u32, live: u32, refused: u64) -> CidCount {
    CidCount {
        cid,
        live,
        refused,
        calls: 0,
        queued: 0,
    }
}

fn cid_limit_refuses_at_the_limit() -> Outcome {
    let mut slots = [CidCount::default(); 4];
    let mut table = CidTable::new(&mut slots[..]);
    expect!(table.lines().is_empty() && table.refused() == 0);
    expect!(table.admit(3, 2) == Admission::Admitted);
    expect!(table.admit(3, 2) == Admission::Admitted);
    expect!(table.admit(3, 2) == Admission::Refused);
    expect!(table.admit(3, 2) == Admission::Refused);
    expect!(table.lines() == [line(3, 2, 2)] && table.refused() == 2);
    // Another CID is not affected.
    expect!(table.admit(4, 2) == Admission::Admitted);
    table.release(3);
    expect!(table.admit(3, 2) == Admission::Admitted);
    expect!(table.lines() == [line(3, 2, 2), line(4, 1, 0)]);
    Ok(())
}

fn cid_limit_zero_is_no_limit() -> Outcome {
    let mut slots = [CidCount::default(); 1];
    let mut table = CidTable::new(&mut slots[..]);
    for _ in 0..1000 {
        expect!(table.admit(7, 0) == Admission::Admitted);
    }
    expect!(table.lines() == [line(7, 1000, 0)] && table.refused() == 0);
    Ok(())
}

fn cid_lines_sorted_and_removed() -> Outcome {
    let mut slots = [CidCount::default(); 4];
    let mut table = CidTable::new(&mut slots[..]);
    for cid in [5, 3, 9, u32::MAX, 0] {
        let want = if cid == 0 {
            Admission::NoRoom
        } else {
            Admission::Admitted
        };
        expect!(table.admit(cid, 1) == want);
    }
    expect!(
        table.lines()
            == [
                line(3, 1, 0),
                line(5, 1, 0),
                line(9, 1, 0),
                line(u32::MAX, 1, 0)
            ]
    );
    table.release(5);
    expect!(table.lines() == [line(3, 1, 0), line(9, 1, 0), line(u32::MAX, 1, 0)]);
    // A CID without a line is ignored.
    table.release(5);
    table.release(4);
    expect!(table.admit(0, 1) == Admission::Admitted);
    expect!(
        table.lines()
            == [
                line(0, 1, 0),
                line(3, 1, 0),
                line(9, 1, 0),
                line(u32::MAX, 1, 0)
            ]
    );
    for cid in [9, 0, u32::MAX, 3] {
        table.release(cid);
    }
    expect!(table.lines().is_empty());
    Ok(())
}

fn cid_refusals_outlive_connections() -> Outcome {
    let mut slots = [CidCount::default(); 2];
    let mut table = CidTable::new(&mut slots[..]);
    expect!(table.admit(4, 1) == Admission::Admitted);
    expect!(table.admit(4, 1) == Admission::Refused);
    table.release(4);
    expect!(table.lines() == [line(4, 0, 1)]);
    // Another release finds no connection to uncount.
    table.release(4);
    expect!(table.lines() == [line(4, 0, 1)]);
    expect!(table.admit(4, 1) == Admission::Admitted);
    expect!(table.lines() == [line(4, 1, 1)]);
    Ok(())
}

fn cid_table_reuses_idle_lines() -> Outcome {
    let mut slots = [CidCount::default(); 3];
    let mut table = CidTable::new(&mut slots[..]);
    for cid in [1, 2, 3] {
        expect!(table.admit(cid, 1) == Admission::Admitted);
        expect!(table.admit(cid, 1) == Admission::Refused);
    }
    // Refused twice more than 1, once more than 3.
    expect!(table.admit(2, 1) == Admission::Refused);
    expect!(table.admit(2, 1) == Admission::Refused);
    expect!(table.admit(3, 1) == Admission::Refused);
    expect!(table.admit(8, 1) == Admission::NoRoom);
    for cid in [1, 2, 3] {
        table.release(cid);
    }
    // The idle line with the fewest refusals, CID 1's, makes room.
    expect!(table.admit(8, 1) == Admission::Admitted);
    expect!(table.lines() == [line(2, 0, 3), line(3, 0, 2), line(8, 1, 0)]);
    expect!(table.admit(0, 1) == Admission::Admitted);
    expect!(table.lines() == [line(0, 1, 0), line(2, 0, 3), line(8, 1, 0)]);
    expect!(table.admit(5, 1) == Admission::Admitted);
    expect!(table.lines() == [line(0, 1, 0), line(5, 1, 0), line(8, 1, 0)]);
    expect!(table.admit(6, 1) == Admission::NoRoom);
    // The total keeps the refusals of the lines given up.
    expect!(table.refused() == 6);
    Ok(())
}

fn cid_limit_lowered() -> Outcome {
    let mut slots = [CidCount::default(); 1];
    let mut table = CidTable::new(&mut slots[..]);
    for _ in 0..3 {
        expect!(table.admit(3, 0) == Admission::Admitted);
    }
    expect!(table.admit(3, 2) == Admission::Refused);
    table.release(3);
    expect!(table.admit(3, 2) == Admission::Refused);
    table.release(3);
    expect!(table.admit(3, 2) == Admission::Admitted);
    expect!(table.lines() == [line(3, 2, 2)]);
    Ok(())
}

fn cid_alone_takes_every_thread() -> Outcome {
    let mut slots = [CidCount::default(); 2];
    let mut table = CidTable::new(&mut slots[..]);
    expect!(table.admit(3, 0) == Admission::Admitted);
    expect!(table.share(3, 8) == 8);
    for _ in 0..8 {
        expect!(table.begin(3, 8));
    }
    expect!(!table.begin(3, 8) && !table.queue(3, 8));
    table.end(3);
    // Queued connections count against the share.
    expect!(table.queue(3, 8));
    expect!(!table.queue(3, 8));
    // The thread that takes the connection starts its call.
    table.unqueue(3);
    expect!(table.begin(3, 8));
    // A CID without a line takes nothing.
    expect!(!table.begin(9, 8) && !table.queue(9, 8));
    // No thread counted, or one: still one call at a time.
    for _ in 0..8 {
        table.end(3);
    }
    expect!(table.share(3, 0) == 1 && table.begin(3, 0) && !table.begin(3, 0));
    Ok(())
}

fn cid_share_splits_threads() -> Outcome {
    let mut slots = [CidCount::default(); 4];
    let mut table = CidTable::new(&mut slots[..]);
    for cid in [1, 3, 4] {
        expect!(table.admit(cid, 0) == Admission::Admitted);
    }
    for _ in 0..8 {
        expect!(table.begin(3, 8));
    }
    // CID 1 asks: the threads are split in two, CID 3 has more than half.
    expect!(table.share(1, 8) == 4 && table.share(3, 8) == 8);
    expect!(table.begin(1, 8));
    expect!(table.share(3, 8) == 4);
    for _ in 0..4 {
        table.end(3);
    }
    expect!(!table.begin(3, 8));
    table.end(3);
    expect!(table.begin(3, 8));
    // A third CID: 8 threads in 3 shares of 3.
    expect!(table.begin(4, 8));
    expect!(table.share(1, 8) == 3 && table.share(3, 8) == 3);
    expect!(table.begin(1, 8) && table.begin(1, 8) && !table.begin(1, 8));
    // Idle lines do not count: CID 4 done, two shares of 4 again.
    table.end(4);
    expect!(table.share(1, 8) == 4 && table.begin(1, 8));
    // Calls ended and released leave no count behind.
    for _ in 0..4 {
        table.end(1);
    }
    for _ in 0..4 {
        table.end(3);
    }
    expect!(table.lines().iter().all(|l| l.calls == 0 && l.queued == 0));
    Ok(())
}

fn cid_share_counts_queued() -> Outcome {
    let mut slots = [CidCount::default(); 2];
    let mut table = CidTable::new(&mut slots[..]);
    for cid in [1, 3] {
        expect!(table.admit(cid, 0) == Admission::Admitted);
    }
    // Queued connections count against the share, and make the CID one
    // that wants threads.
    expect!(table.queue(3, 4) && table.queue(3, 4));
    expect!(table.queue(1, 4));
    expect!(table.share(3, 4) == 2);
    expect!(!table.queue(3, 4));
    table.unqueue(3);
    expect!(table.begin(3, 4));
    expect!(!table.queue(3, 4));
    table.unqueue(1);
    expect!(table.share(3, 4) == 4 && table.queue(3, 4));
    Ok(())
}
