/*
 * AST-based query rewriting: rules that replace a whole statement text found
 * by its libpg_query fingerprint, and schema prefixing that qualifies every
 * unqualified table reference on the parse tree and deparses it. Pure: text
 * in, text out, no I/O. Also a pg_query_normalize wrapper for logs.
 */
#ifndef HELIOS_REWRITE_H
#define HELIOS_REWRITE_H

#include <stddef.h>

/*
 * Compiled rules. Built by one thread with rw_rules_add; immutable after
 * that, so any number of threads may then call rw_rewrite with it at once.
 *
 * A rule is (match SQL, replacement SQL). An incoming text matches when
 *  - its pg_query_fingerprint equals the match text's (the lookup key), and
 *  - its parse tree equals the match text's except for the values of
 *    constants and for source positions.
 * The second check is needed because a fingerprint is a grouping, not an
 * equivalence: it ignores aliases ("SELECT a AS x" = "SELECT a AS y"), sorts
 * lists ("SELECT a, b" = "SELECT b, a", "a = 1 AND b = 2" =
 * "b = 2 AND a = 1"), and folds IN lists and parameters ("a IN (1, 2)" =
 * "a = $1"). Replacing any of those would change the result's columns or
 * swap constants.
 *
 * Constants are A_Const nodes: string, numeric, bit-string literals (typed
 * ones like DATE '...' too: the string), TRUE, FALSE, NULL, and the ALL of
 * LIMIT ALL; a minus sign folded into a number ("-5") is part of it. Type
 * modifiers ("varchar(10)", "numeric(10, 2)") are not constants, as in
 * pg_query_normalize: they must be equal.
 *
 * Placeholders in the replacement are $n parameter tokens (outside string
 * literals and comments). With p the highest $n parameter of the match text
 * (0 when it has none) and k its number of constants:
 *  - $1..$p stay as written: they are the incoming statement's own
 *    parameters (its Bind values), which the match requires at the same
 *    places;
 *  - $(p+1)..$(p+k) are replaced by the incoming text of its constants, in
 *    the order the constants appear in the MATCH text: $(p+1) is the first
 *    constant written in the match text, wherever the incoming statement
 *    writes the corresponding constant (it may write "OFFSET 1 LIMIT 5" for
 *    the match's "LIMIT 5 OFFSET 1"). This is pg_query_normalize's numbering
 *    except where it numbers out of text order (LIMIT before OFFSET).
 *    The literal is copied verbatim ('it''s', E'\n', $$x$$, 1.5e3,
 *    B'101', TRUE, NULL); a negative number, or a constant followed by '.'
 *    or '[', is put in parentheses so it stays one operand;
 *  - a replacement without placeholders is used verbatim, whatever the
 *    incoming constants;
 *  - a placeholder above p+k is refused by rw_rules_add.
 * A substituted text that no longer parses (say LIMIT ALL's ALL put where an
 * expression must go) makes rw_rewrite fail.
 */
struct rw_rules;

/* An empty rule set, or NULL when out of memory. */
struct rw_rules *rw_rules_new(void);

/*
 * Adds a rule. Both texts must parse (the replacement with its placeholders)
 * and stay within the parser bounds of dataplane/sql/sqlscan.h. Returns 0, or
 * -1 with a message in err[errlen] (truncated to fit): match or replacement
 * does not parse or holds no statement, a placeholder above $(p+k), a rule
 * with the same match exists, out of memory. Not thread-safe: build before
 * sharing.
 */
int rw_rules_add(struct rw_rules *r, const char *match_sql, const char *replacement_sql, char *err,
                 size_t errlen) __attribute__((warn_unused_result));

void rw_rules_free(struct rw_rules *r);

enum rw_status {
	RW_UNCHANGED = 0,
	RW_REWRITTEN = 1,
	RW_FAILED = -1,
};

const char *rw_status_str(enum rw_status st);

/*
 * Rewrites the NUL-terminated sql: first the rules (matched on the whole
 * text, all its statements), then, when schema is non-NULL and non-empty,
 * schema prefixing of the result.
 *
 * Schema prefixing qualifies with schema (as the server spells it: raw, not
 * quoted; deparse quotes it when needed) every RangeVar without a schema:
 * FROM and JOIN items at any depth, DML targets (INSERT/UPDATE/DELETE/MERGE,
 * also in CTEs), UPDATE ... FROM, DELETE ... USING, MERGE ... USING, COPY,
 * SELECT INTO and CREATE TABLE/MATERIALIZED VIEW ... AS targets, and the
 * relations of DDL (CREATE/ALTER TABLE, INDEX ON, VIEW, SEQUENCE, REFERENCES,
 * INHERITS, TRUNCATE, LOCK, VACUUM, GRANT ... ON TABLE, ...). Name lists that
 * are not RangeVars are qualified for DROP, COMMENT ON and SECURITY LABEL ON
 * of tables, views, materialized views, indexes, sequences and foreign
 * tables (and of a column, trigger, rule, policy or table constraint: the
 * table part), and for SEQUENCE ... OWNED BY table.column.
 * Left alone:
 *  - a name that an enclosing WITH defines, with PostgreSQL's scoping: a
 *    non-recursive CTE sees only the CTEs before it ("WITH t AS (SELECT *
 *    FROM t)": the inner t is the table), a recursive one sees all of its
 *    WITH; DML targets and INTO targets are never CTEs;
 *  - names already qualified, and unqualified names starting with "pg_"
 *    (catalogs);
 *  - temporary relations being created (CREATE TEMP TABLE/VIEW/SEQUENCE,
 *    SELECT INTO TEMP): they cannot live in a schema. Later references to a
 *    temporary table ARE prefixed, and then miss it: tenants using temporary
 *    tables must qualify them with pg_temp;
 *  - FOR UPDATE OF names (they name FROM items, not tables);
 *  - CREATE SCHEMA ... CREATE TABLE ... (the elements belong to the new
 *    schema);
 *  - everything that is not a relation name: columns ("t.col" still works
 *    after "FROM t" became "FROM s.t": the alias stays t), functions, types,
 *    operators, and names inside string literals: nextval('seq'),
 *    't'::regclass, function bodies, DO blocks, EXECUTE texts are not
 *    rewritten (the server resolves them with search_path).
 * A statement with nothing to qualify keeps its exact text; one that changes
 * is deparsed, with libpg_query's formatting (keywords upper case, its own
 * parentheses and spacing) and WITHOUT THE COMMENTS INSIDE IT. Only the
 * changed statements are replaced: the text before, between and after
 * statements (separators, leading and trailing comments) stays, so a leading
 * hint comment survives, but a caller that reads hint comments
 * (/ * helios:... * /) should read them before rewriting all the same.
 * Each deparsed statement is parsed back and must give the same tree, or the
 * rewrite fails: libpg_query 15-4.0.0's deparser writes "FOR UPDATE OF t
 * NOWAIT" as "OF tNOWAIT" (another name), drops a constraint's
 * WITH (fillfactor = n), and the parentheses of (ARRAY[1, 2])[1:2].
 *
 * RW_REWRITTEN: *out is a new malloc'd NUL-terminated text (caller frees).
 * RW_UNCHANGED: *out is NULL; the text is to be sent as it is (also when
 * there are no rules and no schema: then sql is not even parsed).
 * RW_FAILED: *out is NULL and why[whylen] (if why is non-NULL) tells why: a
 * parse error, a statement longer or deeper than the parser bounds
 * (SQLC_MAX_STMT_LEN, SQLC_MAX_DEPTH), a schema name longer than 63 bytes, a
 * deparse error, out of memory. The caller then sends the statement
 * untouched (and with a schema, unqualified: where prefixing is what keeps
 * tenants apart, refusing the statement is the safer choice).
 * Cost: one parse, plus a fingerprint when there are rules, plus for each
 * changed statement a deparse and a parse back.
 * Never crashes on any input; recursion is bounded by the tree depth bound.
 * Thread-safe.
 */
enum rw_status rw_rewrite(const struct rw_rules *rules, const char *schema, const char *sql,
                          char **out, char *why, size_t whylen) __attribute__((warn_unused_result));

/*
 * pg_query_normalize: constants replaced by $n, for logs. A malloc'd text,
 * or NULL when sql does not parse or is over the parser bounds.
 */
char *rw_normalize(const char *sql);

#endif
