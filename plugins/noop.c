/*
 * noop: every hook, each returning "continue" at once. Not a sample to
 * copy but a yardstick: the cost of a plugin that does nothing is the
 * host's per-call overhead (make bench, docs/plugins.md).
 */
#include "helios_plugin.h"

HELIOS_PLUGIN_ABI_V1

HELIOS_EXPORT(on_connection) int on_connection(void)
{
	return HP_CONTINUE;
}

HELIOS_EXPORT(on_query_start) int on_query_start(void)
{
	return HP_CONTINUE;
}

HELIOS_EXPORT(on_query_complete) int on_query_complete(void)
{
	return HP_CONTINUE;
}

HELIOS_EXPORT(on_error) int on_error(void)
{
	return HP_CONTINUE;
}
