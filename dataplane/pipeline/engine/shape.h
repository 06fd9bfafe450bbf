/*
 * Statement shape: a 64-bit hash of a statement's text with literal values,
 * comments and whitespace left out and unquoted words lower-cased, so
 * "SELECT * FROM t WHERE id = 1" and "select *  from T where id=42" have
 * the same shape. One pass, no allocation, no parser: it lets analytics
 * reuse libpg_query's fingerprint for every statement of a shape after
 * parsing the first one, instead of parsing every distinct text (clients
 * that inline literals make every text distinct).
 *
 * Two statements of one shape differ only in literals, which fingerprints
 * ignore, so they have the same fingerprint. Lexing follows PostgreSQL's
 * rules for strings ('' doubling; E'' backslash escapes), dollar quotes,
 * quoted identifiers, nested block comments and line comments. Text it
 * cannot lex to the end (an unterminated string) hashes what it saw plus a
 * marker, and such statements do not parse anyway.
 */
#ifndef HELIOS_SHAPE_H
#define HELIOS_SHAPE_H

#include <stddef.h>
#include <stdint.h>

uint64_t sql_shape(const char *sql, size_t len);

#endif
