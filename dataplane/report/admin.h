/*
 * The data plane's admin surfaces: the console thread that answers admin
 * console statements (database "heliosproxy") off the workers, and the
 * admin HTTP server (/metrics, /healthz, /readyz, /status) of this data
 * plane.
 */
#ifndef HELIOS_ADMIN_H
#define HELIOS_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "dataplane/report/console.h"

#define ADMIN_DATABASE CONSOLE_DBNAME

struct cp;

/* cp_url: where RELOAD / PAUSE / RESUME go (the control plane). cp: the
 * embedded control plane, or NULL. admin_address "" = no HTTP. */
int admin_start(const char *cp_url, struct cp *cp, const char *admin_address, char *err,
                size_t errlen);
void admin_stop(void);
/* From a worker: queue one statement of client cl_id on worker widx;
 * read_only for a stats_users session (SHOW only). -1 when the queue is
 * full. */
int admin_submit(int widx, uint64_t cl_id, const char *sql, bool read_only);

#endif
