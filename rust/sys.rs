// SPDX-License-Identifier: GPL-2.0

//! Raw bindings generated from `include/xv_bindings.h` at build time.
//!
//! This is the FFI boundary: only the safe wrappers of the crate use it.

#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    improper_ctypes,
    unsafe_op_in_unsafe_fn,
    unreachable_pub,
    missing_docs,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]

use kernel::ffi;

type __kernel_size_t = usize;
type __kernel_ssize_t = isize;
type __kernel_ptrdiff_t = isize;

include!("xv_bindings_generated.rs");
