/*
 * libFuzzer target: the admin console's command parser and its answers
 * (dataplane/report/console.c). The first input byte sizes the error buffer
 * (1..256 bytes, an exact heap block, so a write past errlen is caught); the
 * rest, up to its first NUL, is the statement. Checks: a parsed command is
 * well-formed and parses back to itself from its canonical text (PAUSE
 * "name" with quotes doubled, SET key = 'value' with quotes doubled,
 * KILL_CLIENT id, SHUTDOWN mode), a refusal always says why, and every answer
 * (CommandComplete, EmptyQueryResponse, a SHOW answer without a report or
 * config, the ErrorResponse carrying err) is a walkable run of protocol
 * messages.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/report/console.h"
#include "dataplane/pg/pgw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* console.c reads a config only for SHOW answers given one; this target
 * passes none, so these are never reached (the config module would pull in
 * the whole loader). */
const char *cfg_pool_mode_str(enum cfg_pool_mode m)
{
	(void)m;
	abort();
}

const struct cfg_node *cfg_primary(const struct cfg *c)
{
	(void)c;
	abort();
}

const struct cfg_node *cfg_node_by_name(const struct cfg *c, const char *name)
{
	(void)c, (void)name;
	abort();
}

const struct cfg_database *cfg_database_find(const struct cfg *c, const char *name, bool *none)
{
	(void)c, (void)name, (void)none;
	abort();
}

const struct cfg_user_pool *cfg_pool_user_find(const struct cfg *c, const char *name)
{
	(void)c, (void)name;
	abort();
}

/* out holds whole messages and nothing else; returns how many. */
static int walk(const struct sbuf *out)
{
	const uint8_t *p = (const uint8_t *)out->p;
	size_t n = out->len;
	int count = 0;
	if (out->oom)
		abort();
	while (n) {
		struct pgw_msg m;
		if (pgw_next_msg(p, n, PGW_MAX_MESSAGE, &m) != PGW_OK)
			abort();
		if (m.type == 'E') {
			const char *code = pgw_error_field(m.body, m.len, 'C');
			if (!code || strlen(code) != 5 || !pgw_error_field(m.body, m.len, 'M'))
				abort();
		}
		p += m.total;
		n -= m.total;
		count++;
	}
	return count;
}

static bool takes_db(enum console_verb v)
{
	return v == CONSOLE_PAUSE || v == CONSOLE_RESUME || v == CONSOLE_KILL ||
	       v == CONSOLE_RECONNECT || v == CONSOLE_DISABLE || v == CONSOLE_ENABLE ||
	       v == CONSOLE_WAIT_CLOSE;
}

static void check_cmd(const struct console_cmd *c)
{
	if (c->verb > CONSOLE_SUSPEND || strnlen(c->arg, sizeof(c->arg)) == sizeof(c->arg) ||
	    strnlen(c->value, sizeof(c->value)) == sizeof(c->value))
		abort();
	if (c->verb == CONSOLE_SHOW && (c->what > SHOW_HELP || !console_show_name(c->what)))
		abort();
	if (!takes_db(c->verb) && c->verb != CONSOLE_SET && c->arg[0])
		abort();
	if ((c->verb == CONSOLE_DISABLE || c->verb == CONSOLE_ENABLE || c->verb == CONSOLE_SET) &&
	    !c->arg[0])
		abort();
	if ((c->verb == CONSOLE_KILL_CLIENT) != (c->client_id != 0))
		abort();
}

/* s as a quoted token: q doubled inside. */
static size_t quoted(char *buf, size_t o, const char *s, char q)
{
	buf[o++] = q;
	for (; *s; s++) {
		if (*s == q)
			buf[o++] = q;
		buf[o++] = *s;
	}
	buf[o++] = q;
	buf[o] = '\0';
	return o;
}

/* The command's canonical text: what an operator would type for it. */
static void canonical(const struct console_cmd *c, char *buf, size_t cap)
{
	static const char *const shutdowns[] = {"", " WAIT_FOR_SERVERS", " WAIT_FOR_CLIENTS"};
	size_t o = (size_t)snprintf(buf, cap, "%s", console_verb_name(c->verb));
	if (c->verb == CONSOLE_SHOW) {
		snprintf(buf + o, cap - o, " %s", console_show_name(c->what));
		return;
	}
	if (c->verb == CONSOLE_KILL_CLIENT) {
		snprintf(buf + o, cap - o, " %llu", (unsigned long long)c->client_id);
		return;
	}
	if (c->verb == CONSOLE_SHUTDOWN) {
		snprintf(buf + o, cap - o, "%s", shutdowns[c->shutdown]);
		return;
	}
	if (c->verb == CONSOLE_SET) {
		o += (size_t)snprintf(buf + o, cap - o, " %s = ", c->arg);
		quoted(buf, o, c->value, '\'');
		return;
	}
	if (!c->arg[0])
		return;
	buf[o++] = ' ';
	quoted(buf, o, c->arg, '"');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t errlen = (size_t)data[0] + 1;
	data++, size--;
	size_t len = strnlen((const char *)data, size);
	char *sql = malloc(len + 1);
	char *err = malloc(errlen);
	if (!sql || !err)
		abort();
	memcpy(sql, data, len);
	sql[len] = '\0';

	struct console_cmd cmd, again;
	struct sbuf out;
	sbuf_init(&out);
	int rc = console_parse(sql, &cmd, err, errlen);
	if (strnlen(err, errlen) == errlen)
		abort(); /* not terminated inside the buffer */
	if (rc == 0) {
		check_cmd(&cmd);
		char text[2 * (sizeof(cmd.arg) + sizeof(cmd.value)) + 64], why[256];
		canonical(&cmd, text, sizeof(text));
		if (console_parse(text, &again, why, sizeof(why)) != 0 || again.verb != cmd.verb ||
		    (cmd.verb == CONSOLE_SHOW && again.what != cmd.what) ||
		    strcmp(again.arg, cmd.arg) != 0 || strcmp(again.value, cmd.value) != 0 ||
		    again.client_id != cmd.client_id || again.shutdown != cmd.shutdown)
			abort();
		if (cmd.verb == CONSOLE_SHOW && cmd.what == SHOW_FDS) {
			if (console_render_show(&cmd, NULL, NULL, &out) != -1 || out.len)
				abort(); /* refused by the console thread, never rendered */
		} else if (cmd.verb == CONSOLE_SHOW) {
			if (console_render_show(&cmd, NULL, NULL, &out) != 0 || walk(&out) < 2)
				abort();
		} else {
			console_render_done(&cmd, &out);
			if (walk(&out) != 1)
				abort();
		}
	} else {
		if (rc != -1 || (errlen > 1 && !err[0]))
			abort();
		console_render_error(CONSOLE_SQLSTATE_BAD_COMMAND, err, &out);
		if (walk(&out) != 1)
			abort();
	}
	sbuf_free(&out);
	free(err);
	free(sql);
	return 0;
}
