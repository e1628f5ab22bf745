// SPDX-License-Identifier: GPL-2.0
/*
 * A planted fault for scripts/tests/harness: loading this module logs one
 * kernel warning, which the guest harness must report as a splat and fail
 * the case that loaded it. Test use only; never part of xprtvsock.
 */
#include <linux/bug.h>
#include <linux/module.h>

static int __init xv_splat_init(void)
{
	WARN(1, "xv_splat: the warning scripts/tests/harness plants\n");
	return 0;
}

static void __exit xv_splat_exit(void)
{
}

module_init(xv_splat_init);
module_exit(xv_splat_exit);
MODULE_DESCRIPTION("A kernel warning planted to test the test harness");
MODULE_LICENSE("GPL");
