/*
 * common/cpauth.c and the control_* rules of the config check: the token
 * compare, which control addresses count as remote, and a control address
 * other hosts can reach without a token or client certificates refused
 * unless control_allow_insecure; the TLS files tls+tcp:// needs.
 */
#include "cfg_testutil.h"

#include "common/cpauth.h"

#include <grp.h>
#include <nng/protocol/reqrep0/req.h>

static void test_token_equal_only_for_the_same_token(void **state)
{
	(void)state;
	assert_true(cpauth_token_equal("s3cret-token", "s3cret-token"));
	assert_false(cpauth_token_equal("s3cret-token", "s3cret-tokem"));
	assert_false(cpauth_token_equal("s3cret-token", "S3cret-token"));
	/* prefixes and extensions differ in length: refused */
	assert_false(cpauth_token_equal("s3cret-token", "s3cret"));
	assert_false(cpauth_token_equal("s3cret-token", "s3cret-token-and-more"));
	assert_false(cpauth_token_equal("s3cret-token", ""));
	/* a token repeated to the right length is not the token */
	assert_false(cpauth_token_equal("ab", "abab"));
	/* no token configured matches nothing, not even nothing */
	assert_false(cpauth_token_equal("", ""));
	assert_false(cpauth_token_equal("", "x"));
}

static void test_loopback_addresses_are_not_remote(void **state)
{
	(void)state;
	assert_false(cpauth_url_remote("tcp://127.0.0.1:7433"));
	assert_false(cpauth_url_remote("tcp://127.8.9.10:7433"));
	assert_false(cpauth_url_remote("tcp://[::1]:7433"));
	assert_false(cpauth_url_remote("tcp://[::ffff:127.0.0.1]:7433"));
	assert_false(cpauth_url_remote("tcp://localhost:7433"));
	assert_false(cpauth_url_remote("tls+tcp://127.0.0.1:7433"));
	assert_false(cpauth_url_remote("ipc:///run/heliosproxy/cp.sock"));
	assert_false(cpauth_url_remote("inproc://cp"));

	assert_true(cpauth_url_remote("tcp://0.0.0.0:7433"));
	assert_true(cpauth_url_remote("tcp://:7433"));
	assert_true(cpauth_url_remote("tcp://*:7433"));
	assert_true(cpauth_url_remote("tcp://[::]:7433"));
	assert_true(cpauth_url_remote("tcp://10.0.0.1:7433"));
	assert_true(cpauth_url_remote("tcp://helios-cp.default.svc:7433"));
	assert_true(cpauth_url_remote("tls+tcp://0.0.0.0:7433"));
	assert_true(cpauth_url_remote("tcp://128.0.0.1:7433"));
}

static void test_remote_tcp_control_address_without_token_is_refused_naming_the_key(void **state)
{
	(void)state;
	assert_refused("control_address = \"tcp://0.0.0.0:7433\"\n" NODE,
	               "proxy.toml:1: key 'control_address'", "\"tcp://0.0.0.0:7433\"",
	               "control_token", "control_allow_insecure", NULL);
	assert_refused("\ncontrol_socket = \"tcp://10.1.2.3:7433\"\n" NODE,
	               "proxy.toml:2: key 'control_socket'", "control_token", NULL);
	/* TLS without client certificates authenticates only the server */
	write_tmp("ca.pem", "-----BEGIN CERTIFICATE-----\n");
	char text[1024];
	snprintf(text, sizeof(text),
	         "control_address = \"tls+tcp://0.0.0.0:7433\"\ncontrol_tls_ca = \"%s/ca.pem\"\n"
	         "control_tls_verify_client = false\n" NODE,
	         tmpdir);
	assert_refused(text, "key 'control_address'", "control_tls_verify_client", NULL);
}

static void
test_remote_control_address_is_accepted_with_token_certificates_or_insecure(void **state)
{
	struct cfg *c;
	char text[1024];

	(void)state;
	c = load_ok("control_address = \"tcp://0.0.0.0:7433\"\ncontrol_token = \"t0k\"\n" NODE);
	assert_string_equal(c->control_token, "t0k");
	cfg_free(c);
	c = load_ok(
	    "control_address = \"tcp://10.0.0.1:7433\"\ncontrol_allow_insecure = true\n" NODE);
	assert_true(c->control_allow_insecure);
	cfg_free(c);
	/* loopback stays allowed as it is (tests, one host) */
	c = load_ok("control_address = \"tcp://127.0.0.1:7433\"\n" NODE);
	cfg_free(c);
	write_tmp("ca.pem", "-----BEGIN CERTIFICATE-----\n");
	write_tmp("cert.pem", "-----BEGIN CERTIFICATE-----\n");
	write_tmp("key.pem", "-----BEGIN PRIVATE KEY-----\n");
	snprintf(text, sizeof(text),
	         "control_address = \"tls+tcp://0.0.0.0:7433\"\ncontrol_tls_ca = \"ca.pem\"\n"
	         "control_tls_cert = \"cert.pem\"\ncontrol_tls_key = \"key.pem\"\n" NODE);
	struct cfg_error err;
	c = cfg_load_file(write_tmp("proxy.toml", text), &err);
	if (!c)
		fail_msg("refused: %s", err.msg);
	assert_true(c->control_tls_verify_client);
	/* relative paths resolve against the config's folder */
	char want[256];
	snprintf(want, sizeof(want), "%s/ca.pem", tmpdir);
	assert_string_equal(c->control_tls_ca, want);
	cfg_free(c);
}

static void test_tls_control_address_needs_its_files(void **state)
{
	struct cfg_error err;
	struct cfg *c;
	char text[1024];

	(void)state;
	assert_refused("control_address = \"tls+tcp://127.0.0.1:7433\"\n" NODE,
	               "key 'control_tls_ca' is required when control_address is tls+tcp://", NULL);
	write_tmp("ca.pem", "-----BEGIN CERTIFICATE-----\n");
	snprintf(
	    text, sizeof(text),
	    "control_address = \"tls+tcp://127.0.0.1:7433\"\ncontrol_tls_ca = \"ca.pem\"\n" NODE);
	c = cfg_load_file(write_tmp("proxy.toml", text), &err);
	assert_null(c);
	assert_non_null(strstr(err.msg, "key 'control_tls_cert' is required"));
	snprintf(
	    text, sizeof(text),
	    "control_address = \"tls+tcp://127.0.0.1:7433\"\ncontrol_tls_ca = \"nothere.pem\"\n"
	    "control_tls_verify_client = false\n" NODE);
	c = cfg_load_file(write_tmp("proxy.toml", text), &err);
	assert_null(c);
	assert_non_null(strstr(err.msg, "key 'control_tls_ca': cannot read"));
	assert_non_null(strstr(err.msg, "nothere.pem"));
	/* without client certificates the CA alone will do (the dialing side) */
	snprintf(text, sizeof(text),
	         "control_address = \"tls+tcp://127.0.0.1:7433\"\ncontrol_tls_ca = \"ca.pem\"\n"
	         "control_tls_verify_client = false\n" NODE);
	c = cfg_load_file(write_tmp("proxy.toml", text), &err);
	if (!c)
		fail_msg("refused: %s", err.msg);
	cfg_free(c);
}

static void test_control_socket_group_must_exist(void **state)
{
	struct cfg_error err;
	struct cfg *c;
	char text[256];

	(void)state;
	c = cfg_load_file(
	    write_tmp("proxy.toml", "control_socket_group = \"no-such-group-here\"\n" NODE), &err);
	assert_null(c);
	assert_non_null(strstr(err.msg, "proxy.toml:1: key 'control_socket_group'"));
	assert_non_null(strstr(err.msg, "no group \"no-such-group-here\""));
	/* a snapshot names the control plane's group: a data plane does not check it */
	c = load_ok("control_socket_group = \"no-such-group-here\"\n" NODE);
	cfg_free(c);
	struct group *g = getgrgid(getegid());
	assert_non_null(g);
	snprintf(text, sizeof(text), "control_socket_group = \"%s\"\n" NODE, g->gr_name);
	c = cfg_load_file(write_tmp("proxy.toml", text), &err);
	if (!c)
		fail_msg("refused: %s", err.msg);
	assert_string_equal(c->control_socket_group, g->gr_name);
	cfg_free(c);
}

static void test_token_is_masked_like_a_password(void **state)
{
	char buf[64];
	struct cfg *c = load_ok("control_token = \"t0k\"\n" NODE);

	(void)state;
	assert_int_equal(cfg_format_value(c, cfg_key_find("control_token"), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "\"********\"");
	cfg_free(c);
}

static void test_tls_dialer_without_ca_is_refused_before_dialing(void **state)
{
	struct cpauth a = {0};
	nng_socket s;
	nng_dialer d;
	char err[600] = "";

	(void)state;
	assert_int_equal(nng_req0_open(&s), 0);
	assert_int_equal(cpauth_dialer(s, "tls+tcp://127.0.0.1:1", &a, &d, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "control_tls_ca"));
	snprintf(a.ca, sizeof(a.ca), "%s/nothere.pem", tmpdir);
	assert_int_equal(cpauth_dialer(s, "tls+tcp://127.0.0.1:1", &a, &d, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "nothere.pem"));
	/* plain tcp:// needs nothing */
	assert_int_equal(cpauth_dialer(s, "tcp://127.0.0.1:1", &a, &d, err, sizeof(err)), 0);
	nng_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_token_equal_only_for_the_same_token),
	    cmocka_unit_test(test_loopback_addresses_are_not_remote),
	    cmocka_unit_test(
	        test_remote_tcp_control_address_without_token_is_refused_naming_the_key),
	    cmocka_unit_test(
	        test_remote_control_address_is_accepted_with_token_certificates_or_insecure),
	    cmocka_unit_test(test_tls_control_address_needs_its_files),
	    cmocka_unit_test(test_control_socket_group_must_exist),
	    cmocka_unit_test(test_token_is_masked_like_a_password),
	    cmocka_unit_test(test_tls_dialer_without_ca_is_refused_before_dialing),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
