/*
 * The result cache's reading of a client's request (docs/cache.md): the
 * simple Query or the [Parse] Bind [Describe] Execute Sync batch at the
 * head of its buffer, and the checks on its text and bound values that
 * do not need the catalog. Pure functions of the bytes (and the client's
 * prepared statements, through a lookup its caller passes).
 */
#ifndef HELIOS_CACHE_REQ_H
#define HELIOS_CACHE_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* A prepared statement's Parse body after its name (text\0 int16 n, n
 * type oids), *len set; NULL when the client has none of that name. */
typedef const uint8_t *cache_stmt_fn(const void *arg, const char *name, uint32_t *len);

/* Reads a whole simple Query, or a whole [Parse] Bind [Describe portal]
 * Execute Sync batch with the unnamed portal and no row limit, at the head
 * of in[0..n) (a client's buffer; a Bind without its Parse finds the
 * statement with stmt_of). False otherwise (incomplete, another shape):
 * not for the cache. */
bool cache_read_req(const uint8_t *in, uint32_t n, cache_stmt_fn *stmt_of, const void *arg,
                    struct cache_req *r);
/* A Bind's parameters after the statement name are well formed and no
 * text value is a 'now'-like date/time input. */
bool cache_bind_ok(const uint8_t *t, uint32_t n);
/* A string constant of the text holds 'now', 'today', 'tomorrow' or
 * 'yesterday' (any case; with a dollar quote the whole text is looked at). */
bool cache_text_has_now(const char *s, size_t n);

#endif
