/*
 * libFuzzer target: toml_parse + toml_free on arbitrary bytes (no NUL
 * terminator: the input is passed as a length-delimited block). A parsed tree
 * is walked through the public accessors so every node is touched.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct toml_value *v, int depth)
{
	size_t n;

	/* The parser bounds nesting; a deeper tree means that bound leaked. */
	if (!v || depth > 2 * TOML_MAX_DEPTH + 2)
		abort();
	if (toml_line(v) < 1)
		abort();
	(void)toml_type_str(toml_type(v));
	switch (toml_type(v)) {
	case TOML_TABLE:
		for (size_t i = 0; i < toml_table_len(v); i++) {
			const char *k = toml_table_key(v, i);
			size_t klen = toml_table_key_len(v, i);
			if (!k || k[klen] != 0)
				abort();
			/* Keys without NULs must be found again by name. */
			if (strlen(k) == klen && toml_table_get(v, k) != toml_table_value(v, i))
				abort();
			walk(toml_table_value(v, i), depth + 1);
		}
		break;
	case TOML_ARRAY:
		for (size_t i = 0; i < toml_array_len(v); i++)
			walk(toml_array_at(v, i), depth + 1);
		break;
	case TOML_STRING: {
		const char *s = toml_string(v, &n);
		if (!s || s[n] != 0)
			abort();
		break;
	}
	case TOML_INT:
		(void)toml_int(v);
		break;
	case TOML_FLOAT:
		(void)toml_float(v);
		break;
	case TOML_BOOL:
		(void)toml_bool(v);
		break;
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL: {
		const char *s = toml_datetime(v);
		if (!s || !s[0])
			abort();
		break;
	}
	default:
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct toml_error err;

	memset(&err, 0, sizeof(err));
	struct toml_value *root = toml_parse((const char *)data, size, &err);
	if (root) {
		if (toml_type(root) != TOML_TABLE)
			abort();
		walk(root, 0);
		toml_free(root);
	} else {
		/* A refusal always says why, NUL-terminated inside msg. */
		if (!err.msg[0] || !memchr(err.msg, 0, sizeof(err.msg)))
			abort();
	}
	return 0;
}
