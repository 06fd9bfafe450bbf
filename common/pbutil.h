/*
 * Small helpers over protobuf-c's reflection, shared by the JSON converter
 * (common/pbjson.c) and the parse-tree comparison of the rewriter.
 */
#ifndef HELIOS_PBUTIL_H
#define HELIOS_PBUTIL_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* Size of one value of a field's C representation (one element of a
 * repeated field's array). */
static inline size_t pb_elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default: /* 32-bit integers, enums, float */
		return 4;
	}
}

#endif
