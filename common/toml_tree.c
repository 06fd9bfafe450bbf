/*
 * TOML tree: value nodes, tables that keep keys in document order (with a
 * hash index once they grow, so big tables stay linear to build), arrays,
 * and the read-only accessors of toml.h. Knows nothing about syntax.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/toml_impl.h"

/* Below this many keys a linear scan beats hashing. */
#define INDEX_MIN 8

struct toml_value *toml_tree_new(enum toml_type type, int line)
{
	struct toml_value *v = calloc(1, sizeof(*v));

	if (v) {
		v->type = type;
		v->line = line;
	}
	return v;
}

/* The tree depth is capped by the parser (TOML_MAX_DEPTH), so recursion
 * here is bounded. */
void toml_free(struct toml_value *v)
{
	size_t i;

	if (!v)
		return;
	switch (v->type) {
	case TOML_TABLE:
		for (i = 0; i < v->u.tab.len; i++) {
			free(v->u.tab.kv[i].key);
			toml_free(v->u.tab.kv[i].val);
		}
		free(v->u.tab.kv);
		free(v->u.tab.idx);
		break;
	case TOML_ARRAY:
		for (i = 0; i < v->u.arr.len; i++)
			toml_free(v->u.arr.it[i]);
		free(v->u.arr.it);
		break;
	case TOML_STRING:
		free(v->u.str.s);
		break;
	default:
		break;
	}
	free(v);
}

/* FNV-1a, seeded by the table's address so that colliding key sets cannot
 * be precomputed against every run. */
static uint64_t key_hash(const struct toml_value *t, const char *key, size_t klen)
{
	uint64_t h = 14695981039346656037ull ^ ((uint64_t)(uintptr_t)t >> 4);

	for (size_t i = 0; i < klen; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

static void index_put(struct toml_value *t, size_t pos)
{
	const struct toml_kv *kv = &t->u.tab.kv[pos];
	size_t mask = t->u.tab.icap - 1;
	size_t slot = key_hash(t, kv->key, kv->klen) & mask;

	while (t->u.tab.idx[slot])
		slot = (slot + 1) & mask;
	t->u.tab.idx[slot] = (uint32_t)(pos + 1);
}

/* Keeps the index at most half full. */
static int index_grow(struct toml_value *t)
{
	size_t icap = t->u.tab.icap ? t->u.tab.icap * 2 : 32;
	uint32_t *idx;

	while (icap < 2 * (t->u.tab.len + 1))
		icap *= 2;
	if (icap > UINT32_MAX)
		return -ENOMEM;
	idx = calloc(icap, sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	free(t->u.tab.idx);
	t->u.tab.idx = idx;
	t->u.tab.icap = icap;
	for (size_t i = 0; i < t->u.tab.len; i++)
		index_put(t, i);
	return 0;
}

struct toml_value *toml_tree_find(const struct toml_value *t, const char *key, size_t klen)
{
	const struct toml_kv *kv = t->u.tab.kv;

	if (!t->u.tab.idx) {
		for (size_t i = 0; i < t->u.tab.len; i++)
			if (kv[i].klen == klen && memcmp(kv[i].key, key, klen) == 0)
				return kv[i].val;
		return NULL;
	}
	size_t mask = t->u.tab.icap - 1;
	size_t slot = key_hash(t, key, klen) & mask;

	for (; t->u.tab.idx[slot]; slot = (slot + 1) & mask) {
		const struct toml_kv *e = &kv[t->u.tab.idx[slot] - 1];

		if (e->klen == klen && memcmp(e->key, key, klen) == 0)
			return e->val;
	}
	return NULL;
}

int toml_tree_add(struct toml_value *t, char *key, size_t klen, struct toml_value *val)
{
	if (t->u.tab.len == t->u.tab.cap) {
		size_t cap = t->u.tab.cap ? t->u.tab.cap * 2 : 4;
		struct toml_kv *kv = realloc(t->u.tab.kv, cap * sizeof(*kv));

		if (!kv)
			return -ENOMEM;
		t->u.tab.kv = kv;
		t->u.tab.cap = cap;
	}
	/* Grow the index before storing, so a failure leaves t unchanged. */
	if (t->u.tab.len + 1 >= INDEX_MIN && 2 * (t->u.tab.len + 1) > t->u.tab.icap) {
		if (index_grow(t))
			return -ENOMEM;
	}
	t->u.tab.kv[t->u.tab.len] = (struct toml_kv){.key = key, .klen = klen, .val = val};
	t->u.tab.len++;
	if (t->u.tab.idx)
		index_put(t, t->u.tab.len - 1);
	return 0;
}

int toml_tree_push(struct toml_value *a, struct toml_value *v)
{
	if (a->u.arr.len == a->u.arr.cap) {
		size_t cap = a->u.arr.cap ? a->u.arr.cap * 2 : 4;
		struct toml_value **it = realloc(a->u.arr.it, cap * sizeof(*it));

		if (!it)
			return -ENOMEM;
		a->u.arr.it = it;
		a->u.arr.cap = cap;
	}
	a->u.arr.it[a->u.arr.len++] = v;
	return 0;
}

enum toml_type toml_type(const struct toml_value *v)
{
	return v->type;
}

const char *toml_type_str(enum toml_type t)
{
	static const char *const names[] = {
	    [TOML_TABLE] = "table",           [TOML_ARRAY] = "array",
	    [TOML_STRING] = "string",         [TOML_INT] = "integer",
	    [TOML_FLOAT] = "float",           [TOML_BOOL] = "bool",
	    [TOML_DATETIME] = "datetime",     [TOML_DATETIME_LOCAL] = "datetime-local",
	    [TOML_DATE_LOCAL] = "date-local", [TOML_TIME_LOCAL] = "time-local",
	};

	if ((unsigned)t >= sizeof(names) / sizeof(names[0]))
		return "?";
	return names[t];
}

/* The other accessors tolerate NULL and the wrong type (they return 0 or
 * NULL), so a config loader can probe a path without checking every step. */

int toml_line(const struct toml_value *v)
{
	return v ? v->line : 0;
}

static bool is_table(const struct toml_value *t)
{
	return t && t->type == TOML_TABLE;
}

size_t toml_table_len(const struct toml_value *t)
{
	return is_table(t) ? t->u.tab.len : 0;
}

const char *toml_table_key(const struct toml_value *t, size_t i)
{
	return is_table(t) && i < t->u.tab.len ? t->u.tab.kv[i].key : NULL;
}

size_t toml_table_key_len(const struct toml_value *t, size_t i)
{
	return is_table(t) && i < t->u.tab.len ? t->u.tab.kv[i].klen : 0;
}

struct toml_value *toml_table_value(const struct toml_value *t, size_t i)
{
	return is_table(t) && i < t->u.tab.len ? t->u.tab.kv[i].val : NULL;
}

struct toml_value *toml_table_get(const struct toml_value *t, const char *key)
{
	return is_table(t) && key ? toml_tree_find(t, key, strlen(key)) : NULL;
}

size_t toml_array_len(const struct toml_value *a)
{
	return a && a->type == TOML_ARRAY ? a->u.arr.len : 0;
}

struct toml_value *toml_array_at(const struct toml_value *a, size_t i)
{
	return a && a->type == TOML_ARRAY && i < a->u.arr.len ? a->u.arr.it[i] : NULL;
}

const char *toml_string(const struct toml_value *v, size_t *len)
{
	if (!v || v->type != TOML_STRING) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = v->u.str.len;
	return v->u.str.s;
}

int64_t toml_int(const struct toml_value *v)
{
	return v && v->type == TOML_INT ? v->u.i : 0;
}

double toml_float(const struct toml_value *v)
{
	return v && v->type == TOML_FLOAT ? v->u.f : 0.0;
}

bool toml_bool(const struct toml_value *v)
{
	return v && v->type == TOML_BOOL ? v->u.b : false;
}

const char *toml_datetime(const struct toml_value *v)
{
	if (!v)
		return NULL;
	switch (v->type) {
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		return v->u.dt;
	default:
		return NULL;
	}
}
