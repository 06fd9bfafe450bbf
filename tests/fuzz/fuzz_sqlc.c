/*
 * libFuzzer target: the SQL scanner and classifier that session tracking in
 * transaction pooling relies on (dataplane/sql/sqlc.c, sqlscan.c). The
 * input up to its first NUL is the text of a Query. Checks, beyond memory
 * safety (the pre-check reads an exact-size heap block without a NUL):
 *  - sqlc_maybe_interesting is never false when sqlc_classify finds a
 *    statement that changes session state (else the relay would not track it);
 *  - results are well-formed: known kinds, ranges inside the text, names
 *    terminated, statement flags within the total;
 *  - a statement's range, classified alone, is the same statement (the
 *    pool replays SET and PREPARE text by these ranges on other servers);
 *  - sqlscan_skip_blank stays inside the text and within its budget.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/sql/sqlc.h"
#include "dataplane/sql/sqlscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_result(const char *text, size_t len, const struct sqlc_result *r, bool maybe)
{
	unsigned flags = 0;
	if (r->n < 0 || r->n > SQLC_MAX_STMTS || (r->parse_error && r->n))
		abort();
	for (int i = 0; i < r->n; i++) {
		const struct sqlc_stmt *st = &r->stmts[i];
		if (st->kind > SQLC_SESSION_AUTH || !sqlc_kind_str(st->kind))
			abort();
		if ((uint64_t)st->loc + st->len > len)
			abort();
		if (strnlen(st->name, SQLC_NAME_MAX) == SQLC_NAME_MAX)
			abort();
		if (!maybe && (st->kind != SQLC_OTHER || st->flags))
			abort(); /* the pre-check let a session-state change through */
		flags |= st->flags;
	}
	if ((flags & ~r->flags) || (!maybe && r->flags))
		abort();
	(void)text;
}

/* The statement at st, taken out by its range, classifies the same. */
static void check_range(const char *text, const struct sqlc_stmt *st)
{
	char *one = strndup(text + st->loc, st->len);
	struct sqlc_result *r = malloc(sizeof(*r));
	if (!one || !r)
		abort();
	int rc = sqlc_classify(one, r);
	if (rc == 0) {
		if (r->parse_error || r->n != 1 || r->stmts[0].kind != st->kind ||
		    strcmp(r->stmts[0].name, st->name) != 0 ||
		    r->stmts[0].name_incomplete != st->name_incomplete)
			abort();
	} else if (rc != -E2BIG && rc != -ENOMEM) {
		abort();
	}
	free(r);
	free(one);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len = strnlen((const char *)data, size);
	char *exact = malloc(len ? len : 1);
	char *text = malloc(len + 1);
	struct sqlc_result *r = malloc(sizeof(*r));
	if (!exact || !text || !r)
		abort();
	memcpy(exact, data, len);
	memcpy(text, data, len);
	text[len] = '\0';

	bool maybe = sqlc_maybe_interesting(exact, len);
	int rc = sqlc_classify(text, r);
	if (rc == 0) {
		check_result(text, len, r, maybe);
		for (int i = 0; i < r->n; i++)
			if (r->stmts[i].kind != SQLC_OTHER)
				check_range(text, &r->stmts[i]);
	} else if (rc != -E2BIG && rc != -ENOMEM && rc != -EPROTO) {
		abort();
	}

	/* From a few places, with and without parens, under a tight budget. */
	for (size_t pos = 0; pos <= len; pos += len / 7 + 1) {
		size_t budget = len + 1, b0 = budget;
		size_t end = sqlscan_skip_blank(exact, len, pos, pos & 1, &budget);
		if (budget > b0 || (end != SIZE_MAX && (end < pos || end > len)))
			abort();
		size_t tiny = 3;
		end = sqlscan_skip_blank(exact, len, pos, false, &tiny);
		if (end != SIZE_MAX && (end < pos || end > len))
			abort();
	}
	bool lex_error = false;
	rc = sqlscan_check_stmt_lengths(text, len, SQLC_MAX_STMTS, &lex_error);
	if (rc != 0 && rc != -E2BIG)
		abort();

	free(r);
	free(text);
	free(exact);
	return 0;
}
