/*
 * Building jansson values without a check after every call: the first
 * allocation failure sets ok to false and every later call is a no-op, so a
 * builder checks once at the end. Shared by /status (metrics.c) and
 * /api/overview (overview.c).
 */
#ifndef HELIOS_JBUILD_H
#define HELIOS_JBUILD_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct jb {
	bool ok;
};

/* s as a JSON string (NULL = ""); bytes that are not UTF-8 become U+FFFD. */
json_t *jb_str(struct jb *jb, const char *s);
/* u, clamped to json_int_t's range (a counter that large is not worth a
 * wrong sign). */
json_t *jb_uint(uint64_t u);
/* d, or null for NaN and infinity (JSON has neither). */
json_t *jb_real(double d);
/* obj[key] = v, taking v; on failure (or after one) v is released. */
void jb_set(struct jb *jb, json_t *obj, const char *key, json_t *v);
/* arr += v, taking v; as jb_set. */
void jb_append(struct jb *jb, json_t *arr, json_t *v);

#endif
