/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between the KUnit suite table of xprtvsock_kunit.ko, which
 * Linux 6.12 can only declare in C, and its test bodies, written in Rust.
 */
#ifndef XV_KUNIT_H
#define XV_KUNIT_H

struct kunit;

/* Implemented in C: record a failed expectation. */
void xv_kunit_fail(struct kunit *test, const char *file, int file_len,
		   int line, const char *what, int what_len);

/* Implemented in Rust. */
const void *xv_core_case_next(const void *prev, char *desc);
void xv_core_case_run(struct kunit *test, const void *param);
void xv_kernel_constants(struct kunit *test);
void xv_addr_parsers_agree(struct kunit *test);

#endif /* XV_KUNIT_H */
