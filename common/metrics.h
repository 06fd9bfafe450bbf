/*
 * Renders StatsReports (one per data plane) and process information as
 * Prometheus text (GET /metrics) and as the JSON /status document. Shared by
 * heliosproxy (its own report) and helios-cp (every data plane's last one);
 * pure functions of their inputs, so they run on the admin HTTP thread.
 */
#ifndef HELIOS_METRICS_H
#define HELIOS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"
#include "proto/helios.pb-c.h"

/* Content-Type of metrics_render()'s output. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The XDP admission filter of the process that runs the control plane. */
struct metrics_xdp {
	bool enabled; /* xdp.enabled: the helios_xdp_* families are rendered */
	bool attached;
	uint64_t passed, denied, syn_rate_dropped, syns;
	uint64_t deny_entries;
};

/* The standard process_* families (as the Prometheus client libraries
 * define them), read from /proc by metrics_proc_read(). */
struct metrics_proc {
	bool valid;             /* false: /proc unreadable, the families are left out */
	double cpu_secs;        /* utime + stime */
	uint64_t rss_bytes;     /* resident set */
	uint64_t vsize_bytes;   /* virtual memory */
	uint64_t open_fds;      /* entries of /proc/self/fd */
	uint64_t max_fds;       /* RLIMIT_NOFILE soft limit */
	double start_time_secs; /* unix time the process started */
};

struct metrics_info {
	const char *role; /* "dataplane", "embedded" or "control-plane" */
	const char *version;
	double uptime_secs;
	uint64_t generation;      /* live config generation */
	int dataplanes_connected; /* -1 = n/a (a data plane attached to an external CP) */
	int dataplanes_known;     /* -1 = not applicable */
	int cp_connected;         /* data plane's link: 1/0, -1 = not applicable */
	uint64_t cp_reconnects;
	double cp_last_contact_secs;            /* seconds since the last reply, -1 unknown */
	const Helios__NodeStatus *const *nodes; /* routing table */
	size_t n_nodes;
	bool has_config;
	struct metrics_xdp xdp;
	bool runs_cp;             /* this process runs a control plane: control_refused applies */
	uint64_t control_refused; /* its requests refused (token, malformed) */
	/* On a control plane, parallel to the reports: seconds since each data
	 * plane's last heartbeat (its side of the link); NULL elsewhere. */
	const double *report_contact_secs;
	double replica_lag_limit_secs; /* routing.max_replica_lag_ms; < 0 = no config yet */
	struct metrics_proc proc;
};

/* Fills p from /proc/self (stat, fd), /proc/stat (btime) and getrlimit:
 * 0, or -errno with p->valid false. Called by the HTTP handlers so that
 * metrics_render stays a pure function of its inputs. */
int metrics_proc_read(struct metrics_proc *p);

/* Appends Prometheus text exposition format 0.0.4 of the reports and the
 * info to out. Every per-data-plane sample carries dataplane="<id>", on a
 * data plane (its own report) as on a control plane (every data plane's):
 * the node families are the process's own view and have no such label.
 * The control-plane link families come from info on a data plane
 * (cp_connected >= 0; it passes just its own report) and from each report's
 * cp_connected/cp_reconnects on a control plane; an embedded one has none.
 * A histogram whose counts do not have n_bounds + 1 entries, or whose
 * bounds are not finite and ascending, is left out. Check out->oom. */
void metrics_render(struct sbuf *out, const Helios__StatsReport *const *reports, size_t n,
                    const struct metrics_info *info);

/* Appends the /status JSON document: the info fields (null where not
 * applicable), "dataplanes" (id, generation, clients, cp_connected, paused,
 * pools with every PoolStats field but the histograms, ...) and "nodes".
 * Sets out->oom when it cannot be built. */
void metrics_status_json(struct sbuf *out, const Helios__StatsReport *const *reports, size_t n,
                         const struct metrics_info *info);

#endif
