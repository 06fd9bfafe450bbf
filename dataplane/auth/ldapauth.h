/*
 * LDAP authentication (pg_hba method "ldap") through libldap, kept off the
 * event loops: a check runs on ldapauth's own small thread pool (bounded
 * queue) and its result reaches the asking worker through its mailbox.
 *
 * Two modes, as PostgreSQL has them:
 *   - simple bind: bind as ldapprefix + user + ldapsuffix with the password;
 *   - search+bind: bind as ldapbinddn/ldapbindpasswd (anonymous when unset),
 *     search ldapbasedn (subtree) with ldapsearchfilter ($username replaced)
 *     or (ldapsearchattribute=user) (uid by default), exactly one entry
 *     must match, then bind as its DN with the password.
 * The user name is escaped (RFC 4515 in filters, RFC 4514 in DNs). An
 * empty password is refused before any bind (an LDAP bind with a DN and no
 * password is an unauthenticated bind that succeeds).
 * Several servers: each is tried in order while the previous one did not
 * answer (connect, TLS or timeout); an answer (even a refusal) ends it. A
 * server that failed in the last 30 s is tried after the others.
 * Outages are logged once per outage (first failure, then recovery), not
 * per login.
 */
#ifndef HELIOS_AUTH_LDAPAUTH_H
#define HELIOS_AUTH_LDAPAUTH_H

#include "dataplane/rt/worker.h"

#include <stdbool.h>
#include <stddef.h>

#define LDAP_SERVERS_MAX    8
#define LDAPAUTH_QUEUE_MAX  128
#define LDAPAUTH_THREADS    4
#define LDAPAUTH_TIMEOUT_MS 5000 /* default per server and operation */

/* The options of one hba rule (PostgreSQL's names; strings owned,
 * NULL when unset). Fill with ldap_opts_set, then ldap_opts_finish. */
struct ldap_opts {
	char *servers[LDAP_SERVERS_MAX]; /* ldapserver: host names or addresses */
	int n_servers;
	int port;              /* ldapport; 0: 389 (ldap) or 636 (ldaps) */
	bool ldaps;            /* ldapscheme=ldaps */
	bool starttls;         /* ldaptls=1 */
	char *prefix;          /* ldapprefix */
	char *suffix;          /* ldapsuffix */
	char *basedn;          /* ldapbasedn: set means search+bind */
	char *binddn;          /* ldapbinddn */
	char *bindpasswd;      /* ldapbindpasswd (a secret: never logged) */
	char *searchattribute; /* ldapsearchattribute */
	char *searchfilter;    /* ldapsearchfilter, with $username */
	int timeout_ms;        /* ldaptimeout (seconds in the option text);
	                          0: LDAPAUTH_TIMEOUT_MS */
	char *cafile;          /* ldapcafile: CA bundle for ldaps/StartTLS;
	                          NULL: the system's */
};

/*
 * Sets one option given as name and value (a pg_hba line's name=value).
 * Names: ldapserver (several, separated by spaces or commas), ldapport,
 * ldapscheme (ldap|ldaps), ldaptls (0|1), ldapprefix, ldapsuffix,
 * ldapbasedn, ldapbinddn, ldapbindpasswd, ldapsearchattribute,
 * ldapsearchfilter, ldaptimeout (seconds, 1..300), ldapcafile.
 * Returns 0, -ENOENT for a name that is not an LDAP option, -EINVAL for a
 * bad value; err gets a message naming the option ("ldapport: ...").
 */
int ldap_opts_set(struct ldap_opts *o, const char *name, const char *value, char *err,
                  size_t errlen);
/* Same from one "name=value" text. */
int ldap_opts_set_pair(struct ldap_opts *o, const char *pair, char *err, size_t errlen);
/*
 * Checks the combination once every option is set (ldapserver required;
 * prefix/suffix and basedn not mixed; searchattribute and searchfilter not
 * both; ldaps and ldaptls not both; binddn etc. only with basedn).
 * Returns 0 or -EINVAL with err naming the option(s).
 */
int ldap_opts_finish(struct ldap_opts *o, char *err, size_t errlen);
void ldap_opts_free(struct ldap_opts *o);
/* Deep copy (dst is overwritten). Returns 0 or -ENOMEM. */
int ldap_opts_copy(struct ldap_opts *dst, const struct ldap_opts *src);

/*
 * done(w, arg, result, why) runs on w's thread: result 0 (password right),
 * -EACCES (wrong password, unknown user, more than one entry, search bind
 * refused), -EHOSTUNREACH (no server answered: connect, TLS handshake or
 * timeout on every one). why: a reason for the log (never the password),
 * valid during the call only.
 */
typedef void ldapauth_done_fn(struct worker *w, void *arg, int result, const char *why);

struct ldapauth_req;

/*
 * Queues a check; call on w's thread. The options are copied (a reload may
 * free o at once). done is always called later, never from inside this
 * call, unless ldapauth_cancel is called first. *req (may be NULL) gets a
 * handle for ldapauth_cancel, valid until done runs.
 * Returns 0, -EAGAIN when LDAPAUTH_QUEUE_MAX checks wait, -ENOMEM.
 */
__attribute__((warn_unused_result)) int ldapauth_start(const struct ldap_opts *o, const char *user,
                                                       const char *password, struct worker *w,
                                                       ldapauth_done_fn *done, void *arg,
                                                       struct ldapauth_req **req);

/* On w's thread, before done ran (e.g. the client went away): done will not
 * be called; a check still queued is dropped without asking a server, one
 * already running runs to its end. */
void ldapauth_cancel(struct ldapauth_req *req);

/* Stops the pool's threads (waits for the checks in progress: at most the
 * timeouts of one check each). Checks still queued are answered
 * -EHOSTUNREACH ("shutting down"). For tests and a clean exit. */
/* (after it, ldapauth_start returns -ESHUTDOWN) */
void ldapauth_shutdown(void);

#endif
