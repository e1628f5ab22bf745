/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C glue of xprtvsock.ko: wrappers for the kernel's static inline functions
 * and macros, which Rust cannot call directly.
 */
#ifndef XV_GLUE_H
#define XV_GLUE_H

#include <linux/types.h>

struct socket;

void xv_sock_reclassify(struct socket *sock);
int xv_sock_set_buffer_size(struct socket *sock, u64 size);

struct ubuf_info;

struct ubuf_info *xv_zerocopy_alloc(void);
void xv_zerocopy_put(struct ubuf_info *uarg);
int xv_sock_enable_zerocopy(struct socket *sock);

struct sock;

void xv_sk_callback_read_lock(struct sock *sk);
void xv_sk_callback_read_unlock(struct sock *sk);
void xv_sk_callback_write_lock(struct sock *sk);
void xv_sk_callback_write_unlock(struct sock *sk);

/* Server transport */
struct bio_vec;
struct page;
struct svc_rqst;
struct svc_xprt;
struct svc_xprt_class;

extern struct svc_xprt_class xv_svc_class;

/* Implemented in C: static inline functions and macros. */
void xv_svc_flag_set(struct svc_xprt *xprt, int bit);
void xv_svc_flag_clear(struct svc_xprt *xprt, int bit);
bool xv_svc_flag_test(struct svc_xprt *xprt, int bit);
bool xv_svc_flag_test_and_set(struct svc_xprt *xprt, int bit);
void xv_svc_xprt_get(struct svc_xprt *xprt);
unsigned int xv_svc_threads(struct svc_xprt *xprt);
void xv_svc_rqst_flag_assign(struct svc_rqst *rqstp, int bit, bool value);
int xv_svc_send_lock(struct svc_xprt *xprt);
void xv_svc_send_unlock(struct svc_xprt *xprt);
void xv_svc_bvec_set_virt(struct bio_vec *bv, void *vaddr, unsigned int len);
void *xv_svc_page_address(struct page *page);
void xv_svc_put_page(struct page *page);

/* Connections per CID */
struct dentry;
struct seq_file;

/* Implemented in Rust: the show callback of the debugfs file. */
int xv_svc_connections_show(struct seq_file *m, void *peers);

/* Implemented in C: the module parameter and debugfs. */
unsigned int xv_svc_max_conns_per_cid(void);
struct dentry *xv_svc_debugfs_create(void *peers);
void xv_svc_debugfs_remove(struct dentry *dir);

/* rpc_xprt and rpc_rqst: the client transport and nfsd's backchannel */

#include <linux/sunrpc/xprt.h>
#include <linux/workqueue.h>

/* Implemented in C: static inline functions and macros. */
bool xv_module_get(void);
void xv_module_put(void);
void xv_xprt_queue_lock(struct rpc_xprt *xprt);
void xv_xprt_queue_unlock(struct rpc_xprt *xprt);
void xv_xprt_transport_lock(struct rpc_xprt *xprt);
void xv_xprt_transport_unlock(struct rpc_xprt *xprt);
bool xv_xprt_connected(struct rpc_xprt *xprt);
bool xv_xprt_test_and_set_connected(struct rpc_xprt *xprt);
void xv_xprt_clear_connected(struct rpc_xprt *xprt);
void xv_xprt_clear_connecting(struct rpc_xprt *xprt);
void xv_xprt_set_bound(struct rpc_xprt *xprt);
bool xv_xprt_close_wait(struct rpc_xprt *xprt);
void xv_xprt_reset_connection_flags(struct rpc_xprt *xprt);
bool xv_xprt_resvport(const struct rpc_xprt *xprt);
struct page *xv_xdr_alloc_page(void);
void *xv_kmalloc_array(size_t n, size_t size, gfp_t gfp);
bool xv_rqst_is_backchannel(struct rpc_rqst *req);
void xv_xprt_warn_ratelimited(const struct rpc_xprt *xprt, const char *what);

/* Client transport */

struct mutex;

extern struct xprt_class xv_clnt_class;

/*
 * Implemented in Rust: the class's setup and the work functions (the
 * rpc_xprt_ops table is a Rust static).
 */
struct rpc_xprt *xv_clnt_setup(struct xprt_create *args);
void xv_clnt_recv_work(struct work_struct *work);
void xv_clnt_error_work(struct work_struct *work);
void xv_clnt_connect_work(struct work_struct *work);

/* Implemented in C: static inline functions and macros. */
void xv_clnt_init_xprt(struct rpc_xprt *xprt, struct mutex *recv_mutex,
		       struct work_struct *recv_work,
		       struct work_struct *error_work,
		       struct delayed_work *connect_work);
void xv_clnt_queue_work(struct work_struct *work);
void xv_clnt_queue_delayed_work(struct delayed_work *work,
				unsigned long delay);
void xv_clnt_recv_lock(struct mutex *recv_mutex);
unsigned int xv_clnt_memalloc_nofs_save(void);
void xv_clnt_memalloc_nofs_restore(unsigned int flags);
void xv_clnt_cond_resched(void);
void xv_clnt_warn_connect_unlocked(void);

/* NFSv4.1 backchannel */
struct svc_serv;
struct xdr_buf;

extern struct xprt_class xv_bc_class;

/* Implemented in Rust. */
struct rpc_xprt *xv_bc_setup(struct xprt_create *args);

/* Implemented in C: static inline functions and macros. */
void xv_bc_init_xprt(struct rpc_xprt *xprt);
void xv_bc_pa_lock(struct rpc_xprt *xprt);
void xv_bc_pa_unlock(struct rpc_xprt *xprt);
struct rpc_rqst *xv_bc_pa_first(struct rpc_xprt *xprt);
struct rpc_rqst *xv_bc_pa_next(struct rpc_xprt *xprt, struct rpc_rqst *req);
void xv_bc_pa_add_tail(struct rpc_xprt *xprt, struct rpc_rqst *req);
void xv_bc_pa_del(struct rpc_rqst *req);
void xv_bc_slot_count_add(struct rpc_xprt *xprt, int n);
int xv_bc_slot_count(struct rpc_xprt *xprt);
void xv_bc_set_in_use(struct rpc_rqst *req);
void xv_bc_clear_in_use(struct rpc_rqst *req);
void xv_bc_enqueue(struct svc_serv *serv, struct rpc_rqst *req);
struct rpc_rqst *xv_bc_alloc_rqst(void);
void xv_bc_free_rqst(struct rpc_rqst *req);
bool xv_bc_alloc_xdr_page(struct xdr_buf *buf);
void xv_bc_free_xdr_page(struct xdr_buf *buf);

#endif /* XV_GLUE_H */
