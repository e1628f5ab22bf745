// SPDX-License-Identifier: GPL-2.0

//! The pure logic of xprtvsock, built for the host.
//!
//! The kernel module compiles these same files into its own crate (see
//! `rust/xv_module.rs`); this crate exists so that `cargo test` and the
//! property tests can exercise them on the host. Only `core` is used.

#![no_std]

pub mod addr;
pub mod addr_parse;
pub mod cid_table;
pub mod record;
pub mod selftest;
