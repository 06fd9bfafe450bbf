/*
 * Query analytics (transaction and statement pooling): which statement
 * each ReadyForQuery ends, its time, rows and error, recorded per
 * fingerprint in the worker thread's table (pipeline/engine/qstats) and,
 * when slower than analytics.slow_query_threshold_ms, sent to the slow
 * query log (pipeline/engine/slowlog). An event subscriber (stage_analytics:
 * PEV_QUERY_START, PEV_QUERY_DONE); off unless [analytics] enabled, then
 * each statement costs an analysis-cache lookup.
 *
 * May call: pipeline/engine, route_analysis, policy/snap (reports), rt
 * (the number of workers, reports only). Never names a connection.
 */
#ifndef HELIOS_ANALYTICS_H
#define HELIOS_ANALYTICS_H

#include "dataplane/pipeline/pipeline.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/helios.pb-c.h"

struct worker;
struct cfg;
struct qs_table;

/* Opens the slow query log when configured (main, before workers). */
int analytics_start(const struct cfg *c, char *err, size_t errlen);
void analytics_stop(void);

/* The calling worker thread's table (NULL until a statement completed). */
struct qs_table *analytics_table(void);
/* A result cache hit for fingerprint fp (the cache stage, same thread). */
void analytics_note_cache_hit(uint64_t fp);

/* Reports (analytics_report.c): the worker's table merged into a
 * collection (on that worker's thread: w names it, the table is the
 * thread's), and the merged table rendered as QueryStat messages (top n by
 * time; 0 = all). */
/* limit 0: the whole table; else the worker's top limit by time. */
void analytics_collect(struct worker *w, struct qs_table *into, size_t limit);
struct qs_table *analytics_scratch(size_t limit);
Helios__QueryStat **analytics_top(struct qs_table *t, size_t n, size_t *count);
/* Slow log lines for "helioctl slowlog" and its counters. */
char **analytics_slow_lines(size_t n, size_t *count);
void analytics_slow_counts(uint64_t *written, uint64_t *dropped);
/* The calling worker thread's table and caches go (w unused). */
void analytics_worker_exit(struct worker *w);

#endif
