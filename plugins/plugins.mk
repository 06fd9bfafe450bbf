# plugins/*.c: the sample WASM plugins (docs/plugins.md), each one C file
# built with clang --target=wasm32 -nostdlib and linked by wasm-ld
# --no-entry into BUILD/plugins/NAME.wasm. Where clang has no wasm32
# target or wasm-ld is missing, the build says so and goes on without them.
WASM_CC ?= clang
WASM_LD ?= wasm-ld
WASM_CFLAGS := --target=wasm32 -mbulk-memory -O2 -nostdlib -ffreestanding -fno-builtin -Wall -Wextra -Werror \
	-MMD -MP
# 64 KiB of stack; the memory's size comes from the plugin's own buffers
WASM_LDFLAGS := --no-entry --strip-all -z stack-size=65536

PLUGIN_SRCS := $(wildcard plugins/*.c)
PLUGIN_WASM := $(patsubst plugins/%.c,$(BUILD)/plugins/%.wasm,$(PLUGIN_SRCS))

$(BUILD)/plugins/%.o: plugins/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  WASMCC  $<")
	$(Q)$(WASM_CC) $(WASM_CFLAGS) -c $< -o $@

$(BUILD)/plugins/%.wasm: $(BUILD)/plugins/%.o
	@$(if $(Q),echo "  WASMLD  $@")
	$(Q)$(WASM_LD) $(WASM_LDFLAGS) $< -o $@

# The check runs when the target is asked for (make all), not at parse time.
plugins:
	$(Q)if command -v $(WASM_LD) >/dev/null 2>&1 && \
		echo 'int x;' | $(WASM_CC) --target=wasm32 -x c -c - -o /dev/null >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory plugin-wasm; \
	else \
		echo "plugins: skipped (no wasm32 clang or wasm-ld)"; \
	fi

plugin-wasm: $(PLUGIN_WASM)

.PHONY: plugins plugin-wasm
.PRECIOUS: $(BUILD)/plugins/%.o
-include $(patsubst plugins/%.c,$(BUILD)/plugins/%.d,$(PLUGIN_SRCS))
