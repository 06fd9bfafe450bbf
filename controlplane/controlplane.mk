# controlplane/: the helios-cp daemon. Everything except main.c is a library
# that heliosproxy links too: without control_address it runs the same code
# in-process over nng inproc:// (embedded mode).
CP_MAIN := controlplane/main.c
CP_SRCS := $(filter-out $(CP_MAIN),$(wildcard controlplane/*.c))
CP_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(CP_SRCS))
CP_LIB := $(BUILD)/lib/libhelioscp.a

$(CP_LIB): $(CP_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/helios-cp: $(BUILD)/obj/$(CP_MAIN:.c=.o) $(CP_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $^ -o $@ $(LDFLAGS_ALL) $(LINK_LIBS) -lsystemd

PROGRAMS += $(BIN)/helios-cp
