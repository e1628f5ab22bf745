/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input of xprtvsock's own bindgen run: the kernel headers of the SUNRPC and
 * AF_VSOCK interfaces, which the kernel crate's bindings do not cover in
 * Linux 6.12, and the prototypes of the module's C glue.
 */
#include <linux/net.h>
#include <linux/socket.h>
#include <linux/sunrpc/msg_prot.h>
#include <linux/vm_sockets.h>
#include <net/af_vsock.h>
#include <net/net_namespace.h>
#include <net/sock.h>

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
