// SPDX-License-Identifier: GPL-2.0

//! Test bodies of the xprtvsock KUnit suite (tables in `xv_kunit_suite.c`).
//!
//! The pure logic is compiled here from the same files as in the module and
//! runs the shared cases of `core/selftest.rs`; one more case checks that its
//! constants agree with the kernel's headers.

#[path = "core/addr.rs"]
pub mod addr;
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
