/* JSON building helpers (common/jbuild.h). */
#include "common/jbuild.h"

#include "common/sbuf.h"
#include "common/utf8.h"

#include <limits.h>
#include <math.h>
#include <string.h>

json_t *jb_str(struct jb *jb, const char *s)
{
	if (!s)
		s = "";
	json_t *v = json_string(s);
	if (!v && jb->ok) {
		/* not UTF-8 (or out of memory): again with the bad bytes replaced */
		const unsigned char *u = (const unsigned char *)s;
		size_t n = strlen(s), k;
		struct sbuf b;

		sbuf_init(&b);
		for (size_t i = 0; i < n; i += k ? k : 1) {
			k = utf8_seq(u + i, n - i);
			if (k)
				sbuf_append(&b, u + i, k);
			else
				sbuf_puts(&b, UTF8_REPLACEMENT);
		}
		v = b.oom ? NULL : json_stringn(b.p ? b.p : "", b.len);
		sbuf_free(&b);
	}
	return v;
}

json_t *jb_uint(uint64_t u)
{
	return json_integer(u > (uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)u);
}

json_t *jb_real(double d)
{
	return isfinite(d) ? json_real(d) : json_null();
}

void jb_set(struct jb *jb, json_t *obj, const char *key, json_t *v)
{
	if (!jb->ok || !obj || !v || json_object_set_new(obj, key, v) != 0) {
		json_decref(v);
		jb->ok = false;
	}
}

void jb_append(struct jb *jb, json_t *arr, json_t *v)
{
	if (!jb->ok || !arr || !v || json_array_append_new(arr, v) != 0) {
		json_decref(v);
		jb->ok = false;
	}
}
