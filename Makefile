# SPDX-License-Identifier: GPL-2.0
#
# xprtvsock: NFS over AF_VSOCK. Kbuild reads ./Kbuild for the module itself;
# this Makefile drives the whole project (see README.md).

FLAVOUR ?= debug
RUST_SOURCES = $(wildcard rust/*.rs rust/core/*.rs rust/core/tests/*.rs)

.PHONY: all module kernel nfs-utils setup check stress demo demo-loopback bench bench-loopback bench-pair series-check host-test clippy rustfmt docs clean

all: module

setup:
	@scripts/setup

kernel: setup
	@scripts/kernel $(FLAVOUR)

nfs-utils: setup
	@scripts/nfs-utils

module: kernel
	@scripts/module $(FLAVOUR)

# Kernel-side lint: clippy over the module's crates and rustfmt over all Rust.
clippy: kernel
	@scripts/module $(FLAVOUR) CLIPPY=1

rustfmt:
	@rustfmt --check $(RUST_SOURCES)

host-test:
	@cargo test --workspace

check:
	@scripts/check

# make check's guest and two-kernel cases at full size; figures in
# build/stress/results.json.
stress:
	@scripts/stress

demo:
	@scripts/demo

demo-loopback:
	@scripts/demo-loopback

# Both parts of the benchmark, or one: the loopback comparison in one
# guest, and the file systems between the two guests of scripts/vm-pair.
bench:
	@scripts/bench

bench-loopback:
	@scripts/bench loopback

bench-pair:
	@scripts/bench pair

series-check: setup
	@scripts/series-check

# The Internet-Draft in Documentation/rpc-over-vsock/, as text and HTML in
# build/docs/; fails on any xml2rfc warning.
docs: setup
	@scripts/docs

clean:
	@[ ! -d build/linux ] || $(MAKE) -s -C build/linux M=$(CURDIR) clean
	@rm -rf build target
