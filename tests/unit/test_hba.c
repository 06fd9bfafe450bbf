/*
 * Unit tests for dataplane/auth/hba: pg_hba.conf parsing (types, lists,
 * quotes, @file, masks, options, continuation, errors naming file:line),
 * inline [[auth.rules]] and first-match lookup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "dataplane/auth/hba.h"

static struct hba *parse_ok(const char *text)
{
	struct hba *h = NULL;
	char why[512] = "";
	int r = hba_parse(text, strlen(text), "/etc/x/pg_hba.conf", &h, why, sizeof(why));
	if (r != 0)
		fail_msg("parse failed: %s", why);
	return h;
}

static void parse_err(const char *text, const char *want)
{
	struct hba *h = NULL;
	char why[512] = "";
	int r = hba_parse(text, strlen(text), "/etc/x/pg_hba.conf", &h, why, sizeof(why));
	assert_int_equal(r, -EINVAL);
	assert_null(h);
	if (!strstr(why, want))
		fail_msg("error \"%s\" lacks \"%s\"", why, want);
}

static void ip(const char *s, uint8_t out[16])
{
	struct in_addr a4;
	if (inet_pton(AF_INET, s, &a4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a4, 4);
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, s, out), 1);
}

/* line of the matching rule, 0 = none */
static int match_line(const struct hba *h, bool local, bool tls, const char *addr, const char *user,
                      const char *db)
{
	uint8_t a[16] = {0};
	if (addr)
		ip(addr, a);
	const struct hba_rule *r = hba_match(h, local, tls, a, user, db);
	return r ? r->line : 0;
}

static void test_first_match_wins_in_file_order(void **st)
{
	(void)st;
	struct hba *h = parse_ok("# comment line\n"
	                         "\n"
	                         "host app alice 127.0.0.1/32 trust\n"
	                         "host app all 127.0.0.1/32 md5   # trailing comment\n"
	                         "host all all 0.0.0.0/0 scram-sha-256\n");
	assert_int_equal(h->n, 3);
	assert_int_equal(match_line(h, false, false, "127.0.0.1", "alice", "app"), 3);
	assert_int_equal(h->rules[0].method, HBA_TRUST);
	assert_int_equal(match_line(h, false, false, "127.0.0.1", "bob", "app"), 4);
	assert_int_equal(match_line(h, false, false, "127.0.0.1", "alice", "other"), 5);
	assert_int_equal(match_line(h, false, false, "10.1.2.3", "alice", "app"), 5);
	assert_string_equal(h->rules[1].where, "/etc/x/pg_hba.conf:4");
	assert_int_equal(h->rules[1].method, HBA_MD5);
	assert_int_equal(h->rules[2].method, HBA_SCRAM);
	hba_free(h);
}

static void test_reject_stops_the_search(void **st)
{
	(void)st;
	struct hba *h = parse_ok("host all mallory 0.0.0.0/0 reject\n"
	                         "host all all 0.0.0.0/0 trust\n");
	uint8_t a[16];
	ip("127.0.0.1", a);
	const struct hba_rule *r = hba_match(h, false, false, a, "mallory", "db");
	assert_non_null(r);
	assert_int_equal(r->method, HBA_REJECT);
	assert_int_equal(match_line(h, false, false, "127.0.0.1", "eve", "db"), 2);
	hba_free(h);
}

static void test_hostssl_and_hostnossl_follow_tls(void **st)
{
	(void)st;
	struct hba *h = parse_ok("hostssl all all 127.0.0.0/8 password\n"
	                         "hostnossl all all 127.0.0.0/8 md5\n");
	assert_int_equal(match_line(h, false, true, "127.0.0.5", "u", "d"), 1);
	assert_int_equal(match_line(h, false, false, "127.0.0.5", "u", "d"), 2);
	hba_free(h);
	h = parse_ok("hostssl all all 127.0.0.0/8 trust\n");
	assert_int_equal(match_line(h, false, false, "127.0.0.1", "u", "d"), 0);
	hba_free(h);
}

static void test_local_rules_only_match_unix_clients(void **st)
{
	(void)st;
	struct hba *h = parse_ok("local all all trust\n"
	                         "host all all 0.0.0.0/0 md5\n");
	assert_int_equal(match_line(h, true, false, NULL, "u", "d"), 1);
	assert_int_equal(match_line(h, false, false, "127.0.0.1", "u", "d"), 2);
	assert_int_equal(h->rules[0].any_addr, true);
	hba_free(h);
}

static void test_ipv6_rules_match_ipv6_clients_only(void **st)
{
	(void)st;
	struct hba *h = parse_ok("host all all ::1/128 trust\n"
	                         "host all all 2001:db8::/32 md5\n"
	                         "host all all 0.0.0.0/0 reject\n");
	assert_int_equal(match_line(h, false, false, "::1", "u", "d"), 1);
	assert_int_equal(match_line(h, false, false, "2001:db8:1::7", "u", "d"), 2);
	assert_int_equal(match_line(h, false, false, "2001:db9::7", "u", "d"), 0);
	assert_int_equal(match_line(h, false, false, "127.0.0.1", "u", "d"), 3);
	hba_free(h);
	/* ::/0 does not match an IPv4 client, as in PostgreSQL */
	h = parse_ok("host all all ::/0 trust\n");
	assert_int_equal(match_line(h, false, false, "10.0.0.1", "u", "d"), 0);
	hba_free(h);
}

static void test_separate_netmask_and_host_bits(void **st)
{
	(void)st;
	struct hba *h = parse_ok("host all all 192.168.1.0 255.255.255.0 trust\n"
	                         "host all all 10.9.8.7/8 md5\n");
	assert_int_equal(h->rules[0].addr.len, 96 + 24);
	assert_int_equal(match_line(h, false, false, "192.168.1.200", "u", "d"), 1);
	assert_int_equal(match_line(h, false, false, "192.168.2.1", "u", "d"), 0);
	/* host bits past the prefix are ignored, as PostgreSQL does */
	assert_int_equal(match_line(h, false, false, "10.1.1.1", "u", "d"), 2);
	hba_free(h);
	parse_err("host all all 10.0.0.0 255.0.255.0 trust\n", "invalid IP mask");
}

static void test_lists_quotes_and_all_keyword(void **st)
{
	(void)st;
	struct hba *h = parse_ok("host sales,\"hr db\",ops alice,\"all\" 0.0.0.0/0 trust\n");
	const struct hba_rule *r = &h->rules[0];
	assert_false(r->databases.all);
	assert_int_equal(r->databases.n, 3);
	assert_string_equal(r->databases.names[1], "hr db");
	/* a quoted "all" is a role named all, not the keyword */
	assert_false(r->users.all);
	assert_int_equal(match_line(h, false, false, "1.2.3.4", "all", "ops"), 1);
	assert_int_equal(match_line(h, false, false, "1.2.3.4", "bob", "ops"), 0);
	assert_int_equal(match_line(h, false, false, "1.2.3.4", "alice", "hr db"), 1);
	assert_int_equal(match_line(h, false, false, "1.2.3.4", "alice", "hr"), 0);
	hba_free(h);
}

static void test_at_file_includes_names(void **st)
{
	(void)st;
	char dir[] = "/tmp/test_hba_XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], hba[256];
	snprintf(path, sizeof(path), "%s/dbs.txt", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("# the reporting databases\nreports, archive\nstats\n", f);
	fclose(f);
	snprintf(hba, sizeof(hba), "%s/pg_hba.conf", dir);
	f = fopen(hba, "w");
	assert_non_null(f);
	fputs("host @dbs.txt all 0.0.0.0/0 trust\n", f);
	fclose(f);
	struct hba *h = NULL;
	char why[512];
	assert_int_equal(hba_load_file(hba, &h, why, sizeof(why)), 0);
	assert_int_equal(h->rules[0].databases.n, 3);
	assert_int_equal(match_line(h, false, false, "1.2.3.4", "u", "stats"), 1);
	assert_int_equal(match_line(h, false, false, "1.2.3.4", "u", "archive"), 1);
	assert_int_equal(match_line(h, false, false, "1.2.3.4", "u", "app"), 0);
	hba_free(h);
	unlink(path);
	unlink(hba);
	rmdir(dir);
}

static void test_options_and_line_continuation(void **st)
{
	(void)st;
	struct hba *h =
	    parse_ok("host all all 127.0.0.1/32 ldap ldapserver=127.0.0.1 \\\n"
	             "    ldapprefix=\"uid=\" ldapsuffix=\",ou=people,dc=ex\"\n"
	             "hostssl all all 0.0.0.0/0 cert map=certs\n"
	             "hostssl all all ::/0 jwt jwt_issuer=https://idp jwt_audience=helios\n");
	assert_int_equal(h->n, 3);
	const struct hba_rule *r = &h->rules[0];
	assert_int_equal(r->method, HBA_LDAP);
	assert_int_equal(r->line, 1);
	assert_string_equal(hba_opt(r, "ldapserver"), "127.0.0.1");
	assert_string_equal(hba_opt(r, "ldapprefix"), "uid=");
	assert_string_equal(hba_opt(r, "ldapsuffix"), ",ou=people,dc=ex");
	assert_null(hba_opt(r, "ldapport"));
	/* the line after a continued one keeps its own number */
	assert_int_equal(h->rules[1].line, 3);
	assert_string_equal(hba_opt(&h->rules[1], "map"), "certs");
	assert_int_equal(h->rules[2].method, HBA_JWT);
	assert_string_equal(hba_opt(&h->rules[2], "jwt_audience"), "helios");
	assert_non_null(h->rules[0].ldap); /* compiled for ldapauth at parse */
	assert_null(h->rules[2].jwt);      /* keys are read by hba_prepare */
	hba_free(h);
}

static void test_errors_name_file_and_line(void **st)
{
	(void)st;
	parse_err("host all all 0.0.0.0/0 trust\nhots all all 0.0.0.0/0 trust\n",
	          "/etc/x/pg_hba.conf:2: invalid connection type \"hots\"");
	parse_err("host all all 0.0.0.0/0 kerberos\n", ":1: invalid authentication method");
	parse_err("host all all 127.0.0.1 trust\n", "needs a CIDR mask");
	parse_err("host all all 127.0.0.1/33 trust\n", "invalid CIDR mask");
	parse_err("host all all db.example trust\n", "invalid IP address");
	parse_err("host all all\n", "end-of-line before IP address");
	parse_err("local all\n", "end-of-line before role");
	parse_err("host all all 0.0.0.0/0 ldap ldapsever=x\n", "unknown option \"ldapsever\"");
	parse_err("host all all 0.0.0.0/0 trust foo\n", "not in name=value");
	parse_err("host all all 0.0.0.0/0 trust ldapserver=x\n", "unknown option \"ldapserver\"");
	parse_err("host all all 0.0.0.0/0 jwt issuer=x\n", "unknown option \"issuer\" for "
	                                                   "authentication method jwt");
	/* ldapauth's own checks, with the line */
	parse_err("host all all 0.0.0.0/0 ldap ldapport=1\n", "pg_hba.conf:1: ldapserver");
	parse_err("host all all 0.0.0.0/0 cert\n", "only supported on hostssl");
	parse_err("host sameuser all 0.0.0.0/0 trust\n", "not supported");
	parse_err("host all +admins 0.0.0.0/0 trust\n", "not supported");
	parse_err("host \"app all 0.0.0.0/0 trust\n", "unterminated quoted string");
	parse_err("\n\nhost @/nonexistent/x all 0.0.0.0/0 trust\n", ":3: @/nonexistent/x");
}

static void test_inline_rules_parse_like_lines(void **st)
{
	(void)st;
	const struct hba_rule_text rt[] = {
	    {"host", "app", "ci", "127.0.0.1/32", "trust", ""},
	    {"local", "all", "all", "", "md5", ""},
	    {"hostssl", "all", "all", "::1/128", "ldap",
	     "ldapserver=127.0.0.1 ldapport=3890 ldapprefix=uid="},
	};
	struct hba *h = NULL;
	char why[512];
	assert_int_equal(hba_from_rules(rt, 3, "/etc/helios.toml", &h, why, sizeof(why)), 0);
	assert_int_equal(h->n, 3);
	assert_string_equal(h->rules[2].where, "/etc/helios.toml: [[auth.rules]] #3");
	assert_string_equal(hba_opt(&h->rules[2], "ldapport"), "3890");
	assert_int_equal(match_line(h, true, false, NULL, "x", "y"), 2);
	hba_free(h);
	const struct hba_rule_text bad[] = {{"host", "all", "all", "1.2.3.4/32", "md6", ""}};
	assert_int_equal(hba_from_rules(bad, 1, "/etc/helios.toml", &h, why, sizeof(why)), -EINVAL);
	assert_string_equal(why,
	                    "/etc/helios.toml: [[auth.rules]] #1: invalid authentication method "
	                    "\"md6\" (trust, reject, md5, scram-sha-256, password, cert, ldap or "
	                    "jwt)");
}

static void test_no_entry_message_is_postgresqls(void **st)
{
	(void)st;
	char m[300];
	hba_no_entry_msg(m, sizeof(m), "127.0.0.1", "bob", "app", false);
	assert_string_equal(m, "no pg_hba.conf entry for host \"127.0.0.1\", user \"bob\", "
	                       "database \"app\", no encryption");
	hba_no_entry_msg(m, sizeof(m), "::1", "bob", "app", true);
	assert_string_equal(m, "no pg_hba.conf entry for host \"::1\", user \"bob\", "
	                       "database \"app\", SSL encryption");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_first_match_wins_in_file_order),
	    cmocka_unit_test(test_reject_stops_the_search),
	    cmocka_unit_test(test_hostssl_and_hostnossl_follow_tls),
	    cmocka_unit_test(test_local_rules_only_match_unix_clients),
	    cmocka_unit_test(test_ipv6_rules_match_ipv6_clients_only),
	    cmocka_unit_test(test_separate_netmask_and_host_bits),
	    cmocka_unit_test(test_lists_quotes_and_all_keyword),
	    cmocka_unit_test(test_at_file_includes_names),
	    cmocka_unit_test(test_options_and_line_continuation),
	    cmocka_unit_test(test_errors_name_file_and_line),
	    cmocka_unit_test(test_inline_rules_parse_like_lines),
	    cmocka_unit_test(test_no_entry_message_is_postgresqls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
