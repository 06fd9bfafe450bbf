/*
 * Envelope packing for the control-plane link, and version checks.
 */
#include "common/cpwire.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

uint8_t *cpwire_pack(Helios__MsgType type, uint64_t generation, const ProtobufCMessage *payload,
                     size_t *len)
{
	return cpwire_pack_token(type, generation, payload, NULL, len);
}

uint8_t *cpwire_pack_token(Helios__MsgType type, uint64_t generation,
                           const ProtobufCMessage *payload, const char *token, size_t *len)
{
	Helios__Envelope env = HELIOS__ENVELOPE__INIT;
	env.proto_version = HELIOS_PROTO_VERSION;
	env.type = type;
	env.generation = generation;
	if (token && token[0])
		env.token = (char *)token;
	uint8_t *body = NULL;
	if (payload) {
		size_t n = protobuf_c_message_get_packed_size(payload);
		body = malloc(n ? n : 1);
		if (!body)
			return NULL;
		protobuf_c_message_pack(payload, body);
		env.payload.data = body;
		env.payload.len = n;
	}
	size_t n = helios__envelope__get_packed_size(&env);
	uint8_t *out = malloc(n ? n : 1);
	if (out)
		helios__envelope__pack(&env, out);
	free(body);
	*len = n;
	return out;
}

Helios__Envelope *cpwire_unpack(const void *data, size_t len, char *err, size_t errlen)
{
	Helios__Envelope *e = helios__envelope__unpack(NULL, len, data);
	if (!e) {
		snprintf(err, errlen, "malformed message (%zu bytes): not a helios envelope", len);
		return NULL;
	}
	if (e->proto_version > HELIOS_PROTO_VERSION) {
		snprintf(
		    err, errlen,
		    "peer speaks control protocol version %u, this build understands up to %u: "
		    "upgrade this side",
		    e->proto_version, HELIOS_PROTO_VERSION);
		helios__envelope__free_unpacked(e, NULL);
		return NULL;
	}
	return e;
}

int cpwire_check_schema(uint32_t schema_version, char *err, size_t errlen)
{
	if (schema_version == 0 || schema_version > HELIOS_SCHEMA_VERSION) {
		snprintf(err, errlen,
		         "config snapshot has schema version %u, this data plane understands "
		         "version %u: upgrade heliosproxy before this control plane sends it",
		         schema_version, HELIOS_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

double cpwire_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t cpwire_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
