/*
 * Statement classifier (see sqlc.h): libpg_query parses, protobuf-c unpacks,
 * and the tree, not the text, decides. The only text scanning here is the
 * cheap pre-check; it and the statement ranges, the length check and the
 * depth guard (shared with pipeline/analyze.c) come from sqlscan.c, following
 * PostgreSQL's lexer rules for whitespace and comments.
 */
#include "dataplane/sql/sqlc.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include "dataplane/sql/sqlscan.h"

#define CURSOR_OPT_HOLD 0x0020 /* parsenodes.h: DECLARE ... WITH HOLD */

/* ---- Lexical helpers (PostgreSQL scan.l rules) ---- */

static bool is_ident_char(unsigned char c)
{
	/* {ident_cont}: high-bit bytes are identifier characters */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || c >= 0x80;
}

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* True when s[0..n) starts with the lower-case word w, ignoring case. */
static bool has_prefix_ci(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w);
	if (n < wl)
		return false;
	for (size_t i = 0; i < wl; i++)
		if (lower((unsigned char)s[i]) != (unsigned char)w[i])
			return false;
	return true;
}

/* Same, and the word ends there (the next byte cannot continue an identifier). */
static bool has_word_ci(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w);
	return has_prefix_ci(s, n, w) && (n == wl || !is_ident_char((unsigned char)s[wl]));
}

/* ---- Pre-check ---- */

static const char *const start_words[] = {
    "set",      "reset",      "begin",   "start",  "commit",   "end",
    "rollback", "abort",      "discard", "listen", "unlisten", "prepare",
    "execute",  "deallocate", "declare", "close",  "create",
};

/* Does the statement that may start at pos begin with one of start_words? */
static bool start_is_interesting(const char *s, size_t len, size_t pos, size_t *budget)
{
	char w[12];
	size_t n = 0;

	pos = sqlscan_skip_blank(s, len, pos, true, budget);
	if (pos == SIZE_MAX)
		return *budget == 0; /* out of budget: say true, never false wrongly */
	/* Read the word once (longest keyword: 10 letters), then compare. */
	while (pos + n < len && n < sizeof(w) &&
	       ((s[pos + n] | 0x20) >= 'a' && (s[pos + n] | 0x20) <= 'z')) {
		w[n] = (char)(s[pos + n] | 0x20);
		n++;
	}
	if (n == 0 || n == sizeof(w) || (pos + n < len && is_ident_char((unsigned char)s[pos + n])))
		return false;
	for (size_t i = 0; i < sizeof(start_words) / sizeof(start_words[0]); i++)
		if (strlen(start_words[i]) == n && memcmp(start_words[i], w, n) == 0)
			return true;
	return false;
}

/* After an INTO ending at pos: does what follows make the target temporary? */
static bool into_is_temp(const char *s, size_t len, size_t pos, size_t *budget)
{
	static const char *const words[] = {"temp", "temporary", "local", "global", "table"};

	pos = sqlscan_skip_blank(s, len, pos, false, budget);
	if (pos == SIZE_MAX)
		return *budget == 0;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (has_word_ci(s + pos, len - pos, words[i]))
			return true;
	/* INTO pg_temp.t, INTO pg_temp_3.t, INTO "pg_temp".t */
	return has_prefix_ci(s + pos, len - pos, "pg_temp") ||
	       has_prefix_ci(s + pos, len - pos, "\"pg_temp");
}

/* The bytes the scan below stops at. */
static const bool hot[256] = {
    [';'] = true, ['v'] = true, ['V'] = true, ['_'] = true,
    ['&'] = true, ['o'] = true, ['O'] = true,
};

bool sqlc_maybe_interesting(const char *sql, size_t len)
{
	/* Look-aheads may re-read bytes (a ';' inside a comment starts one);
	 * past this budget we answer true rather than go quadratic. */
	size_t budget = 4 * len + 64;

	if (start_is_interesting(sql, len, 0, &budget))
		return true;
	/* Each needle is keyed on a byte that is rare in ordinary SQL, so the
	 * loop mostly just steps: "advisory" on 'v', "set_config" on '_',
	 * U&"..." (which can spell any identifier) on '&', INTO on 'o'. */
	for (size_t i = 0; i < len; i++) {
		while (i < len && !hot[(unsigned char)sql[i]])
			i++;
		if (i == len)
			break;
		switch (sql[i]) {
		case ';':
			/* Every ';' may end a statement; one inside a literal or a
			 * comment only costs a false "true". */
			if (start_is_interesting(sql, len, i + 1, &budget))
				return true;
			break;
		case 'v':
		case 'V':
			if (i >= 2 && has_prefix_ci(sql + i - 2, len - i + 2, "advisory"))
				return true;
			break;
		case '_':
			if (i >= 3 && has_prefix_ci(sql + i - 3, len - i + 3, "set_config"))
				return true;
			break;
		case '&':
			if (i >= 1 && (sql[i - 1] | 0x20) == 'u')
				return true;
			break;
		case 'o':
		case 'O':
			if (i >= 3 && has_prefix_ci(sql + i - 3, 4, "into") &&
			    into_is_temp(sql, len, i + 1, &budget))
				return true;
			break;
		default:
			break;
		}
	}
	return false;
}

/* ---- Names ---- */

static void set_name(struct sqlc_stmt *st, const char *src, bool fold)
{
	size_t i = 0;
	if (!src)
		src = "";
	for (; src[i] && i < sizeof(st->name) - 1; i++)
		st->name[i] = fold ? (char)lower((unsigned char)src[i]) : src[i];
	st->name[i] = '\0';
	st->name_incomplete = src[i] != '\0';
}

static const char *node_str(const PgQuery__Node *n)
{
	if (n && n->node_case == PG_QUERY__NODE__NODE_STRING && n->string)
		return n->string->sval;
	return NULL;
}

/* ---- Function calls anywhere in the tree ---- */

struct func_flag {
	const char *name;
	unsigned flag;
};

static const struct func_flag funcs[] = {
    {"pg_advisory_lock", SQLC_F_ADVISORY_LOCK},
    {"pg_advisory_lock_shared", SQLC_F_ADVISORY_LOCK},
    {"pg_try_advisory_lock", SQLC_F_ADVISORY_LOCK},
    {"pg_try_advisory_lock_shared", SQLC_F_ADVISORY_LOCK},
    {"pg_advisory_unlock", SQLC_F_ADVISORY_UNLOCK},
    {"pg_advisory_unlock_shared", SQLC_F_ADVISORY_UNLOCK},
    {"pg_advisory_unlock_all", SQLC_F_ADVISORY_UNLOCK_ALL},
    {"set_config", SQLC_F_SET_CONFIG},
};

static unsigned func_call_flags(const PgQuery__FuncCall *fc)
{
	if (!fc || fc->n_funcname == 0)
		return 0;
	/* The last name part is the function; the schema does not matter, as a
	 * shadowing user function is as likely to take the lock. */
	const char *name = node_str(fc->funcname[fc->n_funcname - 1]);
	if (!name)
		return 0;
	for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++) {
		if (strcmp(name, funcs[i].name) != 0)
			continue;
		if (funcs[i].flag == SQLC_F_SET_CONFIG && fc->n_args == 3) {
			/* set_config(..., true) is transaction-scoped: harmless. */
			const PgQuery__Node *l = fc->args[2];
			if (l && l->node_case == PG_QUERY__NODE__NODE_A_CONST && l->a_const &&
			    l->a_const->val_case == PG_QUERY__A__CONST__VAL_BOOLVAL &&
			    l->a_const->boolval && l->a_const->boolval->boolval)
				return 0;
		}
		return funcs[i].flag;
	}
	return 0;
}

/*
 * ORs into *flags the SQLC_F_* of every FuncCall under m. Generic over the
 * protobuf-c descriptors, so no node type can hide a call. Recursion depth is
 * the tree depth, bounded by sqlscan_tree_depth_ok() before unpacking.
 */
static void walk_calls(const ProtobufCMessage *m, unsigned *flags)
{
	if (!m)
		return;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	if (d == &pg_query__node__descriptor) {
		/* Node is a oneof of ~250 types: go straight to the set member. */
		const PgQuery__Node *n = (const PgQuery__Node *)m;
		if (n->node_case == PG_QUERY__NODE__NODE__NOT_SET)
			return;
		if (n->node_case == PG_QUERY__NODE__NODE_FUNC_CALL)
			*flags |= func_call_flags(n->func_call);
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field(d, (unsigned)n->node_case);
		if (f && f->type == PROTOBUF_C_TYPE_MESSAGE)
			walk_calls(*(ProtobufCMessage *const *)(base + f->offset), flags);
		return;
	}
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t cnt = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *v =
			    *(ProtobufCMessage *const *const *)(base + f->offset);
			for (size_t j = 0; j < cnt; j++)
				walk_calls(v[j], flags);
		} else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(base + f->quantifier_offset) == f->id)
				walk_calls(*(ProtobufCMessage *const *)(base + f->offset), flags);
		} else {
			walk_calls(*(ProtobufCMessage *const *)(base + f->offset), flags);
		}
	}
}

/* ---- Statement classification ---- */

static bool is_temp_schema(const char *s)
{
	/* pg_temp is the session's temp schema; pg_temp_N names it explicitly */
	return s && strncmp(s, "pg_temp", 7) == 0 && (s[7] == '\0' || s[7] == '_');
}

static bool rangevar_is_temp(const PgQuery__RangeVar *rv)
{
	return rv && ((rv->relpersistence && strcmp(rv->relpersistence, "t") == 0) ||
	              is_temp_schema(rv->schemaname));
}

static void temp_rel(struct sqlc_stmt *st, const PgQuery__RangeVar *rv)
{
	if (rangevar_is_temp(rv)) {
		st->kind = SQLC_CREATE_TEMP;
		set_name(st, rv->relname, false);
	}
}

static void classify_set(struct sqlc_stmt *st, const PgQuery__VariableSetStmt *v)
{
	set_name(st, v->name, true);
	if (v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL) {
		st->kind = SQLC_RESET_ALL;
		return;
	}
	if (v->is_local) {
		st->kind = SQLC_SET_LOCAL;
		return;
	}
	if (strcmp(st->name, "role") == 0 || strcmp(st->name, "session_authorization") == 0) {
		st->kind = SQLC_SESSION_AUTH;
		return;
	}
	if (v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI &&
	    strcmp(st->name, "session characteristics") == 0) {
		/* Sets default_transaction_<each item>: one item gives a real
		 * GUC name the pool can key on and RESET; several do not. */
		const PgQuery__Node *a = v->n_args == 1 ? v->args[0] : NULL;
		st->kind = SQLC_SET;
		if (a && a->node_case == PG_QUERY__NODE__NODE_DEF_ELEM && a->def_elem->defname) {
			char buf[SQLC_NAME_MAX];
			snprintf(buf, sizeof(buf), "default_%s", a->def_elem->defname);
			set_name(st, buf, true);
		} else {
			st->name_incomplete = true;
		}
		return;
	}
	/* These are reset when each transaction starts, so a plain SET of
	 * them is as transaction-scoped as SET LOCAL. */
	bool xact = strcmp(st->name, "transaction") == 0 ||
	            strcmp(st->name, "transaction snapshot") == 0 ||
	            strcmp(st->name, "transaction_isolation") == 0 ||
	            strcmp(st->name, "transaction_read_only") == 0 ||
	            strcmp(st->name, "transaction_deferrable") == 0;
	switch (v->kind) {
	case PG_QUERY__VARIABLE_SET_KIND__VAR_RESET:
		st->kind = SQLC_RESET;
		break;
	case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_DEFAULT:
		st->kind = xact ? SQLC_SET_LOCAL : SQLC_SET_DEFAULT;
		break;
	default: /* VALUE, CURRENT, MULTI (SET TRANSACTION ...) */
		st->kind = xact ? SQLC_SET_LOCAL : SQLC_SET;
		break;
	}
}

static void classify_xact(struct sqlc_stmt *st, const PgQuery__TransactionStmt *t)
{
	switch (t->kind) {
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
		st->kind = SQLC_BEGIN;
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
		st->kind = SQLC_COMMIT;
		st->chain = t->chain;
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK:
		st->kind = SQLC_ROLLBACK;
		st->chain = t->chain;
		break;
	case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE:
		/* Ends the transaction on this connection, as COMMIT does. */
		st->kind = SQLC_COMMIT;
		set_name(st, t->gid, false);
		break;
	default: /* SAVEPOINT, RELEASE, ROLLBACK TO: the transaction goes on */
		break;
	}
}

static void classify_stmt(struct sqlc_stmt *st, const PgQuery__Node *n)
{
	if (!n)
		return;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
		classify_set(st, n->variable_set_stmt);
		break;
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		classify_xact(st, n->transaction_stmt);
		break;
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
		switch (n->discard_stmt->target) {
		case PG_QUERY__DISCARD_MODE__DISCARD_ALL:
			st->kind = SQLC_DISCARD_ALL;
			break;
		case PG_QUERY__DISCARD_MODE__DISCARD_TEMP:
			st->kind = SQLC_DISCARD_TEMP;
			break;
		case PG_QUERY__DISCARD_MODE__DISCARD_PLANS:
			st->kind = SQLC_DISCARD_PLANS;
			break;
		case PG_QUERY__DISCARD_MODE__DISCARD_SEQUENCES:
			st->kind = SQLC_DISCARD_SEQUENCES;
			break;
		default:
			break;
		}
		break;
	case PG_QUERY__NODE__NODE_LISTEN_STMT:
		st->kind = SQLC_LISTEN;
		set_name(st, n->listen_stmt->conditionname, false);
		break;
	case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
		/* UNLISTEN * leaves the name unset; "" cannot be an identifier */
		set_name(st, n->unlisten_stmt->conditionname, false);
		st->kind = st->name[0] ? SQLC_UNLISTEN : SQLC_UNLISTEN_ALL;
		break;
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		st->kind = SQLC_PREPARE;
		set_name(st, n->prepare_stmt->name, false);
		break;
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
		st->kind = SQLC_EXECUTE;
		set_name(st, n->execute_stmt->name, false);
		break;
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
		set_name(st, n->deallocate_stmt->name, false);
		st->kind = st->name[0] ? SQLC_DEALLOCATE : SQLC_DEALLOCATE_ALL;
		break;
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
		/* Without HOLD the cursor dies with the transaction: nothing to track. */
		if (n->declare_cursor_stmt->options & CURSOR_OPT_HOLD) {
			st->kind = SQLC_DECLARE_HOLD;
			st->with_hold = true;
			set_name(st, n->declare_cursor_stmt->portalname, false);
		}
		break;
	case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
		set_name(st, n->close_portal_stmt->portalname, false);
		st->kind = st->name[0] ? SQLC_CLOSE_CURSOR : SQLC_CLOSE_ALL;
		break;
	case PG_QUERY__NODE__NODE_CREATE_STMT:
		temp_rel(st, n->create_stmt->relation);
		break;
	case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
		if (n->create_table_as_stmt->into)
			temp_rel(st, n->create_table_as_stmt->into->rel);
		break;
	case PG_QUERY__NODE__NODE_VIEW_STMT:
		temp_rel(st, n->view_stmt->view);
		break;
	case PG_QUERY__NODE__NODE_CREATE_SEQ_STMT:
		temp_rel(st, n->create_seq_stmt->sequence);
		break;
	case PG_QUERY__NODE__NODE_SELECT_STMT: {
		/* In "SELECT ... INTO TEMP t UNION ...", INTO sits on the
		 * leftmost branch. */
		const PgQuery__SelectStmt *s = n->select_stmt;
		while (s && s->op != PG_QUERY__SET_OPERATION__SETOP_NONE && s->larg)
			s = s->larg;
		if (s && s->into_clause)
			temp_rel(st, s->into_clause->rel);
		break;
	}
	case PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT: {
		const PgQuery__CreateFunctionStmt *f = n->create_function_stmt;
		if (f->n_funcname >= 2 &&
		    is_temp_schema(node_str(f->funcname[f->n_funcname - 2]))) {
			st->kind = SQLC_CREATE_TEMP;
			set_name(st, node_str(f->funcname[f->n_funcname - 1]), false);
		}
		break;
	}
	default:
		break;
	}
	if (st->kind == SQLC_OTHER) { /* a name only means something with a kind */
		st->name[0] = '\0';
		st->name_incomplete = false;
	}
}

/* ---- Entry point ---- */

int sqlc_classify(const char *sql, struct sqlc_result *out)
{
	if (!sql || !out)
		return -EINVAL;
	out->n = 0;
	out->more_stmts = false;
	out->parse_error = false;
	out->flags = 0;

	size_t total = strlen(sql);
	if (total > UINT32_MAX)
		return -E2BIG;
	if (total > SQLC_MAX_STMT_LEN) {
		bool lex_error = false;
		/* no bound on the count: past SQLC_MAX_STMTS only flags are kept */
		int rc = sqlscan_check_stmt_lengths(sql, total, INT_MAX, &lex_error);
		if (rc < 0)
			return rc;
		if (lex_error) {
			out->parse_error = true;
			return 0;
		}
	}

	PgQueryProtobufParseResult pr = pg_query_parse_protobuf(sql);
	PgQuery__ParseResult *tree = NULL;
	struct sqlscan_toks t = {0};
	int rc = 0;

	if (pr.error) {
		out->parse_error = true;
		goto out;
	}
	rc = sqlscan_tree_depth_ok((const uint8_t *)pr.parse_tree.data, pr.parse_tree.len);
	if (rc < 0)
		goto out;
	tree = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
	                                      (const uint8_t *)pr.parse_tree.data);
	if (!tree) {
		rc = -ENOMEM; /* the bytes came from libpg_query: only allocation fails */
		goto out;
	}
	for (size_t i = 0; i < tree->n_stmts; i++) {
		const PgQuery__RawStmt *rs = tree->stmts[i];
		unsigned flags = 0;
		walk_calls(&rs->base, &flags);
		out->flags |= flags;
		if (out->n == SQLC_MAX_STMTS) {
			out->more_stmts = true;
			continue; /* keep ORing flags */
		}
		struct sqlc_stmt *st = &out->stmts[out->n++];
		memset(st, 0, sizeof(*st));
		st->flags = flags;
		classify_stmt(st, rs->stmt);
		sqlscan_stmt_range(sql, total, &t, rs, &st->loc, &st->len);
	}
out:
	if (rc < 0)
		out->n = 0;
	sqlscan_toks_free(&t);
	if (tree)
		pg_query__parse_result__free_unpacked(tree, NULL);
	pg_query_free_protobuf_parse_result(pr);
	return rc;
}

const char *sqlc_kind_str(enum sqlc_kind kind)
{
	static const char *const names[] = {
	    [SQLC_OTHER] = "other",
	    [SQLC_SET] = "set",
	    [SQLC_SET_LOCAL] = "set_local",
	    [SQLC_SET_DEFAULT] = "set_default",
	    [SQLC_RESET] = "reset",
	    [SQLC_RESET_ALL] = "reset_all",
	    [SQLC_BEGIN] = "begin",
	    [SQLC_COMMIT] = "commit",
	    [SQLC_ROLLBACK] = "rollback",
	    [SQLC_DISCARD_ALL] = "discard_all",
	    [SQLC_DISCARD_TEMP] = "discard_temp",
	    [SQLC_DISCARD_PLANS] = "discard_plans",
	    [SQLC_DISCARD_SEQUENCES] = "discard_sequences",
	    [SQLC_LISTEN] = "listen",
	    [SQLC_UNLISTEN] = "unlisten",
	    [SQLC_UNLISTEN_ALL] = "unlisten_all",
	    [SQLC_PREPARE] = "prepare",
	    [SQLC_EXECUTE] = "execute",
	    [SQLC_DEALLOCATE] = "deallocate",
	    [SQLC_DEALLOCATE_ALL] = "deallocate_all",
	    [SQLC_DECLARE_HOLD] = "declare_hold",
	    [SQLC_CLOSE_CURSOR] = "close_cursor",
	    [SQLC_CLOSE_ALL] = "close_all",
	    [SQLC_CREATE_TEMP] = "create_temp",
	    [SQLC_SESSION_AUTH] = "session_auth",
	};
	if ((unsigned)kind < sizeof(names) / sizeof(names[0]) && names[kind])
		return names[kind];
	return "?";
}
