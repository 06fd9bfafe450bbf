/*
 * helioctl internals: the request/reply call (rpc.c) and the plain-text
 * output (render.c); helioctl.c parses the command line and ties them up.
 */
#ifndef HELIOS_HELIOCTL_H
#define HELIOS_HELIOCTL_H

#include "common/cpauth.h"
#include "proto/helios.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes. 0, 1 and 4 are also what the control plane puts in
 * CtlResponse.status; 2 and 3 only helioctl decides. */
enum {
	HCTL_OK = 0,
	HCTL_REFUSED = 1,     /* the control plane said no, or failed */
	HCTL_USAGE = 2,       /* bad command line, address or config file */
	HCTL_UNREACHABLE = 3, /* no control plane there, or no answer in time */
	HCTL_PARTIAL = 4,     /* some data planes did not acknowledge in time */
};

/* Without -a, -c or $HELIOCTL_ADDRESS: the socket of a heliosproxy on the
 * default port in this user's state directory (common/rundir.h). */
#define HELIOCTL_DEFAULT_PORT    5433u
#define HELIOCTL_DEFAULT_TIMEOUT 10000u /* ms */

/* Sends req to the control plane at url, with auth's token and TLS files,
 * and waits for its answer, all
 * within timeout_ms. Returns 0 with *resp set (free it with
 * helios__ctl_response__free_unpacked(*resp, NULL)), or HCTL_USAGE (url is
 * not an address nng can dial) or HCTL_UNREACHABLE, with a one-line
 * message in err. */
int rpc_call(const char *url, const struct cpauth *auth, uint32_t timeout_ms,
             const Helios__CtlRequest *req, Helios__CtlResponse **resp, char *err, size_t errlen);

/* ---- plain-text output ---- */

/* Cells of a table, header row first; built with table_add, printed and
 * freed by table_print. An allocation failure is remembered and reported
 * by table_print. */
struct table {
	size_t ncols;
	size_t n, cap; /* cells so far */
	char **cells;
	bool oom;
};

/* header: column names separated by single spaces. */
void table_init(struct table *t, const char *header);
__attribute__((format(printf, 2, 3))) void table_add(struct table *t, const char *fmt, ...);
/* Prints the rows with columns as wide as their widest cell, two spaces
 * apart, then frees the cells. Returns -1 (nothing printed) when a cell
 * could not be allocated. */
int table_print(struct table *t, FILE *out);

/* Per-verb plain-text output of a successful (status 0 or 4) response.
 * args are the verb's arguments as given. Return 0, or -1 when out of
 * memory. */
typedef int render_fn(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs);
render_fn render_status, render_pools, render_clients, render_servers, render_nodes, render_stats,
    render_config, render_message, render_top, render_slowlog, render_cache, render_tenants,
    render_rewrite, render_xdp, render_plugin;

/* helioctl import-pgbouncer (pgbimport.c): argv[0] is the verb. Returns
 * the exit code. */
int pgbimport_main(int argc, char **argv);

#endif
