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
