/*
 * PostgreSQL protocol v3 framing and message building. Pure: bytes in,
 * results out, no I/O, so unit tests and fuzzers drive it directly.
 * Only the 5-byte header is parsed on the relay path (pgw_scan_*).
 */
#ifndef HELIOS_PGW_H
#define HELIOS_PGW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGW_PROTO_V3       196608u /* 3.0 */
#define PGW_SSL_REQUEST    80877103u
#define PGW_GSSENC_REQUEST 80877104u
#define PGW_CANCEL_REQUEST 80877102u
#define PGW_MAX_STARTUP    10000u     /* same cap as PostgreSQL */
#define PGW_MAX_MESSAGE    (1u << 30) /* PostgreSQL's own 1 GB limit */
#define PGW_MAX_PARAMS     64

/* Message type bytes we act on. */
enum {
	PGW_MSG_QUERY = 'Q',
	PGW_MSG_TERMINATE = 'X',
	PGW_MSG_PASSWORD = 'p', /* also SASLInitialResponse / SASLResponse */
	PGW_MSG_AUTH = 'R',
	PGW_MSG_PARAM_STATUS = 'S',
	PGW_MSG_KEY_DATA = 'K',
	PGW_MSG_READY = 'Z',
	PGW_MSG_ERROR = 'E',
	PGW_MSG_NOTICE = 'N',
};

/* Authentication request codes ('R' message). */
enum {
	PGW_AUTH_OK = 0,
	PGW_AUTH_CLEARTEXT = 3,
	PGW_AUTH_MD5 = 5,
	PGW_AUTH_SASL = 10,
	PGW_AUTH_SASL_CONTINUE = 11,
	PGW_AUTH_SASL_FINAL = 12,
};

/* Result of looking for a complete message or packet in a buffer. */
enum pgw_status {
	PGW_OK = 0,    /* a complete unit is available */
	PGW_NEED_MORE, /* incomplete: read more */
	PGW_BAD,       /* malformed: close with 08P01 */
};

/* ---- Whole-message access (login phases, where the proxy reads messages) ---- */

struct pgw_msg {
	uint8_t type;
	const uint8_t *body; /* payload after the 5-byte header */
	uint32_t len;        /* payload length */
	uint32_t total;      /* bytes the message occupies (len + 5) */
};

/* Finds the first complete typed message in buf. PGW_BAD when the length
 * field is < 4 or > max_len. */
enum pgw_status pgw_next_msg(const uint8_t *buf, size_t n, uint32_t max_len, struct pgw_msg *out);

/* ---- Startup packet (untyped: int32 length, int32 code, ...) ---- */

struct pgw_param {
	const char *name;
	const char *value;
};

struct pgw_startup {
	uint32_t code; /* PGW_PROTO_V3, PGW_SSL_REQUEST, PGW_CANCEL_REQUEST, ... */
	uint32_t total;
	/* v3 only: */
	struct pgw_param params[PGW_MAX_PARAMS];
	int n_params;
	const char *user;
	const char *database; /* defaults to user, as PostgreSQL does */
	bool replication;     /* "replication" parameter present and not false/off/0 */
	/* CancelRequest only: */
	uint32_t cancel_pid, cancel_key;
};

/* Parses a startup-phase packet at the start of buf. Pointers in *out point
 * into buf. Errors (PGW_BAD) put a reason in *why for the log and the client. */
enum pgw_status pgw_parse_startup(const uint8_t *buf, size_t n, struct pgw_startup *out,
                                  const char **why);

/* ---- Incremental header scanner for the relay path ----
 * Feed arbitrary chunks; it reports each message's type and where its header
 * starts, without copying payloads. */
struct pgw_scan {
	uint32_t left;  /* payload bytes of the current message still to pass */
	uint8_t hdr[5]; /* partial header */
	uint8_t hdr_n;
	uint8_t type; /* type of the current message */
	uint32_t len; /* payload length of the current message */
};

enum pgw_scan_ev {
	PGW_SCAN_END = 0, /* chunk consumed */
	PGW_SCAN_HEADER,  /* a message header completed; *pos is the offset after it */
	PGW_SCAN_BAD,     /* impossible length */
};

/* Advances over data[*pos..n). Returns at each completed header (sc->type,
 * sc->len set; *pos just past the header) or at the end of the chunk. The
 * caller may read the payload bytes that follow in the same chunk. */
enum pgw_scan_ev pgw_scan(struct pgw_scan *sc, const uint8_t *data, size_t n, size_t *pos);

/* ---- Message builders: append to o; on running out of room they set
 * o->overflow and write nothing more, so callers check it once at the end ---- */

struct pgw_out {
	uint8_t *buf;
	size_t len, cap;
	bool overflow;
};

void pgw_out_init(struct pgw_out *o, uint8_t *buf, size_t cap);
/* Starts a typed message; pgw_end_msg patches its length. */
size_t pgw_begin_msg(struct pgw_out *o, uint8_t type);
void pgw_end_msg(struct pgw_out *o, size_t start);
void pgw_put_u8(struct pgw_out *o, uint8_t v);
void pgw_put_u32(struct pgw_out *o, uint32_t v);
void pgw_put_bytes(struct pgw_out *o, const void *p, size_t n);
void pgw_put_str(struct pgw_out *o, const char *s); /* with NUL */

/* ErrorResponse (or NoticeResponse with type 'N'). severity "ERROR" or
 * "FATAL"; sqlstate 5 chars; hint may be NULL. */
void pgw_error(struct pgw_out *o, const char *severity, const char *sqlstate, const char *msg,
               const char *hint);
void pgw_auth_request(struct pgw_out *o, uint32_t code, const void *extra, size_t extra_len);
void pgw_param_status(struct pgw_out *o, const char *name, const char *value);
void pgw_key_data(struct pgw_out *o, uint32_t pid, uint32_t key);
void pgw_ready(struct pgw_out *o, char status);
void pgw_query(struct pgw_out *o, const char *sql);
/* Execute of the unnamed portal (all rows), then Sync: the end of an
 * extended-protocol batch. */
void pgw_execute_sync(struct pgw_out *o);
/* v3 startup packet with params (user, database, then the others). */
void pgw_startup_packet(struct pgw_out *o, const struct pgw_param *params, int n);
void pgw_cancel_packet(struct pgw_out *o, uint32_t pid, uint32_t key);
void pgw_ssl_request(struct pgw_out *o);

/* ---- Reading fields of received messages ---- */

/* Finds a field ('C' sqlstate, 'M' message, 'S' severity...) in an
 * ErrorResponse/NoticeResponse body. Returns NULL if absent or malformed. */
const char *pgw_error_field(const uint8_t *body, uint32_t len, char field);
/* Reads a NUL-terminated string at body[*off]; NULL if it runs past len. */
const char *pgw_get_str(const uint8_t *body, uint32_t len, uint32_t *off);
uint32_t pgw_get_u32(const uint8_t *p);

#endif
