/*
 * The control-plane envelope: round trips, and refusing what a newer peer
 * sends (a newer wire contract, a newer configuration schema).
 */
#include "common/cpwire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_envelope_round_trips_type_generation_and_payload(void **state)
{
	(void)state;
	Helios__ConfigAck ack = HELIOS__CONFIG_ACK__INIT;
	ack.dataplane_id = "host:42";
	ack.generation = 7;
	size_t len;
	uint8_t *buf = cpwire_pack(HELIOS__MSG_TYPE__MSG_HEARTBEAT, 7, &ack.base, &len);
	assert_non_null(buf);
	char err[200];
	Helios__Envelope *e = cpwire_unpack(buf, len, err, sizeof(err));
	assert_non_null(e);
	assert_int_equal(e->proto_version, HELIOS_PROTO_VERSION);
	assert_int_equal(e->type, HELIOS__MSG_TYPE__MSG_HEARTBEAT);
	assert_int_equal(e->generation, 7);
	Helios__ConfigAck *back = helios__config_ack__unpack(NULL, e->payload.len, e->payload.data);
	assert_non_null(back);
	assert_string_equal(back->dataplane_id, "host:42");
	assert_int_equal(back->generation, 7);
	helios__config_ack__free_unpacked(back, NULL);
	helios__envelope__free_unpacked(e, NULL);
	free(buf);
}

static void test_envelope_from_a_newer_protocol_is_refused_with_both_versions(void **state)
{
	(void)state;
	Helios__Envelope env = HELIOS__ENVELOPE__INIT;
	env.proto_version = HELIOS_PROTO_VERSION + 1;
	env.type = HELIOS__MSG_TYPE__MSG_REPLY;
	uint8_t buf[64];
	size_t len = helios__envelope__pack(&env, buf);
	char err[200];
	assert_null(cpwire_unpack(buf, len, err, sizeof(err)));
	char want[64];
	snprintf(want, sizeof(want), "version %u", HELIOS_PROTO_VERSION + 1);
	assert_non_null(strstr(err, want));
	snprintf(want, sizeof(want), "up to %u", HELIOS_PROTO_VERSION);
	assert_non_null(strstr(err, want));
}

static void test_garbage_is_not_an_envelope(void **state)
{
	(void)state;
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
	char err[200];
	assert_null(cpwire_unpack(junk, sizeof(junk), err, sizeof(err)));
	assert_non_null(strstr(err, "malformed"));
}

static void test_snapshot_schema_newer_than_ours_is_refused(void **state)
{
	(void)state;
	char err[300];
	assert_int_equal(cpwire_check_schema(HELIOS_SCHEMA_VERSION, err, sizeof(err)), 0);
	assert_int_equal(cpwire_check_schema(HELIOS_SCHEMA_VERSION + 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "upgrade heliosproxy"));
	assert_int_equal(cpwire_check_schema(0, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_envelope_round_trips_type_generation_and_payload),
	    cmocka_unit_test(test_envelope_from_a_newer_protocol_is_refused_with_both_versions),
	    cmocka_unit_test(test_garbage_is_not_an_envelope),
	    cmocka_unit_test(test_snapshot_schema_newer_than_ours_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
