/*
 * Internals shared by the TOML reader's files (toml.c parses, toml_tree.c
 * owns the nodes, toml_datetime.c reads dates and times). Not for users of
 * the reader: include common/toml.h instead.
 */
#ifndef HELIOS_TOML_IMPL_H
#define HELIOS_TOML_IMPL_H

#include <sys/types.h>

#include "common/toml.h"

/* Longest canonical date-time: "YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+HH:MM" + NUL. */
#define TOML_DT_LEN 40

/* Table flags: the parser needs them to apply TOML's redefinition rules. */
#define TOML_F_EXPLICIT 1u /* table defined by a [header] */
#define TOML_F_INLINE   2u /* inline table: frozen once written */
#define TOML_F_AOT      4u /* array created by [[header]], may still grow */

struct toml_kv {
	char *key; /* NUL-terminated, but may hold NULs: klen is the truth */
	size_t klen;
	struct toml_value *val;
};

struct toml_value {
	enum toml_type type;
	int line;
	unsigned flags;
	/* Section number in which dotted keys created or extended this table;
	 * 0 if never. Such a table may grow only within that section. */
	unsigned gen;
	union {
		struct {
			struct toml_kv *kv;
			size_t len, cap;
			uint32_t *idx; /* open-addressing index: kv position + 1 */
			size_t icap;
		} tab;
		struct {
			struct toml_value **it;
			size_t len, cap;
		} arr;
		struct {
			char *s;
			size_t len;
		} str;
		int64_t i;
		double f;
		bool b;
		char dt[TOML_DT_LEN];
	} u;
};

struct toml_value *toml_tree_new(enum toml_type type, int line);
/* Looks key up in table t; NULL when absent. */
struct toml_value *toml_tree_find(const struct toml_value *t, const char *key, size_t klen);
/* Appends key (taking ownership of the malloc'd key on success) -> val.
 * The caller has checked the key is absent. Returns 0 or -ENOMEM. */
int toml_tree_add(struct toml_value *t, char *key, size_t klen, struct toml_value *val);
/* Appends v to array a (ownership passes on success). 0 or -ENOMEM. */
int toml_tree_push(struct toml_value *a, struct toml_value *v);

struct toml_dt_scan {
	enum toml_type type;
	char text[TOML_DT_LEN]; /* canonical form */
	const char *msg;        /* on error */
	size_t err_off;         /* on error: offset into the scanned text */
};

/* Reads a date, time or date-time at the start of s[0..n). Returns the bytes
 * used (> 0), 0 when s does not start like a date or time, or -EINVAL with
 * r->msg and r->err_off set. Trailing text is left for the caller. */
ssize_t toml_datetime_scan(const char *s, size_t n, struct toml_dt_scan *r);

#endif
