/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input of xprtvsock's own bindgen run: the kernel headers of the SUNRPC and
 * AF_VSOCK interfaces, which the kernel crate's bindings do not cover in
 * Linux 6.12, and the prototypes of the module's C glue.
 */
#include <linux/bvec.h>
#include <linux/net.h>
#include <linux/seq_file.h>
#include <linux/socket.h>
#include <linux/sunrpc/addr.h>
#include <linux/sunrpc/svc_xprt.h>
#include <linux/sunrpc/msg_prot.h>
#include <linux/sunrpc/sched.h>
#include <linux/sunrpc/xdr.h>
#include <linux/sunrpc/xprt.h>
#include <linux/uio.h>
#include <linux/vm_sockets.h>
#include <net/af_vsock.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include <net/tcp_states.h>

#include "xv_glue.h"
#include "xv_kunit.h"

/*
 * Constants whose macros bindgen cannot evaluate (sizeof, ~ on unsigned,
 * enumerators), as typed values. This header is read by bindgen only.
 */
const int XV_CONST_SOCK_STREAM = SOCK_STREAM;
const u32 XV_CONST_VMADDR_CID_ANY = VMADDR_CID_ANY;
const u32 XV_CONST_VMADDR_PORT_ANY = VMADDR_PORT_ANY;
const u32 XV_CONST_RPC_FRAGMENT_SIZE_MASK = RPC_FRAGMENT_SIZE_MASK;
const size_t XV_CONST_RPCBIND_MAXUADDRLEN = RPCBIND_MAXUADDRLEN;

/* Server transport */
const u32 XV_CONST_HZ = HZ;
const size_t XV_CONST_RPCSVC_MAXPAGES = RPCSVC_MAXPAGES;
const u32 XV_CONST_TCP_LISTEN = TCP_LISTEN;
const int XV_CONST_XPT_CONN = XPT_CONN;
const int XV_CONST_XPT_CLOSE = XPT_CLOSE;
const int XV_CONST_XPT_DEAD = XPT_DEAD;
const int XV_CONST_XPT_DATA = XPT_DATA;
const int XV_CONST_XPT_LISTENER = XPT_LISTENER;
const int XV_CONST_XPT_CACHE_AUTH = XPT_CACHE_AUTH;
const int XV_CONST_XPT_LOCAL = XPT_LOCAL;
const int XV_CONST_XPT_CONG_CTRL = XPT_CONG_CTRL;
const int XV_CONST_XPT_DEFERRED = XPT_DEFERRED;
const int XV_CONST_RQ_SECURE = RQ_SECURE;
const int XV_CONST_RQ_LOCAL = RQ_LOCAL;
/* Client transport */
const u32 XV_CONST_TCP_ESTABLISHED = TCP_ESTABLISHED;
const u32 XV_CONST_TCP_CLOSE = TCP_CLOSE;
const u32 XV_CONST_TCP_CLOSING = TCP_CLOSING;
