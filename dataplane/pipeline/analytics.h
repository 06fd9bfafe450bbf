/*
 * Query analytics glue (transaction and statement pooling): which
 * statement each ReadyForQuery ends, its time, rows and error, recorded per
 * fingerprint in the worker's table (pipeline/qstats) and, when slower than
 * analytics.slow_query_threshold_ms, sent to the slow query log
 * (pipeline/slowlog). Off unless [analytics] enabled: then each statement
 * costs an analysis-cache lookup and two clock reads.
 */
#ifndef HELIOS_ANALYTICS_H
#define HELIOS_ANALYTICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/helios.pb-c.h"

struct client;
struct server;
struct worker;
struct cfg;

/* Opens the slow query log when configured (main, before workers). */
int analytics_start(const struct cfg *c, char *err, size_t errlen);
void analytics_stop(void);

/* A server bound to an analytics client: its per-statement state. */
void analytics_bind(struct client *cl, struct server *sv);
void analytics_server_free(struct server *sv);

/* Client -> server: a simple Query, a Parse text, the statement a Bind
 * names, a Sync that ends an extended batch. */
void analytics_query(struct client *cl, struct server *sv, const char *sql, size_t len);
void analytics_batch_text(struct client *cl, struct server *sv, const char *sql, size_t len);
void analytics_sync(struct client *cl, struct server *sv);
/* Server -> client: CommandComplete / ErrorResponse bodies, and the
 * ReadyForQuery that ends the oldest pending statement. */
void analytics_response(struct server *sv, uint8_t type, const uint8_t *body, uint32_t len);
void analytics_ready(struct server *sv);

/* Reports: the worker's table merged into a collection (stats.c), and the
 * merged table rendered as QueryStat messages (top n by time; 0 = all). */
struct qs_table;
/* limit 0: the whole table; else the worker's top limit by time. */
void analytics_collect(struct worker *w, struct qs_table *into, size_t limit);
struct qs_table *analytics_scratch(size_t limit);
Helios__QueryStat **analytics_top(struct qs_table *t, size_t n, size_t *count);
/* Slow log lines for "helioctl slowlog" and its counters. */
char **analytics_slow_lines(size_t n, size_t *count);
void analytics_slow_counts(uint64_t *written, uint64_t *dropped);
void analytics_worker_exit(struct worker *w);

#endif
