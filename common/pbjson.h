/*
 * Any protobuf-c message as JSON (jansson), driven by the descriptors alone,
 * so every message in proto/helios.proto (and any added later) prints
 * without per-type code: `helioctl --json` and the admin API use it.
 *
 * The shape is stable: every field of the message is present, under its
 * .proto name, in tag order, whether or not it was set, so scripts can
 * index fields without checking for them first:
 *   - integers, bools and doubles as JSON numbers/booleans (proto3 default
 *     0 / false when unset); 64-bit unsigned values above INT64_MAX, which
 *     JSON integers in jansson cannot hold, as decimal strings;
 *   - NaN and infinities (not JSON numbers) as "NaN", "Infinity",
 *     "-Infinity", as in the proto3 JSON mapping;
 *   - strings as strings ("" when unset; invalid UTF-8 bytes replaced with
 *     U+FFFD, since a client-chosen application_name need not be UTF-8);
 *   - bytes as standard base64 with padding;
 *   - enums by value name ("MSG_CTL_RESPONSE"), or the number when the
 *     value is unknown to this build;
 *   - nested messages as objects, null when absent;
 *   - repeated fields (and maps, as arrays of {key, value}) as arrays,
 *     [] when empty;
 *   - oneof members not selected: null.
 * Unknown fields (from a newer peer) are left out.
 */
#ifndef HELIOS_PBJSON_H
#define HELIOS_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* A new JSON object for m; NULL when m is NULL or out of memory.
 * The caller owns the reference (json_decref). */
json_t *pbjson_from_message(const ProtobufCMessage *m);

#endif
