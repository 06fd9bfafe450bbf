/*
 * TOML 1.0 reader. Pure: bytes in, a tree or an error with line and column
 * out; no I/O. Nesting depth and input size are bounded so hostile input
 * cannot exhaust memory or stack.
 */
#ifndef HELIOS_TOML_H
#define HELIOS_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOML_MAX_INPUT (16u << 20) /* bytes */
#define TOML_MAX_DEPTH 64          /* nested arrays / inline tables / dotted keys */

enum toml_type {
	TOML_TABLE,
	TOML_ARRAY,
	TOML_STRING,
	TOML_INT,
	TOML_FLOAT,
	TOML_BOOL,
	TOML_DATETIME,       /* offset date-time */
	TOML_DATETIME_LOCAL, /* local date-time */
	TOML_DATE_LOCAL,
	TOML_TIME_LOCAL,
};

struct toml_value;

struct toml_error {
	int line; /* 1-based; 0 when not applicable */
	int col;  /* 1-based */
	char msg[200];
};

/* Parses len bytes (need not be NUL-terminated). Returns the root table, or
 * NULL with *err filled. The caller frees the tree with toml_free(). */
struct toml_value *toml_parse(const char *data, size_t len, struct toml_error *err);
void toml_free(struct toml_value *v);

enum toml_type toml_type(const struct toml_value *v);
const char *toml_type_str(enum toml_type t);
/* Line (1-based) where the value's key, or the value itself, was written. */
int toml_line(const struct toml_value *v);

/* Tables: keys in document order. */
size_t toml_table_len(const struct toml_value *t);
const char *toml_table_key(const struct toml_value *t, size_t i);
/* Byte length of key i: quoted keys may contain NUL ("\u0000"). */
size_t toml_table_key_len(const struct toml_value *t, size_t i);
struct toml_value *toml_table_value(const struct toml_value *t, size_t i);
struct toml_value *toml_table_get(const struct toml_value *t, const char *key);

/* Arrays (including arrays of tables). */
size_t toml_array_len(const struct toml_value *a);
struct toml_value *toml_array_at(const struct toml_value *a, size_t i);

/* Scalars. toml_string returns the decoded bytes (may contain NUL: use *len). */
const char *toml_string(const struct toml_value *v, size_t *len);
int64_t toml_int(const struct toml_value *v);
double toml_float(const struct toml_value *v);
bool toml_bool(const struct toml_value *v);
/* Date/time values as canonical RFC 3339 text, e.g. "1979-05-27T07:32:00Z",
 * "1979-05-27T07:32:00.999999", "1979-05-27", "07:32:00". */
const char *toml_datetime(const struct toml_value *v);

#endif
