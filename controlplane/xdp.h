/*
 * The XDP admission filter's loader (bpf/xdp.bpf.c): the control plane
 * loads it, attaches it to [xdp] interface, fills its maps from the
 * configuration and keeps the runtime deny entries added with helioctl
 * (live only: in this process's memory, never written anywhere). See
 * docs/xdp.md.
 *
 * Not thread-safe: the control plane calls it under its lock.
 */
#ifndef HELIOS_CP_XDP_H
#define HELIOS_CP_XDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct xf;

/* A filter with nothing loaded; NULL when out of memory. */
struct xf *xf_new(void);
/* Detaches the program (only if it is still ours) and unloads it. */
void xf_free(struct xf *x);

/*
 * Makes the kernel follow c's [xdp] section: disabled detaches and unloads;
 * enabled loads the program once, rewrites the conf and ports maps, syncs
 * the deny trie (config entries plus the runtime ones) when the list
 * changed, and (re)attaches when the interface or mode changed or the
 * program is no longer there. 0, or -1 with the reason in err, which is
 * also logged (one line); the control plane keeps running either way.
 */
int xf_apply(struct xf *x, const struct cfg *c, char *err, size_t errlen);
/* Loads the program and fills its maps from c's [xdp] section without
 * attaching it (xf_apply does both): for tests, with xf_prog_fd. */
int xf_load(struct xf *x, const struct cfg *c, char *err, size_t errlen);
/* The loaded program's fd, -1 when none. */
int xf_prog_fd(const struct xf *x);

/* Runtime deny entries. text is a prefix as cidr_parse reads it. Both
 * return 0 with a confirmation in msg, or -1 with a one-line reason: the
 * filter is not enabled, the prefix does not parse (cidr_parse's reason),
 * del of an entry that comes from xdp.deny (change the configuration
 * instead) or of one that is not in the list. */
int xf_deny_add(struct xf *x, const char *text, char *msg, size_t cap);
int xf_deny_del(struct xf *x, const char *text, char *msg, size_t cap);

struct xf_entry {
	char cidr[64];  /* canonical text */
	bool config;    /* listed in xdp.deny */
	bool runtime;   /* added with xf_deny_add */
	uint64_t drops; /* packets it dropped since it entered the trie */
};
/* The deny list, configuration entries first (in their order), then the
 * runtime ones (in the order added); *out is malloc'ed (free it). 0, or -1
 * with the reason in msg (not enabled, out of memory). */
int xf_deny_list(struct xf *x, struct xf_entry **out, size_t *n, char *msg, size_t cap);

struct xf_status {
	bool enabled;  /* xdp.enabled in the live configuration (or xf_load) */
	bool loaded;   /* the program is in the kernel */
	bool attached; /* and on the interface now (asked of the kernel) */
	char interface[64];
	const char *mode; /* attached in: "generic" or "native"; "" when not */
	uint32_t prog_id; /* 0 when not loaded */
	char error[512];  /* why it is not loaded or attached; "" otherwise */
	uint64_t passed, denied, syn_rate_dropped, syns;
	size_t deny_entries; /* distinct prefixes: configuration and runtime */
	char ports[1024];    /* as configured; "" = every TCP port */
	int syn_rate_per_sec, syn_burst;
};
void xf_get_status(struct xf *x, struct xf_status *out);

#endif
