// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of xprtvsock.ko: the static inline functions and macros of the
 * socket API that the Rust part needs, as real functions.
 */
#include <net/sock.h>

#include "xv_glue.h"

static struct lock_class_key xv_slock_key;
static struct lock_class_key xv_sk_lock_key;

/*
 * Give RPC transport sockets a lock class of their own, as xprtsock does for
 * its sockets: their lock nests under SUNRPC locks that user sockets never
 * see, and sharing a class would make lockdep report false dependencies.
 */
void xv_sock_reclassify(struct socket *sock)
{
	struct sock *sk = sock->sk;

	if (WARN_ON_ONCE(!sock_allow_reclassification(sk)))
		return;
	sock_lock_init_class_and_name(sk, "slock-AF_VSOCK-RPC", &xv_slock_key,
				      "sk_lock-AF_VSOCK-RPC", &xv_sk_lock_key);
}
