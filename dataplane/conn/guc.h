/*
 * Session settings that follow a client across server connections in
 * transaction and statement pooling: what the client wants (its startup
 * parameters plus the SETs it ran) and what a server has applied. A
 * difference becomes one injected query before the client's next
 * transaction.
 */
#ifndef HELIOS_GUC_H
#define HELIOS_GUC_H

#include <stdbool.h>
#include <stddef.h>

#define GUC_MAX 48

/* One setting. value is either a raw value (startup packet, applied with
 * set_config) or, when is_stmt, the client's own SET statement text. */
struct guc_ent {
	char *name; /* lower case */
	char *value;
	bool is_stmt;
};

struct guc_set {
	struct guc_ent *e; /* grown on demand: an idle client holds only what it set */
	int n, cap;
};

void guc_init(struct guc_set *g);
void guc_free(struct guc_set *g);
int guc_copy(struct guc_set *dst, const struct guc_set *src);
/* Sets name (replacing any entry); -ENOSPC past GUC_MAX, -ENOMEM. */
int guc_put(struct guc_set *g, const char *name, const char *value, bool is_stmt);
void guc_del(struct guc_set *g, const char *name);
const struct guc_ent *guc_get(const struct guc_set *g, const char *name);
bool guc_equal(const struct guc_set *a, const struct guc_set *b);

/* Adds a client's startup parameters: every one except user, database,
 * replication; "options" is split into its -c name=value / --name=value
 * settings. Returns 0 or -errno. */
int guc_from_startup(struct guc_set *g, const char *const *names, const char *const *values, int n);

/* Builds the SQL that turns a server from have into want: SET statements
 * replayed as written, raw values through set_config(), RESET for what
 * want lacks. Returns a malloc'd string, "" when nothing differs (caller
 * frees), or NULL on out-of-memory. */
char *guc_diff_sql(const struct guc_set *want, const struct guc_set *have);
/* The same statements, each ended by a NUL instead of ';' (*len bytes in
 * all), to send one by one so that one the server refuses does not stop
 * the others. */
char *guc_diff_stmts(const struct guc_set *want, const struct guc_set *have, size_t *len);

#endif
