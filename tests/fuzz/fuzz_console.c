/*
 * libFuzzer target: the admin console's command parser and its answers
 * (dataplane/report/console.c). The first input byte sizes the error buffer
 * (1..256 bytes, an exact heap block, so a write past errlen is caught); the
 * rest, up to its first NUL, is the statement. Checks: a parsed command is
 * well-formed and parses back to itself from its canonical text (PAUSE
 * "name" with quotes doubled), a refusal always says why, and every answer
 * (CommandComplete, EmptyQueryResponse, a SHOW answer without a report or
 * config, the ErrorResponse carrying err) is a walkable run of protocol
 * messages.
 */
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

static void check_cmd(const struct console_cmd *c)
{
	if (c->verb > CONSOLE_EMPTY || strnlen(c->arg, sizeof(c->arg)) == sizeof(c->arg))
		abort();
	if (c->verb == CONSOLE_SHOW && (c->what > SHOW_HELP || !console_show_name(c->what)))
		abort();
	if (c->verb != CONSOLE_PAUSE && c->verb != CONSOLE_RESUME && c->arg[0])
		abort();
}

/* The command's canonical text: what an operator would type for it. */
static void canonical(const struct console_cmd *c, char *buf, size_t cap)
{
	static const char *const verbs[] = {"SHOW", "RELOAD", "PAUSE", "RESUME", ""};
	size_t o = (size_t)snprintf(buf, cap, "%s", verbs[c->verb]);
	if (c->verb == CONSOLE_SHOW) {
		snprintf(buf + o, cap - o, " %s", console_show_name(c->what));
		return;
	}
	if (!c->arg[0])
		return;
	buf[o++] = ' ';
	buf[o++] = '"';
	for (const char *s = c->arg; *s; s++) {
		if (*s == '"')
			buf[o++] = '"';
		buf[o++] = *s;
	}
	buf[o++] = '"';
	buf[o] = '\0';
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
		char text[2 * sizeof(cmd.arg) + 32], why[256];
		canonical(&cmd, text, sizeof(text));
		if (console_parse(text, &again, why, sizeof(why)) != 0 || again.verb != cmd.verb ||
		    (cmd.verb == CONSOLE_SHOW && again.what != cmd.what) ||
		    strcmp(again.arg, cmd.arg) != 0)
			abort();
		if (cmd.verb == CONSOLE_SHOW) {
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
