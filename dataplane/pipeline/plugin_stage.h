/*
 * WASM plugins in the pipeline (stage_plugin.c): the login hook conn/
 * calls, and a local file's [[plugins]] applied to the live set
 * (plugin/plugin_set.h) until the control plane pushes its set.
 */
#ifndef HELIOS_PLUGIN_STAGE_H
#define HELIOS_PLUGIN_STAGE_H

#include "dataplane/pipeline/pipeline.h"
#include "dataplane/plugin/plugin_set.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A .wasm file larger than this is refused. */
#define PLUGIN_FILE_MAX (64L * 1024 * 1024)

/* on_connection at login (r: who, as tx_req_init fills it): true when a
 * plugin refuses the client; sqlstate (6 bytes) and msg are what it gets. */
bool plugin_login(const struct req *r, const char *peer, char *sqlstate, char *msg, size_t msglen);

/* c's [[plugins]]: reads each file into bufs[i] (malloc'd, the caller
 * frees them and *defs) and fills defs (pointing into c and bufs). */
int plugins_load_defs(const struct cfg *c, struct plugin_def **defs, uint8_t **bufs, char *err,
                      size_t errlen);
/* Applies c's [[plugins]] as the live set when they (or their files'
 * bytes) differ from what was applied last: a data plane attached to a
 * helios-cp, serving its own file until the control plane answers; the
 * control plane's set replaces it (report/cplink.c). 0, or -1 with err
 * (the live set stays). */
int plugins_from_config(const struct cfg *c, char *err, size_t errlen);
/* Start-up: a set that becomes non-empty (or empty) makes logins from then
 * on build pipelines with (or without) the plugin stage. */
void plugin_stage_install(void);
/* --check-config: compiles and instantiates each plugin of c, one line
 * each to out; returns how many do not load. */
int plugins_check_config(const struct cfg *c, FILE *out);

#endif
