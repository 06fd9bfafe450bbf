/*
 * libFuzzer target: WASM plugin modules (dataplane/plugin/wasm.cc, WABT's
 * reader and interpreter behind it). The first input byte picks the
 * instruction budget and the hook fields' sizes, the rest is a module: it
 * is either refused with a reason or loaded, instantiated under small
 * limits and each of its hooks called, and no input may crash, leak or
 * run past its limits. The corpus starts from the test modules and the
 * sample plugins (scripts/fuzz.sh copies them in).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/plugin/plugin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void drop_log(void *ud, int level, const char *msg, size_t len)
{
	(void)ud;
	(void)level;
	(void)msg;
	(void)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t knob = data[0];
	char err[256] = "";
	struct plugin_module *m = plugin_module_new(data + 1, size - 1, err, sizeof(err));
	if (!m) {
		if (!err[0])
			abort(); /* a refusal always says why */
		return 0;
	}
	/* small limits: a fuzzed loop costs at most a few ms */
	struct plugin_limits lim = {
	    .fuel = 1000u + (knob & 0x0f) * 2000u, .timeout_ms = 20, .memory_mb = 1 + (knob >> 6)};
	struct plugin_instance *in =
	    plugin_instance_new(m, "{\"k\":[1,\"v\"]}", &lim, err, sizeof(err));
	if (!in) {
		if (!err[0])
			abort();
		plugin_module_free(m);
		return 0;
	}
	static char big[70000];
	memset(big, 'x', sizeof(big));
	for (int h = 0; h < PLUGIN_HOOKS; h++) {
		struct plugin_call c = {.hook = (enum plugin_hook)h};
		for (int f = 1; f < PLUGIN_F_COUNT; f++) {
			c.field[f] = big;
			c.field_len[f] = (knob & 0x30) == 0x30 ? sizeof(big) : (uint32_t)(f * 7);
		}
		enum plugin_rc rc = plugin_call(in, &c, drop_log, NULL);
		if (rc == PLUGIN_OK && c.rewrite &&
		    (c.rewrite_len == 0 || strlen(c.rewrite) != c.rewrite_len))
			abort(); /* a rewrite is NUL-terminated text of its length */
		if (rc != PLUGIN_OK && rc != PLUGIN_ABSENT && (c.rewrite || !c.trap[0]))
			abort(); /* a failed call leaves no output and says why */
		free(c.rewrite);
		if (rc == PLUGIN_TRAP || rc == PLUGIN_TIMEOUT || rc == PLUGIN_BUDGET) {
			/* as the data plane does: a new instance after a failure */
			plugin_instance_free(in);
			in = plugin_instance_new(m, "{}", &lim, err, sizeof(err));
			if (!in)
				break;
		}
	}
	plugin_instance_free(in);
	plugin_module_free(m);
	return 0;
}
