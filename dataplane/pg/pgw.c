/*
 * PostgreSQL protocol v3: framing, startup packet parsing and message
 * building. Everything here is bounds-checked against untrusted input and
 * never allocates.
 */
#include "dataplane/pg/pgw.h"

#include <errno.h>
#include <string.h>

uint32_t pgw_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

enum pgw_status pgw_next_msg(const uint8_t *buf, size_t n, uint32_t max_len, struct pgw_msg *out)
{
	if (n < 5)
		return PGW_NEED_MORE;
	uint32_t len = pgw_get_u32(buf + 1);
	if (len < 4 || len > max_len)
		return PGW_BAD;
	if (n < (size_t)len + 1)
		return PGW_NEED_MORE;
	out->type = buf[0];
	out->body = buf + 5;
	out->len = len - 4;
	out->total = len + 1;
	return PGW_OK;
}

static bool is_false_word(const char *v)
{
	return !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "no");
}

enum pgw_status pgw_parse_startup(const uint8_t *buf, size_t n, struct pgw_startup *out,
                                  const char **why)
{
	*why = NULL;
	if (n < 4)
		return PGW_NEED_MORE;
	uint32_t len = pgw_get_u32(buf);
	/* Judge the length as soon as it is readable: waiting for the code
	 * first would hold an impossible packet open for nothing. */
	if (len < 8 || len > PGW_MAX_STARTUP) {
		*why = "invalid length of startup packet";
		return PGW_BAD;
	}
	if (n < len) /* len >= 8, so the code is present once this passes */
		return PGW_NEED_MORE;
	memset(out, 0, sizeof(*out));
	out->total = len;
	out->code = pgw_get_u32(buf + 4);
	switch (out->code) {
	case PGW_SSL_REQUEST:
	case PGW_GSSENC_REQUEST:
		if (len != 8) {
			*why = "invalid length of encryption request";
			return PGW_BAD;
		}
		return PGW_OK;
	case PGW_CANCEL_REQUEST:
		if (len != 16) {
			*why = "invalid length of cancel request";
			return PGW_BAD;
		}
		out->cancel_pid = pgw_get_u32(buf + 8);
		out->cancel_key = pgw_get_u32(buf + 12);
		return PGW_OK;
	default:
		break;
	}
	if (out->code >> 16 != 3) {
		*why = "unsupported frontend protocol";
		return PGW_BAD;
	}
	/* Name/value pairs of C strings, then a final NUL. The packet must end
	 * with that NUL so every string below is terminated inside it. */
	if (buf[len - 1] != 0) {
		*why = "invalid startup packet layout: expected terminator as last byte";
		return PGW_BAD;
	}
	uint32_t off = 8;
	while (off < len - 1) {
		const char *name = (const char *)buf + off;
		size_t nl = strnlen(name, len - off);
		if (off + nl + 1 >= len) {
			*why = "invalid startup packet layout: parameter without value";
			return PGW_BAD;
		}
		off += (uint32_t)nl + 1;
		const char *value = (const char *)buf + off;
		size_t vl = strnlen(value, len - off);
		if (off + vl >= len) {
			*why = "invalid startup packet layout";
			return PGW_BAD;
		}
		off += (uint32_t)vl + 1;
		if (nl == 0) {
			*why = "invalid startup packet layout: empty parameter name";
			return PGW_BAD;
		}
		if (!strcmp(name, "user")) {
			out->user = value;
		} else if (!strcmp(name, "database")) {
			out->database = value;
		} else {
			if (!strcmp(name, "replication"))
				out->replication = !is_false_word(value);
			if (out->n_params == PGW_MAX_PARAMS) {
				*why = "too many startup parameters";
				return PGW_BAD;
			}
			out->params[out->n_params].name = name;
			out->params[out->n_params].value = value;
			out->n_params++;
		}
	}
	/* The last value's NUL can be the packet's last byte: then the list
	 * terminator is missing (PostgreSQL requires offset == len - 1 here). */
	if (off != len - 1) {
		*why = "invalid startup packet layout: expected terminator as last byte";
		return PGW_BAD;
	}
	if (!out->user || !out->user[0]) {
		*why = "no PostgreSQL user name specified in startup packet";
		return PGW_BAD;
	}
	if (!out->database || !out->database[0])
		out->database = out->user;
	return PGW_OK;
}

enum pgw_scan_ev pgw_scan(struct pgw_scan *sc, const uint8_t *data, size_t n, size_t *pos)
{
	size_t p = *pos;
	for (;;) {
		if (sc->left) {
			size_t take = n - p < sc->left ? n - p : sc->left;
			p += take;
			sc->left -= (uint32_t)take;
			if (sc->left) {
				*pos = p;
				return PGW_SCAN_END;
			}
		}
		if (p == n) {
			*pos = p;
			return PGW_SCAN_END;
		}
		/* Fast path: a whole header inside this chunk. */
		if (sc->hdr_n == 0 && n - p >= 5) {
			sc->type = data[p];
			sc->len = pgw_get_u32(data + p + 1);
			p += 5;
		} else {
			while (sc->hdr_n < 5 && p < n)
				sc->hdr[sc->hdr_n++] = data[p++];
			if (sc->hdr_n < 5) {
				*pos = p;
				return PGW_SCAN_END;
			}
			sc->hdr_n = 0;
			sc->type = sc->hdr[0];
			sc->len = pgw_get_u32(sc->hdr + 1);
		}
		if (sc->len < 4 || sc->len > PGW_MAX_MESSAGE) {
			*pos = p;
			return PGW_SCAN_BAD;
		}
		sc->len -= 4;
		sc->left = sc->len;
		*pos = p;
		return PGW_SCAN_HEADER;
	}
}

void pgw_out_init(struct pgw_out *o, uint8_t *buf, size_t cap)
{
	o->buf = buf;
	o->len = 0;
	o->cap = cap;
	o->overflow = false;
}

void pgw_put_bytes(struct pgw_out *o, const void *p, size_t n)
{
	if (o->overflow || o->cap - o->len < n) {
		o->overflow = true;
		return;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

void pgw_put_u8(struct pgw_out *o, uint8_t v)
{
	pgw_put_bytes(o, &v, 1);
}

void pgw_put_u32(struct pgw_out *o, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	pgw_put_bytes(o, b, 4);
}

void pgw_put_str(struct pgw_out *o, const char *s)
{
	pgw_put_bytes(o, s, strlen(s) + 1);
}

size_t pgw_begin_msg(struct pgw_out *o, uint8_t type)
{
	size_t start = o->len;
	pgw_put_u8(o, type);
	pgw_put_u32(o, 0);
	return start;
}

void pgw_end_msg(struct pgw_out *o, size_t start)
{
	if (o->overflow)
		return;
	uint32_t len = (uint32_t)(o->len - start - 1);
	uint8_t *p = o->buf + start + 1;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
}

void pgw_error(struct pgw_out *o, const char *severity, const char *sqlstate, const char *msg,
               const char *hint)
{
	size_t m = pgw_begin_msg(o, PGW_MSG_ERROR);
	pgw_put_u8(o, 'S');
	pgw_put_str(o, severity);
	pgw_put_u8(o, 'V');
	pgw_put_str(o, severity);
	pgw_put_u8(o, 'C');
	pgw_put_str(o, sqlstate);
	pgw_put_u8(o, 'M');
	pgw_put_str(o, msg);
	if (hint) {
		pgw_put_u8(o, 'H');
		pgw_put_str(o, hint);
	}
	pgw_put_u8(o, 0);
	pgw_end_msg(o, m);
}

void pgw_auth_request(struct pgw_out *o, uint32_t code, const void *extra, size_t extra_len)
{
	size_t m = pgw_begin_msg(o, PGW_MSG_AUTH);
	pgw_put_u32(o, code);
	if (extra_len)
		pgw_put_bytes(o, extra, extra_len);
	pgw_end_msg(o, m);
}

void pgw_param_status(struct pgw_out *o, const char *name, const char *value)
{
	size_t m = pgw_begin_msg(o, PGW_MSG_PARAM_STATUS);
	pgw_put_str(o, name);
	pgw_put_str(o, value);
	pgw_end_msg(o, m);
}

void pgw_key_data(struct pgw_out *o, uint32_t pid, uint32_t key)
{
	size_t m = pgw_begin_msg(o, PGW_MSG_KEY_DATA);
	pgw_put_u32(o, pid);
	pgw_put_u32(o, key);
	pgw_end_msg(o, m);
}

void pgw_ready(struct pgw_out *o, char status)
{
	size_t m = pgw_begin_msg(o, PGW_MSG_READY);
	pgw_put_u8(o, (uint8_t)status);
	pgw_end_msg(o, m);
}

void pgw_query(struct pgw_out *o, const char *sql)
{
	size_t m = pgw_begin_msg(o, PGW_MSG_QUERY);
	pgw_put_str(o, sql);
	pgw_end_msg(o, m);
}

void pgw_execute_sync(struct pgw_out *o)
{
	size_t m = pgw_begin_msg(o, 'E');
	pgw_put_str(o, "");
	pgw_put_u32(o, 0);
	pgw_end_msg(o, m);
	m = pgw_begin_msg(o, 'S');
	pgw_end_msg(o, m);
}

void pgw_startup_packet(struct pgw_out *o, const struct pgw_param *params, int n)
{
	size_t start = o->len;
	pgw_put_u32(o, 0);
	pgw_put_u32(o, PGW_PROTO_V3);
	for (int i = 0; i < n; i++) {
		pgw_put_str(o, params[i].name);
		pgw_put_str(o, params[i].value);
	}
	pgw_put_u8(o, 0);
	if (o->overflow)
		return;
	uint32_t len = (uint32_t)(o->len - start);
	uint8_t *p = o->buf + start;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
}

void pgw_cancel_packet(struct pgw_out *o, uint32_t pid, uint32_t key)
{
	pgw_put_u32(o, 16);
	pgw_put_u32(o, PGW_CANCEL_REQUEST);
	pgw_put_u32(o, pid);
	pgw_put_u32(o, key);
}

void pgw_ssl_request(struct pgw_out *o)
{
	pgw_put_u32(o, 8);
	pgw_put_u32(o, PGW_SSL_REQUEST);
}

const char *pgw_get_str(const uint8_t *body, uint32_t len, uint32_t *off)
{
	if (*off >= len)
		return NULL;
	const uint8_t *s = body + *off;
	const uint8_t *nul = memchr(s, 0, len - *off);
	if (!nul)
		return NULL;
	*off += (uint32_t)(nul - s) + 1;
	return (const char *)s;
}

const char *pgw_error_field(const uint8_t *body, uint32_t len, char field)
{
	uint32_t off = 0;
	while (off < len && body[off] != 0) {
		char f = (char)body[off++];
		const char *v = pgw_get_str(body, len, &off);
		if (!v)
			return NULL;
		if (f == field)
			return v;
	}
	return NULL;
}
