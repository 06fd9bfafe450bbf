/*
 * Maps for prepared statements: a chained hash per client (looked up on
 * every Bind) and a small LRU array per server (looked up on every Parse
 * and Bind; a linear scan of a few hundred keys beats a hash here).
 */
#include "dataplane/conn/prep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv(const uint8_t *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

uint64_t prep_key(const uint8_t *body, uint32_t len)
{
	/* text and types, plus the length so a collision needs both to match */
	uint64_t h = fnv(body, len, 1469598103934665603ull);
	return h ^ ((uint64_t)len << 48);
}

void prep_server_name(uint64_t key, char out[PREP_SERVER_NAME_LEN])
{
	snprintf(out, PREP_SERVER_NAME_LEN, "hp_%016llx", (unsigned long long)key);
}

static uint32_t bucket(const struct prep_client *pc, const char *name)
{
	return (uint32_t)(fnv((const uint8_t *)name, strlen(name), 1469598103934665603ull) %
	                  pc->nbuckets);
}

struct prep_stmt *prep_client_get(const struct prep_client *pc, const char *name)
{
	if (!pc->nbuckets)
		return NULL;
	for (struct prep_stmt *s = pc->buckets[bucket(pc, name)]; s; s = s->next)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

static void free_stmt(struct prep_stmt *s)
{
	free(s->name);
	free(s->body);
	free(s);
}

void prep_client_del(struct prep_client *pc, const char *name)
{
	if (!pc->nbuckets)
		return;
	struct prep_stmt **pp = &pc->buckets[bucket(pc, name)];
	for (; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->name, name)) {
			struct prep_stmt *s = *pp;
			*pp = s->next;
			free_stmt(s);
			pc->count--;
			return;
		}
	}
}

struct prep_stmt *prep_client_put(struct prep_client *pc, const char *name, const uint8_t *body,
                                  uint32_t len)
{
	if (!pc->nbuckets) {
		pc->buckets = calloc(64, sizeof(*pc->buckets));
		if (!pc->buckets)
			return NULL;
		pc->nbuckets = 64;
	}
	prep_client_del(pc, name);
	struct prep_stmt *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->name = strdup(name);
	s->body = malloc(len ? len : 1);
	if (!s->name || !s->body) {
		free_stmt(s);
		return NULL;
	}
	memcpy(s->body, body, len);
	s->body_len = len;
	s->key = prep_key(body, len);
	prep_server_name(s->key, s->sname);
	uint32_t b = bucket(pc, name);
	s->next = pc->buckets[b];
	pc->buckets[b] = s;
	pc->count++;
	return s;
}

void prep_client_clear(struct prep_client *pc)
{
	for (uint32_t i = 0; i < pc->nbuckets; i++) {
		struct prep_stmt *s = pc->buckets[i];
		while (s) {
			struct prep_stmt *n = s->next;
			free_stmt(s);
			s = n;
		}
		pc->buckets[i] = NULL;
	}
	pc->count = 0;
}

void prep_client_free(struct prep_client *pc)
{
	prep_client_clear(pc);
	free(pc->buckets);
	pc->buckets = NULL;
	pc->nbuckets = 0;
}

void prep_server_init(struct prep_server *ps, uint32_t cap)
{
	memset(ps, 0, sizeof(*ps));
	ps->cap = cap;
}

void prep_server_free(struct prep_server *ps)
{
	free(ps->keys);
	free(ps->used);
	memset(ps, 0, sizeof(*ps));
}

bool prep_server_has(struct prep_server *ps, uint64_t key)
{
	for (uint32_t i = 0; i < ps->n; i++) {
		if (ps->keys[i] == key) {
			ps->used[i] = ++ps->tick;
			return true;
		}
	}
	return false;
}

bool prep_server_add(struct prep_server *ps, uint64_t key, uint64_t *evicted)
{
	if (!ps->keys) {
		ps->keys = calloc(ps->cap, sizeof(*ps->keys));
		ps->used = calloc(ps->cap, sizeof(*ps->used));
		if (!ps->keys || !ps->used) {
			prep_server_free(ps);
			return false;
		}
	}
	if (ps->n < ps->cap) {
		ps->keys[ps->n] = key;
		ps->used[ps->n++] = ++ps->tick;
		return false;
	}
	uint32_t lru = 0;
	for (uint32_t i = 1; i < ps->n; i++)
		if (ps->used[i] < ps->used[lru])
			lru = i;
	*evicted = ps->keys[lru];
	ps->keys[lru] = key;
	ps->used[lru] = ++ps->tick;
	return true;
}

void prep_server_forget(struct prep_server *ps, uint64_t key)
{
	for (uint32_t i = 0; i < ps->n; i++) {
		if (ps->keys[i] == key) {
			ps->keys[i] = ps->keys[ps->n - 1];
			ps->used[i] = ps->used[ps->n - 1];
			ps->n--;
			return;
		}
	}
}

void prep_server_clear(struct prep_server *ps)
{
	ps->n = 0;
}
