/*
 * Internal requests: SQL that does not come from a wire client (the result
 * cache's catalog read, later the GraphQL gateway) run through the same
 * server pools as clients' queries. A request names a database and a user,
 * carries SQL text and optional text parameters, and gets its rows (the
 * DataRow messages as the server sent them) or an error through a
 * callback, on the worker thread that submitted it.
 *
 * This header is the seam: pipeline/ code calls ireq_submit(); conn/ (the
 * owner of server connections) installs the implementation at start-up
 * with ireq_install(), so pipeline/ never includes conn/. Without an
 * implementation (unit tests) ireq_submit() fails with -ENOSYS.
 */
#ifndef HELIOS_IREQ_H
#define HELIOS_IREQ_H

#include <stddef.h>
#include <stdint.h>

/* What an internal request produced. Valid only during the callback. */
struct ireq_result {
	int err;              /* 0: the server answered; -errno: no answer (no server, lost) */
	const char *sqlstate; /* the server's error (err 0), NULL when it succeeded */
	const char *message;  /* the error's text (server's or ours), NULL on success */
	const uint8_t *rows;  /* the DataRow messages, header included, back to back */
	size_t rows_len;
	uint64_t n_rows;
};

typedef void ireq_done_fn(void *arg, const struct ireq_result *r);

struct ireq {
	const char *database, *user;
	const char *tenant; /* the pool's tenant id (NULL: none) */
	int server_cap;     /* that tenant's own server limit, 0: none (pool_lookup) */
	const char *sql;
	int n_params;              /* > 0: Parse/Bind/Execute/Sync with these text values */
	const char *const *params; /* NULL entries are SQL NULL */
	size_t max_bytes;          /* rows accepted; a larger answer fails with -EMSGSIZE */
	uint32_t timeout_ms;       /* waiting for a server and for the answer; 0: 10 s */
	ireq_done_fn *done;        /* called exactly once, never from inside ireq_submit */
	void *arg;
};

struct ireq_ops {
	/* Copies what it needs of rq; 0 when done() will be called. */
	int (*submit)(const struct ireq *rq);
};

/* conn/ at start-up, before any worker runs. */
void ireq_install(const struct ireq_ops *ops);
/* On a worker thread. 0: rq->done will be called later on this thread;
 * -errno (and no call) otherwise. */
int ireq_submit(const struct ireq *rq);

#endif
