/*
 * Loader of the XDP admission filter (see xdp.h): open, load, fill the
 * maps, attach with bpf_xdp_attach in the configured mode, detach at the
 * end. Only a program named hp_xdp_filter is ever replaced or detached, so
 * someone else's XDP program on the interface is left alone.
 */
#include "controlplane/xdp.h"

#include "common/bpflog.h"
#include "common/cfg.h"
#include "common/cidr.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if HELIOS_HAVE_BPF
#include <linux/if_link.h>
#include <linux/types.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/xdp.h"
#include "bpf/xdp.skel.h"

#define XF_PROG_NAME "hp_xdp_filter"
#define XF_MAX_DENY  HP_XDP_MAX_DENY
#else
#define XF_MAX_DENY 16384
#endif

#define XF_MAX_PORTS   64 /* what check_xdp (common/cfg.c) allows */
#define XF_NOT_ENABLED "xdp is not enabled (set xdp.enabled and xdp.interface)"
#define XF_NO_BPF                                                                                  \
	"this build has no BPF support (clang, bpftool, libbpf or the kernel BTF were missing "    \
	"when it was built)"

struct xf {
	bool on; /* enabled by the configuration, or loaded by xf_load */
	/* the [xdp] section last applied */
	char ifname[CFG_NAME_MAX];
	enum cfg_xdp_mode mode;
	char ports_text[CFG_LIST_MAX];
	uint16_t ports[XF_MAX_PORTS];
	int n_ports;
	int rate, burst;
	struct cidr *conf_deny; /* xdp.deny, duplicates dropped */
	size_t n_conf;
	struct cidr *run_deny; /* helioctl xdp deny add */
	size_t n_run;
	char error[512];            /* why it is not loaded or attached */
	char pin_dir[CFG_PATH_MAX]; /* xdp.pin_dir as the first load found it */
#if HELIOS_HAVE_BPF
	struct hp_xdp *skel;
	uint32_t prog_id;
	bool deny_synced; /* the trie holds exactly conf_deny + run_deny */
	int ifindex;      /* attached there; 0 = not attached */
	__u32 mode_flag;  /* XDP_FLAGS_SKB_MODE or XDP_FLAGS_DRV_MODE, as attached */
	enum cfg_xdp_mode att_mode;
	char att_ifname[CFG_NAME_MAX];
#endif
};

static bool cidr_in(const struct cidr *v, size_t n, const struct cidr *c)
{
	for (size_t i = 0; i < n; i++)
		if (cidr_equal(&v[i], c))
			return true;
	return false;
}

/* Parses the comma-separated list of prefixes (blanks around items and
 * empty items allowed, as check_xdp in common/cfg.c reads it); duplicates
 * are dropped. 0, or -1 with the reason in err. */
static int parse_deny(const char *list, struct cidr **out, size_t *n, char *err, size_t errlen)
{
	struct cidr *v = NULL;
	size_t k = 0;
	char why[160];

	*out = NULL;
	*n = 0;
	const char *p = list, *s;
	size_t len;
	while ((s = cfg_list_next(&p, &len))) {
		if (len == 0)
			continue;
		struct cidr c;
		if (cidr_parse(s, len, &c, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "xdp.deny: %s", why);
			free(v);
			return -1;
		}
		if (cidr_in(v, k, &c))
			continue;
		struct cidr *nv = realloc(v, (k + 1) * sizeof(*v));
		if (!nv) {
			snprintf(err, errlen, "out of memory");
			free(v);
			return -1;
		}
		v = nv;
		v[k++] = c;
	}
	*out = v;
	*n = k;
	return 0;
}

/* Takes c's [xdp] section as the one to apply. 0, or -1 with the reason. */
static int take_config(struct xf *x, const struct cfg *c, char *err, size_t errlen)
{
	char why[160];
	uint16_t ports[XF_MAX_PORTS];
	int n_ports = cidr_parse_ports(c->xdp.ports, ports, XF_MAX_PORTS, why, sizeof(why));
	if (n_ports < 0) {
		snprintf(err, errlen, "xdp.ports: %s", why);
		return -1;
	}
	struct cidr *deny;
	size_t n_deny;
	if (parse_deny(c->xdp.deny, &deny, &n_deny, err, errlen) < 0)
		return -1;
#if HELIOS_HAVE_BPF
	if (n_deny != x->n_conf ||
	    (n_deny && memcmp(deny, x->conf_deny, n_deny * sizeof(*deny)) != 0))
		x->deny_synced = false;
#endif
	free(x->conf_deny);
	x->conf_deny = deny;
	x->n_conf = n_deny;
	memcpy(x->ports, ports, sizeof(ports));
	x->n_ports = n_ports;
	snprintf(x->ports_text, sizeof(x->ports_text), "%s", c->xdp.ports);
	snprintf(x->ifname, sizeof(x->ifname), "%s", c->xdp.interface);
	if (!x->pin_dir[0])
		snprintf(x->pin_dir, sizeof(x->pin_dir), "%s", c->xdp.pin_dir); /* a restart key */
	x->mode = c->xdp.mode;
	x->rate = c->xdp.syn_rate_per_sec;
	x->burst = c->xdp.syn_burst ? c->xdp.syn_burst : c->xdp.syn_rate_per_sec;
	return 0;
}

/* Distinct prefixes of both lists. */
static size_t deny_count(const struct xf *x)
{
	size_t n = x->n_conf;
	for (size_t i = 0; i < x->n_run; i++)
		n += !cidr_in(x->conf_deny, x->n_conf, &x->run_deny[i]);
	return n;
}

#if HELIOS_HAVE_BPF

static int prog_fd(const struct xf *x)
{
	return x->skel ? bpf_program__fd(x->skel->progs.hp_xdp_filter) : -1;
}

static const char *mode_name(__u32 flag)
{
	return flag == XDP_FLAGS_DRV_MODE ? "native" : "generic";
}

static void trie_key(const struct cidr *c, struct hp_xdp_key *k)
{
	memset(k, 0, sizeof(*k));
	k->prefixlen = c->len;
	memcpy(k->addr, c->addr, sizeof(k->addr));
}

/* Puts c in the trie, keeping its drop count when it is there already; the
 * value says where it came from (runtime), which a pinned trie keeps for
 * the next process (adopt_pinned). */
static int trie_add(struct xf *x, const struct cidr *c, bool runtime)
{
	struct hp_xdp_key k;
	struct hp_xdp_deny v = {.runtime = runtime};
	int fd = bpf_map__fd(x->skel->maps.deny);
	trie_key(c, &k);
	int r = bpf_map_update_elem(fd, &k, &v, BPF_NOEXIST);
	if (r != -EEXIST)
		return r;
	if (bpf_map_lookup_elem(fd, &k, &v) == 0 && v.runtime != (__u32)runtime) {
		/* rare (a prefix moved between xdp.deny and the runtime list): a
		 * drop counted between the lookup and the update is lost */
		v.runtime = runtime;
		bpf_map_update_elem(fd, &k, &v, BPF_EXIST);
	}
	return 0;
}

static void trie_del(struct xf *x, const struct cidr *c)
{
	struct hp_xdp_key k;
	trie_key(c, &k);
	bpf_map_delete_elem(bpf_map__fd(x->skel->maps.deny), &k);
}

static uint64_t trie_drops(struct xf *x, const struct cidr *c)
{
	struct hp_xdp_key k;
	struct hp_xdp_deny v;
	trie_key(c, &k);
	if (!x->skel || bpf_map_lookup_elem(bpf_map__fd(x->skel->maps.deny), &k, &v) < 0)
		return 0;
	return v.drops;
}

static bool key_wanted(const struct xf *x, const struct hp_xdp_key *k)
{
	struct cidr c = {.len = (uint8_t)k->prefixlen};
	memcpy(c.addr, k->addr, sizeof(c.addr));
	return cidr_in(x->conf_deny, x->n_conf, &c) || cidr_in(x->run_deny, x->n_run, &c);
}

/* Makes the trie hold conf_deny + run_deny: adds first, so a prefix that
 * stays is never out of the trie; then removes what is no longer listed
 * (collected first: deleting while walking would restart the walk). */
static int sync_deny(struct xf *x, char *err, size_t errlen)
{
	int fd = bpf_map__fd(x->skel->maps.deny), r = 0;
	for (size_t i = 0; i < x->n_conf + x->n_run && r == 0; i++)
		r = i < x->n_conf
		        ? trie_add(x, &x->conf_deny[i], false)
		        : trie_add(x, &x->run_deny[i - x->n_conf],
		                   !cidr_in(x->conf_deny, x->n_conf, &x->run_deny[i - x->n_conf]));
	if (r < 0) {
		snprintf(err, errlen, "cannot fill the deny trie: %s%s", strerror(-r),
		         r == -ENOSPC || r == -E2BIG ? " (it holds 16384 prefixes)" : "");
		return -1;
	}
	struct hp_xdp_key *gone = NULL, k, next;
	size_t n = 0, cap = 0;
	for (void *prev = NULL; bpf_map_get_next_key(fd, prev, &next) == 0; prev = &k) {
		k = next;
		if (key_wanted(x, &k))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct hp_xdp_key *ng = realloc(gone, cap * sizeof(*gone));
			if (!ng) {
				free(gone);
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			gone = ng;
		}
		gone[n++] = k;
	}
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(fd, &gone[i]);
	free(gone);
	x->deny_synced = true;
	return 0;
}

static bool port_wanted(const struct xf *x, __u16 port)
{
	for (int i = 0; i < x->n_ports; i++)
		if (x->ports[i] == port)
			return true;
	return false;
}

/* Writes ports and conf. New ports go in before conf says "not all ports"
 * and old ones leave after, so no port is briefly unfiltered. */
static int fill_conf(struct xf *x, char *err, size_t errlen)
{
	int pfd = bpf_map__fd(x->skel->maps.ports), r = 0;
	__u8 one = 1;
	for (int i = 0; i < x->n_ports && r == 0; i++)
		r = bpf_map_update_elem(pfd, &x->ports[i], &one, BPF_ANY);
	struct hp_xdp_conf cf = {.all_ports = x->n_ports == 0};
	if (x->rate > 0) {
		cf.rate = (__u64)x->rate;
		cf.max_tokens = (__u64)x->burst * HP_XDP_TOKEN;
		cf.fill_ns = (cf.max_tokens + cf.rate - 1) / cf.rate;
	}
	__u32 zero = 0;
	if (r == 0)
		r = bpf_map_update_elem(bpf_map__fd(x->skel->maps.conf), &zero, &cf, BPF_ANY);
	if (r < 0) {
		snprintf(err, errlen, "cannot fill the XDP maps: %s", strerror(-r));
		return -1;
	}
	__u16 gone[HP_XDP_MAX_PORTS], k, next;
	int n = 0;
	for (void *prev = NULL; n < HP_XDP_MAX_PORTS && bpf_map_get_next_key(pfd, prev, &next) == 0;
	     prev = &k) {
		k = next;
		if (!port_wanted(x, k))
			gone[n++] = k;
	}
	for (int i = 0; i < n; i++)
		bpf_map_delete_elem(pfd, &gone[i]);
	return 0;
}

/* A pinned trie an earlier process left: its runtime prefixes (helioctl
 * xdp deny add) join run_deny, so the sync keeps them; its xdp.deny ones
 * follow this process's config (one removed from the file goes). */
static int adopt_pinned(struct xf *x)
{
	int fd = bpf_map__fd(x->skel->maps.deny), n = 0;
	struct hp_xdp_key k, next;
	struct hp_xdp_deny v;
	for (void *prev = NULL; bpf_map_get_next_key(fd, prev, &next) == 0; prev = &k) {
		k = next;
		if (bpf_map_lookup_elem(fd, &k, &v) < 0 || !v.runtime || key_wanted(x, &k))
			continue;
		struct cidr c = {.len = (uint8_t)k.prefixlen};
		memcpy(c.addr, k.addr, sizeof(c.addr));
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		c.v4 = c.len >= 96 && memcmp(c.addr, mapped, sizeof(mapped)) == 0;
		struct cidr *nv = realloc(x->run_deny, (x->n_run + 1) * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		x->run_deny = nv;
		x->run_deny[x->n_run++] = c;
		n++;
	}
	return n;
}

/* Opens the program and, with xdp.pin_dir, points the deny trie at its pin
 * (libbpf reuses the pinned map, or pins the new one at load). */
static struct hp_xdp *open_pinned(struct xf *x, char *err, size_t errlen)
{
	struct hp_xdp *s = hp_xdp__open();
	if (!s) {
		snprintf(err, errlen, "cannot open the XDP program: %s", strerror(errno));
		return NULL;
	}
	if (x->pin_dir[0]) {
		char path[CFG_PATH_MAX + 8];
		if (mkdir(x->pin_dir, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "xdp.pin_dir: cannot create %s: %s", x->pin_dir,
			         strerror(errno));
			hp_xdp__destroy(s);
			return NULL;
		}
		snprintf(path, sizeof(path), "%s/deny", x->pin_dir);
		int r = bpf_map__set_pin_path(s->maps.deny, path);
		if (r < 0) {
			snprintf(err, errlen, "xdp.pin_dir: %s: %s", path, strerror(-r));
			hp_xdp__destroy(s);
			return NULL;
		}
	}
	return s;
}

/* Loads the program once, then fills its maps from the applied section. */
static int load_and_fill(struct xf *x, char *err, size_t errlen)
{
	if (!x->skel) {
		bpflog_init();
		x->skel = open_pinned(x, err, errlen);
		if (!x->skel)
			return -1;
		int r = hp_xdp__load(x->skel);
		if (r < 0) {
			int e = -r;
			bool pin_hint = x->pin_dir[0] && e != EPERM;
			hp_xdp__destroy(x->skel);
			x->skel = NULL;
			/* libbpf refuses a pinned map whose layout differs (EINVAL) */
			snprintf(
			    err, errlen, "cannot load the XDP program: %s%s%s%s%s", strerror(e),
			    e == EPERM ? " (needs root, or CAP_BPF and CAP_NET_ADMIN)" : "",
			    pin_hint ? " (a deny list pinned at " : "", pin_hint ? x->pin_dir : "",
			    pin_hint ? "/deny by another version cannot be reused: remove it)"
			             : "");
			return -1;
		}
		if (x->pin_dir[0]) {
			int n = adopt_pinned(x);
			if (n < 0) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			log_info("xdp: deny list pinned at %s/deny; %d runtime prefix%s kept from "
			         "before",
			         x->pin_dir, n, n == 1 ? "" : "es");
		}
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		memset(&info, 0, sizeof(info));
		x->prog_id = bpf_obj_get_info_by_fd(prog_fd(x), &info, &len) == 0 ? info.id : 0;
		x->deny_synced = false;
	}
	if (fill_conf(x, err, errlen) < 0)
		return -1;
	return x->deny_synced ? 0 : sync_deny(x, err, errlen);
}

/* Name of the XDP program with this id ("" if it cannot be read); its fd
 * (close it), or -1. */
static int prog_by_id(__u32 id, char *name, size_t cap)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	memset(&info, 0, sizeof(info));
	name[0] = '\0';
	int fd = bpf_prog_get_fd_by_id(id);
	if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
		snprintf(name, cap, "%.*s", (int)sizeof(info.name), info.name);
	return fd;
}

/* Attaches in one mode. A program already there is replaced only when it
 * is a filter of ours that an earlier process left (killed before it could
 * detach). 0, or -errno with the reason in why. */
static int attach_in(struct xf *x, int ifindex, __u32 mode, char *why, size_t cap)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, o);
	__u32 old = 0, flags = mode;
	int old_fd = -1;
	int r = bpf_xdp_query_id(ifindex, (int)mode, &old);
	if (r < 0) {
		snprintf(why, cap, "%s", strerror(-r));
		return r;
	}
	if (old) {
		char name[32];
		old_fd = prog_by_id(old, name, sizeof(name));
		if (old_fd < 0 || strcmp(name, XF_PROG_NAME) != 0) {
			snprintf(why, cap,
			         "XDP program '%s' (id %u) is attached already; not replacing it",
			         name, old);
			if (old_fd >= 0)
				close(old_fd);
			return -EBUSY;
		}
		o.old_prog_fd = old_fd;
		log_warn("xdp: replacing the filter an earlier process left on %s (program id %u)",
		         x->ifname, old);
	} else {
		flags |= XDP_FLAGS_UPDATE_IF_NOEXIST;
	}
	bpflog_clear();
	r = bpf_xdp_attach(ifindex, prog_fd(x), flags, &o);
	if (old_fd >= 0)
		close(old_fd);
	if (r < 0) {
		const char *km = bpflog_kernel_msg();
		snprintf(why, cap, "%s%s%s%s", strerror(-r), km[0] ? " (" : "", km,
		         km[0] ? ")" : "");
	}
	return r;
}

/* Detaches our program (the kernel refuses if another one took its place). */
static void detach(struct xf *x)
{
	if (!x->ifindex)
		return;
	LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = prog_fd(x));
	int r = bpf_xdp_detach(x->ifindex, x->mode_flag, &o);
	if (r == 0)
		log_info("xdp: filter detached from %s", x->att_ifname);
	else if (r != -ENODEV) /* the interface is gone, and the program with it */
		log_warn("xdp: cannot detach the filter from %s: %s", x->att_ifname, strerror(-r));
	x->ifindex = 0;
}

static bool still_attached(const struct xf *x)
{
	__u32 id = 0;
	return x->ifindex && x->prog_id &&
	       bpf_xdp_query_id(x->ifindex, (int)x->mode_flag, &id) == 0 && id == x->prog_id;
}

/* Attaches to the applied interface and mode unless it is there already
 * (auto: native, else generic). */
static int ensure_attached(struct xf *x, char *err, size_t errlen)
{
	int ifindex = (int)if_nametoindex(x->ifname);
	if (!ifindex) {
		snprintf(err, errlen, "cannot attach to %s: %s", x->ifname, strerror(errno));
		detach(x);
		return -1;
	}
	if (x->ifindex == ifindex && x->att_mode == x->mode && still_attached(x))
		return 0;
	detach(x);
	__u32 modes[2];
	char why[2][300];
	int n = 0;
	if (x->mode != CFG_XDP_GENERIC)
		modes[n++] = XDP_FLAGS_DRV_MODE;
	if (x->mode != CFG_XDP_NATIVE)
		modes[n++] = XDP_FLAGS_SKB_MODE;
	for (int i = 0; i < n; i++) {
		if (attach_in(x, ifindex, modes[i], why[i], sizeof(why[i])) < 0)
			continue;
		x->ifindex = ifindex;
		x->mode_flag = modes[i];
		x->att_mode = x->mode;
		snprintf(x->att_ifname, sizeof(x->att_ifname), "%s", x->ifname);
		char rate[64] = "no SYN rate limit";
		if (x->rate)
			snprintf(rate, sizeof(rate), "SYN rate %d/s burst %d", x->rate, x->burst);
		log_info(
		    "xdp: filter attached to %s in %s mode (program id %u; deny prefixes: %zu, "
		    "ports: %s, %s)",
		    x->ifname, mode_name(modes[i]), x->prog_id, deny_count(x),
		    x->n_ports ? x->ports_text : "all", rate);
		return 0;
	}
	if (n == 1)
		snprintf(err, errlen, "cannot attach to %s in %s mode: %s", x->ifname,
		         mode_name(modes[0]), why[0]);
	else
		snprintf(err, errlen, "cannot attach to %s: native mode: %s; generic mode: %s",
		         x->ifname, why[0], why[1]);
	return -1;
}

static void unload(struct xf *x)
{
	detach(x);
	hp_xdp__destroy(x->skel);
	x->skel = NULL;
	x->prog_id = 0;
	x->deny_synced = false;
}

static void read_counters(struct xf *x, uint64_t out[HP_XDP_NCOUNTERS])
{
	memset(out, 0, HP_XDP_NCOUNTERS * sizeof(out[0]));
	int ncpu = libbpf_num_possible_cpus();
	if (!x->skel || ncpu <= 0)
		return;
	__u64 *v = calloc((size_t)ncpu, sizeof(*v));
	int fd = bpf_map__fd(x->skel->maps.counters);
	for (__u32 i = 0; v && i < HP_XDP_NCOUNTERS; i++) {
		if (bpf_map_lookup_elem(fd, &i, v) < 0)
			continue;
		for (int c = 0; c < ncpu; c++)
			out[i] += v[c];
	}
	free(v);
}

#endif /* HELIOS_HAVE_BPF */

struct xf *xf_new(void)
{
	return calloc(1, sizeof(struct xf));
}

void xf_free(struct xf *x)
{
	if (!x)
		return;
#if HELIOS_HAVE_BPF
	unload(x);
#endif
	free(x->conf_deny);
	free(x->run_deny);
	free(x);
}

int xf_load(struct xf *x, const struct cfg *c, char *err, size_t errlen)
{
	if (take_config(x, c, err, errlen) < 0)
		return -1;
	x->on = true;
#if HELIOS_HAVE_BPF
	return load_and_fill(x, err, errlen);
#else
	snprintf(err, errlen, "%s", XF_NO_BPF);
	return -1;
#endif
}

int xf_apply(struct xf *x, const struct cfg *c, char *err, size_t errlen)
{
	err[0] = '\0';
	if (!c->xdp.enabled) {
#if HELIOS_HAVE_BPF
		if (x->skel)
			unload(x);
#endif
		x->on = false;
		x->error[0] = '\0';
		return 0;
	}
	int r = xf_load(x, c, err, errlen);
#if HELIOS_HAVE_BPF
	if (r == 0)
		r = ensure_attached(x, err, errlen);
#endif
	if (r == 0) {
		x->error[0] = '\0';
		return 0;
	}
	snprintf(x->error, sizeof(x->error), "%s", err);
	log_error("xdp: %s; the filter is not active", err);
	return -1;
}

int xf_prog_fd(const struct xf *x)
{
#if HELIOS_HAVE_BPF
	return prog_fd(x);
#else
	(void)x;
	return -1;
#endif
}

/* Parses text for the deny verbs; the canonical text goes to s. */
static int deny_arg(struct xf *x, const char *text, struct cidr *c, char *s, size_t scap, char *msg,
                    size_t cap)
{
	if (!x->on) {
		snprintf(msg, cap, XF_NOT_ENABLED);
		return -1;
	}
	if (cidr_parse(text, strlen(text), c, msg, cap) < 0)
		return -1;
	cidr_format(c, s, scap);
	return 0;
}

int xf_deny_add(struct xf *x, const char *text, char *msg, size_t cap)
{
	struct cidr c;
	char s[64];
	if (deny_arg(x, text, &c, s, sizeof(s), msg, cap) < 0)
		return -1;
	if (cidr_in(x->conf_deny, x->n_conf, &c) || cidr_in(x->run_deny, x->n_run, &c)) {
		snprintf(msg, cap, "%s is in the deny list already (%s)", s,
		         cidr_in(x->conf_deny, x->n_conf, &c) ? "xdp.deny" : "runtime");
		return 0;
	}
#if !HELIOS_HAVE_BPF
	snprintf(msg, cap, "%s", XF_NO_BPF);
	return -1;
#endif
	if (deny_count(x) >= XF_MAX_DENY) {
		snprintf(msg, cap, "the deny list is full (%d prefixes)", XF_MAX_DENY);
		return -1;
	}
	struct cidr *nv = realloc(x->run_deny, (x->n_run + 1) * sizeof(*nv));
	if (!nv) {
		snprintf(msg, cap, "out of memory");
		return -1;
	}
	x->run_deny = nv;
	x->run_deny[x->n_run++] = c;
	const char *note = "";
#if HELIOS_HAVE_BPF
	if (x->skel) {
		int r = trie_add(x, &c, true);
		if (r < 0) {
			x->n_run--;
			snprintf(msg, cap, "cannot add %s to the deny trie: %s", s, strerror(-r));
			log_error("xdp: %s", msg);
			return -1;
		}
	}
	if (!x->skel)
		note = "; the filter is not loaded, it applies once it is";
#endif
	log_info("xdp: %s added to the deny list (runtime)", s);
	snprintf(msg, cap, "denied %s (runtime entry: kept until the control plane stops)%s", s,
	         note);
	return 0;
}

int xf_deny_del(struct xf *x, const char *text, char *msg, size_t cap)
{
	struct cidr c;
	char s[64];
	if (deny_arg(x, text, &c, s, sizeof(s), msg, cap) < 0)
		return -1;
	bool in_conf = cidr_in(x->conf_deny, x->n_conf, &c);
	for (size_t i = 0; i < x->n_run; i++) {
		if (!cidr_equal(&x->run_deny[i], &c))
			continue;
		memmove(x->run_deny + i, x->run_deny + i + 1, (x->n_run - i - 1) * sizeof(c));
		x->n_run--;
#if HELIOS_HAVE_BPF
		if (x->skel && !in_conf)
			trie_del(x, &c);
#endif
		log_info("xdp: %s removed from the deny list (runtime)", s);
		snprintf(msg, cap, "removed %s%s", s,
		         in_conf ? " from the runtime entries; xdp.deny still lists it" : "");
		return 0;
	}
	if (in_conf)
		snprintf(msg, cap,
		         "%s comes from xdp.deny in the configuration: change that key instead "
		         "(helioctl config set xdp.deny ...)",
		         s);
	else
		snprintf(msg, cap, "%s is not in the deny list", s);
	return -1;
}

int xf_deny_list(struct xf *x, struct xf_entry **out, size_t *n, char *msg, size_t cap)
{
	*out = NULL;
	*n = 0;
	if (!x->on) {
		snprintf(msg, cap, XF_NOT_ENABLED);
		return -1;
	}
	size_t total = x->n_conf + x->n_run;
	struct xf_entry *v = calloc(total ? total : 1, sizeof(*v));
	if (!v) {
		snprintf(msg, cap, "out of memory");
		return -1;
	}
	size_t k = 0;
	for (size_t i = 0; i < total; i++) {
		bool conf = i < x->n_conf;
		const struct cidr *c = conf ? &x->conf_deny[i] : &x->run_deny[i - x->n_conf];
		if (!conf && cidr_in(x->conf_deny, x->n_conf, c))
			continue; /* listed with the configuration's entries */
		cidr_format(c, v[k].cidr, sizeof(v[k].cidr));
		v[k].config = conf;
		v[k].runtime = !conf || cidr_in(x->run_deny, x->n_run, c);
#if HELIOS_HAVE_BPF
		v[k].drops = trie_drops(x, c);
#endif
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

void xf_get_status(struct xf *x, struct xf_status *out)
{
	memset(out, 0, sizeof(*out));
	out->enabled = x->on;
	out->mode = "";
	if (!x->on)
		return;
	snprintf(out->interface, sizeof(out->interface), "%s", x->ifname);
	snprintf(out->error, sizeof(out->error), "%s", x->error);
	snprintf(out->ports, sizeof(out->ports), "%s", x->ports_text);
	out->syn_rate_per_sec = x->rate;
	out->syn_burst = x->rate ? x->burst : 0;
	out->deny_entries = deny_count(x);
#if HELIOS_HAVE_BPF
	out->loaded = x->skel != NULL;
	out->prog_id = x->prog_id;
	out->attached = still_attached(x);
	if (out->attached)
		out->mode = mode_name(x->mode_flag);
	else if (x->ifindex && !out->error[0])
		snprintf(out->error, sizeof(out->error),
		         "the filter is no longer on %s (removed from outside?); the next "
		         "configuration change attaches it again",
		         x->att_ifname);
	uint64_t cnt[HP_XDP_NCOUNTERS];
	read_counters(x, cnt);
	out->passed = cnt[HP_XDP_PASS];
	out->denied = cnt[HP_XDP_DENY];
	out->syn_rate_dropped = cnt[HP_XDP_SYN_RATE];
	out->syns = cnt[HP_XDP_SYN];
#endif
}
