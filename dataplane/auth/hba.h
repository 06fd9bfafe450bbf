/*
 * Host-based authentication rules: pg_hba.conf syntax (auth.hba_file) or
 * inline [[auth.rules]], first match wins, as PostgreSQL's pg_hba.conf.
 * A pure module: parsing and matching, no sockets. login.c asks
 * hba_match() which rule (and so which method and options) applies to a
 * client once its startup packet is read.
 */
#ifndef HELIOS_HBA_H
#define HELIOS_HBA_H

#include "common/cidr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hba_conn {
	HBA_LOCAL,     /* "local": a Unix-socket client */
	HBA_HOST,      /* "host": TCP, TLS or not */
	HBA_HOSTSSL,   /* "hostssl": TCP with TLS only */
	HBA_HOSTNOSSL, /* "hostnossl": TCP without TLS only */
};

enum hba_method {
	HBA_TRUST,
	HBA_REJECT,
	HBA_MD5,
	HBA_SCRAM, /* "scram-sha-256" */
	HBA_PASSWORD,
	HBA_CERT,
	HBA_LDAP,
	HBA_JWT,
};

/* One name=value option of a rule ("ldapserver=127.0.0.1", "map=certmap").
 * Both strings are owned by the hba. */
struct hba_opt {
	char *name;
	char *value;
};

/* One list of a rule's database or user field: "all" matches everything
 * (PostgreSQL's sameuser/samerole/replication keywords are refused at parse). */
struct hba_names {
	bool all;
	int n;
	char **names; /* exact names (quotes removed, @file entries expanded) */
};

struct ldap_opts;
struct jwt_conf;

struct hba_rule {
	enum hba_conn conn;
	struct hba_names databases;
	struct hba_names users;
	bool any_addr; /* "all" (or local: no address) */
	struct cidr addr;
	enum hba_method method;
	int n_opts;
	struct hba_opt *opts;
	/* Where the rule was written: "/etc/helios/pg_hba.conf:3" or
	 * "helios.toml:[[auth.rules]] #2": used in every log line about it. */
	char where[300];
	int line; /* line in the file (or the rule's index + 1 for [[auth.rules]]) */
	/* the method's options compiled: ldap at parse (dataplane/auth/ldapauth.h),
	 * jwt by hba_prepare (its key files are read then); NULL otherwise */
	struct ldap_opts *ldap;
	struct jwt_conf *jwt;
};

struct hba {
	int n;
	struct hba_rule *rules;
	char source[256]; /* the file's path, or "[[auth.rules]]" */
};

/* Parses pg_hba.conf text (name is the path used in messages; @file
 * includes are resolved relative to its directory). Returns 0 and a new
 * hba in *out, or -EINVAL with "file:line: reason" in why. */
int hba_parse(const char *text, size_t len, const char *name, struct hba **out, char *why,
              size_t whylen);
/* Reads and parses path. -errno (and why) when it cannot be read. */
int hba_load_file(const char *path, struct hba **out, char *why, size_t whylen);

/* Builds an hba from [[auth.rules]] entries (fields as in a pg_hba line:
 * type, database, user, address, method, options "name=value name2=value2");
 * where_prefix names the config file in messages. */
struct hba_rule_text {
	const char *type;
	const char *database;
	const char *user;
	const char *address; /* "" for local */
	const char *method;
	const char *options; /* "" = none */
};
int hba_from_rules(const struct hba_rule_text *r, int n, const char *where_prefix, struct hba **out,
                   char *why, size_t whylen);

/* Reads what the rules' methods need from files (jwt keys and JWKS): at
 * each config load and reload, so a SIGHUP picks up rotated keys. 0, or
 * <0 with "where: reason" in why. */
int hba_prepare(struct hba *h, char *why, size_t whylen);

void hba_free(struct hba *h);

/* The first rule that matches, or NULL (then the client gets 28000 "no
 * pg_hba.conf entry ..."). peer is the client's address (IPv4 as an
 * IPv4-mapped IPv6 address, as struct cidr keeps it), ignored for local. */
const struct hba_rule *hba_match(const struct hba *h, bool local, bool tls, const uint8_t peer[16],
                                 const char *user, const char *database);

/* A rule's option value, or NULL when it has none of that name. */
const char *hba_opt(const struct hba_rule *r, const char *name);

const char *hba_method_str(enum hba_method m);
const char *hba_conn_str(enum hba_conn c);

/* PostgreSQL's text for a client with no matching rule:
 * no pg_hba.conf entry for host "ADDR", user "U", database "D", SSL on|off */
void hba_no_entry_msg(char *out, size_t outlen, const char *addr, const char *user,
                      const char *database, bool tls);

#endif
