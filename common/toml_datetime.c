/*
 * TOML dates and times (the RFC 3339 profile of TOML 1.0): recognises them,
 * checks the calendar and clock ranges, and renders the canonical text the
 * tree keeps ("T" and "Z" upper case, fraction truncated to nanoseconds).
 */
#include <errno.h>
#include <string.h>

#include "common/toml_impl.h"

/* TOML asks to truncate, not round, precision we cannot keep. */
#define FRAC_MAX 9

struct cursor {
	const char *s;
	size_t n, pos;
	struct toml_dt_scan *r;
	size_t out; /* bytes of r->text written */
};

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int at(const struct cursor *c, size_t off)
{
	return c->pos + off < c->n ? (unsigned char)c->s[c->pos + off] : -1;
}

static int fail(struct cursor *c, size_t off, const char *msg)
{
	c->r->msg = msg;
	c->r->err_off = off;
	return -EINVAL;
}

/* Reads exactly `count` digits at the cursor; fails if there are fewer or
 * more (a fifth year digit, a single-digit month). */
static int digits(struct cursor *c, int count, int *val, const char *what)
{
	int v = 0;

	for (int i = 0; i < count; i++) {
		if (!is_digit(at(c, i)))
			return fail(c, c->pos + i, what);
		v = v * 10 + (at(c, i) - '0');
	}
	if (is_digit(at(c, count)))
		return fail(c, c->pos + count, what);
	c->pos += count;
	*val = v;
	return 0;
}

/* Copies validated source bytes into the canonical text; the callers'
 * formats bound the total below TOML_DT_LEN. */
static void emit(struct cursor *c, const char *src, size_t n)
{
	memcpy(c->r->text + c->out, src, n);
	c->out += n;
	c->r->text[c->out] = '\0';
}

static int expect(struct cursor *c, char ch, const char *what)
{
	if (at(c, 0) != ch)
		return fail(c, c->pos, what);
	c->pos++;
	return 0;
}

static int days_in_month(int year, int month)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

static int scan_date(struct cursor *c)
{
	static const char bad[] = "malformed date: expected YYYY-MM-DD";
	int y, m, d;
	size_t start = c->pos;

	if (digits(c, 4, &y, bad) || expect(c, '-', bad) || digits(c, 2, &m, bad) ||
	    expect(c, '-', bad) || digits(c, 2, &d, bad))
		return -EINVAL;
	if (m < 1 || m > 12)
		return fail(c, start + 5, "month out of range (01-12)");
	if (d < 1 || d > days_in_month(y, m))
		return fail(c, start + 8, "day out of range for this month");
	emit(c, c->s + start, 10);
	return 0;
}

/* HH:MM:SS[.frac]; seconds are mandatory in TOML 1.0. 60 is allowed for a
 * leap second, as in RFC 3339. */
static int scan_time(struct cursor *c)
{
	static const char bad[] = "malformed time: expected HH:MM:SS";
	int h, m, s;
	size_t start = c->pos;

	if (digits(c, 2, &h, bad) || expect(c, ':', bad) || digits(c, 2, &m, bad) ||
	    expect(c, ':', bad) || digits(c, 2, &s, bad))
		return -EINVAL;
	if (h > 23)
		return fail(c, start, "hour out of range (00-23)");
	if (m > 59)
		return fail(c, start + 3, "minute out of range (00-59)");
	if (s > 60)
		return fail(c, start + 6, "second out of range (00-60)");
	emit(c, c->s + start, 8);
	if (at(c, 0) != '.')
		return 0;
	c->pos++;
	if (!is_digit(at(c, 0)))
		return fail(c, c->pos, "expected digits after the decimal point of the seconds");
	start = c->pos;
	while (is_digit(at(c, 0)))
		c->pos++;
	emit(c, ".", 1);
	emit(c, c->s + start, c->pos - start < FRAC_MAX ? c->pos - start : FRAC_MAX);
	return 0;
}

static int scan_offset(struct cursor *c)
{
	static const char bad[] = "malformed time offset: expected Z or +HH:MM";
	int ch = at(c, 0), h, m;
	size_t start = c->pos;

	if (ch == 'Z' || ch == 'z') {
		c->pos++;
		emit(c, "Z", 1);
		return 0;
	}
	if (ch != '+' && ch != '-')
		return 1; /* no offset: a local date-time */
	c->pos++;
	if (digits(c, 2, &h, bad) || expect(c, ':', bad) || digits(c, 2, &m, bad))
		return -EINVAL;
	if (h > 23)
		return fail(c, start + 1, "offset hour out of range (00-23)");
	if (m > 59)
		return fail(c, start + 4, "offset minute out of range (00-59)");
	emit(c, c->s + start, 6);
	return 0;
}

ssize_t toml_datetime_scan(const char *s, size_t n, struct toml_dt_scan *r)
{
	struct cursor c = {.s = s, .n = n, .r = r};
	int ch, rc;

	memset(r, 0, sizeof(*r));
	if (n >= 3 && is_digit(at(&c, 0)) && is_digit(at(&c, 1)) && at(&c, 2) == ':') {
		if (scan_time(&c))
			return -EINVAL;
		r->type = TOML_TIME_LOCAL;
		return (ssize_t)c.pos;
	}
	if (n < 5 || !is_digit(at(&c, 0)) || !is_digit(at(&c, 1)) || !is_digit(at(&c, 2)) ||
	    !is_digit(at(&c, 3)) || at(&c, 4) != '-')
		return 0;
	if (scan_date(&c))
		return -EINVAL;
	ch = at(&c, 0);
	/* A space separates date and time only when a time follows; otherwise
	 * it is just the whitespace after a local date. */
	if (ch != 'T' && ch != 't' && !(ch == ' ' && is_digit(at(&c, 1)))) {
		r->type = TOML_DATE_LOCAL;
		return (ssize_t)c.pos;
	}
	c.pos++;
	emit(&c, "T", 1);
	if (scan_time(&c))
		return -EINVAL;
	rc = scan_offset(&c);
	if (rc < 0)
		return -EINVAL;
	r->type = rc ? TOML_DATETIME_LOCAL : TOML_DATETIME;
	return (ssize_t)c.pos;
}
