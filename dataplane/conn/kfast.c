/* Loader and map management for the session splice (see kfast.h). */
#include "dataplane/conn/kfast.h"

#include "common/bpflog.h"
#include "common/log.h"

#include <errno.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked (glibc's lacks it) */
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#if HELIOS_HAVE_BPF
#include "bpf/splice.skel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static struct hp_splice *skel;
static int socks_fd = -1, conns_fd = -1;

static void load(void)
{
	bpflog_init();
	skel = hp_splice__open_and_load();
	if (!skel) {
		int e = errno;
		log_warn("kernel_splice: cannot load the splice program (%s%s); session clients "
		         "are relayed in userspace",
		         strerror(e),
		         e == EPERM ? ": needs CAP_BPF and CAP_NET_ADMIN, or root" : "");
		return;
	}
	socks_fd = bpf_map__fd(skel->maps.socks);
	conns_fd = bpf_map__fd(skel->maps.conns);
	int prog_fd = bpf_program__fd(skel->progs.hp_splice_verdict);
	/* libbpf 1.1 has no sk_skb/verdict section nor attach_sockmap */
	if (bpf_prog_attach(prog_fd, socks_fd, BPF_SK_SKB_VERDICT, 0) < 0) {
		log_warn("kernel_splice: cannot attach the splice program to its sockhash (%s); "
		         "session clients are relayed in userspace",
		         strerror(errno));
		hp_splice__destroy(skel);
		skel = NULL;
		socks_fd = conns_fd = -1;
		return;
	}
	log_info("kernel_splice: splice program loaded; session clients are spliced in the kernel");
}

bool kfast_available(void)
{
	pthread_once(&load_once, load);
	return skel != NULL;
}

static int cookie_of(int fd, uint64_t *out)
{
	socklen_t len = sizeof(*out);
	return getsockopt(fd, SOL_SOCKET, SO_COOKIE, out, &len) < 0 ? -errno : 0;
}

int kfast_splice(int cl_fd, int sv_fd, uint64_t *cl_cookie, uint64_t *sv_cookie)
{
	if (!kfast_available())
		return -ENOTSUP;
	int r;
	if ((r = cookie_of(cl_fd, cl_cookie)) < 0 || (r = cookie_of(sv_fd, sv_cookie)) < 0)
		return r;
	struct hp_conn st;
	memset(&st, 0, sizeof(st));
	st.peer = *sv_cookie;
	st.is_client = 1;
	if (bpf_map_update_elem(conns_fd, cl_cookie, &st, BPF_NOEXIST) < 0)
		return -errno;
	st.peer = *cl_cookie;
	st.is_client = 0;
	if (bpf_map_update_elem(conns_fd, sv_cookie, &st, BPF_NOEXIST) < 0) {
		r = -errno;
		goto fail_conns;
	}
	/* state first: a socket in the map with no state would pass its
	 * bytes to itself (SK_PASS) */
	__u64 v = (__u64)cl_fd;
	if (bpf_map_update_elem(socks_fd, cl_cookie, &v, BPF_NOEXIST) < 0) {
		r = -errno;
		goto fail_all;
	}
	v = (__u64)sv_fd;
	if (bpf_map_update_elem(socks_fd, sv_cookie, &v, BPF_NOEXIST) < 0) {
		r = -errno;
		bpf_map_delete_elem(socks_fd, cl_cookie);
		goto fail_all;
	}
	return 0;
fail_all:
	bpf_map_delete_elem(conns_fd, sv_cookie);
fail_conns:
	bpf_map_delete_elem(conns_fd, cl_cookie);
	return r;
}

int kfast_read(uint64_t cookie, struct hp_conn *out)
{
	if (conns_fd < 0)
		return -ENOENT;
	return bpf_map_lookup_elem(conns_fd, &cookie, out) < 0 ? -errno : 0;
}

void kfast_remove_sock(uint64_t cookie)
{
	if (socks_fd >= 0)
		bpf_map_delete_elem(socks_fd, &cookie);
}

void kfast_forget(uint64_t cookie)
{
	if (conns_fd >= 0)
		bpf_map_delete_elem(conns_fd, &cookie);
}

void kfast_shutdown(void)
{
	if (!skel)
		return;
	hp_splice__destroy(skel);
	skel = NULL;
	socks_fd = conns_fd = -1;
}

#else /* built without BPF */

static pthread_once_t warn_once = PTHREAD_ONCE_INIT;

static void warn(void)
{
	log_warn("kernel_splice: this build has no BPF support (clang, bpftool, libbpf or the "
	         "kernel BTF was missing); session clients are relayed in userspace");
}

bool kfast_available(void)
{
	pthread_once(&warn_once, warn);
	return false;
}

int kfast_splice(int cl_fd, int sv_fd, uint64_t *cl_cookie, uint64_t *sv_cookie)
{
	return -ENOTSUP;
}

int kfast_read(uint64_t cookie, struct hp_conn *out)
{
	return -ENOENT;
}

void kfast_remove_sock(uint64_t cookie)
{
}

void kfast_forget(uint64_t cookie)
{
}

void kfast_shutdown(void)
{
}
#endif

int kfast_tcp(int fd, struct kf_tcp *out)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -errno;
	out->acked = ti.tcpi_bytes_acked;
	out->received = ti.tcpi_bytes_received;
	return 0;
}
