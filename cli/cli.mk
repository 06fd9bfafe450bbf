# cli/: helioctl, the operator CLI (talks to helios-cp over nng REQ/REP).
CLI_SRCS := $(wildcard cli/*.c)
CLI_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(CLI_SRCS))

$(BIN)/helioctl: $(CLI_OBJS) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $^ -o $@ $(LDFLAGS_ALL) $(LINK_LIBS)

PROGRAMS += $(BIN)/helioctl
