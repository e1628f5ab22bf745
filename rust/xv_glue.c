// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of xprtvsock.ko: the static inline functions and macros of the
 * socket API that the Rust part needs, as real functions.
 */
#include <linux/bvec.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/rcupdate.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/sockptr.h>
#include <linux/sunrpc/svc_xprt.h>
#include <linux/sunrpc/xprt.h>
#include <linux/vm_sockets.h>
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

/*
 * The receive buffer a vsock socket grants its peer as credit: raise the
 * ceiling first, which vsock clamps the size to.
 */
int xv_sock_set_buffer_size(struct socket *sock, u64 size)
{
	int err;

	err = sock->ops->setsockopt(sock, AF_VSOCK,
				    SO_VM_SOCKETS_BUFFER_MAX_SIZE,
				    KERNEL_SOCKPTR(&size), sizeof(size));
	if (err)
		return err;
	return sock->ops->setsockopt(sock, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE,
				     KERNEL_SOCKPTR(&size), sizeof(size));
}

/*
 * Zero-copy sends: vsock's virtio transports take references on the pages
 * of a MSG_ZEROCOPY send instead of copying them, and report each packet's
 * release through the ubuf_info given in msg_ubuf. Ours only counts them:
 * the references keep the pages alive, so nothing waits for completions.
 *
 * The packets may outlive the transport that owns the handle, and with it
 * the module reference that kept this code loaded: a packet can wait in a
 * virtio queue, or, on the loopback transport, in the peer socket's receive
 * queue until the peer reads or closes it. So when the owner drops its
 * count and packets still hold one, they get a module reference of their
 * own. The completion that drops the last count is module text and must
 * not drop that reference itself: it would then return into text that
 * rmmod may free. It hands the handle to call_rcu_tasks() instead, whose
 * grace period ends only once every task has passed a voluntary context
 * switch, so after the completion has returned (without preemption,
 * call_rcu_tasks() is call_rcu(), whose grace period waits as long, since
 * the completion cannot be preempted). vsock frees its packets in task
 * context. xv_zerocopy_free() drops the reference last, and returns to the
 * RCU callback loop with bottom halves disabled: free_module() waits for
 * that with synchronize_rcu() before it frees the text.
 */
struct xv_zerocopy {
	struct ubuf_info ubuf;
	struct rcu_head rcu;
};

static void xv_zerocopy_free(struct rcu_head *rcu)
{
	kfree(container_of(rcu, struct xv_zerocopy, rcu));
	module_put(THIS_MODULE);
}

static void xv_zerocopy_complete(struct sk_buff *skb, struct ubuf_info *uarg,
				 bool zerocopy_success)
{
	struct xv_zerocopy *zc = container_of(uarg, struct xv_zerocopy, ubuf);

	if (refcount_dec_and_test(&uarg->refcnt))
		call_rcu_tasks(&zc->rcu, xv_zerocopy_free);
}

static const struct ubuf_info_ops xv_zerocopy_ops = {
	.complete = xv_zerocopy_complete,
};

struct ubuf_info *xv_zerocopy_alloc(void)
{
	struct xv_zerocopy *zc;

	/* A preempted completion would have no grace period to wait for. */
	if (IS_ENABLED(CONFIG_PREEMPTION) && !IS_ENABLED(CONFIG_TASKS_RCU))
		return NULL;
	zc = kzalloc(sizeof(*zc), GFP_KERNEL);
	if (!zc)
		return NULL;
	zc->ubuf.ops = &xv_zerocopy_ops;
	zc->ubuf.flags = SKBFL_ZEROCOPY_FRAG;
	refcount_set(&zc->ubuf.refcnt, 1);
	return &zc->ubuf;
}

/* Drops the owner's count; the caller holds a reference on this module. */
void xv_zerocopy_put(struct ubuf_info *uarg)
{
	__module_get(THIS_MODULE);
	if (refcount_dec_and_test(&uarg->refcnt)) {
		/* No packet holds the handle: free it at once. */
		kfree(container_of(uarg, struct xv_zerocopy, ubuf));
		module_put(THIS_MODULE);
	}
}

/* SO_ZEROCOPY, which vsock refuses where its transport cannot do it. */
int xv_sock_enable_zerocopy(struct socket *sock)
{
	int one = 1;

	return sock->ops->setsockopt(sock, SOL_SOCKET, SO_ZEROCOPY,
				     KERNEL_SOCKPTR(&one), sizeof(one));
}

/*
 * sk_callback_lock guards sk_user_data and the callbacks, as in xprtsock:
 * vsock calls most callbacks with the socket locked, but not all (a virtio
 * device reset reports errors without it).
 */
void xv_sk_callback_read_lock(struct sock *sk)
{
	read_lock_bh(&sk->sk_callback_lock);
}

void xv_sk_callback_read_unlock(struct sock *sk)
{
	read_unlock_bh(&sk->sk_callback_lock);
}

void xv_sk_callback_write_lock(struct sock *sk)
{
	write_lock_bh(&sk->sk_callback_lock);
}

void xv_sk_callback_write_unlock(struct sock *sk)
{
	write_unlock_bh(&sk->sk_callback_lock);
}

/* rpc_xprt and rpc_rqst: the client transport and nfsd's backchannel */

#include <linux/gfp.h>
#include <linux/ratelimit.h>
#include <linux/sunrpc/sched.h>
#include <linux/sunrpc/xprt.h>

/* Same timeouts as TCP: vsock is a reliable stream as well. */
static const struct rpc_timeout xv_xprt_timeout = {
	.to_initval	= 60 * HZ,
	.to_maxval	= 60 * HZ,
	.to_retries	= 2,
};

bool xv_module_get(void)
{
	return try_module_get(THIS_MODULE);
}

void xv_module_put(void)
{
	module_put(THIS_MODULE);
}

void xv_xprt_queue_lock(struct rpc_xprt *xprt)
{
	spin_lock(&xprt->queue_lock);
}

void xv_xprt_queue_unlock(struct rpc_xprt *xprt)
{
	spin_unlock(&xprt->queue_lock);
}

void xv_xprt_transport_lock(struct rpc_xprt *xprt)
{
	spin_lock(&xprt->transport_lock);
}

void xv_xprt_transport_unlock(struct rpc_xprt *xprt)
{
	spin_unlock(&xprt->transport_lock);
}

bool xv_xprt_connected(struct rpc_xprt *xprt)
{
	return xprt_connected(xprt);
}

bool xv_xprt_test_and_set_connected(struct rpc_xprt *xprt)
{
	return xprt_test_and_set_connected(xprt);
}

void xv_xprt_clear_connected(struct rpc_xprt *xprt)
{
	xprt_clear_connected(xprt);
}

void xv_xprt_clear_connecting(struct rpc_xprt *xprt)
{
	xprt_clear_connecting(xprt);
}

void xv_xprt_set_bound(struct rpc_xprt *xprt)
{
	xprt_set_bound(xprt);
}

bool xv_xprt_close_wait(struct rpc_xprt *xprt)
{
	return test_bit(XPRT_CLOSE_WAIT, &xprt->state);
}

/* As xprtsock after a reset: a new connection starts with clean flags. */
void xv_xprt_reset_connection_flags(struct rpc_xprt *xprt)
{
	xprt->connect_cookie++;
	/* Order the cookie before the flags, as xs_sock_reset_connection_flags */
	smp_mb__before_atomic();
	clear_bit(XPRT_CLOSE_WAIT, &xprt->state);
	clear_bit(XPRT_CLOSING, &xprt->state);
	/* and the flags before what the caller does next. */
	smp_mb__after_atomic();
}

bool xv_xprt_resvport(const struct rpc_xprt *xprt)
{
	return xprt->resvport;
}

/* For sparse receive buffers; a failure just shortens the read. */
struct page *xv_xdr_alloc_page(void)
{
	return alloc_page(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
}

void *xv_kmalloc_array(size_t n, size_t size, gfp_t gfp)
{
	return kmalloc_array(n, size, gfp);
}

/* A reply of the NFS callback service, not a call. */
bool xv_rqst_is_backchannel(struct rpc_rqst *req)
{
	return bc_prealloc(req);
}

void xv_xprt_warn_ratelimited(const struct rpc_xprt *xprt, const char *what)
{
	pr_warn_ratelimited("xprtvsock: server %s: %s; closing the connection\n",
			    xprt->address_strings[RPC_DISPLAY_ADDR], what);
}

/* Client transport */

#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/workqueue.h>

struct xprt_class xv_clnt_class = {
	.list	= LIST_HEAD_INIT(xv_clnt_class.list),
	.name	= "vsock",
	.owner	= THIS_MODULE,
	.ident	= XPRT_TRANSPORT_VSOCK,
	.setup	= xv_clnt_setup,
	.netid	= { RPCBIND_NETID_VSOCK, "" },
};

void xv_clnt_init_xprt(struct rpc_xprt *xprt, struct mutex *recv_mutex,
		       struct work_struct *recv_work,
		       struct work_struct *error_work,
		       struct delayed_work *connect_work)
{
	xprt->timeout = &xv_xprt_timeout;
	xprt->xprt_class = &xv_clnt_class;
	mutex_init(recv_mutex);
	INIT_WORK(recv_work, xv_clnt_recv_work);
	INIT_WORK(error_work, xv_clnt_error_work);
	INIT_DELAYED_WORK(connect_work, xv_clnt_connect_work);
}

void xv_clnt_queue_work(struct work_struct *work)
{
	queue_work(xprtiod_workqueue, work);
}

void xv_clnt_queue_delayed_work(struct delayed_work *work,
				unsigned long delay)
{
	queue_delayed_work(xprtiod_workqueue, work, delay);
}

void xv_clnt_recv_lock(struct mutex *recv_mutex)
{
	mutex_lock(recv_mutex);
}

unsigned int xv_clnt_memalloc_nofs_save(void)
{
	return memalloc_nofs_save();
}

void xv_clnt_memalloc_nofs_restore(unsigned int flags)
{
	memalloc_nofs_restore(flags);
}

void xv_clnt_cond_resched(void)
{
	cond_resched();
}

/* A connect op that did not get XPRT_LOCKED: xprtsock warns the same way. */
void xv_clnt_warn_connect_unlocked(void)
{
	WARN_ON_ONCE(1);
}

/* Server transport */

/*
 * Every svc_xprt of the class holds a reference on xcl_owner (taken by
 * svc_xprt_create() and svc_handle_xprt(), dropped by svc_xprt_free()), so
 * the module cannot be unloaded while nfsd has a vsock listener. The Rust
 * side sets xcl_ops before registering the class.
 */
struct svc_xprt_class xv_svc_class = {
	.xcl_name = "vsock",
	.xcl_owner = THIS_MODULE,
	.xcl_max_payload = RPCSVC_MAXPAYLOAD_TCP,
	.xcl_ident = XPRT_TRANSPORT_VSOCK,
};

void xv_svc_flag_set(struct svc_xprt *xprt, int bit)
{
	set_bit(bit, &xprt->xpt_flags);
}

void xv_svc_flag_clear(struct svc_xprt *xprt, int bit)
{
	clear_bit(bit, &xprt->xpt_flags);
}

bool xv_svc_flag_test(struct svc_xprt *xprt, int bit)
{
	return test_bit(bit, &xprt->xpt_flags);
}

bool xv_svc_flag_test_and_set(struct svc_xprt *xprt, int bit)
{
	return test_and_set_bit(bit, &xprt->xpt_flags);
}

void xv_svc_xprt_get(struct svc_xprt *xprt)
{
	svc_xprt_get(xprt);
}

/* nfsd changes its thread count while transports run. */
unsigned int xv_svc_threads(struct svc_xprt *xprt)
{
	return READ_ONCE(xprt->xpt_server->sv_nrthreads);
}

void xv_svc_rqst_flag_assign(struct svc_rqst *rqstp, int bit, bool value)
{
	assign_bit(bit, &rqstp->rq_flags, value);
}

int xv_svc_send_lock(struct svc_xprt *xprt)
{
	return mutex_lock_killable(&xprt->xpt_mutex);
}

void xv_svc_send_unlock(struct svc_xprt *xprt)
{
	mutex_unlock(&xprt->xpt_mutex);
}

void xv_svc_bvec_set_virt(struct bio_vec *bv, void *vaddr, unsigned int len)
{
	bvec_set_virt(bv, vaddr, len);
}

void *xv_svc_page_address(struct page *page)
{
	return page_address(page);
}

void xv_svc_put_page(struct page *page)
{
	put_page(page);
}

/*
 * Connections per CID (rust/svc/limit.rs): the limit, which applies to
 * connections accepted after it is set, and the accounting in debugfs.
 */

#include <linux/debugfs.h>
#include <linux/moduleparam.h>
#include <linux/seq_file.h>

static unsigned int max_conns_per_cid = 32;
module_param(max_conns_per_cid, uint, 0644);
MODULE_PARM_DESC(max_conns_per_cid,
		 "Most connections nfsd keeps from one vsock CID, 0 for no limit (default 32: an NFS client uses one connection per server, at most 16 with nconnect)");

unsigned int xv_svc_max_conns_per_cid(void)
{
	return READ_ONCE(max_conns_per_cid);
}

static int xv_connections_show(struct seq_file *m, void *v)
{
	return xv_svc_connections_show(m, m->private);
}
DEFINE_SHOW_ATTRIBUTE(xv_connections);

/* /sys/kernel/debug/xprtvsock/connections; debugfs errors are ignored. */
struct dentry *xv_svc_debugfs_create(void *peers)
{
	struct dentry *dir = debugfs_create_dir("xprtvsock", NULL);

	debugfs_create_file("connections", 0444, dir, peers,
			    &xv_connections_fops);
	return dir;
}

/* Waits for the file's readers. */
void xv_svc_debugfs_remove(struct dentry *dir)
{
	debugfs_remove(dir);
}

/* NFSv4.1 backchannel */

#ifdef CONFIG_SUNRPC_BACKCHANNEL

#include <linux/lwq.h>
#include <linux/slab.h>
#include <linux/sunrpc/svc.h>

/*
 * The transport nfsd creates to send callbacks on a client's vsock
 * connection: rpc_create() asks for the ident of the connection's class
 * with XPRT_TRANSPORT_BC added.
 */
struct xprt_class xv_bc_class = {
	.list	= LIST_HEAD_INIT(xv_bc_class.list),
	.name	= "vsock NFSv4.1 backchannel",
	.owner	= THIS_MODULE,
	.ident	= XPRT_TRANSPORT_BC_VSOCK,
	.setup	= xv_bc_setup,
	.netid	= { "" },
};

void xv_bc_init_xprt(struct rpc_xprt *xprt)
{
	xprt->timeout = &xv_xprt_timeout;
	xprt->xprt_class = &xv_bc_class;
	xprt_set_bound(xprt);
	xprt_set_connected(xprt);
}

/*
 * The client's pool of preallocated callback requests, bc_pa_list: the
 * helpers of net/sunrpc/backchannel_rqst.c that manage it are not exported.
 */
void xv_bc_pa_lock(struct rpc_xprt *xprt)
{
	spin_lock_bh(&xprt->bc_pa_lock);
}

void xv_bc_pa_unlock(struct rpc_xprt *xprt)
{
	spin_unlock_bh(&xprt->bc_pa_lock);
}

struct rpc_rqst *xv_bc_pa_first(struct rpc_xprt *xprt)
{
	return list_first_entry_or_null(&xprt->bc_pa_list, struct rpc_rqst,
					rq_bc_pa_list);
}

struct rpc_rqst *xv_bc_pa_next(struct rpc_xprt *xprt, struct rpc_rqst *req)
{
	if (list_is_last(&req->rq_bc_pa_list, &xprt->bc_pa_list))
		return NULL;
	return list_next_entry(req, rq_bc_pa_list);
}

void xv_bc_pa_add_tail(struct rpc_xprt *xprt, struct rpc_rqst *req)
{
	list_add_tail(&req->rq_bc_pa_list, &xprt->bc_pa_list);
}

void xv_bc_pa_del(struct rpc_rqst *req)
{
	list_del(&req->rq_bc_pa_list);
}

void xv_bc_slot_count_add(struct rpc_xprt *xprt, int n)
{
	atomic_add(n, &xprt->bc_slot_count);
}

int xv_bc_slot_count(struct rpc_xprt *xprt)
{
	return atomic_read(&xprt->bc_slot_count);
}

void xv_bc_set_in_use(struct rpc_rqst *req)
{
	set_bit(RPC_BC_PA_IN_USE, &req->rq_bc_pa_state);
}

void xv_bc_clear_in_use(struct rpc_rqst *req)
{
	/* Order the reset connect cookie before the bit, as xprt_free_bc_rqst */
	smp_mb__before_atomic();
	clear_bit(RPC_BC_PA_IN_USE, &req->rq_bc_pa_state);
	/* and the bit before the request goes back to the pool. */
	smp_mb__after_atomic();
}

/* Queues a received callback for the NFS callback service. */
void xv_bc_enqueue(struct svc_serv *serv, struct rpc_rqst *req)
{
	lwq_enqueue(&req->rq_bc_list, &serv->sv_cb_list);
	svc_pool_wake_idle_thread(&serv->sv_pools[0]);
}

struct rpc_rqst *xv_bc_alloc_rqst(void)
{
	return kzalloc(sizeof(struct rpc_rqst),
		       GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
}

void xv_bc_free_rqst(struct rpc_rqst *req)
{
	kfree(req);
}

/* A one-page XDR buffer, as the pool's requests receive and send in. */
bool xv_bc_alloc_xdr_page(struct xdr_buf *buf)
{
	struct page *page = alloc_page(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);

	if (!page)
		return false;
	xdr_buf_init(buf, page_address(page), PAGE_SIZE);
	return true;
}

void xv_bc_free_xdr_page(struct xdr_buf *buf)
{
	if (buf->head[0].iov_base)
		free_page((unsigned long)buf->head[0].iov_base);
}

#endif /* CONFIG_SUNRPC_BACKCHANNEL */
