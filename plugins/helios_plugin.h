/*
 * The HeliosProxy plugin SDK (ABI v1, docs/plugins.md): the host functions
 * a plugin imports from module "helios", the field ids, the export macros,
 * and the few helpers a plugin built with clang --target=wasm32 -nostdlib
 * lacks (memory and string functions, a JSON writer for log lines, and a
 * minimal JSON reader for the config). A plugin is one .c file that
 * includes this header once and writes HELIOS_PLUGIN_ABI_V1 somewhere.
 */
#ifndef HELIOS_PLUGIN_SDK_H
#define HELIOS_PLUGIN_SDK_H

typedef unsigned int hp_u32;
typedef unsigned long hp_size;

#define HELIOS_IMPORT(name) __attribute__((import_module("helios"), import_name(#name)))
#define HELIOS_EXPORT(name) __attribute__((export_name(#name)))

/* ---- the host (every pointer is into this plugin's memory) ---- */

/* Copies field id of the current call into buf (at most cap bytes);
 * returns its full length (may be > cap), -1 when the call has none. */
HELIOS_IMPORT(field) int helios_field(int id, char *buf, int cap);
/* Denies the login or the statement: 5 characters of SQLSTATE ([0-9A-Z])
 * and a message (control characters become spaces, 255 bytes kept). */
HELIOS_IMPORT(deny) void helios_deny(const char *sqlstate, const char *msg, int len);
/* on_query_start: the statement to run instead (no NUL byte, not empty). */
HELIOS_IMPORT(rewrite) void helios_rewrite(const char *sql, int len);
/* on_query_start: "route" = "primary" | "replica" | a [[nodes]] name,
 * "cache" = "skip". 0 when taken, -1 for a key or value the host does not
 * know. */
HELIOS_IMPORT(hint) int helios_hint(const char *key, int klen, const char *val, int vlen);
/* One log line (0 debug, 1 info, 2 warning, 3 error), rate-limited by the
 * host (16 per call, 1000 per second per instance). */
HELIOS_IMPORT(log) void helios_log(int level, const char *msg, int len);

enum {
	HP_F_CONFIG = 0, /* the plugin's config table as JSON (any call) */
	HP_F_USER = 1,
	HP_F_DATABASE = 2,
	HP_F_ADDRESS = 3,
	HP_F_APPLICATION_NAME = 4,
	HP_F_TENANT = 5,
	HP_F_SQL = 6,
	HP_F_FINGERPRINT = 7,
	HP_F_DURATION_US = 8,
	HP_F_ROWS = 9,
	HP_F_STATUS = 10,
	HP_F_SQLSTATE = 11,
	HP_F_MESSAGE = 12,
	HP_F_MODE = 13,
};

enum { HP_CONTINUE = 0, HP_DENY = 1 };
enum { HP_DEBUG = 0, HP_INFO = 1, HP_WARN = 2, HP_ERROR = 3 };

/* The one export every plugin has. */
#define HELIOS_PLUGIN_ABI_V1                                                                       \
	HELIOS_EXPORT(helios_abi_version) int helios_abi_version(void)                             \
	{                                                                                          \
		return 1;                                                                          \
	}

/* ---- what -nostdlib leaves out (clang may call these itself) ---- */

void *memcpy(void *dst, const void *src, hp_size n);
void *memset(void *dst, int c, hp_size n);
void *memmove(void *dst, const void *src, hp_size n);
int memcmp(const void *a, const void *b, hp_size n);

/* With -mbulk-memory (the Makefile passes it) a copy or a fill is one
 * memory.copy / memory.fill instruction instead of a loop: much cheaper
 * under the host's interpreter. */
void *memcpy(void *dst, const void *src, hp_size n)
{
#ifdef __wasm_bulk_memory__
	__builtin_memmove(dst, src, n);
#else
	unsigned char *d = dst;
	const unsigned char *s = src;
	while (n--)
		*d++ = *s++;
#endif
	return dst;
}

void *memmove(void *dst, const void *src, hp_size n)
{
#ifdef __wasm_bulk_memory__
	__builtin_memmove(dst, src, n);
#else
	unsigned char *d = dst;
	const unsigned char *s = src;
	if (d < s)
		while (n--)
			*d++ = *s++;
	else
		while (n--)
			d[n] = s[n];
#endif
	return dst;
}

void *memset(void *dst, int c, hp_size n)
{
#ifdef __wasm_bulk_memory__
	__builtin_memset(dst, c, n);
#else
	unsigned char *d = dst;
	while (n--)
		*d++ = (unsigned char)c;
#endif
	return dst;
}

int memcmp(const void *a, const void *b, hp_size n)
{
	const unsigned char *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

static inline int hp_strlen(const char *s)
{
	int n = 0;
	while (s[n])
		n++;
	return n;
}

static inline char hp_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static inline int hp_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* A (pointer, length) string: fields, config values and JSON pieces. */
struct hp_str {
	const char *p;
	int n;
};

static inline int hp_eq(struct hp_str a, const char *b)
{
	int n = hp_strlen(b);
	return a.n == n && memcmp(a.p, b, (hp_size)n) == 0;
}

static inline int hp_eq_str(struct hp_str a, struct hp_str b)
{
	return a.n == b.n && memcmp(a.p, b.p, (hp_size)a.n) == 0;
}

/* Field id into buf (truncated to cap); {0, -1} when the call has none. */
static inline struct hp_str hp_field(int id, char *buf, int cap)
{
	struct hp_str s = {buf, helios_field(id, buf, cap)};
	if (s.n > cap)
		s.n = cap;
	return s;
}

static inline void hp_log(int level, struct hp_str s)
{
	helios_log(level, s.p, s.n);
}

static inline void hp_deny(const char *sqlstate, struct hp_str msg)
{
	helios_deny(sqlstate, msg.p, msg.n);
}

/* ---- a JSON line writer (for log lines): truncates, never overflows ---- */

struct hp_buf {
	char *p;
	int n, cap;
};

static inline void hp_put(struct hp_buf *b, const char *s, int n)
{
	if (n > b->cap - b->n)
		n = b->cap - b->n;
	if (n > 0) {
		memcpy(b->p + b->n, s, (hp_size)n);
		b->n += n;
	}
}

static inline void hp_puts(struct hp_buf *b, const char *s)
{
	hp_put(b, s, hp_strlen(s));
}

/* s as a JSON string (quoted, escaped). */
static inline void hp_put_json(struct hp_buf *b, struct hp_str s)
{
	static const char hex[] = "0123456789abcdef";
	hp_put(b, "\"", 1);
	int plain = 0; /* runs of bytes that need no escape are copied at once */
	for (int i = 0; i < s.n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		hp_put(b, s.p + plain, i - plain);
		plain = i + 1;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			hp_put(b, e, 2);
		} else if (c < 0x20) {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			hp_put(b, e, 6);
		}
	}
	hp_put(b, s.p + plain, s.n - plain);
	hp_put(b, "\"", 1);
}

/* A string literal, its length known at compile time. */
#define hp_put_lit(b, lit) hp_put((b), (lit), (int)sizeof(lit) - 1)

/* ,"key":"value" (no comma right after the opening brace) when the value
 * is there (v.n >= 0). key is a string literal without characters to
 * escape: the whole ,"key": is a constant, nothing to scan. */
#define hp_put_member(b, key, v)     hp_put_member_raw((b), ",\"" key "\":", (v))
#define hp_put_member_raw(b, pre, v) hp_put_member_n((b), (pre), (int)sizeof(pre) - 1, (v))
static inline void hp_put_member_n(struct hp_buf *b, const char *pre, int n, struct hp_str v)
{
	if (v.n < 0)
		return;
	if (b->n <= 1) {
		pre++;
		n--;
	}
	hp_put(b, pre, n);
	hp_put_json(b, v);
}

/* ---- a minimal JSON reader for the config ----
 * Enough for flat configs: objects, arrays, strings (returned raw, without
 * their quotes; escapes are not decoded), numbers, true/false/null. */

static inline int hp_json_ws(struct hp_str j, int i)
{
	while (i < j.n && hp_is_space(j.p[i]))
		i++;
	return i;
}

/* The end of the value starting at i (after blanks), -1 if malformed. */
static inline int hp_json_skip(struct hp_str j, int i)
{
	int depth = 0;
	i = hp_json_ws(j, i);
	if (i >= j.n)
		return -1;
	do {
		char c = j.p[i];
		if (c == '"') {
			for (i++; i < j.n && j.p[i] != '"'; i++)
				if (j.p[i] == '\\')
					i++;
			if (i >= j.n)
				return -1;
			i++;
		} else if (c == '{' || c == '[') {
			depth++;
			i++;
		} else if (c == '}' || c == ']') {
			if (--depth < 0)
				return -1;
			i++;
		} else if (depth > 0 && (c == ',' || c == ':' || hp_is_space(c))) {
			i++;
		} else {
			while (i < j.n && j.p[i] != ',' && j.p[i] != '}' && j.p[i] != ']' &&
			       !hp_is_space(j.p[i]))
				i++;
		}
	} while (depth > 0 && i < j.n);
	return depth ? -1 : i;
}

/* The next member of an object or element of an array: *pos starts at 0;
 * key is {0, -1} for arrays. 1 while there is one, 0 at the end (or on
 * malformed JSON). */
static inline int hp_json_next(struct hp_str coll, int *pos, struct hp_str *key, struct hp_str *val)
{
	int i = *pos;
	if (i == 0) {
		i = hp_json_ws(coll, 0);
		if (i >= coll.n || (coll.p[i] != '{' && coll.p[i] != '['))
			return 0;
		i++;
	}
	i = hp_json_ws(coll, i);
	if (i < coll.n && coll.p[i] == ',')
		i = hp_json_ws(coll, i + 1);
	if (i >= coll.n || coll.p[i] == '}' || coll.p[i] == ']')
		return 0;
	key->p = 0;
	key->n = -1;
	if (coll.p[hp_json_ws(coll, 0)] == '{') {
		int e = hp_json_skip(coll, i);
		if (e < 0 || coll.p[i] != '"')
			return 0;
		key->p = coll.p + i + 1;
		key->n = e - i - 2;
		i = hp_json_ws(coll, e);
		if (i >= coll.n || coll.p[i] != ':')
			return 0;
		i = hp_json_ws(coll, i + 1);
	}
	int e = hp_json_skip(coll, i);
	if (e < 0)
		return 0;
	val->p = coll.p + i;
	val->n = e - i;
	*pos = e;
	return 1;
}

/* Is v an array ('[') or an object ('{')? */
static inline int hp_json_is(struct hp_str v, char open)
{
	return v.n > 0 && v.p[0] == open;
}

/* A JSON string's contents (without quotes): 1, or 0 if v is no string. */
static inline int hp_json_string(struct hp_str v, struct hp_str *out)
{
	if (v.n < 2 || v.p[0] != '"' || v.p[v.n - 1] != '"')
		return 0;
	out->p = v.p + 1;
	out->n = v.n - 2;
	return 1;
}

/* The value of key in object obj: 1 found, 0 not. */
static inline int hp_json_get(struct hp_str obj, const char *key, struct hp_str *val)
{
	int pos = 0;
	struct hp_str k, v;
	while (hp_json_next(obj, &pos, &k, &v))
		if (hp_eq(k, key)) {
			*val = v;
			return 1;
		}
	return 0;
}

#endif
