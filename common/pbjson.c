/*
 * protobuf-c message -> JSON by walking the descriptors (see pbjson.h for
 * the mapping). Off the hot path: helioctl output and admin replies.
 */
#include "common/pbjson.h"

#include "common/pbutil.h"
#include "common/utf8.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *message_json(const ProtobufCMessage *m);

/* A JSON string for s; NULL only when out of memory. Strings come from
 * peers (client application names, server error texts), so bytes that are
 * not UTF-8 become U+FFFD instead of failing the whole document. */
static json_t *string_json(const char *s)
{
	if (!s)
		s = "";
	size_t n = strlen(s);
	json_t *j = json_stringn(s, n);
	if (j)
		return j;

	/* json_stringn fails on bad UTF-8 or out of memory: repair, retry. */
	const unsigned char *u = (const unsigned char *)s;
	char *fixed = malloc(n * 3 + 1); /* each bad byte -> 3-byte U+FFFD */
	if (!fixed)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq(u + i, n - i);
		if (len) {
			memcpy(fixed + o, s + i, len);
			o += len;
			i += len;
		} else {
			memcpy(fixed + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	j = json_stringn(fixed, o);
	free(fixed);
	return j;
}

static json_t *bytes_json(const ProtobufCBinaryData *b)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = b->data ? b->len : 0;
	char *out = malloc((n + 2) / 3 * 4 + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)b->data[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)b->data[i + 1] << 8;
		if (i + 2 < n)
			v |= b->data[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	json_t *j = json_stringn(out, o);
	free(out);
	return j;
}

static json_t *double_json(double d)
{
	/* JSON has no NaN or infinities (json_real refuses them). */
	if (isnan(d))
		return json_string("NaN");
	if (isinf(d))
		return json_string(d > 0 ? "Infinity" : "-Infinity");
	return json_real(d);
}

static json_t *uint64_json(uint64_t v)
{
	if (v <= (uint64_t)INT64_MAX)
		return json_integer((json_int_t)v);
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

static json_t *enum_json(const ProtobufCEnumDescriptor *d, int v)
{
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
	return ev ? json_string(ev->name) : json_integer(v);
}

/* One value of field f stored at p (the C member, or an array element). */
static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return uint64_json(*(const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT: {
		/* Through its shortest decimal form, so 0.1f prints as 0.1 and
		 * not as the double nearest the float (0.10000000149011612). */
		float fl = *(const float *)p;
		if (!isfinite(fl))
			return double_json(fl);
		char buf[32];
		snprintf(buf, sizeof(buf), "%.9g", (double)fl);
		return json_real(strtod(buf, NULL));
	}
	case PROTOBUF_C_TYPE_DOUBLE:
		return double_json(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM:
		return enum_json(f->descriptor, *(const int *)p);
	case PROTOBUF_C_TYPE_STRING:
		return string_json(*(char *const *)p);
	case PROTOBUF_C_TYPE_BYTES:
		return bytes_json(p);
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;
		return sub ? message_json(sub) : json_null();
	}
	}
	return json_null();
}

/* Value of an optional field that is not set: its declared default (proto2)
 * or the type's zero, so the key is there either way. */
static json_t *default_json(const ProtobufCFieldDescriptor *f)
{
	static const uint64_t zero[2]; /* big and aligned enough for any scalar */
	static const ProtobufCBinaryData no_bytes;
	const void *def = f->default_value;

	switch (f->type) {
	case PROTOBUF_C_TYPE_MESSAGE:
		return json_null();
	case PROTOBUF_C_TYPE_STRING:
		/* default_value of a string field is the string itself */
		return string_json(def);
	case PROTOBUF_C_TYPE_BYTES:
		return bytes_json(def ? def : &no_bytes);
	case PROTOBUF_C_TYPE_ENUM:
		/* proto3 enums default to 0; protoc-c fills default_value for
		 * proto2 ones (the first listed value unless declared). */
		return def ? value_json(f, def) : enum_json(f->descriptor, 0);
	default:
		return value_json(f, def ? def : zero);
	}
}

static json_t *field_json(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *base = (const char *)m;
	const void *member = base + f->offset;

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		/* Members share storage: read only the selected one. */
		uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
		return which == f->id ? value_json(f, member) : json_null();
	}
	switch (f->label) {
	case PROTOBUF_C_LABEL_REPEATED: {
		size_t n = *(const size_t *)(base + f->quantifier_offset);
		const char *arr = *(const char *const *)member;
		size_t sz = pb_elem_size(f->type);
		json_t *a = json_array();
		if (!a)
			return NULL;
		for (size_t i = 0; i < n && arr; i++) {
			if (json_array_append_new(a, value_json(f, arr + i * sz)) < 0) {
				json_decref(a);
				return NULL;
			}
		}
		return a;
	}
	case PROTOBUF_C_LABEL_OPTIONAL:
		/* Strings and messages say "absent" with NULL; other types have
		 * a has_ flag. */
		if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
			if (!*(const void *const *)member)
				return default_json(f);
		} else if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset)) {
			return default_json(f);
		}
		return value_json(f, member);
	default: /* REQUIRED, and NONE (proto3): always there */
		return value_json(f, member);
	}
}

static json_t *message_json(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	json_t *o;

	if (!d || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
		return NULL;
	o = json_object();
	if (!o)
		return NULL;
	/* fields[] is in tag order, which is the order the .proto lists them
	 * in here; jansson keeps insertion order when dumping. */
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		json_t *v = field_json(m, f);
		if (!v || json_object_set_new(o, f->name, v) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

json_t *pbjson_from_message(const ProtobufCMessage *m)
{
	return m ? message_json(m) : NULL;
}
