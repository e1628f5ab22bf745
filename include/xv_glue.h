/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C glue of xprtvsock.ko: wrappers for the kernel's static inline functions
 * and macros, which Rust cannot call directly.
 */
#ifndef XV_GLUE_H
#define XV_GLUE_H

struct socket;

void xv_sock_reclassify(struct socket *sock);

#endif /* XV_GLUE_H */
