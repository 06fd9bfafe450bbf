/*
 * The result cache's reading of a client's request (docs/cache.md): the
 * simple Query or the [Parse] Bind [Describe] Execute Sync batch at the
 * head of its buffer, and the checks on its text and bound values that
 * do not need the catalog. Pure functions of the bytes (and the client's
 * prepared statements).
 */
#ifndef HELIOS_CACHE_REQ_H
#define HELIOS_CACHE_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;

/* The request at the head of a client's buffer. */
struct cache_req {
	uint32_t total; /* its bytes */
	bool ext;
	const char *text;
	uint32_t text_len;
	const uint8_t *stmt_body; /* extended: text\0 int16 n, n param type oids */
	uint32_t stmt_body_len;
	const char *pname;        /* extended: the Parse's statement name; NULL without a Parse */
	const uint8_t *bind_tail; /* after the statement name */
	uint32_t bind_tail_len;
	char seq[8];
};

/* Reads a whole simple Query, or a whole [Parse] Bind [Describe portal]
 * Execute Sync batch with the unnamed portal and no row limit, at the head
 * of cl's buffer. False otherwise (incomplete, another shape): not for the
 * cache. */
bool cache_read_req(struct client *cl, struct cache_req *r);
/* A Bind's parameters after the statement name are well formed and no
 * text value is a 'now'-like date/time input. */
bool cache_bind_ok(const uint8_t *t, uint32_t n);
/* A string constant of the text holds 'now', 'today', 'tomorrow' or
 * 'yesterday' (any case; with a dollar quote the whole text is looked at). */
bool cache_text_has_now(const char *s, size_t n);

#endif
