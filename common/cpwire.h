/*
 * The control-plane wire: protobuf-c envelopes (proto/helios.proto) in nng
 * messages. Shared by helios-cp, heliosproxy and helioctl.
 */
#ifndef HELIOS_CPWIRE_H
#define HELIOS_CPWIRE_H

#include "proto/helios.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* Wire contract of helios.proto; a peer refuses a newer one. */
#define HELIOS_PROTO_VERSION 1
/* Configuration model carried in ConfigSnapshot.schema_version (the key
 * table); a data plane refuses a snapshot newer than this. */
#define HELIOS_SCHEMA_VERSION 1

#define HELIOS_VERSION "0.2.0"

/* Packs payload (any message, or NULL) into an envelope; returns a malloc'd
 * buffer (*len bytes), NULL when out of memory. */
uint8_t *cpwire_pack(Helios__MsgType type, uint64_t generation, const ProtobufCMessage *payload,
                     size_t *len);
/* cpwire_pack with the sender's control_token in the envelope (NULL or ""
 * = none). The buffer then holds the secret: wipe it before freeing when it
 * matters (the token is in the process's config anyway). */
uint8_t *cpwire_pack_token(Helios__MsgType type, uint64_t generation,
                           const ProtobufCMessage *payload, const char *token, size_t *len);
/* Unpacks an envelope; NULL with a reason in err when it is not one, or
 * when its proto_version is newer than HELIOS_PROTO_VERSION. Free with
 * helios__envelope__free_unpacked(e, NULL). */
Helios__Envelope *cpwire_unpack(const void *data, size_t len, char *err, size_t errlen);

/* Unix time in seconds, as a double (reports and status). */
double cpwire_now(void);
/* Monotonic milliseconds. */
uint64_t cpwire_mono_ms(void);

/* Checks a config snapshot's schema version: 0 if this build can apply it,
 * else -1 with a message naming both versions. */
int cpwire_check_schema(uint32_t schema_version, char *err, size_t errlen);

#endif
