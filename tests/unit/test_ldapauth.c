/*
 * Unit tests for dataplane/auth/ldapauth's options: a pg_hba line's LDAP
 * options parsed into struct ldap_opts, the combination checks with errors
 * naming the option, defaults, quoting, deep copy and free (ASan proves no
 * leak or double free). The checks against a server are in
 * tests/integration/test_ldapauth.py (real slapd).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "dataplane/auth/ldapauth.h"

static int parse(struct ldap_opts *o, const char *const *pairs, char *err, size_t errlen)
{
	memset(o, 0, sizeof(*o));
	for (int i = 0; pairs[i]; i++) {
		int r = ldap_opts_set_pair(o, pairs[i], err, errlen);
		if (r)
			return r;
	}
	return ldap_opts_finish(o, err, errlen);
}

static void test_search_bind_options_with_defaults(void **state)
{
	(void)state;
	struct ldap_opts o;
	char err[256] = "";
	const char *pairs[] = {"ldapserver=\"ldap1.example.com, 10.0.0.2 ::1\"",
	                       "ldapbasedn=dc=example,dc=com",
	                       "ldapbinddn=cn=search,dc=example,dc=com",
	                       "ldapbindpasswd=s3cret",
	                       "ldapsearchfilter=(|(uid=$username)(mail=$username))",
	                       NULL};
	assert_int_equal(parse(&o, pairs, err, sizeof(err)), 0);
	assert_int_equal(o.n_servers, 3);
	assert_string_equal(o.servers[0], "ldap1.example.com");
	assert_string_equal(o.servers[1], "10.0.0.2");
	assert_string_equal(o.servers[2], "::1");
	assert_int_equal(o.port, 389);
	assert_int_equal(o.timeout_ms, LDAPAUTH_TIMEOUT_MS);
	assert_false(o.ldaps);
	assert_string_equal(o.basedn, "dc=example,dc=com");
	assert_string_equal(o.searchfilter, "(|(uid=$username)(mail=$username))");
	ldap_opts_free(&o);
}

static void test_ldaps_defaults_to_port_636_and_timeout_is_seconds(void **state)
{
	(void)state;
	struct ldap_opts o;
	char err[256] = "";
	const char *pairs[] = {"ldapserver=h",     "ldapscheme=ldaps", "ldapprefix=uid=",
	                       "ldapsuffix=,dc=x", "ldaptimeout=3",    NULL};
	assert_int_equal(parse(&o, pairs, err, sizeof(err)), 0);
	assert_true(o.ldaps);
	assert_int_equal(o.port, 636);
	assert_int_equal(o.timeout_ms, 3000);
	ldap_opts_free(&o);
}

static void expect_error(const char *const *pairs, int rc, const char *msg)
{
	struct ldap_opts o;
	char err[256] = "";
	assert_int_equal(parse(&o, pairs, err, sizeof(err)), rc);
	if (!strstr(err, msg))
		fail_msg("error \"%s\" does not contain \"%s\"", err, msg);
	ldap_opts_free(&o);
}

static void test_errors_name_the_option(void **state)
{
	(void)state;
	expect_error((const char *[]){"ldapserver=h", "ldapport=70000", NULL}, -EINVAL,
	             "ldapport: \"70000\"");
	expect_error((const char *[]){"ldapserver=h", "ldaptls=yes", NULL}, -EINVAL,
	             "ldaptls: \"yes\"");
	expect_error((const char *[]){"ldapserver=h", "ldapfoo=1", NULL}, -ENOENT,
	             "ldapfoo: not an LDAP option");
	expect_error((const char *[]){"ldapserver=h", "ldapsearchfilter=uid=$username", NULL},
	             -EINVAL, "ldapsearchfilter:");
	expect_error((const char *[]){"ldapserver=", NULL}, -EINVAL, "ldapserver: no server");
	expect_error((const char *[]){"ldapserver=a b c d e f g h i", NULL}, -EINVAL,
	             "ldapserver: more than 8");
	expect_error((const char *[]){"ldapserver=h", "ldapbasedn=dc=x", "ldapbindpasswd=p", NULL},
	             -EINVAL, "ldapbindpasswd: needs ldapbinddn");
	expect_error((const char *[]){"ldapserver=h", "ldapurl=ldap://h/dc=x", NULL}, -EINVAL,
	             "ldapurl: not supported");
	expect_error((const char *[]){"noequals", NULL}, -EINVAL, "not name=value");
}

static void test_bind_password_never_in_an_error(void **state)
{
	(void)state;
	struct ldap_opts o;
	char err[256] = "";
	const char *pairs[] = {"ldapserver=h", "ldapbindpasswd=TOPSECRET", "ldapprefix=uid=", NULL};
	assert_int_equal(parse(&o, pairs, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cannot be mixed"));
	assert_null(strstr(err, "TOPSECRET"));
	ldap_opts_free(&o);
}

static void test_copy_is_deep(void **state)
{
	(void)state;
	struct ldap_opts o, c;
	char err[256] = "";
	const char *pairs[] = {"ldapserver=a b",
	                       "ldapbasedn=dc=x",
	                       "ldapbinddn=cn=s",
	                       "ldapbindpasswd=p",
	                       "ldapcafile=/ca.pem",
	                       "ldaptls=1",
	                       NULL};
	assert_int_equal(parse(&o, pairs, err, sizeof(err)), 0);
	assert_int_equal(ldap_opts_copy(&c, &o), 0);
	ldap_opts_free(&o); /* the copy must not share a string with it */
	assert_int_equal(c.n_servers, 2);
	assert_string_equal(c.servers[1], "b");
	assert_string_equal(c.binddn, "cn=s");
	assert_string_equal(c.bindpasswd, "p");
	assert_string_equal(c.cafile, "/ca.pem");
	assert_true(c.starttls);
	assert_null(c.prefix);
	ldap_opts_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_search_bind_options_with_defaults),
	    cmocka_unit_test(test_ldaps_defaults_to_port_636_and_timeout_is_seconds),
	    cmocka_unit_test(test_errors_name_the_option),
	    cmocka_unit_test(test_bind_password_never_in_an_error),
	    cmocka_unit_test(test_copy_is_deep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
