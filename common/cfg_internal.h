/*
 * Private to the configuration loader (cfg.c, cfg_check.c, cfg_users.c):
 * the loader's state and how it reports an error.
 */
#ifndef HELIOS_CFG_INTERNAL_H
#define HELIOS_CFG_INTERNAL_H

#include "common/cfg.h"
#include "common/toml.h"

#include <sys/stat.h>

struct loader {
	const char *name;     /* file name used in messages */
	const char *ovr_name; /* the overrides' name in messages */
	const char *at;       /* name of the tree being walked: name or ovr_name */
	const char *dir;      /* folder relative paths resolve against; NULL = leave them */
	const char *base;     /* file name without folder; NULL = not from a file */
	const struct toml_value *root;
	const struct toml_value *ovr; /* overrides, NULL = none */
	/* command-line values (cfg_force_value), laid over both; NULL = none */
	const struct toml_value *forced;
	struct cfg *c;
	struct cfg_error *err;
};

/* "table", "string", ...: a TOML type as an error message names it. */
const char *cfg_type_word(enum toml_type t);
/* Fills ld->err with "file:line: message" about the tree being walked (no
 * line when 0); returns -EINVAL. */
int cfg_fail(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same about another file (users_file). */
int cfg_fail_in(struct loader *ld, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* For rules checked once every key has its value: names the key and points
 * at the overrides when its value came from there, else at the file. */
int cfg_fail_key(struct loader *ld, const char *section, long index, const char *name,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* "io_backend", "pool_mode.mode", "nodes[1].port" (index < 0: none);
 * control characters become '?' so a message stays one line. */
void cfg_key_path(char *buf, size_t cap, const char *section, long index, const char *name);
/* Opens path for reading if it is a regular file; returns an fd or -errno. */
int cfg_open_regular(const char *path, struct stat *st);
/* Reads a whole regular file of at most max bytes (NUL-terminated, caller
 * frees); 0 or -errno. */
int cfg_read_all(const char *path, size_t max, char **out, size_t *len);

/* cfg_check.c: the rules that span keys, once every key has its value. */
int cfg_validate(struct loader *ld);
/* cfg_plugins.c: one [[plugins]] element t (index) into p (zeroed). */
int cfg_load_plugin(struct loader *ld, long index, const struct toml_value *t,
                    struct cfg_plugin *p);
void cfg_plugins_free(struct cfg *c);
/* cfg_users.c: reads auth.users_file and appends its users. */
int cfg_load_users_file(struct loader *ld);

#endif
