# tests/unit/test_*.c: one cmocka program per module, linked against the
# module libraries. scripts/run-unit.sh runs them all.
UNIT_TEST_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_TEST_SRCS))

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(DATAPLANE_LIB) $(CP_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $^ -o $@ $(LDFLAGS_ALL) $(LINK_LIBS) -lcmocka

# ldapauth-probe: dataplane/auth/ldapauth driven from a worker's loop, for
# tests/integration/test_ldapauth.py (against a real slapd).
$(BUILD)/tests/ldapauth-probe: $(BUILD)/obj/tests/ldap/ldapauth_probe.o $(DATAPLANE_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $^ -o $@ $(LDFLAGS_ALL) $(LINK_LIBS)
PROGRAMS += $(BUILD)/tests/ldapauth-probe
TOOL_SRCS += tests/ldap/ldapauth_probe.c

# cli/pgbini (pgbouncer.ini reader of helioctl import-pgbouncer) is in no library.
$(BUILD)/tests/test_pgbini: $(BUILD)/obj/cli/pgbini.o

# tests/plugins/*.wat: the WASM modules of the plugin runtime's unit tests
# (test_plugin_*) and of the plugin integration tests, assembled by wat2wasm
# into BUILD/tests/plugins/ where the unit tests find them beside their own
# program.
TEST_WASM := $(patsubst tests/plugins/%.wat,$(BUILD)/tests/plugins/%.wasm,$(wildcard tests/plugins/*.wat))
$(BUILD)/tests/plugins/%.wasm: tests/plugins/%.wat
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  WAT     $<")
	$(Q)wat2wasm $< -o $@
$(filter $(BUILD)/tests/test_plugin_%,$(UNIT_TESTS)): | $(TEST_WASM)
# also with `make all`: the integration tests load loop.wasm, trap.wasm,
# grow.wasm ... from BUILD/tests/plugins/ into a running proxy
all unit-tests: $(TEST_WASM)
