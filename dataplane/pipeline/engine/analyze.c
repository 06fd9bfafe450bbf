/*
 * Statement analysis (see analyze.h). Same approach as dataplane/sql/sqlc.c:
 * libpg_query parses, protobuf-c unpacks, the tree decides, and the same
 * length and depth bounds keep the parser and unpacker within a worker's
 * stack. Statement ranges and both bounds come from dataplane/sql/sqlscan.h,
 * shared with sqlc.c, so the two report ranges and refuse text alike.
 */
#include "dataplane/pipeline/engine/analyze.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include "dataplane/sql/sqlc.h" /* SQLC_MAX_STMT_LEN */
#include "dataplane/sql/sqlscan.h"

/* ---- libpg_query errors ---- */

/* libpg_query turns a failed palloc into an ordinary error result. */
static bool is_oom(const PgQueryError *e)
{
	return e && e->message && strcmp(e->message, "out of memory") == 0;
}

/* ---- Functions ---- */

static const char *node_str(const PgQuery__Node *n)
{
	if (n && n->node_case == PG_QUERY__NODE__NODE_STRING && n->string)
		return n->string->sval;
	return NULL;
}

/*
 * Built-ins whose every overload has provolatile 'i' in pg_proc, so a call
 * with the same arguments always gives the same answer. Kept short on
 * purpose: concat, format, to_char, date_trunc, extract, age, array_to_string
 * and the json builders are STABLE (output functions or the time zone), and
 * generate_series has a STABLE timestamptz overload; anything not listed
 * counts as not immutable.
 */
static const char *const immutable_funcs[] = {
    "abs",
    "array_agg",
    "array_length",
    "ascii",
    "avg",
    "bool_and",
    "bool_or",
    "btrim",
    "cardinality",
    "ceil",
    "ceiling",
    "char_length",
    "character_length",
    "chr",
    "count",
    "decode",
    "dense_rank",
    "encode",
    "exp",
    "floor",
    "initcap",
    "left",
    "length",
    "ln",
    "log",
    "lower",
    "lpad",
    "ltrim",
    "max",
    "md5",
    "min",
    "mod",
    "octet_length",
    "overlay",
    "position",
    "power",
    "quote_ident",
    "rank",
    "regexp_match",
    "regexp_replace",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "row_number",
    "rpad",
    "rtrim",
    "sign",
    "split_part",
    "sqrt",
    "starts_with",
    "string_agg",
    "strpos",
    "substr",
    "substring",
    "sum",
    "translate",
    "trunc",
    "unnest",
    "upper",
};

/*
 * Functions that write, take locks, or depend on state only the primary
 * session has (currval/lastval after nextval, set_config): a statement
 * calling one must go to the primary. Matched on the name whatever the
 * schema, as sqlc does. Not exhaustive: a user function may write too, and
 * is only known as volatile.
 */
static const char *const writing_funcs[] = {
    "nextval",
    "setval",
    "currval",
    "lastval",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    "set_config",
    "pg_notify",
    "txid_current",
    "pg_current_xact_id",
    "lo_create",
    "lo_creat",
    "lo_import",
    "lo_export",
    "lo_unlink",
    "lo_put",
    "lo_from_bytea",
    "lowrite",
    "lo_truncate",
    "lo_truncate64",
    "pg_logical_emit_message",
    "pg_create_restore_point",
    "pg_switch_wal",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_cancel_backend",
    "pg_terminate_backend",
    "pg_stat_reset",
    "pg_stat_reset_shared",
    "pg_stat_reset_single_table_counters",
    "pg_stat_reset_single_function_counters",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_drop_replication_slot",
    "pg_replication_slot_advance",
    "pg_logical_slot_get_changes",
    "pg_logical_slot_get_binary_changes",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_start_backup",
    "pg_stop_backup",
};

static bool in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

#define IN_LIST(name, list) in_list(name, list, sizeof(list) / sizeof(list[0]))

/* ---- Tree walk ---- */

/* Scope flags passed down the walk. */
#define S_RUNS 1u /* the statement executes this part now (not EXPLAIN, PREPARE) */
#define S_DDL  2u /* relations named here are changed by DDL (outside any query) */

/* CTE names in scope at once; deeper nesting is too complex. */
#define MAX_CTES 256

struct walk {
	struct an_result *out;
	const char *ctes[MAX_CTES];
	unsigned n_ctes;
	bool writes; /* the current statement writes, locks or needs the primary */
	bool too_complex;
};

static void walk_msg(struct walk *w, const ProtobufCMessage *m, unsigned sc);

static bool is_set(const char *s)
{
	return s && *s;
}

static void add_table(struct walk *w, const char *schema, const char *name, bool written)
{
	struct an_result *r = w->out;

	if (!is_set(name))
		return;
	if (!schema)
		schema = "";
	size_t sl = strlen(schema), nl = strlen(name);
	if (sl >= sizeof(r->tables[0].schema) || nl >= sizeof(r->tables[0].name)) {
		r->tables_truncated = true; /* the parser truncates to 63: not expected */
		return;
	}
	for (uint32_t i = 0; i < r->n_tables; i++) {
		struct an_table *t = &r->tables[i];
		if (strcmp(t->name, name) == 0 && strcmp(t->schema, schema) == 0) {
			t->written |= written;
			return;
		}
	}
	if (r->n_tables == AN_MAX_TABLES) {
		r->tables_truncated = true;
		return;
	}
	struct an_table *t = &r->tables[r->n_tables++];
	memcpy(t->schema, schema, sl + 1);
	memcpy(t->name, name, nl + 1);
	t->written = written;
}

static void add_func(struct walk *w, const char *schema, const char *name, bool is_op)
{
	struct an_result *r = w->out;

	if (!schema)
		schema = "";
	size_t sl = strlen(schema), nl = strlen(name);
	if (sl >= sizeof(r->funcs[0].schema) || nl >= sizeof(r->funcs[0].name)) {
		r->funcs_truncated = true;
		return;
	}
	for (uint32_t i = 0; i < r->n_funcs; i++) {
		const struct an_func *f = &r->funcs[i];
		if (f->is_op == is_op && strcmp(f->name, name) == 0 &&
		    strcmp(f->schema, schema) == 0)
			return;
	}
	if (r->n_funcs == AN_MAX_FUNCS) {
		r->funcs_truncated = true;
		return;
	}
	struct an_func *f = &r->funcs[r->n_funcs++];
	memcpy(f->schema, schema, sl + 1);
	memcpy(f->name, name, nl + 1);
	f->is_op = is_op;
}

/* An operator expression: its (possibly qualified) operator name. */
static void op_name(struct walk *w, PgQuery__Node *const *names, size_t n)
{
	const char *name = n ? node_str(names[n - 1]) : NULL;
	const char *schema = n >= 2 ? node_str(names[n - 2]) : NULL;
	if (!name) {
		w->out->volatile_funcs = w->out->volatile_other = true;
		return;
	}
	add_func(w, schema, name, true);
}

static bool is_cte(const struct walk *w, const PgQuery__RangeVar *rv)
{
	if (is_set(rv->schemaname) || is_set(rv->catalogname))
		return false;
	for (unsigned i = w->n_ctes; i-- > 0;)
		if (strcmp(w->ctes[i], rv->relname) == 0)
			return true;
	return false;
}

static void range_var(struct walk *w, const PgQuery__RangeVar *rv, unsigned sc)
{
	/* A DML target is added by walk_dml, before CTE names are consulted:
	 * INSERT INTO x always means the table x. */
	if (rv && !is_cte(w, rv))
		add_table(w, rv->schemaname, rv->relname, (sc & S_RUNS) && (sc & S_DDL));
}

static void push_cte(struct walk *w, const PgQuery__Node *n)
{
	if (!n || n->node_case != PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR ||
	    !is_set(n->common_table_expr->ctename))
		return;
	if (w->n_ctes == MAX_CTES) {
		w->too_complex = true;
		return;
	}
	w->ctes[w->n_ctes++] = n->common_table_expr->ctename;
}

/* Walks a WITH clause and leaves its names in scope (the caller restores
 * n_ctes). A non-recursive CTE sees only the ones before it, so in
 * "WITH t AS (SELECT * FROM t)" the inner t is the table. */
static void walk_with(struct walk *w, const PgQuery__WithClause *with, unsigned sc)
{
	if (!with)
		return;
	if (with->recursive)
		for (size_t i = 0; i < with->n_ctes; i++)
			push_cte(w, with->ctes[i]);
	for (size_t i = 0; i < with->n_ctes; i++) {
		walk_msg(w, (const ProtobufCMessage *)with->ctes[i], sc);
		if (!with->recursive)
			push_cte(w, with->ctes[i]);
	}
}

/* Walks every message field of m except those at the given offsets (0: none;
 * offset 0 is the ProtobufCMessage header, never a field). */
static void walk_fields(struct walk *w, const ProtobufCMessage *m, unsigned sc, size_t skip1,
                        size_t skip2, size_t skip3)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->offset == skip1 ||
		    f->offset == skip2 || f->offset == skip3)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t cnt = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *v =
			    *(ProtobufCMessage *const *const *)(base + f->offset);
			for (size_t j = 0; j < cnt; j++)
				walk_msg(w, v[j], sc);
		} else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(base + f->quantifier_offset) == f->id)
				walk_msg(w, *(ProtobufCMessage *const *)(base + f->offset), sc);
		} else {
			walk_msg(w, *(ProtobufCMessage *const *)(base + f->offset), sc);
		}
	}
}

static void walk_select(struct walk *w, const PgQuery__SelectStmt *s, unsigned sc)
{
	unsigned saved = w->n_ctes;

	sc &= ~S_DDL; /* a query reads; only its INTO and DML targets are written */
	if (sc & S_RUNS) {
		/* FOR UPDATE/SHARE locks rows (and fails on a standby); SELECT
		 * INTO creates a table. */
		if (s->n_locking_clause || s->into_clause)
			w->writes = true;
	}
	if (s->into_clause && s->into_clause->rel)
		add_table(w, s->into_clause->rel->schemaname, s->into_clause->rel->relname,
		          sc & S_RUNS);
	walk_with(w, s->with_clause, sc);
	/* locking_clause names FROM items (FOR UPDATE OF alias), not tables */
	walk_fields(w, &s->base, sc, offsetof(PgQuery__SelectStmt, with_clause),
	            offsetof(PgQuery__SelectStmt, into_clause),
	            offsetof(PgQuery__SelectStmt, locking_clause));
	w->n_ctes = saved;
}

static void walk_dml(struct walk *w, const ProtobufCMessage *m, const PgQuery__RangeVar *rel,
                     size_t rel_off, const PgQuery__WithClause *with, size_t with_off, unsigned sc)
{
	unsigned saved = w->n_ctes;

	sc &= ~S_DDL;
	if (sc & S_RUNS)
		w->writes = true;
	if (rel)
		add_table(w, rel->schemaname, rel->relname, sc & S_RUNS);
	walk_with(w, with, sc);
	walk_fields(w, m, sc, rel_off, with_off, 0);
	w->n_ctes = saved;
}

static void func_call(struct walk *w, const PgQuery__FuncCall *fc, unsigned sc)
{
	if (fc->n_funcname == 0) {
		w->out->volatile_funcs = w->out->volatile_other = true;
		return;
	}
	const char *name = node_str(fc->funcname[fc->n_funcname - 1]);
	const char *schema =
	    fc->n_funcname >= 2 ? node_str(fc->funcname[fc->n_funcname - 2]) : NULL;
	if (!name) {
		w->out->volatile_funcs = w->out->volatile_other = true;
		return;
	}
	add_func(w, schema, name, false);
	if ((sc & S_RUNS) && IN_LIST(name, writing_funcs))
		w->writes = true;
	/* An unqualified name finds pg_catalog first unless search_path says
	 * otherwise; any other schema is a user function of unknown volatility. */
	bool builtin = fc->n_funcname == 1 ||
	               (fc->n_funcname == 2 && schema && strcmp(schema, "pg_catalog") == 0);
	if (!builtin || !IN_LIST(name, immutable_funcs))
		w->out->volatile_funcs = true;
}

/*
 * Walks everything under m (recursion depth is the tree depth, bounded by
 * sqlscan_tree_depth_ok() before unpacking): tables, function calls, effects.
 * Generic over the protobuf-c descriptors, so no node type can hide a table or
 * call.
 */
static void walk_msg(struct walk *w, const ProtobufCMessage *m, unsigned sc)
{
	if (!m)
		return;
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (d == &pg_query__node__descriptor) {
		/* Node is a oneof of ~250 types: go straight to the set member. */
		const PgQuery__Node *n = (const PgQuery__Node *)m;
		if (n->node_case == PG_QUERY__NODE__NODE__NOT_SET)
			return;
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field(d, (unsigned)n->node_case);
		if (f && f->type == PROTOBUF_C_TYPE_MESSAGE)
			walk_msg(w, *(ProtobufCMessage *const *)((const char *)m + f->offset), sc);
		return;
	}
	if (d == &pg_query__range_var__descriptor) {
		range_var(w, (const PgQuery__RangeVar *)m, sc);
		return; /* only its alias is below */
	}
	if (d == &pg_query__select_stmt__descriptor) {
		walk_select(w, (const PgQuery__SelectStmt *)m, sc);
		return;
	}
	if (d == &pg_query__insert_stmt__descriptor) {
		const PgQuery__InsertStmt *s = (const PgQuery__InsertStmt *)m;
		walk_dml(w, m, s->relation, offsetof(PgQuery__InsertStmt, relation), s->with_clause,
		         offsetof(PgQuery__InsertStmt, with_clause), sc);
		return;
	}
	if (d == &pg_query__update_stmt__descriptor) {
		const PgQuery__UpdateStmt *s = (const PgQuery__UpdateStmt *)m;
		walk_dml(w, m, s->relation, offsetof(PgQuery__UpdateStmt, relation), s->with_clause,
		         offsetof(PgQuery__UpdateStmt, with_clause), sc);
		return;
	}
	if (d == &pg_query__delete_stmt__descriptor) {
		const PgQuery__DeleteStmt *s = (const PgQuery__DeleteStmt *)m;
		walk_dml(w, m, s->relation, offsetof(PgQuery__DeleteStmt, relation), s->with_clause,
		         offsetof(PgQuery__DeleteStmt, with_clause), sc);
		return;
	}
	if (d == &pg_query__merge_stmt__descriptor) {
		const PgQuery__MergeStmt *s = (const PgQuery__MergeStmt *)m;
		walk_dml(w, m, s->relation, offsetof(PgQuery__MergeStmt, relation), s->with_clause,
		         offsetof(PgQuery__MergeStmt, with_clause), sc);
		return;
	}
	if (d == &pg_query__func_call__descriptor)
		func_call(w, (const PgQuery__FuncCall *)m, sc);
	else if (d == &pg_query__a__expr__descriptor)
		op_name(w, ((const PgQuery__AExpr *)m)->name, ((const PgQuery__AExpr *)m)->n_name);
	else if (d == &pg_query__sqlvalue_function__descriptor)
		w->out->volatile_funcs = w->out->volatile_other =
		    true; /* CURRENT_TIMESTAMP, CURRENT_USER, ... */
	else if (d == &pg_query__range_table_sample__descriptor &&
	         !((const PgQuery__RangeTableSample *)m)->repeatable)
		w->out->volatile_funcs = w->out->volatile_other = true; /* a different sample */
	walk_fields(w, m, sc, 0, 0, 0);
}

/* ---- Statements ---- */

static void drop_objects(struct walk *w, const PgQuery__DropStmt *d)
{
	switch (d->remove_type) {
	case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
	case PG_QUERY__OBJECT_TYPE__OBJECT_VIEW:
	case PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW:
	case PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE:
		break;
	default:
		return;
	}
	/* Each object is a list of name parts: [[catalog.]schema.]name. */
	for (size_t i = 0; i < d->n_objects; i++) {
		const PgQuery__Node *o = d->objects[i];
		if (!o || o->node_case != PG_QUERY__NODE__NODE_LIST || !o->list->n_items)
			continue;
		const PgQuery__List *l = o->list;
		const char *name = node_str(l->items[l->n_items - 1]);
		const char *schema = l->n_items >= 2 ? node_str(l->items[l->n_items - 2]) : "";
		add_table(w, schema, name, true);
	}
}

/* EXPLAIN runs the statement only with ANALYZE, which is on unless its value
 * is clearly false (as PostgreSQL's parse_bool reads it). */
static bool explain_analyzes(const PgQuery__ExplainStmt *e)
{
	bool on = false;
	for (size_t i = 0; i < e->n_options; i++) {
		const PgQuery__Node *o = e->options[i];
		if (!o || o->node_case != PG_QUERY__NODE__NODE_DEF_ELEM ||
		    !is_set(o->def_elem->defname) || strcmp(o->def_elem->defname, "analyze") != 0)
			continue;
		const PgQuery__Node *a = o->def_elem->arg;
		on = true;
		if (a && a->node_case == PG_QUERY__NODE__NODE_INTEGER)
			on = a->integer->ival != 0;
		else if (a && a->node_case == PG_QUERY__NODE__NODE_BOOLEAN)
			on = a->boolean->boolval;
		else if (a && a->node_case == PG_QUERY__NODE__NODE_STRING && a->string->sval) {
			const char *v = a->string->sval;
			size_t n = strlen(v);
			on = !(n && ((n <= 5 && strncasecmp(v, "false", n) == 0) ||
			             (n <= 2 && strncasecmp(v, "no", n) == 0) ||
			             strcasecmp(v, "off") == 0 || strcasecmp(v, "of") == 0 ||
			             strcmp(v, "0") == 0));
		}
	}
	return on;
}

static void begin_mode(struct an_stmt *st, const PgQuery__TransactionStmt *t)
{
	if (t->kind != PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN &&
	    t->kind != PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START)
		return;
	/* READ ONLY / READ WRITE is DefElem transaction_read_only = 1 / 0; the
	 * last one given wins, as in PostgreSQL. */
	for (size_t i = 0; i < t->n_options; i++) {
		const PgQuery__Node *o = t->options[i];
		if (!o || o->node_case != PG_QUERY__NODE__NODE_DEF_ELEM ||
		    !is_set(o->def_elem->defname) ||
		    strcmp(o->def_elem->defname, "transaction_read_only") != 0)
			continue;
		const PgQuery__Node *a = o->def_elem->arg;
		if (!a || a->node_case != PG_QUERY__NODE__NODE_A_CONST ||
		    a->a_const->val_case != PG_QUERY__A__CONST__VAL_IVAL)
			continue;
		bool ro = a->a_const->ival->ival != 0;
		st->begin_read_only = ro;
		st->begin_read_write = !ro;
	}
}

/* Kind of one statement; walks it for tables and functions on the way. */
static enum an_kind stmt_kind(struct walk *w, const PgQuery__Node *n, unsigned sc,
                              struct an_stmt *st)
{
	const ProtobufCMessage *m = (const ProtobufCMessage *)n;

	if (!n)
		return AN_READ;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		walk_msg(w, m, sc);
		return w->writes ? AN_WRITE : AN_READ;
	case PG_QUERY__NODE__NODE_INSERT_STMT:
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
	case PG_QUERY__NODE__NODE_DELETE_STMT:
	case PG_QUERY__NODE__NODE_MERGE_STMT:
		walk_msg(w, m, sc);
		return AN_WRITE;
	case PG_QUERY__NODE__NODE_COPY_STMT: {
		const PgQuery__CopyStmt *c = n->copy_stmt;
		if (c->relation)
			add_table(w, c->relation->schemaname, c->relation->relname,
			          (sc & S_RUNS) && c->is_from);
		walk_fields(w, &c->base, sc, offsetof(PgQuery__CopyStmt, relation), 0, 0);
		/* TO a server file or program is a side effect on that server */
		if (c->is_from || c->is_program || is_set(c->filename))
			return AN_WRITE;
		return w->writes ? AN_WRITE : AN_READ;
	}
	case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
		if (explain_analyzes(n->explain_stmt))
			return stmt_kind(w, n->explain_stmt->query, sc, st);
		(void)stmt_kind(w, n->explain_stmt->query, sc & ~S_RUNS, st);
		return AN_READ;
	case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
		/* Session state, not table data: nothing a result cache may keep. */
		w->out->volatile_funcs = w->out->volatile_other = true;
		return AN_READ;
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		if (st)
			begin_mode(st, n->transaction_stmt);
		return AN_TXN;
	case PG_QUERY__NODE__NODE_DO_STMT:
		w->out->volatile_funcs = w->out->volatile_other = true; /* arbitrary code */
		walk_msg(w, m, sc);
		return AN_WRITE;
	case PG_QUERY__NODE__NODE_CALL_STMT:
	case PG_QUERY__NODE__NODE_NOTIFY_STMT:
	case PG_QUERY__NODE__NODE_LOCK_STMT: /* locked tables are read: LOCK changes no data */
		walk_msg(w, m, sc);
		return AN_WRITE;
	case PG_QUERY__NODE__NODE_REFRESH_MAT_VIEW_STMT:
		walk_msg(w, m, sc | S_DDL); /* the view's contents change */
		return AN_WRITE;
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		walk_msg(w, m, sc & ~S_RUNS); /* runs at EXECUTE, which is opaque */
		return AN_UTILITY;
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
		/* the query runs as the cursor is fetched: FOR UPDATE still locks */
		walk_msg(w, m, sc);
		return w->writes ? AN_WRITE : AN_UTILITY;
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
	case PG_QUERY__NODE__NODE_LISTEN_STMT:
	case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
	case PG_QUERY__NODE__NODE_VACUUM_STMT:
	case PG_QUERY__NODE__NODE_CLUSTER_STMT:
	case PG_QUERY__NODE__NODE_REINDEX_STMT:
	case PG_QUERY__NODE__NODE_CHECK_POINT_STMT:
	case PG_QUERY__NODE__NODE_LOAD_STMT:
	case PG_QUERY__NODE__NODE_CONSTRAINTS_SET_STMT:
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
	case PG_QUERY__NODE__NODE_FETCH_STMT:
	case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
		/* VACUUM, CLUSTER and REINDEX change no data: their tables are read */
		walk_msg(w, m, sc);
		return AN_UTILITY;
	case PG_QUERY__NODE__NODE_DROP_STMT:
		drop_objects(w, n->drop_stmt);
		walk_msg(w, m, sc | S_DDL);
		return AN_DDL;
	default:
		/* Every other statement defines or changes objects. */
		walk_msg(w, m, sc | S_DDL);
		return AN_DDL;
	}
}

/* Strength for combining statements: WRITE > DDL > UTILITY > TXN > READ. */
static int strength(enum an_kind k)
{
	switch (k) {
	case AN_WRITE:
		return 4;
	case AN_DDL:
		return 3;
	case AN_UTILITY:
		return 2;
	case AN_TXN:
		return 1;
	default:
		return 0;
	}
}

/* Leaves *out saying "unknown: send it to the primary, cache nothing". */
static void set_unknown(struct an_result *out, bool parse_error)
{
	memset(out, 0, sizeof(*out));
	out->parse_error = parse_error;
	out->too_complex = !parse_error;
	out->kind = AN_WRITE;
	out->volatile_funcs = out->volatile_other = true;
}

/* Analyses the NUL-terminated buf of len bytes. */
static int analyze_text(const char *buf, size_t len, struct an_result *out)
{
	if (len > SQLC_MAX_STMT_LEN) {
		bool lex_error = false;
		if (sqlscan_check_stmt_lengths(buf, len, AN_MAX_STMTS, &lex_error) < 0) {
			set_unknown(out, false);
			return 0;
		}
		if (lex_error) {
			set_unknown(out, true);
			return 0;
		}
	}

	PgQueryProtobufParseResult pr = pg_query_parse_protobuf(buf);
	PgQuery__ParseResult *tree = NULL;
	struct sqlscan_toks t = {0};
	struct walk *w = NULL;
	int rc = 0;

	if (pr.error) {
		if (is_oom(pr.error))
			rc = -1;
		else
			set_unknown(out, true);
		goto out;
	}
	int bound = sqlscan_tree_depth_ok((const uint8_t *)pr.parse_tree.data, pr.parse_tree.len);
	if (bound < 0) {
		/* -EPROTO (malformed library output) is as unknown as -E2BIG */
		set_unknown(out, false);
		goto out;
	}
	tree = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
	                                      (const uint8_t *)pr.parse_tree.data);
	w = calloc(1, sizeof(*w)); /* 2 KB of CTE names: off the parser's stack */
	if (!tree || !w) {
		rc = -1; /* the bytes came from libpg_query: only allocation fails */
		goto out;
	}
	if (tree->n_stmts > AN_MAX_STMTS) {
		set_unknown(out, false);
		goto out;
	}
	w->out = out;
	out->select_only = tree->n_stmts > 0;
	for (size_t i = 0; i < tree->n_stmts; i++) {
		const PgQuery__RawStmt *rs = tree->stmts[i];
		struct an_stmt *st = &out->stmts[out->n_stmts++];
		w->writes = false;
		w->n_ctes = 0;
		st->kind = stmt_kind(w, rs->stmt, S_RUNS, st);
		if (!rs->stmt || rs->stmt->node_case != PG_QUERY__NODE__NODE_SELECT_STMT)
			out->select_only = false;
		sqlscan_stmt_range(buf, len, &t, rs, &st->loc, &st->len);
		if (strength(st->kind) > strength(out->kind))
			out->kind = st->kind;
	}
	if (w->too_complex) {
		set_unknown(out, false);
		goto out;
	}

	PgQueryFingerprintResult fp = pg_query_fingerprint(buf);
	if (is_oom(fp.error))
		rc = -1;
	else if (!fp.error)
		out->fingerprint = fp.fingerprint;
	pg_query_free_fingerprint_result(fp);
out:
	free(w);
	sqlscan_toks_free(&t);
	if (tree)
		pg_query__parse_result__free_unpacked(tree, NULL);
	pg_query_free_protobuf_parse_result(pr);
	return rc;
}

int an_analyze(const char *sql, size_t len, struct an_result *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = AN_READ;
	if (len > UINT32_MAX) { /* ranges are 32-bit */
		set_unknown(out, false);
		return 0;
	}
	/* A Query message's text ends at its NUL; bytes after one make the
	 * message malformed, and the server says so. */
	if (len && (!sql || memchr(sql, '\0', len))) {
		set_unknown(out, true);
		return 0;
	}
	char *buf = malloc(len + 1);
	if (!buf)
		return -1;
	if (len)
		memcpy(buf, sql, len);
	buf[len] = '\0';
	int rc = analyze_text(buf, len, out);
	free(buf);
	return rc;
}

const char *an_kind_str(enum an_kind kind)
{
	switch (kind) {
	case AN_READ:
		return "read";
	case AN_WRITE:
		return "write";
	case AN_DDL:
		return "ddl";
	case AN_TXN:
		return "txn";
	case AN_UTILITY:
		return "utility";
	}
	return "?";
}

/* ---- Cache ---- */

/*
 * An entry is one allocation: this header, then the compact result (each
 * statement in STMT_BYTES, each table as written/schema length/name length
 * and the bytes), then the text. Only what the text has is stored, so a
 * typical entry is well under the ~5 KB of a struct an_result.
 */
struct an_entry {
	struct an_entry *hnext;       /* hash chain */
	struct an_entry *prev, *next; /* LRU list, most recent first */
	uint64_t hash;
	uint64_t fingerprint;
	size_t size; /* bytes accounted against max_bytes */
	uint32_t sql_len;
	uint32_t tables_len; /* tables and then functions */
	uint8_t kind, flags, n_stmts, n_tables, n_funcs;
	unsigned char data[];
};

#define STMT_BYTES 10 /* loc, len (4 each), kind, flags */

#define EF_PARSE_ERROR 1u
#define EF_TOO_COMPLEX 2u
#define EF_VOLATILE    4u
#define EF_TRUNCATED   8u
#define EF_SELECT_ONLY 16u
#define EF_VOL_OTHER   32u
#define EF_FUNCS_TRUNC 64u
#define EF_READ_ONLY   1u /* per statement */
#define EF_READ_WRITE  2u

struct an_cache {
	size_t max_entries, max_bytes;
	struct an_entry **buckets;
	size_t mask; /* buckets - 1, a power of two minus one */
	struct an_entry *head, *tail;
	uint64_t key[2]; /* hash seed: texts come from clients */
	struct an_cache_stats st;
	struct an_result res; /* what an_cache_get returns */
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)

/* SipHash-1-3 with a per-cache random key: a client cannot pick texts that
 * all land in one chain. */
static uint64_t text_hash(const uint64_t k[2], const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	uint64_t v0 = 0x736f6d6570736575ull ^ k[0], v1 = 0x646f72616e646f6dull ^ k[1];
	uint64_t v2 = 0x6c7967656e657261ull ^ k[0], v3 = 0x7465646279746573ull ^ k[1];
	uint64_t m;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&m, p + i, 8);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	m = (uint64_t)n << 56;
	for (size_t j = 0; i + j < n; j++)
		m |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= m;
	SIPROUND;
	v0 ^= m;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t an_siphash(const uint64_t key[2], const void *p, size_t n)
{
	return text_hash(key, p, n);
}

struct an_cache *an_cache_new(size_t max_entries, size_t max_bytes)
{
	struct an_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->mask = 15;
	c->buckets = calloc(c->mask + 1, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->max_entries = max_entries;
	c->max_bytes = max_bytes;
	if (getrandom(c->key, sizeof(c->key), GRND_NONBLOCK) != (ssize_t)sizeof(c->key)) {
		/* No entropy yet (early boot): weaker, still not a constant. */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		c->key[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
		c->key[1] = (uint64_t)(uintptr_t)c;
	}
	return c;
}

void an_cache_free(struct an_cache *c)
{
	if (!c)
		return;
	for (struct an_entry *e = c->head, *next; e; e = next) {
		next = e->next;
		free(e);
	}
	free(c->buckets);
	free(c);
}

static void lru_unlink(struct an_cache *c, struct an_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push(struct an_cache *c, struct an_entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	else
		c->tail = e;
	c->head = e;
}

static void evict_tail(struct an_cache *c)
{
	struct an_entry *e = c->tail;
	struct an_entry **pp = &c->buckets[e->hash & c->mask];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(c, e);
	c->st.entries--;
	c->st.bytes -= e->size;
	c->st.evictions++;
	free(e);
}

/* Doubles the bucket array once chains would average over one entry; when
 * that allocation fails the cache just runs with longer chains. */
static void maybe_grow(struct an_cache *c)
{
	if (c->st.entries <= c->mask + 1 || c->mask > SIZE_MAX / 4 / sizeof(*c->buckets))
		return;
	size_t nmask = c->mask * 2 + 1;
	struct an_entry **nb = calloc(nmask + 1, sizeof(*nb));
	if (!nb)
		return;
	for (size_t i = 0; i <= c->mask; i++) {
		for (struct an_entry *e = c->buckets[i], *next; e; e = next) {
			next = e->hnext;
			e->hnext = nb[e->hash & nmask];
			nb[e->hash & nmask] = e;
		}
	}
	free(c->buckets);
	c->buckets = nb;
	c->mask = nmask;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static size_t tables_bytes(const struct an_result *r)
{
	size_t n = 0;
	for (uint32_t i = 0; i < r->n_tables; i++)
		n += 3 + strlen(r->tables[i].schema) + strlen(r->tables[i].name);
	for (uint32_t i = 0; i < r->n_funcs; i++)
		n += 3 + strlen(r->funcs[i].schema) + strlen(r->funcs[i].name);
	return n;
}

/* A new entry holding r compactly and the text; NULL when out of memory. */
static struct an_entry *entry_new(const struct an_result *r, const char *sql, size_t len,
                                  uint64_t hash, size_t size, size_t tlen)
{
	struct an_entry *e = malloc(size);
	if (!e)
		return NULL;
	memset(e, 0, offsetof(struct an_entry, data));
	e->hash = hash;
	e->fingerprint = r->fingerprint;
	e->size = size;
	e->sql_len = (uint32_t)len;
	e->tables_len = (uint32_t)tlen;
	e->kind = (uint8_t)r->kind;
	e->flags = (uint8_t)((r->parse_error ? EF_PARSE_ERROR : 0) |
	                     (r->too_complex ? EF_TOO_COMPLEX : 0) |
	                     (r->volatile_funcs ? EF_VOLATILE : 0) |
	                     (r->tables_truncated ? EF_TRUNCATED : 0) |
	                     (r->select_only ? EF_SELECT_ONLY : 0) |
	                     (r->volatile_other ? EF_VOL_OTHER : 0) |
	                     (r->funcs_truncated ? EF_FUNCS_TRUNC : 0));
	e->n_stmts = (uint8_t)r->n_stmts;
	e->n_tables = (uint8_t)r->n_tables;
	e->n_funcs = (uint8_t)r->n_funcs;

	unsigned char *p = e->data;
	for (uint32_t i = 0; i < r->n_stmts; i++, p += STMT_BYTES) {
		const struct an_stmt *s = &r->stmts[i];
		put_u32(p, s->loc);
		put_u32(p + 4, s->len);
		p[8] = (unsigned char)s->kind;
		p[9] = (unsigned char)((s->begin_read_only ? EF_READ_ONLY : 0) |
		                       (s->begin_read_write ? EF_READ_WRITE : 0));
	}
	for (uint32_t i = 0; i < r->n_tables; i++) {
		const struct an_table *t = &r->tables[i];
		size_t sl = strlen(t->schema), nl = strlen(t->name);
		p[0] = t->written;
		p[1] = (unsigned char)sl;
		p[2] = (unsigned char)nl;
		memcpy(p + 3, t->schema, sl);
		memcpy(p + 3 + sl, t->name, nl);
		p += 3 + sl + nl;
	}
	for (uint32_t i = 0; i < r->n_funcs; i++) {
		const struct an_func *f = &r->funcs[i];
		size_t sl = strlen(f->schema), nl = strlen(f->name);
		p[0] = f->is_op;
		p[1] = (unsigned char)sl;
		p[2] = (unsigned char)nl;
		memcpy(p + 3, f->schema, sl);
		memcpy(p + 3 + sl, f->name, nl);
		p += 3 + sl + nl;
	}
	if (len)
		memcpy(p, sql, len);
	return e;
}

static const unsigned char *entry_sql(const struct an_entry *e)
{
	return e->data + (size_t)e->n_stmts * STMT_BYTES + e->tables_len;
}

/* Unpacks e into r; everything not stored is zero. */
static void entry_load(const struct an_entry *e, struct an_result *r)
{
	r->parse_error = e->flags & EF_PARSE_ERROR;
	r->too_complex = e->flags & EF_TOO_COMPLEX;
	r->volatile_funcs = e->flags & EF_VOLATILE;
	r->tables_truncated = e->flags & EF_TRUNCATED;
	r->select_only = e->flags & EF_SELECT_ONLY;
	r->volatile_other = e->flags & EF_VOL_OTHER;
	r->funcs_truncated = e->flags & EF_FUNCS_TRUNC;
	r->kind = (enum an_kind)e->kind;
	r->fingerprint = e->fingerprint;
	r->n_stmts = e->n_stmts;
	r->n_tables = e->n_tables;
	r->n_funcs = e->n_funcs;

	const unsigned char *p = e->data;
	for (uint32_t i = 0; i < r->n_stmts; i++, p += STMT_BYTES) {
		struct an_stmt *s = &r->stmts[i];
		memset(s, 0, sizeof(*s));
		s->loc = get_u32(p);
		s->len = get_u32(p + 4);
		s->kind = (enum an_kind)p[8];
		s->begin_read_only = p[9] & EF_READ_ONLY;
		s->begin_read_write = p[9] & EF_READ_WRITE;
	}
	for (uint32_t i = 0; i < r->n_tables; i++) {
		struct an_table *t = &r->tables[i];
		size_t sl = p[1], nl = p[2];
		memset(t, 0, sizeof(*t));
		t->written = p[0];
		memcpy(t->schema, p + 3, sl);
		memcpy(t->name, p + 3 + sl, nl);
		p += 3 + sl + nl;
	}
	for (uint32_t i = 0; i < r->n_funcs; i++) {
		struct an_func *f = &r->funcs[i];
		size_t sl = p[1], nl = p[2];
		memset(f, 0, sizeof(*f));
		f->is_op = p[0];
		memcpy(f->schema, p + 3, sl);
		memcpy(f->name, p + 3 + sl, nl);
		p += 3 + sl + nl;
	}
}

const struct an_result *an_cache_get(struct an_cache *c, const char *sql, size_t len)
{
	uint64_t h = text_hash(c->key, sql, len);

	for (struct an_entry *e = c->buckets[h & c->mask]; e; e = e->hnext) {
		if (e->hash == h && e->sql_len == len &&
		    (len == 0 || memcmp(entry_sql(e), sql, len) == 0)) {
			c->st.hits++;
			lru_unlink(c, e);
			lru_push(c, e);
			entry_load(e, &c->res);
			return &c->res;
		}
	}

	c->st.misses++;
	if (an_analyze(sql, len, &c->res) < 0)
		return NULL;
	size_t tlen = tables_bytes(&c->res);
	size_t fixed = offsetof(struct an_entry, data) + (size_t)c->res.n_stmts * STMT_BYTES + tlen;
	/* Too big to keep (or keeping nothing): the analysis is still good. */
	if (len > UINT32_MAX || c->max_entries == 0 || len > c->max_bytes ||
	    fixed > c->max_bytes - len)
		return &c->res;
	struct an_entry *e = entry_new(&c->res, sql, len, h, fixed + len, tlen);
	if (!e)
		return &c->res;
	e->hnext = c->buckets[h & c->mask];
	c->buckets[h & c->mask] = e;
	lru_push(c, e);
	c->st.entries++;
	c->st.bytes += e->size;
	/* The new entry fits on its own, so this stops before reaching it. */
	while (c->st.entries > c->max_entries || c->st.bytes > c->max_bytes)
		evict_tail(c);
	maybe_grow(c);
	return &c->res;
}

void an_cache_stats(const struct an_cache *c, struct an_cache_stats *out)
{
	*out = c->st;
}
