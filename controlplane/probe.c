/*
 * Node checks over libpq; see probe.h. Connections are kept between rounds
 * and reopened when a check fails.
 */
#include "controlplane/probe.h"

#include "common/cpwire.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONNS 64
#define RING      4096 /* heartbeat writes remembered: over an hour at 1 s */

struct conn {
	char key[300]; /* host:port/database/user */
	PGconn *pg;
};

struct prober {
	struct conn conns[MAX_CONNS];
	size_t n_conns;
	int64_t seq;               /* last heartbeat sequence written */
	uint64_t written_ms[RING]; /* when seq s was written: written_ms[s % RING] */
	int64_t first_seq;         /* oldest sequence in the ring */
	bool table_ready;
};

struct prober *prober_new(void)
{
	struct prober *p = calloc(1, sizeof(*p));
	if (p)
		p->first_seq = 1;
	return p;
}

void prober_free(struct prober *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_conns; i++)
		PQfinish(p->conns[i].pg);
	free(p);
}

static void set_err(struct probe_result *r, const char *what, PGconn *pg)
{
	const char *m = pg ? PQerrorMessage(pg) : "";
	snprintf(r->error, sizeof(r->error), "%s%s%s", what, m[0] ? ": " : "", m);
	r->error[strcspn(r->error, "\n")] = '\0';
}

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static PGconn *get_conn(struct prober *p, const struct probe_node *nd,
                        const struct probe_settings *s, struct probe_result *r)
{
	char key[300];
	snprintf(key, sizeof(key), "%s:%d/%s/%s", nd->host, nd->port, s->database, s->user);
	struct conn *c = NULL;
	for (size_t i = 0; i < p->n_conns; i++)
		if (!strcmp(p->conns[i].key, key))
			c = &p->conns[i];
	if (!c) {
		if (p->n_conns == MAX_CONNS) {
			PQfinish(p->conns[0].pg);
			memmove(p->conns, p->conns + 1, (MAX_CONNS - 1) * sizeof(p->conns[0]));
			p->n_conns--;
		}
		c = &p->conns[p->n_conns++];
		memset(c, 0, sizeof(*c));
		snprintf(c->key, sizeof(c->key), "%s", key);
	}
	if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
		return c->pg;
	PQfinish(c->pg);
	char port[16], timeout[16], opts[64];
	snprintf(port, sizeof(port), "%d", nd->port);
	snprintf(timeout, sizeof(timeout), "%d", (s->timeout_ms + 999) / 1000);
	snprintf(opts, sizeof(opts), "-c statement_timeout=%d", s->timeout_ms);
	const char *const keys[] = {"host",     "port",
	                            "dbname",   "user",
	                            "password", "connect_timeout",
	                            "options",  "application_name",
	                            "sslmode",  NULL};
	const char *const vals[] = {nd->host, port, s->database, s->user,  s->password,
	                            timeout,  opts, "helios-cp", "prefer", NULL};
	c->pg = PQconnectdbParams(keys, vals, 0);
	if (c->pg)
		PQsetNoticeProcessor(c->pg, quiet, NULL); /* "already exists, skipping" */
	if (PQstatus(c->pg) != CONNECTION_OK) {
		set_err(r, "connect", c->pg);
		PQfinish(c->pg);
		c->pg = NULL;
		return NULL;
	}
	return c->pg;
}

static void drop_conn(struct prober *p, PGconn *pg)
{
	for (size_t i = 0; i < p->n_conns; i++) {
		if (p->conns[i].pg == pg) {
			PQfinish(pg);
			p->conns[i].pg = NULL;
		}
	}
}

/* One-row, one-column query; its text value in buf. -1 on error. */
static int query1(PGconn *pg, const char *sql, char *buf, size_t cap, struct probe_result *r)
{
	PGresult *res = PQexec(pg, sql);
	int rc = -1;
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 1) {
		snprintf(buf, cap, "%s", PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
		rc = 0;
	} else if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 0) {
		buf[0] = '\0';
		rc = 1;
	} else {
		snprintf(r->error, sizeof(r->error), "%s", PQresultErrorMessage(res));
		r->error[strcspn(r->error, "\n")] = '\0';
	}
	PQclear(res);
	return rc;
}

static int command(PGconn *pg, const char *sql, struct probe_result *r)
{
	PGresult *res = PQexec(pg, sql);
	int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
	if (rc) {
		snprintf(r->error, sizeof(r->error), "%s", PQresultErrorMessage(res));
		r->error[strcspn(r->error, "\n")] = '\0';
	}
	PQclear(res);
	return rc;
}

/* Writes the next heartbeat on the primary. */
static void write_heartbeat(struct prober *p, PGconn *pg, const struct probe_settings *s,
                            struct probe_result *r)
{
	char sql[512];
	if (!p->table_ready) {
		snprintf(sql, sizeof(sql),
		         "CREATE TABLE IF NOT EXISTS %s (id int PRIMARY KEY, seq bigint NOT NULL)",
		         s->table);
		if (command(pg, sql, r) < 0)
			return;
		p->table_ready = true;
	}
	int64_t next = p->seq + 1;
	snprintf(sql, sizeof(sql),
	         "INSERT INTO %s VALUES (1, %lld) ON CONFLICT (id) DO UPDATE SET seq = "
	         "EXCLUDED.seq",
	         s->table, (long long)next);
	uint64_t now = cpwire_mono_ms();
	if (command(pg, sql, r) < 0) {
		p->table_ready = false;
		return;
	}
	/* a new control plane starts from the sequence the table holds */
	p->seq = next;
	p->written_ms[next % RING] = now;
	if (next - p->first_seq >= RING)
		p->first_seq = next - RING + 1;
}

static int64_t lag_for(const struct prober *p, int64_t seen)
{
	if (p->seq == 0)
		return -1; /* nothing written yet */
	if (seen >= p->seq)
		return 0;
	int64_t first_missing = seen + 1;
	if (first_missing < p->first_seq)
		first_missing = p->first_seq; /* older than we remember: at least this */
	uint64_t now = cpwire_mono_ms();
	uint64_t t = p->written_ms[first_missing % RING];
	return t && now > t ? (int64_t)(now - t) : 0;
}

void prober_round(struct prober *p, const struct probe_node *nodes, size_t n,
                  const struct probe_settings *s, int primary_hint, struct probe_result *out)
{
	PGconn *pgs[MAX_CONNS] = {0};
	int primary = -1;
	for (size_t i = 0; i < n && i < MAX_CONNS; i++) {
		struct probe_result *r = &out[i];
		memset(r, 0, sizeof(*r));
		r->lag_ms = -1;
		PGconn *pg = get_conn(p, &nodes[i], s, r);
		if (!pg)
			continue;
		char v[32];
		if (query1(pg, "SELECT pg_is_in_recovery()", v, sizeof(v), r) != 0) {
			drop_conn(p, pg);
			continue;
		}
		r->up = true;
		r->in_recovery = v[0] == 't';
		pgs[i] = pg;
		if (!r->in_recovery && (primary < 0 || (int)i == primary_hint))
			primary = (int)i;
	}
	if (primary >= 0) {
		if (p->seq == 0) {
			/* continue the sequence a previous control plane left */
			char sql[256], v[32];
			snprintf(sql, sizeof(sql), "SELECT seq FROM %s WHERE id = 1", s->table);
			struct probe_result tmp = {0};
			if (query1(pgs[primary], sql, v, sizeof(v), &tmp) == 0 && v[0])
				p->seq = strtoll(v, NULL, 10);
		}
		write_heartbeat(p, pgs[primary], s, &out[primary]);
		out[primary].lag_ms = 0;
	}
	for (size_t i = 0; i < n && i < MAX_CONNS; i++) {
		if (!pgs[i] || (int)i == primary || !out[i].in_recovery)
			continue;
		char sql[256], v[32];
		snprintf(sql, sizeof(sql), "SELECT seq FROM %s WHERE id = 1", s->table);
		int rc = query1(pgs[i], sql, v, sizeof(v), &out[i]);
		if (rc == 0 && v[0])
			out[i].lag_ms = lag_for(p, strtoll(v, NULL, 10));
		else if (rc >= 0)
			snprintf(out[i].error, sizeof(out[i].error),
			         "no heartbeat row replicated yet (%s)", s->table);
		/* rc < 0: the table is not there yet (error text kept); lag unknown */
	}
}
