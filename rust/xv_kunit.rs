// SPDX-License-Identifier: GPL-2.0

//! Test bodies of the xprtvsock KUnit suite (tables in `xv_kunit_suite.c`).
//!
//! The pure logic is compiled here from the same files as in the module and
//! runs the shared cases of `core/selftest.rs`; one more case checks that its
//! constants agree with the kernel's headers, and one that the kernel's C
//! address parsers agree with the Rust reference parsers (which only this
//! module and the host tests compile).

#[path = "core/addr.rs"]
pub mod addr;
#[path = "core/addr_parse.rs"]
pub mod addr_parse;
#[path = "core/cid_table.rs"]
pub mod cid_table;
#[path = "core/record.rs"]
pub mod record;
#[path = "core/selftest.rs"]
pub mod selftest;
mod sys;

use core::ffi::{c_char, c_int, c_void};

use selftest::{Case, Failure, CASES};

/// Longest case description KUnit keeps (`KUNIT_PARAM_DESC_SIZE`).
const PARAM_DESC_SIZE: usize = 128;

fn report(test: *mut sys::kunit, failure: &Failure) {
    let len = |s: &str| c_int::try_from(s.len()).unwrap_or(c_int::MAX);
    // SAFETY: `test` is the test KUnit passed in; the strings are valid for
    // the lengths given, which the C side prints with `%.*s`.
    unsafe {
        sys::xv_kunit_fail(
            test,
            failure.file.as_ptr().cast(),
            len(failure.file),
            c_int::try_from(failure.line).unwrap_or(c_int::MAX),
            failure.what.as_ptr().cast(),
            len(failure.what),
        )
    };
}

/// KUnit parameter generator over the shared cases: returns the case after
/// `prev` (the first for NULL) and writes its name into `desc`.
///
/// # Safety
///
/// `prev` is NULL or a value this function returned; `desc` points to
/// `KUNIT_PARAM_DESC_SIZE` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn xv_core_case_next(
    prev: *const c_void,
    desc: *mut c_char,
) -> *const c_void {
    let next = if prev.is_null() {
        0
    } else {
        // SAFETY: `prev` was returned by this function, so it points into
        // `CASES`.
        let index = unsafe { prev.cast::<Case>().offset_from(CASES.as_ptr()) };
        index as usize + 1
    };
    let Some(case) = CASES.get(next) else {
        return core::ptr::null();
    };
    let name = case.name.as_bytes();
    let len = name.len().min(PARAM_DESC_SIZE - 1);
    // SAFETY: the caller provides `PARAM_DESC_SIZE` bytes at `desc`; `len`
    // plus the terminating NUL fits.
    unsafe {
        core::ptr::copy_nonoverlapping(name.as_ptr(), desc.cast::<u8>(), len);
        *desc.add(len) = 0;
    }
    core::ptr::from_ref(case).cast()
}

/// Runs one shared case.
///
/// # Safety
///
/// `test` is the running KUnit test; `param` was returned by
/// [`xv_core_case_next`].
#[no_mangle]
pub unsafe extern "C" fn xv_core_case_run(test: *mut sys::kunit, param: *const c_void) {
    // SAFETY: KUnit hands back a value `xv_core_case_next` returned, a
    // pointer to an element of the static `CASES`.
    let case = unsafe { &*param.cast::<Case>() };
    if let Err(failure) = (case.run)() {
        report(test, &failure);
    }
}

macro_rules! expect {
    ($test:expr, $cond:expr) => {
        if !$cond {
            report(
                $test,
                &Failure {
                    file: file!(),
                    line: line!(),
                    what: stringify!($cond),
                },
            );
        }
    };
}

/// Checks the constants of the pure logic against the kernel headers it
/// must agree with.
#[no_mangle]
pub extern "C" fn xv_kernel_constants(test: *mut sys::kunit) {
    expect!(test, record::LAST_FRAGMENT == sys::RPC_LAST_STREAM_FRAGMENT);
    expect!(
        test,
        record::FRAGMENT_LEN_MASK == sys::RPC_FRAGMENT_SIZE_MASK
    );
    expect!(test, record::MAX_FRAGMENT_LEN == sys::RPC_MAX_FRAGMENT_SIZE);
    expect!(
        test,
        record::MARKER_LEN == core::mem::size_of::<sys::rpc_fraghdr>()
    );
    expect!(test, addr::CID_HYPERVISOR == sys::VMADDR_CID_HYPERVISOR);
    expect!(test, addr::CID_LOCAL == sys::VMADDR_CID_LOCAL);
    expect!(test, addr::CID_HOST == sys::VMADDR_CID_HOST);
    expect!(test, addr::CID_ANY == sys::VMADDR_CID_ANY);
    expect!(test, addr::PORT_ANY == sys::VMADDR_PORT_ANY);
    expect!(test, addr::UADDR_MAX_LEN < sys::RPCBIND_MAXUADDRLEN);
    expect!(test, addr::PRESENTATION_MAX_LEN < sys::RPCBIND_MAXUADDRLEN);
}

/// How many generated strings each parser pair sees.
const ADDR_INPUTS: u32 = 20_000;

/// A small deterministic generator (xorshift32): the inputs are the same on
/// every run, so a disagreement can be reproduced.
struct Xorshift(u32);

impl Xorshift {
    fn next(&mut self, below: u32) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x % below
    }
}

/// Numbers the inputs are made of: around the 16- and 32-bit limits, with
/// leading zeros, and beyond 64 bits.
const ADDR_NUMBERS: &[&[u8]] = &[
    b"0",
    b"1",
    b"2",
    b"3",
    b"42",
    b"007",
    b"1023",
    b"65535",
    b"65536",
    b"4294967295",
    b"4294967296",
    b"9999999999",
    b"00000000001",
    b"18446744073709551615",
];

/// The other pieces: the prefix and the separator, and what a parser must
/// refuse (signs, blanks, radix prefixes, other separators, IP addresses).
const ADDR_OTHERS: &[&[u8]] = &[
    b"vsock:",
    b"vsock",
    b"VSOCK:",
    b".",
    b"..",
    b"-",
    b"+",
    b" ",
    b"\n",
    b":",
    b"0x",
    b"x",
    b"127.0.0.1",
    b"::1",
    b"%",
    b"\0",
];

/// Writes one generated input into `buf` and returns its length: a quarter
/// each of random pieces, of `vsock:` and random pieces, of `vsock:NUMBER`
/// and of `NUMBER.NUMBER`, the last two often with one random piece put
/// before or after, so that both parsers accept a fair share.
fn generate(rng: &mut Xorshift, buf: &mut [u8; 96]) -> usize {
    let mut len = 0;
    let mut push = |piece: &[u8]| {
        let piece = &piece[..piece.len().min(buf.len() - len)];
        buf[len..len + piece.len()].copy_from_slice(piece);
        len += piece.len();
    };
    let pick =
        |rng: &mut Xorshift, from: &[&'static [u8]]| from[rng.next(from.len() as u32) as usize];
    let number = |rng: &mut Xorshift| pick(rng, ADDR_NUMBERS);
    let any = |rng: &mut Xorshift| match rng.next(2) {
        0 => number(rng),
        _ => pick(rng, ADDR_OTHERS),
    };
    let mode = rng.next(4);
    let extra = rng.next(6);
    if mode >= 2 && extra == 0 {
        push(any(rng));
    }
    match mode {
        0 | 1 => {
            if mode == 1 {
                push(b"vsock:");
            }
            for _ in 0..=rng.next(5) {
                push(any(rng));
            }
        }
        2 => {
            push(b"vsock:");
            push(number(rng));
        }
        _ => {
            push(number(rng));
            push(b".");
            push(number(rng));
        }
    }
    if mode >= 2 && extra == 1 {
        push(any(rng));
    }
    len
}

/// The vsock address a C parser planted in `storage`, if it returned one.
fn planted(ret: usize, storage: &sys::__kernel_sockaddr_storage) -> Option<addr::VsockAddr> {
    let vm = core::ptr::from_ref(storage).cast::<sys::sockaddr_vm>();
    // SAFETY: `storage` is larger than and aligned for a `sockaddr_vm`, and
    // was zeroed before the parser ran, so every field is initialised.
    let vm = unsafe { &*vm };
    (ret == core::mem::size_of::<sys::sockaddr_vm>() && u32::from(vm.svm_family) == sys::AF_VSOCK)
        .then_some(addr::VsockAddr {
            cid: vm.svm_cid,
            port: vm.svm_port,
        })
}

/// Differential test: `rpc_pton()` on the presentation form `vsock:CID` and
/// `rpc_vsock_uaddr2sockaddr()` on the universal address `CID.PORT` must
/// accept exactly what the Rust reference parsers accept, with the same
/// CID and port, over the same generated inputs.
#[no_mangle]
pub extern "C" fn xv_addr_parsers_agree(test: *mut sys::kunit) {
    let mut rng = Xorshift(0x7873_6f63);
    let mut buf = [0u8; 96];
    let (mut presentations, mut uaddrs, mut differ) = (0u32, 0u32, 0u32);
    for _ in 0..ADDR_INPUTS {
        let len = generate(&mut rng, &mut buf);
        let input = &buf[..len];
        let mut storage = sys::__kernel_sockaddr_storage::default();
        let salen = core::mem::size_of_val(&storage);
        let sap = core::ptr::from_mut(&mut storage).cast::<sys::sockaddr>();
        // SAFETY: `input` is `len` readable bytes (the parser takes a length,
        // not a NUL), `sap` points to `salen` writable bytes, and `init_net`
        // is the initial network namespace, which lives forever.
        let ret = unsafe {
            sys::rpc_pton(
                core::ptr::addr_of_mut!(sys::init_net),
                input.as_ptr().cast(),
                len,
                sap,
                salen,
            )
        };
        let kernel = planted(ret, &storage).map(|a| a.cid);
        let reference = addr_parse::parse_presentation(input).ok();
        if kernel != reference {
            differ += 1;
            report_input(test, line!(), input);
        }
        presentations += u32::from(reference.is_some());

        let mut storage = sys::__kernel_sockaddr_storage::default();
        let sap = core::ptr::from_mut(&mut storage).cast::<sys::sockaddr>();
        // SAFETY: as above; this parser takes no namespace.
        let ret = unsafe { sys::rpc_vsock_uaddr2sockaddr(input.as_ptr().cast(), len, sap, salen) };
        let kernel = planted(ret, &storage);
        let reference = addr_parse::parse_uaddr(input).ok();
        if kernel != reference {
            differ += 1;
            report_input(test, line!(), input);
        }
        uaddrs += u32::from(reference.is_some());
        if differ >= 5 {
            break;
        }
    }
    expect!(test, differ == 0);
    // The generator must make both parsers accept and refuse, or the
    // agreement says little.
    expect!(test, presentations >= ADDR_INPUTS / 100);
    expect!(test, uaddrs >= ADDR_INPUTS / 100);
    expect!(test, presentations + uaddrs <= ADDR_INPUTS);
}

/// Reports an input on which the C and Rust parsers disagree (the check at
/// `line`).
fn report_input(test: *mut sys::kunit, line: u32, input: &[u8]) {
    const PREFIX: &[u8] = b"the C and Rust parsers to agree on \"";
    let mut what = [0u8; PREFIX.len() + 96 + 1];
    what[..PREFIX.len()].copy_from_slice(PREFIX);
    let len = PREFIX.len() + input.len().min(96);
    what[PREFIX.len()..len].copy_from_slice(&input[..len - PREFIX.len()]);
    what[len] = b'"';
    let file = file!();
    // SAFETY: `test` is the running test; both strings are valid for the
    // lengths given, which the C side prints with `%.*s`.
    unsafe {
        sys::xv_kunit_fail(
            test,
            file.as_ptr().cast(),
            file.len() as c_int,
            line as c_int,
            what.as_ptr().cast(),
            (len + 1) as c_int,
        )
    };
}
