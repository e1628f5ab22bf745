// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suite of xprtvsock. Linux 6.12 has no Rust KUnit macros, so the suite
 * and case tables are declared here while the test bodies are Rust
 * (rust/xv_kunit.rs). The core cases come from rust/core/selftest.rs, the
 * same table `cargo test` runs on the host, one KUnit parameter per case.
 * xv_addr_parsers_agree runs the series' C address parsers and the Rust
 * reference parsers over the same generated inputs.
 */
#include <kunit/test.h>
#include <linux/module.h>

#include "xv_kunit.h"

void xv_kunit_fail(struct kunit *test, const char *file, int file_len,
		   int line, const char *what, int what_len)
{
	KUNIT_FAIL(test, "%.*s:%d: expected %.*s", file_len, file, line,
		   what_len, what);
}

static void xv_core_case(struct kunit *test)
{
	xv_core_case_run(test, test->param_value);
}

static struct kunit_case xv_cases[] = {
	KUNIT_CASE_PARAM(xv_core_case, xv_core_case_next),
	KUNIT_CASE(xv_kernel_constants),
	KUNIT_CASE(xv_addr_parsers_agree),
	{}
};

static struct kunit_suite xv_suite = {
	.name = "xprtvsock",
	.test_cases = xv_cases,
};

kunit_test_suite(xv_suite);

MODULE_DESCRIPTION("KUnit tests of the xprtvsock RPC transport");
MODULE_LICENSE("GPL");
