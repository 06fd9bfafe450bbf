/*
 * pg_ident.conf-style user name maps for the `cert` method (and any method
 * with a map= option): lines `MAPNAME SYSTEM-USERNAME PG-USERNAME`, where
 * SYSTEM-USERNAME is a literal or `/regex` (POSIX extended, as PostgreSQL's
 * pg_ident) and PG-USERNAME may use \1 for the regex's first capture group.
 * `#` starts a comment; names may be double-quoted. Pure, no I/O besides
 * reading the file in identmap_load.
 */
#ifndef HELIOS_AUTH_IDENTMAP_H
#define HELIOS_AUTH_IDENTMAP_H

#include <stdbool.h>
#include <stddef.h>

struct identmap;

/*
 * Parses text (name is the file name used in error messages). On error returns
 * -EINVAL and writes "file:line: reason" into err. *out is a map (possibly
 * empty) on success.
 */
__attribute__((warn_unused_result)) int
identmap_parse(const char *text, const char *name, struct identmap **out, char *err, size_t errlen);

/* Reads and parses a file: 0, -errno when unreadable (err says why), -EINVAL on syntax. */
__attribute__((warn_unused_result)) int identmap_load(const char *path, struct identmap **out,
                                                      char *err, size_t errlen);

void identmap_free(struct identmap *m);

/* Number of lines (entries) held, for logs and tests. */
size_t identmap_count(const struct identmap *m);

/*
 * True if system_user (the certificate's CN or a SAN) may log in as login_user.
 * With m == NULL or map NULL/"" there is no mapping: system_user must equal
 * login_user (PostgreSQL's behaviour without map=). Otherwise any line of map
 * `map` whose SYSTEM-USERNAME matches and whose PG-USERNAME (after \1) equals
 * login_user allows it. Comparisons are case-sensitive, as in PostgreSQL.
 */
bool identmap_match(const struct identmap *m, const char *map, const char *system_user,
                    const char *login_user);

#endif
