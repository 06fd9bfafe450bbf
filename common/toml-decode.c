/*
 * toml-test decoder: reads TOML on stdin and prints toml-test's tagged JSON
 * on stdout (exit 0), or "line L, column C: msg" on stderr (exit 1). Lets the
 * conformance suite drive common/toml.c.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/toml.h"

static void put_json_string(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7F)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void put_scalar(FILE *f, const char *type, const char *text)
{
	fprintf(f, "{\"type\":\"%s\",\"value\":", type);
	put_json_string(f, text, strlen(text));
	fputc('}', f);
}

/* Recursion is bounded: the parser caps the tree at TOML_MAX_DEPTH. */
static void put_value(FILE *f, const struct toml_value *v)
{
	char buf[64];
	size_t n;
	const char *s;
	double d;

	switch (toml_type(v)) {
	case TOML_TABLE:
		fputc('{', f);
		for (size_t i = 0; i < toml_table_len(v); i++) {
			if (i)
				fputc(',', f);
			put_json_string(f, toml_table_key(v, i), toml_table_key_len(v, i));
			fputc(':', f);
			put_value(f, toml_table_value(v, i));
		}
		fputc('}', f);
		break;
	case TOML_ARRAY:
		fputc('[', f);
		for (size_t i = 0; i < toml_array_len(v); i++) {
			if (i)
				fputc(',', f);
			put_value(f, toml_array_at(v, i));
		}
		fputc(']', f);
		break;
	case TOML_STRING:
		s = toml_string(v, &n);
		fputs("{\"type\":\"string\",\"value\":", f);
		put_json_string(f, s, n);
		fputc('}', f);
		break;
	case TOML_INT:
		snprintf(buf, sizeof(buf), "%" PRId64, toml_int(v));
		put_scalar(f, "integer", buf);
		break;
	case TOML_FLOAT:
		d = toml_float(v);
		if (isnan(d))
			snprintf(buf, sizeof(buf), "nan");
		else if (isinf(d))
			snprintf(buf, sizeof(buf), "%sinf", d < 0 ? "-" : "");
		else
			snprintf(buf, sizeof(buf), "%.17g", d); /* round-trips */
		put_scalar(f, "float", buf);
		break;
	case TOML_BOOL:
		put_scalar(f, "bool", toml_bool(v) ? "true" : "false");
		break;
	default:
		put_scalar(f, toml_type_str(toml_type(v)), toml_datetime(v));
		break;
	}
}

/* Reads stdin, but never more than one byte past the parser's limit: that
 * is enough for toml_parse to reject it. */
static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 1 << 16, n = 0, max = (size_t)TOML_MAX_INPUT + 1;
	char *buf = malloc(cap);

	if (!buf)
		return NULL;
	for (;;) {
		size_t got;

		if (n == cap) {
			char *nb;

			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return NULL;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, (cap < max ? cap : max) - n, f);
		n += got;
		if (got == 0 || n >= max)
			break;
	}
	if (ferror(f)) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

int main(void)
{
	struct toml_error err;
	struct toml_value *root;
	size_t len = 0;
	char *data = read_all(stdin, &len);
	int rc = 0;

	if (!data) {
		fprintf(stderr, "toml-decode: cannot read standard input\n");
		return 1;
	}
	root = toml_parse(data, len, &err);
	free(data);
	if (!root) {
		if (err.line)
			fprintf(stderr, "line %d, column %d: %s\n", err.line, err.col, err.msg);
		else
			fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	put_value(stdout, root);
	fputc('\n', stdout);
	toml_free(root);
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "toml-decode: write error\n");
		rc = 1;
	}
	return rc;
}
