/*
 * pgbouncer.ini reader for helioctl import-pgbouncer: entries in file
 * order with the file and line they come from, %include followed, and the
 * "k=v k2='v 2'" values of [databases] and [users] split into pairs.
 */
#ifndef HELIOS_PGBINI_H
#define HELIOS_PGBINI_H

#include <stdbool.h>
#include <stddef.h>

#define PGBINI_SECTION_MAX 64

struct pgbini_ent {
	char *section; /* lower case: pgbouncer, databases, users, peers */
	char *key;     /* as written (database and user names keep their case) */
	char *val;     /* surrounding blanks removed; quotes kept, as PgBouncer does */
	const char *file;
	int line;
};

struct pgbini {
	struct pgbini_ent *e;
	size_t n, cap;
	char **files; /* names the entries point to */
	size_t nfiles;
};

/* Reads path and the files it %includes. Returns 0, or -errno with a
 * "file:line: why" message in err. Free with pgbini_free either way. */
int pgbini_load(struct pgbini *ini, const char *path, char *err, size_t errlen);

/* Parses buf (the text of file) into ini; section carries the current
 * section across %include. Pure but for %include, which reads files. */
int pgbini_parse(struct pgbini *ini, const char *file, const char *buf, size_t len, char *section,
                 int depth, char *err, size_t errlen);

void pgbini_free(struct pgbini *ini);

struct pgbini_pair {
	char key[64]; /* lower case */
	char val[1024];
};

/* Splits a connection string ("host=h port=5432 dbname='a b'") into at
 * most max pairs. 0, or -EINVAL/-E2BIG with why in err. */
int pgbini_connstr(const char *s, struct pgbini_pair *pairs, size_t max, size_t *n, char *err,
                   size_t errlen);

#endif
