/*
 * Private to common/cfg*.c: the section table that goes with the key table,
 * dotted key names, and a bounded text builder shared by the loader's
 * messages, the value formatter, cfg_to_toml and the docs writer.
 */
#ifndef HELIOS_CFG_KEYS_H
#define HELIOS_CFG_KEYS_H

#include "common/cfg.h"

#include <stdbool.h>
#include <stddef.h>

/* Room for a dotted key name + NUL; the longest is 37 bytes now, and a unit
 * test checks every name fits. */
#define CFG_DOTTED_MAX 64

struct cfg_section {
	const char *name; /* "" = top level; "auth.users" nests in "auth" */
	bool is_array;    /* array of tables: [[nodes]] */
	const char *title;
	const char *doc; /* paragraph for docs/configuration.md */
};

/* Sections in documentation order; *n gets the count. */
const struct cfg_section *cfg_sections(size_t *n);
/* The section named name ("" for top level), or NULL. */
const struct cfg_section *cfg_section_find(const char *name);
/* The key name inside section, or NULL. name need not be NUL-terminated. */
const struct cfg_key *cfg_key_in(const char *section, const char *name, size_t name_len);
/* The key or subsection name of section closest to name when it looks like
 * a typo (edit distance <= 2), for "did you mean" hints; NULL otherwise. */
const char *cfg_key_suggest(const char *section, const char *name);
/* The dotted key name closest to name ("pool_mode.max_pool_sise") when it
 * looks like a typo (edit distance <= 2); NULL otherwise. Static string. */
const char *cfg_key_suggest_dotted(const char *name);
/* k's dotted name as a static string that lives as long as the program. */
const char *cfg_key_dotted(const struct cfg_key *k);
/* Position of s (len bytes) in k->values, or -1. */
int cfg_enum_index(const struct cfg_key *k, const char *s, size_t len);

/* The elements of array section ("nodes", "schema_routes", "cache.tables",
 * "auth.users") in c: *n of them, *elem bytes apart. file_users: auth.users includes the
 * users_file entries, else only [[auth.users]]. NULL with *n = 0 for any
 * other section. */
const char *cfg_array_elements(const struct cfg *c, const char *section, bool file_users, size_t *n,
                               size_t *elem);

/* A CFG_KEY_STRLIST field of the struct at base: its strings and *n. */
char **cfg_strlist_get(const struct cfg_key *k, const char *base, size_t *n);
/* Stores items (n of them, malloc'd, owned from now on) in the field. */
void cfg_strlist_put(const struct cfg_key *k, char *base, char **items, size_t n);
/* Frees the field's strings and empties it. */
void cfg_strlist_free(const struct cfg_key *k, char *base);

/* Appends into a fixed buffer, always NUL-terminated; full records that
 * something did not fit so callers can refuse instead of truncating. */
struct cfg_buf {
	char *p;
	size_t cap;
	size_t len;
	bool full;
	/* cfg_buf_quote writes "${" as "$${", so that text the loader reads
	 * back keeps a value as it is instead of expanding it again (cfg_to_toml) */
	bool env_escape;
};

void cfg_buf_init(struct cfg_buf *b, char *p, size_t cap);
void cfg_buf_printf(struct cfg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a TOML basic string: quoted, with \" \\ and control
 * characters escaped, so the result is one line and valid TOML. */
void cfg_buf_quote(struct cfg_buf *b, const char *s, size_t len);

/* Appends one element's value of k as TOML; base is struct cfg or the
 * element struct of k's array table (cfg_node, cfg_schema_route, ...). mask: non-empty secrets come
 * out as "********". */
void cfg_buf_value(struct cfg_buf *b, const struct cfg_key *k, const char *base, bool mask);

#endif
