/*
 * The server catalog the result cache decides with (docs/cache.md): per
 * database, which functions and operators are immutable (pg_proc), which
 * relations are ordinary tables without row level security, triggers or
 * inheritance (pg_class), read over a pooled server connection with one
 * query (cat_query_sql) and published for every worker. Lookups take no
 * lock in the steady state (per-thread references, checked against a
 * global version that moves when any catalog is published or dropped).
 */
#ifndef HELIOS_CACHE_CATALOG_H
#define HELIOS_CACHE_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rc_store;

/* Flags of a catalog entry. Functions and operators: */
#define CF_IMMUTABLE 1u /* every overload immutable */
#define CF_OP_OK     2u /* operator: every overload immutable, or stable and built in */
#define CF_MAY_WRITE 4u /* some overload is volatile and not built in: may change data */
/* Relations: */
#define CF_CACHEABLE 8u  /* an ordinary table or materialized view, not temp/system/inherited */
#define CF_RLS       16u /* row level security on */
#define CF_WRITES    32u /* triggers (other than FK checks) or rules: a write may change others */

struct cat_ent {
	const char *key; /* kind, then "schema.name" or ".name" (every schema) */
	uint8_t flags;
	uint32_t gen; /* relations: generation id of the bare name */
};

struct cat;

#define CAT_MAX_BYTES  (64u << 20) /* catalog rows accepted */
#define CAT_RETRY_SECS 10          /* after a failed load */

/* Relation names are interned in store's generation table. */
void cat_init(struct rc_store *store);
void cat_stop(void);
/* The database's catalog, referenced (cat_unref); NULL when none is loaded. */
struct cat *cat_get(const char *db);
void cat_unref(struct cat *c);
/* kind 'f' function, 'o' operator, 'r' relation; schema "" = unqualified
 * (flags then hold for every schema's object of that name). */
const struct cat_ent *cat_find(const struct cat *c, char kind, const char *schema,
                               const char *name);
/* DDL through the proxy: every catalog may be wrong; each is read again. */
void cat_drop_all(void);
/* Moves whenever a catalog is published or dropped. */
uint64_t cat_version_now(void);

extern const char cat_query_sql[];
/* Whether a load of db's catalog should start now (then marked loading):
 * none yet, dropped, or older than CACHE_CATALOG_MAX_AGE_SECS; failed loads
 * are retried after CAT_RETRY_SECS. */
bool cat_load_due(const char *db, uint64_t now_ns);
/* A load of db's catalog is running. */
bool cat_loading(const char *db);
/* A load will not complete (its connection went away): not a failure. */
void cat_load_cancel(const char *db);
/* The DataRows of cat_query_sql (NULL: the query failed): published unless
 * DDL ran meanwhile. Returns 1 published, 0 discarded (DDL), -1 failed. */
int cat_publish(const char *db, const uint8_t *rows, size_t len, uint64_t now_ns);
/* The calling worker thread's references go. */
void cat_thread_exit(void);

#endif
